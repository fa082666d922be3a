//! A full disk through the push plane: pushes are answered 507 (retryable, nothing stored),
//! the server keeps running, and once space returns pushes succeed again without a restart;
//! every acknowledged entry is present and verify passes. The free-space reserve refuses
//! pushes before the disk is full while seals and checkpoints go on. Needs a small tmpfs
//! (root); where it cannot be mounted the tests say so and pass without running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::{Duration, Instant};

use common::server::{Server, pushed, request};

fn batch(k: usize) -> String {
    let mut rng = common::rng::Rng::new(k as u64);
    let values: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"["{}","push {k} entry {i}: {}"]"#,
                1_754_400_000_000_000_000i64 + i,
                rng.hex(200)
            )
        })
        .collect();
    format!(
        r#"{{"streams":[{{"stream":{{"job":"fill"}},"values":[{}]}}]}}"#,
        values.join(",")
    )
}

/// Pushes 200-entry batches until one is refused; the entries acknowledged and the refusal.
fn push_until_refused(s: &Server) -> (usize, Option<common::server::Resp>) {
    let mut acked = 0;
    for k in 0..1000 {
        let r = s.push_json(&s.token, &batch(k));
        if r.status != 204 {
            return (acked, Some(r));
        }
        acked += 200;
    }
    (acked, None)
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
    // No reserve: this test is about the disk actually filling up.
    let s = Server::start(&tmp.path().join("data"), &["--disk-reserve", "0"]);
    let (mut acked, full) = push_until_refused(&s);
    let full = full.expect("a 6 MiB disk must fill up");
    assert_eq!(full.status, 507, "{}", full.body);
    assert!(full.body.contains("disk is full; nothing was stored"));
    assert!(full.headers.get("retry-after").is_some());
    // Still full: still refused, and the server is alive.
    assert_eq!(s.push_json(&s.token, &batch(10_000)).status, 507);
    std::fs::remove_file(&filler).unwrap();
    // The space that returned is shared with the checkpointer, which may first copy the
    // WAL into the file: a push can still meet a full disk for a moment, and is answered
    // 507 again (which agents retry) until it fits.
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = s.push_json(&s.token, &batch(20_000));
        if r.status != 507 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
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

fn metric(s: &Server, series: &str) -> f64 {
    let m = request(s.local, "GET", "/metrics", &[], Vec::new()).body;
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{m}"))
}

fn free_bytes(dir: &std::path::Path) -> u64 {
    daftari::store::space(dir).unwrap().free
}

#[test]
fn the_reserve_refuses_pushes_before_the_disk_fills_and_sealing_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = common::mount_tmpfs(tmp.path(), "24m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk reserve not exercised"
        );
        return;
    };
    let ballast = tmp.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 8 << 20]).unwrap();
    let reserve = 6u64 << 20;
    let s = Server::start(
        &tmp.path().join("data"),
        &["--disk-reserve", "6MiB", "--epoch-interval", "1s"],
    );
    s.wait_for_log("sealing");
    assert_eq!(metric(&s, "daftari_disk_reserve_bytes"), reserve as f64);
    assert_eq!(metric(&s, "daftari_disk_low_space"), 0.0);
    let (mut acked, refused) = push_until_refused(&s);
    let refused = refused.expect("pushes must reach the reserve");
    assert_eq!(refused.status, 507, "{}", refused.body);
    assert!(
        refused.body.contains("below the reserve"),
        "{}",
        refused.body
    );
    assert!(refused.headers.get("retry-after").is_some());
    // Refused with space to spare: the disk itself is not full.
    let free = free_bytes(tmp.path());
    assert!(
        free > reserve - (1 << 20),
        "free {free}: the reserve was overrun"
    );
    s.wait_for_log("free space is below the reserve");
    assert_eq!(metric(&s, "daftari_disk_low_space"), 1.0);
    assert_eq!(
        metric(&s, "daftari_push_failures_total{reason=\"disk_reserve\"}"),
        1.0
    );

    // While pushes are refused, epochs are still sealed and checkpointed.
    let note = s.data.join("checkpoints.note");
    let note_len = || std::fs::metadata(&note).map_or(0, |m| m.len());
    let (epoch, len) = (metric(&s, "daftari_seal_last_epoch"), note_len());
    let t = Instant::now();
    while metric(&s, "daftari_seal_last_epoch") < epoch + 2.0 {
        assert!(t.elapsed() < Duration::from_secs(10), "sealing stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        note_len() > len,
        "no checkpoint written while pushes were refused"
    );
    assert_eq!(s.push_json(&s.token, &batch(5000)).status, 507);

    // Space returns: pushes are accepted again without a restart, and it is logged.
    std::fs::remove_file(&ballast).unwrap();
    let t = Instant::now();
    loop {
        let r = s.push_json(&s.token, &batch(10_000));
        if r.status == 204 {
            acked += 200;
            break;
        }
        assert_eq!(r.status, 507, "{}", r.body);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "never admitted again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.wait_for_log("free space is above the reserve again");
    assert_eq!(metric(&s, "daftari_disk_low_space"), 0.0);
    let data = s.data.clone();
    assert!(s.stop().success());
    assert_eq!(
        pushed(&data).len(),
        acked,
        "exactly the acknowledged entries"
    );
    assert_eq!(common::verify(&data).code, 0);
}
