//! The query engine: selects streams through the index, scans their records, runs the
//! pipeline, and answers log queries and the label and series endpoints. Drilldown's fields
//! and patterns are built on [`Engine::scan`]; metric queries (`metric`), stats
//! (`index_stats`) and volume on [`Engine::fold`] (in `fold`), which scans on worker threads.
//!
//! Owns: [`Engine`] and [`Limits`]; every scan checks the query's [`Budget`] (defined in
//! `budget`), so a query past its timeout stops reading and answers 504.
//!
//! Must not: hold an append handle, or run on the async runtime (callers use
//! `spawn_blocking`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

pub use super::budget::Budget;
use super::error::QueryError;
use super::logql::ast::{LogExpr, Matcher, Stage};
use super::pipeline;
use super::value::Labels;
use crate::store::chain::{self, View};
use crate::store::{Order, Reader, Scan, ScanStats, StreamId, Visit};

/// Entries a log query may ask for: Loki's `max_entries_limit_per_query`.
/// Key `query.max_entries_limit_per_query`.
pub const DEFAULT_MAX_ENTRIES: usize = 5000;

/// Series a metric query may return: Loki's `max_query_series`. Key `query.max_series`.
pub const DEFAULT_MAX_SERIES: usize = 500;

/// Series a range aggregation may hold before its outer aggregation reduces them: bounds
/// memory when a parser yields high-cardinality labels. Key `query.max_range_series`. A `sum`
/// directly over an additive function groups the samples first (see `RangeOp::is_additive`),
/// so there only the sum's groups count.
pub const DEFAULT_MAX_RANGE_SERIES: usize = 20_000;

/// Memory one query may hold for what it keeps (log lines, range-aggregation windows, raw
/// samples, result points): with `query.max_concurrent` (4) queries, about 512 MiB at most.
/// Typical Explore, volume and alert queries hold a few MiB. Key `query.max_memory_bytes`.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 128 << 20;

/// Threads one aggregation (metric query, volume, stats) scans on: both cores of the box
/// this is sized for, so a dashboard's log volume answers twice as fast; ingest runs on its
/// own threads and the push plane's budgets do not depend on these. Key `query.scan_workers`
/// (1 to [`crate::store::MAX_SCAN_WORKERS`]).
pub const DEFAULT_SCAN_WORKERS: usize = 2;

/// How long one query may run: Loki's `query_timeout`. Key `query.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Records between two deadline checks during a scan.
pub(super) const CHECK_EVERY: u32 = 4096;

/// The limits every query runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_series: usize,
    pub max_range_series: usize,
    pub max_memory_bytes: usize,
    pub scan_workers: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_series: DEFAULT_MAX_SERIES,
            max_range_series: DEFAULT_MAX_RANGE_SERIES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            scan_workers: DEFAULT_SCAN_WORKERS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A stream's labels as name/value pairs, sorted by name.
pub type StreamLabels = Vec<(String, String)>;

/// Reads the ledger for queries.
#[derive(Debug, Clone)]
pub struct Engine {
    reader: Reader,
    pub limits: Limits,
}

/// One record handed to a scan callback.
#[derive(Debug)]
pub struct Rec<'a> {
    pub id: StreamId,
    pub stream: &'a [(String, String)],
    pub view: &'a View<'a>,
}

/// A log line that passed the pipeline.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub ts_ns: i64,
    pub seq: u64,
    pub line: String,
    pub labels: Labels,
}

/// What a query read, for the stats block.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub scan: ScanStats,
    pub lines_processed: u64,
    pub bytes_processed: u64,
    pub post_filter_lines: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.scan.add(&o.scan);
        self.lines_processed += o.lines_processed;
        self.bytes_processed += o.bytes_processed;
        self.post_filter_lines += o.post_filter_lines;
    }
}

impl Engine {
    pub fn new(reader: Reader, limits: Limits) -> Engine {
        Engine { reader, limits }
    }

