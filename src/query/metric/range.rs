//! Range aggregations: every line of the selector folded into per-series buckets between
//! consecutive window edges, then each step's window merged from its buckets.
//!
//! Owns: [`RangeAcc`] (the fold, which counts every series, bucket and raw sample in the
//! query's budget before it keeps it, and stops at `query.max_range_series`), and the
//! evaluation of one range aggregation at every step. Must not: read records other than
//! through the engine's scan.

use std::collections::{BTreeMap, HashMap};

use std::collections::btree_map::Entry;

use super::window::{Agg, window_value};
use super::{Builder, Cx, Matrix, STEPS_PER_CHECK, group_labels, render_series, series_limit};
use crate::query::engine::{Budget, Rec, Stats, run_pipeline};
use crate::query::error::QueryError;
use crate::query::fold::Fold;
use crate::query::logql::ast::*;
use crate::query::logql::{parse_bytes, parse_duration};
use crate::query::pipeline::{ERROR_DETAILS_LABEL, ERROR_LABEL, set_error};
use crate::query::value::{Labels, Series};
use crate::store::{BlockFacts, Group, Row, StreamId};

/// The metadata a block's level column holds, as a label.
const LEVEL_LABEL: &str = "detected_level";

impl Cx<'_> {
    /// Evaluates a range aggregation whose samples are grouped by `grouping` (its own, or the
    /// one of an enclosing `sum` pushed down into it).
    pub(super) fn range(
        &mut self,
        r: &RangeAgg,
        grouping: Option<&Grouping>,
    ) -> Result<Matrix, QueryError> {
        let mut edges: Vec<i64> = self
            .times
            .iter()
            .flat_map(|t| [t - r.offset_ns - r.range_ns, t - r.offset_ns])
            .collect();
        edges.sort_unstable();
        edges.dedup();
        let first = edges.first().copied().unwrap_or(0);
        let last = edges.last().copied().unwrap_or(0);
        let keep_raw = matches!(r.op, RangeOp::Quantile | RangeOp::RateCounter);
        let budget = self.budget.clone();
        let max_series = self.engine.limits.max_range_series;
        let columnar = from_columns(r);
        let make = || RangeAcc {
            r,
            grouping,
            edges: &edges,
            keep_raw,
            columnar,
            ids: HashMap::new(),
            series: Vec::new(),
            buckets: Vec::new(),
            rows: foldhash::HashMap::default(),
            last_bucket: (i64::MAX, i64::MIN, 0),
            error: None,
            max_series,
            budget: budget.clone(),
        };
        let (acc, stats) = self.engine.fold(
            &r.log.matchers,
            (first.saturating_add(1), last.saturating_add(1)),
            self.budget.clone(),
            &make,
        )?;
        self.stats.add(&stats);
        if let Some(e) = acc.error {
            return Err(e);
        }
        self.budget.check()?;
        if r.op == RangeOp::Absent {
            return Ok(self.absent(r, &edges, &acc.buckets));
        }
        self.windows(r, &edges, &acc)
    }

    /// `absent_over_time`: 1 at each step whose window holds no line, labelled with the
    /// selector's equality matchers.
    fn absent(&self, r: &RangeAgg, edges: &[i64], buckets: &[BTreeMap<u32, Agg>]) -> Matrix {
        let edge_at = |t: i64| edges.binary_search(&t).unwrap_or(0);
        let labels: Series = r
            .log
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq)
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect();
        let mut b = Builder::new(self.times.len());
        for (k, t) in self.times.iter().enumerate() {
            let (lo, hi) = (
                edge_at(t - r.offset_ns - r.range_ns),
                edge_at(t - r.offset_ns),
            );
            let any = buckets
                .iter()
                .any(|bk| bk.range(lo as u32 + 1..=hi as u32).next().is_some());
            if !any {
                b.push(k, &labels, 1.0);
            }
        }
        b.m
    }

    /// Every step's window of every series, merged from the buckets between its edges.
    fn windows(
        &mut self,
        r: &RangeAgg,
        edges: &[i64],
        acc: &RangeAcc<'_>,
    ) -> Result<Matrix, QueryError> {
        let range_s = r.range_ns as f64 / 1e9;
        let edge_at = |t: i64| edges.binary_search(&t).unwrap_or(0);
        let mut b = Builder::new(self.times.len());
        for (k, t) in self.times.iter().enumerate() {
            if k % STEPS_PER_CHECK == 0 {
                self.budget.check()?;
            }
            let (lo, hi) = (
                edge_at(t - r.offset_ns - r.range_ns),
                edge_at(t - r.offset_ns),
            );
            let mut points = 0;
            for (sid, bk) in acc.buckets.iter().enumerate() {
                let mut w = Agg::default();
                for (_, a) in bk.range(lo as u32 + 1..=hi as u32) {
                    w.merge(a, acc.keep_raw);
                }
                if w.count == 0 {
                    continue;
                }
                let window = (t - r.offset_ns - r.range_ns, t - r.offset_ns);
                if let Some(v) = window_value(r, &mut w, range_s, window) {
                    b.push(k, &acc.series[sid], v);
                    points += 1;
                }
            }
            // Counted once per step: at most one step's points (max_range_series) over.
            self.budget.hold(points * POINT_BYTES)?;
        }
        Ok(b.m)
    }
}

