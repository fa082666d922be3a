//! OTLP values and attribute names as Loki turns them into text: a value as the line or as a
//! structured-metadata value (strings as they are, numbers and booleans in Go's forms, bytes
//! in base64, maps and arrays as JSON with sorted keys), a map attribute flattened into one
//! pair per leaf (`http.request` `{method}` → `http_request_method`), and attribute names made
//! label names (every run of characters outside `[A-Za-z0-9]` becomes one `_`, a leading digit
//! gains `key_`, `__x__` stays reserved).
//!
//! Every text is charged to the push budget through a [`Meter`] before it is built, by a
//! bound on its length: a flattened name repeats its parents' names, and JSON can write a
//! control character as six, so what is built can outgrow the body it came from.
//!
//! Must not: decide which attributes become labels; that is `map`.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;

use super::proto::{AnyValue, KeyValue, Value};
use crate::push::error::PushError;
use crate::push::memory::{Charge, PAIR_OVERHEAD};

/// Bytes counted before they are taken from the budget in one step, so the budget's lock
/// stays out of the per-value path.
const CHARGE_STEP: usize = 64 << 10;

/// Counts what the mapping builds and takes it from the push budget in steps; at most
/// [`CHARGE_STEP`] bytes are built before they are taken.
pub struct Meter<'c, 'b> {
    charge: &'c mut Charge<'b>,
    pending: usize,
}

impl<'c, 'b> Meter<'c, 'b> {
    pub fn new(charge: &'c mut Charge<'b>) -> Self {
        Meter { charge, pending: 0 }
    }

    /// Counts `n` bytes about to be built.
    pub fn add(&mut self, n: usize) -> Result<(), PushError> {
        self.pending = self.pending.saturating_add(n);
        if self.pending >= CHARGE_STEP {
            self.charge.take(std::mem::take(&mut self.pending))?;
        }
        Ok(())
    }

    /// Takes what is still counted.
    pub fn finish(self) -> Result<(), PushError> {
        self.charge.take(self.pending)
    }
}

/// At least the length of [`text`] of `value`, computed without building it.
pub fn text_bound(value: Option<&Value>) -> usize {
    match value {
        // A string or bytes stand as they are (bytes in base64); only inside JSON do they
        // take quotes and escapes.
        Some(Value::StringValue(s)) => s.len(),
        Some(Value::BytesValue(b)) => b.len().div_ceil(3) * 4,
        v => json_bound(v),
    }
}

/// At least the length of `value` written as JSON.
fn json_bound(value: Option<&Value>) -> usize {
    match value {
        None => 4,
        Some(Value::StringValue(s)) => 6 * s.len() + 2,
        Some(Value::BoolValue(_)) => 5,
        Some(Value::IntValue(_)) => 20,
        Some(Value::DoubleValue(_)) => 24,
        Some(Value::BytesValue(b)) => b.len().div_ceil(3) * 4 + 2,
        Some(Value::ArrayValue(a)) => {
            a.values
                .iter()
                .map(|v| json_bound(v.value.as_ref()) + 1)
                .sum::<usize>()
                + 2
        }
        Some(Value::KvlistValue(kv)) => {
            kv.values
                .iter()
                .map(|p| {
                    6 * p.key.len()
                        + 4
                        + json_bound(p.value.as_ref().and_then(|v| v.value.as_ref()))
                })
                .sum::<usize>()
                + 2
        }
    }
}

/// `value` as text, as Loki stores an OTLP body or attribute value.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(f)) => float(*f),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            let mut out = String::new();
            json(Some(v), &mut out);
            out
        }
    }
}