    pub(super) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// A new query's budget under these limits, its clock starting now.
    pub fn budget(&self) -> Budget {
        Budget::new(self.limits.timeout, self.limits.max_memory_bytes)
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> Result<u64, QueryError> {
        Ok(self.reader.index()?.next_seq())
    }

    /// Up to `max` records from sequence number `from` on (for live tail).
    pub fn read_since(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<crate::store::Record>, QueryError> {
        Ok(self.reader.read_since(from, max)?)
    }

    /// Streams with records in `[start, end)` whose labels match every matcher.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(StreamId, StreamLabels)>, QueryError> {
        let index = self.reader.index()?;
        Ok(index.select(start, end, |id, info| {
            let ok = matchers
                .iter()
                .all(|m| m.matches(info.labels.get(&m.name).unwrap_or("")));
            ok.then(|| (id, info.labels.clone().into_vec()))
        }))
    }

    /// Calls `f` with every record of the streams matching `matchers` in `[start, end)`.
    /// `wants` may rule out time spans; `f` returns `false` to stop.
    pub fn scan(
        &self,
        matchers: &[Matcher],
        range: (i64, i64),
        order: Order,
        budget: Budget,
        visitor: &mut dyn ScanVisitor,
    ) -> Result<Stats, QueryError> {
        let (start, end) = range;
        let streams = self.select(matchers, start, end)?;
        let labels: HashMap<StreamId, Vec<(String, String)>> = streams.into_iter().collect();
        let scan = Scan {
            streams: labels.keys().copied().collect(),
            start_ns: start,
            end_ns: end,
            order,
            tokens: visitor
                .required_tokens(&|name| labels.values().any(|l| l.iter().any(|(k, _)| k == name))),
        };
        let mut adapter = Adapter {
            labels: &labels,
            inner: visitor,
            budget,
            timed_out: false,
            n: 0,
            stats: Stats::default(),
        };
        let scan_stats = self.reader.scan(&scan, &mut adapter)?;
        if adapter.timed_out {
            return Err(QueryError::Timeout);
        }
        let mut stats = adapter.stats;
        stats.scan = scan_stats;
        Ok(stats)
    }

    /// A log query: up to `limit` entries in `[start, end)`, newest (`Backward`) or oldest
    /// (`Forward`) first.
    pub fn logs(
        &self,
        expr: &LogExpr,
        range: (i64, i64),
        limit: usize,
        order: Order,
        budget: Budget,
    ) -> Result<(Vec<LogEntry>, Stats), QueryError> {
        let mut c = Collector {
            stages: &expr.pipeline,
            limit,
            order,
            heap: BinaryHeap::new(),
            budget: budget.clone(),
            error: None,
        };
        let stats = self.scan(&expr.matchers, range, order, budget, &mut c)?;
        if let Some(e) = c.error {
            return Err(e);
        }
        let mut out: Vec<LogEntry> = c.heap.into_iter().map(|k| k.entry).collect();
        match order {
            Order::Forward => out.sort_by_key(|e| (e.ts_ns, e.seq)),
            Order::Backward => out.sort_by_key(|e| Reverse((e.ts_ns, e.seq))),
        }
        Ok((out, stats))
    }

    /// Label names of the streams matching `matchers` (all streams when empty) in range.
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut names = BTreeSet::new();
        for (_, labels) in self.select(matchers, start, end)? {
            names.extend(labels.into_iter().map(|(k, _)| k));
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` among the matching streams in range.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values = BTreeSet::new();
        for (_, labels) in self.select(matchers, start, end)? {
            values.extend(
                labels
                    .into_iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v),
            );
        }
        Ok(values.into_iter().collect())
    }

    /// Streams (label sets) matching any of the selectors, in range.
    pub fn series(
        &self,
        selectors: &[Vec<Matcher>],
        start: i64,
        end: i64,
    ) -> Result<Vec<BTreeMap<String, String>>, QueryError> {
        let mut out = BTreeSet::new();
        if selectors.is_empty() {
            for (_, l) in self.select(&[], start, end)? {
                out.insert(l.into_iter().collect::<BTreeMap<_, _>>());
            }
        }
        for sel in selectors {
            for (_, l) in self.select(sel, start, end)? {
                out.insert(l.into_iter().collect::<BTreeMap<_, _>>());
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// The bytes an entry counts for in `index/stats` and `index/volume`: its line, exactly.
/// Loki estimates the same figure from its chunks' sizes (whole KiB per chunk, with their
/// overhead), so its answers run 5-15% higher and round a small stream's down to 0.
pub fn entry_bytes(view: &View<'_>) -> u64 {
    view.line.len() as u64
}

/// Receives records with their stream labels.
pub trait ScanVisitor {
    fn wants(&self, _min_ts: i64, _max_ts: i64) -> bool {
        true
    }
    /// Token hashes every record the visitor keeps holds (see
    /// [`crate::query::pipeline::required_tokens`]; `stream_label` says whether a selected
    /// stream has a label of that name); blocks without one are not read.
    fn required_tokens(&self, _stream_label: &dyn Fn(&str) -> bool) -> Vec<u64> {
        Vec::new()
    }
    /// Returns `false` to stop the scan.
    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool;
}

struct Adapter<'a> {
    labels: &'a HashMap<StreamId, Vec<(String, String)>>,
    inner: &'a mut dyn ScanVisitor,
    budget: Budget,
    timed_out: bool,
    n: u32,
    stats: Stats,
}

impl Visit for Adapter<'_> {
    fn wants(&self, min_ts: i64, max_ts: i64) -> bool {
        self.inner.wants(min_ts, max_ts)
    }

    fn visit(&mut self, stream: StreamId, record: &View<'_>) -> bool {
        self.n += 1;
        if self.n.is_multiple_of(CHECK_EVERY) && self.budget.expired() {
            self.timed_out = true;
            return false;
        }
        let Some(labels) = self.labels.get(&stream) else {
            return true;
        };
        self.stats.lines_processed += 1;
        self.stats.bytes_processed += record.line.len() as u64;
        self.inner.record(
            &Rec {
                id: stream,
                stream: labels,
                view: record,
            },
            &mut self.stats,
        )
    }
}

/// Decodes a record's structured metadata (empty when undecodable, which verify reports).
pub fn metadata(view: &View<'_>) -> Vec<(String, String)> {
    chain::decode_pairs(view.metadata, "metadata").unwrap_or_default()
}

/// Runs a pipeline over one record.
pub fn run_pipeline<'a>(stages: &[Stage], rec: &'a Rec<'a>) -> Option<pipeline::Output<'a>> {
    let line = std::str::from_utf8(rec.view.line).unwrap_or("");
    if pipeline::only_line_filters(stages) && !pipeline::line_filters_pass(stages, line) {
        return None;
    }
    pipeline::run(
        stages,
        line,
        rec.view.ts_ns,
        rec.stream,
        &metadata(rec.view),
    )
}

/// An entry ordered so that the heap's top is the one to evict first.
struct Keyed {
    key: (i64, u64),
    forward: bool,
    entry: LogEntry,
}

impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Forward keeps the oldest: evict the newest (max-heap on key). Backward keeps the
        // newest: evict the oldest (max-heap on reversed key).
        if self.forward {
            self.key.cmp(&o.key)
        } else {
            o.key.cmp(&self.key)
        }
    }
}

struct Collector<'s> {
    stages: &'s [Stage],
    limit: usize,
    order: Order,
    heap: BinaryHeap<Keyed>,
    budget: Budget,
    error: Option<QueryError>,
}

/// What one kept log entry holds besides its line and labels.
const ENTRY_BYTES: usize = 96;

fn held_by(e: &LogEntry) -> usize {
    ENTRY_BYTES + e.line.len() + e.labels.bytes()
}

impl ScanVisitor for Collector<'_> {
    fn required_tokens(&self, stream_label: &dyn Fn(&str) -> bool) -> Vec<u64> {
        crate::query::pipeline::required_tokens(self.stages, stream_label)
    }

    fn wants(&self, min_ts: i64, max_ts: i64) -> bool {
        if self.heap.len() < self.limit {
            return true;
        }
        let Some(worst) = self.heap.peek() else {
            return true;
        };
        match self.order {
            Order::Forward => min_ts <= worst.key.0,
            Order::Backward => max_ts >= worst.key.0,
        }
    }

    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool {
        let key = (rec.view.ts_ns, rec.view.seq);
        let forward = self.order == Order::Forward;
        if self.heap.len() >= self.limit
            && let Some(worst) = self.heap.peek()
        {
            let better = if forward {
                key < worst.key
            } else {
                key > worst.key
            };
            if !better {
                return true;
            }
        }
        let Some(out) = run_pipeline(self.stages, rec) else {
            return true;
        };
        stats.post_filter_lines += 1;
        let entry = LogEntry {
            ts_ns: key.0,
            seq: key.1,
            line: out.line.into_owned(),
            labels: out.labels,
        };
        if let Err(e) = self.budget.hold(held_by(&entry)) {
            self.error = Some(e);
            return false;
        }
        self.heap.push(Keyed {
            key,
            forward,
            entry,
        });
        if self.heap.len() > self.limit
            && let Some(evicted) = self.heap.pop()
        {
            self.budget.release(held_by(&evicted.entry));
        }
        true
    }
}
