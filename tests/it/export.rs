//! `daftari export` through the real binary: entries of chosen streams and times as JSON lines
//! while the server runs, and as Loki push bodies that a second server accepts as they are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::BIN;
use common::server::{Server, records, request};

fn export(data: &Path, args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn entries_leave_as_json_lines_and_as_push_bodies_another_loki_takes() {
    let root = tempfile::tempdir().unwrap();
    let a_data = root.path().join("a");
    let a = Server::start(&a_data, &[]);
    let t0 = 1_763_900_000_000_000_000i64;
    let body = format!(
        r#"{{"streams":[
            {{"stream":{{"job":"sshd","host":"web-1"}},"values":[
                ["{}","Failed password for root",{{"trace_id":"abc"}}],
                ["{}","Accepted publickey for deploy"],
                ["{}","Disconnected from 203.0.113.9"]]}},
            {{"stream":{{"job":"sudo","host":"web-1"}},"values":[
                ["{}","deploy : COMMAND=/bin/systemctl restart nginx"],
                ["{}","root : COMMAND=/bin/sh"]]}}]}}"#,
        t0,
        t0 + 1_000_000_000,
        t0 + 2_000_000_000,
        t0 + 500_000_000,
        t0 + 1_500_000_000
    );
    assert_eq!(a.push_json(&a.token, &body).status, 204);

    // While the server runs: one stream, all of it.
    let (code, lines) = export(&a_data, &["--selector", r#"{job="sshd"}"#]);
    assert_eq!(code, 0);
    let objs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = objs.iter().map(|o| o["line"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "Failed password for root",
            "Accepted publickey for deploy",
            "Disconnected from 203.0.113.9"
        ]
    );
    assert_eq!(objs[0]["labels"]["host"], "web-1");
    assert_eq!(objs[0]["metadata"]["trace_id"], "abc");
    assert_eq!(objs[0]["source"], "bootstrap");
    assert_eq!(objs[0]["ts_ns"], t0.to_string());
    assert!(objs[0]["seq"].is_u64());

    // A time window, in RFC 3339 and in nanoseconds.
    let from = (t0 + 1_000_000_000).to_string();
    let (_, lines) = export(
        &a_data,
        &[
            "--selector",
            r#"{host="web-1"}"#,
            "--from",
            &from,
            "--to",
            "2025-11-23T12:13:21.600Z",
        ],
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (code, _) = export(&a_data, &["--selector", "{job="]);
    assert_eq!(code, 2, "a bad selector");
    a.stop();

    // Every stream as push bodies, pushed as they are into a second server.
    let (code, bodies) = export(&a_data, &["--format", "loki-json"]);
    assert_eq!(code, 0);
    assert!(!bodies.is_empty());
    let b_data = root.path().join("b");
    let b = Server::start(&b_data, &[]);
    for body in &bodies {
        let headers = [
            ("authorization", format!("Bearer {}", b.token)),
            ("content-type", "application/json".to_string()),
        ];
        let r = request(
            b.push,
            "POST",
            "/loki/api/v1/push",
            &headers,
            body.clone().into_bytes(),
        );
        assert_eq!(r.status, 204, "{}: {body}", r.body);
    }
    b.stop();
    let lines_of =
        |data: &Path, pred: &dyn Fn(&daftari::store::Record) -> bool| -> BTreeSet<String> {
            records(data)
                .iter()
                .filter(|r| pred(r))
                .map(|r| String::from_utf8_lossy(&r.line).into_owned())
                .collect()
        };
    let in_a = lines_of(&a_data, &|_| true);
    let in_b = lines_of(&b_data, &|r| r.labels.get("__daftari__").is_none());
    assert_eq!(in_a, in_b, "every entry of A arrived in B");
    let admin_in_b = records(&b_data)
        .into_iter()
        .filter(|r| r.labels.get("daftari_internal") == Some("admin"))
        .count();
    assert!(
        admin_in_b > 0,
        "A's admin stream arrives under a label Loki accepts"
    );
    let with_meta = records(&b_data)
        .into_iter()
        .find(|r| r.line == b"Failed password for root")
        .unwrap();
    assert_eq!(with_meta.metadata.get("trace_id"), Some("abc"));
}