/// Whether a range aggregation can be answered from a block's columns (time, stream, line
/// length, level): a count or a byte count of every line, with no stage that could drop a
/// line or change its labels (`| drop __error__` changes nothing when nothing parses).
fn from_columns(r: &RangeAgg) -> bool {
    let counts = matches!(
        r.op,
        RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Absent
    );
    counts
        && r.unwrap.is_none()
        && r.post_unwrap.is_empty()
        && crate::query::pipeline::keeps_every_line_as_stored(&r.log.pipeline)
}

/// Folds lines into per-series buckets.
struct RangeAcc<'a> {
    r: &'a RangeAgg,
    grouping: Option<&'a Grouping>,
    edges: &'a [i64],
    keep_raw: bool,
    /// [`from_columns`] of `r`.
    columnar: bool,
    ids: HashMap<Series, usize>,
    /// The series of a stream's rows, by level: rows skip building their labels.
    rows: foldhash::HashMap<StreamId, Vec<(Option<String>, usize)>>,
    series: Vec<Series>,
    buckets: Vec<BTreeMap<u32, Agg>>,
    /// The last bucket found and the edges around it, `(after, up to, bucket)`: rows come in
    /// time order mostly, so most need no search.
    last_bucket: (i64, i64, u32),
    error: Option<QueryError>,
    max_series: usize,
    budget: Budget,
}

/// What one series' window bucket holds (its aggregate and its tree node).
const BUCKET_BYTES: usize = 160;
/// What one raw sample kept for `quantile_over_time` or a counter rate holds.
const RAW_SAMPLE_BYTES: usize = 16;
/// What one point of a result holds.
const POINT_BYTES: usize = 16;

