//! Read-only access to the ledger, for queries, exports and tests.
//!
//! Owns: [`Reader`], which opens segment files with `SQLITE_OPEN_READ_ONLY` (closed ones also
//! `immutable`) and returns decoded records.
//!
//! Must not: open anything writable, or trust a stored column over the record it derives from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::params;

use super::block;
use super::chain::{self, Record};
use super::error::StoreError;
use super::index::StreamIndex;
use super::segment::{self, Meta};

/// One segment as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub meta: Meta,
    /// Records stored (a snapshot for the open segment).
    pub count: u64,
    pub closed: bool,
}

/// A read-only view of the ledger. Cheap to clone; every call opens its own connections.
#[derive(Debug, Clone)]
pub struct Reader {
    data_dir: PathBuf,
    /// The writer's live index when the ledger is open; `None` for an offline reader, which
    /// builds one from the files when a scan needs it.
    index: Option<Arc<StreamIndex>>,
}

impl Reader {
    /// An offline reader of the files under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            index: None,
        }
    }

    /// A reader that shares the open ledger's stream index.
    pub(crate) fn with_index(data_dir: &Path, index: Arc<StreamIndex>) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            index: Some(index),
        }
    }

    /// The stream index: the live one, or one built now from the files.
    pub fn index(&self) -> Result<Arc<StreamIndex>, StoreError> {
        match &self.index {
            Some(i) => Ok(Arc::clone(i)),
            None => Ok(Arc::new(StreamIndex::build(&super::segments_dir(
                &self.data_dir,
            ))?)),
        }
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentInfo>, StoreError> {
        let dir = super::segments_dir(&self.data_dir);
        let mut out = Vec::new();
        for (_, path) in segment::list(&dir)? {
            let conn = segment::open_read_only(&path)
                .map_err(StoreError::sqlite("open segment", &path))?;
            let meta = segment::read_meta(&conn)
                .map_err(StoreError::sqlite("read meta", &path))?
                .ok_or_else(|| StoreError::Corrupt {
                    path: path.clone(),
                    detail: "no meta row".into(),
                })?;
            let count: i64 = conn
                .query_row("SELECT coalesce(sum(count), 0) FROM blocks", [], |r| {
                    r.get(0)
                })
                .map_err(StoreError::sqlite("count records", &path))?;
            let closed =
                segment::is_closed(&conn).map_err(StoreError::sqlite("read close row", &path))?;
            out.push(SegmentInfo {
                path,
                meta,
                count: count as u64,
                closed,
            });
        }
        Ok(out)
    }

    /// Up to `max` records from sequence number `from` on, in order.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<Record>, StoreError> {
        let segments = self.segments()?;
        let mut out = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            let next_first = segments.get(i + 1).map(|s| s.meta.first_seq);
            if next_first.is_some_and(|n| n <= from) || out.len() >= max {
                continue;
            }
            let start = from.max(seg.meta.first_seq);
            read_segment(&seg.path, start, max, &mut out)?;
        }
        Ok(out)
    }
}

impl Reader {
    /// Up to `max` records from `from` on, opening only the segments that hold them (found
    /// through the stream index): for following the log as it grows.
    pub fn read_since(&self, from: u64, max: usize) -> Result<Vec<Record>, StoreError> {
        let index = self.index()?;
        let mut out = Vec::new();
        if from >= index.next_seq() {
            return Ok(out);
        }
        for (first_seq, path) in index.segments_from(from) {
            if out.len() >= max {
                break;
            }
            read_segment(&path, from.max(first_seq), max, &mut out)?;
        }
        Ok(out)
    }
}

/// Appends the records of `path` from `from` on to `out` until `out` holds `max`.
fn read_segment(
    path: &Path,
    from: u64,
    max: usize,
    out: &mut Vec<Record>,
) -> Result<(), StoreError> {
    let conn = segment::open_read_only(path).map_err(StoreError::sqlite("open segment", path))?;
    each_record(&conn, path, from, |canon| {
        let record = chain::decode(canon)
            .and_then(|v| v.to_record())
            .map_err(|e| format!("undecodable record: {e}"))?;
        if record.seq >= from {
            out.push(record);
        }
        Ok(out.len() < max)
    })
}

/// Calls `f` with the bytes of every record of the blocks that reach `from` or later, in
/// sequence order, until it returns `false`.
pub(crate) fn each_record(
    conn: &rusqlite::Connection,
    path: &Path,
    from: u64,
    mut f: impl FnMut(&[u8]) -> Result<bool, String>,
) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.into(),
        detail,
    };
    let layout = segment::layout(conn).map_err(StoreError::sqlite("read records", path))?;
    let sql = format!(
        "SELECT {} FROM blocks WHERE first_seq + count > ?1 ORDER BY first_seq",
        layout.records_columns()
    );
    let mut stmt = conn
        .prepare(&sql)
        .map_err(StoreError::sqlite("read records", path))?;
    let mut rows = stmt
        .query(params![from as i64])
        .map_err(StoreError::sqlite("read records", path))?;
    while let Some(row) = rows
        .next()
        .map_err(StoreError::sqlite("read records", path))?
    {
        let stored = row
            .get_ref(0)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(StoreError::sqlite("read records", path))?;
        let raw_bytes = row
            .get(1)
            .map_err(StoreError::sqlite("read records", path))?;
        let blob = block::unpack(layout, stored, raw_bytes).map_err(corrupt)?;
        for canon in block::records(&blob) {
            let canon =
                canon.map_err(|at| corrupt(format!("block framing breaks at byte {at}")))?;
            if !f(canon).map_err(corrupt)? {
                return Ok(());
            }
        }
    }
    Ok(())
}
