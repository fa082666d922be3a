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

/// Limits failed authentications per peer address: a burst of `per_minute`, refilled evenly.
/// An address over it gets 429 without its credentials being looked at.
#[derive(Debug)]
pub struct AuthThrottle {
    per_minute: u32,
    peers: Mutex<HashMap<IpAddr, Bucket>>,
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

    /// Whether `ip` may try to authenticate; `Err(seconds)` to wait when it may not.
    pub fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let cap = f64::from(self.per_minute);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = peers.get_mut(&ip) else {
            return Ok(());
        };
        b.refill(self.rate(), cap, now);
        if b.level >= 1.0 {
            return Ok(());
        }
        let wait = ((1.0 - b.level) / self.rate()).ceil().max(1.0) as u64;
        Err(wait)
    }

    /// Counts a failed authentication from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        let now = Instant::now();
        let cap = f64::from(self.per_minute);
        let rate = self.rate();
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_TRACKED_PEERS && !peers.contains_key(&ip) {
            peers.retain(|_, b| {
                b.refill(rate, cap, now);
                b.level < cap
            });
            if peers.len() >= MAX_TRACKED_PEERS {
                peers.clear();
            }
        }
        let b = peers.entry(ip).or_insert_with(|| Bucket::full(cap, now));
        b.refill(rate, cap, now);
        b.level = (b.level - 1.0).max(0.0);
    }
}
