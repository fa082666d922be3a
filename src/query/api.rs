//! The read endpoints, found by path suffix, with GET and POST alike.
//!
//! Owns: matching a path to an endpoint, reading parameters, running the query on a blocking
//! thread under the concurrency limit and deadline, and writing Loki's response.
//!
//! Must not: change data; every endpoint here only reads.

use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::encode::{self, Envelope, QueryData};
use super::engine::{Budget, Engine, LogEntry};
use super::error::QueryError;
use super::logql::{self, Expr};
use super::params::{self, MAX_FORM_BYTES, Params};
use super::{Audit, QueryState, metric, tail, volume};
use crate::clock::now_ns;
use crate::store::Order;

/// A form body must arrive within this: a slow client cannot hold a connection open.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The endpoints of the read API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Query,
    QueryRange,
    Labels,
    LabelValues(String),
    Series,
    IndexStats,
    Volume,
    VolumeRange,
    BuildInfo,
    DrilldownLimits,
    DetectedLabels,
    DetectedFields,
    DetectedFieldValues(String),
    Patterns,
    FormatQuery,
    Tail,
    /// The ruler's YAML endpoints: no rule groups.
    NoRules,
    PromRules,
    PromAlerts,
    Ready,
}

fn endpoint(path: &str) -> Option<Endpoint> {
    if let Some(i) = path.find("/loki/api/v1/") {
        let rest = &path[i + "/loki/api/v1/".len()..];
        return Some(match rest {
            "query" => Endpoint::Query,
            "query_range" => Endpoint::QueryRange,
            "labels" | "label" => Endpoint::Labels,
            "series" => Endpoint::Series,
            "index/stats" => Endpoint::IndexStats,
            "index/volume" => Endpoint::Volume,
            "index/volume_range" => Endpoint::VolumeRange,
            "status/buildinfo" => Endpoint::BuildInfo,
            "format_query" => Endpoint::FormatQuery,
            "tail" => Endpoint::Tail,
            "drilldown-limits" => Endpoint::DrilldownLimits,
            "detected_labels" => Endpoint::DetectedLabels,
            "detected_fields" => Endpoint::DetectedFields,
            "patterns" => Endpoint::Patterns,
            r if r.starts_with("detected_field/") => {
                let name = r.strip_prefix("detected_field/")?.strip_suffix("/values")?;
                Endpoint::DetectedFieldValues(percent_decode(name)?)
            }
            "rules" => Endpoint::NoRules,
            r if r.starts_with("rules/") => Endpoint::NoRules,
            r => {
                let name = r.strip_prefix("label/")?.strip_suffix("/values")?;
                Endpoint::LabelValues(percent_decode(name)?)
            }
        });
    }
    if path.ends_with("/prometheus/api/v1/rules") {
        return Some(Endpoint::PromRules);
    }
    if path.ends_with("/prometheus/api/v1/alerts") {
        return Some(Endpoint::PromAlerts);
    }
    if path.ends_with("/api/v1/status/buildinfo") {
        return Some(Endpoint::BuildInfo);
    }
    if path.ends_with("/api/prom/rules") || path.contains("/api/prom/rules/") {
        return Some(Endpoint::NoRules);
    }
    if path == "/ready" || path.ends_with("/ready") {
        return Some(Endpoint::Ready);
    }
    None
}

