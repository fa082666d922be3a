//! `/metrics` on the local listener through the real server: reads by endpoint with latency
//! histograms, push latency, seals and disk; fixed endpoint names rather than paths, and
//! neither a secret nor a pushed line in any label.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::inproc::InProc;
use common::server::request;

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[test]
fn reads_pushes_seals_and_disk_are_counted_without_secrets_or_content() {
    let tmp = tempfile::tempdir().unwrap();
    let s = InProc::start(
        &tmp.path().join("data"),
        "",
        std::time::Duration::from_secs(1),
        None,
    );
    let line = "Failed password for secret-user-4711";
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"sshd"}},"values":[["{}","{line}"]]}}]}}"#,
        daftari::clock::now_ns()
    );
    assert_eq!(s.push_json(&s.token, &body).status, 204);
    let get = |path: &str| request(s.local, "GET", path, &[], Vec::new());
    for _ in 0..2 {
        let r = get("/loki/api/v1/query_range?query=%7Bjob%3D%22sshd%22%7D&since=1h");
        assert_eq!(r.status, 200);
    }
    assert_eq!(get("/some/prefix/loki/api/v1/label/job/values").status, 200);
    assert_eq!(get("/loki/api/v1/query?query=%7Bjob%3D").status, 400);
    s.end_epoch();
    let m = get("/metrics").body;

    let q = "daftari_query_requests_total";
    assert_eq!(
        value(
            &m,
            &format!("{q}{{endpoint=\"query_range\",status=\"200\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!("{q}{{endpoint=\"label_values\",status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(&m, &format!("{q}{{endpoint=\"query\",status=\"400\"}}")),
        1.0
    );
    let h = "daftari_query_duration_seconds";
    assert_eq!(
        value(&m, &format!("{h}_count{{endpoint=\"query_range\"}}")),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!("{h}_bucket{{endpoint=\"query_range\",le=\"+Inf\"}}")
        ),
        2.0
    );
    assert_eq!(value(&m, "daftari_push_duration_seconds_count"), 1.0);
    assert!(
        value(&m, "daftari_seal_last_timestamp_seconds") > 0.0,
        "an epoch was sealed"
    );
    assert!(value(&m, "daftari_disk_free_bytes") > 0.0);
    assert!(value(&m, "daftari_token_entries_total{token=\"bootstrap\"}") >= 1.0);
    // The writer: nothing waits now; every group commit (the push, the audit records of
    // the reads, the admin entry) is counted with its size and time.
    assert_eq!(value(&m, "daftari_writer_queue_batches"), 0.0);
    assert_eq!(value(&m, "daftari_writer_queue_bytes"), 0.0);
    let commits = value(&m, "daftari_writer_commit_duration_seconds_count");
    assert!(commits >= 3.0, "{commits} commits");
    assert_eq!(value(&m, "daftari_writer_group_entries_count"), commits);
    assert!(value(&m, "daftari_writer_group_entries_sum") >= commits);
    assert_eq!(
        value(&m, "daftari_writer_group_entries_bucket{le=\"+Inf\"}"),
        commits
    );
    assert_eq!(value(&m, "daftari_writer_commit_failures_total"), 0.0);

    assert!(!m.contains("secret-user-4711"), "no log content");
    assert!(!m.contains(&s.token), "no secret");
    assert!(!m.contains("prefix"), "no client path");
    // Every sample line belongs to a declared metric.
    for l in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = l.split(['{', ' ']).next().unwrap();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            m.contains(&format!("# TYPE {name} ")) || m.contains(&format!("# TYPE {base} ")),
            "{l}"
        );
    }
}
