//! The parsers of a pipeline: `json` (all fields flattened with `_`, or chosen paths),
//! `logfmt` (`--strict`, `--keep-empty`, chosen fields), `regexp`, `pattern` and `unpack`.
//!
//! Must not: drop a line: a parse failure sets `__error__` and the line goes on.

use std::borrow::Cow;

use super::super::logql::ast::Parser;
use super::super::value::Labels;
use super::set_error;

/// JSON nesting a parser follows at most; deeper values are left out.
const JSON_MAX_DEPTH: usize = 64;

/// A label name made valid: characters outside `[a-zA-Z0-9_]` become `_`, as Loki does.
pub(crate) fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

pub(super) fn parse(p: &Parser, line: &mut Cow<'_, str>, labels: &mut Labels) {
    match p {
        Parser::Json(paths) => json(paths, line, labels),
        Parser::Logfmt {
            strict,
            keep_empty,
            fields,
        } => logfmt(*strict, *keep_empty, fields, line, labels),
        Parser::Regexp(_, re) => {
            if let Some(caps) = re.captures(line) {
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        labels.set_parsed(name, m.as_str());
                    }
                }
            }
        }
        Parser::Pattern(_, pat) => {
            if let Some(caps) = pat.captures(line) {
                for (k, v) in caps {
                    labels.set_parsed(k, v);
                }
            }
        }
        Parser::Unpack => unpack(line, labels),
    }
}

fn json(paths: &[(String, String)], line: &str, labels: &mut Labels) {
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return set_error(labels, "JSONParserErr", NOT_AN_OBJECT),
        Err(e) => return set_error(labels, "JSONParserErr", json_error(line, &e)),
    };
    if paths.is_empty() {
        flatten(&value, labels);
        return;
    }
    for (name, path) in paths {
        let found = json_path(path).and_then(|steps| {
            steps.iter().try_fold(&value, |v, step| match step {
                PathStep::Key(k) => v.get(k.as_str()),
                PathStep::Index(i) => v.get(*i),
            })
        });
        let text = match found {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        labels.set_parsed(name, text);
    }
}

fn flatten(value: &serde_json::Value, labels: &mut Labels) {
    json_leaves(value, &mut |path, v| {
        let name: Vec<String> = path.iter().map(|k| sanitize(k)).collect();
        labels.set_parsed(&name.join("_"), v);
    });
}

/// Calls `leaf` with the key path and text of every string, number and boolean of a JSON
/// object, in document order, at most `JSON_MAX_DEPTH` objects deep; arrays and nulls are
/// skipped, as Loki's `json` parser skips them. Shared by `| json` and Drilldown's field
/// discovery, so both see the same fields.
pub fn json_leaves(value: &serde_json::Value, leaf: &mut dyn FnMut(&[&str], String)) {
    fn walk<'v>(
        map: &'v serde_json::Map<String, serde_json::Value>,
        path: &mut Vec<&'v str>,
        leaf: &mut dyn FnMut(&[&str], String),
    ) {
        if path.len() > JSON_MAX_DEPTH {
            return;
        }
        for (k, v) in map {
            path.push(k);
            match v {
                serde_json::Value::Object(m) => walk(m, path, leaf),
                serde_json::Value::Array(_) | serde_json::Value::Null => {}
                serde_json::Value::String(s) => leaf(path, s.clone()),
                other => leaf(path, other.to_string()),
            }
            path.pop();
        }
    }
    if let serde_json::Value::Object(m) = value {
        walk(m, &mut Vec::new(), leaf);
    }
}

enum PathStep {
    Key(String),
    Index(usize),
}

/// `a.b[0]["c d"]` into steps.
fn json_path(path: &str) -> Option<Vec<PathStep>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inner = &r[..close];
            if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                out.push(PathStep::Key(q.to_owned()));
            } else {
                out.push(PathStep::Index(inner.parse().ok()?));
            }
            rest = &r[close + 1..];
        } else {
            let rest2 = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest2.find(['.', '[']).unwrap_or(rest2.len());
            out.push(PathStep::Key(rest2[..end].to_owned()));
            rest = &rest2[end..];
        }
    }
    Some(out)
}

/// The `__error_details__` of a line that is not a JSON object, in the words Loki's JSON
/// scanner uses (Grafana shows them, and they become part of the stream's labels).
const NOT_AN_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";

fn json_error(line: &str, e: &serde_json::Error) -> &'static str {
    if !line.trim_start().starts_with('{') || e.is_eof() {
        NOT_AN_OBJECT
    } else {
        "Malformed JSON error"
    }
}

/// `| unpack`: a line packed by promtail's `pack` stage (a JSON object with `_entry`)
/// becomes its `_entry`, and its other string fields labels. A JSON line without `_entry`
/// was not packed: it is left alone and gives no labels, as in Loki.
fn unpack(line: &mut Cow<'_, str>, labels: &mut Labels) {
    let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(line) {
        Ok(m) => m,
        Err(e) => return set_error(labels, "JSONParserErr", json_error(line, &e)),
    };
    let Some(serde_json::Value::String(entry)) = map.get("_entry").cloned() else {
        return;
    };
    for (k, v) in map {
        if let serde_json::Value::String(s) = v
            && k != "_entry"
        {
            labels.set_parsed(&sanitize(&k), s);
        }
    }
    *line = Cow::Owned(entry);
}

fn logfmt(
    strict: bool,
    keep_empty: bool,
    fields: &[(String, String)],
    line: &str,
    labels: &mut Labels,
) {
    let (pairs, err) = crate::logfmt::pairs(line, strict);
    for (k, v) in pairs {
        if v.is_none() && !keep_empty {
            continue;
        }
        let v = v.unwrap_or_default();
        if fields.is_empty() {
            labels.set_parsed(&sanitize(&k), v);
        } else if let Some((name, _)) = fields.iter().find(|(_, path)| *path == k) {
            labels.set_parsed(name, v);
        }
    }
    // Loki keeps what was parsed before the error, and marks the line.
    if let (true, Some(e)) = (strict, err) {
        set_error(labels, "LogfmtParserErr", &e);
    }
}
