//! The functions a template may call, with Go's and Sprig's argument orders (a piped value
//! is the last argument).
//!
//! Must not: allocate more than the template's output bound.

use regex::Regex;

use super::{Args, Data, MAX_OUTPUT, Value};

pub(super) fn call(f: &str, args: &[Value], data: &Data<'_>) -> Result<Value, String> {
    let a = Args { f, v: args };
    let s = |i: usize| a.text(i);
    let want = |n: usize| a.want(n);
    let v = match f {
        "__line__" => Value::S(data.line.to_owned()),
        "__timestamp__" => Value::T(data.ts_ns),
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
        other => super::convert::call(other, args, data)?,
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
