//! Segment-close seals, retention and inclusion proofs through the real binary: closed
//! segments are sealed with their Merkle root and file hash; retention removes only whole,
//! sealed, oldest segments, after a prune seal and an admin entry; verify accepts a removal
//! only under a prune seal within the operator's retention; one entry proves to an auditor
//! without the ledger, and a proof that was changed in any part does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::inproc::InProc;
use common::server::{Server, records, request};
use common::{BIN, copy_dir, verify_with};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A ledger whose segments rotate every second of its clock, pushed to four times a second
/// for `secs` seconds; returns the data directory, the epoch-0 public key and the checkpoint
/// verifier key.
pub(crate) fn ledger(root: &Path, store_toml: &str, secs: u64) -> (PathBuf, String, String) {
    let data = root.join("data");
    let toml = format!("[store]\nsegment_max_age = \"1s\"\n{store_toml}");
    let s = InProc::start(&data, &toml, Duration::from_secs(1), None);
    let (pk, vkey) = (s.pk(), s.vkey());
    let push = |line: &str| {
        let ts = daftari::clock::now_ns();
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"sshd"}},"values":[["{ts}","{line}"]]}}]}}"#
        );
        assert_eq!(s.push_json(&s.token, &body).status, 204);
    };
    for i in 0..secs * 4 {
        push(&format!("Accepted publickey for admin {i}"));
        // A second of the clock every fourth entry: an epoch ends, and the next entry
        // finds its segment a second old and closes it.
        if i % 4 == 3 {
            s.end_epoch();
            // Queries read the closed segments as retention comes to remove them.
            let q = request(
                s.local,
                "GET",
                "/loki/api/v1/query_range?query=%7Bjob%3D%22sshd%22%7D&limit=10&since=1h",
                &[],
                Vec::new(),
            );
            assert_eq!(q.status, 200, "{}", q.body);
            // And so does an audit of the live ledger (its read-only connections leave
            // SQLite's -shm and -wal files beside the closed segments).
            if i == 11 {
                verify_with(&data, &[]);
            }
        }
    }
    push("the last entry of a closed segment");
    // Epochs end until every closed segment has its close seal (they are summarized in the
    // background, so one may take an epoch or two), and retention has had its turn.
    for _ in 0..30 {
        s.end_epoch();
        // Segments 0 to newest-1 are closed, and each gets one close seal (before retention
        // may remove it).
        let newest = *segment_indices(&data).last().unwrap();
        let sealed = seal_kinds(&data).iter().filter(|k| **k == 1).count() as u64;
        if sealed >= newest {
            break;
        }
    }
    // Queries over the whole span work, whatever retention removed meanwhile.
    let q = request(
        s.local,
        "GET",
        "/loki/api/v1/query_range?query=%7Bjob%3D%22sshd%22%7D&limit=1000&since=1h",
        &[],
        Vec::new(),
    );
    assert_eq!(q.status, 200, "{}", q.body);
    // One entry that stays in the open segment.
    push("last");
    s.stop();
    (data, pk, vkey)
}

pub(crate) fn seal_kinds(data: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(data.join("seals.sqlite")).unwrap();
    let mut stmt = conn.prepare("SELECT kind FROM seals ORDER BY n").unwrap();
    stmt.query_map([], |r| r.get::<_, u8>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn segment_indices(data: &Path) -> Vec<u64> {
    common::segment_files(data)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name[4..16].parse().unwrap()
        })
        .collect()
}

