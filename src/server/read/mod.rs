//! The read listeners: the query API on the loopback-only local listener, and on the optional
//! remote read listener behind read tokens; every read request is recorded in the ledger.
//!
//! Owns: the two routers, and [`Refusal`], every answer a read listener gives on its own
//! before a query runs (mapped to statuses here, in one place). Layout: `auth` (the
//! remote listener's read tokens and their shares), `audit` (the record of every read).
//!
//! Must not: serve the push endpoint, administration or metrics on the remote listener.

mod audit;
mod auth;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::metrics::Metrics;
use crate::query::{self, QueryState};
use crate::store::Appender;
use crate::token::Verifier;
use crate::token::credentials::AuthThrottle;

pub use audit::{AUDIT_LABEL, AUDIT_SOURCE};
pub use auth::ReadShares;

use audit::AuditState;
use auth::{RemoteAuth, TokenSlots};

/// Who made a read request.
#[derive(Debug, Clone)]
struct Principal(Arc<str>);

/// What a read listener answers on its own, before or instead of a query.
#[derive(Debug)]
enum Refusal {
    /// The read token already runs `query.max_concurrent_per_token` requests.
    TokenBusy,
    /// The read token already holds `query.max_concurrent_tails_per_token` tails.
    TailsBusy,
    /// Too many failed authentications from this address: retry after this many seconds.
    Throttled(u64),
    /// No valid read token; why.
    Unauthorized(String),
    /// The read could not be recorded in the audit stream.
    NotRecorded,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let retry = |secs: String| [(header::RETRY_AFTER, secs)];
        match self {
            Refusal::TokenBusy => (
                StatusCode::TOO_MANY_REQUESTS,
                retry("1".into()),
                "too many outstanding requests for this read token \
                 (query.max_concurrent_per_token); retry later\n",
            )
                .into_response(),
            Refusal::TailsBusy => (
                StatusCode::TOO_MANY_REQUESTS,
                retry("5".into()),
                "max concurrent tail requests for this read token exceeded \
                 (query.max_concurrent_tails_per_token)\n",
            )
                .into_response(),
            Refusal::Throttled(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                retry(wait.to_string()),
                "too many failed authentications from this address; retry later\n",
            )
                .into_response(),
            Refusal::Unauthorized(msg) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{msg}\n"),
            )
                .into_response(),
            Refusal::NotRecorded => (
                StatusCode::SERVICE_UNAVAILABLE,
                retry("5".into()),
                "the read could not be recorded in the audit stream; retry later\n",
            )
                .into_response(),
        }
    }
}

/// The query API for the local listener, audited, with the principal `local`.
pub fn local(state: QueryState, appender: Appender, metrics: Arc<Metrics>) -> Router {
    audited(state, appender, "local", metrics).layer(middleware::from_fn(
        |mut req: Request, next: Next| async move {
            req.extensions_mut().insert(Principal("local".into()));
            next.run(req).await
        },
    ))
}

/// The query API for the remote listener: read tokens only, audited.
pub fn remote(
    state: QueryState,
    appender: Appender,
    verifier: Arc<Verifier>,
    auth_failures_per_minute: u32,
    shares: ReadShares,
    metrics: Arc<Metrics>,
) -> Router {
    let wait = state.engine.limits.timeout;
    let auth = RemoteAuth {
        verifier,
        throttle: Arc::new(AuthThrottle::new(auth_failures_per_minute)),
        slots: TokenSlots::new(shares.queries, wait),
        tails: TokenSlots::new(shares.tails, std::time::Duration::ZERO),
    };
    audited(state, appender, "remote", metrics)
        .layer(middleware::from_fn_with_state(auth, auth::read_auth))
}

fn audited(
    state: QueryState,
    appender: Appender,
    listener: &'static str,
    metrics: Arc<Metrics>,
) -> Router {
    let st = AuditState {
        appender,
        listener,
        metrics,
    };
    query::router(state).layer(middleware::from_fn_with_state(st, audit::audit))
}
