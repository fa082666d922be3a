//! The active (writable) segment: finding it at open, recovering from any crash point, and
//! moving on to the next one when it rotates.
//!
//! Owns: [`Active`], the writer's only writable connection and the in-memory tip of the chain
//! (next sequence number, head, stream ids of the segment); [`advance`], which turns whatever
//! the newest file is (none, closed, half-closed, older schema, open) into an open segment.
//!
//! Must not: be shared beyond the writer thread, or write a record (the writer does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::block::Layout;
use super::chain::{self, Hash, LOG_ID_LEN};
use super::checkpointer::Checkpointer;
use super::error::StoreError;
use super::schema;
use super::segment::{self, Meta};

/// The open segment and the tip of the chain.
#[derive(Debug)]
pub(crate) struct Active {
    pub conn: Connection,
    pub path: PathBuf,
    pub meta: Meta,
    /// Sequence number the next record gets.
    pub next_seq: u64,
    /// Head after the last committed record (the segment's `prev_head` while it is empty).
    pub head: Hash,
    /// `recv_ns` of the segment's first record: the start of its age.
    pub first_recv_ns: Option<i64>,
    /// Stream id of every labels section already stored in this segment.
    pub streams: HashMap<Vec<u8>, i64>,
    page_size: u64,
    /// Copies WAL frames into the file beside the writer; stopped before the segment closes.
    checkpointer: Option<Checkpointer>,
}

impl Active {
    /// Records in this segment.
    pub fn count(&self) -> u64 {
        self.next_seq - self.meta.first_seq
    }

    /// Bytes of the segment file (WAL excluded), for rotation by size.
    pub fn file_bytes(&self) -> Result<u64, StoreError> {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(StoreError::sqlite("page_count", &self.path))?;
        Ok(pages as u64 * self.page_size)
    }

    /// Stops the checkpointer, then closes the writer connection (the last one, so SQLite
    /// checkpoints the WAL into the file and removes it). The segment stays open for the next
    /// start.
    pub fn shutdown(mut self) -> Result<(), StoreError> {
        drop(self.checkpointer.take());
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, e)| StoreError::sqlite("close writer", &path)(e))
    }

    /// Closes this segment: close row (durable), then [`segment::finish_close`].
    /// Returns the meta the next segment must carry, which is of schema `version`.
    pub fn close(mut self, version: u32) -> Result<Meta, StoreError> {
        drop(self.checkpointer.take());
        segment::write_close_row(&self.conn, &self.path, &self.meta, self.count(), &self.head)?;
        crate::failpoint::hit(crate::failpoint::at::CLOSE_AFTER_CLOSE_ROW);
        let Active {
            conn, path, meta, ..
        } = self;
        conn.close()
            .map_err(|(_, e)| StoreError::sqlite("close segment: close writer", &path)(e))?;
        next_meta(&path, &meta, version)
    }
}

/// Opens the newest segment for writing, first finishing whatever a crash interrupted:
/// leftovers of a creation are removed, a segment with a close row is finished and succeeded,
/// a segment of another schema than `version` is closed and succeeded, an empty directory gets segment 0.
/// `origin` names the log if it has to be created.
pub(crate) fn advance(dir: &Path, origin: &str, version: u32) -> Result<Active, StoreError> {
    segment::remove_leftovers(dir)?;
    let Some((_, path)) = segment::list(dir)?.pop() else {
        let meta = first_meta(origin, version)?;
        return open(&segment::create(dir, &meta)?);
    };
    if segment::is_read_only(&path)? {
        let meta = next_meta(&path, &read_meta_ro(&path)?, version)?;
        return open(&segment::create(dir, &meta)?);
    }
    let active = open(&path)?;
    let closed =
        segment::is_closed(&active.conn).map_err(StoreError::sqlite("read close row", &path))?;
    if closed {
        let Active {
            conn,
            meta,
            checkpointer,
            ..
        } = active;
        drop(checkpointer);
        drop(conn);
        let next = next_meta(&path, &meta, version)?;
        return open(&segment::create(dir, &next)?);
    }
    if active.meta.schema_version != version {
        let next = active.close(version)?;
        return open(&segment::create(dir, &next)?);
    }
    Ok(active)
}

