//! Ingest enrichment, as Loki does it: a `service_name` stream label and a `detected_level`
//! structured-metadata entry, so that Grafana colours log-volume bars and Drilldown groups by
//! service. Both are added before the entry is hashed, so they are part of the record.
//!
//! Owns: Loki's discovery rules: `service_name` from the first present label of
//! [`SERVICE_NAME_SOURCES`] (else `unknown_service`); `detected_level` from a level label,
//! then level metadata, then an OTLP `severity_number`, then a `level`-like field of a JSON
//! or logfmt line, then the earliest
//! level word in the line, normalised to `trace debug info warn error critical fatal` or
//! `unknown` (a label or metadata value that names no level is kept as it is).
//!
//! Must not: change a value the client or the token set: an existing `service_name` label is
//! kept as sent, and sent `detected_level` metadata only takes its normal form, as in Loki.

use crate::store::append::{Pairs, Stream};

/// Labels `service_name` is taken from, in order: Loki's `discover_service_name` default.
pub const SERVICE_NAME_SOURCES: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Label and field names a level is read from: Loki's `log_level_fields` default.
pub const LEVEL_FIELDS: &[&str] = &[
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

pub const SERVICE_NAME: &str = "service_name";
pub const DETECTED_LEVEL: &str = "detected_level";
/// The metadata an OTLP record's severity number is kept in.
pub const SEVERITY_NUMBER: &str = "severity_number";
const UNKNOWN_SERVICE: &str = "unknown_service";

/// JSON nesting searched for a level field: Loki's `log_level_from_json_max_depth` default
/// (the object and the objects it holds).
const JSON_LEVEL_DEPTH: usize = 2;

/// Adds `service_name` and `detected_level` where missing.
pub fn apply(streams: &mut [Stream]) {
    for s in streams {
        if s.labels.get(SERVICE_NAME).is_none() {
            let service = SERVICE_NAME_SOURCES
                .iter()
                .find_map(|k| s.labels.get(k).filter(|v| !v.is_empty()))
                .unwrap_or(UNKNOWN_SERVICE)
                .to_owned();
            s.labels = with(&s.labels, SERVICE_NAME, service);
        }
        let label_level = LEVEL_FIELDS
            .iter()
            .find_map(|k| s.labels.get(k))
            .map(normalise);
        for e in &mut s.entries {
            if let Some(sent) = e.metadata.get(DETECTED_LEVEL) {
                // Loki keeps a sent level but in its normal form.
                let normal = normalise(sent);
                if normal != sent {
                    e.metadata = replaced(&e.metadata, DETECTED_LEVEL, normal);
                }
                continue;
            }
            let level = label_level.clone().unwrap_or_else(|| {
                let meta = LEVEL_FIELDS.iter().find_map(|k| e.metadata.get(k));
                match (meta, e.metadata.get(SEVERITY_NUMBER)) {
                    (Some(v), _) => normalise(v),
                    (None, Some(n)) => from_severity_number(n).to_owned(),
                    (None, None) => from_line(&e.line),
                }
            });
            e.metadata = with(&e.metadata, DETECTED_LEVEL, level);
        }
    }
}

/// The level of an OTLP severity number (1–4 trace, 5–8 debug, 9–12 info, 13–16 warn,
/// 17–20 error, 21–24 fatal), as Loki reads it; text that is no number reads as info.
fn from_severity_number(n: &str) -> &'static str {
    match n.parse::<i64>() {
        Err(_) => "info",
        Ok(0) => "unknown",
        Ok(n) if n <= 4 => "trace",
        Ok(n) if n <= 8 => "debug",
        Ok(n) if n <= 12 => "info",
        Ok(n) if n <= 16 => "warn",
        Ok(n) if n <= 20 => "error",
        Ok(n) if n <= 24 => "fatal",
        Ok(_) => "unknown",
    }
}

fn replaced(p: &Pairs, name: &str, value: String) -> Pairs {
    let v = p.clone().into_vec().into_iter().map(|(k, v)| {
        let v = if k == name { value.clone() } else { v };
        (k, v)
    });
    Pairs::new(v.collect()).unwrap_or_else(|_| p.clone())
}

