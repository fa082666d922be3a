//! The third checkpoint channel through two real servers: one sink pushes every checkpoint
//! as a log line into another over the Loki push API with a token from its config; the notes
//! that arrive are anchors `verify` accepts. An unreachable endpoint is counted in
//! `/metrics` and never holds up ingest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::inproc::InProc;
use common::server::{Server, records, request};
use common::verify_with;

/// A config that pushes checkpoints to `url` with the token in a file beside it.
fn pushing_toml(dir: &Path, url: &str, token: &str) -> String {
    let token_file = dir.join("checkpoint-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    format!(
        "[seal]\ncheckpoint_push_url = \"{url}\"\ncheckpoint_push_token_file = \"{}\"\n",
        token_file.display()
    )
}

/// [`pushing_toml`] written to a config file; returns its path.
fn pushing_config(dir: &Path, url: &str, token: &str) -> String {
    let config = dir.join("daftari.toml");
    std::fs::write(&config, pushing_toml(dir, url, token)).unwrap();
    config.to_str().unwrap().to_owned()
}

/// Waits (up to 30 s) until `series` reaches `at_least`.
fn wait_metric(local: std::net::SocketAddr, series: &str, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = metric(local, series);
        if v >= at_least || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of one metric line, e.g. `name{channel="push"}`, from the local listener at
/// `local`.
fn metric(local: std::net::SocketAddr, series: &str) -> u64 {
    let m = request(local, "GET", "/metrics", &[], Vec::new());
    m.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{}", m.body))
}

#[test]
fn checkpoints_pushed_into_a_second_sink_are_anchors_there() {
    let root = tempfile::tempdir().unwrap();
    let b = Server::start(&root.path().join("b"), &[]);
    let toml = pushing_toml(root.path(), &format!("http://{}", b.push), &b.token);
    let a_data = root.path().join("a");
    let a = InProc::start(&a_data, &toml, Duration::from_secs(1), None);
    let (pk, vkey) = (a.pk(), a.vkey());
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"sudo"}},"values":[["{}","root : COMMAND=/bin/sh"]]}}]}}"#,
        daftari::clock::now_ns()
    );
    assert_eq!(a.push_json(&a.token, &body).status, 204);
    a.end_epochs(3);
    let exports = "daftari_checkpoint_exports_total{channel=\"push\"}";
    let pushed = wait_metric(a.local, exports, 3);
    assert!(pushed >= 3, "{pushed} checkpoints pushed");
    let failures = "daftari_checkpoint_export_failures_total{channel=\"push\"}";
    assert_eq!(metric(a.local, failures), 0);
    assert!(metric(a.local, "daftari_seal_last_epoch") >= 2);
    assert!(metric(a.local, "daftari_ledger_segments") >= 1);
    assert!(metric(a.local, "daftari_ledger_bytes") > 0);
    let free = metric(a.local, "daftari_disk_free_bytes");
    assert!(free > 0 && free <= metric(a.local, "daftari_disk_size_bytes"));
    a.stop();
    b.stop();

    let notes: Vec<String> = records(&root.path().join("b"))
        .into_iter()
        .filter(|r| r.labels.get("job") == Some("daftari-checkpoint"))
        .map(|r| String::from_utf8(r.line).unwrap())
        .collect();
    assert!(notes.len() >= 2, "{} notes arrived", notes.len());
    assert!(
        notes[0].starts_with("daftari-checkpoint/v1\n"),
        "{}",
        notes[0]
    );
    let anchors = root.path().join("anchors-from-b.note");
    std::fs::write(&anchors, notes.concat()).unwrap();
    let v = verify_with(
        &a_data,
        &[
            "--pubkey",
            &pk,
            "--vkey",
            &vkey,
            "--anchors",
            anchors.to_str().unwrap(),
        ],
    );
    assert_eq!(v.code, 0, "{}", v.json);
    assert!(v.json["notes"].to_string().contains("checkpoints checked"));
}

#[test]
fn an_unreachable_endpoint_is_counted_and_ingest_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = pushing_config(root.path(), &url, "some-token");
    let a = Server::start(
        &root.path().join("a"),
        &["--config", &config, "--epoch-interval", "1s"],
    );
    common::wait_for_seals(&root.path().join("a"), 2);
    for i in 0..5 {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"sshd"}},"values":[["{}","attempt {i}"]]}}]}}"#,
            daftari::clock::now_ns()
        );
        assert_eq!(a.push_json(&a.token, &body).status, 204);
    }
    let failed = wait_metric(
        a.local,
        "daftari_checkpoint_export_failures_total{channel=\"push\"}",
        1,
    );
    assert!(failed >= 1, "{failed} failures counted");
    assert_eq!(
        metric(
            a.local,
            "daftari_checkpoint_exports_total{channel=\"push\"}"
        ),
        0
    );
    assert!(
        metric(
            a.local,
            "daftari_checkpoint_exports_total{channel=\"file\"}"
        ) >= 2
    );
    // The failure is counted before it is logged.
    a.wait_for_log("checkpoint push failed");
    let logs = a.stderr.lock().unwrap().join("\n");
    assert!(
        !logs.contains("some-token"),
        "the token never reaches the log"
    );
}