/// The fixed name of the endpoint `path` reaches, for metrics (never the path itself, whose
/// prefix and label names come from the client).
pub fn endpoint_name(path: &str) -> &'static str {
    match endpoint(path) {
        Some(Endpoint::Query) => "query",
        Some(Endpoint::QueryRange) => "query_range",
        Some(Endpoint::Labels) => "labels",
        Some(Endpoint::LabelValues(_)) => "label_values",
        Some(Endpoint::Series) => "series",
        Some(Endpoint::IndexStats) => "index_stats",
        Some(Endpoint::Volume) => "index_volume",
        Some(Endpoint::VolumeRange) => "index_volume_range",
        Some(Endpoint::BuildInfo) => "buildinfo",
        Some(Endpoint::DrilldownLimits) => "drilldown_limits",
        Some(Endpoint::DetectedLabels) => "detected_labels",
        Some(Endpoint::DetectedFields) => "detected_fields",
        Some(Endpoint::DetectedFieldValues(_)) => "detected_field_values",
        Some(Endpoint::Patterns) => "patterns",
        Some(Endpoint::FormatQuery) => "format_query",
        Some(Endpoint::Tail) => "tail",
        Some(Endpoint::NoRules | Endpoint::PromRules | Endpoint::PromAlerts) => "rules",
        Some(Endpoint::Ready) => "ready",
        None => "unknown",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The fallback handler: finds the endpoint and answers it.
pub async fn dispatch(State(st): State<QueryState>, req: Request) -> Response {
    let Some(ep) = endpoint(req.uri().path()) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "405 method not allowed: the read API takes GET and POST\n",
        )
            .into_response();
    }
    match answer(st, ep, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(st: QueryState, ep: Endpoint, req: Request) -> Result<Response, QueryError> {
    let (mut parts, body) = req.into_parts();
    if ep == Endpoint::Tail {
        // Parameters are checked before the upgrade, so mistakes get a plain-text 400.
        let p = Params::parse(parts.uri.query(), None)?;
        let req = tail::TailRequest::new(&p, &parts.headers)?;
        let ws = axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &st)
            .await
            .map_err(|e| QueryError::bad(e.body_text()))?;
        let share = parts
            .extensions
            .get::<super::TailShare>()
            .and_then(|s| s.take());
        return Ok(tail::start(st, req, ws, share));
    }
    let form = read_form(&parts.headers, body).await?;
    let p = Params::parse(parts.uri.query(), form.as_deref())?;
    match ep {
        Endpoint::Ready => Ok((StatusCode::OK, "ready\n").into_response()),
        Endpoint::BuildInfo => Ok(json_response(build_info(), Audit::default())),
        Endpoint::DrilldownLimits => Ok(json_response(
            super::drilldown::limits(&st.engine.limits),
            Audit::default(),
        )),
        Endpoint::NoRules => Ok((StatusCode::NOT_FOUND, "no rule groups found\n").into_response()),
        Endpoint::PromRules => Ok(json_response(
            json!({"status": "success", "data": {"groups": []}}),
            Audit::default(),
        )),
        Endpoint::PromAlerts => Ok(json_response(
            json!({"status": "success", "data": {"alerts": []}}),
            Audit::default(),
        )),
        Endpoint::FormatQuery => Ok(format_query(&p)),
        _ => {
            let categorize = params::categorize(&parts.headers);
            run_blocking(st, move |engine, budget| {
                blocking(engine, budget, ep, &p, categorize)
            })
            .await
        }
    }
}

async fn read_form(headers: &HeaderMap, body: Body) -> Result<Option<Vec<u8>>, QueryError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
    let read = tokio::time::timeout(FORM_TIMEOUT, to_bytes(body, MAX_FORM_BYTES));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(QueryError::bad(format!(
                "request body over {MAX_FORM_BYTES} bytes or unreadable"
            )));
        }
        Err(_) => return Err(QueryError::bad("request body not received in time")),
    };
    Ok(Some(bytes.to_vec()))
}

/// Runs `f` on a blocking thread once a query slot is free (429 if none frees up before the
/// deadline).
pub async fn run_blocking<F>(st: QueryState, f: F) -> Result<Response, QueryError>
where
    F: FnOnce(&Engine, Budget) -> Result<Response, QueryError> + Send + 'static,
{
    let timeout = st.engine.limits.timeout;
    let budget = st.engine.budget();
    let permit = tokio::time::timeout(timeout, st.slots.clone().acquire_owned())
        .await
        .map_err(|_| QueryError::Busy)?
        .map_err(|_| QueryError::Busy)?;
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::failpoint::pause(crate::failpoint::at::QUERY_IN_SLOT);
        f(&engine, budget)
    })
    .await
    .map_err(|e| QueryError::Internal(format!("query task failed: {e}")))?
}

