//! Sprig's `fromJson` and what a template does with its result: field access
//! (`(fromJson .line).user.name`) and printing as Go prints decoded JSON
//! (`map[k:v]`, `[a b]`, `<nil>`, floats in `%v`).
//!
//! Must not: recurse deeper than the decoder allows (serde_json stops at 128 levels), or
//! print more than the template's output bound.

use serde_json::Value as Json;

use super::{MAX_OUTPUT, Value};

/// Sprig's `fromJson`: an undecodable text is an empty map, as Sprig swallows the error.
pub(super) fn from_json(text: &str) -> Value {
    Value::J(serde_json::from_str(text).unwrap_or_else(|_| Json::Object(Default::default())))
}

/// `.name` of a value: a JSON object's member, or Go's `<no value>` where there is none (or
/// it is `null`).
pub(super) fn field(v: Value, name: &str) -> Result<Value, String> {
    match v {
        Value::J(Json::Object(mut m)) => Ok(match m.remove(name) {
            Some(Json::String(s)) => Value::S(s),
            Some(Json::Bool(b)) => Value::B(b),
            Some(Json::Number(n)) => Value::N(n.as_f64().unwrap_or(0.0)),
            Some(Json::Null) | None => Value::S(NO_VALUE.into()),
            Some(other) => Value::J(other),
        }),
        other => Err(format!(
            "can't evaluate field {name} in {}",
            match other {
                Value::J(_) => "a JSON value that is not an object",
                _ => "a value that is not a map",
            }
        )),
    }
}

/// What Go prints for a missing map entry under `missingkey=zero`.
const NO_VALUE: &str = "<no value>";

/// Decoded JSON as Go's `fmt` prints it.
pub(super) fn print(v: &Json) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Json, out: &mut String) {
    if out.len() > MAX_OUTPUT {
        return;
    }
    match v {
        Json::Null => out.push_str("<nil>"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => out.push_str(s),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write(x, out);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write(&m[k], out);
            }
            out.push(']');
        }
    }
}

/// A float as Go's `%v` prints it: the shortest digits, in exponent form from 1e6 up and
/// below 1e-4 (`1e+06`, `1.234567e+06`, `1e-05`).
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let s = format!("{f:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", e.abs());
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_json_prints_as_go_prints_it() {
        let Value::J(v) = from_json(r#"{"b":[1,2.5,"x"],"a":{"n":null,"t":true},"big":1e21}"#)
        else {
            panic!()
        };
        assert_eq!(
            print(&v),
            "map[a:map[n:<nil> t:true] b:[1 2.5 x] big:1e+21]"
        );
        let a = field(Value::J(v), "a").unwrap();
        assert_eq!(a.text(), "map[n:<nil> t:true]");
        assert_eq!(field(a.clone(), "n").unwrap().text(), "<no value>");
        assert_eq!(field(a, "t").unwrap().text(), "true");
        let Value::J(v) = from_json("not json") else {
            panic!()
        };
        assert_eq!(print(&v), "map[]");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(1_234_567.0), "1.234567e+06");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
    }
}
