//! Every way a push can fail, and the one place each becomes a status.
//!
//! Agents (Alloy, promtail) retry 429, 5xx and connection errors and drop every other 4xx.
//! So: permanent client mistakes are 400/401/413/422 (retrying cannot help); anything that
//! may pass later is 429 or 503 with `Retry-After`; 5xx is used only when nothing of the
//! request was stored, so a retry cannot duplicate entries. Bodies are plain text, one
//! problem per line, as Loki writes them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::append::AppendError;

/// Rejected entries listed in a 400 body; the rest are counted.
pub const MAX_LISTED_REJECTS: usize = 100;

/// Longest listed rejection: a message quotes the stream's labels and sometimes a value,
/// which a client can make megabytes long; past this the line is cut, so a 400 body stays
/// under about 100 KiB however the request was built.
pub const MAX_REJECT_LINE_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// No or unusable credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Too many failed authentications from this peer.
    #[error("too many failed authentication attempts from this address; retry in {0} s")]
    AuthThrottled(u64),
    /// The body cannot be decoded at all; nothing was stored.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over a size limit; nothing was stored.
    #[error("{0}")]
    TooLarge(String),
    /// The body's media type is not one the endpoint takes; nothing was stored.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request holds no stream at all.
    #[error("error at least one valid stream is required for ingestion")]
    NoStreams,
    /// Some or all entries were invalid; the valid ones (`stored`) are durable.
    #[error("{}", rejected_text(.stored, .total, .lines))]
    Rejected {
        stored: usize,
        total: usize,
        lines: Vec<String>,
    },
    /// The token is over its rate; nothing was stored.
    #[error("{msg}")]
    RateLimited { msg: String, retry_after: u64 },
    /// The server is at a capacity bound (writer queue, in-flight requests); nothing was stored.
    #[error("{msg}")]
    Busy { msg: String, retry_after: u64 },
    /// The body did not arrive in time; nothing was stored.
    #[error("request body not received within {0} s")]
    BodyTimeout(u64),
    /// The body trickled in slower than the minimum rate; nothing was stored.
    #[error(
        "request body arrived slower than {rate} bytes/s (limits.min_body_bytes_per_second); \
         cut off, nothing was stored"
    )]
    BodyTooSlow { rate: u64 },
    /// The disk is full; nothing was stored.
    #[error("the ledger's disk is full; nothing was stored, retry later")]
    DiskFull,
    /// Free space is below the reserve kept for seals; nothing was stored.
    #[error(
        "the ledger's disk is nearly full (free space below the reserve kept for seals); nothing was stored, retry later"
    )]
    LowSpace,
    /// The server is shutting down; nothing was stored.
    #[error("the server is shutting down; nothing was stored, retry later")]
    Closing,
    /// The ledger failed to commit; nothing was stored. The cause is logged, not sent.
    #[error("internal error: nothing was stored, retry later")]
    Storage(String),
}

fn rejected_text(stored: &usize, total: &usize, lines: &[String]) -> String {
    let mut out = lines.join("\n");
    if *total > lines.len() {
        out.push_str(&format!("\n... and {} more", total - lines.len()));
    }
    out.push_str(&format!(
        "\ntotal rejected: {total} entries; {stored} valid entries of the request were stored"
    ));
    out
}

impl From<AppendError> for PushError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Pushback(why) => PushError::Busy {
                msg: format!("the ledger writer is busy ({why}); nothing was stored, retry"),
                retry_after: 1,
            },
            AppendError::Closed => PushError::Closing,
            AppendError::DiskFull => PushError::DiskFull,
            AppendError::LowSpace => PushError::LowSpace,
            AppendError::Invalid { index, reason } => {
                PushError::BadRequest(format!("entry {index} cannot be stored: {reason}"))
            }
            AppendError::Storage(cause) => PushError::Storage(cause),
        }
    }
}

impl PushError {
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PushError::BadRequest(_) | PushError::Rejected { .. } => StatusCode::BAD_REQUEST,
            PushError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PushError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PushError::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            PushError::NoStreams => StatusCode::UNPROCESSABLE_ENTITY,
            PushError::AuthThrottled(_) | PushError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            PushError::Busy { .. } | PushError::BodyTimeout(_) | PushError::Closing => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PushError::DiskFull | PushError::LowSpace => StatusCode::INSUFFICIENT_STORAGE,
            PushError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for retryable statuses.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            PushError::AuthThrottled(s) => Some(*s),
            PushError::RateLimited { retry_after, .. } | PushError::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            PushError::BodyTimeout(_) | PushError::Closing => Some(1),
            PushError::DiskFull | PushError::LowSpace => Some(30),
            PushError::Storage(_) => Some(5),
            _ => None,
        }
    }

    /// A short name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::Unauthorized(_) => "unauthorized",
            PushError::AuthThrottled(_) => "auth_throttled",
            PushError::BadRequest(_) => "bad_request",
            PushError::TooLarge(_) => "too_large",
            PushError::UnsupportedMediaType(_) => "unsupported_media_type",
            PushError::NoStreams => "no_streams",
            PushError::Rejected { .. } => "invalid_entries",
            PushError::RateLimited { .. } => "rate_limited",
            PushError::Busy { .. } => "busy",
            PushError::BodyTimeout(_) => "body_timeout",
            PushError::BodyTooSlow { .. } => "body_too_slow",
            PushError::DiskFull => "disk_full",
            PushError::LowSpace => "disk_reserve",
            PushError::Closing => "closing",
            PushError::Storage(_) => "storage",
        }
    }
}

impl PushError {
    /// Logs what the client is not told: the cause of a failed commit.
    pub fn log_cause(&self) {
        if let PushError::Storage(cause) = self {
            tracing::error!(%cause, "push: the ledger could not commit");
        }
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        self.log_cause();
        let status = self.status();
        let retry = self.retry_after();
        let mut resp = (status, format!("{self}\n")).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(s) = retry {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
