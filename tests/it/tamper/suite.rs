// The tamper suite for one segment layout: `FORMAT` (1 or 2) is defined by the module that
// includes this file (see mod.rs).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{Verdict, open_rw, segment_files, verify};
use rusqlite::params;

/// Segment size of the fixture: small, so that it has several closed segments (v2 blocks are
/// compressed, so its segments hold more in fewer bytes).
const SEGMENT_BYTES: u64 = if FORMAT == 1 { 256 * 1024 } else { 64 * 1024 };

/// The columns of a block beside its placement and time figures, as stored.
const PAYLOAD: &str = if FORMAT == 1 {
    "records, heads"
} else {
    "raw_bytes, end_head, summary, columns, tokens, records"
};
const PER_BATCH: usize = 200;

/// The untouched ledger every test copies: several closed segments and an open one, each
/// block one batch of `PER_BATCH` records.
fn base() -> &'static Path {
    &fixture().0
}

/// Batches in the fixture.
fn batches() -> usize {
    fixture().1
}

/// Appends batches until there are 4 segments and the open one has 2 blocks.
fn fixture() -> &'static (PathBuf, usize) {
    static BASE: OnceLock<(PathBuf, usize)> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tamper-base-v{FORMAT}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = common::small_config(&dir, SEGMENT_BYTES);
        cfg.segment_format = FORMAT;
        let (ledger, appender, _reader) = daftari::store::open(cfg).unwrap();
        let mut n = 0;
        while n < 200 {
            let b = common::batch("host-a", &format!("b{n}"), PER_BATCH);
            appender.append_blocking(b).unwrap();
            n += 1;
            let files = segment_files(&dir);
            if files.len() >= 4 && blocks(files.last().unwrap()).len() >= 2 {
                break;
            }
        }
        ledger.close().unwrap();
        let v = verify(&dir);
        assert_eq!(v.code, 0, "the untouched fixture must verify: {:?}", v.json);
        let files = segment_files(&dir);
        assert!(
            files.len() >= 4,
            "fixture needs 4+ segments, has {}",
            files.len()
        );
        assert!(
            blocks(files.last().unwrap()).len() >= 2,
            "the open segment needs 2+ blocks"
        );
        (dir, n)
    })
}

/// A fresh copy of the fixture, changed by `mutate`, then verified.
fn tampered(mutate: impl FnOnce(&Path)) -> Verdict {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::copy_dir(base(), &data);
    mutate(&data);
    let v = verify(&data);
    drop(tmp);
    v
}