fn blocking(
    engine: &Engine,
    budget: Budget,
    ep: Endpoint,
    p: &Params,
    categorize: bool,
) -> Result<Response, QueryError> {
    let now = now_ns();
    match ep {
        Endpoint::Query => instant(engine, budget, p),
        Endpoint::QueryRange => range(engine, budget, p, categorize),
        Endpoint::Labels => {
            let (start, end) = p.bounds(now)?;
            let (q, m) = selector(p)?;
            let mut names = engine.label_names(&m, start, end + 1)?;
            // Names that start with `__` are reserved for internal use (daftari's own audit
            // and admin streams carry `__daftari__`): the label browser lists them only when
            // the selector names them, so those streams stay queryable explicitly.
            names.retain(|n| !n.starts_with("__") || m.iter().any(|x| x.name == *n));
            let audit = audit(q, start, end, names.len());
            Ok(json_response(Envelope::success(names), audit))
        }
        Endpoint::LabelValues(name) => {
            let (start, end) = p.bounds(now)?;
            let (q, m) = selector(p)?;
            let values = engine.label_values(&name, &m, start, end + 1)?;
            let audit = audit(q, start, end, values.len());
            Ok(json_response(Envelope::success(values), audit))
        }
        Endpoint::Series => {
            let (start, end) = p.bounds(now)?;
            let mut sels = Vec::new();
            let mut texts = Vec::new();
            for m in p.all("match[]").into_iter().chain(p.all("match")) {
                if m.trim().is_empty() || m.trim() == "{}" {
                    continue;
                }
                texts.push(m.to_owned());
                sels.push(logql::parse_selector(m)?);
            }
            let series = engine.series(&sels, start, end + 1)?;
            let audit = audit(texts.join(" "), start, end, series.len());
            Ok(json_response(Envelope::success(series), audit))
        }
        Endpoint::IndexStats => {
            let (start, end) = p.bounds(now)?;
            let q = p.query()?;
            let m = match logql::parse(q)? {
                Expr::Log(l) => l.matchers,
                Expr::Metric(_) => {
                    return Err(QueryError::bad("only label matchers are supported"));
                }
            };
            let st = engine.index_stats(&m, start, end + 1, budget)?;
            Ok(json_response(
                json!(st),
                audit(q.to_owned(), start, end, st.streams as usize),
            ))
        }
        Endpoint::Volume | Endpoint::VolumeRange => {
            volume::answer(engine, budget, p, ep == Endpoint::VolumeRange)
        }
        Endpoint::DetectedLabels => super::detected::labels(engine, p),
        Endpoint::Patterns => super::patterns::answer(engine, budget, p),
        Endpoint::DetectedFields => super::detected::fields(engine, budget, p, None),
        Endpoint::DetectedFieldValues(name) => {
            super::detected::fields(engine, budget, p, Some(&name))
        }
        _ => Err(QueryError::NotFound("404 page not found".into())),
    }
}

/// The optional `query` selector of the label endpoints.
fn selector(p: &Params) -> Result<(String, Vec<logql::ast::Matcher>), QueryError> {
    match p.get("query") {
        None => Ok((String::new(), Vec::new())),
        Some(q) if q.trim() == "{}" => Ok((q.to_owned(), Vec::new())),
        Some(q) => Ok((q.to_owned(), logql::parse_selector(q)?)),
    }
}

fn audit(query: String, start: i64, end: i64, results: usize) -> Audit {
    Audit {
        query,
        start_ns: Some(start),
        end_ns: Some(end),
        results: results as u64,
    }
}

fn instant(engine: &Engine, budget: Budget, p: &Params) -> Result<Response, QueryError> {
    let started = Instant::now();
    let q = p.query()?;
    let t = p.time("time", now_ns())?;
    p.direction()?;
    let m = match logql::parse(q)? {
        Expr::Metric(m) => m,
        Expr::Log(_) => {
            return Err(QueryError::bad(
                "log queries are not supported as an instant query type, please change your \
                 query to a range query type",
            ));
        }
    };
    let (v, stats) = metric::eval(engine, &m, &[t], budget)?;
    let (kind, result) = encode::instant(&v, t);
    let count = result.as_array().map_or(1, Vec::len);
    let body = Envelope::success(QueryData {
        result_type: kind,
        encoding_flags: None,
        result,
        stats: encode::stats(&stats, started.elapsed().as_secs_f64(), count),
    });
    Ok(json_response(body, audit(q.to_owned(), t, t, count)))
}

