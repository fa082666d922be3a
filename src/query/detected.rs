//! Logs Drilldown's field and label discovery: `detected_fields`,
//! `detected_field/<name>/values` and `detected_labels`, computed as Loki computes them.
//!
//! Owns: running the request's log query (newest `line_limit` lines, as Loki does), reading
//! each line's fields (structured metadata; the query's own parsed labels; then the line
//! parsed as a JSON object, or else as logfmt), their types (int, float, boolean, duration,
//! bytes, string: the type of the last value seen), distinct counts, parsers and JSON paths;
//! and for labels, each stream label's distinct values with Loki's filter on ID-like ones.
//!
//! Must not: change data; a field's count is exact (Loki estimates it with a sketch, which is
//! exact at Drilldown's sizes).

use std::collections::{BTreeMap, BTreeSet};

use axum::response::Response;
use serde_json::{Value, json};

use super::Audit;
use super::encode::json_response;
use super::engine::{Budget, Engine, LogEntry};
use super::error::QueryError;
use super::logql::{self, Expr};
use super::params::Params;
use super::pipeline::parsers::json_leaves;
use super::pipeline::sanitize;
use super::value::Cat;
use crate::clock::now_ns;
use crate::store::Order;

/// Lines read when the request names no `line_limit`: Grafana's default.
const DEFAULT_LINE_LIMIT: usize = 1000;
/// Fields or values answered when the request names no limit.
const DEFAULT_LIMIT: usize = 1000;
/// Labels Loki keeps even when their values look like IDs.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];

#[derive(Default)]
struct Field {
    values: BTreeSet<String>,
    kind: &'static str,
    parsers: Vec<&'static str>,
    json_path: Option<Vec<String>>,
}

/// `detected_fields`, or the values of one field when `name` is given.
pub fn fields(
    engine: &Engine,
    budget: Budget,
    p: &Params,
    name: Option<&str>,
) -> Result<Response, QueryError> {
    let q = p.query()?;
    let log = match logql::parse(q)? {
        Expr::Log(l) => l,
        Expr::Metric(_) => return Err(QueryError::bad("only log queries are supported")),
    };
    let (start, end) = p.bounds(now_ns())?;
    let line_limit = number(p, "line_limit", DEFAULT_LINE_LIMIT)?.min(engine.limits.max_entries);
    let limit = match p.get("limit") {
        Some(_) => number(p, "limit", DEFAULT_LIMIT)?,
        None => number(p, "field_limit", DEFAULT_LIMIT)?,
    };
    let (entries, _) = engine.logs(&log, (start, end), line_limit, Order::Backward, budget)?;
    let found = detect(&entries, limit);
    let audit = Audit {
        query: q.to_owned(),
        start_ns: Some(start),
        end_ns: Some(end),
        results: found.len() as u64,
    };
    let body = match name {
        Some(n) => {
            let values: Vec<&String> = found
                .get(n)
                .map(|f| f.values.iter().take(limit).collect())
                .unwrap_or_default();
            if values.is_empty() {
                json!({})
            } else {
                json!({"values": values, "limit": limit})
            }
        }
        None if found.is_empty() => json!({}),
        None => {
            let list: Vec<Value> = found.iter().map(|(k, f)| field_json(k, f)).collect();
            json!({"fields": list, "limit": limit})
        }
    };
    Ok(json_response(body, audit))
}

fn field_json(label: &str, f: &Field) -> Value {
    let mut v = json!({
        "label": label,
        "type": f.kind,
        "cardinality": f.values.len(),
        "parsers": if f.parsers.is_empty() { Value::Null } else { json!(f.parsers) },
    });
    if let Some(path) = &f.json_path {
        v["jsonPath"] = json!(path);
    }
    v
}

fn number(p: &Params, key: &str, default: usize) -> Result<usize, QueryError> {
    match p.get(key) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n),
            Err(_) => Err(QueryError::bad(format!("invalid {key} parameter: {s:?}"))),
        },
    }
}

