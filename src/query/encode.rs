//! Loki's JSON response shapes: the envelope, streams in both encodings, matrix, vector and
//! scalar results, and the stats block.
//!
//! Owns: [`json_response`], the one way an answer is written; key order as Loki writes it (`resultType` and `encodingFlags` before `result`, which
//! Grafana's streaming parser needs), entry timestamps as strings of nanoseconds, sample
//! timestamps as numbers of seconds, sample values as strings, `[]` rather than `null`.
//!
//! Must not: evaluate anything.

use std::collections::BTreeMap;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::Audit;
use super::engine::{LogEntry, Stats};
use super::error::QueryError;
use super::metric::{Matrix, Val};
use super::value::{Cat, Series, format_float, format_sample_ts};

#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub data: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn success(data: T) -> Envelope<T> {
        Envelope {
            status: "success",
            warnings: Vec::new(),
            data,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct QueryData {
    #[serde(rename = "resultType")]
    pub result_type: &'static str,
    #[serde(rename = "encodingFlags", skip_serializing_if = "Option::is_none")]
    pub encoding_flags: Option<Vec<&'static str>>,
    pub result: Value,
    pub stats: Value,
}

/// Groups entries into result streams. Without categorisation a stream is every label of
/// the entry (stream labels, metadata and parsed labels merged) and entries are
/// `[ts, line]`; with it a stream is the stream labels only and every entry carries a third
/// element with its structured metadata and parsed labels.
pub fn streams(entries: &[LogEntry], categorize: bool) -> Value {
    let mut order: Vec<Series> = Vec::new();
    let mut groups: BTreeMap<Series, Vec<Value>> = BTreeMap::new();
    for e in entries {
        let key = if categorize {
            e.labels.of(Cat::Stream)
        } else {
            e.labels.flat()
        };
        let ts = e.ts_ns.to_string();
        let value = if categorize {
            let mut extra = serde_json::Map::new();
            let meta = e.labels.of(Cat::Meta);
            let parsed = e.labels.of(Cat::Parsed);
            if !meta.is_empty() {
                extra.insert("structuredMetadata".into(), json!(meta));
            }
            if !parsed.is_empty() {
                extra.insert("parsed".into(), json!(parsed));
            }
            json!([ts, e.line, extra])
        } else {
            json!([ts, e.line])
        };
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(value);
    }
    Value::Array(
        order
            .into_iter()
            .map(|k| {
                let values = groups.remove(&k).unwrap_or_default();
                json!({"stream": k, "values": values})
            })
            .collect(),
    )
}

/// A range query's metric result: always a matrix (a scalar becomes one unlabelled series).
pub fn matrix(v: &Val, times: &[i64]) -> Value {
    let m = match v {
        Val::Vector(m) => m,
        Val::Scalar(s) => {
            let values: Vec<Value> = times.iter().zip(s).map(|(t, v)| sample(*t, *v)).collect();
            return json!([{"metric": {}, "values": values}]);
        }
    };
    let mut per_series: Vec<Vec<Value>> = vec![Vec::new(); m.series.len()];
    for (k, points) in m.points.iter().enumerate() {
        for &(sid, v) in points {
            per_series[sid].push(sample(times[k], v));
        }
    }
    let mut out: Vec<(&Series, Vec<Value>)> = m
        .series
        .iter()
        .zip(per_series)
        .filter(|(_, v)| !v.is_empty())
        .collect();
    out.sort_by(|a, b| a.0.cmp(b.0));
    Value::Array(
        out.into_iter()
            .map(|(s, values)| json!({"metric": s, "values": values}))
            .collect(),
    )
}

/// An instant query's result: `("vector", [...])` or `("scalar", [t, "v"])`.
pub fn instant(v: &Val, t: i64) -> (&'static str, Value) {
    match v {
        // Loki writes a scalar's time in whole milliseconds, where vectors and matrices use
        // seconds; clients that read scalars (logcli, Grafana) expect exactly that.
        Val::Scalar(s) => (
            "scalar",
            json!([
                t.div_euclid(1_000_000),
                format_float(s.first().copied().unwrap_or(f64::NAN))
            ]),
        ),
        Val::Vector(m) => ("vector", vector(m, t)),
    }
}

fn vector(m: &Matrix, t: i64) -> Value {
    let mut points: Vec<(usize, f64)> = m.points.first().cloned().unwrap_or_default();
    match m.sort {
        Some(desc) => points.sort_by(|a, b| {
            let o = a.1.total_cmp(&b.1);
            if desc { o.reverse() } else { o }
        }),
        None => points.sort_by(|a, b| m.series[a.0].cmp(&m.series[b.0])),
    }
    Value::Array(
        points
            .into_iter()
            .map(|(sid, v)| json!({"metric": m.series[sid], "value": sample(t, v)}))
            .collect(),
    )
}

/// `[seconds, "value"]`.
pub fn sample(t_ns: i64, v: f64) -> Value {
    json!([
        format_sample_ts(t_ns.div_euclid(1_000_000)),
        format_float(v)
    ])
}

/// The stats block Grafana shows (bytes processed, exec time) with Loki's summary keys.
pub fn stats(s: &Stats, exec_secs: f64, returned: usize) -> Value {
    let per_sec = |n: u64| {
        if exec_secs > 0.0 {
            (n as f64 / exec_secs) as u64
        } else {
            0
        }
    };
    json!({
        "summary": {
            "bytesProcessedPerSecond": per_sec(s.bytes_processed),
            "linesProcessedPerSecond": per_sec(s.lines_processed),
            "totalBytesProcessed": s.bytes_processed,
            "totalLinesProcessed": s.lines_processed,
            "execTime": exec_secs,
            "queueTime": 0.0,
            "subqueries": 0,
            "totalEntriesReturned": returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": s.post_filter_lines,
            "totalStructuredMetadataBytesProcessed": 0
        },
        "querier": {"store": {
            "totalChunksRef": s.scan.blocks_read,
            "totalChunksDownloaded": s.scan.blocks_read,
            "chunk": {
                "decompressedBytes": s.scan.bytes_read,
                "decompressedLines": s.scan.records_decoded,
                "postFilterLines": s.post_filter_lines
            }
        }}
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
