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

use std::collections::{BTreeMap, HashMap};

use super::engine::{Budget, Engine, Rec, ScanVisitor, Stats, run_pipeline};
use super::error::QueryError;
use super::logql::ast::*;
use super::logql::{parse_bytes, parse_duration};
use super::pipeline::{ERROR_DETAILS_LABEL, ERROR_LABEL, set_error};
use super::value::{Series, format_float};
use crate::store::Order;

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
struct Builder {
    m: Matrix,
    ids: HashMap<Series, usize>,
}

impl Builder {
    fn new(steps: usize) -> Builder {
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

    fn push(&mut self, step: usize, s: &Series, v: f64) {
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
            MetricExpr::Range(r) => Val::Vector(self.range(r)?),
            MetricExpr::Agg(a) => {
                let inner = match self.eval(&a.inner)? {
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

    fn range(&mut self, r: &RangeAgg) -> Result<Matrix, QueryError> {
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
            edges: &edges,
            keep_raw,
            ids: HashMap::new(),
            series: Vec::new(),
            buckets: Vec::new(),
            error: None,
            max_series: self.engine.limits.max_range_series,
        };
        let stats = self.engine.scan(
            &r.log.matchers,
            (first.saturating_add(1), last.saturating_add(1)),
            Order::Forward,
            self.budget,
            &mut acc,
        )?;
        self.stats.add(&stats);
        if let Some(e) = acc.error {
            return Err(e);
        }
        self.budget.check()?;
        let range_s = r.range_ns as f64 / 1e9;
        let n = self.times.len();
        let mut b = Builder::new(n);
        let edge_at = |t: i64| edges.binary_search(&t).unwrap_or(0);
        if r.op == RangeOp::Absent {
            let labels: Series = r
                .log
                .matchers
                .iter()
                .filter(|m| m.op == MatchOp::Eq)
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            for (k, t) in self.times.iter().enumerate() {
                let (lo, hi) = (
                    edge_at(t - r.offset_ns - r.range_ns),
                    edge_at(t - r.offset_ns),
                );
                let any = acc
                    .buckets
                    .iter()
                    .any(|bk| bk.range(lo as u32 + 1..=hi as u32).next().is_some());
                if !any {
                    b.push(k, &labels, 1.0);
                }
            }
            return Ok(b.m);
        }
        for (k, t) in self.times.iter().enumerate() {
            let (lo, hi) = (
                edge_at(t - r.offset_ns - r.range_ns),
                edge_at(t - r.offset_ns),
            );
            for (sid, bk) in acc.buckets.iter().enumerate() {
                let mut w = Agg::default();
                for (_, a) in bk.range(lo as u32 + 1..=hi as u32) {
                    w.merge(a, keep_raw);
                }
                if w.count == 0 {
                    continue;
                }
                let window = (t - r.offset_ns - r.range_ns, t - r.offset_ns);
                if let Some(v) = window_value(r, &mut w, range_s, window) {
                    b.push(k, &acc.series[sid], v);
                }
            }
        }
        Ok(b.m)
    }
}

/// Folds lines into per-series buckets.
struct RangeAcc<'a> {
    r: &'a RangeAgg,
    edges: &'a [i64],
    keep_raw: bool,
    ids: HashMap<Series, usize>,
    series: Vec<Series>,
    buckets: Vec<BTreeMap<u32, Agg>>,
    error: Option<QueryError>,
    max_series: usize,
}

impl ScanVisitor for RangeAcc<'_> {
    fn record(&mut self, rec: &Rec<'_>, stats: &mut Stats) -> bool {
        let Some(out) = run_pipeline(&self.r.log.pipeline, rec) else {
            return true;
        };
        stats.post_filter_lines += 1;
        let mut labels = out.labels;
        let value = match &self.r.unwrap {
            None => match self.r.op {
                RangeOp::Bytes | RangeOp::BytesRate => out.line.len() as f64,
                _ => 1.0,
            },
            Some(u) => {
                let raw = labels.get(&u.label).map(str::to_owned);
                let v = raw.as_deref().and_then(|s| unwrap_value(s.trim(), u.conv));
                labels.remove(&u.label);
                match v {
                    Some(v) => v,
                    None => {
                        let details = match raw {
                            Some(s) => format!("cannot convert {s:?} of label {}", u.label),
                            None => format!("label {} is missing", u.label),
                        };
                        set_error(&mut labels, "SampleExtractionErr", &details);
                        0.0
                    }
                }
            }
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
        } else if let Some(g) = &self.r.grouping {
            group_labels(&mut series, g);
        }
        let ts = rec.view.ts_ns;
        let bucket = self.edges.partition_point(|&e| e < ts) as u32;
        let sid = match self.ids.get(&series) {
            Some(&i) => i,
            None => {
                if self.series.len() >= self.max_series {
                    self.error = Some(series_limit(self.max_series));
                    return false;
                }
                self.series.push(series.clone());
                self.buckets.push(BTreeMap::new());
                self.ids.insert(series, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        self.buckets[sid]
            .entry(bucket)
            .or_default()
            .add(ts, value, self.keep_raw);
        true
    }
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

fn group_labels(s: &mut Series, g: &Grouping) {
    if g.without {
        for l in &g.labels {
            s.remove(l);
        }
    } else {
        s.retain(|k, _| g.labels.contains(k));
    }
}

/// Figures of the samples in one bucket or window.
#[derive(Debug, Clone)]
struct Agg {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: (i64, f64),
    last: (i64, f64),
    mean: f64,
    m2: f64,
    raw: Vec<(i64, f64)>,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: (i64::MAX, 0.0),
            last: (i64::MIN, 0.0),
            mean: 0.0,
            m2: 0.0,
            raw: Vec::new(),
        }
    }
}

impl Agg {
    fn add(&mut self, ts: i64, v: f64, keep_raw: bool) {
        self.merge(
            &Agg {
                count: 1,
                sum: v,
                min: v,
                max: v,
                first: (ts, v),
                last: (ts, v),
                mean: v,
                m2: 0.0,
                raw: if keep_raw { vec![(ts, v)] } else { Vec::new() },
            },
            keep_raw,
        );
    }

    fn merge(&mut self, o: &Agg, keep_raw: bool) {
        if o.count == 0 {
            return;
        }
        let (na, nb) = (self.count as f64, o.count as f64);
        let n = na + nb;
        let delta = o.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += o.m2 + delta * delta * na * nb / n;
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.first.0 < self.first.0 {
            self.first = o.first;
        }
        if o.last.0 >= self.last.0 {
            self.last = o.last;
        }
        if keep_raw {
            self.raw.extend_from_slice(&o.raw);
        }
    }
}

fn window_value(r: &RangeAgg, w: &mut Agg, range_s: f64, window: (i64, i64)) -> Option<f64> {
    let n = w.count as f64;
    Some(match r.op {
        RangeOp::Count => n,
        RangeOp::Rate if r.unwrap.is_some() => w.sum / range_s,
        RangeOp::Rate => n / range_s,
        RangeOp::Bytes | RangeOp::Sum => w.sum,
        RangeOp::BytesRate => w.sum / range_s,
        RangeOp::Avg => w.sum / n,
        RangeOp::Min => w.min,
        RangeOp::Max => w.max,
        RangeOp::First => w.first.1,
        RangeOp::Last => w.last.1,
        RangeOp::Stdvar => w.m2 / n,
        RangeOp::Stddev => (w.m2 / n).sqrt(),
        RangeOp::Quantile => {
            let mut vals: Vec<f64> = w.raw.iter().map(|(_, v)| *v).collect();
            quantile(r.param.unwrap_or(0.5), &mut vals)
        }
        RangeOp::RateCounter => {
            w.raw.sort_by_key(|(t, _)| *t);
            counter_rate(&w.raw, window)?
        }
        RangeOp::Absent => 1.0,
    })
}

/// Prometheus's φ-quantile with linear interpolation.
fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(f64::total_cmp);
    let rank = q * (vals.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(vals.len() - 1);
    let w = rank - lo as f64;
    vals[lo] * (1.0 - w) + vals[hi] * w
}

/// Prometheus's extrapolated counter rate over `(start, end]`.
fn counter_rate(s: &[(i64, f64)], (start, end): (i64, i64)) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    for w in s.windows(2) {
        if w[1].1 < w[0].1 {
            result += w[0].1;
        }
    }
    let secs = |ns: i64| ns as f64 / 1e9;
    let sampled = secs(last.0 - first.0);
    if sampled <= 0.0 {
        return None;
    }
    let avg = sampled / (s.len() - 1) as f64;
    let mut to_start = secs(first.0 - start);
    let to_end = secs(end - last.0);
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        to_start = to_start.min(to_zero);
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    Some(result * (interval / sampled) / secs(end - start))
}

fn aggregate(a: &VecAgg, inner: Matrix) -> Matrix {
    let steps = inner.points.len();
    let mut b = Builder::new(steps);
    for (k, points) in inner.points.iter().enumerate() {
        let mut groups: BTreeMap<Series, Vec<(usize, f64)>> = BTreeMap::new();
        for &(sid, v) in points {
            let mut key = inner.series[sid].clone();
            match &a.grouping {
                Some(g) => group_labels(&mut key, g),
                None if matches!(
                    a.op,
                    VecOp::Topk | VecOp::Bottomk | VecOp::Sort | VecOp::SortDesc
                ) => {}
                None => key.clear(),
            }
            if matches!(a.op, VecOp::Topk | VecOp::Bottomk) && a.grouping.is_none() {
                key.clear();
            }
            groups.entry(key).or_default().push((sid, v));
        }
        for (key, members) in groups {
            let vals: Vec<f64> = members.iter().map(|(_, v)| *v).collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let v = match a.op {
                VecOp::Sum => vals.iter().sum(),
                VecOp::Avg => mean,
                VecOp::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                VecOp::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                VecOp::Count => n,
                VecOp::Stddev => var.sqrt(),
                VecOp::Stdvar => var,
                VecOp::Topk | VecOp::Bottomk => {
                    let mut m = members;
                    let desc = a.op == VecOp::Topk;
                    m.sort_by(|x, y| {
                        let o = x.1.total_cmp(&y.1);
                        if desc { o.reverse() } else { o }
                    });
                    for (sid, v) in m.into_iter().take(a.param.unwrap_or(1.0) as usize) {
                        b.push(k, &inner.series[sid], v);
                    }
                    continue;
                }
                VecOp::Sort | VecOp::SortDesc => {
                    for (sid, v) in members {
                        b.push(k, &inner.series[sid], v);
                    }
                    continue;
                }
            };
            b.push(k, &key, v);
        }
    }
    b.m.sort = match a.op {
        VecOp::Sort => Some(false),
        VecOp::SortDesc => Some(true),
        _ => None,
    };
    b.m
}

/// `op` on two numbers: the value, and for comparisons whether it held.
fn apply(op: BinOp, a: f64, b: f64) -> (f64, bool) {
    let cmp = |c: bool| (if c { 1.0 } else { 0.0 }, c);
    match op {
        BinOp::Add => (a + b, true),
        BinOp::Sub => (a - b, true),
        BinOp::Mul => (a * b, true),
        BinOp::Div => (a / b, true),
        BinOp::Mod => (a % b, true),
        BinOp::Pow => (a.powf(b), true),
        BinOp::Eq => cmp(a == b),
        BinOp::Ne => cmp(a != b),
        BinOp::Gt => cmp(a > b),
        BinOp::Ge => cmp(a >= b),
        BinOp::Lt => cmp(a < b),
        BinOp::Le => cmp(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => (a, true),
    }
}

fn binary(
    op: BinOp,
    bool_mod: bool,
    matching: Option<&VectorMatching>,
    l: Val,
    r: Val,
    steps: usize,
) -> Result<Val, QueryError> {
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => {
            if op.is_comparison() && !bool_mod {
                return Err(QueryError::bad(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            if op.is_set() {
                return Err(QueryError::bad(format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    op.as_str()
                )));
            }
            Ok(Val::Scalar(
                a.iter().zip(&b).map(|(x, y)| apply(op, *x, *y).0).collect(),
            ))
        }
        (Val::Vector(m), Val::Scalar(s)) => vector_scalar(op, bool_mod, m, &s, false),
        (Val::Scalar(s), Val::Vector(m)) => vector_scalar(op, bool_mod, m, &s, true),
        (Val::Vector(a), Val::Vector(b)) => {
            if op.is_set() {
                Ok(Val::Vector(set_op(op, matching, a, b, steps)))
            } else {
                Ok(Val::Vector(vector_vector(
                    op, bool_mod, matching, a, b, steps,
                )?))
            }
        }
    }
}

fn vector_scalar(
    op: BinOp,
    bool_mod: bool,
    m: Matrix,
    s: &[f64],
    scalar_left: bool,
) -> Result<Val, QueryError> {
    if op.is_set() {
        return Err(QueryError::bad(format!(
            "set operator \"{}\" not allowed in binary scalar expression",
            op.as_str()
        )));
    }
    let mut b = Builder::new(m.points.len());
    for (k, points) in m.points.iter().enumerate() {
        for &(sid, v) in points {
            let (x, y) = if scalar_left { (s[k], v) } else { (v, s[k]) };
            let (res, held) = apply(op, x, y);
            let value = if !op.is_comparison() || bool_mod {
                res
            } else if held {
                v
            } else {
                continue;
            };
            b.push(k, &m.series[sid], value);
        }
    }
    Ok(Val::Vector(b.m))
}

fn signature(s: &Series, m: Option<&VectorMatching>) -> Series {
    match m {
        Some(m) if m.on => s
            .iter()
            .filter(|(k, _)| m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(m) => s
            .iter()
            .filter(|(k, _)| !m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => s.clone(),
    }
}

fn vector_vector(
    op: BinOp,
    bool_mod: bool,
    matching: Option<&VectorMatching>,
    a: Matrix,
    b: Matrix,
    steps: usize,
) -> Result<Matrix, QueryError> {
    let group_right = matching.and_then(|m| m.group_right);
    // The "one" side is the right unless group_right.
    let (many, one, swapped) = if group_right == Some(true) {
        (b, a, true)
    } else {
        (a, b, false)
    };
    let many_allowed = group_right.is_some();
    let mut out = Builder::new(steps);
    for k in 0..steps {
        let mut ones: HashMap<Series, (usize, f64)> = HashMap::new();
        for &(sid, v) in &one.points[k] {
            let sig = signature(&one.series[sid], matching);
            if ones.insert(sig.clone(), (sid, v)).is_some() {
                return Err(QueryError::bad(format!(
                    "found duplicate series for the match group {} on the {} hand-side of \
                     the operation; many-to-many matching not allowed: matching labels must \
                     be unique on one side",
                    render_series(&sig),
                    if swapped { "left" } else { "right" }
                )));
            }
        }
        let mut seen: HashMap<Series, ()> = HashMap::new();
        for &(sid, v) in &many.points[k] {
            let sig = signature(&many.series[sid], matching);
            let Some(&(oid, ov)) = ones.get(&sig) else {
                continue;
            };
            if !many_allowed && seen.insert(sig.clone(), ()).is_some() {
                return Err(QueryError::bad(format!(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right) for {}",
                    render_series(&sig)
                )));
            }
            let (x, y) = if swapped { (ov, v) } else { (v, ov) };
            let (res, held) = apply(op, x, y);
            let value = if !op.is_comparison() || bool_mod {
                res
            } else if held {
                x
            } else {
                continue;
            };
            let labels = result_labels(&many.series[sid], &one.series[oid], matching);
            out.push(k, &labels, value);
        }
    }
    Ok(out.m)
}

fn result_labels(many: &Series, one: &Series, m: Option<&VectorMatching>) -> Series {
    let Some(m) = m else {
        return many.clone();
    };
    if m.group_right.is_some() {
        let mut l = many.clone();
        for name in &m.include {
            match one.get(name) {
                Some(v) if !v.is_empty() => {
                    l.insert(name.clone(), v.clone());
                }
                _ => {
                    l.remove(name);
                }
            }
        }
        return l;
    }
    signature_result(many, m)
}

/// One-to-one results keep the `on` labels only, or drop the `ignoring` ones.
fn signature_result(s: &Series, m: &VectorMatching) -> Series {
    signature(s, Some(m))
}

fn set_op(
    op: BinOp,
    matching: Option<&VectorMatching>,
    a: Matrix,
    b: Matrix,
    steps: usize,
) -> Matrix {
    let mut out = Builder::new(steps);
    for k in 0..steps {
        let rsigs: std::collections::HashSet<Series> = b.points[k]
            .iter()
            .map(|&(sid, _)| signature(&b.series[sid], matching))
            .collect();
        let lsigs: std::collections::HashSet<Series> = a.points[k]
            .iter()
            .map(|&(sid, _)| signature(&a.series[sid], matching))
            .collect();
        for &(sid, v) in &a.points[k] {
            let present = rsigs.contains(&signature(&a.series[sid], matching));
            let keep = match op {
                BinOp::And => present,
                BinOp::Unless => !present,
                _ => true,
            };
            if keep {
                out.push(k, &a.series[sid], v);
            }
        }
        if op == BinOp::Or {
            for &(sid, v) in &b.points[k] {
                if !lsigs.contains(&signature(&b.series[sid], matching)) {
                    out.push(k, &b.series[sid], v);
                }
            }
        }
    }
    out.m
}

fn label_replace(
    m: Matrix,
    dst: &str,
    replacement: &str,
    src: &str,
    re: &regex::Regex,
    steps: usize,
) -> Matrix {
    let renamed: Vec<Series> = m
        .series
        .iter()
        .map(|s| {
            let v = s.get(src).map_or("", String::as_str);
            let mut out = s.clone();
            if let Some(caps) = re.captures(v) {
                let mut value = String::new();
                caps.expand(replacement, &mut value);
                if value.is_empty() {
                    out.remove(dst);
                } else {
                    out.insert(dst.to_owned(), value);
                }
            }
            out
        })
        .collect();
    let mut b = Builder::new(steps);
    for (k, points) in m.points.iter().enumerate() {
        for &(sid, v) in points {
            b.push(k, &renamed[sid], v);
        }
    }
    b.m
}

/// Formats a sample value for the wire.
pub fn sample_value(v: f64) -> String {
    format_float(v)
}
