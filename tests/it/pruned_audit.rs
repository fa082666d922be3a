//! Pruned and live ledgers audited: by `daftari verify`, and by a second verifier written
//! from VERIFY.md alone (`tests/spec/audit.py`), which must agree with it on a pruned ledger
//! and on its tamperings; segments removed while verify runs, and every segment removed
//! under seals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::segment_seals::{ledger, seal_kinds, segment_indices};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::server::Server;
use common::{BIN, copy_dir, verify_with};

#[test]
fn every_segment_file_deleted_under_seals_is_a_break_not_a_mistake() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, _) = ledger(root.path(), "", 2);
    for f in common::segment_files(&data) {
        std::fs::remove_file(f).unwrap();
    }
    let emptied = root.path().join("emptied");
    copy_dir(&data, &emptied);
    let gone = root.path().join("gone");
    copy_dir(&data, &gone);
    std::fs::remove_dir_all(gone.join("segments")).unwrap();
    for dir in [&emptied, &gone] {
        for extra in [&[][..], &["--pubkey", &pk]] {
            let v = verify_with(dir, extra);
            assert_eq!(v.code, 1, "{extra:?}: {} {}", v.json, v.stderr);
            assert_eq!(v.json["verdict"], "broken");
            assert_eq!(v.first_break()["kind"], "segment_missing", "{}", v.json);
            assert!(!v.stderr.contains("Try:"), "{}", v.stderr);
        }
    }
    // A directory with neither segments nor seals is not a ledger at all.
    let v = verify_with(root.path(), &[]);
    assert_eq!(v.code, 2);
    assert!(v.stderr.contains("Try:"), "{}", v.stderr);
}

#[test]
fn verify_on_a_live_ledger_judges_segments_retention_removes_during_the_run() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = root.path().join("daftari.toml");
    std::fs::write(
        &config,
        "[store]\nsegment_max_age = \"1s\"\nretention = \"4s\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let s = Server::start(&data, &["--config", cfg, "--epoch-interval", "1s"]);
    let pk = s.printed("epoch-0 public key: ");
    let push = |i: u64| {
        let ts = daftari::clock::now_ns();
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"sshd"}},"values":[["{ts}","Accepted publickey for ops {i}"]]}}]}}"#
        );
        assert_eq!(s.push_json(&s.token, &body).status, 204);
    };
    // A few segments, none old enough yet to be removed.
    for i in 0..24 {
        push(i);
        std::thread::sleep(Duration::from_millis(250));
    }
    let before = segment_indices(&data);
    // verify opens every segment, then waits while the server keeps rotating and removes the
    // oldest of them.
    let mut verify = Command::new(BIN);
    verify
        .args(["verify", "--json", "--data-dir"])
        .arg(&data)
        .args(["--pubkey", &pk, "--retention", "4s"])
        .env("DAFTARI_FAILPOINT", "verify-after-scan")
        .env("DAFTARI_FAILPOINT_PAUSE_MS", "4000");
    let pusher_stop = std::sync::atomic::AtomicBool::new(false);
    let verify = std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut i = 100;
            while !pusher_stop.load(std::sync::atomic::Ordering::Acquire) {
                push(i);
                i += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let out = verify.output().unwrap();
        pusher_stop.store(true, std::sync::atomic::Ordering::Release);
        out
    });
    let after = segment_indices(&data);
    assert!(
        after[0] > before[0],
        "retention removed segments during the run: {before:?} then {after:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&verify.stdout).trim())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&verify.stderr)));
    assert_eq!(verify.status.code(), Some(0), "{report}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("disappeared while this run read them"),
        "{notes}"
    );
    // A segment that goes missing in the middle is still a break, live or not.
    s.stop();
    let copy = root.path().join("copy");
    copy_dir(&data, &copy);
    let files = common::segment_files(&copy);
    std::fs::remove_file(&files[files.len() / 2]).unwrap();
    let v = verify_with(&copy, &["--pubkey", &pk, "--retention", "4s"]);
    assert_eq!(v.code, 1, "{}", v.json);
}

