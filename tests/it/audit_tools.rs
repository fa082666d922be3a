//! The audit tools tell only what they checked: verify refuses records the encoder could not
//! have written, even with a consistent chain over them; verify-proof shows the proved
//! record, never a copy beside it (in segment_seals.rs); anchors files are read in every form
//! daftari exports checkpoints in; a forgotten key is never a tamper alarm, and missing
//! segments under seals always are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::server::Server;
use common::{open_rw, segment_files, verify, verify_with};
use daftari::store::chain;
use rusqlite::params;

/// A v1 ledger of one open segment holding one block of three records.
fn one_block_v1(dir: &std::path::Path) {
    let mut cfg = common::small_config(dir, 1 << 20);
    cfg.segment_format = 1;
    let (ledger, appender, _) = daftari::store::open(cfg).unwrap();
    appender
        .append_blocking(common::batch("host-a", "utf8", 3))
        .unwrap();
    ledger.close().unwrap();
}

#[test]
fn a_rehashed_record_with_a_non_utf8_source_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    one_block_v1(&data);
    assert_eq!(verify(&data).code, 0);
    let path = segment_files(&data)[0].clone();
    let conn = open_rw(&path);
    let (first, mut records, mut heads): (i64, Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, records, heads FROM blocks ORDER BY first_seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // The last record: skip the others' u32 length and bytes.
    let mut at = 0;
    let mut starts = Vec::new();
    while at < records.len() {
        let len = u32::from_be_bytes(records[at..at + 4].try_into().unwrap()) as usize;
        starts.push((at + 4, len));
        at += 4 + len;
    }
    let (start, len) = *starts.last().unwrap();
    // version, seq, recv_ns, ts_ns, then the source's u32 length and its first byte.
    records[start + 25 + 4] = 0xff;
    let record = records[start..start + len].to_vec();
    let n = heads.len() / 32;
    let prev: chain::Hash = heads[(n - 2) * 32..(n - 1) * 32].try_into().unwrap();
    let head = chain::Hasher::default().next_head(&prev, &record);
    heads[(n - 1) * 32..].copy_from_slice(&head);
    conn.execute(
        "UPDATE blocks SET records = ?2, heads = ?3 WHERE first_seq = ?1",
        params![first, records, heads],
    )
    .unwrap();
    drop(conn);
    let v = verify(&data);
    assert_eq!(v.code, 1, "{:?} {}", v.json, v.stderr);
    let what = v.first_break().to_string();
    assert!(what.contains("UTF-8"), "{what}");
}

/// A served ledger sealed for a few epochs, with its stdout (the checkpoint lines) kept;
/// returns the data directory, the verifier key, what the server printed on stdout and the
/// epoch-0 public key.
fn served_with_stdout(root: &std::path::Path) -> (std::path::PathBuf, String, String, String) {
    let data = root.join("data");
    let out = root.join("stdout");
    let s = Server::start_to(
        &data,
        &["--epoch-interval", "1s"],
        std::fs::File::create(&out).unwrap(),
    );
    let vkey = s.printed("verifier key: ");
    let pk = s.printed("epoch-0 public key: ");
    for i in 0..4 {
        let ts = daftari::clock::now_ns();
        let body =
            format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{ts}","e {i}"]]}}]}}"#);
        assert_eq!(s.push_json(&s.token, &body).status, 204);
    }
    common::wait_for_seals(&data, 3);
    s.stop();
    let stdout = std::fs::read_to_string(&out).unwrap();
    (data, vkey, stdout, pk)
}

#[test]
fn anchors_are_read_in_every_form_checkpoints_leave_the_box_in() {
    let root = tempfile::tempdir().unwrap();
    let (data, vkey, stdout, _) = served_with_stdout(root.path());
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("daftari_checkpoint"))
        .collect();
    assert!(
        lines.len() >= 2,
        "the server printed its checkpoints: {stdout}"
    );
    let n = lines.len();
    // How journald keeps those lines: `journalctl -o json`, `-o export`, `-o short`.
    let json: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e = serde_json::json!({"__CURSOR": format!("s={i}"), "_SYSTEMD_UNIT":
                "daftari.service", "MESSAGE": l});
            format!("{e}\n")
        })
        .collect();
    let export: String = lines
        .iter()
        .map(|l| format!("__CURSOR=s=1\n_SYSTEMD_UNIT=daftari.service\nMESSAGE={l}\n\n"))
        .collect();
    let short: String = lines
        .iter()
        .map(|l| format!("Dec 03 12:00:00 sink daftari[812]: {l}\n"))
        .collect();
    let note = std::fs::read_to_string(data.join("checkpoints.note")).unwrap();
    let forms = [
        ("stdout lines", stdout.clone(), n),
        ("journalctl -o json", json, n),
        ("journalctl -o export", export, n),
        ("journalctl -o short", format!("-- Boot 1 --\n{short}"), n),
        (
            "checkpoints.note",
            note.clone(),
            note.matches("daftari-checkpoint/v1\n").count(),
        ),
        (
            "mixed",
            format!("{note}{stdout}"),
            n + note.matches("daftari-checkpoint/v1\n").count(),
        ),
    ];
    for (what, text, count) in forms {
        let f = root.path().join("anchors");
        std::fs::write(&f, text).unwrap();
        let v = verify_with(&data, &["--vkey", &vkey, "--anchors", f.to_str().unwrap()]);
        assert_eq!(v.code, 0, "{what}: {:#} {}", v.json, v.stderr);
        let notes = v.json["notes"].to_string();
        assert!(
            notes.contains(&format!("anchors: {count} checkpoints checked")),
            "{what}: {notes}"
        );
    }
    // A file with no note in it is the wrong file, not a tampered ledger.
    let wrong = root.path().join("wrong");
    std::fs::write(&wrong, "-- No entries --\n").unwrap();
    for file in [wrong, root.path().join("absent")] {
        let v = verify_with(
            &data,
            &["--vkey", &vkey, "--anchors", file.to_str().unwrap()],
        );
        assert_eq!(v.code, 2, "{:#}", v.json);
        assert!(v.stderr.contains("--anchors"), "{}", v.stderr);
    }
}

