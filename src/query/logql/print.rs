//! Printing LogQL: the canonical one-line text of a query (which parses back to the same
//! tree) and the indented form `format_query` returns for long queries.
//!
//! Owns: `Display` for the syntax tree, duration and string literal formatting.
//!
//! Must not: change meaning: `parse(print(q))` prints the same text again.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;

/// Width under which `pretty` keeps a query on one line.
const PRETTY_WIDTH: usize = 100;

/// A duration as Prometheus prints one: `1h30m`, `5m`, `1d`, `250ms`.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ns;
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    if rest % 1_000_000 != 0 {
        // Below a millisecond: Go's units.
        let (v, unit) = if rest % 1000 == 0 {
            (rest / 1000, "us")
        } else {
            (rest, "ns")
        };
        let _ = write!(out, "{v}{unit}");
        return out;
    }
    let mut ms = rest / 1_000_000;
    for (unit, size) in [
        ("y", 365 * 86_400_000i64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}

/// A byte size in the largest unit that divides it exactly (`20MB`, `1KiB`, `512B`).
pub fn format_bytes(b: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("PB", 1_000_000_000_000_000),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1000),
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    UNITS
        .iter()
        .find(|(_, n)| b >= *n && b.is_multiple_of(*n))
        .map_or_else(|| format!("{b}B"), |(u, n)| format!("{}{u}", b / n))
}

/// A Go-style double-quoted string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn num(v: f64) -> String {
    crate::query::value::format_float(v)
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

impl Display for Matcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), quote(&self.value))
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        write!(f, "{{{}}}", m.join(", "))?;
        for s in &self.pipeline {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl Display for FilterArg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FilterArg::Text(s) | FilterArg::Regex(s, _) | FilterArg::Pattern(s, _) => {
                f.write_str(&quote(s))
            }
            FilterArg::Ip(s, _) => write!(f, "ip({})", quote(s)),
        }
    }
}

fn extractions(out: &mut Formatter<'_>, list: &[(String, String)]) -> fmt::Result {
    let items: Vec<String> = list
        .iter()
        .map(|(n, p)| {
            if n == p {
                n.clone()
            } else {
                format!("{n}={}", quote(p))
            }
        })
        .collect();
    if !items.is_empty() {
        write!(out, " {}", items.join(", "))?;
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Line(l) => {
                let args: Vec<String> = l.args.iter().map(ToString::to_string).collect();
                write!(f, "{} {}", l.op.as_str(), args.join(" or "))
            }
            Stage::Parse(Parser::Json(list)) => {
                f.write_str("| json")?;
                extractions(f, list)
            }
            Stage::Parse(Parser::Logfmt {
                strict,
                keep_empty,
                fields,
            }) => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                extractions(f, fields)
            }
            Stage::Parse(Parser::Regexp(s, _)) => write!(f, "| regexp {}", quote(s)),
            Stage::Parse(Parser::Pattern(s, _)) => write!(f, "| pattern {}", quote(s)),
            Stage::Parse(Parser::Unpack) => f.write_str("| unpack"),
            Stage::Label(p) => write!(f, "| {p}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", quote(t.source())),
            Stage::LabelFormat(list) => {
                let items: Vec<String> = list
                    .iter()
                    .map(|l| match l {
                        LabelFmt::Rename { dst, src } => format!("{dst}={src}"),
                        LabelFmt::Template { dst, tmpl } => {
                            format!("{dst}={}", quote(tmpl.source()))
                        }
                    })
                    .collect();
                write!(f, "| label_format {}", items.join(", "))
            }
            Stage::Drop(list) | Stage::Keep(list) => {
                let word = if matches!(self, Stage::Drop(_)) {
                    "drop"
                } else {
                    "keep"
                };
                let items: Vec<String> = list
                    .iter()
                    .map(|s| {
                        s.matcher
                            .as_ref()
                            .map_or(s.name.clone(), ToString::to_string)
                    })
                    .collect();
                write!(f, "| {word} {}", items.join(", "))
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl Display for LabelPred {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelPred::And(a, b) => write!(f, "{} and {}", paren_or(a), paren_or(b)),
            LabelPred::Or(a, b) => write!(f, "{a} or {b}"),
            LabelPred::Str(m) => m.fmt(f),
            LabelPred::Num { name, op, lit } => {
                let v = match lit {
                    NumLit::Number(n) => num(*n),
                    NumLit::Duration(ns) => format_duration(*ns),
                    NumLit::Bytes(b) => format_bytes(*b),
                };
                write!(f, "{name}{}{v}", op.as_str())
            }
            LabelPred::Ip {
                name, negate, text, ..
            } => write!(
                f,
                "{name}{}ip({})",
                if *negate { "!=" } else { "=" },
                quote(text)
            ),
        }
    }
}

/// `or` inside `and` needs parentheses to keep its meaning.
fn paren_or(p: &LabelPred) -> String {
    match p {
        LabelPred::Or(..) => format!("({p})"),
        _ => p.to_string(),
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let word = if self.without { "without" } else { "by" };
        write!(f, "{word} ({})", self.labels.join(", "))
    }
}

