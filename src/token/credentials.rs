//! Reading presented credentials and throttling failed attempts, for every listener that
//! takes tokens.
//!
//! Owns: `Authorization: Bearer <secret>` and Basic (the secret as the password, or as the
//! user when the password is empty), and the per-peer throttle on failed authentications.
//!
//! Must not: log a presented secret or any part of it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;
use base64::Engine;

/// Peers whose failures are remembered at once; beyond it the quietest are forgotten.
pub const MAX_TRACKED_PEERS: usize = 4096;

/// Why no secret could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "missing credentials: send \"Authorization: Bearer <token>\" or Basic auth with the \
         token as the password"
    )]
    Missing,
    #[error("malformed Authorization header")]
    MalformedHeader,
    #[error("malformed Basic credentials")]
    MalformedBasic,
}

/// The secret presented in the `Authorization` header.
pub fn presented_secret(headers: &HeaderMap) -> Result<String, CredentialError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(CredentialError::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| CredentialError::MalformedHeader)?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or(CredentialError::Missing)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(CredentialError::MalformedBasic)?;
        let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
        return Ok(if pass.is_empty() { user } else { pass }.to_string());
    }
    Err(CredentialError::Missing)
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub level: f64,
    pub at: Instant,
}

impl Bucket {
    pub fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            level: capacity,
            at: now,
        }
    }

    pub fn refill(&mut self, rate: f64, capacity: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * rate).min(capacity);
        self.at = now;
    }
}

/// Limits failed authentications per peer: a burst of `per_minute`, refilled evenly. A peer
/// over it gets 429 for a presented secret that is wrong; a valid secret always passes, so
/// a misconfigured agent (or an attacker) behind the same address cannot lock a good token
/// out. Only failures are counted and throttled, never successes.
///
/// Memory is bounded by [`MAX_TRACKED_PEERS`]. When the table is full, peers whose bucket has
/// refilled are forgotten first (there is nothing to remember), then the peer with the most
/// tries left (forgetting gives a peer back what its bucket lacks); a throttled peer is never
/// forgotten. If every tracked
/// peer is throttled, a new peer's failure goes uncounted until one of them recovers.
///
/// An IPv6 peer is tracked by its /64 prefix, the block one host is normally given, so a host
/// cannot escape its throttle by rotating addresses inside its own prefix.
#[derive(Debug)]
pub struct AuthThrottle {
    per_minute: u32,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    bucket: Bucket,
    last_failure: Instant,
}