/// The fields of `entries`, at most `limit` of them (the first found).
fn detect(entries: &[LogEntry], limit: usize) -> BTreeMap<String, Field> {
    let mut out: BTreeMap<String, Field> = BTreeMap::new();
    let add = |out: &mut BTreeMap<String, Field>,
               name: String,
               value: String,
               parser: Option<&'static str>,
               path: Option<Vec<String>>| {
        if !out.contains_key(&name) && out.len() >= limit {
            return;
        }
        let f = out.entry(name).or_default();
        if let Some(p) = parser
            && !f.parsers.contains(&p)
        {
            f.parsers.push(p);
        }
        if path.is_some() {
            f.json_path = path;
        }
        f.kind = kind_of(&value);
        f.values.insert(value);
    };
    for e in entries {
        let mut stream = BTreeSet::new();
        for (k, v, cat) in e.labels.iter() {
            match cat {
                Cat::Stream => {
                    stream.insert(k.to_owned());
                }
                Cat::Meta => add(&mut out, k.to_owned(), v.to_owned(), None, None),
                Cat::Parsed if k.starts_with("__error") => {}
                Cat::Parsed => add(&mut out, k.to_owned(), v.to_owned(), None, None),
            }
        }
        let taken = |k: &str| {
            if stream.contains(k) {
                format!("{k}_extracted")
            } else {
                k.to_owned()
            }
        };
        match json_fields(&e.line) {
            Some(fields) => {
                for (path, v) in fields {
                    let name = taken(&sanitize(&path.join("_")));
                    add(&mut out, name, v, Some("json"), Some(path));
                }
            }
            None => {
                let (pairs, _) = crate::logfmt::pairs(&e.line, false);
                for (k, v) in pairs {
                    let name = sanitize(&k);
                    match v {
                        Some(v) if !name.is_empty() => {
                            add(&mut out, taken(&name), v, Some("logfmt"), None)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

/// A JSON object line's scalar fields with their paths (as `| json` reads them); `None` when
/// the line is no object.
fn json_fields(line: &str) -> Option<Vec<(Vec<String>, String)>> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.as_object()?;
    let mut out = Vec::new();
    json_leaves(&v, &mut |path, value| {
        out.push((path.iter().map(|k| (*k).to_owned()).collect(), value));
    });
    Some(out)
}

/// Loki's type of a value: the first of int, float, boolean, duration, bytes that parses.
fn kind_of(v: &str) -> &'static str {
    use super::logql::{parse_bytes, parse_duration};
    if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() && !v.eq_ignore_ascii_case("nan") && !v.contains("inf") {
        "float"
    } else if matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    ) {
        "boolean"
    } else if parse_duration(v).is_some() {
        "duration"
    } else if parse_bytes(v).is_some() {
        "bytes"
    } else {
        "string"
    }
}

/// `detected_labels`: each stream label of the matching streams with its number of distinct
/// values, leaving out labels whose values all look like IDs (numbers or UUIDs) or that
/// hold only `0`/`1`, except Loki's static labels.
pub fn labels(engine: &Engine, p: &Params) -> Result<Response, QueryError> {
    let (start, end) = p.bounds(now_ns())?;
    let (q, matchers) = match p.get("query") {
        None | Some("") => (String::new(), Vec::new()),
        Some(q) => (q.to_owned(), logql::parse_selector(q)?),
    };
    let mut list = Vec::new();
    for name in engine.label_names(&matchers, start, end + 1)? {
        if name.starts_with("__") {
            continue;
        }
        let values = engine.label_values(&name, &matchers, start, end + 1)?;
        if STATIC_LABELS.contains(&name.as_str()) || !reject(&values) {
            list.push(json!({"label": name, "cardinality": values.len()}));
        }
    }
    let audit = Audit {
        query: q,
        start_ns: Some(start),
        end_ns: Some(end),
        results: list.len() as u64,
    };
    Ok(json_response(json!({"detectedLabels": list}), audit))
}

fn reject(values: &[String]) -> bool {
    let id = |v: &String| v.parse::<f64>().is_ok() || is_uuid(v);
    if values.is_empty() {
        return true;
    }
    // At most two values, all `0`/`1`: a flag, kept.
    if values.len() <= 2 && values.iter().all(|v| v == "0" || v == "1") {
        return false;
    }
    values.iter().all(id)
}

fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
