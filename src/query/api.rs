//! The read endpoints, with GET and POST alike.
//!
//! Owns: reading parameters of the endpoint [`routes`](super::routes) names, running the query
//! on a blocking thread under the concurrency limit and deadline, and writing Loki's response.
//!
//! Must not: change data; every endpoint here only reads.

use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::encode::{self, Envelope, QueryData, json_response};
use super::engine::{Budget, Engine, LogEntry};
use super::error::QueryError;
use super::logql::{self, Expr};
use super::params::{self, MAX_FORM_BYTES, Params};
use super::routes::{Endpoint, endpoint};
use super::{Audit, QueryState, info, metric, tail, volume};
use crate::clock::now_ns;
use crate::store::Order;

/// A form body must arrive within this: a slow client cannot hold a connection open.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The fallback handler: finds the endpoint and answers it.
pub async fn dispatch(State(st): State<QueryState>, req: Request) -> Response {
    let Some(ep) = endpoint(req.uri().path()) else {
        return QueryError::NotFound("404 page not found".into()).into_response();
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        return QueryError::MethodNotAllowed.into_response();
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
        Endpoint::BuildInfo => Ok(json_response(info::build_info(), Audit::default())),
        Endpoint::DrilldownLimits => Ok(json_response(
            super::drilldown::limits(&st.engine.limits),
            Audit::default(),
        )),
        Endpoint::NoRules => Err(QueryError::NotFound("no rule groups found".into())),
        Endpoint::PromRules => Ok(json_response(
            json!({"status": "success", "data": {"groups": []}}),
            Audit::default(),
        )),
        Endpoint::PromAlerts => Ok(json_response(
            json!({"status": "success", "data": {"alerts": []}}),
            Audit::default(),
        )),
        Endpoint::FormatQuery => Ok(info::format_query(&p)),
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