fn with(p: &Pairs, name: &str, value: String) -> Pairs {
    let mut v = p.clone().into_vec();
    v.push((name.to_owned(), value));
    // Names are unique: the caller checked `name` is absent.
    Pairs::new(v).unwrap_or_else(|_| p.clone())
}

/// A level value in Loki's normal form; a value that names no known level is kept as it is.
pub fn normalise(v: &str) -> String {
    known_level(v).map_or_else(|| v.to_owned(), str::to_owned)
}

/// The level a value names, compared without case: Loki's names and abbreviations.
fn known_level(v: &str) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("trc", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("warn", "warn"),
        ("wrn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("critical", "critical"),
        ("fatal", "fatal"),
    ];
    NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|(_, level)| *level)
}

/// The level of a line without a level label or metadata: a level field of a JSON object
/// line (`{...}`), else of a logfmt line (one with a `=`), else (or when that field names no
/// known level) the earliest level word in the line.
fn from_line(line: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(line) else {
        return UNKNOWN_LEVEL.into();
    };
    let trimmed = text.trim();
    let field = if trimmed.starts_with('{') && trimmed.ends_with('}') {
        json_level(trimmed)
    } else if text.contains('=') {
        logfmt_level(text)
    } else {
        None
    };
    field
        .as_deref()
        .and_then(known_level)
        .unwrap_or_else(|| words(text))
        .to_owned()
}

/// The first string value of a [`LEVEL_FIELDS`] key, in document order, in the object or
/// the objects it holds down to [`JSON_LEVEL_DEPTH`] levels. What was found before a
/// syntax error still counts, as Loki's scanner stops at the field.
fn json_level(line: &str) -> Option<String> {
    use serde::de::Deserializer as _;
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(line);
    let _ = de.deserialize_any(LevelSearch {
        depth: 0,
        found: &found,
    });
    found.into_inner()
}

/// Walks a JSON value for [`json_level`], skipping everything but objects.
struct LevelSearch<'a> {
    depth: usize,
    found: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for LevelSearch<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LevelSearch<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.found.borrow().is_some() {
                m.next_value::<IgnoredAny>()?;
            } else if LEVEL_FIELDS.contains(&key.as_ref()) {
                if let serde_json::Value::String(s) = m.next_value::<serde_json::Value>()? {
                    *self.found.borrow_mut() = Some(s);
                }
            } else if self.depth + 1 < JSON_LEVEL_DEPTH {
                m.next_value_seed(LevelSearch {
                    depth: self.depth + 1,
                    found: self.found,
                })?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The value of the first-listed [`LEVEL_FIELDS`] key (names compared without case) among
/// the pairs before the line's first logfmt error.
fn logfmt_level(line: &str) -> Option<String> {
    let (pairs, _) = crate::logfmt::pairs(line, true);
    let mut best: Option<(usize, String)> = None;
    for (k, v) in pairs {
        let rank = LEVEL_FIELDS.iter().position(|f| f.eq_ignore_ascii_case(&k));
        if let Some(rank) = rank
            && best.as_ref().is_none_or(|(r, _)| rank < *r)
        {
            best = Some((rank, v.unwrap_or_default()));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, v)| v)
}

/// Level words, in the order Loki tries them: at the same position the earlier one wins.
const LEVEL_WORDS: &[(&str, &str)] = &[
    ("trace", "trace"),
    ("debug", "debug"),
    ("fatal", "fatal"),
    ("critical", "critical"),
    ("error", "error"),
    ("err", "error"),
    ("warning", "warn"),
    ("warn", "warn"),
    ("info", "info"),
];

const UNKNOWN_LEVEL: &str = "unknown";

/// The level word that occurs earliest in the line, without case, standing as a word: before
/// it the line starts or one of ` \t\n[({"'=|`; after it the line ends or one of
/// ` \t\n[](){}:,!"'=|`. So `ERROR` inside an ANSI colour code (`\x1b[31mERROR`) or in
/// `misc:error` is not a level word.
fn words(line: &str) -> &'static str {
    let lower = line.to_ascii_lowercase();
    let mut best = (usize::MAX, UNKNOWN_LEVEL);
    for (word, level) in LEVEL_WORDS {
        if let Some(pos) = bounded(&lower, word)
            && pos < best.0
        {
            best = (pos, level);
            if pos == 0 {
                break;
            }
        }
    }
    best.1
}

