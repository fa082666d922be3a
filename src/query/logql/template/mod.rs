//! The Go text/template subset of `line_format` and `label_format`.
//!
//! Owns: parsing `{{ ... }}` actions (field access `.name`, string and number literals,
//! pipelines with `|`, parentheses and fields of their value (`(fromJson .x).a.b`), `if`/`else`/`end`, trim markers `{{-`/`-}}`) and the
//! functions people write in them: `ToUpper ToLower Title TrimSpace Trim TrimPrefix
//! TrimSuffix Replace upper lower title trim trimPrefix trimSuffix trunc substr replace
//! default contains hasPrefix hasSuffix regexReplaceAll regexReplaceAllLiteral repeat
//! printf len eq ne not and or __line__ __timestamp__` here and in `funcs`, and the converting
//! ones of Loki's list in `convert` (encodings, units, Sprig's numbers, times in Go layouts,
//! `fromJson`, whose values `json` reads and prints). `value` holds what functions take.
//! `__timestamp__` and `now` are time values, printed as Go prints a `time.Time` in UTC.
//!
//! Must not: touch anything but the labels, line and timestamp it is given. A missing field
//! renders as the empty string.

use std::collections::BTreeMap;

mod clock;
mod convert;
mod funcs;
mod json;
mod lex;
mod value;

use funcs::call;
use lex::{T, Toks};
use value::{Args, Value};

/// Output bytes one template may produce at most: bounds `repeat` and friends.
pub(super) const MAX_OUTPUT: usize = 64 * 1024;

/// Deepest nesting of `{{if}}` blocks and parenthesised pipelines in one template, the same
/// budget as the query around it: rendering, cloning and dropping recurse at most this deep.
pub const MAX_DEPTH: usize = super::MAX_DEPTH;

fn too_deep() -> String {
    format!(
        "template too complex: it nests deeper than the limit of {MAX_DEPTH} levels \
         ({{{{if}}}} blocks and parentheses each count one)"
    )
}

#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

type Pipeline = Vec<Command>;

#[derive(Debug, Clone)]
struct Command {
    /// The function name, or `None` when the command is a single operand.
    func: Option<String>,
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    Str(String),
    Num(f64),
    /// A parenthesised pipeline, and the fields read from its value (`(fromJson .x).a.b`).
    Sub(Pipeline, Vec<String>),
    /// A function used without arguments as an operand (`__line__`).
    Func(String),
}

const FUNCS: &[&str] = &[
    "ToUpper",
    "ToLower",
    "Title",
    "TrimSpace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "Replace",
    "upper",
    "lower",
    "title",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "substr",
    "replace",
    "default",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "repeat",
    "printf",
    "len",
    "eq",
    "ne",
    "not",
    "and",
    "or",
    "__line__",
    "__timestamp__",
];

fn defined(name: &str) -> bool {
    FUNCS.contains(&name) || convert::NAMES.contains(&name)
}

