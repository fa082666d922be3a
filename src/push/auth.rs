//! Who is pushing, and how fast they may.
//!
//! Owns: reading credentials (`Authorization: Bearer <secret>`, or Basic with the secret as
//! the password), the per-peer throttle on failed authentications, the client-certificate
//! binding of a token, and the per-token entries/s and bytes/s buckets.
//!
//! Must not: log a presented secret or any part of it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;
use base64::Engine;

use super::error::PushError;
use super::{ConnInfo, Limits};
use crate::token::{Identity, Kind, Verifier};

/// Peers whose failures are remembered at once; beyond it the quietest are forgotten.
pub const MAX_TRACKED_PEERS: usize = 4096;

/// Extracts the secret from the `Authorization` header.
fn secret(headers: &HeaderMap) -> Result<String, PushError> {
    let missing = || {
        PushError::Unauthorized(
            "missing credentials: send \"Authorization: Bearer <token>\" or Basic auth with \
             the token as the password"
                .into(),
        )
    };
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(missing)?;
    let value = value
        .to_str()
        .map_err(|_| PushError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(missing)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| PushError::Unauthorized("malformed Basic credentials".into()))?;
        let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
        return Ok(if pass.is_empty() { user } else { pass }.to_string());
    }
    Err(missing())
}

/// Authenticates a push: the throttle first, then the token, then its certificate binding.
pub fn authenticate(
    headers: &HeaderMap,
    conn: &ConnInfo,
    verifier: &Verifier,
    throttle: &AuthThrottle,
) -> Result<Identity, PushError> {
    let ip = conn.peer.ip();
    throttle.admit(ip)?;
    let result = secret(headers).and_then(|s| {
        verifier
            .check(&s, Kind::Push)
            .ok_or_else(|| PushError::Unauthorized("invalid or revoked push token".into()))
    });
    let identity = result.inspect_err(|_| throttle.fail(ip))?;
    if let Some(bound) = &identity.cert_identity {
        let presented = conn.client_names.iter().any(|n| n.as_str() == &**bound);
        if !presented {
            throttle.fail(ip);
            return Err(PushError::Unauthorized(format!(
                "token {:?} must be used with a client certificate for {bound:?}",
                &*identity.name
            )));
        }
    }
    Ok(identity)
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, capacity: f64, now: Instant) {
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

    fn admit(&self, ip: IpAddr) -> Result<(), PushError> {
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
        Err(PushError::AuthThrottled(wait))
    }

    fn fail(&self, ip: IpAddr) {
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

/// Per-token entries/s and bytes/s limits. A request is admitted whole or refused whole
/// (429, nothing stored), so a retry cannot duplicate part of it. A request larger than the
/// burst is admitted when the bucket is full, so no request is refused forever.
#[derive(Debug)]
pub struct RateLimiter {
    entries_per_s: f64,
    bytes_per_s: f64,
    burst_s: f64,
    tokens: Mutex<HashMap<Arc<str>, (Bucket, Bucket)>>,
}

impl RateLimiter {
    pub fn new(limits: &Limits) -> RateLimiter {
        RateLimiter {
            entries_per_s: limits.token_entries_per_second as f64,
            bytes_per_s: limits.token_bytes_per_second as f64,
            burst_s: limits.token_burst_seconds as f64,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `entries` and `bytes` from `token`'s buckets, or says how long to wait.
    pub fn admit(&self, token: &Arc<str>, entries: usize, bytes: usize) -> Result<(), PushError> {
        let now = Instant::now();
        let (ec, bc) = (
            self.entries_per_s * self.burst_s,
            self.bytes_per_s * self.burst_s,
        );
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (eb, bb) = map
            .entry(Arc::clone(token))
            .or_insert_with(|| (Bucket::full(ec, now), Bucket::full(bc, now)));
        let checks = [
            (self.entries_per_s, ec, &mut *eb, entries as f64, "entries"),
            (self.bytes_per_s, bc, &mut *bb, bytes as f64, "bytes"),
        ];
        let mut wait = 0.0f64;
        let mut over = None;
        for (rate, cap, bucket, want, what) in checks {
            if rate <= 0.0 {
                continue;
            }
            bucket.refill(rate, cap, now);
            let need = want.min(cap);
            if bucket.level < need {
                wait = wait.max((need - bucket.level) / rate);
                over = Some((what, rate));
            }
        }
        if let Some((what, rate)) = over {
            return Err(PushError::RateLimited {
                msg: format!(
                    "ingestion rate limit exceeded for token {:?} (limit: {rate} {what}/sec) \
                     while attempting to ingest {entries} entries totaling {bytes} bytes; \
                     nothing was stored, retry later",
                    &**token
                ),
                retry_after: wait.ceil().max(1.0) as u64,
            });
        }
        if self.entries_per_s > 0.0 {
            eb.level -= entries as f64;
        }
        if self.bytes_per_s > 0.0 {
            bb.level -= bytes as f64;
        }
        Ok(())
    }
}
