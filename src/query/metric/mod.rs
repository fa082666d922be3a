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
//! Layout: `range` (range aggregations: the fold into buckets and the windows), `window` (a
//! window's value for each range function), `ops` (vector aggregations, binary operations,
//! `label_replace`).
//!
//! Must not: read records other than through [`Engine::scan`].

mod ops;
mod range;
mod window;

use std::collections::HashMap;

use super::engine::{Budget, Engine, Stats};
use super::error::QueryError;
use super::logql::ast::*;
use super::value::Series;
use ops::{aggregate, binary, label_replace};

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
