//! Running a log pipeline over one entry: line filters, parsers, label filters, formatting.
//!
//! Owns: Loki's per-entry semantics: parsed labels that collide get `_extracted`; parse and
//! format failures set `__error__` and `__error_details__` instead of dropping the line; a
//! missing label compares as the empty string in string filters and fails numeric ones.
//!
//! Must not: read the ledger, or keep state between entries.

pub(super) mod parsers;
pub(crate) use parsers::sanitize;

use std::borrow::Cow;

use super::logql::ast::*;
use super::logql::template::Data;
use super::logql::{parse_bytes, parse_duration};
use super::value::{Cat, Labels};

pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// An entry that passed the pipeline.
#[derive(Debug)]
pub struct Output<'a> {
    pub line: Cow<'a, str>,
    pub labels: Labels,
}

/// Runs `stages` over one entry. `None` means a filter dropped it.
pub fn run<'a>(
    stages: &[Stage],
    line: &'a str,
    ts_ns: i64,
    stream: &[(String, String)],
    metadata: &[(String, String)],
) -> Option<Output<'a>> {
    let mut line: Cow<'a, str> = Cow::Borrowed(line);
    let mut labels = Labels::new();
    for (k, v) in stream {
        labels.set(k.as_str(), v.as_str(), Cat::Stream);
    }
    for (k, v) in metadata {
        labels.set(k.as_str(), v.as_str(), Cat::Meta);
    }
    for stage in stages {
        match stage {
            Stage::Line(f) => {
                if !line_passes(f, &line) {
                    return None;
                }
            }
            Stage::Parse(p) => parsers::parse(p, &mut line, &mut labels),
            Stage::Label(p) => {
                if !label_passes(p, &mut labels) {
                    return None;
                }
            }
            Stage::LineFormat(t) => {
                let flat = labels.flat();
                match t.render(&Data {
                    labels: &flat,
                    line: &line,
                    ts_ns,
                }) {
                    Ok(s) => line = Cow::Owned(s),
                    Err(e) => set_error(&mut labels, "TemplateFormatErr", &e),
                }
            }
            Stage::LabelFormat(list) => label_format(list, &line, ts_ns, &mut labels),
            Stage::Drop(sels) => labels.retain(|k, v| !sels.iter().any(|s| selects(s, k, v))),
            Stage::Keep(sels) => labels.retain(|k, v| sels.iter().any(|s| selects(s, k, v))),
            Stage::Decolorize => {
                if line.contains('\x1b') {
                    line = Cow::Owned(decolorize(&line));
                }
            }
        }
    }
    Some(Output { line, labels })
}

/// Whether `stages` pass every entry with its stored line and labels unchanged: none, or only
/// `| drop` of the error labels, which nothing sets where nothing parses.
pub fn keeps_every_line_as_stored(stages: &[Stage]) -> bool {
    stages.iter().all(|s| {
        matches!(s, Stage::Drop(sels) if sels
            .iter()
            .all(|sel| sel.name == ERROR_LABEL || sel.name == ERROR_DETAILS_LABEL))
    })
}

/// Whether a pipeline needs labels at all (otherwise only line filters run).
pub fn only_line_filters(stages: &[Stage]) -> bool {
    stages.iter().all(|s| matches!(s, Stage::Line(_)))
}

