//! The LogQL syntax tree.
//!
//! Owns: the node types the parser builds, the printer prints and the evaluator runs.
//!
//! Must not: parse, print or evaluate.

use regex::Regex;

use super::template::Template;

/// A whole query.
#[derive(Debug, Clone)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

/// `name op "value"`; regular expressions are anchored at both ends, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    pub re: Option<Regex>,
}

impl Matcher {
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
    Pattern,
    NotPattern,
}

impl LineOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineOp::Contains => "|=",
            LineOp::NotContains => "!=",
            LineOp::Match => "|~",
            LineOp::NotMatch => "!~",
            LineOp::Pattern => "|>",
            LineOp::NotPattern => "!>",
        }
    }

    pub fn negated(self) -> bool {
        matches!(
            self,
            LineOp::NotContains | LineOp::NotMatch | LineOp::NotPattern
        )
    }
}

/// One alternative of a line filter.
#[derive(Debug, Clone)]
pub enum FilterArg {
    Text(String),
    Regex(String, Regex),
    Pattern(String, super::pattern::Pattern),
    Ip(String, super::ip::IpMatcher),
}

/// `|= "a" or "b"`: the line passes when any alternative matches (none, when negated).
#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineOp,
    pub args: Vec<FilterArg>,
}

#[derive(Debug, Clone)]
pub enum Parser {
    /// Field extractions `name="path"`; empty means every field.
    Json(Vec<(String, String)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        fields: Vec<(String, String)>,
    },
    Regexp(String, Regex),
    Pattern(String, super::pattern::Pattern),
    Unpack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// The literal of a numeric label filter, which also says how the label is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumLit {
    Number(f64),
    /// Nanoseconds; the label is read as a duration.
    Duration(i64),
    /// The label is read as a byte size.
    Bytes(u64),
}

#[derive(Debug, Clone)]
pub enum LabelPred {
    And(Box<LabelPred>, Box<LabelPred>),
    Or(Box<LabelPred>, Box<LabelPred>),
    Str(Matcher),
    Num {
        name: String,
        op: CmpOp,
        lit: NumLit,
    },
    Ip {
        name: String,
        negate: bool,
        text: String,
        ip: super::ip::IpMatcher,
    },
}

/// `dst=src` (rename) or `dst="{{template}}"`.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    Rename { dst: String, src: String },
    Template { dst: String, tmpl: Template },
}

/// An item of `drop` or `keep`: a name, or a name with a matcher.
#[derive(Debug, Clone)]
pub struct LabelSel {
    pub name: String,
    pub matcher: Option<Matcher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConv {
    None,
    Bytes,
    Duration,
    DurationSeconds,
}

#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conv: UnwrapConv,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Line(LineFilter),
    Parse(Parser),
    Label(LabelPred),
    LineFormat(Template),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<LabelSel>),
    Keep(Vec<LabelSel>),
    Decolorize,
}

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
