//! The recorded answers of a real Grafana Loki (`tests/golden/loki/`): its data is pushed
//! into a fresh server through the push API, every recorded request is replayed against the
//! local listener, and the answers are compared under the corpus's normalizations
//! (`compare.py`: stream and series order, float formatting, Loki-internal stats).
//!
//! Every request must answer as Loki did, except those listed in [`KNOWN`] with the reason.
//! A listed request that now agrees fails the test too, so the list stays true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::server::Server;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/loki");

/// Byte counts of `index/stats` and `index/volume*`: Loki estimates them from its chunks
/// (whole KiB per chunk, with overhead); daftari counts line bytes exactly, 5-15% lower.
const BYTES_TOLERANCE: &str = "0.15";

/// This Loki answered `{}` for every selector, although its documentation describes the
/// endpoint as the labels of the matching streams with their cardinality; daftari answers as
/// documented.
const DETECTED_LABELS: &str = "Loki answered {} where its documentation lists the labels of \
     the matching streams with their cardinality; daftari lists them";

/// Answers that differ from the recorded ones, each with why.
const KNOWN: &[(&str, &str)] = &[
    (
        "015.json",
        "Loki moves a line filter ahead of `decolorize`, so `| decolorize |= \"ERROR [scanner] \
         port\"` tests the coloured line; LogQL's documentation applies stages in order, and \
         daftari filters the decolorized line",
    ),
    (
        "028.json",
        "Loki matched `trace_id=~\"f.*\"` unanchored on structured metadata; its documentation \
         says regular-expression label matchers are fully anchored, as daftari applies them",
    ),
    (
        "api-volume_range-job-series.json",
        "Loki spreads a chunk's estimated KiB over the steps it spans and reports the 60 lines \
         of `aide` as 0 bytes; daftari counts each entry's line bytes in its step",
    ),
    (
        "api-volume-host-series.json",
        "the host web-2 holds the authproxy stream whose lines Loki's chunk estimate counts \
         with their structured metadata (trace_id) and chunk overhead: about 20% above daftari's exact line bytes",
    ),
    ("api-detected_labels-prod.json", DETECTED_LABELS),
    ("api-detected_labels-sshd.json", DETECTED_LABELS),
    (
        "api-drilldown-limits-noorg.json",
        "Loki refuses drilldown-limits without X-Scope-OrgID (401 no org id) even with \
         authentication off, the only read endpoint that does; daftari's tenant header is \
         optional everywhere and Grafana sends none unless configured, so it answers",
    ),
];

fn push_corpus(s: &Server) {
    let data = std::fs::read_to_string(Path::new(CORPUS).join("data.jsonl")).unwrap();
    for (i, body) in data.lines().enumerate() {
        let r = s.push_json(&s.token, body);
        assert_eq!(r.status, 204, "body {i}: {}", r.body);
    }
}

#[test]
fn answers_as_the_recorded_loki_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    push_corpus(&s);
    let report = tmp.path().join("report.json");
    let out = Command::new("python3")
        .arg(Path::new(CORPUS).join("compare.py"))
        .arg(format!("http://{}", s.local))
        .arg(CORPUS)
        .args(["--bytes-tol", BYTES_TOLERANCE, "--json"])
        .arg(&report)
        .output()
        .expect("python3 runs compare.py");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr))),
    )
    .unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 110, "every recorded request was replayed");
    let mut wrong = Vec::new();
    for row in rows {
        let file = row["file"].as_str().unwrap();
        let same = row["same"].as_bool().unwrap();
        let known = KNOWN.iter().any(|(f, _)| *f == file);
        match (same, known) {
            (false, false) => wrong.push(format!(
                "DIFF {file} {}: {}",
                row["query"].as_str().unwrap_or(""),
                row["desc"].as_str().unwrap_or("")
            )),
            (true, true) => wrong.push(format!(
                "{file} now answers as Loki did: take it off the KNOWN list"
            )),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} requests answer otherwise than expected:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}