#[test]
fn retention_removes_only_under_a_prune_seal_and_verify_holds_it_to_the_policy() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, _) = ledger(root.path(), "retention = \"3s\"\n", 7);
    let kinds = seal_kinds(&data);
    assert!(kinds.contains(&1), "segments were close-sealed: {kinds:?}");
    assert!(kinds.contains(&2), "a prune seal was written: {kinds:?}");
    let present = segment_indices(&data);
    assert_ne!(present[0], 0, "the oldest segments are gone: {present:?}");
    // Nothing of a removed segment is left beside the others.
    for f in std::fs::read_dir(data.join("segments")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        let base = name.trim_end_matches("-wal").trim_end_matches("-shm");
        assert!(
            data.join("segments").join(base).exists(),
            "{name} outlived its segment"
        );
    }
    let admin: Vec<String> = records(&data)
        .iter()
        .filter(|r| r.labels.get("__daftari__") == Some("admin"))
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    assert!(
        admin.iter().any(|l| l.starts_with("event=prune segments=")),
        "a removal is on the admin stream (the first may itself have been removed since): \
         {admin:?}"
    );

    let ok = verify_with(&data, &["--pubkey", &pk, "--retention", "3s"]);
    assert_eq!(ok.code, 0, "{}", ok.json);
    let notes = ok.json["notes"].to_string();
    assert!(notes.contains("removed by retention"), "{notes}");

    let no_policy = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(
        no_policy.code, 2,
        "a removal cannot be judged without the policy"
    );
    assert_eq!(no_policy.json["verdict"], "inconclusive");

    let stricter = verify_with(&data, &["--pubkey", &pk, "--retention", "1h"]);
    assert_eq!(
        stricter.code, 1,
        "removed before a 1h retention: {}",
        stricter.json
    );
    assert_eq!(stricter.first_break()["kind"], "segment_missing");

    // Removing the oldest remaining segment by hand: no prune seal covers it.
    let copy = root.path().join("removed");
    copy_dir(&data, &copy);
    std::fs::remove_file(common::segment_files(&copy).remove(0)).unwrap();
    let v = verify_with(&copy, &["--pubkey", &pk, "--retention", "3s"]);
    assert_eq!(v.code, 1, "{}", v.json);
    assert_eq!(v.first_break()["kind"], "segment_missing", "{}", v.json);

    // Without the pinned key an honest removal cannot be told from a deletion either way: a
    // forgotten key is no tamper alarm, and the report says what to pass.
    let v = verify_with(&data, &[]);
    assert_eq!(v.code, 2, "{}", v.json);
    assert_eq!(v.json["verdict"], "inconclusive");
    let why = v.json["inconclusive"].to_string();
    assert!(
        why.contains("prune seals") && why.contains("--pubkey"),
        "{why}"
    );
    // ... but a segment missing between two present ones is a break with or without it.
    let gap = root.path().join("gap");
    copy_dir(&data, &gap);
    std::fs::remove_file(common::segment_files(&gap).remove(1)).unwrap();
    for extra in [&[][..], &["--pubkey", &pk, "--retention", "3s"]] {
        let v = verify_with(&gap, extra);
        assert_eq!(v.code, 1, "{extra:?}: {}", v.json);
        assert_eq!(v.first_break()["kind"], "segment_missing");
    }
}

#[test]
fn a_closed_segment_that_differs_from_its_close_seal_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, _) = ledger(root.path(), "", 3);
    let ok = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(ok.code, 0, "{}", ok.json);
    assert!(ok.json["notes"].to_string().contains("segment-close seals"));

    // Append a byte to a closed file: the records are intact, the sealed file hash is not.
    let copy = root.path().join("grown");
    copy_dir(&data, &copy);
    let seg = common::segment_files(&copy).remove(0);
    std::fs::set_permissions(&seg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.push(0);
    std::fs::write(&seg, bytes).unwrap();
    let v = verify_with(&copy, &["--pubkey", &pk]);
    assert_eq!(v.code, 1);
    let all = v.json["findings"].to_string();
    assert!(all.contains("segment file hash (sealed by epoch"), "{all}");
}

/// Runs `daftari` with `args`; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `daftari prove SEQ` into a file.
fn prove(data: &Path, seq: u64, extra: &[&str], out: &Path) -> i32 {
    let seq = seq.to_string();
    let mut args = vec!["prove", &seq, "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stdout, _) = run(&args);
    std::fs::write(out, stdout).unwrap();
    code
}

fn check(proof: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify-proof", proof.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    (code, format!("{stdout}{stderr}"))
}

/// Rewrites one field of a proof file.
fn tampered(proof: &Path, out: &Path, f: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proof).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(out, v.to_string()).unwrap();
    out.to_owned()
}

/// A change to a proof.
type Tamper = dyn Fn(&mut serde_json::Value);

/// Flips one bit of a base64 field.
fn flip_b64(v: &mut serde_json::Value, byte: usize) {
    let mut b = B64.decode(v.as_str().unwrap()).unwrap();
    b[byte] ^= 1;
    *v = serde_json::Value::String(B64.encode(b));
}

