//! The Go text/template subset of `line_format` and `label_format`.
//!
//! Owns: parsing `{{ ... }}` actions (field access `.name`, string and number literals,
//! pipelines with `|`, parentheses, `if`/`else`/`end`, trim markers `{{-`/`-}}`) and the
//! functions people write in them: `ToUpper ToLower Title TrimSpace Trim TrimPrefix
//! TrimSuffix Replace upper lower title trim trimPrefix trimSuffix trunc substr replace
//! default contains hasPrefix hasSuffix regexReplaceAll regexReplaceAllLiteral repeat
//! printf len eq ne not and or __line__ __timestamp__`.
//!
//! Must not: touch anything but the labels, line and timestamp it is given. A missing field
//! renders as the empty string.

use std::collections::BTreeMap;

use regex::Regex;

/// Output bytes one template may produce at most: bounds `repeat` and friends.
const MAX_OUTPUT: usize = 64 * 1024;

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
    Sub(Pipeline),
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

/// What a template can see.
#[derive(Debug)]
pub struct Data<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub line: &'a str,
    pub ts_ns: i64,
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    S(String),
    N(f64),
    B(bool),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::S(s) => s.clone(),
            Value::N(n) => crate::query::value::format_float(*n),
            Value::B(b) => b.to_string(),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::S(s) => !s.is_empty(),
            Value::N(n) => *n != 0.0,
            Value::B(b) => *b,
        }
    }

    fn num(&self) -> Result<f64, String> {
        match self {
            Value::N(n) => Ok(*n),
            Value::S(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a number")),
            Value::B(_) => Err("a boolean is not a number".into()),
        }
    }
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let tokens = split(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos)?;
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
fn parse_nodes(pieces: &[Piece], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while *pos < pieces.len() {
        let piece = &pieces[*pos];
        *pos += 1;
        match piece {
            Piece::Text(t) => nodes.push(Node::Text(t.clone())),
            Piece::Action(a) if a == "end" || a == "else" => return Ok((nodes, Some(a.clone()))),
            Piece::Action(a) if a.starts_with("if ") => {
                let cond = parse_pipeline(&mut Toks::new(&a[3..])?)?;
                let (then, end) = parse_nodes(pieces, pos)?;
                let otherwise = match end.as_deref() {
                    Some("else") => {
                        let (o, end) = parse_nodes(pieces, pos)?;
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
                let p = parse_pipeline(&mut t)?;
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

#[derive(Debug, Clone, PartialEq)]
enum T {
    Field(String),
    Word(String),
    Str(String),
    Num(f64),
    Pipe,
    Open,
    Close,
}

struct Toks {
    toks: Vec<T>,
    pos: usize,
}

impl Toks {
    fn new(s: &str) -> Result<Toks, String> {
        let b = s.as_bytes();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let word_end = |mut j: usize| {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                j
            };
            match c {
                b' ' | b'\t' | b'\n' => i += 1,
                b'|' => {
                    toks.push(T::Pipe);
                    i += 1;
                }
                b'(' => {
                    toks.push(T::Open);
                    i += 1;
                }
                b')' => {
                    toks.push(T::Close);
                    i += 1;
                }
                b'.' => {
                    let end = word_end(i + 1);
                    toks.push(T::Field(s[i + 1..end].to_owned()));
                    i = end;
                }
                b'"' => {
                    let (lit, len) = go_string(&s[i..])?;
                    toks.push(T::Str(lit));
                    i += len;
                }
                b'`' => {
                    let close = s[i + 1..]
                        .find('`')
                        .ok_or("template: unterminated raw string")?;
                    toks.push(T::Str(s[i + 1..i + 1 + close].to_owned()));
                    i += close + 2;
                }
                c if c.is_ascii_digit() || c == b'-' => {
                    let mut j = i + 1;
                    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                        j += 1;
                    }
                    let n = s[i..j]
                        .parse()
                        .map_err(|_| format!("template: bad number {:?}", &s[i..j]))?;
                    toks.push(T::Num(n));
                    i = j;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let end = word_end(i);
                    toks.push(T::Word(s[i..end].to_owned()));
                    i = end;
                }
                _ => return Err(format!("template: unexpected {:?}", c as char)),
            }
        }
        Ok(Toks { toks, pos: 0 })
    }

    fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos)
    }
}

/// A Go double-quoted string at the start of `s`: its value and its length in `s`.
fn go_string(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("template: unterminated string".into())
}

fn parse_pipeline(t: &mut Toks) -> Result<Pipeline, String> {
    let mut cmds = vec![parse_command(t)?];
    while t.peek() == Some(&T::Pipe) {
        t.pos += 1;
        cmds.push(parse_command(t)?);
    }
    Ok(cmds)
}

fn parse_command(t: &mut Toks) -> Result<Command, String> {
    let func = match t.peek() {
        Some(T::Word(w)) => {
            if !FUNCS.contains(&w.as_str()) {
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
            T::Str(s) => Operand::Str(s),
            T::Num(n) => Operand::Num(n),
            T::Word(w) if FUNCS.contains(&w.as_str()) => Operand::Func(w),
            T::Word(w) => return Err(format!("template: function {w:?} not defined")),
            T::Open => {
                t.pos += 1;
                let p = parse_pipeline(t)?;
                if t.peek() != Some(&T::Close) {
                    return Err("template: unclosed (".into());
                }
                Operand::Sub(p)
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
        Operand::Sub(p) => eval_pipeline(p, data)?,
        Operand::Func(f) => call(f, &[], data)?,
    })
}

fn call(f: &str, args: &[Value], data: &Data<'_>) -> Result<Value, String> {
    let s = |i: usize| args.get(i).map(Value::text).unwrap_or_default();
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{f}: wants {n} arguments, got {}", args.len()))
        }
    };
    let v = match f {
        "__line__" => Value::S(data.line.to_owned()),
        "__timestamp__" => Value::S(crate::clock::rfc3339(data.ts_ns)),
        "ToUpper" | "upper" => {
            want(1)?;
            Value::S(s(0).to_uppercase())
        }
        "ToLower" | "lower" => {
            want(1)?;
            Value::S(s(0).to_lowercase())
        }
        "Title" | "title" => {
            want(1)?;
            Value::S(title(&s(0)))
        }
        "TrimSpace" | "trim" => {
            want(1)?;
            Value::S(s(0).trim().to_owned())
        }
        "Trim" => {
            want(2)?;
            Value::S(s(0).trim_matches(|c| s(1).contains(c)).to_owned())
        }
        "trimAll" => {
            want(2)?;
            Value::S(s(1).trim_matches(|c| s(0).contains(c)).to_owned())
        }
        "TrimLeft" => {
            want(2)?;
            Value::S(s(0).trim_start_matches(|c| s(1).contains(c)).to_owned())
        }
        "TrimRight" => {
            want(2)?;
            Value::S(s(0).trim_end_matches(|c| s(1).contains(c)).to_owned())
        }
        "TrimPrefix" => {
            want(2)?;
            Value::S(s(0).strip_prefix(&s(1)).map_or(s(0), str::to_owned))
        }
        "TrimSuffix" => {
            want(2)?;
            Value::S(s(0).strip_suffix(&s(1)).map_or(s(0), str::to_owned))
        }
        "trimPrefix" => {
            want(2)?;
            Value::S(s(1).strip_prefix(&s(0)).map_or(s(1), str::to_owned))
        }
        "trimSuffix" => {
            want(2)?;
            Value::S(s(1).strip_suffix(&s(0)).map_or(s(1), str::to_owned))
        }
        "Replace" => {
            want(4)?;
            let n = args[3].num()? as i64;
            let (src, old, new) = (s(0), s(1), s(2));
            Value::S(if n < 0 {
                src.replace(&old, &new)
            } else {
                src.replacen(&old, &new, n as usize)
            })
        }
        "replace" => {
            want(3)?;
            Value::S(s(2).replace(&s(0), &s(1)))
        }
        "trunc" => {
            want(2)?;
            let n = args[0].num()? as i64;
            let text: Vec<char> = s(1).chars().collect();
            let len = text.len() as i64;
            Value::S(if n >= 0 {
                text[..n.min(len) as usize].iter().collect()
            } else {
                text[(len + n).max(0) as usize..].iter().collect()
            })
        }
        "substr" => {
            want(3)?;
            let text: Vec<char> = s(2).chars().collect();
            let len = text.len() as i64;
            let (a, b) = (args[0].num()? as i64, args[1].num()? as i64);
            let a = a.clamp(0, len) as usize;
            let b = if b < 0 { len } else { b.clamp(0, len) } as usize;
            Value::S(if a < b {
                text[a..b].iter().collect()
            } else {
                String::new()
            })
        }
        "default" => {
            want(2)?;
            if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "contains" => {
            want(2)?;
            Value::B(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            want(2)?;
            Value::B(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            want(2)?;
            Value::B(s(1).ends_with(&s(0)))
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want(3)?;
            let re = Regex::new(&s(0)).map_err(|e| format!("{f}: {e}"))?;
            let (src, repl) = (s(1), s(2));
            Value::S(if f == "regexReplaceAll" {
                re.replace_all(&src, repl.as_str()).into_owned()
            } else {
                re.replace_all(&src, regex::NoExpand(&repl)).into_owned()
            })
        }
        "repeat" => {
            want(2)?;
            let n = args[0].num()?.max(0.0) as usize;
            if n.saturating_mul(s(1).len()) > MAX_OUTPUT {
                return Err(format!("repeat: output over {MAX_OUTPUT} bytes"));
            }
            Value::S(s(1).repeat(n))
        }
        "printf" => Value::S(printf(&s(0), &args[1.min(args.len())..])),
        "len" => {
            want(1)?;
            Value::N(s(0).chars().count() as f64)
        }
        "eq" | "ne" => {
            want(2)?;
            let same = match (&args[0], &args[1]) {
                (Value::N(a), b) | (b, Value::N(a)) => b.num().is_ok_and(|b| b == *a),
                (a, b) => a.text() == b.text(),
            };
            Value::B(same == (f == "eq"))
        }
        "not" => {
            want(1)?;
            Value::B(!args[0].truthy())
        }
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::B(true)),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::B(false)),
        other => return Err(format!("function {other:?} not defined")),
    };
    Ok(v)
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// `printf` with the verbs people use in log formats: `%s %v %d %q %%`.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!(
                "{:?}",
                it.next().map(Value::text).unwrap_or_default()
            )),
            Some('d') => {
                let n = it.next().and_then(|v| v.num().ok()).unwrap_or(0.0);
                out.push_str(&(n as i64).to_string());
            }
            Some(_) => out.push_str(&it.next().map(Value::text).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
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
    fn unknown_functions_fail_at_parse() {
        let e = Template::parse("{{ nosuch .x }}").unwrap_err();
        assert!(e.contains("function \"nosuch\" not defined"), "{e}");
    }
}
