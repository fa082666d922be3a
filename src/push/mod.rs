//! The push plane: `POST /loki/api/v1/push`, `POST /otlp/v1/logs` and `GET /ready`, and
//! nothing else.
//!
//! Owns: the push router, the request path (authenticate, take the token's share, read the
//! body within its limits and minimum rate, decode, validate, rate-limit, append, answer
//! only once durable), and the limits that bound it.
//!
//! Must not: name the query plane, token management, verify, a reader, or anything that can
//! read, change or delete records. It holds an [`Appender`] and a token [`Verifier`] only.
//!
//! Layout:
//! - `limits`: every bound on one push, with its default and config key;
//! - `auth`: credentials, the per-peer failure throttle, per-token rate limits;
//! - `memory`: the memory all pushes in flight may hold together, and each token's share;
//! - `decode`: content encodings and body formats, with every size check before allocation;
//! - `proto`, `json`: the two body formats of a Loki push;
//! - `otlp`: OTLP/HTTP logs, its formats and answers, mapped to streams as Loki maps them;
//! - `syslog`: syslog connections (their own listener), framed, parsed and mapped to streams;
//! - `raw`: what both decoders hand to `validate`;
//! - `labels`: the label string;
//! - `validate`: Loki's per-stream and per-entry rules and the partial-failure rule;
//! - `enrich`: `service_name` and `detected_level`, added before hashing, as Loki does;
//! - `error`: every failure, and its status, in one place.

mod auth;
mod decode;
pub mod enrich;
mod error;
mod json;
pub mod labels;
mod limits;
pub mod memory;
pub mod otlp;
pub mod proto;
mod raw;
pub mod syslog;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

pub use error::PushError;
pub use limits::*;

use crate::metrics::Metrics;
use crate::store::append::{Appender, Batch};
use crate::token::Verifier;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Names in the verified client certificate (common name and DNS names), if any.
    pub client_names: Arc<[String]>,
}

/// Everything the push handlers share.
#[derive(Debug)]
pub struct PushState {
    appender: Appender,
    verifier: Arc<Verifier>,
    metrics: Arc<Metrics>,
    limits: Limits,
    throttle: auth::AuthThrottle,
    rates: auth::RateLimiter,
    inflight: Semaphore,
    memory: memory::Budget,
    /// False once shutdown began: `/ready` fails so load balancers move away.
    ready: Arc<AtomicBool>,
}

impl PushState {
    pub fn new(
        appender: Appender,
        verifier: Arc<Verifier>,
        metrics: Arc<Metrics>,
        limits: Limits,
        ready: Arc<AtomicBool>,
    ) -> PushState {
        PushState {
            appender,
            verifier,
            metrics,
            throttle: auth::AuthThrottle::new(limits.auth_failures_per_minute),
            rates: auth::RateLimiter::new(&limits),
            inflight: Semaphore::new(limits.max_inflight_pushes),
            memory: memory::Budget::new(&limits),
            limits,
            ready,
        }
    }
}

/// The push listener's routes. Every other path answers 404, every other method 405.
pub fn router(state: Arc<PushState>) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/otlp/v1/logs", post(otlp_logs))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n").into_response()
}

async fn ready(State(st): State<Arc<PushState>>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn push(
    State(st): State<Arc<PushState>>,
    conn: Option<axum::Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let conn = conn_info(conn);
    let ct = header_str(&headers, header::CONTENT_TYPE).map(str::to_owned);
    let ce = header_str(&headers, header::CONTENT_ENCODING).map(str::to_owned);
    let result = handle(&st, &conn, &headers, body, |body, limits, charge| {
        let decoded = decode::decode(ct.as_deref(), ce.as_deref(), body, limits, charge)?;
        if decoded.streams.is_empty() {
            return Err(PushError::NoStreams);
        }
        Ok(decoded)
    })
    .await
    .and_then(Outcome::all_stored);
    let status = match &result {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(e) => e.status(),
    };
    st.metrics.push_done(status.as_u16(), start.elapsed());
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            refused(&st, &conn, &e, status);
            e.into_response()
        }
    }
}

