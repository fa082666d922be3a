//! Read-only access to segment files for the offline audit and for proofs: every question
//! `verify` asks a segment file, answered in plain data.
//!
//! Owns: [`SegmentFile`], one segment opened read-only (closed segments `immutable`), with a
//! method per fact the audit checks (the schema as stored, the meta and close rows, the
//! streams table, the blocks in a range, a stored head); [`AuditError`], a failed read; and
//! [`RecoveredCopy`], a private copy of a crashed segment whose WAL SQLite had to replay.
//!
//! Must not: write to a segment, or hand out a connection, a row or any other `rusqlite`
//! type: the SQL of the segment schema stays inside `store/`, so a schema change touches one
//! module.

mod recover;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

pub use super::block::StreamSpan;
pub use super::schema::{APPLICATION_ID, SCHEMA_VERSION, SchemaObject, expected_objects};
pub use super::segment::{Meta, file_hash, file_name, is_read_only};
pub use super::segment_files;
pub use recover::RecoveredCopy;

use super::block::Layout;
use super::chain::{self, Hash};
use super::{block, schema, segment};

/// A read of a segment file failed (SQLite's message, as it gave it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(rusqlite::Error);

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError(e)
    }
}

impl AuditError {
    /// Whether this failure to read `path` read-only means a WAL or journal beside it needs
    /// recovery first (see [`recover_copy`]).
    pub fn needs_recovery(&self, path: &Path) -> bool {
        recover::needs_recovery(path, &self.0)
    }
}

/// Copies `path` and its WAL or journal to a private directory and lets SQLite recover the
/// copy; the original is only read.
pub fn recover_copy(path: &Path) -> Result<RecoveredCopy, String> {
    recover::recover_copy(path)
}

/// One stored `close` row, its end head as a hash if it is one.
pub type CloseRow = (i64, i64, Result<Hash, String>);

/// One `blocks` row as stored, borrowed for the length of a callback.
#[derive(Debug)]
pub struct BlockRow<'a> {
    pub first_seq: u64,
    pub count: i64,
    pub recv_ns: i64,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
    /// The records as stored (raw for v1, one compressed frame for v2).
    pub records: &'a [u8],
    pub stored: Stored<'a>,
}

/// The columns of a `blocks` row that depend on the segment's layout.
#[derive(Debug)]
pub enum Stored<'a> {
    V1 {
        heads: &'a [u8],
    },
    V2 {
        raw_bytes: i64,
        end_head: &'a [u8],
        summary: &'a [u8],
        columns: &'a [u8],
        tokens: &'a [u8],
    },
}

impl BlockRow<'_> {
    /// The raw records, decompressed if need be; `Err` says why they cannot be had.
    pub fn raw_records(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match self.stored {
            Stored::V1 { .. } => block::unpack(Layout::V1, self.records, 0),
            Stored::V2 { raw_bytes, .. } => block::unpack(Layout::V2, self.records, raw_bytes),
        }
    }
}

/// A segment file opened for reading only.
#[derive(Debug)]
pub struct SegmentFile {
    conn: Connection,
    /// From the stored schema version; v1 for a version verify does not know (the structure
    /// check reports that).
    layout: Layout,
}

impl SegmentFile {
    /// Opens `path` read-only (a closed, read-only file also `immutable`, which needs no lock
    /// and no `-shm`, so copies on read-only media open too).
    pub fn open(path: &Path) -> Result<SegmentFile, AuditError> {
        let conn = segment::open_read_only(path)?;
        let layout = segment::layout(&conn).unwrap_or(Layout::V1);
        Ok(SegmentFile { conn, layout })
    }

