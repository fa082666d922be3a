//! The metric side of the LogQL syntax tree: range aggregations over a log query, vector
//! aggregations, binary operations with their vector matching, and label functions.
//!
//! Must not: parse, print or evaluate.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Count,
    Rate,
    Bytes,
    BytesRate,
    Absent,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Stddev,
    Stdvar,
    Quantile,
    RateCounter,
}

const RANGE_OPS: &[(RangeOp, &str)] = &[
    (RangeOp::Count, "count_over_time"),
    (RangeOp::Rate, "rate"),
    (RangeOp::Bytes, "bytes_over_time"),
    (RangeOp::BytesRate, "bytes_rate"),
    (RangeOp::Absent, "absent_over_time"),
    (RangeOp::Sum, "sum_over_time"),
    (RangeOp::Avg, "avg_over_time"),
    (RangeOp::Min, "min_over_time"),
    (RangeOp::Max, "max_over_time"),
    (RangeOp::First, "first_over_time"),
    (RangeOp::Last, "last_over_time"),
    (RangeOp::Stddev, "stddev_over_time"),
    (RangeOp::Stdvar, "stdvar_over_time"),
    (RangeOp::Quantile, "quantile_over_time"),
    (RangeOp::RateCounter, "rate_counter"),
];

impl RangeOp {
    pub fn parse(s: &str) -> Option<RangeOp> {
        RANGE_OPS.iter().find(|(_, n)| *n == s).map(|(op, _)| *op)
    }

    pub fn as_str(self) -> &'static str {
        RANGE_OPS
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("?", |(_, n)| n)
    }

    /// Whether the function takes unwrapped values (and requires `unwrap`).
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::Count | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Absent
        ) && self != RangeOp::Rate
    }

    /// Whether the function accepts `unwrap` at all (`rate` does, optionally).
    pub fn allows_unwrap(self) -> bool {
        self.needs_unwrap() || self == RangeOp::Rate
    }

    /// Whether the value of a merged series is the sum of the values of its parts, so that an
    /// enclosing `sum by (...)` may group the samples before the windows are built (as Loki
    /// does): the range aggregation then holds one series per group, not one per label set.
    pub fn is_additive(self) -> bool {
        matches!(
            self,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Sum
        )
    }

    /// Whether `by`/`without` may follow the function: only those that pick or summarise
    /// samples (Loki refuses grouping on the counting and summing ones).
    pub fn allows_grouping(self) -> bool {
        matches!(
            self,
            RangeOp::Avg
                | RangeOp::Stddev
                | RangeOp::Stdvar
                | RangeOp::Quantile
                | RangeOp::Max
                | RangeOp::Min
                | RangeOp::First
                | RangeOp::Last
        )
    }
}

/// `by (...)` or `without (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RangeAgg {
    pub op: RangeOp,
    /// φ of `quantile_over_time`.
    pub param: Option<f64>,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    /// Label filters after `unwrap`.
    pub post_unwrap: Vec<LabelPred>,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub grouping: Option<Grouping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VecOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

const VEC_OPS: &[(VecOp, &str)] = &[
    (VecOp::Sum, "sum"),
    (VecOp::Avg, "avg"),
    (VecOp::Min, "min"),
    (VecOp::Max, "max"),
    (VecOp::Count, "count"),
    (VecOp::Stddev, "stddev"),
    (VecOp::Stdvar, "stdvar"),
    (VecOp::Topk, "topk"),
    (VecOp::Bottomk, "bottomk"),
    (VecOp::Sort, "sort"),
    (VecOp::SortDesc, "sort_desc"),
];

impl VecOp {
    pub fn parse(s: &str) -> Option<VecOp> {
        VEC_OPS.iter().find(|(_, n)| *n == s).map(|(op, _)| *op)
    }

    pub fn as_str(self) -> &'static str {
        VEC_OPS
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("?", |(_, n)| n)
    }
}

#[derive(Debug, Clone)]
pub struct VecAgg {
    pub op: VecOp,
    /// k of `topk`/`bottomk`.
    pub param: Option<f64>,
    pub grouping: Option<Grouping>,
    pub inner: Box<MetricExpr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// Binding strength, Prometheus's order: `or` < `and unless` < comparisons < `+ -` <
    /// `* / %` < `^`.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// `on(...)`/`ignoring(...)` and `group_left(...)`/`group_right(...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorMatching {
    pub on: bool,
    pub labels: Vec<String>,
    /// `Some(false)` group_left, `Some(true)` group_right.
    pub group_right: Option<bool>,
    pub include: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum MetricExpr {
    Range(RangeAgg),
    Agg(VecAgg),
    Binary {
        op: BinOp,
        bool_mod: bool,
        matching: Option<VectorMatching>,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    Literal(f64),
    Vector(f64),
    LabelReplace {
        inner: Box<MetricExpr>,
        dst: String,
        replacement: String,
        src: String,
        regex: String,
        re: Regex,
    },
    Paren(Box<MetricExpr>),
}

impl MetricExpr {
    /// Whether the expression is a scalar (a literal, or arithmetic of literals).
    pub fn is_scalar(&self) -> bool {
        match self {
            MetricExpr::Literal(_) => true,
            MetricExpr::Paren(e) => e.is_scalar(),
            MetricExpr::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }
}
