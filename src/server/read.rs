//! The read listeners: the query API on the loopback-only local listener, and on the optional
//! remote read listener behind read tokens; every read request is recorded in the ledger.
//!
//! Owns: the read-token check of the remote listener (a push token is refused there, and a
//! read token is refused by the push listener, which only knows push tokens), each read
//! token's share of the query slots (`query.max_concurrent_per_token`), and the audit
//! record: each request on a read listener is appended to `{__daftari__="audit"}` (principal,
//! listener, endpoint, query, time range, result count, status) before its answer is sent.
//! A read that cannot be recorded is not answered (503).
//!
//! Must not: serve the push endpoint, administration or metrics on the remote listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::{now_ns, rfc3339};
use crate::metrics::Metrics;
use crate::push::ConnInfo;
use crate::query::{self, Audit, QueryState};
use crate::store::{Appender, Batch, NewEntry, Pairs, Stream};
use crate::token::Kind;
use crate::token::Verifier;
use crate::token::credentials::{AuthThrottle, presented_secret};

/// The reserved stream of read records.
pub const AUDIT_LABEL: (&str, &str) = ("__daftari__", "audit");
/// The `source` of read records.
pub const AUDIT_SOURCE: &str = "daftari";
/// Longest query text kept in a read record; longer ones are cut (and say so).
const AUDIT_MAX_QUERY: usize = 4096;

/// What one read token may hold of the remote listener at once.
#[derive(Debug, Clone, Copy)]
pub struct ReadShares {
    /// Requests running (`query.max_concurrent_per_token`).
    pub queries: usize,
    /// Live tails open (`query.max_concurrent_tails_per_token`).
    pub tails: usize,
}

/// Who made a read request.
#[derive(Debug, Clone)]
struct Principal(Arc<str>);

#[derive(Debug, Clone)]
struct AuditState {
    appender: Appender,
    listener: &'static str,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone)]
struct RemoteAuth {
    verifier: Arc<Verifier>,
    throttle: Arc<AuthThrottle>,
    slots: Arc<TokenSlots>,
    tails: Arc<TokenSlots>,
}

/// Each read token's share of the query slots: at most `per_token` of its requests run at
/// once; the others wait, at most `wait`, then get 429.
#[derive(Debug)]
struct TokenSlots {
    per_token: usize,
    wait: std::time::Duration,
    tokens: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl TokenSlots {
    fn new(per_token: usize, wait: std::time::Duration) -> Arc<TokenSlots> {
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
        .layer(middleware::from_fn_with_state(auth, read_auth))
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
    query::router(state).layer(middleware::from_fn_with_state(st, audit))
}

async fn read_auth(State(auth): State<RemoteAuth>, mut req: Request, next: Next) -> Response {
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
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "too many outstanding requests for this read token \
                     (query.max_concurrent_per_token); retry later\n",
                )
                    .into_response();
            };
            if req.uri().path().ends_with("/tail") {
                let Ok(tail) = auth.tails.semaphore(&id.name).try_acquire_owned() else {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "5")],
                        "max concurrent tail requests for this read token exceeded \
                         (query.max_concurrent_tails_per_token)\n",
                    )
                        .into_response();
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
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, wait.to_string())],
                    "too many failed authentications from this address; retry later\n",
                )
                    .into_response();
            }
            tracing::info!(peer = %ip, reason = %msg, "read authentication failed");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{msg}\n"),
            )
                .into_response()
        }
    }
}

async fn audit(State(st): State<AuditState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.ends_with("/ready") {
        return next.run(req).await;
    }
    let principal = req
        .extensions()
        .get::<Principal>()
        .map_or_else(|| Arc::from("unknown"), |p| Arc::clone(&p.0));
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let info = resp
        .extensions()
        .get::<Audit>()
        .cloned()
        .unwrap_or_default();
    let took = started.elapsed();
    let status = resp.status().as_u16();
    st.metrics
        .query_done(crate::query::endpoint_name(&path), status, took);
    let line = record_line(&Record {
        principal: &principal,
        listener: st.listener,
        method: &method,
        path: &path,
        status,
        info: &info,
        millis: took.as_millis(),
    });
    match append(&st.appender, line).await {
        Ok(()) => resp,
        Err(e) => {
            tracing::error!(error = %e, "a read could not be recorded; refusing to answer it");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "the read could not be recorded in the audit stream; retry later\n",
            )
                .into_response()
        }
    }
}

struct Record<'a> {
    principal: &'a str,
    listener: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    info: &'a Audit,
    millis: u128,
}

/// One read as a logfmt line.
fn record_line(r: &Record<'_>) -> String {
    let mut query = r.info.query.clone();
    if query.len() > AUDIT_MAX_QUERY {
        let mut cut = AUDIT_MAX_QUERY;
        while !query.is_char_boundary(cut) {
            cut -= 1;
        }
        query.truncate(cut);
        query.push_str("...(cut)");
    }
    let mut line = format!(
        "principal={} listener={} method={} endpoint={} status={} results={} duration_ms={}",
        quote(r.principal),
        r.listener,
        r.method,
        quote(r.path),
        r.status,
        r.info.results,
        r.millis
    );
    if !query.is_empty() {
        line.push_str(&format!(" query={}", quote(&query)));
    }
    if let Some(s) = r.info.start_ns {
        line.push_str(&format!(" start={}", rfc3339(s)));
    }
    if let Some(e) = r.info.end_ns {
        line.push_str(&format!(" end={}", rfc3339(e)));
    }
    line
}

/// A logfmt value: bare when safe, otherwise quoted with escapes.
fn quote(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare { v.to_owned() } else { format!("{v:?}") }
}

async fn append(appender: &Appender, line: String) -> Result<(), String> {
    let labels = Pairs::new(vec![(AUDIT_LABEL.0.into(), AUDIT_LABEL.1.into())])
        .map_err(|e| e.to_string())?;
    let batch = Batch {
        source: AUDIT_SOURCE.into(),
        tenant: String::new(),
        streams: vec![Stream {
            labels,
            entries: vec![NewEntry {
                ts_ns: now_ns(),
                metadata: Pairs::default(),
                line: line.into_bytes(),
            }],
        }],
    };
    appender
        .append(batch)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
