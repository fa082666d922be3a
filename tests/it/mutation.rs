//! The exhaustive mutation suite over a small sealed fixture: every single-byte change to the
//! stored record bytes, the stored heads, the derived columns and the seal bytes is detected
//! by verify with the pinned key, and every byte flip of a segment file is either detected or
//! leaves the decoded records identical. Verify runs through the library here (the same
//! code the CLI runs) because thousands of runs through a process would take minutes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};

use daftari::seal::Sealer;
use daftari::seal::record::SealKind;
use daftari::store::{self, Reader, Record};
use daftari::verify::{self, Options, Progress};
use rusqlite::Connection;

/// Builds the fixture: five small batches over several segments, sealed (close seals
/// included) and shut down cleanly; returns its epoch-0 public key. v1: each batch gets a
/// segment of its own (a new v1 file is already past the 64 KiB rotation size); v2: segments
/// rotate by age on an injected clock, after every second batch, and the last is left open.
fn fixture(data: &Path, format: u32) -> [u8; 32] {
    let mut cfg = common::small_config(data, 64 * 1024);
    cfg.segment_format = format;
    cfg.segment_max_age = std::time::Duration::from_secs(1);
    let clock = daftari::clock::Clock::manual(1_754_400_000_000_000_000);
    cfg.clock = clock.clone();
    let (ledger, appender, reader) = store::open(cfg).unwrap();
    let (mut sealer, pk) =
        Sealer::open(data, "test.daftari.example/log", reader.index().unwrap()).unwrap();
    for b in 0..5 {
        appender
            .append_blocking(common::batch("host-a", &format!("b{b}"), 9))
            .unwrap();
        sealer.tick(SealKind::Epoch).unwrap();
        if b < 4 {
            clock.advance(std::time::Duration::from_secs(2));
        }
    }
    sealer.tick(SealKind::Shutdown).unwrap();
    drop(sealer);
    ledger.close().unwrap();
    pk.unwrap()
}

fn intact(data: &Path, pk: &[u8; 32]) -> bool {
    let opts = Options {
        data_dir: data.to_owned(),
        jobs: 1,
        pubkey: Some(*pk),
        anchors: None,
        retention: None,
        state: None,
    };
    verify::run(&opts, &Progress::default()).is_ok_and(|r| r.intact() && r.inconclusive.is_empty())
}

fn segments(data: &Path) -> Vec<PathBuf> {
    common::segment_files(data)
}

/// Applies one change to `db` through SQL, runs `f`, then puts the file's bytes back exactly
/// (so that every mutation starts from the untouched fixture).
fn changed(
    db: &Path,
    sql: &str,
    value: rusqlite::types::Value,
    what: String,
    f: &mut impl FnMut(String),
) {
    let original = std::fs::read(db).unwrap();
    let applied = {
        let conn = common::open_rw(db);
        // A change a constraint refuses (a duplicate key) is not one an attacker can make this way.
        conn.execute(sql, [value]).is_ok()
    };
    if applied {
        f(what);
    }
    std::fs::write(db, original).unwrap();
    for side in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(side);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Every byte of the blob column `col` of the first `rows` rows of `table`, flipped in turn.
/// In a compressed frame (v2 `records` and `columns`), a flip that still decompresses to the
/// same bytes (in the frame header's spare bits, say) changes nothing stored and is skipped:
/// the frame's encoding is not part of the format, its content is.
fn each_blob_byte(db: &Path, table: &str, col: &str, rows: usize, f: &mut impl FnMut(String)) {
    let frame = |b: &[u8]| zstd::bulk::decompress(b, 64 << 20).ok();
    let compressed = table == "blocks"
        && ["records", "columns"].contains(&col)
        && Connection::open(db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))
            .unwrap()
            >= 2;
    let values: Vec<(i64, Vec<u8>)> = {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT rowid, {col} FROM {table} ORDER BY rowid LIMIT {rows}"
            ))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for (rowid, value) in values {
        let content = compressed.then(|| frame(&value)).flatten();
        for i in 0..value.len() {
            let mut bad = value.clone();
            bad[i] ^= 0x01;
            if content.is_some() && frame(&bad) == content {
                continue;
            }
            let sql = format!("UPDATE {table} SET {col} = ?1 WHERE rowid = {rowid}");
            let what = format!("{table}.{col} row {rowid} byte {i}");
            changed(db, &sql, rusqlite::types::Value::Blob(bad), what, f);
        }
    }
}

/// Each integer column of `table`'s first `rows` rows, changed by one in turn.
fn each_int(db: &Path, table: &str, cols: &[&str], rows: usize, f: &mut impl FnMut(String)) {
    // block_streams has no rowid: its key is (first_seq, stream_id).
    let rowid = if table == "block_streams" {
        "(first_seq * 1000000 + stream_id)"
    } else {
        "rowid"
    };
    let rowids: Vec<i64> = {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {rowid} FROM {table} ORDER BY {rowid} LIMIT {rows}"
            ))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let key = rowid;
    for rowid in rowids {
        for col in cols {
            let sql = format!("UPDATE {table} SET {col} = {col} + ?1 WHERE {key} = {rowid}");
            let what = format!("{table}.{col} row {rowid}");
            changed(db, &sql, rusqlite::types::Value::Integer(1), what, f);
        }
    }
}