/// What a template can see.
#[derive(Debug)]
pub struct Data<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub line: &'a str,
    pub ts_ns: i64,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let tokens = split(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos, 0)?;
        if end.is_some() {
            return Err(format!(
                "template: {src:?}: unexpected {{{{end}}}} or {{{{else}}}}"
            ));
        }
        Ok(Template {
            src: src.to_owned(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    /// Renders the template; an evaluation error is returned as text (the caller sets
    /// `__error__`).
    pub fn render(&self, data: &Data<'_>) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Pieces of the source: literal text, or the inside of one action.
#[derive(Debug)]
enum Piece {
    Text(String),
    Action(String),
}

fn split(src: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let mut inner_start = open + 2;
        if rest[inner_start..].starts_with("- ") {
            text = text.trim_end();
            inner_start += 1;
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_owned()));
        }
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err(format!("template: {src:?}: unclosed action"));
        };
        let mut inner = &rest[inner_start..inner_start + close];
        let mut after = &rest[inner_start + close + 2..];
        if inner.ends_with(" -") {
            inner = &inner[..inner.len() - 2];
            after = after.trim_start();
        }
        out.push(Piece::Action(inner.trim().to_owned()));
        rest = after;
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// Parses nodes until `{{end}}`/`{{else}}` (returned) or the end.
/// `depth` is the number of `{{if}}` blocks around these nodes.
fn parse_nodes(
    pieces: &[Piece],
    pos: &mut usize,
    depth: usize,
) -> Result<(Vec<Node>, Option<String>), String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut nodes = Vec::new();
    while *pos < pieces.len() {
        let piece = &pieces[*pos];
        *pos += 1;
        match piece {
            Piece::Text(t) => nodes.push(Node::Text(t.clone())),
            Piece::Action(a) if a == "end" || a == "else" => return Ok((nodes, Some(a.clone()))),
            Piece::Action(a) if a.starts_with("if ") => {
                let cond = parse_pipeline(&mut Toks::new(&a[3..])?, depth + 1)?;
                let (then, end) = parse_nodes(pieces, pos, depth + 1)?;
                let otherwise = match end.as_deref() {
                    Some("else") => {
                        let (o, end) = parse_nodes(pieces, pos, depth + 1)?;
                        if end.as_deref() != Some("end") {
                            return Err("template: missing {{end}}".into());
                        }
                        o
                    }
                    Some("end") => Vec::new(),
                    _ => return Err("template: missing {{end}}".into()),
                };
                nodes.push(Node::If {
                    cond,
                    then,
                    otherwise,
                });
            }
            Piece::Action(a) if a.starts_with("/*") => {}
            Piece::Action(a) => {
                let mut t = Toks::new(a)?;
                let p = parse_pipeline(&mut t, depth)?;
                if t.pos < t.toks.len() {
                    return Err(format!(
                        "template: unexpected {:?} in action",
                        t.toks[t.pos]
                    ));
                }
                nodes.push(Node::Action(p));
            }
        }
    }
    Ok((nodes, None))
}

/// `depth` counts the `{{if}}` blocks and parentheses around this pipeline.
fn parse_pipeline(t: &mut Toks, depth: usize) -> Result<Pipeline, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut cmds = vec![parse_command(t, depth)?];
    while t.peek() == Some(&T::Pipe) {
        t.pos += 1;
        cmds.push(parse_command(t, depth)?);
    }
    Ok(cmds)
}

fn parse_command(t: &mut Toks, depth: usize) -> Result<Command, String> {
    let func = match t.peek() {
        Some(T::Word(w)) => {
            if !defined(w) {
                return Err(format!("template: function {w:?} not defined"));
            }
            let w = w.clone();
            t.pos += 1;
            Some(w)
        }
        _ => None,
    };
    let mut args = Vec::new();
    while let Some(tok) = t.peek().cloned() {
        let op = match tok {
            T::Pipe | T::Close => break,
            T::Field(f) => Operand::Field(f),
            T::Chain(f) => return Err(format!("template: unexpected .{f}")),
            T::Str(s) => Operand::Str(s),
            T::Num(n) => Operand::Num(n),
            T::Word(w) if defined(&w) => Operand::Func(w),
            T::Word(w) => return Err(format!("template: function {w:?} not defined")),
            T::Open => {
                t.pos += 1;
                let p = parse_pipeline(t, depth + 1)?;
                if t.peek() != Some(&T::Close) {
                    return Err("template: unclosed (".into());
                }
                let mut path = Vec::new();
                while let Some(T::Chain(f)) = t.toks.get(t.pos + 1) {
                    path.push(f.clone());
                    t.pos += 1;
                }
                Operand::Sub(p, path)
            }
        };
        t.pos += 1;
        args.push(op);
    }
    if func.is_none() && args.len() != 1 {
        return Err("template: empty command".into());
    }
    Ok(Command { func, args })
}