fn range(
    engine: &Engine,
    budget: Budget,
    p: &Params,
    categorize: bool,
) -> Result<Response, QueryError> {
    let started = Instant::now();
    let q = p.query()?;
    let (start, end) = p.bounds(now_ns())?;
    if end < start {
        return Err(QueryError::bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let step = p.step(start, end)?;
    let limit = p.limit()?;
    let order = p.direction()?;
    match logql::parse(q)? {
        Expr::Log(log) => {
            if limit > engine.limits.max_entries {
                return Err(QueryError::bad(format!(
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query \
                     ({limit} > {})",
                    engine.limits.max_entries
                )));
            }
            let (mut entries, stats) = engine.logs(&log, (start, end), limit, order, budget)?;
            if let Some(iv) = p.interval()? {
                entries = thin(entries, iv, order);
            }
            let n = entries.len();
            let body = Envelope::success(QueryData {
                result_type: "streams",
                encoding_flags: categorize.then(|| vec![params::CATEGORIZE_LABELS]),
                result: encode::streams(&entries, categorize),
                stats: encode::stats(&stats, started.elapsed().as_secs_f64(), n),
            });
            Ok(json_response(body, audit(q.to_owned(), start, end, n)))
        }
        Expr::Metric(m) => {
            let times = params::aligned_times(start, end, step);
            let (v, stats) = metric::eval(engine, &m, &times, budget)?;
            let result = encode::matrix(&v, &times);
            let n = result.as_array().map_or(0, Vec::len);
            let body = Envelope::success(QueryData {
                result_type: "matrix",
                encoding_flags: None,
                result,
                stats: encode::stats(&stats, started.elapsed().as_secs_f64(), n),
            });
            Ok(json_response(body, audit(q.to_owned(), start, end, n)))
        }
    }
}

/// `interval`: at most one entry per interval per stream, counted from the first returned.
fn thin(entries: Vec<LogEntry>, interval: i64, order: Order) -> Vec<LogEntry> {
    let mut last: std::collections::HashMap<Vec<(String, String)>, i64> = Default::default();
    entries
        .into_iter()
        .filter(|e| {
            let key: Vec<(String, String)> = e.labels.flat().into_iter().collect();
            let keep = match last.get(&key) {
                None => true,
                Some(&prev) => match order {
                    Order::Forward => e.ts_ns >= prev + interval,
                    Order::Backward => e.ts_ns <= prev - interval,
                },
            };
            if keep {
                last.insert(key, e.ts_ns);
            }
            keep
        })
        .collect()
}

fn format_query(p: &Params) -> Response {
    let text = p.get("query").unwrap_or("");
    match logql::parse(text) {
        Ok(e) => json_response(
            json!({"status": "success", "data": logql::pretty(&e)}),
            Audit::default(),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"status": "invalid-query", "error": e.to_string()}).to_string(),
        )
            .into_response(),
    }
}

/// The Loki version `status/buildinfo` claims: Grafana turns features on by it. 3.6.0 is the
/// release that added the newest read endpoint daftari serves (`drilldown-limits`, with
/// `patterns` by level and `detected_*`); nothing Grafana calls was added to the read API
/// after it.
pub const BUILD_VERSION: &str = concat!("3.6.0+daftari.", env!("CARGO_PKG_VERSION"));

fn build_info() -> Value {
    json!({
        "version": BUILD_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": ""
    })
}

/// A JSON answer, serialised in the field order of `body` (Grafana depends on it).
pub fn json_response(body: impl serde::Serialize, audit: Audit) -> Response {
    let text = match serde_json::to_string(&body) {
        Ok(t) => t,
        Err(e) => return QueryError::Internal(format!("encode response: {e}")).into_response(),
    };
    let mut r = (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response();
    r.extensions_mut().insert(audit);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_under_any_prefix() {
        assert_eq!(endpoint("/loki/api/v1/query"), Some(Endpoint::Query));
        assert_eq!(
            endpoint("/daftari/loki/api/v1/query_range"),
            Some(Endpoint::QueryRange)
        );
        assert_eq!(
            endpoint("/loki/api/v1/label/service%5Fname/values"),
            Some(Endpoint::LabelValues("service_name".into()))
        );
        assert_eq!(
            endpoint("/grafana/loki/api/v1/detected_labels"),
            Some(Endpoint::DetectedLabels)
        );
        assert_eq!(
            endpoint("/loki/api/v1/detected_field/status%5Fcode/values"),
            Some(Endpoint::DetectedFieldValues("status_code".into()))
        );
        assert_eq!(endpoint("/loki/api/v1/patterns"), Some(Endpoint::Patterns));
        assert_eq!(endpoint("/loki/api/v1/push"), None);
        assert_eq!(endpoint("/loki/api/v1/delete"), None);
        assert_eq!(
            endpoint("/x/prometheus/api/v1/rules"),
            Some(Endpoint::PromRules)
        );
    }
}
