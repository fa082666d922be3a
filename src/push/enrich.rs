//! Ingest enrichment, as Loki does it: a `service_name` stream label and a `detected_level`
//! structured-metadata entry, so that Grafana colours log-volume bars and Drilldown groups by
//! service. Both are added before the entry is hashed, so they are part of the record.
//!
//! Owns: Loki's discovery rules: `service_name` from the first present label of
//! [`SERVICE_NAME_SOURCES`] (else `unknown_service`); `detected_level` from a level label,
//! then level metadata, then a `level`-like field of a JSON or logfmt line, then keywords in
//! the line, normalised to `trace debug info warn error critical fatal` or `unknown`.
//!
//! Must not: change a value the client or the token set: an existing `service_name` label or
//! `detected_level` metadata is kept as sent.

use crate::store::{Pairs, Stream};

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
    "level", "LEVEL", "Level", "Severity", "severity", "SEVERITY", "lvl", "LVL", "Lvl",
];

pub const SERVICE_NAME: &str = "service_name";
pub const DETECTED_LEVEL: &str = "detected_level";
const UNKNOWN_SERVICE: &str = "unknown_service";

/// JSON nesting searched for a level field: Loki's depth.
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
            if e.metadata.get(DETECTED_LEVEL).is_some() {
                continue;
            }
            let level = label_level.clone().unwrap_or_else(|| {
                let meta = LEVEL_FIELDS.iter().find_map(|k| e.metadata.get(k));
                match meta {
                    Some(v) => normalise(v),
                    None => from_line(&e.line),
                }
            });
            e.metadata = with(&e.metadata, DETECTED_LEVEL, level);
        }
    }
}

fn with(p: &Pairs, name: &str, value: String) -> Pairs {
    let mut v = p.clone().into_vec();
    v.push((name.to_owned(), value));
    // Names are unique: the caller checked `name` is absent.
    Pairs::new(v).unwrap_or_else(|_| p.clone())
}

/// A level value in Loki's normal form.
pub fn normalise(v: &str) -> String {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" | "trc" => "trace",
        "debug" | "dbg" => "debug",
        "info" | "inf" | "information" | "notice" => "info",
        "warn" | "wrn" | "warning" => "warn",
        "error" | "err" | "eror" => "error",
        "critical" | "crit" => "critical",
        "fatal" | "panic" | "emerg" | "alert" => "fatal",
        _ => "unknown",
    }
    .to_owned()
}

fn from_line(line: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(line) else {
        return "unknown".into();
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
            && let Some(l) = json_level(&v, JSON_LEVEL_DEPTH)
        {
            return normalise(&l);
        }
    } else if let Some(l) = logfmt_level(text) {
        return normalise(&l);
    }
    keywords(text).to_owned()
}

fn json_level(v: &serde_json::Value, depth: usize) -> Option<String> {
    let obj = v.as_object()?;
    for k in LEVEL_FIELDS {
        match obj.get(*k) {
            Some(serde_json::Value::String(s)) => return Some(s.clone()),
            Some(serde_json::Value::Number(n)) => return Some(n.to_string()),
            _ => {}
        }
    }
    if depth > 1 {
        return obj.values().find_map(|v| json_level(v, depth - 1));
    }
    None
}

/// The value of a `level=`-like key in a logfmt line, found in one pass.
fn logfmt_level(line: &str) -> Option<String> {
    static KEY: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    if !line.contains('=') {
        return None;
    }
    let re = KEY.get_or_init(|| {
        let names = LEVEL_FIELDS.join("|");
        regex::Regex::new(&format!(r#"(?:^|\s)(?:{names})=("[^"]*"|\S*)"#)).ok()
    });
    let caps = re.as_ref()?.captures(line)?;
    Some(caps.get(1)?.as_str().trim_matches('"').to_owned())
}

/// Loki's keywords, each with the level it means and its rank: when several occur, the
/// lowest rank wins (Loki tests info, then error, warn, critical, debug).
const KEYWORDS: &[(&str, &str, u8)] = &[
    ("info", "info", 0),
    ("INFO", "info", 0),
    ("err:", "error", 1),
    ("ERR:", "error", 1),
    ("error", "error", 1),
    ("ERROR", "error", 1),
    ("warn:", "warn", 2),
    ("WARN:", "warn", 2),
    ("warning", "warn", 2),
    ("WARNING", "warn", 2),
    ("CRITICAL:", "critical", 3),
    ("critical:", "critical", 3),
    ("debug:", "debug", 4),
    ("DEBUG:", "debug", 4),
];

/// Loki's keyword detection, in one pass over the line.
fn keywords(line: &str) -> &'static str {
    static SET: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| {
        let alts: Vec<String> = KEYWORDS.iter().map(|(k, _, _)| regex::escape(k)).collect();
        regex::Regex::new(&alts.join("|")).ok()
    });
    let Some(set) = set else {
        return "unknown";
    };
    let mut best: Option<(u8, &'static str)> = None;
    // No keyword ends with the start of another, so non-overlapping matches find them all.
    for m in set.find_iter(line) {
        let text = m.as_str();
        if let Some((_, level, rank)) = KEYWORDS.iter().find(|(k, _, _)| *k == text)
            && best.is_none_or(|(r, _)| *rank < r)
        {
            best = Some((*rank, *level));
            if *rank == 0 {
                break;
            }
        }
    }
    best.map_or("unknown", |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEntry;

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
    fn keywords_rank_as_loki_tests_them() {
        assert_eq!(keywords("WARNING: disk error, see information"), "info");
        assert_eq!(keywords("WARNING: disk error"), "error");
        assert_eq!(keywords("kernel: warning: CRITICAL: temp"), "warn");
        assert_eq!(keywords("CRITICAL: debug: x"), "critical");
        assert_eq!(keywords("DEBUG: x"), "debug");
        assert_eq!(keywords("Accepted publickey"), "unknown");
    }
}