/// The address a peer is counted under: itself for IPv4 (and IPv4-mapped IPv6), its /64
/// prefix for IPv6.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthThrottle {
    pub fn new(per_minute: u32) -> AuthThrottle {
        AuthThrottle {
            per_minute,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn cap(&self) -> f64 {
        f64::from(self.per_minute)
    }

    /// A failed authentication from `ip`, called only once the secret was found wrong:
    /// counted, or `Err(seconds)` to wait when the peer is already over its failures (then
    /// answered 429 unchecked and not counted again).
    pub fn failed(&self, ip: IpAddr) -> Result<(), u64> {
        self.admit(ip)?;
        self.fail(ip);
        Ok(())
    }

    /// Whether `ip` is under its failures; `Err(seconds)` to wait when it is not.
    fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = peers.get_mut(&peer_key(ip)) else {
            return Ok(());
        };
        p.bucket.refill(self.rate(), self.cap(), now);
        if p.bucket.level >= 1.0 {
            return Ok(());
        }
        let wait = ((1.0 - p.bucket.level) / self.rate()).ceil().max(1.0) as u64;
        Err(wait)
    }

    /// Counts a failed authentication from `ip`.
    fn fail(&self, ip: IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        let now = Instant::now();
        let key = peer_key(ip);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_TRACKED_PEERS
            && !peers.contains_key(&key)
            && !self.make_room(&mut peers, now)
        {
            return;
        }
        let p = peers.entry(key).or_insert_with(|| Peer {
            bucket: Bucket::full(self.cap(), now),
            last_failure: now,
        });
        p.bucket.refill(self.rate(), self.cap(), now);
        p.bucket.level = (p.bucket.level - 1.0).max(0.0);
        p.last_failure = now;
    }

    /// Frees at least one slot without forgetting a throttled peer, by forgetting the peer
    /// with the most tries left; false if every tracked peer is throttled.
    fn make_room(&self, peers: &mut HashMap<IpAddr, Peer>, now: Instant) -> bool {
        let (rate, cap) = (self.rate(), self.cap());
        peers.retain(|_, p| {
            p.bucket.refill(rate, cap, now);
            p.bucket.level < cap
        });
        if peers.len() < MAX_TRACKED_PEERS {
            return true;
        }
        // Forgetting a peer gives it back what its bucket lacks, so the one forgotten is the
        // one with the most tries left (the oldest among equals): a peer that was locked out
        // and has refilled only a try or two is the last to go, never the first.
        let fullest = peers
            .iter()
            .filter(|(_, p)| p.bucket.level >= 1.0)
            .max_by(|(_, a), (_, b)| {
                a.bucket
                    .level
                    .total_cmp(&b.bucket.level)
                    .then(b.last_failure.cmp(&a.last_failure))
            })
            .map(|(k, _)| *k);
        match fullest {
            Some(k) => {
                peers.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_throttled_peer_is_never_forgotten_when_the_table_fills() {
        // Regression: failures from more than MAX_TRACKED_PEERS addresses cleared the table,
        // un-throttling an address that was locked out.
        // One failure a minute: the locked-out address stays locked for the whole test.
        let t = AuthThrottle::new(1);
        let locked = v4(1);
        for _ in 0..3 {
            t.fail(locked);
        }
        assert!(t.admit(locked).is_err());
        for n in 0..3 * MAX_TRACKED_PEERS as u32 {
            t.fail(v4(1000 + n));
        }
        assert!(t.tracked() <= MAX_TRACKED_PEERS);
        assert!(
            t.admit(locked).is_err(),
            "the locked-out address was forgotten"
        );
    }

    #[test]
    fn a_peer_that_refilled_a_try_or_two_is_forgotten_last() {
        // Regression: the oldest peer with a try left was forgotten first, so an address
        // locked out two seconds earlier (one try refilled) got all 30 back once the table
        // filled.
        let t = AuthThrottle::new(30);
        let locked = v4(1);
        for _ in 0..30 {
            t.fail(locked);
        }
        {
            let mut peers = t.peers.lock().unwrap();
            peers.get_mut(&peer_key(locked)).unwrap().bucket.level = 1.5;
        }
        for n in 0..3 * MAX_TRACKED_PEERS as u32 {
            t.fail(v4(1000 + n));
        }
        let peers = t.peers.lock().unwrap();
        let p = peers
            .get(&peer_key(locked))
            .expect("the locked-out address was forgotten");
        // Only what the refill rate gave back while the table filled, far from all 30.
        assert!(p.bucket.level < 15.0, "{}", p.bucket.level);
    }

    #[test]
    fn memory_stays_bounded_when_every_peer_is_throttled() {
        let t = AuthThrottle::new(2);
        for n in 0..MAX_TRACKED_PEERS as u32 + 10 {
            let ip = v4(n);
            t.fail(ip);
            t.fail(ip);
            t.fail(ip);
        }
        assert_eq!(t.tracked(), MAX_TRACKED_PEERS);
        assert!(t.admit(v4(0)).is_err());
    }

    #[test]
    fn an_ipv6_host_is_one_peer_across_its_prefix() {
        let t = AuthThrottle::new(3);
        for i in 0..4u16 {
            t.fail(IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, i, i, i, i,
            )));
        }
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        assert!(t.admit(other).is_err());
        let elsewhere = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(t.admit(elsewhere).is_ok());
    }
}