fn render_nodes(nodes: &[Node], data: &Data<'_>, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&eval_pipeline(p, data)?.text()),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = if eval_pipeline(cond, data)?.truthy() {
                    then
                } else {
                    otherwise
                };
                render_nodes(branch, data, out)?;
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err(format!("template output over {MAX_OUTPUT} bytes"));
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, data: &Data<'_>) -> Result<Value, String> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        let mut args = cmd
            .args
            .iter()
            .map(|a| eval_operand(a, data))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &cmd.func {
            Some(f) => call(f, &args, data)?,
            None => args.pop().unwrap_or(Value::S(String::new())),
        });
    }
    Ok(prev.unwrap_or(Value::S(String::new())))
}

fn eval_operand(a: &Operand, data: &Data<'_>) -> Result<Value, String> {
    Ok(match a {
        Operand::Field(f) => Value::S(data.labels.get(f).cloned().unwrap_or_default()),
        Operand::Str(s) => Value::S(s.clone()),
        Operand::Num(n) => Value::N(*n),
        Operand::Sub(p, path) => {
            let mut v = eval_pipeline(p, data)?;
            for f in path {
                v = json::field(v, f)?;
            }
            v
        }
        Operand::Func(f) => call(f, &[], data)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, labels: &[(&str, &str)]) -> String {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::parse(t)
            .unwrap()
            .render(&Data {
                labels: &labels,
                line: "the line",
                ts_ns: 0,
            })
            .unwrap()
    }

    #[test]
    fn fields_functions_and_pipes() {
        let l = [("user", "root"), ("ip", "10.0.0.1"), ("empty", "")];
        assert_eq!(render("{{.user}}@{{ .ip }}", &l), "root@10.0.0.1");
        assert_eq!(render("{{ .user | ToUpper }}", &l), "ROOT");
        assert_eq!(render("{{ ToUpper .user }}", &l), "ROOT");
        assert_eq!(render("{{ .empty | default \"-\" }}", &l), "-");
        assert_eq!(render("{{ .missing }}x", &l), "x");
        assert_eq!(render("{{ .ip | trunc 4 }}", &l), "10.0");
        assert_eq!(
            render(r#"{{ regexReplaceAll "(\\d+)\\.\\d+" .ip "${1}" }}"#, &l),
            "10.0"
        );
        assert_eq!(render("{{ __line__ }}", &l), "the line");
        assert_eq!(
            render("{{if eq .user \"root\"}}ALERT{{else}}ok{{end}}", &l),
            "ALERT"
        );
        assert_eq!(render("a {{- .user -}} b", &l), "arootb");
    }

    #[test]
    fn from_json_values_are_read_by_field() {
        let l = [("msg", r#"{"user":{"name":"bob","id":7},"tags":["a","b"]}"#)];
        assert_eq!(render("{{ (fromJson .msg).user.name }}", &l), "bob");
        assert_eq!(render("{{ (fromJson .msg).user.id | add 1 }}", &l), "8");
        assert_eq!(render("{{ (fromJson .msg).tags }}", &l), "[a b]");
        assert_eq!(render("{{ (fromJson .msg).nope }}", &l), "<no value>");
        assert_eq!(render("{{ fromJson \"oops\" }}", &l), "map[]");
        assert!(
            Template::parse("{{ (fromJson .msg).user.name }}")
                .unwrap()
                .render(&Data {
                    labels: &BTreeMap::from([("msg".to_owned(), "[1]".to_owned())]),
                    line: "",
                    ts_ns: 0
                })
                .unwrap_err()
                .contains("can't evaluate field user")
        );
    }

    #[test]
    fn unknown_functions_fail_at_parse() {
        let e = Template::parse("{{ nosuch .x }}").unwrap_err();
        assert!(e.contains("function \"nosuch\" not defined"), "{e}");
    }
}
