//! Crash points at every step of an epoch's end, a segment's close and a retention removal:
//! the real server aborts there (what `kill -9` leaves) while it takes pushes, starts again
//! on the same data, recovers, goes on sealing, and the ledger then verifies with the pinned
//! key and the retention policy. The points exist in debug builds only (`DAFTARI_FAILPOINT`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{Server, try_request};
use common::verify_with;
use daftari::failpoint::at;

const RETENTION: &str = "2s";

/// Pushes one entry; false once the server is gone.
fn push(s: &Server, token: &str, i: usize) -> bool {
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"auditd"}},"values":[["{}","type=EXECVE argc=3 a0=\"curl\" n={i}"]]}}]}}"#,
        daftari::clock::now_ns()
    );
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_string()),
    ];
    try_request(
        s.push,
        "POST",
        "/loki/api/v1/push",
        &headers,
        body.into_bytes(),
    )
    .is_ok_and(|r| r.status == 204)
}

/// Runs the server with `point` armed until it aborts there, then recovers and verifies.
fn crash_and_recover(point: &str) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = root.path().join("daftari.toml");
    std::fs::write(
        &config,
        format!("[store]\nsegment_max_age = \"1s\"\nretention = \"{RETENTION}\"\n"),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--epoch-interval",
        "1s",
    ];
    let mut s = Server::start_with_env(&data, &args, &[("DAFTARI_FAILPOINT", point)]);
    let pk = s.printed("epoch-0 public key: ");
    let token = s.token.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{point} was never reached");
        push(&s, &token, i);
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = s.wait(Duration::from_secs(5));
    assert!(!status.success(), "{point}: the server aborted");
    assert!(
        s.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("failpoint {point}"))),
        "{point}: it stopped at the point"
    );
    drop(s);

    let (closes, prunes) = (common::seal_count(&data, 1), common::seal_count(&data, 2));
    let s = Server::start(&data, &args);
    for j in 0..5 {
        assert!(
            push(&s, &token, i + j),
            "{point}: pushes are accepted after recovery"
        );
    }
    // The recovered server closes, seals and prunes again.
    common::wait_for_seals_of(&data, 1, closes + 1);
    common::wait_for_seals_of(&data, 2, prunes + 1);
    assert!(s.stop().success());
    let v = verify_with(&data, &["--pubkey", &pk, "--retention", RETENTION]);
    assert_eq!(v.code, 0, "{point}: {}", v.json);
    let notes = v.json["notes"].to_string();
    assert!(
        !notes.contains("still there"),
        "{point}: an interrupted removal is finished: {notes}"
    );
    assert_sealed_kinds(&data, point);
}

/// After recovery the log went on: segment-close and prune seals exist.
fn assert_sealed_kinds(data: &Path, point: &str) {
    let conn = rusqlite::Connection::open(data.join("seals.sqlite")).unwrap();
    let kinds: Vec<u8> = conn
        .prepare("SELECT DISTINCT kind FROM seals ORDER BY kind")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        kinds.contains(&1) && kinds.contains(&2),
        "{point}: kinds {kinds:?}"
    );
}

#[test]
fn a_crash_before_the_seal_commits() {
    crash_and_recover(at::SEAL_BEFORE_COMMIT);
}

#[test]
fn a_crash_between_the_seal_and_the_key_file() {
    crash_and_recover(at::SEAL_AFTER_COMMIT);
}

#[test]
fn a_crash_after_the_key_file() {
    crash_and_recover(at::SEAL_AFTER_KEY_FILE);
}

#[test]
fn a_crash_after_the_close_row() {
    crash_and_recover(at::CLOSE_AFTER_CLOSE_ROW);
}

#[test]
fn a_crash_after_the_file_is_finished() {
    crash_and_recover(at::CLOSE_AFTER_FINISH);
}

#[test]
fn a_crash_before_the_close_seal_commits() {
    crash_and_recover(at::CLOSE_SEAL_BEFORE_COMMIT);
}

#[test]
fn a_crash_after_the_admin_entry_of_a_removal() {
    crash_and_recover(at::PRUNE_AFTER_ADMIN);
}

#[test]
fn a_crash_after_the_prune_seal() {
    crash_and_recover(at::PRUNE_AFTER_SEAL);
}