impl Fold for RangeAcc<'_> {
    fn required_tokens(&self, stream_label: &dyn Fn(&str) -> bool) -> Vec<u64> {
        crate::query::pipeline::required_tokens(&self.r.log.pipeline, stream_label)
    }

    fn order_sensitive(&self) -> bool {
        self.r.unwrap.is_some()
    }

    fn columns_suffice(&self, facts: &BlockFacts<'_>) -> bool {
        if !self.columnar {
            return false;
        }
        if self.r.op == RangeOp::Absent {
            return true;
        }
        let Some(names) = facts.names else {
            return false;
        };
        let shown = |name: &str| self.shown(name);
        let hidden = names
            .iter()
            .all(|n| std::str::from_utf8(n).is_ok_and(|n| !shown(n)));
        hidden && (facts.levels_listed || !shown(LEVEL_LABEL))
    }

    fn row(&mut self, id: StreamId, stream: &[(String, String)], row: &Row<'_>) -> bool {
        let sid = match self.row_series(id, stream, row.level) {
            Some(sid) => sid,
            None => return false,
        };
        let value = match self.r.op {
            RangeOp::Bytes | RangeOp::BytesRate => row.line_len as f64,
            _ => 1.0,
        };
        self.add(sid, row.ts_ns, value)
    }

    /// A span folds alike when no window edge lies inside it (and the columns answer the
    /// query, which then reads only counts and sums).
    fn folds_alike(&self, min_ts_ns: i64, max_ts_ns: i64) -> bool {
        let bucket = |ts: i64| self.edges.partition_point(|&e| e < ts);
        self.columnar && bucket(min_ts_ns) == bucket(max_ts_ns)
    }

    fn group(&mut self, id: StreamId, stream: &[(String, String)], g: &Group<'_>) -> bool {
        let Some(sid) = self.row_series(id, stream, g.level) else {
            return false;
        };
        let sum = match self.r.op {
            RangeOp::Bytes | RangeOp::BytesRate => g.line_bytes as f64,
            _ => g.count as f64,
        };
        let bucket = self.bucket_of(g.min_ts_ns);
        match self.held_bucket(sid, bucket) {
            Some(agg) => agg.add_many((g.min_ts_ns, g.max_ts_ns), g.count, sum),
            None => return false,
        }
        true
    }

    fn merge(&mut self, other: Self) {
        if self.error.is_none() {
            self.error = other.error;
        }
        for (series, buckets) in other.series.into_iter().zip(other.buckets) {
            if self.error.is_some() {
                return;
            }
            // The other worker held this series and its buckets: what is merged into one
            // already held here is released.
            let bytes = series_bytes(&series);
            let Some(sid) = self.series_id(series) else {
                return;
            };
            self.budget.release(bytes);
            let mine = &mut self.buckets[sid];
            for (b, agg) in buckets {
                match mine.entry(b) {
                    Entry::Vacant(e) => {
                        e.insert(agg);
                    }
                    Entry::Occupied(mut e) => {
                        e.get_mut().merge(&agg, self.keep_raw);
                        self.budget.release(BUCKET_BYTES);
                    }
                }
            }
        }
    }

    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool {
        let Some(out) = run_pipeline(&self.r.log.pipeline, rec) else {
            return true;
        };
        stats.post_filter_lines += 1;
        let mut labels = out.labels;
        // A line no stage rewrote counts its stored bytes (also where they are not UTF-8), as
        // the columns and Loki count them.
        let line_len = match out.line {
            std::borrow::Cow::Borrowed(_) => rec.view.line.len(),
            std::borrow::Cow::Owned(l) => l.len(),
        };
        let Some(value) = self.value(line_len, &mut labels) else {
            return true;
        };
        for p in &self.r.post_unwrap {
            if !crate::query::pipeline::label_passes(p, &mut labels) {
                return true;
            }
        }
        let mut series: Series = labels.flat();
        if let Some(kind) = series.get(ERROR_LABEL).cloned() {
            series.remove(ERROR_DETAILS_LABEL);
            let shown = render_series(&series);
            self.error = Some(QueryError::bad(format!(
                "pipeline error: '{kind}' for series: '{shown}'.\nUse a label filter to \
                 intercept this error, or use the error filter to remove error labels: \
                 | __error__=\"\" or | drop __error__, __error_details__"
            )));
            return false;
        }
        if self.r.op == RangeOp::Absent {
            series.clear();
        } else if let Some(g) = self.grouping {
            group_labels(&mut series, g);
        }
        let Some(sid) = self.series_id(series) else {
            return false;
        };
        self.add(sid, rec.view.ts_ns, value)
    }
}

