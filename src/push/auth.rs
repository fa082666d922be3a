//! Who is pushing, and how fast they may.
//!
//! Owns: reading credentials (`Authorization: Bearer <secret>`, or Basic with the secret as
//! the password), the per-peer throttle on failed authentications, the client-certificate
//! binding of a token, and the per-token entries/s and bytes/s buckets.
//!
//! Must not: log a presented secret or any part of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;

use super::error::PushError;
use super::{ConnInfo, Limits};
pub use crate::token::credentials::AuthThrottle;
use crate::token::credentials::{Bucket, presented_secret};
use crate::token::{Identity, Kind, Verifier};

/// Extracts the secret from the `Authorization` header.
fn secret(headers: &HeaderMap) -> Result<String, PushError> {
    presented_secret(headers).map_err(|e| PushError::Unauthorized(e.to_string()))
}

/// Authenticates a push: the presented secret first (one keyed hash and a constant-time
/// compare), then its certificate binding. Only a failure consults the per-peer throttle, so
/// a valid token is never locked out by failures from its own address.
pub fn authenticate(
    headers: &HeaderMap,
    conn: &ConnInfo,
    verifier: &Verifier,
    throttle: &AuthThrottle,
) -> Result<Identity, PushError> {
    let ip = conn.peer.ip();
    let failed = |e: PushError| {
        throttle.failed(ip).map_err(PushError::AuthThrottled)?;
        Err(e)
    };
    let identity = match secret(headers).and_then(|s| {
        verifier
            .check(&s, Kind::Push)
            .ok_or_else(|| PushError::Unauthorized("invalid or revoked push token".into()))
    }) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    if let Some(bound) = &identity.cert_identity {
        let presented = conn.client_names.iter().any(|n| n.as_str() == &**bound);
        if !presented {
            return failed(PushError::Unauthorized(format!(
                "token {:?} must be used with a client certificate for {bound:?}",
                &*identity.name
            )));
        }
    }
    Ok(identity)
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