impl Display for RangeAgg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.as_str())?;
        if let Some(p) = self.param {
            write!(f, "{}, ", num(p))?;
        }
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            match u.conv {
                UnwrapConv::None => write!(f, " | unwrap {}", u.label)?,
                UnwrapConv::Bytes => write!(f, " | unwrap bytes({})", u.label)?,
                UnwrapConv::Duration => write!(f, " | unwrap duration({})", u.label)?,
                UnwrapConv::DurationSeconds => {
                    write!(f, " | unwrap duration_seconds({})", u.label)?
                }
            }
            for p in &self.post_unwrap {
                write!(f, " | {p}")?;
            }
        }
        write!(f, " [{}]", format_duration(self.range_ns))?;
        if self.offset_ns != 0 {
            write!(f, " offset {}", format_duration(self.offset_ns))?;
        }
        f.write_str(")")?;
        if let Some(g) = &self.grouping {
            write!(f, " {g}")?;
        }
        Ok(())
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range(r) => r.fmt(f),
            MetricExpr::Agg(a) => {
                f.write_str(a.op.as_str())?;
                if let Some(g) = &a.grouping {
                    write!(f, " {g} ")?;
                }
                f.write_str("(")?;
                if let Some(k) = a.param {
                    write!(f, "{}, ", num(k))?;
                }
                write!(f, "{})", a.inner)
            }
            MetricExpr::Binary {
                op,
                bool_mod,
                matching,
                lhs,
                rhs,
            } => {
                let mods = modifiers(*bool_mod, matching.as_ref());
                write!(f, "{lhs} {}{mods} {rhs}", op.as_str())
            }
            MetricExpr::Literal(v) => f.write_str(&num(*v)),
            MetricExpr::Vector(v) => write!(f, "vector({})", num(*v)),
            MetricExpr::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
                ..
            } => write!(
                f,
                "label_replace({inner}, {}, {}, {}, {})",
                quote(dst),
                quote(replacement),
                quote(src),
                quote(regex)
            ),
            MetricExpr::Paren(e) => write!(f, "({e})"),
        }
    }
}

/// What follows a binary operator: `bool`, `on(...)`/`ignoring(...)`, `group_*(...)`.
fn modifiers(bool_mod: bool, matching: Option<&VectorMatching>) -> String {
    let mut out = String::new();
    if bool_mod {
        out.push_str(" bool");
    }
    if let Some(m) = matching {
        let word = if m.on { "on" } else { "ignoring" };
        let _ = write!(out, " {word}({})", m.labels.join(", "));
        if let Some(right) = m.group_right {
            let _ = write!(out, " {}", group(right, &m.include));
        }
    }
    out
}

/// `group_left`/`group_right`, with its label list when it has one.
fn group(right: bool, include: &[String]) -> String {
    let word = if right { "group_right" } else { "group_left" };
    if include.is_empty() {
        word.to_owned()
    } else {
        format!("{word}({})", include.join(", "))
    }
}

/// The text `format_query` returns: one line when it fits, otherwise aggregations and
/// binary operations are broken over indented lines.
pub fn pretty(e: &Expr) -> String {
    let flat = e.to_string();
    match e {
        Expr::Metric(m) if flat.len() > PRETTY_WIDTH => {
            let mut out = String::new();
            pretty_metric(m, 0, &mut out);
            out
        }
        _ => flat,
    }
}

fn pretty_metric(m: &MetricExpr, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let flat = m.to_string();
    if flat.len() + pad.len() <= PRETTY_WIDTH {
        out.push_str(&pad);
        out.push_str(&flat);
        return;
    }
    match m {
        MetricExpr::Agg(a) => {
            out.push_str(&pad);
            out.push_str(a.op.as_str());
            if let Some(g) = &a.grouping {
                let _ = write!(out, " {g}");
            }
            out.push_str(" (\n");
            if let Some(k) = a.param {
                let _ = writeln!(out, "{pad}  {},", num(k));
            }
            pretty_metric(&a.inner, depth + 1, out);
            let _ = write!(out, "\n{pad})");
        }
        MetricExpr::Range(r) => {
            let _ = writeln!(out, "{pad}{}(", r.op.as_str());
            if let Some(p) = r.param {
                let _ = writeln!(out, "{pad}  {},", num(p));
            }
            let _ = write!(out, "{pad}  {}", r.log);
            if r.unwrap.is_some() {
                // The unwrap part prints with the rest of the range on one line.
                let text = r.to_string();
                let log = r.log.to_string();
                if let Some(i) = text.find(&log) {
                    let rest = &text[i + log.len()..];
                    let close = rest.rfind(')').unwrap_or(rest.len());
                    let _ = write!(out, "{}\n{pad}){}", &rest[..close], &rest[close + 1..]);
                }
                return;
            }
            let _ = write!(out, " [{}]", format_duration(r.range_ns));
            if r.offset_ns != 0 {
                let _ = write!(out, " offset {}", format_duration(r.offset_ns));
            }
            let _ = write!(out, "\n{pad})");
            if let Some(g) = &r.grouping {
                let _ = write!(out, " {g}");
            }
        }
        MetricExpr::Binary {
            op,
            bool_mod,
            matching,
            lhs,
            rhs,
        } => {
            pretty_metric(lhs, depth, out);
            let mods = modifiers(*bool_mod, matching.as_ref());
            let _ = write!(out, "\n{pad}{}{mods}", op.as_str());
            out.push('\n');
            pretty_metric(rhs, depth, out);
        }
        MetricExpr::Paren(e) => {
            let _ = writeln!(out, "{pad}(");
            pretty_metric(e, depth + 1, out);
            let _ = write!(out, "\n{pad})");
        }
        _ => {
            out.push_str(&pad);
            out.push_str(&flat);
        }
    }
}
