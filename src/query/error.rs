//! The read plane's one error type and its mapping to HTTP statuses.
//!
//! Owns: [`QueryError`] and the one place where each kind becomes a status and a plain-text
//! body, in Loki's words, for every answer of the query module (404, 405, the 429s with
//! `Retry-After`, 504). Who may ask (read tokens, their shares) is the server's, and maps
//! its own statuses there.
//!
//! Must not: leak internal detail (paths, SQL) into a body; those are logged once instead.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::logql::ParseError;
use crate::store::StoreError;

/// Loki's text for a query that ran out of time.
pub const TIMEOUT_TEXT: &str = "request timed out, decrease the duration of the request or add \
                                more label matchers (prefer exact match over regex match) to \
                                reduce the amount of data processed";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request or its query is wrong; retrying it gives the same answer.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A method other than GET or POST.
    #[error("405 method not allowed: the read API takes GET and POST")]
    MethodNotAllowed,
    #[error("{TIMEOUT_TEXT}")]
    Timeout,
    /// Too many queries at once; retry later.
    #[error("too many outstanding requests")]
    Busy,
    /// Every live-tail slot is taken; retry later.
    #[error("max concurrent tail requests limit exceeded")]
    TooManyTails,
    /// Storage failed; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl From<ParseError> for QueryError {
    fn from(e: ParseError) -> Self {
        QueryError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for QueryError {
    fn from(e: StoreError) -> Self {
        QueryError::Internal(e.to_string())
    }
}

impl QueryError {
    pub fn bad(msg: impl Into<String>) -> QueryError {
        QueryError::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            QueryError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            QueryError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            QueryError::Busy | QueryError::TooManyTails => StatusCode::TOO_MANY_REQUESTS,
            QueryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        if let QueryError::Internal(detail) = &self {
            tracing::error!(error = %detail, "query failed");
        }
        let mut body = self.to_string();
        body.push('\n');
        let mut resp = (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
        if matches!(self, QueryError::Busy | QueryError::TooManyTails) {
            // Momentary: every slot is taken. Clients may retry after a second.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}
