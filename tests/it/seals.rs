//! Forward-secure seals through the real binary: every epoch sealed (empty ones too), the
//! chain verified with the pinned epoch-0 key, epochs continuing across restarts, and the
//! attacks seals exist for: a damaged, dropped or replaced seal, a wrong key, and records cut
//! off the end of the ledger, which the hash chain alone cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::inproc::InProc;
use common::server::Server;
use common::{copy_dir, verify_with};

const EPOCH: &str = "1s";
/// The epoch of the in-process servers, which end epochs by moving their clock.
const EPOCH_LEN: Duration = Duration::from_secs(1);

fn body(i: usize) -> String {
    let ts = daftari::clock::now_ns();
    format!(r#"{{"streams":[{{"stream":{{"job":"sealed"}},"values":[["{ts}","entry {i}"]]}}]}}"#)
}

fn push(s: &InProc, n: usize) {
    for i in 0..n {
        assert_eq!(s.push_json(&s.token, &body(i)).status, 204);
    }
}

fn push_to(s: &Server, n: usize) {
    for i in 0..n {
        assert_eq!(s.push_json(&s.token, &body(i)).status, 204);
    }
}

fn seals(data: &Path) -> Vec<(u64, u8)> {
    let conn = rusqlite::Connection::open(data.join("seals.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT epoch, kind FROM seals ORDER BY n")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, u8>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A sealed ledger: two runs of the server, with entries and empty epochs in each.
fn sealed_ledger(root: &Path) -> (std::path::PathBuf, String) {
    let data = root.join("data");
    let s = InProc::start(&data, "", EPOCH_LEN, None);
    let pk = s.pk();
    push(&s, 5);
    s.end_epochs(2);
    push(&s, 3);
    s.stop();
    let s = InProc::start(&data, "", EPOCH_LEN, None);
    push(&s, 2);
    s.end_epoch();
    s.stop();
    (data, pk)
}

/// Deletes the newest block and its index rows: what remains is a consistent, shorter chain.
fn cut_newest_block(data: &Path) {
    let seg = common::segment_files(data).pop().unwrap();
    let conn = common::open_rw(&seg);
    conn.execute_batch(
        "DELETE FROM block_streams WHERE first_seq = (SELECT max(first_seq) FROM blocks);
         DELETE FROM blocks WHERE first_seq = (SELECT max(first_seq) FROM blocks);",
    )
    .unwrap();
}

#[test]
fn every_epoch_is_sealed_and_verifies_with_the_pinned_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pk) = sealed_ledger(tmp.path());
    let chain = seals(&data);
    // Epochs are consecutive from 0 across the restart; each run ends with a shutdown seal.
    let epochs: Vec<u64> = chain.iter().map(|s| s.0).collect();
    assert_eq!(epochs, (0..chain.len() as u64).collect::<Vec<_>>());
    assert!(chain.len() >= 5, "{chain:?}");
    assert_eq!(chain.iter().filter(|s| s.1 == 3).count(), 2, "{chain:?}");
    let v = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(v.code, 0, "{:#}", v.json);
    let notes = v.json["notes"].to_string();
    assert!(
        notes.contains(&format!("{} epochs verified", chain.len())),
        "{notes}"
    );
    // Without the key verify still audits the chain, and says the seals were not checked.
    let v = verify_with(&data, &[]);
    assert_eq!(v.code, 0);
    assert!(
        v.json["notes"]
            .to_string()
            .contains("seals present but not checked")
    );
    // The key file holds only the current epoch, mode 0600.
    let meta = std::fs::metadata(data.join("state/epoch.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn damaged_dropped_or_replayed_seals_and_wrong_keys_are_tamper_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pk) = sealed_ledger(tmp.path());
    let attack = |name: &str, sql: &str| {
        let copy = tmp.path().join(name);
        copy_dir(&data, &copy);
        let conn = rusqlite::Connection::open(copy.join("seals.sqlite")).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let v = verify_with(&copy, &["--pubkey", &pk]);
        assert_eq!(v.code, 1, "{name}: {:#}", v.json);
        assert!(
            v.kinds().contains(&"seal_chain".to_string()),
            "{name}: {:?}",
            v.kinds()
        );
        v.first_break()["what"].as_str().unwrap().to_owned()
    };
    // One byte of a seal's head.
    let what = attack(
        "flipped",
        // (to 0xff, or to 0x00 where it already was 0xff: always a change)
        "UPDATE seals SET body = CAST(substr(body, 1, 40) \
         || CASE WHEN substr(body, 41, 1) = x'ff' THEN x'00' ELSE x'ff' END \
         || substr(body, 42) AS BLOB) WHERE epoch = 1",
    );
    assert!(what.contains("seal signature"), "{what}");
    // A seal from the middle removed.
    let what = attack("dropped", "DELETE FROM seals WHERE epoch = 2");
    assert!(what.contains("missing"), "{what}");
    // An old seal replayed in place of a newer one.
    let what = attack(
        "replayed",
        "UPDATE seals SET body = (SELECT body FROM seals WHERE epoch = 1), \
                          sig = (SELECT sig FROM seals WHERE epoch = 1) WHERE epoch = 3",
    );
    assert!(what.contains("epoch"), "{what}");
    // Another log's key does not verify this one.
    let other = daftari::seal::keys::EpochKey::from_parts(0, [1; 32]).public_key();
    let v = verify_with(&data, &["--pubkey", &daftari::seal::encode_pk(&other)]);
    assert_eq!(v.code, 1);
    assert!(
        v.first_break()["what"]
            .as_str()
            .unwrap()
            .contains("seal signature")
    );
    let v = verify_with(&data, &["--pubkey", "not-a-key"]);
    assert_eq!(v.code, 2);
}

#[test]
fn records_cut_off_the_end_are_invisible_to_the_chain_but_not_to_the_seals() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pk) = sealed_ledger(tmp.path());
    // Cut the newest block (and its index rows): what remains is a consistent, shorter chain.
    cut_newest_block(&data);
    let chain_only = verify_with(&data, &[]);
    assert_eq!(
        chain_only.code, 0,
        "the hash chain alone cannot see a cut tail"
    );
    let v = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(v.code, 1, "{:#}", v.json);
    let what = v.first_break()["what"].as_str().unwrap().to_owned();
    assert!(what.contains("truncated"), "{what}");
}

fn vkey_of(s: &Server) -> String {
    s.printed("verifier key: ")
}

#[test]
fn exported_checkpoints_anchor_the_ledger_and_show_a_cut_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &["--epoch-interval", EPOCH]);
    let vkey = vkey_of(&s);
    push_to(&s, 4);
    common::wait_for_seals(&data, 2);
    s.stop();
    // The operator's off-box copy of the exported checkpoints.
    let anchors = tmp.path().join("anchors.note");
    std::fs::copy(data.join("checkpoints.note"), &anchors).unwrap();
    let a = anchors.to_str().unwrap();
    let v = verify_with(&data, &["--vkey", &vkey, "--anchors", a]);
    assert_eq!(v.code, 0, "{:#}", v.json);
    assert!(v.json["notes"].to_string().contains("checkpoints checked"));
    let out = std::process::Command::new(common::BIN)
        .args(["checkpoint", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let latest = String::from_utf8(out.stdout).unwrap();
    assert!(latest.starts_with("daftari-checkpoint/v1\n"), "{latest}");
    // A seal rewritten after its checkpoint left the box: the anchor names its digest.
    let rewritten = tmp.path().join("rewritten");
    copy_dir(&data, &rewritten);
    let conn = rusqlite::Connection::open(rewritten.join("seals.sqlite")).unwrap();
    conn.execute("UPDATE seals SET sig = zeroblob(64) WHERE epoch = 1", [])
        .unwrap();
    drop(conn);
    let v = verify_with(&rewritten, &["--vkey", &vkey, "--anchors", a]);
    assert_eq!(v.code, 1, "{:#}", v.json);
    let all = v.json["findings"].to_string();
    assert!(all.contains("seal of anchored epoch 1"), "{all}");
    // Cut the newest block off and drop the seals too: only the anchor can tell.
    cut_newest_block(&data);
    std::fs::remove_file(data.join("seals.sqlite")).unwrap();
    assert_eq!(
        verify_with(&data, &[]).code,
        0,
        "undetectable without an anchor"
    );
    let v = verify_with(&data, &["--vkey", &vkey, "--anchors", a]);
    assert_eq!(v.code, 1, "{:#}", v.json);
    assert_eq!(v.kinds()[0], "anchor");
    assert!(
        v.first_break()["what"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
    // Anchors without the key cannot be judged.
    assert_eq!(verify_with(&data, &["--anchors", a]).code, 2);
}

#[test]
fn the_server_runs_without_core_dumps() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    s.stop();
}

#[test]
fn init_creates_the_log_and_prints_the_keys_the_server_then_seals_with() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = std::process::Command::new(common::BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} in {stdout}"))
            .trim()
            .to_owned()
    };
    let pk = value("epoch-0 public key: ");
    let vkey = value("checkpoint verifier key: ");
    assert_eq!(value("log id: ").len(), 32);
    let again = std::process::Command::new(common::BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "a second init refuses");

    let s = Server::start(&data, &["--epoch-interval", EPOCH]);
    push_to(&s, 3);
    common::wait_for_seals(&data, 1);
    let logs = s.stderr.lock().unwrap().join("\n");
    assert!(
        !logs.contains("new seal chain"),
        "the keys were made by init"
    );
    s.stop();
    let anchors = data.join("checkpoints.note");
    let v = verify_with(
        &data,
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
}

#[test]
fn the_current_key_cannot_reseal_the_past_and_a_rebuilt_log_fails_the_pinned_key() {
    use daftari::seal::record::Seal;
    let tmp = tempfile::tempdir().unwrap();
    let (data, pk) = sealed_ledger(tmp.path());

    // Root on the box holds the current epoch key: it re-signs epoch 1's seal with a new head.
    let copy = tmp.path().join("resealed");
    copy_dir(&data, &copy);
    let current = daftari::seal::keys::read(&copy).unwrap().unwrap();
    let conn = rusqlite::Connection::open(copy.join("seals.sqlite")).unwrap();
    let body: Vec<u8> = conn
        .query_row("SELECT body FROM seals WHERE epoch = 1", [], |r| r.get(0))
        .unwrap();
    let mut seal = Seal::decode(&body).unwrap();
    seal.head = [0x42; 32];
    let sig = seal.sign(&current.signing_key());
    conn.execute(
        "UPDATE seals SET body = ?1, sig = ?2 WHERE epoch = 1",
        rusqlite::params![seal.encode(), sig.to_vec()],
    )
    .unwrap();
    drop(conn);
    let v = verify_with(&copy, &["--pubkey", &pk]);
    assert_eq!(v.code, 1, "{}", v.json);
    let what = v.first_break()["what"].as_str().unwrap().to_owned();
    assert!(what.contains("epoch 1: seal signature"), "{what}");

    // Or it throws the seal chain and key away and lets the server build a new one.
    let rebuilt = tmp.path().join("rebuilt");
    copy_dir(&data, &rebuilt);
    std::fs::remove_file(rebuilt.join("seals.sqlite")).unwrap();
    std::fs::remove_file(daftari::seal::keys::key_path(&rebuilt)).unwrap();
    let s = InProc::start(&rebuilt, "", EPOCH_LEN, None);
    let new_pk = s.pk();
    s.end_epoch();
    s.stop();
    assert_ne!(new_pk, pk);
    assert_eq!(
        verify_with(&rebuilt, &["--pubkey", &new_pk]).code,
        0,
        "the rebuilt log is consistent under its own key"
    );
    let v = verify_with(&rebuilt, &["--pubkey", &pk]);
    assert_eq!(v.code, 1, "but not under the pinned one: {}", v.json);
    assert_eq!(v.kinds()[0], "seal_chain");
}

#[test]
fn checkpoints_every_n_epochs_and_always_at_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = InProc::start(&data, "[seal]\ncheckpoint_every = 3\n", EPOCH_LEN, None);
    push(&s, 2);
    s.end_epochs(4);
    s.stop();
    let text = std::fs::read_to_string(data.join("checkpoints.note")).unwrap();
    let epochs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("epoch "))
        .map(|e| e.parse().unwrap())
        .collect();
    let last_sealed = seals(&data).last().unwrap().0;
    assert_eq!(
        epochs.last(),
        Some(&last_sealed),
        "the shutdown seal has one"
    );
    let (shutdown, rest) = epochs.split_last().unwrap();
    assert!(!rest.is_empty(), "{epochs:?}");
    assert!(
        rest.iter().all(|e| e % 3 == 0),
        "{epochs:?} (shutdown {shutdown})"
    );
}

#[test]
fn a_log_cut_back_with_its_seals_cannot_be_continued() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pk) = sealed_ledger(tmp.path());
    // Cut records and seals back to the end of epoch 2: a consistent, shorter log.
    let conn = rusqlite::Connection::open(data.join("seals.sqlite")).unwrap();
    conn.execute("DELETE FROM seals WHERE epoch > 2", [])
        .unwrap();
    drop(conn);
    // The server holds a later epoch's key only: it cannot seal epoch 3 and refuses to go on.
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--push-listen",
            "127.0.0.1:0",
            "--local-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to seal out of order"), "{err}");
    // What is left verifies only as far as the seals go; the records after are reported.
    let v = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(v.code, 0, "{}", v.json);
    assert!(
        v.json["notes"]
            .to_string()
            .contains("not yet forward-secure"),
        "{}",
        v.json
    );
}
