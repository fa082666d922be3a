//! Values a query works with: label sets with their category, samples, and Loki's number
//! formatting.
//!
//! Owns: [`Labels`] (name to value and whether it is a stream label, structured metadata or
//! parsed), [`Series`] keys, and `format_float` (Go's `FormatFloat(v, 'f', -1, 64)`).
//!
//! Must not: do I/O.

use std::collections::BTreeMap;

/// What one label costs besides its text (two strings and a tree node).
pub const LABEL_BYTES: usize = 80;

/// Where a label came from; Grafana's `categorize-labels` encoding keeps them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cat {
    Stream,
    Meta,
    Parsed,
}

/// The labels of one entry as the pipeline sees and changes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    map: BTreeMap<String, (String, Cat)>,
}

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|(v, _)| v.as_str())
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>, cat: Cat) {
        self.map.insert(name.into(), (value.into(), cat));
    }

    /// Adds a parsed label; a name already held by a stream label or metadata gets the
    /// suffix `_extracted`, as in Loki.
    pub fn set_parsed(&mut self, name: &str, value: impl Into<String>) {
        let taken = self.map.get(name).is_some_and(|(_, c)| *c != Cat::Parsed);
        if taken {
            self.set(format!("{name}_extracted"), value, Cat::Parsed);
        } else {
            self.set(name, value, Cat::Parsed);
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<(String, Cat)> {
        self.map.remove(name)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.map.retain(|k, (v, _)| keep(k, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Cat)> {
        self.map
            .iter()
            .map(|(k, (v, c))| (k.as_str(), v.as_str(), *c))
    }

    /// Roughly the memory the set holds: its text and a node per label.
    pub fn bytes(&self) -> usize {
        self.map
            .iter()
            .map(|(k, (v, _))| LABEL_BYTES + k.len() + v.len())
            .sum()
    }

    /// Name to value, every category merged.
    pub fn flat(&self) -> BTreeMap<String, String> {
        self.map
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// Name to value of one category.
    pub fn of(&self, cat: Cat) -> BTreeMap<String, String> {
        self.map
            .iter()
            .filter(|(_, (_, c))| *c == cat)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

/// A series' identity: its labels, sorted by name.
pub type Series = BTreeMap<String, String>;

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's infinities: the shortest text
/// that reads back as `v`, never with an exponent.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v == 0.0 {
        "0".into()
    } else {
        format!("{v}")
    }
}

/// A sample timestamp as Prometheus writes one: seconds with up to three decimals.
pub fn format_sample_ts(ms: i64) -> serde_json::Value {
    if ms % 1000 == 0 {
        serde_json::Value::from(ms / 1000)
    } else {
        // A float prints with its shortest exact decimals; milliseconds need at most three.
        serde_json::Value::from(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(1.0 / 60.0), "0.016666666666666666");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(-0.5), "-0.5");
    }

    #[test]
    fn parsed_labels_do_not_overwrite_stream_labels() {
        let mut l = Labels::new();
        l.set("host", "a", Cat::Stream);
        l.set_parsed("host", "b");
        l.set_parsed("user", "root");
        assert_eq!(l.get("host"), Some("a"));
        assert_eq!(l.get("host_extracted"), Some("b"));
        assert_eq!(l.of(Cat::Parsed).len(), 2);
    }
}
