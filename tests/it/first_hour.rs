//! What a new operator meets in the first hour, through the real binary: a closed pipe ends
//! `export` quietly and is survived by `serve`; time arguments take Loki's forms and name
//! them when refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::server::Server;

#[test]
fn export_into_a_pipe_that_closes_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::build_ledger(&data, 1 << 20, 20, 300);
    let mut child = Command::new(common::BIN)
        .args(["export", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"seq\""), "{first}");
    // The reader is gone (as `| head -1` leaves it): the rest cannot be written.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("Broken pipe") && !err.contains("Error"),
        "{err}"
    );
}

#[test]
fn serve_survives_a_closed_stdout_and_says_so_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start_piped(&data, &["--epoch-interval", "1s"]);
    drop(s.child.stdout.take());
    let body = |i: u32| {
        let ts = daftari::clock::now_ns();
        format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{ts}","entry {i}"]]}}]}}"#)
    };
    assert_eq!(s.push_json(&s.token, &body(0)).status, 204);
    common::wait_for_seals(&data, 4);
    s.wait_for_log("stdout is closed");
    assert_eq!(s.push_json(&s.token, &body(1)).status, 204);
    assert!(s.child_alive(), "the server survives a closed stdout");
    let said = s
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("stdout is closed"))
        .count();
    assert_eq!(said, 1, "said once");
    assert_eq!(s.stop().code(), Some(0));
}

#[test]
fn time_arguments_take_loki_forms_and_name_them_when_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::build_ledger(&data, 1 << 20, 1, 30);
    let export = |from: &str| {
        let out = Command::new(common::BIN)
            .args(["export", "--data-dir"])
            .arg(&data)
            .args(["--from", from])
            .output()
            .unwrap();
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        (
            out.status.code(),
            lines,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The fixture's entries are from 2025-08-05: inside a relative range of ten years, and
    // outside one of an hour.
    assert_eq!(export("3650d").1, 30);
    assert_eq!(export("1h").1, 0);
    assert_eq!(export("2025-08-01T00:00:00Z").1, 30);
    assert_eq!(export("1754000000").1, 30);
    let (code, _, err) = export("yesterday");
    assert_eq!(code, Some(2));
    for form in ["RFC 3339", "Unix seconds", "24h"] {
        assert!(err.contains(form), "{err}");
    }
}

#[test]
fn token_commands_beside_no_log_refuse_and_name_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("not-the-data-dir");
    for args in [
        &["token", "list"][..],
        &["token", "create", "web-1"],
        &["token", "revoke", "web-1"],
    ] {
        let out = Command::new(common::BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&elsewhere)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not-the-data-dir"), "{err}");
        assert!(
            out.stdout.is_empty(),
            "no secret for a server that never hears of it"
        );
        assert!(!elsewhere.exists(), "nothing is created there");
    }
}

#[test]
fn serve_checks_its_files_before_it_creates_a_log_or_announces_a_listener() {
    // The shipped configuration on a box where its TLS files are not in place yet.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/daftari.toml");
    let out = Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--push-listen",
            "127.0.0.1:0",
            "--local-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/etc/daftari/tls/server.pem"), "{err}");
    assert!(!err.contains("listener on"), "{err}");
    assert!(
        !data.exists(),
        "no log is created by a server that cannot serve"
    );
}

#[test]
fn the_first_start_token_lives_until_the_operators_own_first_push_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]);
    let file = data.join("bootstrap-token");
    assert!(
        file.exists(),
        "the first start writes the secret for the quick start"
    );
    let body = |line: &str| {
        let ts = daftari::clock::now_ns();
        format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{ts}","{line}"]]}}]}}"#)
    };
    assert_eq!(s.push_json(&s.token, &body("quick start")).status, 204);
    // A read token (Grafana) changes nothing for the pushers.
    s.create_token("grafana", &["--read"]);
    assert!(file.exists());
    assert_eq!(s.push_json(&s.token, &body("still")).status, 204);
    // The first push token of the operator's own retires it: revoked, its file removed.
    let web = s.create_token("web-1", &["--label", "host=web-1"]);
    assert!(!file.exists(), "no secret stays on disk past its use");
    let started = std::time::Instant::now();
    while s.push_json(&s.token, &body("after")).status != 401 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never refused"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(s.push_json(&web, &body("web-1")).status, 204);
    let list = s.token_cmd(&["list", "--all", "--json"]);
    let bootstrap = list
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|t| t["name"] == "bootstrap")
        .unwrap();
    assert!(bootstrap["revoked_ns"].is_i64(), "{bootstrap}");
}

#[test]
fn after_init_the_first_start_still_makes_the_quick_start_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let init = Command::new(common::BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(init.status.code(), Some(0));
    let keys = String::from_utf8_lossy(&init.stdout);
    assert!(
        keys.contains("epoch-0 public key: ") && keys.contains("checkpoint verifier key: "),
        "{keys}"
    );
    let s = Server::start(&data, &[]);
    s.wait_for_log("first start: created push token");
    assert!(data.join("bootstrap-token").exists());
    let ts = daftari::clock::now_ns();
    let body = format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{ts}","hello"]]}}]}}"#);
    assert_eq!(s.push_json(&s.token, &body).status, 204);
}
