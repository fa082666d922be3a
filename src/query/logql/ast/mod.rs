//! The LogQL syntax tree.
//!
//! Owns: the node types the parser builds, the printer prints and the evaluator runs.
//!
//! Must not: parse, print or evaluate.
//!
//! Layout: this file holds the query and its log side (selectors, filters, parsers, label
//! stages); `metric` the metric side (range and vector aggregations, binary operations).

mod metric;

pub use metric::*;

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