    /// How this segment stores its blocks.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// SQLite's own check of every page: `"ok"` or its first complaint.
    pub fn quick_check(&self) -> Result<String, AuditError> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))?)
    }

    pub fn application_id(&self) -> Result<i32, AuditError> {
        Ok(self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))?)
    }

    pub fn user_version(&self) -> Result<u32, AuditError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Every object of the stored schema.
    pub fn schema_objects(&self) -> Result<Vec<SchemaObject>, AuditError> {
        Ok(schema::objects(&self.conn)?)
    }

    /// How many rows the meta table holds (exactly one is expected).
    pub fn meta_rows(&self) -> Result<i64, AuditError> {
        self.count("SELECT count(*) FROM meta")
    }

    /// The meta row, `None` if there is none.
    pub fn meta(&self) -> Result<Option<Meta>, AuditError> {
        Ok(segment::read_meta(&self.conn)?)
    }

    /// Whether the segment has a close row (is logically closed).
    pub fn is_closed(&self) -> Result<bool, AuditError> {
        Ok(segment::is_closed(&self.conn)?)
    }

    /// Every stored close row.
    pub fn close_rows(&self) -> Result<Vec<CloseRow>, AuditError> {
        let mut stmt = self.conn.prepare("SELECT id, count, end_head FROM close")?;
        let rows = stmt.query_map([], |r| {
            let head = segment::blob_array(r, 2).map_err(|e| e.to_string());
            Ok((r.get(0)?, r.get(1)?, head))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The streams table: stream id by labels section.
    pub fn streams(&self) -> Result<HashMap<Vec<u8>, i64>, AuditError> {
        let mut stmt = self.conn.prepare("SELECT labels, id FROM streams")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A stream id that no block holds, if any.
    pub fn unused_stream(&self) -> Result<Option<i64>, AuditError> {
        self.first(
            "SELECT id FROM streams s WHERE NOT EXISTS \
             (SELECT 1 FROM block_streams bs WHERE bs.stream_id = s.id) LIMIT 1",
        )
    }

    /// The first_seq of a block_streams row whose block does not exist, if any.
    pub fn orphan_block_streams(&self) -> Result<Option<i64>, AuditError> {
        self.first(
            "SELECT first_seq FROM block_streams bs WHERE NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.first_seq = bs.first_seq) LIMIT 1",
        )
    }

    /// Smallest and largest stored seq and the number of records, if any block is stored.
    pub fn seq_range(&self) -> Result<Option<(u64, u64, u64)>, AuditError> {
        let (min, max, n): (Option<i64>, Option<i64>, f64) = self.conn.query_row(
            "SELECT min(first_seq), max(first_seq + count) - 1, total(count) FROM blocks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(match (min, max) {
            (Some(min), Some(max)) => {
                Some((min.max(0) as u64, max.max(0) as u64, n.max(0.0) as u64))
            }
            _ => None,
        })
    }

    /// The stored head after the last record of the last block, if it can be read.
    pub fn last_head(&self) -> Option<Hash> {
        self.block_before(i64::MAX as u64).ok()??.2
    }

    /// `(first_seq, count, stored head after its last record)` of the last block that starts
    /// before `seq`.
    pub fn block_before(&self, seq: u64) -> Result<Option<(i64, i64, Option<Hash>)>, AuditError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        Ok(segment::block_before(&self.conn, self.layout, seq)?)
    }

    /// The stored records of the block that starts at `first_seq`, if there is one.
    pub fn block_records(&self, first_seq: u64) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self
            .conn
            .query_row(
                "SELECT records FROM blocks WHERE first_seq = ?1",
                [first_seq as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The head after record `seq`, if a block holds it: as stored (v1), or recomputed from
    /// the end head of the block before (or the segment's prev_head) over the records (v2).
    pub fn head_of(&self, seq: u64) -> Option<Hash> {
        match self.layout {
            Layout::V1 => self.stored_head_of(seq),
            Layout::V2 => self.recomputed_head_of(seq),
        }
    }

    fn recomputed_head_of(&self, seq: u64) -> Option<Hash> {
        let (first, count, _) = self.block_before(seq.checked_add(1)?).ok()??;
        let first = u64::try_from(first).ok()?;
        let offset = usize::try_from(seq.checked_sub(first)?).ok()?;
        if offset >= usize::try_from(count).ok()? {
            return None;
        }
        let mut head = match self.block_before(first).ok()? {
            Some((_, _, end)) => end?,
            None => self.meta().ok()??.prev_head,
        };
        let (stored, raw_bytes): (Vec<u8>, i64) = self
            .conn
            .query_row(
                "SELECT records, raw_bytes FROM blocks WHERE first_seq = ?1",
                [first as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()?;
        let raw = block::unpack(Layout::V2, &stored, raw_bytes).ok()?;
        let hasher = chain::Hasher::default();
        for canon in block::records(&raw).take(offset + 1) {
            head = hasher.next_head(&head, canon.ok()?);
        }
        Some(head)
    }

    fn stored_head_of(&self, seq: u64) -> Option<Hash> {
        let (first_seq, heads): (i64, Vec<u8>) = self
            .conn
            .query_row(
                "SELECT first_seq, heads FROM blocks WHERE first_seq <= ?1 \
                 ORDER BY first_seq DESC LIMIT 1",
                [seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()??;
        let at = usize::try_from(seq.checked_sub(first_seq as u64)?)
            .ok()?
            .checked_mul(32)?;
        heads.get(at..at + 32)?.try_into().ok()
    }

    /// The block_streams rows of the blocks whose first_seq is in `lo..hi`, by block, each
    /// block's sorted by stream id.
    pub fn spans(&self, lo: u64, hi: u64) -> Result<HashMap<u64, Vec<StreamSpan>>, AuditError> {
        let mut stmt = self.conn.prepare(
            "SELECT first_seq, stream_id, count, min_ts_ns, max_ts_ns FROM block_streams \
             WHERE first_seq >= ?1 AND first_seq < ?2 ORDER BY first_seq, stream_id",
        )?;
        let rows = stmt.query_map([lo as i64, hi as i64], |r| {
            let span = StreamSpan {
                stream_id: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
                min_ts_ns: r.get(3)?,
                max_ts_ns: r.get(4)?,
            };
            Ok((r.get::<_, i64>(0)? as u64, span))
        })?;
        let mut out: HashMap<u64, Vec<StreamSpan>> = HashMap::new();
        for row in rows {
            let (first, span) = row?;
            out.entry(first).or_default().push(span);
        }
        Ok(out)
    }

    /// Calls `f` with every block whose first_seq is in `lo..hi`, in order, until it breaks.
    pub fn each_block(
        &self,
        lo: u64,
        hi: u64,
        mut f: impl FnMut(&BlockRow<'_>) -> ControlFlow<()>,
    ) -> Result<(), AuditError> {
        let mut stmt = self.conn.prepare(match self.layout {
            Layout::V1 => {
                "SELECT first_seq, count, recv_ns, min_ts_ns, max_ts_ns, records, heads \
                 FROM blocks WHERE first_seq >= ?1 AND first_seq < ?2 ORDER BY first_seq"
            }
            Layout::V2 => {
                "SELECT first_seq, count, recv_ns, min_ts_ns, max_ts_ns, records, raw_bytes, \
                 end_head, summary, columns, tokens \
                 FROM blocks WHERE first_seq >= ?1 AND first_seq < ?2 ORDER BY first_seq"
            }
        })?;
        let mut rows = stmt.query([lo as i64, hi as i64])?;
        while let Some(r) = rows.next()? {
            let blob = |i| -> Result<&[u8], AuditError> {
                Ok(r.get_ref(i)?.as_blob().map_err(rusqlite::Error::from)?)
            };
            let stored = match self.layout {
                Layout::V1 => Stored::V1 { heads: blob(6)? },
                Layout::V2 => Stored::V2 {
                    raw_bytes: r.get(6)?,
                    end_head: blob(7)?,
                    summary: blob(8)?,
                    columns: blob(9)?,
                    tokens: blob(10)?,
                },
            };
            let b = BlockRow {
                first_seq: r.get::<_, i64>(0)? as u64,
                count: r.get(1)?,
                recv_ns: r.get(2)?,
                min_ts_ns: r.get(3)?,
                max_ts_ns: r.get(4)?,
                records: blob(5)?,
                stored,
            };
            if f(&b).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn count(&self, sql: &str) -> Result<i64, AuditError> {
        Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
    }

    fn first(&self, sql: &str) -> Result<Option<i64>, AuditError> {
        Ok(self.conn.query_row(sql, [], |r| r.get(0)).optional()?)
    }
}
