//! The ledger's behaviour through its public handles and the files it leaves: group commit
//! receipts, pushback, restart, rotation, file modes and pragmas, refused entries, and verify
//! running beside a live writer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{batch, segment_files, small_config, verify};
use daftari::store::{self, AppendError, Batch, StoreConfig, chain};

#[test]
fn concurrent_appends_get_disjoint_contiguous_receipts_and_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, reader) = store::open(small_config(tmp.path(), 1 << 20)).unwrap();
    let receipts: Vec<(String, store::Receipt)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let appender = appender.clone();
                s.spawn(move || {
                    (0..20)
                        .map(|k| {
                            let tag = format!("t{t}k{k}");
                            (
                                tag.clone(),
                                appender
                                    .append_blocking(batch(&format!("host-{t}"), &tag, 37))
                                    .unwrap(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    ledger.close().unwrap();

    let by_first: BTreeMap<u64, &(String, store::Receipt)> =
        receipts.iter().map(|r| (r.1.first_seq, r)).collect();
    let mut next = 0;
    for (first, (_, receipt)) in &by_first {
        assert_eq!(*first, next, "receipts must tile the sequence space");
        assert_eq!(receipt.count, 37);
        next += receipt.count;
    }
    let records = reader.read(0, usize::MAX).unwrap();
    assert_eq!(records.len() as u64, next);
    for (tag, receipt) in &receipts {
        let got =
            &records[receipt.first_seq as usize..(receipt.first_seq + receipt.count) as usize];
        let head_after = verify_head_at(tmp.path(), receipt.first_seq + receipt.count - 1);
        assert_eq!(head_after, receipt.head, "receipt head of {tag}");
        for (i, r) in got.iter().enumerate() {
            let line = String::from_utf8(r.line.clone()).unwrap();
            assert!(
                line.starts_with(&format!("{tag} entry {i}:")),
                "seq {}: {line}",
                r.seq
            );
        }
    }
    assert_eq!(verify(tmp.path()).code, 0);
}

/// The head after `seq`, recomputed from the records (independently of the writer).
fn verify_head_at(data: &std::path::Path, seq: u64) -> chain::Hash {
    let reader = store::Reader::new(data);
    let seg = &reader.segments().unwrap()[0];
    let hasher = chain::Hasher::default();
    let mut head = seg.meta.prev_head;
    for r in reader.read(0, seq as usize + 1).unwrap() {
        head = hasher.next_head(&head, &chain::encode(&r).unwrap().bytes);
    }
    head
}

#[test]
fn a_full_queue_is_pushback_at_once_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.queue_max_bytes = 1000;
    let (ledger, appender, reader) = store::open(cfg).unwrap();
    let started = std::time::Instant::now();
    let err = appender
        .append_blocking(batch("h", "big", 100))
        .unwrap_err();
    assert!(matches!(err, AppendError::Pushback(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "pushback must not wait"
    );
    appender.append_blocking(batch("h", "small", 1)).unwrap();
    ledger.close().unwrap();
    assert_eq!(reader.read(0, 100).unwrap().len(), 1);
}

#[test]
fn an_entry_over_the_format_limit_is_refused_before_queueing() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, reader) = store::open(StoreConfig::new(tmp.path())).unwrap();
    let mut b = batch("h", "x", 3);
    b.streams[1].entries[0].line = vec![b'x'; chain::MAX_BSTR + 1];
    let err = appender.append_blocking(b).unwrap_err();
    assert!(
        matches!(err, AppendError::Invalid { index: 1, .. }),
        "{err:?}"
    );
    ledger.close().unwrap();
    assert!(
        reader.read(0, 10).unwrap().is_empty(),
        "nothing of the refused batch is stored"
    );
}

#[test]
fn appends_after_close_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, _) = store::open(StoreConfig::new(tmp.path())).unwrap();
    ledger.close().unwrap();
    assert_eq!(
        appender.append_blocking(batch("h", "late", 1)).unwrap_err(),
        AppendError::Closed
    );
}

#[test]
fn a_restart_continues_the_same_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_config(tmp.path(), 1 << 20);
    let (ledger, appender, _) = store::open(cfg.clone()).unwrap();
    let first = appender.append_blocking(batch("h", "before", 10)).unwrap();
    ledger.close().unwrap();
    let (ledger, appender, reader) = store::open(cfg).unwrap();
    let second = appender.append_blocking(batch("h", "after", 10)).unwrap();
    ledger.close().unwrap();
    assert_eq!(second.first_seq, first.first_seq + first.count);
    assert_eq!(
        reader.segments().unwrap().len(),
        1,
        "a restart keeps writing the open segment"
    );
    let v = verify(tmp.path());
    assert_eq!(v.code, 0, "{}", v.json);
    assert_eq!(v.json["next_seq"], 20);
    assert_eq!(v.json["head"], hex::encode(second.head));
}

#[test]
fn rotation_by_size_closes_segments_read_only_and_links_them() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_ledger(tmp.path(), 64 * 1024, 30, 200);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 3, "{files:?}");
    let reader = store::Reader::new(tmp.path());
    let segs = reader.segments().unwrap();
    for (i, (seg, file)) in segs.iter().zip(&files).enumerate() {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        let journal = journal_mode(file);
        if i + 1 < segs.len() {
            assert!(seg.closed, "{file:?} must be closed");
            assert_eq!(mode, 0o444, "{file:?}");
            let wal = std::path::PathBuf::from(format!("{}-wal", file.display()));
            let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            assert_eq!(
                wal_len, 0,
                "{file:?}: a closed segment's WAL is fully in the file"
            );
            assert_eq!(journal, "wal");
            assert_eq!(segs[i + 1].meta.first_seq, seg.meta.first_seq + seg.count);
        } else {
            assert!(!seg.closed);
            assert_eq!(mode & 0o200, 0o200);
            assert_eq!(journal, "wal");
        }
    }
    assert_eq!(verify(tmp.path()).code, 0);
}