fn first_meta(origin: &str, version: u32) -> Result<Meta, StoreError> {
    let mut log_id = [0u8; LOG_ID_LEN];
    getrandom::fill(&mut log_id).map_err(|e| StoreError::Config(format!("random log id: {e}")))?;
    Ok(Meta {
        schema_version: version,
        origin: origin.to_owned(),
        log_id,
        segment_index: 0,
        first_seq: 0,
        prev_head: chain::genesis(origin, &log_id),
        prev_file_hash: [0; 32],
        prev_seal: [0; 32],
    })
}

/// Finishes closing the segment at `path` and builds its successor's meta from its close row.
fn next_meta(path: &Path, meta: &Meta, version: u32) -> Result<Meta, StoreError> {
    let file_hash = segment::finish_close(path)?;
    let conn = segment::open_read_only(path).map_err(StoreError::sqlite("read close row", path))?;
    let (count, end_head): (i64, Hash) = conn
        .query_row("SELECT count, end_head FROM close WHERE id = 1", [], |r| {
            Ok((r.get(0)?, segment::blob_array(r, 1)?))
        })
        .map_err(StoreError::sqlite("read close row", path))?;
    Ok(Meta {
        schema_version: version,
        origin: meta.origin.clone(),
        log_id: meta.log_id,
        segment_index: meta.segment_index + 1,
        first_seq: meta.first_seq + count as u64,
        prev_head: end_head,
        prev_file_hash: file_hash,
        prev_seal: [0; 32],
    })
}

fn read_meta_ro(path: &Path) -> Result<Meta, StoreError> {
    let conn = segment::open_read_only(path).map_err(StoreError::sqlite("read meta", path))?;
    segment::read_meta(&conn)
        .map_err(StoreError::sqlite("read meta", path))?
        .ok_or_else(|| corrupt(path, "no meta row"))
}

/// Opens `path` for writing and loads the tip from its last record.
fn open(path: &Path) -> Result<Active, StoreError> {
    let conn = Connection::open(path).map_err(StoreError::sqlite("open segment", path))?;
    schema::configure_writer(&conn).map_err(|detail| StoreError::Sqlite {
        step: "open segment: pragmas",
        path: path.into(),
        detail,
    })?;
    let meta = segment::read_meta(&conn)
        .map_err(StoreError::sqlite("read meta", path))?
        .ok_or_else(|| corrupt(path, "no meta row"))?;
    let last = segment::block_before(&conn, Layout::of(meta.schema_version), i64::MAX)
        .map_err(StoreError::sqlite("read last block", path))?;
    let (next_seq, head) = match last {
        None => (meta.first_seq, meta.prev_head),
        Some((first, n, head)) => {
            let next = (first + n) as u64;
            let head = head
                .ok_or_else(|| corrupt(path, "the last block has no head for its last record"))?;
            if first < 0 || next <= meta.first_seq {
                return Err(corrupt(
                    path,
                    "the last block precedes the segment's first_seq",
                ));
            }
            (next, head)
        }
    };
    let first_recv_ns = conn
        .query_row(
            "SELECT recv_ns FROM blocks ORDER BY first_seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("read first block", path))?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(StoreError::sqlite("page_size", path))?;
    let streams = load_streams(&conn, path)?;
    let checkpointer = Some(Checkpointer::start(path)?);
    Ok(Active {
        conn,
        path: path.into(),
        meta,
        next_seq,
        head,
        first_recv_ns,
        streams,
        page_size: page_size as u64,
        checkpointer,
    })
}

fn load_streams(conn: &Connection, path: &Path) -> Result<HashMap<Vec<u8>, i64>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, labels FROM streams")
        .map_err(StoreError::sqlite("read streams", path))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(0)?)))
        .map_err(StoreError::sqlite("read streams", path))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::sqlite("read streams", path))
}

fn corrupt(path: &Path, detail: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        detail: detail.into(),
    }
}