/// `tests/spec/audit.py` (a verifier written from VERIFY.md alone) on `data`: (exit code,
/// output).
fn spec_audit(data: &Path, extra: &[&str]) -> (i32, String) {
    let python = common::python_venv(
        "pyaudit-venv",
        "blake3 zstandard pynacl",
        "blake3, zstandard, nacl",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec/audit.py");
    let out = Command::new(python)
        .arg(script)
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_second_implementation_from_verify_md_agrees_with_verify_on_a_pruned_ledger() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, vkey) = ledger(root.path(), "retention = \"3s\"\n", 7);
    assert!(seal_kinds(&data).contains(&2), "the ledger was pruned");
    let anchors = root.path().join("anchors.note");
    std::fs::copy(data.join("checkpoints.note"), &anchors).unwrap();
    let a = anchors.to_str().unwrap();
    let daftari_args = [
        "--pubkey",
        &pk,
        "--retention",
        "3s",
        "--vkey",
        &vkey,
        "--anchors",
        a,
    ];
    let spec_args = [
        "--pubkey",
        &pk,
        "--retention",
        "3",
        "--vkey",
        &vkey,
        "--anchors",
        a,
    ];
    let v = verify_with(&data, &daftari_args);
    assert_eq!(v.code, 0, "{:#}", v.json);
    let (code, out) = spec_audit(&data, &spec_args);
    assert_eq!(code, 0, "{out}");
    let want = format!(
        "intact records {} head {}",
        v.json["next_seq"],
        v.json["head"].as_str().unwrap()
    );
    assert!(out.starts_with(&want), "{out} vs {want}");
    // Without the key, both cannot conclude on the pruned ledger.
    assert_eq!(verify_with(&data, &[]).code, 2);
    assert_eq!(spec_audit(&data, &[]).0, 2);

    type Change = Box<dyn Fn(&Path)>;
    let sql = |file: &'static str, stmt: &'static str| -> Change {
        Box::new(move |d: &Path| {
            let path = if file == "seals" {
                d.join("seals.sqlite")
            } else {
                let files = common::segment_files(d);
                if file == "newest" {
                    files.last().unwrap().clone()
                } else {
                    files[1].clone()
                }
            };
            let conn = common::open_rw(&path);
            conn.execute_batch(stmt).unwrap();
        })
    };
    let cases: Vec<(&str, Change)> = vec![
        (
            "a seal's signature",
            sql(
                "seals",
                "UPDATE seals SET sig = zeroblob(64) WHERE epoch = 3",
            ),
        ),
        (
            "a deleted seal",
            sql("seals", "DELETE FROM seals WHERE epoch = 5"),
        ),
        (
            "the newest block cut off",
            sql(
                "newest",
                "DELETE FROM blocks WHERE first_seq = (SELECT max(first_seq) FROM blocks)",
            ),
        ),
        (
            "a block's end head",
            sql("newest", "UPDATE blocks SET end_head = zeroblob(32)"),
        ),
        (
            "a meta's prev_head",
            sql("newest", "UPDATE meta SET prev_head = zeroblob(32)"),
        ),
        (
            "a closed segment's record count",
            sql("second", "UPDATE close SET count = count + 1"),
        ),
        (
            "the oldest present segment removed",
            Box::new(|d: &Path| std::fs::remove_file(&common::segment_files(d)[0]).unwrap()),
        ),
        (
            "a middle segment removed",
            Box::new(|d: &Path| std::fs::remove_file(&common::segment_files(d)[1]).unwrap()),
        ),
    ];
    for (what, change) in &cases {
        let copy = root.path().join(what.replace(' ', "-"));
        copy_dir(&data, &copy);
        change(&copy);
        let v = verify_with(&copy, &daftari_args);
        assert_eq!(v.code, 1, "daftari verify on {what}: {:#}", v.json);
        let (code, out) = spec_audit(&copy, &spec_args);
        assert_eq!(code, 1, "the second implementation on {what}: {out}");
    }
}
