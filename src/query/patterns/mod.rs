//! `GET /loki/api/v1/patterns`: the patterns of a selector's lines over a range, with their
//! counts per step, as Grafana's Logs Drilldown shows them in its Patterns tab.
//!
//! Owns: reading the selected streams' lines in the range, oldest first, through one Drain
//! per stream and detected level (a stream's format is guessed from its first line); then
//! Loki's querier rules: counts of equal patterns summed across streams, patterns with fewer
//! than 30 lines in the range dropped, the rest by count, at most 300.
//!
//! Loki mines patterns at ingestion and keeps the last three hours; here they are mined at
//! query time from the lines in the range, so any stored range has patterns, and a template
//! depends only on the lines in the range. Memory is the query's budget (clusters, samples
//! and tree nodes are counted as they are kept), time its deadline.
//!
//! Must not: change data; read records other than through [`Engine::scan`].

mod drain;
mod samples;
mod tokens;

use std::collections::{BTreeMap, HashMap};

use axum::response::Response;
use serde_json::json;

use super::Audit;
use super::encode::json_response;
use super::engine::{Budget, Engine, Rec, ScanVisitor, Stats, metadata};
use super::error::QueryError;
use super::logql;
use super::logql::ast::Matcher;
use super::params::Params;
use crate::clock::now_ns;
use crate::store::{Order, StreamId};
use drain::Drain;
use samples::SAMPLE_MS;
use tokens::Format;

/// Lines a pattern needs in the range to be answered: Loki's `minClusterSize`.
const MIN_LINES: i64 = 30;
/// Patterns answered at most: Loki's `maxPatterns`.
const MAX_PATTERNS: usize = 300;
/// What a stream's entry holds besides its labels' text, for the budget.
const STREAM_BYTES: usize = 256;
/// The levels a Drain of its own is kept for; others train the `unknown` one.
const LEVELS: &[&str] = &[
    "unknown", "debug", "info", "warn", "error", "fatal", "critical", "trace",
];

/// One answered pattern: its level, its text, and its count per step (ms, lines).
#[derive(Debug)]
pub struct Found {
    pub level: &'static str,
    pub pattern: String,
    pub samples: BTreeMap<i64, i64>,
}

/// The answer to a patterns request.
pub fn answer(engine: &Engine, budget: Budget, p: &Params) -> Result<Response, QueryError> {
    let q = p.query()?;
    let matchers = logql::parse_selector(q)?;
    let (start, end) = p.bounds(now_ns())?;
    let step = p.step(start, end)?;
    let found = mine(engine, budget, &matchers, (start, end), step)?;
    let data: Vec<serde_json::Value> = found
        .iter()
        .map(|f| {
            let samples: Vec<(i64, i64)> = f.samples.iter().map(|(&t, &v)| (t / 1000, v)).collect();
            json!({"pattern": f.pattern, "level": f.level, "samples": samples})
        })
        .collect();
    let audit = Audit {
        query: q.to_owned(),
        start_ns: Some(start),
        end_ns: Some(end),
        results: data.len() as u64,
    };
    Ok(json_response(
        json!({"status": "success", "data": data}),
        audit,
    ))
}

/// The patterns of the streams `matchers` select in `[start, end]`, counted per `step_ns`
/// (at least 10 s), most lines first.
pub fn mine(
    engine: &Engine,
    budget: Budget,
    matchers: &[Matcher],
    (start, end): (i64, i64),
    step_ns: i64,
) -> Result<Vec<Found>, QueryError> {
    let step_ms = (step_ns / 1_000_000).max(SAMPLE_MS);
    let mut miner = Miner {
        streams: HashMap::new(),
        budget: budget.clone(),
        error: None,
    };
    engine.scan(
        matchers,
        (start, end.saturating_add(1)),
        Order::Forward,
        budget,
        &mut miner,
    )?;
    if let Some(e) = miner.error {
        return Err(e);
    }
    let from = start.div_euclid(1_000_000);
    let through = end.div_euclid(1_000_000) + i64::from(end.rem_euclid(1_000_000) != 0);
    let mut counts: BTreeMap<(&'static str, String), BTreeMap<i64, i64>> = BTreeMap::new();
    for (_, drains) in miner.streams.values() {
        for (&level, d) in drains {
            for (pattern, c) in d.clusters() {
                if pattern.is_empty() {
                    continue;
                }
                let into = counts.entry((level, pattern)).or_default();
                c.chunks.sum_into(from, through, step_ms, into);
            }
        }
    }
    let mut found: Vec<(i64, Found)> = counts
        .into_iter()
        .map(|((level, pattern), samples)| {
            let total = samples.values().sum();
            (
                total,
                Found {
                    level,
                    pattern,
                    samples,
                },
            )
        })
        .filter(|(total, _)| *total >= MIN_LINES)
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.pattern.cmp(&b.1.pattern)));
    found.truncate(MAX_PATTERNS);
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

type Drains = BTreeMap<&'static str, Drain>;

/// Trains each stream's Drains on its lines.
struct Miner {
    streams: HashMap<StreamId, (Format, Drains)>,
    budget: Budget,
    error: Option<QueryError>,
}

impl ScanVisitor for Miner {
    fn record(&mut self, rec: &Rec<'_>, _stats: &mut Stats) -> bool {
        let line = String::from_utf8_lossy(rec.view.line);
        let (format, drains) = match self.streams.get_mut(&rec.id) {
            Some(s) => s,
            None => {
                let held = STREAM_BYTES
                    + rec
                        .stream
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>();
                if let Err(e) = self.budget.hold(held) {
                    self.error = Some(e);
                    return false;
                }
                let format = Format::detect(&line);
                self.streams
                    .entry(rec.id)
                    .or_insert((format, BTreeMap::new()))
            }
        };
        let level = level_of(rec);
        let d = drains
            .entry(level)
            .or_insert_with(|| Drain::new(*format, self.budget.clone()));
        match d.train(&line, rec.view.ts_ns) {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// The record's `detected_level` metadata, lower-cased; `unknown` if absent or not a level.
fn level_of(rec: &Rec<'_>) -> &'static str {
    let Some(v) = metadata(rec.view)
        .into_iter()
        .find(|(k, _)| k == "detected_level")
        .map(|(_, v)| v.to_ascii_lowercase())
    else {
        return LEVELS[0];
    };
    LEVELS
        .iter()
        .find(|l| **l == v)
        .copied()
        .unwrap_or(LEVELS[0])
}
