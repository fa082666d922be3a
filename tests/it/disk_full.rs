//! A full disk: appends fail with a typed error and nothing unacknowledged is claimed; once
//! space returns, appends succeed again without a restart, and every acknowledged entry is
//! present and verified. Needs a small tmpfs (root); where it cannot be mounted the test says
//! so and passes without running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use daftari::store::{self, AppendError};

#[test]
fn a_full_disk_refuses_appends_and_recovers_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = common::mount_tmpfs(tmp.path(), "3m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); disk-full behaviour not exercised"
        );
        return;
    };
    let filler = tmp.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let data = tmp.path().join("data");
    let (ledger, appender, reader) = store::open(common::small_config(&data, 1 << 30)).unwrap();

    let mut acked = 0u64;
    let mut refusal = None;
    for k in 0..10_000 {
        match appender.append_blocking(common::batch("h", &format!("k{k}"), 50)) {
            Ok(r) => {
                assert_eq!(r.first_seq, acked, "acknowledged ranges are contiguous");
                acked += r.count;
            }
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("a 3 MiB disk must fill up");
    eprintln!("disk full after {acked} acknowledged entries: {refusal}");
    assert!(
        matches!(refusal, AppendError::DiskFull | AppendError::Storage(_)),
        "{refusal:?}"
    );
    assert!(acked > 0);

    std::fs::remove_file(&filler).unwrap();
    let after = appender
        .append_blocking(common::batch("h", "after", 5))
        .unwrap();
    assert_eq!(
        after.first_seq, acked,
        "the refused append took no sequence numbers"
    );
    ledger.close().unwrap();

    let records = reader.read(0, usize::MAX).unwrap();
    assert_eq!(records.len() as u64, acked + 5);
    let v = common::verify(&data);
    assert_eq!(v.code, 0, "{}", v.json);
}
