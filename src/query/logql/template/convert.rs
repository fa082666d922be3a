//! The template functions that convert: encodings (`b64enc b64dec urlencode urldecode`),
//! units (`bytes duration duration_seconds`), layout (`alignLeft alignRight indent nindent`),
//! counting (`count`), Sprig's numbers (`int float64 add sub mul div mod max min addf subf
//! mulf divf maxf minf ceil floor round`), Go's comparisons (`lt le gt ge`) and times (`now
//! date toDate toDateInZone unixEpoch unixEpochMillis unixEpochNanos unixToTime`). Time values
//! print in UTC; `toDateInZone` reads the wall clock of a zone from the system's time zone
//! database (a bundled copy where the system has none).
//!
//! Must not: allocate more than the template's output bound.

use base64::Engine as _;

use super::clock;
use super::{Args, Data, MAX_OUTPUT, Value};
use crate::query::logql::units::{parse_bytes, parse_duration};

/// The names this file answers.
pub(super) const NAMES: &[&str] = &[
    "b64enc",
    "b64dec",
    "urlencode",
    "urldecode",
    "bytes",
    "duration",
    "duration_seconds",
    "alignLeft",
    "alignRight",
    "indent",
    "nindent",
    "count",
    "int",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "addf",
    "subf",
    "mulf",
    "divf",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "lt",
    "le",
    "gt",
    "ge",
    "now",
    "date",
    "toDate",
    "toDateInZone",
    "fromJson",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
];

