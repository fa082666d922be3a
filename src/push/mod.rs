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

use crate::metrics::Metrics;
use crate::store::append::{Appender, Batch};
use crate::token::Verifier;

/// Compressed body size limit. Alloy and promtail send batches of about 1 MiB; Loki allows
/// 100 MiB, which a small box cannot hold for many clients at once. Key `limits.max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Decompressed body size limit, checked before inflating: 16 times an agent's 1 MiB batch,
/// and small enough that the largest request fits in one token's share of the budget.
/// Key `limits.max_decompressed_bytes`.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 16 << 20;
/// Entries in one request, counted on the wire before decoding, since a tiny encoded entry
/// costs ~100 bytes decoded. Alloy's 1 MiB batches hold a few thousand.
/// Key `limits.max_entries_per_request`.
pub const DEFAULT_MAX_ENTRIES_PER_REQUEST: usize = 100_000;
/// Streams in one request, counted on the wire (protobuf) or as they are read (JSON) before
/// they are kept: an empty stream is two bytes on the wire and hundreds once decoded. An
/// agent's batch holds one stream per label set it saw, rarely a thousand.
/// Key `limits.max_streams_per_request`.
pub const DEFAULT_MAX_STREAMS_PER_REQUEST: usize = 20_000;
/// Slowest a body may arrive, on average from the end of its first second: a body that
/// trickles slower is cut off (408), so slow uploads cannot hold the budget and the push
/// slots. A 1 MiB agent batch (a few hundred KiB compressed) at this rate still arrives well
/// inside the body timeout. Key `limits.min_body_bytes_per_second` (0 = no minimum).
pub const DEFAULT_MIN_BODY_BYTES_PER_SECOND: u64 = 16 << 10;
/// How long a body may take to start before the minimum rate applies.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(1);
/// Pushes decoded or waiting for durability at once; beyond it, 503 at once instead of a
/// growing queue. Bounds the memory of request bodies. Key `limits.max_inflight_pushes`.
pub const DEFAULT_MAX_INFLIGHT_PUSHES: usize = 64;
/// Loki's `max_line_size`: 256 KB. Key `limits.max_line_size`.
pub const DEFAULT_MAX_LINE_SIZE: usize = 256 * 1024;
/// Loki's `max_label_names_per_series`. Key `limits.max_label_names_per_series`.
pub const DEFAULT_MAX_LABEL_NAMES: usize = 15;
/// Loki's `max_label_name_length`. Key `limits.max_label_name_length`.
pub const DEFAULT_MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Loki's `max_label_value_length`. Key `limits.max_label_value_length`.
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: usize = 2048;
/// Loki's `max_structured_metadata_size`: 64 KB. Key `limits.max_structured_metadata_size`.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 64 * 1024;
/// Loki's `max_structured_metadata_entries_count`.
/// Key `limits.max_structured_metadata_entries_count`.
pub const DEFAULT_MAX_METADATA_ENTRIES: usize = 128;
/// Loki's `creation_grace_period`: entries stamped further in the future are refused.
/// Key `limits.creation_grace_period`.
pub const DEFAULT_CREATION_GRACE: Duration = Duration::from_secs(600);
/// Entries per second one token may push, sustained: far above a host's security logs, low
/// enough that one rooted host cannot take the sink's whole capacity.
/// Key `limits.token_entries_per_second` (0 = unlimited).
pub const DEFAULT_TOKEN_ENTRIES_PER_SECOND: u64 = 20_000;
/// Bytes of lines and metadata per second one token may push, sustained.
/// Key `limits.token_bytes_per_second` (0 = unlimited).
pub const DEFAULT_TOKEN_BYTES_PER_SECOND: u64 = 16 << 20;
/// Seconds of the rate a token may push at once (the bucket size), so an agent can catch up
/// after an outage. Key `limits.token_burst_seconds`.
pub const DEFAULT_TOKEN_BURST_SECONDS: u64 = 10;
/// Failed authentications per minute from one address before it is refused unchecked.
/// Key `limits.auth_failures_per_minute` (0 = no throttle).
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;
/// Longest accepted `X-Scope-OrgID`, as Loki.
pub const MAX_TENANT_LEN: usize = 150;

/// Every bound on what one push may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_entries_per_request: usize,
    pub max_streams_per_request: usize,
    pub max_inflight_pushes: usize,
    /// Bytes all pushes in flight may hold together ([`memory`]).
    pub max_inflight_bytes: usize,
    /// Bytes one token's pushes in flight may hold together.
    pub token_max_inflight_bytes: usize,
    /// Pushes one token may have in flight at once.
    pub token_max_inflight_pushes: usize,
    /// Slowest average body rate after [`BODY_RATE_GRACE`]; 0 = none.
    pub min_body_bytes_per_second: u64,
    pub max_line_size: usize,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_metadata_bytes: usize,
    pub max_metadata_entries: usize,
    pub creation_grace: Duration,
    pub token_entries_per_second: u64,
    pub token_bytes_per_second: u64,
    pub token_burst_seconds: u64,
    pub auth_failures_per_minute: u32,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
}

/// A client must send the whole body within this. Alloy gives a request 10 s in all.
/// Key `push.body_timeout`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_entries_per_request: DEFAULT_MAX_ENTRIES_PER_REQUEST,
            max_streams_per_request: DEFAULT_MAX_STREAMS_PER_REQUEST,
            max_inflight_pushes: DEFAULT_MAX_INFLIGHT_PUSHES,
            max_inflight_bytes: memory::DEFAULT_MAX_INFLIGHT_BYTES,
            token_max_inflight_bytes: memory::DEFAULT_TOKEN_MAX_INFLIGHT_BYTES,
            token_max_inflight_pushes: memory::DEFAULT_TOKEN_MAX_INFLIGHT_PUSHES,
            min_body_bytes_per_second: DEFAULT_MIN_BODY_BYTES_PER_SECOND,
            max_line_size: DEFAULT_MAX_LINE_SIZE,
            max_label_names_per_series: DEFAULT_MAX_LABEL_NAMES,
            max_label_name_length: DEFAULT_MAX_LABEL_NAME_LENGTH,
            max_label_value_length: DEFAULT_MAX_LABEL_VALUE_LENGTH,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_metadata_entries: DEFAULT_MAX_METADATA_ENTRIES,
            creation_grace: DEFAULT_CREATION_GRACE,
            token_entries_per_second: DEFAULT_TOKEN_ENTRIES_PER_SECOND,
            token_bytes_per_second: DEFAULT_TOKEN_BYTES_PER_SECOND,
            token_burst_seconds: DEFAULT_TOKEN_BURST_SECONDS,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

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