/// The first position of `word` in `s` that stands as a level word.
fn bounded(s: &str, word: &str) -> Option<usize> {
    let b = s.as_bytes();
    let left = |i: usize| i == 0 || b" \t\n[({\"'=|".contains(&b[i - 1]);
    let right = |i: usize| i >= b.len() || b" \t\n[](){}:,!\"'=|".contains(&b[i]);
    s.match_indices(word)
        .map(|(i, _)| i)
        .find(|&i| left(i) && right(i + word.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::append::NewEntry;

    fn stream(labels: &[(&str, &str)], lines: &[&str]) -> Stream {
        Stream {
            labels: Pairs::new(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .unwrap(),
            entries: lines
                .iter()
                .map(|l| NewEntry {
                    ts_ns: 1,
                    metadata: Pairs::default(),
                    line: l.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn service_name_follows_the_discovery_list() {
        let mut s = [
            stream(&[("job", "sshd"), ("app", "auth")], &["x"]),
            stream(&[("host", "a")], &["x"]),
            stream(&[("service_name", "kept"), ("job", "j")], &["x"]),
        ];
        apply(&mut s);
        assert_eq!(s[0].labels.get("service_name"), Some("auth"));
        assert_eq!(s[1].labels.get("service_name"), Some("unknown_service"));
        assert_eq!(s[2].labels.get("service_name"), Some("kept"));
    }

    #[test]
    fn detected_level_from_label_json_logfmt_and_keywords() {
        let mut s = [
            stream(
                &[("job", "x")],
                &[
                    r#"{"msg":"x","level":"WARNING"}"#,
                    r#"{"log":{"severity":"err"}}"#,
                    "ts=1 lvl=dbg msg=hi",
                    "sshd[1]: error: PAM authentication failure",
                    "Accepted publickey for ops",
                ],
            ),
            stream(&[("job", "y"), ("level", "Fatal")], &["anything info"]),
        ];
        apply(&mut s);
        let lv = |i: usize, j: usize| {
            s[i].entries[j]
                .metadata
                .get(DETECTED_LEVEL)
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            [lv(0, 0), lv(0, 1), lv(0, 2), lv(0, 3), lv(0, 4)],
            ["warn", "error", "debug", "error", "unknown"]
        );
        assert_eq!(lv(1, 0), "fatal");
    }

    #[test]
    fn the_earliest_level_word_wins() {
        assert_eq!(words("WARNING: disk error, see information"), "warn");
        assert_eq!(words("disk error, WARNING"), "error");
        assert_eq!(words("kernel: warning: CRITICAL: temp"), "warn");
        assert_eq!(words("[DEBUG] x"), "debug");
        assert_eq!(words("Accepted publickey"), "unknown");
        // Not words: inside a colour code, after a colon, inside another word.
        assert_eq!(words("\x1b[31mERROR\x1b[0m port open"), "unknown");
        assert_eq!(words("misc:error happened"), "unknown");
        assert_eq!(words("informational errors"), "unknown");
    }

    #[test]
    fn levels_that_name_no_known_level_are_kept() {
        assert_eq!(normalise("Notice"), "Notice");
        assert_eq!(normalise("WRN"), "warn");
        assert_eq!(from_line(br#"{"msg":"x","level":"notice"} "#), "unknown");
        // Abbreviations are found only as fields: one object down, not two.
        assert_eq!(from_line(br#"{"a":{"level":"wrn"}}"#), "warn");
        assert_eq!(from_line(br#"{"a":{"b":{"level":"wrn"}}}"#), "unknown");
        assert_eq!(from_line(b"LEVEL=error msg=x"), "error");
    }
}
