//! What template functions take and give: [`Value`] (text, number, boolean, time, decoded
//! JSON) with Go's truthiness and printing, and [`Args`], a function's arguments.
//!
//! Must not: evaluate templates or call functions.

use super::{clock, json};

/// A function's arguments as its body reads them: text by position (empty past the end)
/// and the count it wants.
pub(super) struct Args<'a> {
    pub(super) f: &'a str,
    pub(super) v: &'a [Value],
}

impl Args<'_> {
    pub(super) fn text(&self, i: usize) -> String {
        self.v.get(i).map(Value::text).unwrap_or_default()
    }

    pub(super) fn want(&self, n: usize) -> Result<(), String> {
        if self.v.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{}: wants {n} arguments, got {}",
                self.f,
                self.v.len()
            ))
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    S(String),
    N(f64),
    B(bool),
    /// A time, in Unix nanoseconds.
    T(i64),
    /// Decoded JSON (`fromJson`): an object, array or null.
    J(serde_json::Value),
}

impl Value {
    pub(super) fn text(&self) -> String {
        match self {
            Value::S(s) => s.clone(),
            Value::N(n) => crate::query::value::format_float(*n),
            Value::B(b) => b.to_string(),
            Value::T(ns) => clock::display(*ns),
            Value::J(j) => json::print(j),
        }
    }

    pub(super) fn truthy(&self) -> bool {
        match self {
            Value::S(s) => !s.is_empty(),
            Value::N(n) => *n != 0.0,
            Value::B(b) => *b,
            Value::T(_) => true,
            Value::J(j) => match j {
                serde_json::Value::Object(m) => !m.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Null => false,
                _ => true,
            },
        }
    }

    pub(super) fn num(&self) -> Result<f64, String> {
        match self {
            Value::N(n) => Ok(*n),
            Value::S(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a number")),
            Value::B(_) => Err("a boolean is not a number".into()),
            Value::T(_) => Err("a time is not a number".into()),
            Value::J(_) => Err("decoded JSON is not a number".into()),
        }
    }
}
