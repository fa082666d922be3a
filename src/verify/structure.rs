//! Per-segment checks that need no walk over the records: the file opens, SQLite's own check,
//! the schema exactly, the meta and close rows, the streams table, the range of stored
//! sequence numbers, and the hash of a closed file.
//!
//! Owns: [`Scan`], what the later steps need to know about one segment.
//!
//! Must not: write, or open a file other than read-only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::report::{At, Finding, Kind};
use crate::store::Hash;
use crate::store::audit::{
    self, APPLICATION_ID, AuditError, Meta, RecoveredCopy, SCHEMA_VERSION, SchemaObject,
    SegmentFile,
};

/// What is known about one segment after its structural checks.
#[derive(Debug)]
pub(crate) struct Scan {
    pub at: At,
    /// The file read: the listed one, or a recovered private copy of it.
    pub path: PathBuf,
    /// The file as listed in `segments/` (whether it is still there tells a removal).
    pub listed: PathBuf,
    pub bytes: u64,
    /// Present when the meta row could be read.
    pub meta: Option<Meta>,
    /// `(count, end_head)` of the close row, when the segment is closed.
    pub close: Option<(u64, Hash)>,
    /// `file_blake3` of a closed segment's file.
    pub file_hash: Option<Hash>,
    /// Merkle root recomputed from the records, when the walk read every one in order.
    pub merkle_root: Option<Hash>,
    /// Stream id of each labels section in the streams table.
    pub streams: Arc<HashMap<Vec<u8>, i64>>,
    /// Smallest and largest stored seq, and the number of records, if any.
    pub seqs: Option<(u64, u64, u64)>,
    /// Stored head of the largest seq.
    pub last_head: Option<Hash>,
    pub findings: Vec<Finding>,
    /// Facts worth reporting that are not breaks.
    pub notes: Vec<String>,
    /// A private copy whose WAL was recovered; `path` points into it while it lives.
    pub recovered: Option<RecoveredCopy>,
    /// Whether `quick_check` already ran (while probing for recovery).
    pub quick_checked: bool,
}

impl Scan {
    /// Whether the records can be walked: the file reads and has a meta row.
    pub fn walkable(&self) -> bool {
        self.meta.is_some()
            && !self
                .findings
                .iter()
                .any(|f| matches!(f.kind, Kind::Corrupt | Kind::SchemaChanged))
    }
}

