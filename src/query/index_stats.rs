//! `index/stats`: the streams, entries and bytes of a selector over a range, as Grafana's
//! query-size hint and logcli's `stats` ask for them.
//!
//! Owns: counting them exactly, by a scan under the query's budget and deadline, with the
//! bytes [`entry_bytes`] gives (the same that `index/volume` reports).
//!
//! Must not: run a pipeline: stats count what is stored.

use std::collections::HashSet;

use super::budget::Budget;
use super::engine::{Engine, Rec, Stats, entry_bytes};
use super::error::QueryError;
use super::fold::Fold;
use super::logql::ast::Matcher;
use crate::store::{BlockFacts, Group, Row, StreamId};

impl Engine {
    /// `index/stats` for `matchers` over `[start, end)`: the streams with entries there, and
    /// their entries and bytes counted exactly (as [`entry_bytes`], the same bytes that
    /// `index/volume` reports), by a scan under the query's budget and deadline.
    pub fn index_stats(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        budget: Budget,
    ) -> Result<IndexStats, QueryError> {
        let (counter, _) = self.fold(matchers, (start, end), budget, &StatsCounter::default)?;
        Ok(IndexStats {
            streams: counter.streams.len() as u64,
            chunks: counter.streams.len() as u64,
            bytes: counter.bytes,
            entries: counter.entries,
        })
    }
}

/// The answer of `index/stats`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub entries: u64,
}

/// Counts what `index/stats` reports; a stream is known by its id, so a record costs no
/// hashing of its labels.
#[derive(Default)]
struct StatsCounter {
    streams: HashSet<StreamId>,
    last: Option<StreamId>,
    entries: u64,
    bytes: u64,
}

impl StatsCounter {
    fn count(&mut self, id: StreamId, bytes: u64) -> bool {
        self.count_many(id, 1, bytes)
    }

    fn count_many(&mut self, id: StreamId, entries: u64, bytes: u64) -> bool {
        if self.last != Some(id) {
            self.streams.insert(id);
            self.last = Some(id);
        }
        self.entries += entries;
        self.bytes += bytes;
        true
    }
}

impl Fold for StatsCounter {
    /// Stats count streams, entries and line bytes: the columns hold all three.
    fn columns_suffice(&self, _facts: &BlockFacts<'_>) -> bool {
        true
    }

    fn row(&mut self, id: StreamId, _stream: &[(String, String)], row: &Row<'_>) -> bool {
        self.count(id, row.line_len)
    }

    fn record(&mut self, rec: &Rec<'_>, _stats: &mut Stats) -> bool {
        self.count(rec.id, entry_bytes(rec.view))
    }

    /// Stats have no buckets: every span folds alike.
    fn folds_alike(&self, _min_ts_ns: i64, _max_ts_ns: i64) -> bool {
        true
    }

    fn group(&mut self, id: StreamId, _stream: &[(String, String)], g: &Group<'_>) -> bool {
        self.count_many(id, g.count, g.line_bytes)
    }

    fn merge(&mut self, other: Self) {
        self.streams.extend(other.streams);
        self.last = None;
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}