#[test]
fn every_byte_of_records_heads_derived_columns_and_seals_is_covered_v1() {
    every_byte_is_covered(1);
}

#[test]
fn every_byte_of_records_end_heads_columns_filters_and_seals_is_covered_v2() {
    every_byte_is_covered(2);
}

fn every_byte_is_covered(format: u32) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pk = fixture(&data, format);
    assert!(intact(&data, &pk), "the untouched fixture verifies");
    let mut missed = Vec::new();
    let mut tried = 0;
    let mut check = |what: String| {
        tried += 1;
        if intact(&data, &pk) {
            missed.push(what);
        }
    };
    let segs = segments(&data);
    assert!(segs.len() >= 3, "{segs:?}");
    let closed = &segs[0];
    let open = segs.last().unwrap();
    let (blobs, ints): (&[&str], &[&str]) = if format == 1 {
        (&["records", "heads"], &[])
    } else {
        (
            &["records", "end_head", "summary", "columns", "tokens"],
            &["raw_bytes"],
        )
    };
    // The first block of a closed and of the open segment: every stored byte.
    for seg in [closed, open] {
        let seg = seg.as_path();
        for col in blobs {
            each_blob_byte(seg, "blocks", col, 1, &mut check);
        }
        each_int(seg, "blocks", ints, 2, &mut check);
        each_int(
            seg,
            "blocks",
            &["first_seq", "count", "recv_ns", "min_ts_ns", "max_ts_ns"],
            2,
            &mut check,
        );
        each_int(
            seg,
            "block_streams",
            &["first_seq", "stream_id", "count", "min_ts_ns", "max_ts_ns"],
            3,
            &mut check,
        );
        each_blob_byte(seg, "streams", "labels", 3, &mut check);
        each_int(seg, "streams", &["id"], 3, &mut check);
        each_blob_byte(seg, "meta", "prev_head", 1, &mut check);
        each_blob_byte(seg, "meta", "log_id", 1, &mut check);
        each_int(seg, "meta", &["first_seq", "segment_index"], 1, &mut check);
    }
    each_blob_byte(closed, "close", "end_head", 1, &mut check);
    each_int(closed, "close", &["count"], 1, &mut check);
    // Every byte of the seals: the first, a segment-close seal, and the shutdown seal.
    let seals = data.join("seals.sqlite");
    each_blob_byte(&seals, "seals", "body", 3, &mut check);
    each_blob_byte(&seals, "seals", "sig", 3, &mut check);
    each_int(&seals, "seals", &["epoch", "kind"], 3, &mut check);
    for n in [seal_row(&seals, "kind = 1"), seal_row(&seals, "kind = 3")] {
        for col in ["body", "sig"] {
            each_blob_byte_of_row(&seals, col, n, &mut check);
        }
    }
    assert!(tried > 2000, "{tried} mutations tried");
    println!("{tried} mutations, all detected");
    assert!(missed.is_empty(), "undetected: {missed:?}");
    assert!(intact(&data, &pk), "every mutation was undone");
}

/// The first seal row matching `filter`.
fn seal_row(seals: &Path, filter: &str) -> i64 {
    let conn = Connection::open(seals).unwrap();
    conn.query_row(
        &format!("SELECT min(n) FROM seals WHERE {filter}"),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Every byte of `col` of seal row `n`.
fn each_blob_byte_of_row(seals: &Path, col: &str, n: i64, f: &mut impl FnMut(String)) {
    let value: Vec<u8> = Connection::open(seals)
        .unwrap()
        .query_row(&format!("SELECT {col} FROM seals WHERE n = ?1"), [n], |r| {
            r.get(0)
        })
        .unwrap();
    for i in 0..value.len() {
        let mut bad = value.clone();
        bad[i] ^= 0x80;
        let sql = format!("UPDATE seals SET {col} = ?1 WHERE n = {n}");
        changed(
            seals,
            &sql,
            rusqlite::types::Value::Blob(bad),
            format!("seal {n} {col} byte {i}"),
            f,
        );
    }
}

fn decoded(data: &Path) -> Option<Vec<Record>> {
    Reader::new(data).read(0, usize::MAX).ok()
}

#[test]
fn every_byte_flip_of_a_segment_file_is_detected_or_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pk = fixture(&data, store::DEFAULT_SEGMENT_FORMAT);
    let baseline = decoded(&data).unwrap();

    let segs = segments(&data);
    let mut silent_identical = 0;
    let mut detected = 0;
    for seg in [&segs[0], segs.last().unwrap()] {
        std::fs::set_permissions(seg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let original = std::fs::read(seg).unwrap();
        // Every 127th byte: a prime stride reaches every page at offsets of every residue
        // (all bytes would take half an hour of verify runs).
        for at in (0..original.len()).step_by(127) {
            let mut bad = original.clone();
            bad[at] ^= 0x01;
            std::fs::write(seg, &bad).unwrap();
            if intact(&data, &pk) {
                let same = decoded(&data).as_ref() == Some(&baseline);
                assert!(
                    same,
                    "{} byte {at}: verify passed but the records changed",
                    seg.display()
                );
                silent_identical += 1;
            } else {
                detected += 1;
            }
        }
        std::fs::write(seg, &original).unwrap();
    }
    assert!(intact(&data, &pk));
    assert!(detected > 0);
    println!("byte flips: {detected} detected, {silent_identical} left the records identical");
}
