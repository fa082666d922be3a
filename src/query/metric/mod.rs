//! Metric query evaluation: range aggregations over log lines, then vector aggregations,
//! binary operations and label functions, at every step of a range (or one instant).
//!
//! Owns: Loki's and Prometheus's semantics: windows are `(t - range, t]` shifted by
//! `offset`; a window without samples yields no point (never a zero); `absent_over_time`
//! yields 1 with the selector's equality labels; lines carrying `__error__` fail a metric
//! query with a pipeline error unless filtered out.
//!
//! Memory is bounded by the number of steps, not by the number of lines: each line is folded
//! into the bucket between two consecutive window edges, and a window is the merge of its
//! buckets (raw values are kept only for `quantile_over_time` and `rate_counter`).
//!
//! Must not: read records other than through [`Engine::scan`].

mod ops;
mod window;

use std::collections::{BTreeMap, HashMap};

use super::engine::{Budget, Engine, Rec, ScanVisitor, Stats, run_pipeline};
use super::error::QueryError;
use super::logql::ast::*;
use super::logql::{parse_bytes, parse_duration};
use super::pipeline::{ERROR_DETAILS_LABEL, ERROR_LABEL, set_error};
use super::value::{Labels, Series};
use crate::store::Order;
use ops::{aggregate, binary, label_replace};
use window::{Agg, window_value};

/// Steps evaluated between two deadline checks.
const STEPS_PER_CHECK: usize = 256;

/// Values at each step: a scalar per step, or series with their points.
#[derive(Debug, Clone)]
pub enum Val {
    Scalar(Vec<f64>),
    Vector(Matrix),
}

/// Series and, for each step, the points present: `(series index, value)`.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    pub series: Vec<Series>,
    pub points: Vec<Vec<(usize, f64)>>,
    /// `Some(desc)` when the outermost operation was `sort`/`sort_desc`.
    pub sort: Option<bool>,
}

impl Matrix {
    fn new(steps: usize) -> Matrix {
        Matrix {
            series: Vec::new(),
            points: vec![Vec::new(); steps],
            sort: None,
        }
    }
}

/// Interns series into a matrix.
pub(super) struct Builder {
    pub(super) m: Matrix,
    ids: HashMap<Series, usize>,
}

impl Builder {
    pub(super) fn new(steps: usize) -> Builder {
        Builder {
            m: Matrix::new(steps),
            ids: HashMap::new(),
        }
    }

    fn id(&mut self, s: &Series) -> usize {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        self.m.series.push(s.clone());
        self.ids.insert(s.clone(), self.m.series.len() - 1);
        self.m.series.len() - 1
    }

    pub(super) fn push(&mut self, step: usize, s: &Series, v: f64) {
        let id = self.id(s);
        self.m.points[step].push((id, v));
    }
}

/// Evaluates `expr` at `times` (nanoseconds).
pub fn eval(
    engine: &Engine,
    expr: &MetricExpr,
    times: &[i64],
    budget: Budget,
) -> Result<(Val, Stats), QueryError> {
    let mut cx = Cx {
        engine,
        times,
        budget,
        stats: Stats::default(),
    };
    let v = cx.eval(expr)?;
    if let Val::Vector(m) = &v {
        let live = m.series.len();
        if live > engine.limits.max_series {
            return Err(series_limit(engine.limits.max_series));
        }
    }
    Ok((v, cx.stats))
}

/// The range aggregation directly under a `sum`, and the grouping to apply to its samples,
/// when summing before windowing gives the same answer as after: an additive function
/// without a grouping of its own (Loki's rule). `sum(...)` without `by` groups by nothing.
fn pushed_down(a: &VecAgg) -> Option<(&RangeAgg, Grouping)> {
    let mut inner = &*a.inner;
    while let MetricExpr::Paren(e) = inner {
        inner = e;
    }
    match inner {
        MetricExpr::Range(r)
            if a.op == VecOp::Sum && r.op.is_additive() && r.grouping.is_none() =>
        {
            let g = a.grouping.clone().unwrap_or(Grouping {
                without: false,
                labels: Vec::new(),
            });
            Some((r, g))
        }
        _ => None,
    }
}

fn series_limit(n: usize) -> QueryError {
    QueryError::bad(format!(
        "maximum number of series ({n}) reached for a single query; consider reducing query \
         cardinality by adding more specific stream selectors, reducing the time range, or \
         aggregating results with functions like sum(), count() or topk()"
    ))
}