/// A double as ECMAScript prints a number (Go's JSON and OTLP forms).
fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    if f == f.trunc() {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

fn json(value: Option<&Value>, out: &mut String) {
    match value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(f)) if f.is_finite() => out.push_str(&float(*f)),
        Some(Value::DoubleValue(_)) => out.push_str("null"),
        Some(Value::BytesValue(_)) => json_string(&text(value), out),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(v.value.as_ref(), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => {
            // A map: the last of a repeated key wins, keys in byte order.
            let map: BTreeMap<&str, Option<&Value>> = kv
                .values
                .iter()
                .map(|p| {
                    (
                        p.key.as_str(),
                        p.value.as_ref().and_then(|v| v.value.as_ref()),
                    )
                })
                .collect();
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                json(v, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Go writes it without HTML escaping.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An attribute name made a label name, as Loki's OTLP ingestion makes it.
pub fn label_name(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("attribute name is empty".into());
    }
    let reserved = key.len() >= 4 && key.starts_with("__") && key.ends_with("__");
    let inner = if reserved {
        &key[2..key.len() - 2]
    } else {
        key
    };
    let mut out = String::with_capacity(inner.len() + 4);
    let mut after_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            after_underscore = false;
        } else if !after_underscore {
            out.push('_');
            after_underscore = true;
        }
    }
    if reserved {
        out = format!("__{out}__");
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.bytes().all(|b| b == b'_') {
        return Err(format!("attribute name {key:?} makes no label name"));
    }
    Ok(out)
}

/// `kv` as (name, text) pairs: one, or one per leaf of a map value, names joined by `_`;
/// each pair is charged to `meter` before it is built.
pub fn flatten(
    kv: &KeyValue,
    out: &mut Vec<(String, String)>,
    meter: &mut Meter<'_, '_>,
) -> Result<(), PushError> {
    flatten_under(None, &kv.key, kv.value.as_ref(), out, meter)
}

fn flatten_under(
    prefix: Option<&str>,
    key: &str,
    value: Option<&AnyValue>,
    out: &mut Vec<(String, String)>,
    meter: &mut Meter<'_, '_>,
) -> Result<(), PushError> {
    meter.add(prefix.map_or(0, |p| p.len() + 1) + key.len() + 4)?;
    let name = match prefix {
        Some(p) => label_name(&format!("{p}_{key}")),
        None => label_name(key),
    }
    .map_err(|e| PushError::BadRequest(format!("invalid OTLP attribute: {e}")))?;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(kv)) => {
            for p in &kv.values {
                flatten_under(Some(&name), &p.key, p.value.as_ref(), out, meter)?;
            }
        }
        v => {
            meter.add(text_bound(v) + PAIR_OVERHEAD)?;
            out.push((name, text(v)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::otlp::proto::{ArrayValue, KeyValueList};

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        })
    }

    #[test]
    fn names_become_label_names_as_in_loki() {
        assert_eq!(label_name("service.name").unwrap(), "service_name");
        assert_eq!(label_name("k8s..pod__name").unwrap(), "k8s_pod_name");
        assert_eq!(label_name("1st").unwrap(), "key_1st");
        assert_eq!(label_name("__meta.x__").unwrap(), "__meta_x__");
        assert!(label_name("").is_err());
        assert!(label_name("...").is_err());
    }

    #[test]
    fn values_print_as_go_prints_them() {
        for (f, want) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (123456789.0, "123456789"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(float(f), want, "{f}");
        }
        let map = Value::KvlistValue(KeyValueList {
            values: vec![
                KeyValue {
                    key: "z".into(),
                    value: s("a<b\n\u{1}"),
                },
                KeyValue {
                    key: "a".into(),
                    value: Some(AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![
                                AnyValue {
                                    value: Some(Value::IntValue(-3)),
                                },
                                AnyValue { value: None },
                                AnyValue {
                                    value: Some(Value::DoubleValue(2.0)),
                                },
                            ],
                        })),
                    }),
                },
            ],
        });
        assert_eq!(text(Some(&map)), r#"{"a":[-3,null,2],"z":"a<b\n\u0001"}"#);
        assert_eq!(text(Some(&Value::BytesValue(vec![1, 2, 3]))), "AQID");
        assert!(text_bound(Some(&map)) >= text(Some(&map)).len());
        let control = "\u{1}\u{2}\n\"".repeat(50);
        let array = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::StringValue(control.clone())),
                },
                AnyValue {
                    value: Some(Value::BytesValue(vec![0xff; 31])),
                },
            ],
        });
        for v in [
            Value::StringValue(control),
            Value::BytesValue(vec![7; 31]),
            Value::DoubleValue(-1.234_567_890_123_456_7e-300),
            Value::IntValue(i64::MIN),
            array,
        ] {
            assert!(text_bound(Some(&v)) >= text(Some(&v)).len(), "{v:?}");
        }
        let limits = crate::push::Limits::default();
        let budget = crate::push::memory::Budget::new(&limits);
        let mut charge = budget.charge(&std::sync::Arc::from("t")).unwrap();
        let mut meter = Meter::new(&mut charge);
        let mut out = Vec::new();
        let kv = KeyValue {
            key: "http.request".into(),
            value: Some(AnyValue { value: Some(map) }),
        };
        flatten(&kv, &mut out, &mut meter).unwrap();
        assert_eq!(
            out,
            [
                ("http_request_z".to_string(), "a<b\n\u{1}".to_string()),
                ("http_request_a".to_string(), "[-3,null,2]".to_string())
            ]
        );
    }
}