#[test]
fn one_entry_proves_without_the_ledger_and_a_changed_proof_does_not() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, vkey) = ledger(root.path(), "", 3);
    let anchors = data.join("checkpoints.note");
    let anchors = anchors.to_str().unwrap();
    let entry = records(&data)
        .into_iter()
        .find(|r| String::from_utf8_lossy(&r.line) == "Accepted publickey for admin 2")
        .unwrap();
    let p = root.path().join("proof.json");
    assert_eq!(prove(&data, entry.seq, &[], &p), 0);
    let (code, out) = check(&p, &["--vkey", &vkey, "--anchors", anchors]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("one of the anchors exported off the box"),
        "{out}"
    );
    assert!(
        out.contains("entry (decoded from the proved record): ")
            && out.contains("Accepted publickey for admin 2"),
        "{out}"
    );

    let pc = root.path().join("chain.json");
    assert_eq!(prove(&data, entry.seq, &["--chain"], &pc), 0);
    let (code, out) = check(&pc, &["--pubkey", &pk]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verify under the pinned epoch-0 key"), "{out}");
    let (code, _) = check(&p, &["--pubkey", &pk]);
    assert_eq!(code, 2, "--pubkey needs the carried chain");

    // Every part of the proof matters.
    let bad = root.path().join("bad.json");
    let cases: Vec<(&str, Box<Tamper>)> = vec![
        ("the entry", Box::new(|v| flip_b64(&mut v["record"], 60))),
        (
            "a path element",
            Box::new(|v| flip_b64(&mut v["path"][0], 0)),
        ),
        (
            "the close seal",
            Box::new(|v| flip_b64(&mut v["close_seal"]["body"], 40)),
        ),
        (
            "the seal's signature",
            Box::new(|v| flip_b64(&mut v["close_seal"]["sig"], 5)),
        ),
        (
            "the leaf index",
            Box::new(|v| v["leaf_index"] = (v["leaf_index"].as_u64().unwrap() + 1).into()),
        ),
        (
            "the checkpoint",
            Box::new(|v| {
                let note = v["checkpoint"]
                    .as_str()
                    .unwrap()
                    .replacen("epoch ", "epoch 1", 1);
                v["checkpoint"] = note.into();
            }),
        ),
    ];
    for (what, f) in &cases {
        let path = tampered(&p, &bad, f);
        let (code, out) = check(&path, &["--vkey", &vkey, "--anchors", anchors]);
        assert_eq!(code, 1, "a changed {what} must fail: {out}");
        assert!(out.contains("PROOF FAILS"), "{what}: {out}");
    }
    // The informational copy of the entry is never shown, and must agree with the record.
    let forged = tampered(&p, &bad, |v| {
        let line = v["entry"]["line"]
            .as_str()
            .unwrap()
            .replace("Accepted", "Rejected");
        v["entry"]["line"] = line.into();
    });
    let (code, out) = check(&forged, &["--vkey", &vkey, "--anchors", anchors]);
    assert_eq!(code, 1, "a forged entry copy must fail: {out}");
    assert!(
        out.contains("PROOF FAILS") && out.contains("`line`"),
        "{out}"
    );
    assert!(!out.contains("Rejected publickey"), "{out}");
    let forged = tampered(&p, &bad, |v| v["entry"]["labels"]["host"] = "web1".into());
    let (code, out) = check(&forged, &["--vkey", &vkey, "--anchors", anchors]);
    assert_eq!(code, 1, "an added label in the copy must fail: {out}");
    assert!(out.contains("`labels`"), "{out}");

    let chained = tampered(&pc, &bad, |v| flip_b64(&mut v["chain"][0]["sig"], 3));
    let (code, out) = check(&chained, &["--pubkey", &pk]);
    assert_eq!(
        code, 1,
        "a changed seal of the carried chain must fail: {out}"
    );

    // Another log's keys prove nothing about this one.
    let other = tempfile::tempdir().unwrap();
    let s = Server::start(&other.path().join("data"), &[]);
    let other_pk = s.printed("epoch-0 public key: ");
    let other_vkey = s.printed("verifier key: ");
    drop(s);
    assert_eq!(check(&p, &["--vkey", &other_vkey]).0, 1);
    assert_eq!(check(&pc, &["--pubkey", &other_pk]).0, 1);

    // An entry of the open segment proves through its epoch's seal (here the shutdown's).
    let last = records(&data).last().unwrap().seq;
    let open = root.path().join("open.json");
    assert_eq!(prove(&data, last, &["--chain"], &open), 0);
    let (code, out) = check(&open, &["--vkey", &vkey, "--anchors", anchors]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("later records of its epoch"), "{out}");
    assert_eq!(check(&open, &["--pubkey", &pk]).0, 0);
    let moved = tampered(&open, &bad, |v| flip_b64(&mut v["prev_head"], 0));
    let (code, out) = check(&moved, &["--vkey", &vkey]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not reach its epoch's sealed head"),
        "{out}"
    );
    // Past the newest seal there is nothing to prove yet, and prove says why.
    let (code, _, err) = run(&[
        "prove",
        &(last + 1).to_string(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not sealed yet"), "{err}");
}

#[test]
fn an_incremental_run_checks_only_what_is_new_and_still_catches_changes() {
    let root = tempfile::tempdir().unwrap();
    let (data, pk, _) = ledger(root.path(), "", 3);
    let state = root.path().join("verify.state");
    let st = state.to_str().unwrap();
    let first = verify_with(&data, &["--pubkey", &pk, "--state", st]);
    assert_eq!(first.code, 0, "{}", first.json);
    assert!(state.exists(), "an intact run writes the state");
    let again = verify_with(&data, &["--pubkey", &pk, "--state", st]);
    assert_eq!(again.code, 0, "{}", again.json);
    assert!(again.json["notes"].to_string().contains("incremental"));
    assert!(
        again.json["entries"].as_u64() < first.json["entries"].as_u64(),
        "closed segments were skipped: {} then {}",
        first.json["entries"],
        again.json["entries"]
    );

    // New entries since: checked, and the state moves on.
    let s = InProc::start(&data, "", Duration::from_secs(1), None);
    for i in 0..3 {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"sudo"}},"values":[["{}","later {i}"]]}}]}}"#,
            daftari::clock::now_ns()
        );
        assert_eq!(s.push_json(&s.token, &body).status, 204);
    }
    s.end_epoch();
    s.stop();
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let v = verify_with(&data, &["--pubkey", &pk, "--state", st]);
    assert_eq!(v.code, 0, "{}", v.json);
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(after["next_epoch"].as_u64() > before["next_epoch"].as_u64());

    // A changed record in the newest segment is found by the incremental run.
    let copy = root.path().join("changed");
    copy_dir(&data, &copy);
    std::fs::copy(&state, root.path().join("copy.state")).unwrap();
    let newest = common::segment_files(&copy).pop().unwrap();
    let conn = common::open_rw(&newest);
    let blob: Vec<u8> = conn
        .query_row(
            "SELECT records FROM blocks ORDER BY first_seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bad = blob.clone();
    let at = bad.len() - 2;
    bad[at] ^= 1;
    conn.execute(
        "UPDATE blocks SET records = ?1 WHERE first_seq = (SELECT max(first_seq) FROM blocks)",
        [bad],
    )
    .unwrap();
    drop(conn);
    let copy_state = root.path().join("copy.state");
    let v = verify_with(
        &copy,
        &["--pubkey", &pk, "--state", copy_state.to_str().unwrap()],
    );
    assert_eq!(v.code, 1, "{}", v.json);

    // The seal the state remembers, changed: the run refuses to build on it.
    let conn = rusqlite::Connection::open(copy.join("seals.sqlite")).unwrap();
    let row = after["seal_row"].as_u64().unwrap() as i64;
    conn.execute("UPDATE seals SET sig = zeroblob(64) WHERE n = ?1", [row])
        .unwrap();
    drop(conn);
    let v = verify_with(
        &copy,
        &["--pubkey", &pk, "--state", copy_state.to_str().unwrap()],
    );
    assert_eq!(v.code, 1);
    assert!(
        v.json["findings"].to_string().contains("gone or changed"),
        "{}",
        v.json
    );

    // A state made with another key is refused.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let v = verify_with(&data, &["--pubkey", other, "--state", st]);
    assert_eq!(v.code, 2);
}
