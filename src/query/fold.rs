//! Folds: the query side of the store's tallies, behind range aggregations, `index/volume`
//! and `index/stats`. Each scan worker runs its own [`Fold`]; they are merged when the scan
//! ends, so a fold must be commutative and give the same answer however blocks are shared.
//!
//! Owns: [`Fold`] and [`Engine::fold`] (stream selection, the workers' adapters, which check
//! the query's deadline and count what was read, and the merge). Must not: read records
//! other than through [`Reader::tally`](crate::store::Reader::tally).

use super::engine::{Budget, CHECK_EVERY, Engine, Rec, Stats, StreamLabels};
use super::error::QueryError;
use super::logql::ast::Matcher;
use crate::store::chain::View;
use crate::store::{BlockFacts, Group, Order, Row, Scan, StreamId, Tally};

/// One worker's part of an aggregation.
pub trait Fold: Send + Sized {
    /// Token hashes every record the fold keeps holds (as for a log query's scan).
    fn required_tokens(&self, _stream_label: &dyn Fn(&str) -> bool) -> Vec<u64> {
        Vec::new()
    }

    /// Whether merging in another order could change the answer (floating-point sums of
    /// unwrapped values, first and last among equal timestamps): then one worker reads all.
    fn order_sensitive(&self) -> bool {
        false
    }

    /// Whether a block's columns can stand for its records, given what they say of them.
    fn columns_suffice(&self, facts: &BlockFacts<'_>) -> bool;

    /// One record, from the columns. `false` stops the scan.
    fn row(&mut self, id: StreamId, stream: &[(String, String)], row: &Row<'_>) -> bool;

    /// One record, decoded. `false` stops the scan.
    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool;

    /// Whether every record in `[min_ts_ns, max_ts_ns]` lands in the same buckets, so that a
    /// block lying there may be handed as [`Group`]s.
    fn folds_alike(&self, min_ts_ns: i64, max_ts_ns: i64) -> bool;

    /// The records of one stream and level of a block lying in such a span. `false` stops
    /// the scan.
    fn group(&mut self, id: StreamId, stream: &[(String, String)], group: &Group<'_>) -> bool;

    /// Adds what another worker folded.
    fn merge(&mut self, other: Self);
}

impl Engine {
    /// Folds the records of the streams matching `matchers` in `[start, end)` on the query's
    /// scan workers, each with a fold from `make`, and merges them.
    pub fn fold<F: Fold>(
        &self,
        matchers: &[Matcher],
        range: (i64, i64),
        budget: Budget,
        make: &(dyn Fn() -> F + Sync),
    ) -> Result<(F, Stats), QueryError> {
        let (start, end) = range;
        let labels: foldhash::HashMap<StreamId, StreamLabels> =
            self.select(matchers, start, end)?.into_iter().collect();
        let mut out = make();
        let scan = Scan {
            streams: labels.keys().copied().collect(),
            start_ns: start,
            end_ns: end,
            order: Order::Forward,
            tokens: out
                .required_tokens(&|name| labels.values().any(|l| l.iter().any(|(k, _)| k == name))),
        };
        let workers = if out.order_sensitive() {
            1
        } else {
            self.limits.scan_workers
        };
        let adapter = || Adapter {
            labels: &labels,
            inner: make(),
            budget: budget.clone(),
            timed_out: false,
            n: 0,
            stats: Stats::default(),
        };
        let (parts, scan_stats) = self.reader().tally(&scan, workers, &adapter)?;
        let mut stats = Stats::default();
        for part in parts {
            if part.timed_out {
                return Err(QueryError::Timeout);
            }
            stats.add(&part.stats);
            out.merge(part.inner);
        }
        stats.scan = scan_stats;
        Ok((out, stats))
    }
}

/// A worker's fold with the labels of the selected streams, its deadline and its counts.
struct Adapter<'a, F> {
    labels: &'a foldhash::HashMap<StreamId, StreamLabels>,
    inner: F,
    budget: Budget,
    timed_out: bool,
    n: u64,
    stats: Stats,
}

impl<F> Adapter<'_, F> {
    /// Counts `lines` records of `bytes` line bytes; `false` once the deadline has passed
    /// (checked every [`CHECK_EVERY`] records).
    fn tick(&mut self, lines: u64, bytes: u64) -> bool {
        let before = self.n / CHECK_EVERY as u64;
        self.n += lines;
        if self.n / CHECK_EVERY as u64 != before && self.budget.expired() {
            self.timed_out = true;
            return false;
        }
        self.stats.lines_processed += lines;
        self.stats.bytes_processed += bytes;
        true
    }
}

impl<F: Fold> Tally for Adapter<'_, F> {
    fn columns_suffice(&self, facts: &BlockFacts<'_>) -> bool {
        self.inner.columns_suffice(facts)
    }

    fn row(&mut self, stream: StreamId, row: &Row<'_>) -> bool {
        if !self.tick(1, row.line_len) {
            return false;
        }
        let Some(labels) = self.labels.get(&stream) else {
            return true;
        };
        self.inner.row(stream, labels, row)
    }

    fn record(&mut self, stream: StreamId, view: &View<'_>) -> bool {
        if !self.tick(1, view.line.len() as u64) {
            return false;
        }
        let Some(labels) = self.labels.get(&stream) else {
            return true;
        };
        let rec = Rec {
            id: stream,
            stream: labels,
            view,
        };
        self.inner.record(&rec, &mut self.stats)
    }

    fn folds_alike(&self, min_ts_ns: i64, max_ts_ns: i64) -> bool {
        self.inner.folds_alike(min_ts_ns, max_ts_ns)
    }

    fn group(&mut self, stream: StreamId, group: &Group<'_>) -> bool {
        if !self.tick(group.count, group.line_bytes) {
            return false;
        }
        let Some(labels) = self.labels.get(&stream) else {
            return true;
        };
        self.inner.group(stream, labels, group)
    }
}