struct Cx<'e> {
    engine: &'e Engine,
    times: &'e [i64],
    budget: Budget,
    stats: Stats,
}

impl Cx<'_> {
    fn eval(&mut self, e: &MetricExpr) -> Result<Val, QueryError> {
        self.budget.check()?;
        let n = self.times.len();
        Ok(match e {
            MetricExpr::Literal(v) => Val::Scalar(vec![*v; n]),
            MetricExpr::Paren(inner) => self.eval(inner)?,
            MetricExpr::Vector(v) => {
                let mut b = Builder::new(n);
                for k in 0..n {
                    b.push(k, &Series::new(), *v);
                }
                Val::Vector(b.m)
            }
            MetricExpr::Range(r) => Val::Vector(self.range(r, r.grouping.as_ref())?),
            MetricExpr::Agg(a) => {
                let inner = match pushed_down(a) {
                    Some((r, g)) => Val::Vector(self.range(r, Some(&g))?),
                    None => self.eval(&a.inner)?,
                };
                let inner = match inner {
                    Val::Vector(m) => m,
                    Val::Scalar(_) => {
                        return Err(QueryError::bad(format!(
                            "parse error : unexpected scalar in {} aggregation",
                            a.op.as_str()
                        )));
                    }
                };
                Val::Vector(aggregate(a, inner))
            }
            MetricExpr::Binary {
                op,
                bool_mod,
                matching,
                lhs,
                rhs,
            } => {
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                binary(*op, *bool_mod, matching.as_ref(), l, r, n)?
            }
            MetricExpr::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                re,
                ..
            } => match self.eval(inner)? {
                Val::Vector(m) => Val::Vector(label_replace(m, dst, replacement, src, re, n)),
                s => s,
            },
        })
    }

    /// Evaluates a range aggregation whose samples are grouped by `grouping` (its own, or the
    /// one of an enclosing `sum` pushed down into it).
    fn range(&mut self, r: &RangeAgg, grouping: Option<&Grouping>) -> Result<Matrix, QueryError> {
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
        let mut acc = RangeAcc {
            r,
            grouping,
            edges: &edges,
            keep_raw,
            ids: HashMap::new(),
            series: Vec::new(),
            buckets: Vec::new(),
            error: None,
            max_series: self.engine.limits.max_range_series,
            budget: self.budget.clone(),
        };
        let stats = self.engine.scan(
            &r.log.matchers,
            (first.saturating_add(1), last.saturating_add(1)),
            Order::Forward,
            self.budget.clone(),
            &mut acc,
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

/// Folds lines into per-series buckets.
struct RangeAcc<'a> {
    r: &'a RangeAgg,
    grouping: Option<&'a Grouping>,
    edges: &'a [i64],
    keep_raw: bool,
    ids: HashMap<Series, usize>,
    series: Vec<Series>,
    buckets: Vec<BTreeMap<u32, Agg>>,
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

impl ScanVisitor for RangeAcc<'_> {
    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool {
        let Some(out) = run_pipeline(&self.r.log.pipeline, rec) else {
            return true;
        };
        stats.post_filter_lines += 1;
        let mut labels = out.labels;
        let Some(value) = self.value(out.line.len(), &mut labels) else {
            return true;
        };
        for p in &self.r.post_unwrap {
            if !super::pipeline::label_passes(p, &mut labels) {
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
        let ts = rec.view.ts_ns;
        let bucket = self.edges.partition_point(|&e| e < ts) as u32;
        let Some(sid) = self.series_id(series) else {
            return false;
        };
        let buckets = &mut self.buckets[sid];
        let mut held = if self.keep_raw { RAW_SAMPLE_BYTES } else { 0 };
        if !buckets.contains_key(&bucket) {
            held += BUCKET_BYTES;
        }
        if held > 0
            && let Err(e) = self.budget.hold(held)
        {
            self.error = Some(e);
            return false;
        }
        buckets
            .entry(bucket)
            .or_default()
            .add(ts, value, self.keep_raw);
        true
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

pub fn render_series(s: &Series) -> String {
    let items: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", items.join(", "))
}

pub(super) fn group_labels(s: &mut Series, g: &Grouping) {
    if g.without {
        for l in &g.labels {
            s.remove(l);
        }
    } else {
        s.retain(|k, _| g.labels.contains(k));
    }
}
