//! A full disk through the push plane: pushes are answered 507 (retryable, nothing stored),
//! the server keeps running, and once space returns pushes succeed again without a restart;
//! every acknowledged entry is present and verify passes. Needs a small tmpfs (root); where it
//! cannot be mounted the test says so and passes without running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::server::{Server, pushed};

fn batch(k: usize) -> String {
    let values: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"["{}","push {k} entry {i}: {}"]"#,
                1_754_400_000_000_000_000i64 + i,
                "x".repeat(200)
            )
        })
        .collect();
    format!(
        r#"{{"streams":[{{"stream":{{"job":"fill"}},"values":[{}]}}]}}"#,
        values.join(",")
    )
}

#[test]
fn a_full_disk_answers_507_and_pushes_resume_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = common::mount_tmpfs(tmp.path(), "6m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); disk-full behaviour not exercised"
        );
        return;
    };
    let filler = tmp.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let mut acked = 0;
    let mut full = None;
    for k in 0..1000 {
        let r = s.push_json(&s.token, &batch(k));
        if r.status == 204 {
            acked += 200;
        } else {
            full = Some(r);
            break;
        }
    }
    let full = full.expect("a 6 MiB disk must fill up");
    assert_eq!(full.status, 507, "{}", full.body);
    assert!(full.body.contains("disk is full; nothing was stored"));
    assert!(full.headers.get("retry-after").is_some());
    // Still full: still refused, and the server is alive.
    assert_eq!(s.push_json(&s.token, &batch(10_000)).status, 507);
    std::fs::remove_file(&filler).unwrap();
    let r = s.push_json(&s.token, &batch(20_000));
    assert_eq!(r.status, 204, "after space returned: {}", r.body);
    acked += 200;
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(
        got.len(),
        acked,
        "exactly the acknowledged entries are stored"
    );
    assert_eq!(common::verify(&data).code, 0);
}