/// `POST /otlp/v1/logs`: the same path as a Loki push, with OTLP's bodies and answers.
async fn otlp_logs(
    State(st): State<Arc<PushState>>,
    conn: Option<axum::Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let conn = conn_info(conn);
    let format = otlp::Format::of(header_str(&headers, header::CONTENT_TYPE));
    let fmt = *format.as_ref().unwrap_or(&otlp::Format::Protobuf);
    let ce = header_str(&headers, header::CONTENT_ENCODING).map(str::to_owned);
    let result = match format {
        Err(e) => Err(e),
        Ok(f) => {
            handle(&st, &conn, &headers, body, |body, limits, charge| {
                let now = crate::clock::now_ns();
                otlp::decode(f, ce.as_deref(), body, limits, charge, now)
            })
            .await
        }
    };
    // Some records stored: a partial success. None stored and some refused: a 400.
    let result = result.and_then(|o| {
        if o.rejected > 0 && o.entries == 0 {
            o.all_stored()
        } else {
            Ok(o)
        }
    });
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => otlp::status(e),
    };
    st.metrics.push_done(status.as_u16(), start.elapsed());
    match result {
        Ok(o) => otlp::accepted(fmt, o.rejected, o.lines.join("\n")),
        Err(e) => {
            refused(&st, &conn, &e, status);
            otlp::refused(fmt, e)
        }
    }
}

fn conn_info(conn: Option<axum::Extension<ConnInfo>>) -> ConnInfo {
    conn.map(|c| c.0).unwrap_or_else(|| ConnInfo {
        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        client_names: Arc::new([]),
    })
}

fn refused(st: &PushState, conn: &ConnInfo, e: &PushError, status: StatusCode) {
    st.metrics.push_failed(e.reason());
    tracing::debug!(peer = %conn.peer, status = status.as_u16(), reason = e.reason(), "push refused");
}

/// What one push stored and what it refused.
#[derive(Debug, Default)]
struct Outcome {
    entries: usize,
    rejected: usize,
    /// The first refusals, one line each.
    lines: Vec<String>,
}

impl Outcome {
    /// Ok only if nothing was refused; else the 400 that lists the refusals.
    fn all_stored(self) -> Result<Outcome, PushError> {
        if self.rejected == 0 {
            return Ok(self);
        }
        Err(PushError::Rejected {
            stored: self.entries,
            total: self.rejected,
            lines: self.lines,
        })
    }
}