fn journal_mode(path: &std::path::Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_open_segment_is_in_wal_mode_and_a_clean_close_removes_the_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, _) = store::open(StoreConfig::new(tmp.path())).unwrap();
    appender.append_blocking(batch("h", "x", 1)).unwrap();
    let file = segment_files(tmp.path()).pop().unwrap();
    assert_eq!(journal_mode(&file), "wal");
    // The header says WAL (bytes 18 and 19 are 2), so no reader can open it in another mode.
    let header = std::fs::read(&file).unwrap();
    assert_eq!((header[18], header[19]), (2, 2));
    ledger.close().unwrap();
    assert!(
        !std::path::Path::new(&format!("{}-wal", file.display())).exists(),
        "a clean close removes the WAL"
    );
}

#[test]
fn rotation_by_age_happens_while_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(tmp.path(), 1 << 30);
    cfg.segment_max_age = Duration::from_secs(1);
    let (ledger, appender, reader) = store::open(cfg).unwrap();
    appender.append_blocking(batch("h", "old", 5)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reader.segments().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the aged segment was not rotated"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    appender.append_blocking(batch("h", "new", 5)).unwrap();
    ledger.close().unwrap();
    let segs = reader.segments().unwrap();
    assert!(segs[0].closed && segs[0].count == 5);
    assert_eq!(segs.last().unwrap().meta.first_seq, 5);
    assert_eq!(verify(tmp.path()).code, 0);
}

#[test]
fn an_empty_segment_does_not_rotate_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(tmp.path(), 1 << 30);
    cfg.segment_max_age = Duration::from_secs(1);
    let (ledger, _appender, reader) = store::open(cfg).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(reader.segments().unwrap().len(), 1);
    ledger.close().unwrap();
}

#[test]
fn config_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.segment_max_bytes = 10;
    let err = store::open(cfg).unwrap_err().to_string();
    assert!(err.starts_with("segment_max_bytes:"), "{err}");
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.origin = "has space".into();
    assert!(
        store::open(cfg)
            .unwrap_err()
            .to_string()
            .starts_with("origin:")
    );
}

#[test]
fn verify_runs_beside_a_live_writer() {
    /// Batches the writer appends at most while verify runs beside it (bounds the test).
    const MAX_BATCHES: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, _) = store::open(small_config(tmp.path(), 512 * 1024)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for k in 0..MAX_BATCHES {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                appender
                    .append_blocking(batch("live", &format!("k{k}"), 100))
                    .unwrap();
            }
        });
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(50));
            let v = verify(tmp.path());
            assert_eq!(v.code, 0, "verify during appends: {} {}", v.json, v.stderr);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    ledger.close().unwrap();
    assert_eq!(verify(tmp.path()).code, 0);
}

#[test]
fn an_async_append_resolves_after_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, reader) = store::open(StoreConfig::new(tmp.path())).unwrap();
    let fut = appender.append(Batch {
        source: "async".into(),
        tenant: "t1".into(),
        streams: batch("h", "a", 2).streams,
    });
    let receipt = futures_lite_block_on(fut).unwrap();
    assert_eq!((receipt.first_seq, receipt.count), (0, 2));
    let r = &reader.read(0, 10).unwrap()[1];
    assert_eq!((r.source.as_str(), r.tenant.as_str()), ("async", "t1"));
    ledger.close().unwrap();
}

/// Polls a future to completion on this thread (no runtime needed for a oneshot receiver).
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
