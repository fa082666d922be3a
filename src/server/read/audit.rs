//! The record of every read: each request on a read listener is appended to
//! `{__daftari__="audit"}` (principal, listener, endpoint, query, time range, result count,
//! status, duration) before its answer is sent. A read that cannot be recorded is not
//! answered ([`super::Refusal::NotRecorded`]).
//!
//! Must not: hold up a request beyond the append of its record, or record a secret (the
//! principal is the token's name).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Principal, Refusal};
use crate::clock::{now_ns, rfc3339};
use crate::metrics::Metrics;
use crate::query::Audit;
use crate::store::{Appender, Batch, NewEntry, Pairs, Stream};

/// The reserved stream of read records.
pub const AUDIT_LABEL: (&str, &str) = ("__daftari__", "audit");
/// The `source` of read records.
pub const AUDIT_SOURCE: &str = "daftari";
/// Longest query text kept in a read record; longer ones are cut (and say so).
const AUDIT_MAX_QUERY: usize = 4096;

#[derive(Debug, Clone)]
pub(super) struct AuditState {
    pub appender: Appender,
    pub listener: &'static str,
    pub metrics: Arc<Metrics>,
}

pub(super) async fn audit(State(st): State<AuditState>, req: Request, next: Next) -> Response {
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
            Refusal::NotRecorded.into_response()
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
