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
use super::encode::{Envelope, QueryData, json_response, sample};
use super::engine::{Budget, Engine, Rec, Stats, entry_bytes};
use super::error::QueryError;
use super::fold::Fold;
use super::logql::ast::Matcher;
use super::logql::{self, Expr};
use super::params::Params;
use super::value::Series;
use crate::clock::now_ns;
use crate::store::{BlockFacts, Group, Row, StreamId};

use super::drilldown::VOLUME_MAX_SERIES;

pub fn answer(
    engine: &Engine,
    budget: Budget,
    p: &Params,
    ranged: bool,
) -> Result<Response, QueryError> {
    let r = Request::parse(p, ranged)?;
    let totals = count(engine, budget, &r)?;
    let n = totals.len();
    let body = render(&r, totals);
    let audit = Audit {
        query: r.query.to_owned(),
        start_ns: Some(r.start),
        end_ns: Some(r.end),
        results: n as u64,
    };
    Ok(json_response(body, audit))
}

/// A volume request's parameters, read as Loki reads them.
struct Request<'p> {
    query: &'p str,
    matchers: Vec<Matcher>,
    start: i64,
    end: i64,
    limit: usize,
    by_labels: bool,
    targets: Vec<String>,
    step: i64,
    /// The time each bucket is stamped with.
    times: Vec<i64>,
    ranged: bool,
}

impl<'p> Request<'p> {
    fn parse(p: &'p Params, ranged: bool) -> Result<Request<'p>, QueryError> {
        let query = p.query()?;
        let matchers = match logql::parse(query)? {
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
        let (step, times) = if ranged {
            let step = p.step(start, end)?;
            (step, bucket_times(start, end, step))
        } else {
            (end - start + 1, vec![end])
        };
        Ok(Request {
            query,
            matchers,
            start,
            end,
            limit,
            by_labels,
            targets,
            step,
            times,
            ranged,
        })
    }

    /// A matrix when there is more than one bucket, else a vector.
    fn matrix(&self) -> bool {
        self.ranged && self.times.len() > 1
    }
}

/// The `limit` largest series with their total and per-bucket bytes, largest first.
fn count(
    engine: &Engine,
    budget: Budget,
    r: &Request<'_>,
) -> Result<Vec<(Series, u64, Vec<u64>)>, QueryError> {
    let make = || Acc {
        targets: &r.targets,
        by_labels: r.by_labels,
        first: if r.ranged {
            r.start - r.start.rem_euclid(r.step)
        } else {
            r.start
        },
        step: r.step,
        buckets: r.times.len(),
        sums: Vec::new(),
        ids: HashMap::new(),
        keys: HashMap::new(),
    };
    let (acc, _) = engine.fold(&r.matchers, (r.start, r.end + 1), budget, &make)?;
    let mut totals: Vec<(Series, u64, Vec<u64>)> = acc
        .sums
        .into_iter()
        .map(|(s, b)| (s, b.iter().sum(), b))
        .collect();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    totals.truncate(r.limit);
    Ok(totals)
}

fn render(r: &Request<'_>, totals: Vec<(Series, u64, Vec<u64>)>) -> impl serde::Serialize {
    let result: Vec<serde_json::Value> = if r.matrix() {
        totals
            .into_iter()
            .map(|(s, _, b)| {
                let values: Vec<_> = b
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| sample(r.times[k], *v as f64))
                    .collect();
                json!({"metric": s, "values": values})
            })
            .collect()
    } else {
        totals
            .into_iter()
            .map(|(s, total, _)| json!({"metric": s, "value": sample(r.end, total as f64)}))
            .collect()
    };
    Envelope::success(QueryData {
        result_type: if r.matrix() { "matrix" } else { "vector" },
        encoding_flags: None,
        result: serde_json::Value::Array(result),
        stats: json!({}),
    })
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
    /// Each series with its bytes per bucket.
    sums: Vec<(Series, Vec<u64>)>,
    ids: HashMap<Series, usize>,
    /// The series each stream counts in, found once per stream.
    keys: HashMap<StreamId, Vec<usize>>,
}

impl Fold for Acc<'_> {
    /// Volume counts line bytes per stream: the columns hold them.
    fn columns_suffice(&self, _facts: &BlockFacts<'_>) -> bool {
        true
    }

    fn row(&mut self, id: StreamId, stream: &[(String, String)], row: &Row<'_>) -> bool {
        self.add(id, stream, row.ts_ns, row.line_len)
    }

    fn record(&mut self, rec: &Rec<'_>, _stats: &mut Stats) -> bool {
        self.add(rec.id, rec.stream, rec.view.ts_ns, entry_bytes(rec.view))
    }

    fn folds_alike(&self, min_ts_ns: i64, max_ts_ns: i64) -> bool {
        self.bucket(min_ts_ns) == self.bucket(max_ts_ns)
    }

    fn group(&mut self, id: StreamId, stream: &[(String, String)], g: &Group<'_>) -> bool {
        self.add(id, stream, g.min_ts_ns, g.line_bytes)
    }

    fn merge(&mut self, other: Self) {
        for (key, b) in other.sums {
            let i = self.series_index(key);
            for (m, o) in self.sums[i].1.iter_mut().zip(b) {
                *m += o;
            }
        }
    }
}

impl Acc<'_> {
    /// The bucket a line at `ts` counts in.
    fn bucket(&self, ts: i64) -> usize {
        let k = ((ts - self.first).max(0) / self.step) as usize;
        k.min(self.buckets - 1)
    }

    fn add(&mut self, id: StreamId, stream: &[(String, String)], ts: i64, bytes: u64) -> bool {
        let k = self.bucket(ts);
        if !self.keys.contains_key(&id) {
            let keys = self.keys_of(stream);
            self.keys.insert(id, keys);
        }
        for &i in &self.keys[&id] {
            self.sums[i].1[k] += bytes;
        }
        true
    }

    /// The series (indexes into `sums`, added if new) a stream with these labels counts in.
    fn keys_of(&mut self, stream: &[(String, String)]) -> Vec<usize> {
        let labels: BTreeMap<&str, &str> = stream
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
        keys.into_iter().map(|key| self.series_index(key)).collect()
    }

    fn series_index(&mut self, key: Series) -> usize {
        if let Some(&i) = self.ids.get(&key) {
            return i;
        }
        self.ids.insert(key.clone(), self.sums.len());
        self.sums.push((key, vec![0; self.buckets]));
        self.sums.len() - 1
    }
}
