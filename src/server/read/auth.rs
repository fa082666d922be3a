//! The remote read listener's door: read tokens only (a push token is refused here, and a
//! read token is refused by the push listener, which only knows push tokens), failed
//! attempts throttled per address, and each read token's share of the query slots
//! (`query.max_concurrent_per_token`) and of the live tails.
//!
//! Must not: answer a request itself beyond a [`super::Refusal`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Principal, Refusal};
use crate::push::ConnInfo;
use crate::token::Kind;
use crate::token::Verifier;
use crate::token::credentials::{AuthThrottle, presented_secret};

/// What one read token may hold of the remote listener at once.
#[derive(Debug, Clone, Copy)]
pub struct ReadShares {
    /// Requests running (`query.max_concurrent_per_token`).
    pub queries: usize,
    /// Live tails open (`query.max_concurrent_tails_per_token`).
    pub tails: usize,
}

#[derive(Debug, Clone)]
pub(super) struct RemoteAuth {
    pub verifier: Arc<Verifier>,
    pub throttle: Arc<AuthThrottle>,
    pub slots: Arc<TokenSlots>,
    pub tails: Arc<TokenSlots>,
}

/// Each read token's share of the query slots: at most `per_token` of its requests run at
/// once; the others wait, at most `wait`, then get 429.
#[derive(Debug)]
pub(super) struct TokenSlots {
    per_token: usize,
    wait: std::time::Duration,
    tokens: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl TokenSlots {
    pub(super) fn new(per_token: usize, wait: std::time::Duration) -> Arc<TokenSlots> {
        Arc::new(TokenSlots {
            per_token,
            wait,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn semaphore(&self, token: &Arc<str>) -> Arc<Semaphore> {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(Arc::clone(token))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_token))),
        )
    }

    async fn acquire(&self, token: &Arc<str>) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, self.semaphore(token).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

pub(super) async fn read_auth(
    State(auth): State<RemoteAuth>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.uri().path().ends_with("/ready") {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.peer.ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let identity = presented_secret(req.headers())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            auth.verifier
                .check(&s, Kind::Read)
                .ok_or_else(|| "invalid or revoked read token".to_string())
        });
    match identity {
        Ok(id) => {
            let Some(_slot) = auth.slots.acquire(&id.name).await else {
                return Refusal::TokenBusy.into_response();
            };
            if req.uri().path().ends_with("/tail") {
                let Ok(tail) = auth.tails.semaphore(&id.name).try_acquire_owned() else {
                    return Refusal::TailsBusy.into_response();
                };
                req.extensions_mut()
                    .insert(crate::query::TailShare::new(tail));
            }
            req.extensions_mut().insert(Principal(Arc::clone(&id.name)));
            next.run(req).await
        }
        Err(msg) => {
            // Only failures are throttled: a valid read token passes whatever its address did.
            if let Err(wait) = auth.throttle.failed(ip) {
                return Refusal::Throttled(wait).into_response();
            }
            tracing::info!(peer = %ip, reason = %msg, "read authentication failed");
            Refusal::Unauthorized(msg).into_response()
        }
    }
}
