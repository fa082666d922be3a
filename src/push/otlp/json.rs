//! OTLP/JSON: the field encodings the protobuf JSON mapping uses (64-bit integers as strings
//! or numbers, trace and span ids as hex, bytes as base64, doubles that may be `"NaN"`), the
//! `AnyValue` object, and the count of what a body will build, taken before it is decoded.
//!
//! Must not: map records to entries or decide statuses.

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Objects and arrays in a JSON text, counted outside strings in one pass without
/// allocating; `Err` when they nest deeper than `max_depth`. Each becomes at most one
/// struct or vector once decoded, so the count prices decoding before it starts.
pub fn containers(body: &[u8], max_depth: usize) -> Result<usize, &'static str> {
    let (mut n, mut depth, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                n += 1;
                depth += 1;
                if depth > max_depth {
                    return Err("JSON nested too deep");
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(n)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString<'a> {
    U(u64),
    I(i64),
    F(f64),
    S(&'a str),
    Owned(String),
}

impl NumberOrString<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            NumberOrString::S(s) => Some(s),
            NumberOrString::Owned(s) => Some(s),
            _ => None,
        }
    }
}

/// A `fixed64` field: a JSON number or a decimal string.
pub fn u64_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrString::deserialize(d)? {
        NumberOrString::U(v) => Ok(v),
        v => v
            .text()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| de::Error::custom("expected an unsigned integer or a decimal string")),
    }
}

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match NumberOrString::deserialize(d)? {
        NumberOrString::U(v) => i64::try_from(v).map_err(de::Error::custom),
        NumberOrString::I(v) => Ok(v),
        v => v
            .text()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| de::Error::custom("expected an integer or a decimal string")),
    }
}

fn double<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumberOrString::deserialize(d)? {
        NumberOrString::U(v) => Ok(v as f64),
        NumberOrString::I(v) => Ok(v as f64),
        NumberOrString::F(v) => Ok(v),
        v => match v.text() {
            Some("NaN") => Ok(f64::NAN),
            Some("Infinity") => Ok(f64::INFINITY),
            Some("-Infinity") => Ok(f64::NEG_INFINITY),
            Some(s) => s.parse().map_err(de::Error::custom),
            None => Err(de::Error::custom("expected a number")),
        },
    }
}

/// A trace or span id: hex (OTLP/JSON's exception to base64 bytes); empty is no id.
pub fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    hex::decode(s.as_bytes()).map_err(|e| de::Error::custom(format!("invalid hex id: {e}")))
}

fn b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|e| de::Error::custom(format!("invalid base64 bytesValue: {e}")))
}

pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int_or_string(d).map(Some)
}

pub fn opt_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    double(d).map(Some)
}

pub fn opt_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    b64(d).map(Some)
}