/// `daftari ARGS`: (exit code, stdout, stderr).
fn daftari(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(common::BIN)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_entry_proves_within_an_epoch_of_its_push_found_by_what_grafana_shows() {
    // The README's round trip: push, find the entry, prove it while the server runs, and
    // check the proof elsewhere with only the verifier key and an exported checkpoint.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let s = Server::start(&data, &["--epoch-interval", "1s"]);
    let vkey = s.printed("verifier key: ");
    let ts = daftari::clock::now_ns();
    let values: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"["{}","Failed password for invalid user admin from 203.0.113.{i} port 22"]"#,
                ts + i
            )
        })
        .collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"sshd","host":"web-1"}},"values":[{}]}}]}}"#,
        values.join(",")
    );
    assert_eq!(s.push_json(&s.token, &body).status, 204);
    let dir = data.to_str().unwrap();
    let find = [
        "prove",
        "--data-dir",
        dir,
        "--selector",
        r#"{job="sshd"}"#,
        "--line",
        "203.0.113.1 ",
    ];
    let started = std::time::Instant::now();
    let proof = loop {
        let (code, out, err) = daftari(&find);
        if code == 0 {
            break out;
        }
        assert!(err.contains("not sealed yet"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let proof_file = root.path().join("proof.json");
    std::fs::write(&proof_file, &proof).unwrap();
    // The auditor's copy of the checkpoints, taken once the proof's epoch was exported.
    let note: serde_json::Value = serde_json::from_str(&proof).unwrap();
    let note = note["checkpoint"].as_str().unwrap().to_owned();
    while !std::fs::read_to_string(data.join("checkpoints.note"))
        .unwrap_or_default()
        .contains(&note)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never exported"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let anchors = root.path().join("anchors.note");
    std::fs::copy(data.join("checkpoints.note"), &anchors).unwrap();
    let (code, out, err) = daftari(&[
        "verify-proof",
        proof_file.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--anchors",
        anchors.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 later records of its epoch"), "{out}");
    assert!(
        out.contains("one of the anchors exported off the box"),
        "{out}"
    );
    assert!(out.contains("from 203.0.113.1 port 22"), "{out}");

    // A search that matches several entries lists them with their seqs; one that matches
    // none says so; neither proves anything.
    let (code, out, err) = daftari(&["prove", "--data-dir", dir, "--line", "Failed password"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("5 entries match") && err.matches("\n  seq ").count() == 5,
        "{err}"
    );
    let (code, _, err) = daftari(&["prove", "--data-dir", dir, "--line", "Accepted"]);
    assert_eq!(code, 2);
    assert!(err.contains("no entry matches"), "{err}");
    let (code, _, err) = daftari(&[
        "prove",
        "--data-dir",
        dir,
        "--line",
        "x",
        "--from",
        "yesterday",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("RFC 3339"), "{err}");
    s.stop();
}

#[test]
fn findings_say_expected_for_what_the_evidence_requires_and_found_for_what_is_stored() {
    // A changed stored head: expected is the head the records chain to, found the stored one.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    one_block_v1(&data);
    let conn = open_rw(&segment_files(&data)[0]);
    let mut heads: Vec<u8> = conn
        .query_row("SELECT heads FROM blocks", [], |r| r.get(0))
        .unwrap();
    let n = heads.len() / 32;
    heads[(n - 1) * 32] ^= 1;
    let stored = hex::encode(&heads[(n - 1) * 32..]);
    conn.execute("UPDATE blocks SET heads = ?1", [&heads])
        .unwrap();
    drop(conn);
    let v = verify(&data);
    assert_eq!(v.code, 1);
    let f = v.first_break();
    assert!(f["what"].as_str().unwrap().contains("head"), "{f}");
    assert_eq!(f["found"], stored, "{f}");
    assert_ne!(f["expected"], stored, "{f}");

    // A seal's epoch column changed (its signed body still says the right one): named as
    // that column, with different figures on each side, and no segment index in JSON.
    let root = tempfile::tempdir().unwrap();
    let (data, _, _, pk) = served_with_stdout(root.path());
    let seals = rusqlite::Connection::open(data.join("seals.sqlite")).unwrap();
    seals
        .execute("UPDATE seals SET epoch = epoch + 100 WHERE n = 2", [])
        .unwrap();
    drop(seals);
    let v = verify_with(&data, &["--pubkey", &pk]);
    assert_eq!(v.code, 1, "{:#}", v.json);
    let f = v.first_break();
    assert_eq!(f["kind"], "seal_chain", "{f}");
    assert!(
        f["what"].as_str().unwrap().contains("seals.epoch column"),
        "{f}"
    );
    assert_ne!(f["expected"], f["found"], "{f}");
    assert!(f["segment_index"].is_null(), "{f}");
    // The text report names kinds as the JSON does.
    let out = std::process::Command::new(common::BIN)
        .args(["verify", "--pubkey", &pk, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FIRST BREAK: seal_chain: seals.sqlite"),
        "{text}"
    );
}

#[test]
fn seals_sqlite_must_hold_exactly_its_schema_and_rows_numbered_from_one() {
    let root = tempfile::tempdir().unwrap();
    let (data, _, _, pk) = served_with_stdout(root.path());
    assert_eq!(verify_with(&data, &["--pubkey", &pk]).code, 0);
    let cases = [
        (
            "an extra table",
            "CREATE TABLE hidden (x BLOB)",
            "table hidden",
        ),
        (
            "an extra index",
            "CREATE INDEX by_sig ON seals (sig)",
            "index by_sig",
        ),
        (
            "renumbered rows",
            "UPDATE seals SET n = n + 10",
            "rows numbered 11",
        ),
    ];
    for (what, sql, named) in cases {
        let copy = root.path().join(what.replace(' ', "-"));
        common::copy_dir(&data, &copy);
        let conn = rusqlite::Connection::open(copy.join("seals.sqlite")).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        for extra in [&[][..], &["--pubkey", &pk]] {
            let v = verify_with(&copy, extra);
            assert_eq!(v.code, 1, "{what} {extra:?}: {:#}", v.json);
            let f = v.json["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["what"] == "seals.sqlite schema")
                .cloned()
                .unwrap_or_else(|| panic!("{what}: {:#}", v.json));
            assert_eq!(f["kind"], "schema_changed");
            assert!(f["found"].as_str().unwrap().contains(named), "{what}: {f}");
        }
    }
}

/// VERIFY.md's appendix of schema objects, as the migrations produce them.
fn schema_appendix() -> String {
    use daftari::store::audit::{SchemaObject, expected_objects};
    let block = |objects: &[SchemaObject]| {
        let mut s = String::from("```sql\n");
        for o in objects {
            s.push_str(&format!("-- {} {} on {}\n", o.kind, o.name, o.table));
            s.push_str(o.sql.as_deref().unwrap_or("(no sql)"));
            s.push_str(";\n");
        }
        s.push_str("```\n");
        s
    };
    let mut out = String::new();
    for (version, closed) in [(1, false), (1, true), (2, false), (2, true)] {
        let objects = expected_objects(version, closed).unwrap();
        let state = if closed { "closed" } else { "open" };
        out.push_str(&format!(
            "\n**Segment, `user_version` {version}, {state}:**\n\n{}",
            block(&objects)
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/seals");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for (i, f) in files.iter().enumerate() {
        conn.execute_batch(&std::fs::read_to_string(f).unwrap())
            .unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
            )
            .unwrap();
        let objects: Vec<SchemaObject> = stmt
            .query_map([], |r| {
                Ok(SchemaObject {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.push_str(&format!(
            "\n**`seals.sqlite`, `user_version` {}:**\n\n{}",
            i + 1,
            block(&objects)
        ));
    }
    out
}

#[test]
fn verify_md_gives_every_schema_object_exactly() {
    const BEGIN: &str = "<!-- schema objects: begin -->\n";
    const END: &str = "<!-- schema objects: end -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("VERIFY.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("VERIFY.md has the schema appendix") + BEGIN.len();
    let end = doc.find(END).unwrap();
    let want = schema_appendix();
    if std::env::var_os("DAFTARI_BLESS").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        doc[start..end],
        want,
        "VERIFY.md's schema appendix differs from the migrations (DAFTARI_BLESS=1 rewrites it)"
    );
}