/// Calls `f`, one of [`NAMES`]; the piped value is the last argument.
pub(super) fn call(f: &str, args: &[Value], _data: &Data<'_>) -> Result<Value, String> {
    let a = Args { f, v: args };
    let s = |i: usize| a.text(i);
    let want = |n: usize| a.want(n);
    let int = |i: usize| args.get(i).map_or(0, to_int);
    let float = |i: usize| args.get(i).map_or(0.0, to_float);
    Ok(match f {
        "b64enc" => {
            want(1)?;
            Value::S(base64::engine::general_purpose::STANDARD.encode(s(0)))
        }
        "b64dec" => {
            want(1)?;
            Value::S(b64dec(&s(0)))
        }
        "urlencode" => {
            want(1)?;
            Value::S(query_escape(&s(0)))
        }
        "urldecode" => {
            want(1)?;
            Value::S(query_unescape(&s(0)).ok_or_else(|| format!("urldecode: invalid {:?}", s(0)))?)
        }
        "bytes" => {
            want(1)?;
            let v = s(0);
            Value::N(parse_bytes(v.trim()).ok_or_else(|| format!("bytes: invalid {v:?}"))? as f64)
        }
        "duration" | "duration_seconds" => {
            want(1)?;
            let v = s(0);
            let ns = parse_duration(v.trim()).ok_or_else(|| format!("{f}: invalid {v:?}"))?;
            Value::N(ns as f64 / 1e9)
        }
        "alignLeft" | "alignRight" => {
            want(2)?;
            Value::S(align(int(0), &s(1), f == "alignLeft")?)
        }
        "indent" | "nindent" => {
            want(2)?;
            let pad = bounded_repeat(" ", int(0))?;
            let body = format!("{pad}{}", s(1).replace('\n', &format!("\n{pad}")));
            Value::S(if f == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "count" => {
            want(2)?;
            let re = regex::Regex::new(&s(0)).map_err(|e| format!("count: {e}"))?;
            Value::N(re.find_iter(&s(1)).count() as f64)
        }
        "int" => {
            want(1)?;
            Value::N(int(0) as f64)
        }
        "float64" => {
            want(1)?;
            Value::N(float(0))
        }
        "add" | "mul" | "max" | "min" => {
            let first = args.first().map(to_int).unwrap_or(0);
            let v = args.iter().skip(1).map(to_int).fold(first, |a, b| match f {
                "add" => a.wrapping_add(b),
                "mul" => a.wrapping_mul(b),
                "max" => a.max(b),
                _ => a.min(b),
            });
            Value::N(v as f64)
        }
        "sub" | "div" | "mod" => {
            want(2)?;
            let (a, b) = (int(0), int(1));
            Value::N(match f {
                "sub" => a.wrapping_sub(b),
                _ if b == 0 => return Err(format!("{f}: integer divide by zero")),
                "div" => a.wrapping_div(b),
                _ => a.wrapping_rem(b),
            } as f64)
        }
        "addf" | "mulf" | "maxf" | "minf" => {
            let first = args.first().map(to_float).unwrap_or(0.0);
            let v = args
                .iter()
                .skip(1)
                .map(to_float)
                .fold(first, |a, b| match f {
                    "addf" => a + b,
                    "mulf" => a * b,
                    "maxf" => a.max(b),
                    _ => a.min(b),
                });
            Value::N(v)
        }
        "subf" | "divf" => {
            want(2)?;
            let (a, b) = (float(0), float(1));
            Value::N(if f == "subf" { a - b } else { a / b })
        }
        "ceil" | "floor" => {
            want(1)?;
            Value::N(if f == "ceil" {
                float(0).ceil()
            } else {
                float(0).floor()
            })
        }
        "round" => {
            if !(2..=3).contains(&args.len()) {
                return Err(format!("round: wants 2 or 3 arguments, got {}", args.len()));
            }
            let (v, places) = (float(0), int(1).clamp(0, 15) as i32);
            let at = if args.len() == 3 { float(2) } else { 0.5 };
            let p = 10f64.powi(places);
            let digit = v * p;
            let base = digit.trunc();
            let r = if (digit - base).abs() >= at {
                base + digit.signum()
            } else {
                base
            };
            Value::N(r / p)
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let ord = match (&args[0], &args[1]) {
                (Value::S(a), Value::S(b)) => a.cmp(b),
                (a, b) => to_float(a)
                    .partial_cmp(&to_float(b))
                    .ok_or_else(|| format!("{f}: incomparable values"))?,
            };
            Value::B(match f {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        "now" => {
            want(0)?;
            Value::T(crate::clock::now_ns())
        }
        "date" => {
            want(2)?;
            Value::S(clock::format(time_of(&args[1])?, &s(0)))
        }
        "toDate" => {
            want(2)?;
            // Sprig answers Go's zero time for text that does not fit the layout; it lies
            // outside what nanoseconds since 1970 can hold, so it is its printed form.
            match clock::parse(&s(0), &s(1)) {
                Some(ns) => Value::T(ns),
                None => Value::S(ZERO_TIME.into()),
            }
        }
        "fromJson" => {
            want(1)?;
            super::json::from_json(&s(0))
        }
        "toDateInZone" => {
            want(3)?;
            // Loki answers Go's zero time for text that does not fit the layout, as toDate.
            match clock::parse_in_zone(&s(0), &s(1), &s(2)) {
                Some(ns) => Value::T(ns),
                None => Value::S(ZERO_TIME.into()),
            }
        }
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            want(1)?;
            let ns = time_of(&args[0])?;
            Value::S(
                match f {
                    "unixEpoch" => ns.div_euclid(1_000_000_000),
                    "unixEpochMillis" => ns.div_euclid(1_000_000),
                    _ => ns,
                }
                .to_string(),
            )
        }
        "unixToTime" => {
            want(1)?;
            Value::T(unix_to_time(&s(0))?)
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// Go's zero `time.Time`, as a template prints it.
const ZERO_TIME: &str = "0001-01-01 00:00:00 +0000 UTC";

/// The time a value stands for: a time, or Unix seconds (Sprig's `date` takes both).
fn time_of(v: &Value) -> Result<i64, String> {
    match v {
        Value::T(ns) => Ok(*ns),
        other => Ok((to_float(other) * 1e9) as i64),
    }
}

/// Sprig's integer conversion: numbers truncate, text must be an integer, else 0.
fn to_int(v: &Value) -> i64 {
    match v {
        Value::N(n) => *n as i64,
        Value::B(b) => i64::from(*b),
        Value::T(ns) => *ns,
        Value::S(s) => s.trim().parse().unwrap_or(0),
        Value::J(_) => 0,
    }
}

fn to_float(v: &Value) -> f64 {
    match v {
        Value::N(n) => *n,
        Value::B(b) => f64::from(u8::from(*b)),
        Value::T(ns) => *ns as f64,
        Value::S(s) => s.trim().parse().unwrap_or(0.0),
        Value::J(_) => 0.0,
    }
}

fn bounded_repeat(unit: &str, n: i64) -> Result<String, String> {
    let n = n.max(0) as usize;
    if n.saturating_mul(unit.len()) > MAX_OUTPUT {
        return Err(format!("output over {MAX_OUTPUT} bytes"));
    }
    Ok(unit.repeat(n))
}

/// Loki's `alignLeft`/`alignRight`: pad with spaces or cut to `count` characters.
fn align(count: i64, src: &str, left: bool) -> Result<String, String> {
    let chars: Vec<char> = src.chars().collect();
    let len = chars.len() as i64;
    if count < 0 || count == len {
        return Ok(src.to_owned());
    }
    if count > len {
        let pad = bounded_repeat(" ", count - len)?;
        return Ok(if left {
            src.to_owned() + &pad
        } else {
            pad + src
        });
    }
    let n = count as usize;
    Ok(if left {
        chars[..n].iter().collect()
    } else {
        chars[chars.len() - n..].iter().collect()
    })
}

/// Loki's `b64dec`: missing padding is added; undecodable text answers the error's text.
fn b64dec(v: &str) -> String {
    let mut v = v.to_owned();
    let rem = v.len() % 4;
    if rem != 0 && rem != 1 {
        v.push_str(&"=".repeat(4 - rem));
    }
    match base64::engine::general_purpose::STANDARD.decode(v.as_bytes()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => e.to_string(),
    }
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, space becomes `+`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a bad escape is an error.
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Loki's `unixToTime`: days (5 digits), seconds (10), milliseconds (13), microseconds
/// (16) or nanoseconds (19).
fn unix_to_time(epoch: &str) -> Result<i64, String> {
    let bad = || format!("unable to parse time '{epoch}'");
    let n: i64 = epoch.parse().map_err(|_| bad())?;
    let scale = match epoch.len() {
        5 => 86_400 * 1_000_000_000,
        10 => 1_000_000_000,
        13 => 1_000_000,
        16 => 1_000,
        19 => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &str, args: &[Value]) -> String {
        let labels = Default::default();
        let data = Data {
            labels: &labels,
            line: "",
            ts_ns: 0,
        };
        call(f, args, &data).unwrap().text()
    }

    fn s(v: &str) -> Value {
        Value::S(v.into())
    }

    #[test]
    fn encodings_units_and_layout() {
        assert_eq!(run("b64enc", &[s("web-1")]), "d2ViLTE=");
        assert_eq!(run("b64dec", &[s("d2ViLTE")]), "web-1");
        assert_eq!(run("urlencode", &[s("a b&c=d/é")]), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(run("urldecode", &[s("a+b%26c")]), "a b&c");
        assert_eq!(run("bytes", &[s("5MB")]), "5000000");
        assert_eq!(run("duration", &[s("1m30s")]), "90");
        assert_eq!(run("alignLeft", &[Value::N(5.0), s("abc")]), "abc  ");
        assert_eq!(run("alignRight", &[Value::N(2.0), s("abc")]), "bc");
        assert_eq!(run("count", &[s("o"), s("foo boo")]), "4");
        assert_eq!(run("nindent", &[Value::N(2.0), s("a\nb")]), "\n  a\n  b");
    }

    #[test]
    fn numbers_as_sprig_computes_them() {
        assert_eq!(run("add", &[s("2"), Value::N(3.0), s("x")]), "5");
        assert_eq!(run("div", &[Value::N(7.0), Value::N(2.0)]), "3");
        assert_eq!(run("divf", &[Value::N(7.0), Value::N(2.0)]), "3.5");
        assert_eq!(run("round", &[Value::N(12.3456), Value::N(2.0)]), "12.35");
        assert_eq!(
            run("max", &[Value::N(1.0), Value::N(9.0), Value::N(4.0)]),
            "9"
        );
        assert_eq!(run("lt", &[Value::N(1.0), s("2")]), "true");
    }

    #[test]
    fn times() {
        let t = Value::T(1_796_144_765_250_000_000);
        assert_eq!(run("date", &[s("15:04:05"), t.clone()]), "17:06:05");
        assert_eq!(run("unixEpoch", std::slice::from_ref(&t)), "1796144765");
        assert_eq!(
            run("unixEpochMillis", std::slice::from_ref(&t)),
            "1796144765250"
        );
        assert_eq!(
            run("unixToTime", &[s("1796144765")]),
            "2026-12-01 17:06:05 +0000 UTC"
        );
        assert_eq!(
            run("toDate", &[s("2006-01-02"), s("2026-12-01")]),
            "2026-12-01 00:00:00 +0000 UTC"
        );
        assert_eq!(run("toDate", &[s("2006-01-02"), s("yesterday")]), ZERO_TIME);
        let in_zone = |zone: &str, text: &str| {
            run("toDateInZone", &[s("2006-01-02 15:04"), s(zone), s(text)])
        };
        // India is UTC+05:30 all year; New York is UTC-05:00 in winter, -04:00 in summer.
        assert_eq!(
            in_zone("Asia/Kolkata", "2026-12-01 17:06"),
            "2026-12-01 11:36:00 +0000 UTC"
        );
        assert_eq!(
            in_zone("America/New_York", "2026-12-01 12:00"),
            "2026-12-01 17:00:00 +0000 UTC"
        );
        assert_eq!(
            in_zone("America/New_York", "2026-07-01 12:00"),
            "2026-07-01 16:00:00 +0000 UTC"
        );
        // An unknown zone is UTC, as in Loki; an offset in the text wins over the zone.
        assert_eq!(
            in_zone("Nowhere/Atlantis", "2026-12-01 12:00"),
            "2026-12-01 12:00:00 +0000 UTC"
        );
        assert_eq!(
            run(
                "toDateInZone",
                &[
                    s("2006-01-02 15:04 -0700"),
                    s("Asia/Kolkata"),
                    s("2026-12-01 12:00 +0100")
                ]
            ),
            "2026-12-01 11:00:00 +0000 UTC"
        );
        assert_eq!(in_zone("UTC", "not a time"), ZERO_TIME);
    }
}