/// `(first_seq, count)` of every block of a segment file.
fn blocks(path: &Path) -> Vec<(i64, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT first_seq, count FROM blocks ORDER BY first_seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The middle closed segment (index 1), and the first_seq of its second block.
fn middle(data: &Path) -> (PathBuf, i64) {
    let path = segment_files(data)[1].clone();
    let first = blocks(&path)[1].0;
    (path, first)
}

fn name(i: usize) -> String {
    format!("seg-{i:012}.sqlite")
}

#[track_caller]
fn assert_break(v: &Verdict, segment: &str, seq: Option<i64>, kind: Option<&str>) {
    assert_eq!(
        v.code, 1,
        "verify must report a break; stderr: {} json: {}",
        v.stderr, v.json
    );
    let first = v.first_break();
    assert_eq!(first["segment"], segment, "first break: {first}");
    if let Some(seq) = seq {
        assert_eq!(first["seq"], seq, "first break: {first}");
    }
    if let Some(kind) = kind {
        assert_eq!(first["kind"], kind, "first break: {first}");
    }
}

/// Runs `sql` on the middle segment with `?1` bound to the chosen block's first_seq.
fn on_middle_block(sql: &str) -> (Verdict, i64) {
    let mut first = 0;
    let v = tampered(|d| {
        let (path, f) = middle(d);
        first = f;
        open_rw(&path).execute(sql, [f]).unwrap();
    });
    (v, first)
}

#[test]
fn the_untouched_fixture_verifies_intact() {
    let v = verify(base());
    assert_eq!(v.code, 0);
    assert_eq!(v.json["verdict"], "intact");
    assert_eq!(v.json["entries"], (batches() * PER_BATCH) as u64);
    assert!(v.json["first_break"].is_null());
}

#[test]
fn every_column_of_a_block_is_covered() {
    for (column, sql, at_record) in [
        (
            "first_seq",
            "UPDATE blocks SET first_seq = first_seq + 1 WHERE first_seq = ?1",
            0,
        ),
        (
            "count",
            "UPDATE blocks SET count = count - 1 WHERE first_seq = ?1",
            0,
        ),
        (
            "recv_ns",
            "UPDATE blocks SET recv_ns = recv_ns + 1 WHERE first_seq = ?1",
            0,
        ),
        (
            "min_ts_ns",
            "UPDATE blocks SET min_ts_ns = min_ts_ns - 1 WHERE first_seq = ?1",
            0,
        ),
        (
            "max_ts_ns",
            "UPDATE blocks SET max_ts_ns = max_ts_ns + 1 WHERE first_seq = ?1",
            0,
        ),
        // v1: one byte of the 4th record's line; v2: a byte in the compressed frame, which
        // only the block as a whole can be blamed for.
        ("records", "", if FORMAT == 1 { 3 } else { 0 }),
        // v1: one byte of the 6th head.
        ("heads", "", 5),
        // v2: the derived columns, each changed in turn.
        (
            "raw_bytes",
            "UPDATE blocks SET raw_bytes = raw_bytes + 1 WHERE first_seq = ?1",
            0,
        ),
        ("end_head", "", 0),
        ("summary", "", 0),
        ("columns", "", 0),
        ("tokens", "", 0),
    ] {
        let v1_only = matches!(column, "heads");
        let v2_only = matches!(
            column,
            "raw_bytes" | "end_head" | "summary" | "columns" | "tokens"
        );
        if (FORMAT == 1 && v2_only) || (FORMAT == 2 && v1_only) {
            continue;
        }
        let (v, first) = match column {
            "records" if FORMAT == 1 => flip_record_byte(3),
            "records" | "summary" | "columns" | "tokens" => {
                flip_blob_byte(column, |b| b.len() / 2)
            }
            "heads" => flip_head_byte(5),
            "end_head" => flip_blob_byte(column, |_| 7),
            _ => on_middle_block(sql),
        };
        assert_break(&v, &name(1), Some(first + at_record), None);
        let kind = if column == "first_seq" {
            "deleted"
        } else {
            "modified"
        };
        assert_eq!(
            v.first_break()["kind"],
            kind,
            "column {column}: {}",
            v.first_break()
        );
    }
}

/// Changes the last byte of record `k` of the middle segment's chosen block.
fn flip_record_byte(k: usize) -> (Verdict, i64) {
    flip_blob_byte("records", |blob| {
        let mut pos = 0;
        for _ in 0..=k {
            let len = u32::from_be_bytes(blob[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4 + len;
        }
        pos - 1
    })
}

/// Changes the first byte of head `k` of the middle segment's chosen block.
fn flip_head_byte(k: usize) -> (Verdict, i64) {
    flip_blob_byte("heads", |_| 32 * k)
}

/// Flips one bit of `column` of the middle segment's chosen block, at the offset `at` picks.
fn flip_blob_byte(column: &str, at: impl Fn(&[u8]) -> usize) -> (Verdict, i64) {
    let mut first = 0;
    let v = tampered(|d| {
        let (path, f) = middle(d);
        first = f;
        let conn = open_rw(&path);
        let select = format!("SELECT {column} FROM blocks WHERE first_seq = ?1");
        let mut blob: Vec<u8> = conn.query_row(&select, [f], |r| r.get(0)).unwrap();
        let pos = at(&blob);
        blob[pos] ^= 0x01;
        let update = format!("UPDATE blocks SET {column} = ?2 WHERE first_seq = ?1");
        conn.execute(&update, params![f, blob]).unwrap();
    });
    (v, first)
}

#[test]
fn every_column_of_block_streams_is_covered() {
    for column in ["first_seq", "stream_id", "count", "min_ts_ns", "max_ts_ns"] {
        let sql = match column {
            "first_seq" => "UPDATE block_streams SET first_seq = first_seq + 1 WHERE first_seq = ?1 AND stream_id = (SELECT min(stream_id) FROM block_streams WHERE first_seq = ?1)".to_owned(),
            "stream_id" => "UPDATE block_streams SET stream_id = stream_id + 1000 WHERE first_seq = ?1 AND stream_id = (SELECT min(stream_id) FROM block_streams WHERE first_seq = ?1)".to_owned(),
            c => format!("UPDATE block_streams SET {c} = {c} + 1 WHERE first_seq = ?1 AND stream_id = (SELECT min(stream_id) FROM block_streams WHERE first_seq = ?1)"),
        };
        let (v, first) = on_middle_block(&sql);
        assert_break(&v, &name(1), Some(first), Some("modified"));
    }
}

#[test]
fn every_column_of_streams_is_covered() {
    // The stream of the middle segment's first record.
    for (column, sql) in [
        (
            "labels",
            "UPDATE streams SET labels = CAST(labels || x'00' AS BLOB) WHERE id = 1",
        ),
        ("id", "UPDATE streams SET id = 1000 WHERE id = 1"),
    ] {
        let mut first = 0;
        let v = tampered(|d| {
            let path = segment_files(d)[1].clone();
            first = blocks(&path)[0].0;
            open_rw(&path).execute(sql, []).unwrap();
        });
        assert_break(&v, &name(1), Some(first), Some("modified"));
        assert!(!v.kinds().is_empty(), "{column}");
    }
}

#[test]
fn every_column_of_meta_is_covered() {
    for column in [
        "schema_version",
        "origin",
        "log_id",
        "segment_index",
        "first_seq",
        "prev_head",
        "prev_file_hash",
        "prev_seal",
    ] {
        let value = match column {
            "origin" => "'elsewhere'".to_owned(),
            "log_id" => "x'00000000000000000000000000000000'".to_owned(),
            "prev_head" | "prev_file_hash" | "prev_seal" => {
                "CAST(zeroblob(31) || x'01' AS BLOB)".to_owned()
            }
            c => format!("{c} + 1"),
        };
        let v = tampered(|d| {
            let path = segment_files(d)[2].clone();
            open_rw(&path)
                .execute(&format!("UPDATE meta SET {column} = {value}"), [])
                .unwrap();
        });
        // The hash recorded in segment 2 is of segment 1's file: the mismatch names that file.
        let at = if column == "prev_file_hash" { 1 } else { 2 };
        assert_break(&v, &name(at), None, None);
        assert!(!v.kinds().is_empty(), "{column}");
    }
}

#[test]
fn every_column_of_the_close_row_is_covered() {
    for sql in [
        "UPDATE close SET count = count + 1",
        "UPDATE close SET end_head = zeroblob(32)",
    ] {
        let v = tampered(|d| {
            open_rw(&segment_files(d)[1]).execute(sql, []).unwrap();
        });
        assert_break(&v, &name(1), None, None);
    }
}

#[test]
fn a_deleted_block_is_reported_at_its_first_seq() {
    let (v, first) = on_middle_block("DELETE FROM blocks WHERE first_seq = ?1");
    assert_break(&v, &name(1), Some(first), Some("deleted"));
}

#[test]
fn a_deleted_last_block_of_a_closed_segment_is_reported() {
    let mut last = 0;
    let v = tampered(|d| {
        let path = segment_files(d)[1].clone();
        last = blocks(&path).last().unwrap().0;
        open_rw(&path)
            .execute("DELETE FROM blocks WHERE first_seq = ?1", [last])
            .unwrap();
    });
    assert_break(&v, &name(1), Some(last), Some("deleted"));
}

#[test]
fn an_inserted_block_past_a_closed_segment_is_reported() {
    let mut end = 0;
    let v = tampered(|d| {
        let path = segment_files(d)[1].clone();
        let (f, n) = *blocks(&path).last().unwrap();
        end = f + n;
        let conn = open_rw(&path);
        conn.execute(
            &format!(
                "INSERT INTO blocks SELECT ?1, count, recv_ns, min_ts_ns, max_ts_ns, {} \
                 FROM blocks WHERE first_seq = ?2",
                PAYLOAD.replace("records", "randomblob(length(records))")
            ),
            [end, f],
        )
        .unwrap();
    });
    assert_break(&v, &name(1), Some(end), Some("inserted"));
}

#[test]
fn swapped_block_contents_are_reported_as_reordered() {
    let mut first = 0;
    let v = tampered(|d| {
        let (path, f) = middle(d);
        first = f;
        let g = f + PER_BATCH as i64;
        let conn = open_rw(&path);
        let columns: Vec<&str> = PAYLOAD.split(", ").collect();
        let read = |s: i64| -> Vec<rusqlite::types::Value> {
            let sql = format!("SELECT {PAYLOAD} FROM blocks WHERE first_seq = ?1");
            conn.query_row(&sql, [s], |r| (0..columns.len()).map(|i| r.get(i)).collect())
                .unwrap()
        };
        let (a, b) = (read(f), read(g));
        for (s, values) in [(f, b), (g, a)] {
            for (column, value) in columns.iter().zip(values) {
                let sql = format!("UPDATE blocks SET {column} = ?2 WHERE first_seq = ?1");
                conn.execute(&sql, params![s, value]).unwrap();
            }
        }
    });
    assert_break(&v, &name(1), Some(first), Some("reordered"));
}

#[test]
fn a_duplicated_block_is_reported_as_duplicated() {
    let mut end = 0;
    let v = tampered(|d| {
        let path = segment_files(d).last().unwrap().clone();
        let (f, n) = *blocks(&path).last().unwrap();
        end = f + n;
        open_rw(&path)
            .execute(
                &format!(
                    "INSERT INTO blocks SELECT ?1, count, recv_ns, min_ts_ns, max_ts_ns, \
                     {PAYLOAD} FROM blocks WHERE first_seq = ?2"
                ),
                [end, f],
            )
            .unwrap();
    });
    let last = segment_files(base()).len() - 1;
    assert_break(&v, &name(last), Some(end), Some("duplicated"));
}

#[test]
fn added_schema_objects_are_reported() {
    for ddl in [
        "CREATE TABLE shadow (x)",
        "CREATE TRIGGER hide BEFORE INSERT ON blocks BEGIN SELECT 1; END",
        "CREATE VIEW v AS SELECT * FROM blocks",
        "CREATE INDEX extra ON blocks (recv_ns)",
    ] {
        let v = tampered(|d| {
            open_rw(&segment_files(d)[2]).execute_batch(ddl).unwrap();
        });
        assert_break(&v, &name(2), None, Some("schema_changed"));
    }
}

#[test]
fn a_deleted_segment_file_is_reported_missing() {
    for i in [0usize, 2] {
        let v = tampered(|d| std::fs::remove_file(&segment_files(d)[i]).unwrap());
        assert_break(&v, &name(i), None, Some("segment_missing"));
    }
}

#[test]
fn a_renamed_segment_file_is_reported() {
    let v = tampered(|d| {
        let files = segment_files(d);
        std::fs::rename(&files[1], d.join("segments").join(name(files.len() + 5))).unwrap();
    });
    assert_break(&v, &name(1), None, Some("segment_missing"));
    assert!(
        v.kinds().contains(&"segment_replaced".to_owned()),
        "{:?}",
        v.kinds()
    );
}

#[test]
fn swapped_segment_files_are_reported() {
    let v = tampered(|d| {
        let files = segment_files(d);
        let tmp = d.join("swap");
        std::fs::rename(&files[1], &tmp).unwrap();
        std::fs::rename(&files[2], &files[1]).unwrap();
        std::fs::rename(&tmp, &files[2]).unwrap();
    });
    assert_break(&v, &name(1), None, Some("segment_replaced"));
}

#[test]
fn a_truncated_last_segment_is_reported() {
    let last = segment_files(base()).len() - 1;
    for keep in [0.5, 0.0] {
        let v = tampered(|d| {
            let path = segment_files(d).last().unwrap().clone();
            let len = std::fs::metadata(&path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len((len as f64 * keep) as u64).unwrap();
        });
        assert_break(&v, &name(last), None, None);
    }
}

#[test]
fn a_changed_byte_in_a_closed_file_outside_the_records_is_reported() {
    // Free space in the file header region that SQLite does not read: only the file hash sees it.
    let v = tampered(|d| {
        use std::io::{Seek, SeekFrom, Write};
        let path = segment_files(d)[1].clone();
        common::open_rw(&path);
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(72)).unwrap(); // reserved-for-expansion bytes of the header
        f.write_all(&[0xff]).unwrap();
    });
    assert_break(&v, &name(1), None, Some("modified"));
    assert!(
        v.json["notes"].to_string().contains("closed but writable"),
        "{}",
        v.json["notes"]
    );
}