/// The push path both protocols share: a slot, credentials, the token's share of the
/// budget, the body within its limits, `decode` (which charges what it builds), validation,
/// enrichment, the token's rate, and the append, which returns once the entries are durable.
async fn handle<D>(
    st: &PushState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
    decode: D,
) -> Result<Outcome, PushError>
where
    D: FnOnce(Bytes, &Limits, &mut memory::Charge<'_>) -> Result<raw::Decoded, PushError>,
{
    let _permit = st.inflight.try_acquire().map_err(|_| PushError::Busy {
        msg: "too many pushes in flight; nothing was stored, retry".into(),
        retry_after: 1,
    })?;
    let who = auth::authenticate(headers, conn, &st.verifier, &st.throttle)
        .inspect_err(|e| st.metrics.auth_failed(e.reason()))?;
    let tenant = tenant(headers)?;
    let mut charge = st.memory.charge(&who.name)?;
    let body = read_body(body, headers, &st.limits, &mut charge)
        .await
        .inspect_err(|e| {
            if let PushError::BodyTooSlow { .. } = e {
                tracing::info!(peer = %conn.peer, token = %who.name, "push body too slow; cut off");
            }
        })?;
    let decoded = decode(body, &st.limits, &mut charge)?;
    commit(st, &who, tenant, decoded, &mut charge).await
}

/// What every protocol does with a decoded request: charge the copies validation and
/// encoding make, validate with the token's forced labels, enrich, take the token's rate,
/// and append, which returns once the entries are durable.
async fn commit(
    st: &PushState,
    who: &crate::token::Identity,
    tenant: String,
    decoded: raw::Decoded,
    charge: &mut memory::Charge<'_>,
) -> Result<Outcome, PushError> {
    charge.take_for_copies(decoded.raw_bytes)?;
    let mut checked = validate::check(decoded, &who.labels, &st.limits, crate::clock::now_ns());
    enrich::apply(&mut checked.streams);
    if checked.entries > 0 {
        st.rates.admit(&who.name, checked.entries, checked.bytes)?;
        let batch = Batch {
            source: who.name.to_string(),
            tenant,
            streams: checked.streams,
        };
        st.appender.append(batch).await?;
        let now = crate::clock::now_ns();
        who.touch(now);
        st.metrics
            .accepted(&who.name, checked.entries, checked.bytes, now);
    }
    if checked.rejected > 0 {
        st.metrics.rejected_entries(checked.rejected);
    }
    Ok(Outcome {
        entries: checked.entries,
        rejected: checked.rejected,
        lines: checked.reject_lines,
    })
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `X-Scope-OrgID`, recorded as the tenant; it grants nothing.
fn tenant(h: &HeaderMap) -> Result<String, PushError> {
    let Some(v) = h.get("x-scope-orgid") else {
        return Ok(String::new());
    };
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b);
    let bytes = v.as_bytes();
    if bytes.len() > MAX_TENANT_LEN
        || matches!(bytes, b"." | b"..")
        || !bytes.iter().all(|&b| ok_char(b))
    {
        return Err(PushError::BadRequest(format!(
            "invalid X-Scope-OrgID: use at most {MAX_TENANT_LEN} of a-z A-Z 0-9 ! - _ . * ' ( )"
        )));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads the body, refusing it as soon as it is known to be over the limit, taking each part
/// from `charge` before memory is reserved for it, and cutting off a body that arrives slower
/// than the minimum rate once its grace second is over.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limits: &Limits,
    charge: &mut memory::Charge<'_>,
) -> Result<Bytes, PushError> {
    let max = limits.max_body_bytes;
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(body_too_large(max));
    }
    let declared = declared.unwrap_or(0) as usize;
    charge.take(declared)?;
    let mut buf = Vec::with_capacity(declared);
    let collect = collect_body(body, &mut buf, limits, charge);
    match tokio::time::timeout(limits.body_timeout, collect).await {
        Err(_) => Err(PushError::BodyTimeout(limits.body_timeout.as_secs())),
        Ok(result) => result.map(|()| Bytes::from(buf)),
    }
}

fn body_too_large(max: usize) -> PushError {
    PushError::TooLarge(format!(
        "request body too large: over the limit of {max} bytes (limits.max_body_bytes)"
    ))
}

/// The frames of `body` into `buf`, whose capacity is always charged.
async fn collect_body(
    mut body: Body,
    buf: &mut Vec<u8>,
    limits: &Limits,
    charge: &mut memory::Charge<'_>,
) -> Result<(), PushError> {
    let max = limits.max_body_bytes;
    let rate = limits.min_body_bytes_per_second;
    let started = tokio::time::Instant::now();
    let mut taken = buf.capacity();
    loop {
        let frame = if rate == 0 {
            body.frame().await
        } else {
            // By time t, at least rate x (t - grace) bytes must have come.
            let due = started
                + BODY_RATE_GRACE
                + Duration::from_secs_f64((buf.len() as f64 + 1.0) / rate as f64);
            tokio::time::timeout_at(due, body.frame())
                .await
                .map_err(|_| PushError::BodyTooSlow { rate })?
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        let frame =
            frame.map_err(|e| PushError::BadRequest(format!("could not read the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > max {
            return Err(body_too_large(max));
        }
        if len > buf.capacity() {
            let want = len.max(buf.capacity().saturating_mul(2)).min(max);
            if want > taken {
                charge.take(want - taken)?;
                taken = want;
            }
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
}