pub(crate) fn scan(index: u64, path: &std::path::Path) -> Scan {
    let at = At {
        segment: audit::file_name(index),
        segment_index: index,
    };
    let mut scan = Scan {
        at,
        path: path.to_owned(),
        listed: path.to_owned(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        meta: None,
        close: None,
        file_hash: None,
        merkle_root: None,
        streams: Arc::default(),
        seqs: None,
        last_head: None,
        findings: Vec::new(),
        notes: Vec::new(),
        recovered: None,
        quick_checked: false,
    };
    // A file with a WAL or journal beside it is read once up front: if SQLite must recover
    // it first, verify switches to a recovered private copy.
    let probe = has_sidecar(path).then(|| probe(path));
    if let Some(Err(e)) = &probe
        && e.needs_recovery(path)
    {
        match audit::recover_copy(path) {
            Ok(copy) => {
                scan.path = copy.path.clone();
                scan.recovered = Some(copy);
                let note = format!(
                    "{}: its WAL or journal needed recovery (the writer stopped mid-way); verified a recovered private copy",
                    scan.at.segment
                );
                scan.notes.push(note);
            }
            Err(detail) => {
                let f = scan
                    .at
                    .finding(Kind::Corrupt, None, "file", "a readable segment", detail);
                scan.findings.push(f);
                return scan;
            }
        }
    }
    if let Some(Ok(verdict)) = &probe {
        scan.quick_checked = true;
        if verdict != "ok" {
            let f = scan.at.finding(
                Kind::Corrupt,
                None,
                "file",
                "quick_check ok",
                format!("quick_check: {verdict}"),
            );
            scan.findings.push(f);
        }
    }
    if let Err(detail) = check(&mut scan) {
        let f = scan
            .at
            .finding(Kind::Corrupt, None, "file", "a readable segment", detail);
        scan.findings.push(f);
    }
    scan
}

fn has_sidecar(path: &std::path::Path) -> bool {
    ["-wal", "-journal"]
        .iter()
        .any(|s| std::path::Path::new(&format!("{}{s}", path.display())).exists())
}

/// Opens the file read-only and runs SQLite's own check, which reads every page: what shows
/// whether a WAL or journal needs recovery first.
fn probe(path: &std::path::Path) -> Result<String, AuditError> {
    SegmentFile::open(path)?.quick_check()
}

/// SQLite's own O(N) check of a segment file (pages, records, index order); `Some` describes
/// a failure. Run as a task of its own, beside the record walk.
pub(crate) fn quick_check(path: &std::path::Path) -> Option<String> {
    match probe(path) {
        Ok(v) if v == "ok" => None,
        Ok(v) => Some(format!("quick_check: {v}")),
        Err(e) => Some(format!("quick_check: {e}")),
    }
}

/// Runs the cheap checks in order; an `Err` is a SQLite failure that makes the file unreadable.
fn check(scan: &mut Scan) -> Result<(), String> {
    let file = SegmentFile::open(&scan.path).map_err(|e| format!("open: {e}"))?;
    if !check_schema(scan, &file)? {
        return Ok(());
    }
    scan.meta = check_meta(scan, &file)?;
    check_close(scan, &file)?;
    check_streams(scan, &file)?;
    scan.seqs = file.seq_range().map_err(|e| format!("read blocks: {e}"))?;
    if scan.seqs.is_some() {
        scan.last_head = file.last_head();
    }
    check_range(scan);
    if scan.close.is_some() && !audit::is_read_only(&scan.path).unwrap_or(false) {
        let note = format!(
            "{} is closed but writable (closing makes it read-only)",
            scan.at.segment
        );
        scan.notes.push(note);
    }
    Ok(())
}

/// Application id, version and every schema object, exactly. Returns whether the rest of the
/// checks can run (the schema is the expected one).
fn check_schema(scan: &mut Scan, file: &SegmentFile) -> Result<bool, String> {
    let app = file
        .application_id()
        .map_err(|e| format!("application_id: {e}"))?;
    let version = file
        .user_version()
        .map_err(|e| format!("user_version: {e}"))?;
    if app != APPLICATION_ID {
        let f = scan.at.finding(
            Kind::SchemaChanged,
            None,
            "application_id",
            APPLICATION_ID,
            app,
        );
        scan.findings.push(f);
        return Ok(false);
    }
    let closed = file.is_closed().unwrap_or(false);
    let Some(expected) = audit::expected_objects(version, closed) else {
        let f = scan.at.finding(
            Kind::SchemaChanged,
            None,
            "user_version",
            SCHEMA_VERSION,
            version,
        );
        scan.findings.push(f);
        return Ok(false);
    };
    let found = file
        .schema_objects()
        .map_err(|e| format!("read schema: {e}"))?;
    if found == expected {
        return Ok(true);
    }
    let extra = found.iter().find(|o| !expected.contains(o));
    let missing = expected.iter().find(|o| !found.contains(o));
    let describe = |o: Option<&SchemaObject>| {
        o.map(|o| {
            format!(
                "{} {} ({})",
                o.kind,
                o.name,
                o.sql.as_deref().unwrap_or("-")
            )
        })
        .unwrap_or_else(|| "nothing".into())
    };
    let f = scan.at.finding(
        Kind::SchemaChanged,
        None,
        "sqlite_master",
        describe(missing),
        describe(extra),
    );
    scan.findings.push(f);
    Ok(false)
}

fn check_meta(scan: &mut Scan, file: &SegmentFile) -> Result<Option<Meta>, String> {
    let rows = file.meta_rows().map_err(|e| format!("read meta: {e}"))?;
    let meta = match file.meta() {
        Ok(m) => m,
        Err(e) => {
            let f = scan
                .at
                .finding(Kind::Modified, None, "meta", "a well-formed meta row", e);
            scan.findings.push(f);
            return Ok(None);
        }
    };
    if rows != 1 {
        let kind = if rows > 1 {
            Kind::Inserted
        } else {
            Kind::Deleted
        };
        let f = scan.at.finding(kind, None, "meta rows", 1, rows);
        scan.findings.push(f);
    }
    let Some(meta) = meta else { return Ok(None) };
    let version = file
        .user_version()
        .map_err(|e| format!("user_version: {e}"))?;
    if meta.schema_version != version {
        let f = scan.at.finding(
            Kind::Modified,
            None,
            "meta.schema_version",
            version,
            meta.schema_version,
        );
        scan.findings.push(f);
    }
    if meta.segment_index != scan.at.segment_index {
        let what = "meta.segment_index (the file holds another segment)";
        let f = scan.at.finding(
            Kind::SegmentReplaced,
            None,
            what,
            scan.at.segment_index,
            meta.segment_index,
        );
        scan.findings.push(f);
    }
    if meta.prev_seal != [0; 32] {
        let f = scan.at.finding(
            Kind::Modified,
            None,
            "meta.prev_seal",
            hex::encode([0; 32]),
            hex::encode(meta.prev_seal),
        );
        scan.findings.push(f);
    }
    Ok(Some(meta))
}

fn check_close(scan: &mut Scan, file: &SegmentFile) -> Result<(), String> {
    let rows = file.close_rows().map_err(|e| format!("read close: {e}"))?;
    match rows.as_slice() {
        [] => {}
        [(_, count, Ok(head))] if *count >= 0 => scan.close = Some((*count as u64, *head)),
        [(_, count, head)] => {
            let found = format!("count {count}, end_head {head:?}");
            let f = scan.at.finding(
                Kind::Modified,
                None,
                "close",
                "a well-formed close row",
                found,
            );
            scan.findings.push(f);
        }
        more => {
            let f = scan
                .at
                .finding(Kind::Inserted, None, "close rows", "at most 1", more.len());
            scan.findings.push(f);
        }
    }
    Ok(())
}

/// Loads the streams table; reports streams no block refers to, and block_streams rows for
/// blocks that do not exist. (Each block's own rows are checked during the walk.)
fn check_streams(scan: &mut Scan, file: &SegmentFile) -> Result<(), String> {
    let streams = file.streams().map_err(|e| format!("read streams: {e}"))?;
    let unused = file
        .unused_stream()
        .map_err(|e| format!("read streams: {e}"))?;
    if let Some(id) = unused {
        let what = "streams (a stream no block holds)";
        let f = scan.at.finding(
            Kind::Inserted,
            None,
            what,
            "no such row",
            format!("stream id {id}"),
        );
        scan.findings.push(f);
    }
    let orphan = file
        .orphan_block_streams()
        .map_err(|e| format!("read block_streams: {e}"))?;
    if let Some(first) = orphan {
        let what = "block_streams (a row for a block that does not exist)";
        let f = scan.at.finding(
            Kind::Inserted,
            Some(first.max(0) as u64),
            what,
            "no such row",
            format!("first_seq {first}"),
        );
        scan.findings.push(f);
    }
    scan.streams = Arc::new(streams);
    Ok(())
}

/// Rows outside the segment's range: before its first_seq, or past its close row's count.
fn check_range(scan: &mut Scan) {
    let (Some(meta), Some((min, max, _))) = (&scan.meta, scan.seqs) else {
        if let (Some(meta), Some((count, _))) = (&scan.meta, scan.close)
            && count > 0
        {
            let f = scan.at.finding(
                Kind::Deleted,
                Some(meta.first_seq),
                "blocks",
                format!("{count} records"),
                0,
            );
            scan.findings.push(f);
        }
        return;
    };
    if min < meta.first_seq {
        let f = scan.at.finding(
            Kind::Inserted,
            Some(min),
            "blocks (before the segment's first_seq)",
            meta.first_seq,
            min,
        );
        scan.findings.push(f);
    }
    if let Some((count, end_head)) = scan.close {
        let end = meta.first_seq + count;
        if max >= end {
            let f = scan.at.finding(
                Kind::Inserted,
                Some(end),
                "blocks (after the close row's count)",
                count,
                max + 1 - meta.first_seq,
            );
            scan.findings.push(f);
        } else if max + 1 < end {
            let f = scan.at.finding(
                Kind::Deleted,
                Some(max + 1),
                "blocks (the segment's tail)",
                count,
                max + 1 - meta.first_seq,
            );
            scan.findings.push(f);
        } else if scan.last_head != Some(end_head) {
            let found = scan.last_head.map(hex::encode).unwrap_or_default();
            let f = scan.at.finding(
                Kind::Modified,
                Some(max),
                "close.end_head",
                hex::encode(end_head),
                found,
            );
            scan.findings.push(f);
        }
    }
}
