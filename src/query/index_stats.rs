//! `index/stats`: the streams, entries and bytes of a selector over a range, as Grafana's
//! query-size hint and logcli's `stats` ask for them.
//!
//! Owns: counting them exactly, by a scan under the query's budget and deadline, with the
//! bytes [`entry_bytes`] gives (the same that `index/volume` reports).
//!
//! Must not: run a pipeline: stats count what is stored.

use std::collections::HashSet;

use super::budget::Budget;
use super::engine::{Engine, Rec, ScanVisitor, Stats, entry_bytes};
use super::error::QueryError;
use super::logql::ast::Matcher;
use crate::store::{Order, StreamId};

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
        let mut counter = StatsCounter::default();
        self.scan(matchers, (start, end), Order::Forward, budget, &mut counter)?;
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

impl ScanVisitor for StatsCounter {
    fn record(&mut self, rec: &Rec<'_>, _stats: &mut Stats) -> bool {
        if self.last != Some(rec.id) {
            self.streams.insert(rec.id);
            self.last = Some(rec.id);
        }
        self.entries += 1;
        self.bytes += entry_bytes(rec.view);
        true
    }
}