impl RangeAcc<'_> {
    /// Whether a label of this name stays in the samples' series after grouping.
    fn shown(&self, name: &str) -> bool {
        match self.grouping {
            _ if self.r.op == RangeOp::Absent => false,
            None => true,
            Some(g) if g.without => !g.labels.iter().any(|l| l == name),
            Some(g) => g.labels.iter().any(|l| l == name),
        }
    }

    /// The series of a row of stream `id` with this level (its labels, the level as
    /// `detected_level` metadata would give it, grouped), found once per stream and level.
    fn row_series(
        &mut self,
        id: StreamId,
        stream: &[(String, String)],
        level: Option<&str>,
    ) -> Option<usize> {
        let level = level.filter(|_| self.shown(LEVEL_LABEL));
        if let Some(known) = self.rows.get(&id)
            && let Some((_, sid)) = known.iter().find(|(l, _)| l.as_deref() == level)
        {
            return Some(*sid);
        }
        let mut series: Series = stream.iter().cloned().collect();
        if let Some(l) = level {
            series.insert(LEVEL_LABEL.to_owned(), l.to_owned());
        }
        if self.r.op == RangeOp::Absent {
            series.clear();
        } else if let Some(g) = self.grouping {
            group_labels(&mut series, g);
        }
        let sid = self.series_id(series)?;
        self.rows
            .entry(id)
            .or_default()
            .push((level.map(str::to_owned), sid));
        Some(sid)
    }

    /// Folds one sample of series `sid` into its bucket; `false` (with the error set) when
    /// the budget is spent.
    fn add(&mut self, sid: usize, ts: i64, value: f64) -> bool {
        let bucket = self.bucket_of(ts);
        let keep_raw = self.keep_raw;
        match self.held_bucket(sid, bucket) {
            Some(agg) => agg.add(ts, value, keep_raw),
            None => return false,
        }
        true
    }

    /// Series `sid`'s `bucket`, after counting in the budget what one more sample there
    /// holds (the bucket, if it is new, and the raw sample, if samples are kept); `None`
    /// (with the error set) when the budget is spent.
    fn held_bucket(&mut self, sid: usize, bucket: u32) -> Option<&mut Agg> {
        let raw = if self.keep_raw { RAW_SAMPLE_BYTES } else { 0 };
        let entry = self.buckets[sid].entry(bucket);
        let held = match entry {
            Entry::Occupied(_) => raw,
            Entry::Vacant(_) => raw + BUCKET_BYTES,
        };
        if held > 0
            && let Err(e) = self.budget.hold(held)
        {
            self.error = Some(e);
            return None;
        }
        Some(entry.or_default())
    }

    /// The bucket of a sample at `ts`: how many edges lie before it.
    fn bucket_of(&mut self, ts: i64) -> u32 {
        let (after, up_to, bucket) = self.last_bucket;
        if after < ts && ts <= up_to {
            return bucket;
        }
        let b = self.edges.partition_point(|&e| e < ts);
        let after = b.checked_sub(1).map_or(i64::MIN, |i| self.edges[i]);
        let up_to = self.edges.get(b).copied().unwrap_or(i64::MAX);
        self.last_bucket = (after, up_to, b as u32);
        b as u32
    }
}

impl RangeAcc<'_> {
    /// The sample a line gives: its count or bytes, or its unwrapped label (`None` when the
    /// line has no such label; a value that does not convert is an extraction error).
    fn value(&self, line_len: usize, labels: &mut Labels) -> Option<f64> {
        let Some(u) = &self.r.unwrap else {
            return Some(match self.r.op {
                RangeOp::Bytes | RangeOp::BytesRate => line_len as f64,
                _ => 1.0,
            });
        };
        // A line without the label (or with it empty) gives no sample, as in Loki.
        let raw = match labels.get(&u.label) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => return None,
        };
        labels.remove(&u.label);
        Some(match unwrap_value(raw.trim(), u.conv) {
            Some(v) => v,
            None => {
                let details = format!("cannot convert {raw:?} of label {}", u.label);
                set_error(labels, "SampleExtractionErr", &details);
                0.0
            }
        })
    }

    /// The index of `series`, which is added (and counted) if it is new; `None` after
    /// setting the error when the series limit or the budget is reached.
    fn series_id(&mut self, series: Series) -> Option<usize> {
        if let Some(&i) = self.ids.get(&series) {
            return Some(i);
        }
        if self.series.len() >= self.max_series {
            self.error = Some(series_limit(self.max_series));
            return None;
        }
        if let Err(e) = self.budget.hold(series_bytes(&series)) {
            self.error = Some(e);
            return None;
        }
        self.series.push(series.clone());
        self.buckets.push(BTreeMap::new());
        self.ids.insert(series, self.series.len() - 1);
        Some(self.series.len() - 1)
    }
}

/// What a series key holds: twice its text (the key and the id map) and a node per label.
fn series_bytes(s: &Series) -> usize {
    2 * s
        .iter()
        .map(|(k, v)| crate::query::value::LABEL_BYTES + k.len() + v.len())
        .sum::<usize>()
}

fn unwrap_value(s: &str, conv: UnwrapConv) -> Option<f64> {
    match conv {
        UnwrapConv::None => s.parse().ok(),
        UnwrapConv::Bytes => parse_bytes(s).map(|b| b as f64),
        UnwrapConv::Duration | UnwrapConv::DurationSeconds => {
            parse_duration(s).map(|ns| ns as f64 / 1e9)
        }
    }
}
