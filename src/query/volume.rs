//! `index/volume` and `index/volume_range`: bytes of log lines per series, as Logs Drilldown
//! and logcli ask for them.
//!
//! Owns: grouping by `targetLabels` (or the selector's label names), `aggregateBy=series`
//! or `labels`, the `limit` on series (largest first), and the vector/matrix shapes.
//!
//! Must not: run a pipeline: volume counts what is stored.

use std::collections::{BTreeMap, HashMap};

use axum::response::Response;
use serde_json::json;

use super::Audit;
use super::encode::json_response;
use super::encode::{Envelope, QueryData, sample};
use super::engine::{Budget, Engine, Rec, ScanVisitor, Stats, entry_bytes};
use super::error::QueryError;
use super::logql::{self, Expr};
use super::params::Params;
use super::value::Series;
use crate::clock::now_ns;
use crate::store::Order;

use super::drilldown::VOLUME_MAX_SERIES;

pub fn answer(
    engine: &Engine,
    budget: Budget,
    p: &Params,
    ranged: bool,
) -> Result<Response, QueryError> {
    let q = p.query()?;
    let matchers = match logql::parse(q)? {
        Expr::Log(l) => l.matchers,
        Expr::Metric(_) => return Err(QueryError::bad("only label matchers are supported")),
    };
    let (start, end) = p.bounds(now_ns())?;
    let limit = match p.get("limit").map(str::parse::<usize>) {
        None | Some(Ok(0)) => 100,
        Some(Ok(n)) => n.min(VOLUME_MAX_SERIES),
        Some(Err(_)) => return Err(QueryError::bad("invalid limit parameter")),
    };
    let by_labels = match p.get("aggregateBy").unwrap_or("series") {
        "series" => false,
        "labels" => true,
        _ => return Err(QueryError::bad("invalid aggregation option")),
    };
    let targets: Vec<String> = match p.get("targetLabels") {
        Some(t) => t
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => matchers.iter().map(|m| m.name.clone()).collect(),
    };
    let step = if ranged {
        p.step(start, end)?
    } else {
        end - start + 1
    };
    let times = if ranged {
        bucket_times(start, end, step)
    } else {
        vec![end]
    };
    let mut acc = Acc {
        targets: &targets,
        by_labels,
        first: if ranged {
            start - start.rem_euclid(step)
        } else {
            start
        },
        step,
        buckets: times.len(),
        sums: HashMap::new(),
    };
    engine.scan(
        &matchers,
        (start, end + 1),
        Order::Forward,
        budget,
        &mut acc,
    )?;
    let mut totals: Vec<(Series, u64, Vec<u64>)> = acc
        .sums
        .into_iter()
        .map(|(s, b)| (s, b.iter().sum(), b))
        .collect();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    totals.truncate(limit);
    let n = totals.len();
    let result: Vec<serde_json::Value> = if ranged && times.len() > 1 {
        totals
            .into_iter()
            .map(|(s, _, b)| {
                let values: Vec<_> = b
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| sample(times[k], *v as f64))
                    .collect();
                json!({"metric": s, "values": values})
            })
            .collect()
    } else {
        totals
            .into_iter()
            .map(|(s, total, _)| json!({"metric": s, "value": sample(end, total as f64)}))
            .collect()
    };
    let kind = if ranged && times.len() > 1 {
        "matrix"
    } else {
        "vector"
    };
    let body = Envelope::success(QueryData {
        result_type: kind,
        encoding_flags: None,
        result: serde_json::Value::Array(result),
        stats: json!({}),
    });
    let audit = Audit {
        query: q.to_owned(),
        start_ns: Some(start),
        end_ns: Some(end),
        results: n as u64,
    };
    Ok(json_response(body, audit))
}

/// The points of `index/volume_range`, as Loki answers them: bucket k holds the entries of
/// `[m_k - step, m_k)`, `m_k` the multiples of `step` from the one after `start`, and is
/// stamped one millisecond before `m_k`; the last bucket is stamped `end` itself.
fn bucket_times(start: i64, end: i64, step: i64) -> Vec<i64> {
    let mut times = Vec::new();
    let mut m = start - start.rem_euclid(step) + step;
    while m <= end {
        times.push(m - 1_000_000);
        m += step;
    }
    times.push(end);
    times
}

struct Acc<'a> {
    targets: &'a [String],
    by_labels: bool,
    /// The step multiple at or before `start`: bucket k ends at `first + (k + 1) * step`.
    first: i64,
    step: i64,
    buckets: usize,
    sums: HashMap<Series, Vec<u64>>,
}

impl ScanVisitor for Acc<'_> {
    fn record(&mut self, rec: &Rec<'_>, _stats: &mut Stats) -> bool {
        let ts = rec.view.ts_ns;
        let k = ((ts - self.first).max(0) / self.step) as usize;
        let k = k.min(self.buckets - 1);
        let bytes = entry_bytes(rec.view);
        let labels: BTreeMap<&str, &str> = rec
            .stream
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let keys: Vec<Series> = if self.by_labels {
            self.targets
                .iter()
                .filter(|t| labels.contains_key(t.as_str()))
                .map(|t| Series::from([(t.clone(), String::new())]))
                .collect()
        } else {
            vec![
                self.targets
                    .iter()
                    .filter_map(|t| labels.get(t.as_str()).map(|v| (t.clone(), (*v).to_owned())))
                    .collect(),
            ]
        };
        for key in keys {
            let b = self
                .sums
                .entry(key)
                .or_insert_with(|| vec![0; self.buckets]);
            b[k] += bytes;
        }
        true
    }
}