/// Token hashes every entry that passes `stages` holds as whole words in its stored line or
/// metadata values: from the `|= "text"` filters that see the stored line (those before any
/// stage that rewrites it), and from the `| name="value"` filters (non-empty value) on a label
/// only metadata can hold there (no selected stream has it, and no parser, template or
/// `label_format` ran before). A scan may skip a block whose token filter lacks one; the
/// filters still run on every entry read.
pub fn required_tokens(stages: &[Stage], stream_label: &dyn Fn(&str) -> bool) -> Vec<u64> {
    let mut out = Vec::new();
    let (mut line_as_stored, mut labels_as_stored) = (true, true);
    for s in stages {
        match s {
            Stage::LineFormat(_) => (line_as_stored, labels_as_stored) = (false, false),
            Stage::Decolorize => line_as_stored = false,
            Stage::Parse(_) | Stage::LabelFormat(_) => labels_as_stored = false,
            Stage::Line(LineFilter {
                op: LineOp::Contains,
                args,
            }) if line_as_stored => match args.as_slice() {
                [FilterArg::Text(t)] => out.extend(crate::store::needle_hashes(t)),
                [FilterArg::Ip(_, ip)] => out.extend(
                    ip.line_words()
                        .iter()
                        .flat_map(|w| crate::store::value_hashes(w)),
                ),
                _ => {}
            },
            Stage::Label(p) if labels_as_stored => metadata_tokens(p, stream_label, &mut out),
            _ => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The tokens of the values a label filter requires of metadata (both sides of an `and`).
fn metadata_tokens(p: &LabelPred, stream_label: &dyn Fn(&str) -> bool, out: &mut Vec<u64>) {
    match p {
        LabelPred::And(a, b) => {
            metadata_tokens(a, stream_label, out);
            metadata_tokens(b, stream_label, out);
        }
        LabelPred::Str(m)
            if m.op == MatchOp::Eq
                && !m.value.is_empty()
                && !m.name.starts_with("__")
                && !stream_label(&m.name) =>
        {
            out.extend(crate::store::value_hashes(&m.value));
        }
        _ => {}
    }
}

/// Applies just the line filters (the fast path).
pub fn line_filters_pass(stages: &[Stage], line: &str) -> bool {
    stages.iter().all(|s| match s {
        Stage::Line(f) => line_passes(f, line),
        _ => true,
    })
}

fn selects(s: &LabelSel, k: &str, v: &str) -> bool {
    s.name == k && s.matcher.as_ref().is_none_or(|m| m.matches(v))
}

pub fn set_error(labels: &mut Labels, kind: &str, details: &str) {
    if labels.get(ERROR_LABEL).is_none() {
        labels.set(ERROR_LABEL, kind, Cat::Parsed);
        labels.set(ERROR_DETAILS_LABEL, details, Cat::Parsed);
    }
}

fn line_passes(f: &LineFilter, line: &str) -> bool {
    let any = f.args.iter().any(|a| match a {
        FilterArg::Text(s) => line.contains(s.as_str()),
        FilterArg::Regex(_, re) => re.is_match(line),
        FilterArg::Pattern(_, p) => p.test(line),
        FilterArg::Ip(_, ip) => ip.matches_line(line),
    });
    any != f.op.negated()
}

/// Whether a label filter passes; an unparsable number sets `__error__` and passes.
pub fn label_passes(p: &LabelPred, labels: &mut Labels) -> bool {
    match p {
        LabelPred::And(a, b) => label_passes(a, labels) && label_passes(b, labels),
        LabelPred::Or(a, b) => label_passes(a, labels) || label_passes(b, labels),
        LabelPred::Str(m) => m.matches(labels.get(&m.name).unwrap_or("")),
        LabelPred::Ip {
            name, negate, ip, ..
        } => labels.get(name).is_some_and(|v| ip.matches_value(v)) != *negate,
        LabelPred::Num { name, op, lit } => {
            let Some(v) = labels.get(name) else {
                return false;
            };
            let parsed = match lit {
                NumLit::Number(n) => v.trim().parse::<f64>().ok().map(|x| (x, *n)),
                NumLit::Duration(ns) => parse_duration(v.trim()).map(|x| (x as f64, *ns as f64)),
                NumLit::Bytes(b) => parse_bytes(v.trim()).map(|x| (x as f64, *b as f64)),
            };
            match parsed {
                Some((x, y)) => op.holds(x, y),
                None => {
                    let details = format!("cannot parse {v:?} of label {name} for comparison");
                    set_error(labels, "LabelFilterErr", &details);
                    // Loki keeps the line so that the error can be seen and filtered.
                    true
                }
            }
        }
    }
}

fn label_format(list: &[LabelFmt], line: &str, ts_ns: i64, labels: &mut Labels) {
    let flat = labels.flat();
    for f in list {
        match f {
            LabelFmt::Rename { dst, src } => {
                if let Some((v, cat)) = labels.remove(src) {
                    labels.set(dst.as_str(), v, cat);
                }
            }
            LabelFmt::Template { dst, tmpl } => {
                match tmpl.render(&Data {
                    labels: &flat,
                    line,
                    ts_ns,
                }) {
                    Ok(v) => labels.set(dst.as_str(), v, Cat::Parsed),
                    Err(e) => set_error(labels, "TemplateFormatErr", &e),
                }
            }
        }
    }
}

fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            while let Some(&n) = chars.peek() {
                chars.next();
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::logql::{self, Expr};

    fn pipe(q: &str) -> Vec<Stage> {
        match logql::parse(q).unwrap() {
            Expr::Log(l) => l.pipeline,
            Expr::Metric(_) => panic!("not a log query"),
        }
    }

    #[test]
    fn required_tokens_come_only_from_what_the_stored_entry_must_hold() {
        let req = |q: &str| required_tokens(&pipe(q), &|name| name == "job");
        let h = |words: &[&str]| {
            let mut v: Vec<u64> = words
                .iter()
                .map(|w| crate::store::value_hashes(w)[0])
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(req(r#"{job="a"} |= "x root y""#), h(&["root"]));
        assert_eq!(req(r#"{job="a"} | trace_id="abc""#), h(&["abc"]));
        assert_eq!(req(r#"{job="a"} |= ip("203.0.113.7")"#), h(&["0", "113"]));
        assert_eq!(req(r#"{job="a"} | t="a" and u="b""#), h(&["a", "b"]));
        for none in [
            r#"{job="a"} | job="sshd""#,
            r#"{job="a"} | t="" "#,
            r#"{job="a"} | t="a" or u="b""#,
            r#"{job="a"} | t!="a""#,
            r#"{job="a"} | json | t="a""#,
            r#"{job="a"} | label_format t=u | t="a""#,
            r#"{job="a"} | line_format "{{.x}}" |= " root ""#,
            r#"{job="a"} | decolorize |= " root ""#,
            r#"{job="a"} |= " a " or " b ""#,
            r#"{job="a"} |~ " root ""#,
            r#"{job="a"} |= ip("10.0.0.0/8")"#,
            r#"{job="a"} != ip("203.0.113.7")"#,
            r#"{job="a"} |= ip("203.0.113.7") or ip("198.51.100.1")"#,
        ] {
            assert_eq!(req(none), Vec::<u64>::new(), "{none}");
        }
    }

    fn run_one(q: &str, line: &str) -> Option<(String, Vec<(String, String)>)> {
        let stream = vec![("job".to_string(), "sshd".to_string())];
        run(&pipe(q), line, 0, &stream, &[]).map(|o| {
            let labels = o.labels.flat().into_iter().collect();
            (o.line.into_owned(), labels)
        })
    }

    fn label(out: &Option<(String, Vec<(String, String)>)>, k: &str) -> Option<String> {
        out.as_ref()?
            .1
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn json_nested_and_paths() {
        let out = run_one(
            r#"{job="sshd"} | json"#,
            r#"{"a":{"b":"c"},"n":3,"arr":[1],"job":"x"}"#,
        );
        assert_eq!(label(&out, "a_b").as_deref(), Some("c"));
        assert_eq!(label(&out, "n").as_deref(), Some("3"));
        assert_eq!(label(&out, "arr"), None);
        assert_eq!(label(&out, "job_extracted").as_deref(), Some("x"));
        let out = run_one(
            r#"{job="sshd"} | json x="a.b", y="arr[0]""#,
            r#"{"a":{"b":"c"},"arr":[7]}"#,
        );
        assert_eq!(label(&out, "x").as_deref(), Some("c"));
        assert_eq!(label(&out, "y").as_deref(), Some("7"));
        let out = run_one(r#"{job="sshd"} | json"#, "not json");
        assert_eq!(label(&out, "__error__").as_deref(), Some("JSONParserErr"));
        assert!(run_one(r#"{job="sshd"} | json | __error__="""#, "not json").is_none());
    }

    #[test]
    fn logfmt_and_numeric_filters() {
        let line = r#"level=warn msg="slow \"query\"" took=1.5s size=2KB bare"#;
        let out = run_one(r#"{job="sshd"} | logfmt"#, line);
        assert_eq!(label(&out, "msg").as_deref(), Some("slow \"query\""));
        assert_eq!(label(&out, "bare"), None);
        assert!(run_one(r#"{job="sshd"} | logfmt | took > 1s and size >= 2KB"#, line).is_some());
        assert!(
            run_one(
                r#"{job="sshd"} | logfmt | took > 2s or level="error""#,
                line
            )
            .is_none()
        );
        let out = run_one(r#"{job="sshd"} | logfmt --keep-empty"#, line);
        assert_eq!(label(&out, "bare").as_deref(), Some(""));
        let out = run_one(r#"{job="sshd"} | logfmt --strict"#, r#"a="open"#);
        assert_eq!(label(&out, "__error__").as_deref(), Some("LogfmtParserErr"));
    }

    #[test]
    fn filters_formats_drop_keep() {
        let line = "Failed password for root from 10.1.2.3 port 22";
        assert!(run_one(r#"{job="sshd"} |= "Failed" != "Accepted""#, line).is_some());
        assert!(run_one(r#"{job="sshd"} |= "nope" or "root""#, line).is_some());
        assert!(run_one(r#"{job="sshd"} |= ip("10.0.0.0/8")"#, line).is_some());
        assert!(run_one(r#"{job="sshd"} |~ "(?i)FAILED""#, line).is_some());
        assert!(run_one(r#"{job="sshd"} |> "<_> for <_> from <_>""#, line).is_some());
        let out = run_one(
            r#"{job="sshd"} | regexp "for (?P<user>\\S+) from (?P<ip>\\S+)" | line_format "{{.user}}@{{.ip}}" | label_format who=user | drop ip"#,
            line,
        );
        assert_eq!(out.as_ref().unwrap().0, "root@10.1.2.3");
        assert_eq!(label(&out, "who").as_deref(), Some("root"));
        assert_eq!(label(&out, "ip"), None);
        let out = run_one(
            r#"{job="sshd"} | pattern "<_> for <user> from <_>" | keep user"#,
            line,
        );
        assert_eq!(out.unwrap().1, [("user".to_string(), "root".to_string())]);
        let out = run_one(r#"{job="sshd"} | decolorize"#, "\x1b[31mred\x1b[0m");
        assert_eq!(out.unwrap().0, "red");
        let out = run_one(
            r#"{job="sshd"} | unpack"#,
            r#"{"_entry":"inner","pod":"p1"}"#,
        );
        assert_eq!(out.as_ref().unwrap().0, "inner");
        assert_eq!(label(&out, "pod").as_deref(), Some("p1"));
    }
}
