//! Segment files: naming, creation, the meta row, and the close procedure.
//!
//! Owns: `<data>/segments/seg-NNNNNNNNNNNN.sqlite`, how one is created (atomically, through a
//! temporary name), how one is closed (close row, WAL checkpointed into the file, fsync,
//! read-only mode, file hash), how its meta row reads, and how readers open one (read-only,
//! or read-only inside one snapshot).
//!
//! Must not: assign sequence numbers or hash records (the writer and `chain` do), or ever open
//! a closed segment for writing.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::block::{self, Layout};
use super::chain::{self, Hash, LOG_ID_LEN};
use super::error::StoreError;
use super::schema;

/// How the segment open on `conn` stores its blocks (from its schema version).
pub fn layout(conn: &Connection) -> rusqlite::Result<Layout> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map(Layout::of)
}

/// The last block of a segment of `layout` that starts before `seq` (`i64::MAX`: the last
/// block): its first_seq, its count, and the head after its last record as stored (`None` if
/// it is not stored as it should be).
pub fn block_before(
    conn: &Connection,
    layout: Layout,
    seq: i64,
) -> rusqlite::Result<Option<(i64, i64, Option<Hash>)>> {
    let sql = match layout {
        Layout::V1 => {
            "SELECT first_seq, count, heads FROM blocks WHERE first_seq < ?1 \
             ORDER BY first_seq DESC LIMIT 1"
        }
        Layout::V2 => {
            "SELECT first_seq, count, end_head FROM blocks WHERE first_seq < ?1 \
             ORDER BY first_seq DESC LIMIT 1"
        }
    };
    conn.query_row(sql, [seq], |r| {
        let (first, count): (i64, i64) = (r.get(0)?, r.get(1)?);
        let blob = r.get_ref(2)?.as_blob()?;
        Ok((first, count, block::end_head(layout, count, blob)))
    })
    .optional()
}

/// Name of the directory under the data dir that holds the segment files.
pub const SEGMENTS_DIR: &str = "segments";

/// Suffix of a segment being created; such a file never held a record and is removed on open.
const TMP_SUFFIX: &str = ".tmp";

/// How often (every 100 ms) the close procedure retries a WAL checkpoint that readers keep
/// from completing: 30 s in all before the rotation is reported failed and retried later.
const CHECKPOINT_ATTEMPTS: u32 = 300;

/// File name of segment `index`.
pub fn file_name(index: u64) -> String {
    format!("seg-{index:012}.sqlite")
}

/// The index in a segment file name, or `None` if `name` is not one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".sqlite")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files of `dir`, sorted by index.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).map_err(StoreError::io("list segments", dir))? {
        let item = item.map_err(StoreError::io("list segments", dir))?;
        if let Some(index) = item.file_name().to_str().and_then(parse_file_name) {
            out.push((index, item.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The meta row: where a segment sits in the log and how it links to its predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub schema_version: u32,
    pub origin: String,
    pub log_id: [u8; LOG_ID_LEN],
    pub segment_index: u64,
    pub first_seq: u64,
    /// `head_{first_seq-1}`, or the genesis hash for the first segment.
    pub prev_head: Hash,
    /// `file_blake3` of the previous (closed) segment; zeros for the first segment.
    pub prev_file_hash: Hash,
    /// Digest of the previous segment-close seal; zeros while the log has no seals.
    pub prev_seal: Hash,
}

/// Reads the meta row (exactly one is expected; `None` if the table is empty).
pub fn read_meta(conn: &Connection) -> rusqlite::Result<Option<Meta>> {
    conn.query_row(
        "SELECT schema_version, origin, log_id, segment_index, first_seq, prev_head, \
         prev_file_hash, prev_seal FROM meta WHERE id = 1",
        [],
        |r| {
            Ok(Meta {
                schema_version: r.get(0)?,
                origin: r.get(1)?,
                log_id: blob_array(r, 2)?,
                segment_index: r.get::<_, i64>(3)? as u64,
                first_seq: r.get::<_, i64>(4)? as u64,
                prev_head: blob_array(r, 5)?,
                prev_file_hash: blob_array(r, 6)?,
                prev_seal: blob_array(r, 7)?,
            })
        },
    )
    .optional()
}

/// Reads a fixed-size blob column, failing on any other length.
pub fn blob_array<const N: usize>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<[u8; N]> {
    let bytes = row.get_ref(idx)?.as_blob()?;
    bytes.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(
            idx,
            format!("blob of {} bytes", bytes.len()),
            rusqlite::types::Type::Blob,
        )
    })
}

/// Creates segment `meta.segment_index` in `dir`: schema and meta are written under a
/// temporary name, synced, then renamed into place and the directory synced, so a crash
/// leaves either no segment or a complete empty one.
pub fn create(dir: &Path, meta: &Meta) -> Result<PathBuf, StoreError> {
    let path = dir.join(file_name(meta.segment_index));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(meta.segment_index)));
    remove_if_exists(&tmp)?;
    {
        let conn = Connection::open(&tmp).map_err(StoreError::sqlite("create segment", &tmp))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sqlite("create segment: synchronous", &tmp))?;
        conn.pragma_update(None, "page_size", schema::page_size(meta.schema_version))
            .map_err(StoreError::sqlite("create segment: page_size", &tmp))?;
        // WAL from birth: switching modes later is itself a journaled write a crash can cut.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::sqlite("create segment: journal_mode=WAL", &tmp))?;
        let tx = conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("create segment: begin", &tmp))?;
        schema::apply(&tx, meta.schema_version)
            .map_err(StoreError::sqlite("create segment: schema", &tmp))?;
        tx.execute(
            "INSERT INTO meta (id, schema_version, origin, log_id, segment_index, first_seq, \
             prev_head, prev_file_hash, prev_seal) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                meta.schema_version,
                meta.origin,
                &meta.log_id[..],
                meta.segment_index as i64,
                meta.first_seq as i64,
                &meta.prev_head[..],
                &meta.prev_file_hash[..],
                &meta.prev_seal[..],
            ],
        )
        .map_err(StoreError::sqlite("create segment: meta", &tmp))?;
        tx.commit()
            .map_err(StoreError::sqlite("create segment: commit", &tmp))?;
        conn.close()
            .map_err(|(_, e)| StoreError::sqlite("create segment: close", &tmp)(e))?;
    }
    fsync_file(&tmp)?;
    fs::rename(&tmp, &path).map_err(StoreError::io("create segment: rename", &path))?;
    fsync_dir(dir)?;
    Ok(path)
}

/// Removes leftovers of an interrupted [`create`]: temporary files never held a record.
pub fn remove_leftovers(dir: &Path) -> Result<(), StoreError> {
    for item in fs::read_dir(dir).map_err(StoreError::io("list segments", dir))? {
        let item = item.map_err(StoreError::io("list segments", dir))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let is_tmp = [TMP_SUFFIX, ".tmp-journal", ".tmp-wal", ".tmp-shm"]
            .iter()
            .any(|s| name.ends_with(s));
        if name.starts_with("seg-") && is_tmp {
            remove_if_exists(&item.path())?;
        }
    }
    Ok(())
}

/// Whether the file has no write permission: closed segments are made read-only.
pub fn is_read_only(path: &Path) -> Result<bool, StoreError> {
    let mode = fs::metadata(path)
        .map_err(StoreError::io("stat segment", path))?
        .permissions()
        .mode();
    Ok(mode & 0o222 == 0)
}

/// Whether the close row exists, i.e. the segment is logically closed.
pub fn is_closed(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM close)", [], |r| r.get(0))
}

/// Step 1 of closing: records the end head and count in the segment, durably, in one
/// transaction with what the schema adds at close ([`schema::at_close`]: v2's index by
/// stream, built once from the finished table). After this the segment takes no more
/// records, whatever happens to the rest of the close procedure.
pub fn write_close_row(
    conn: &Connection,
    path: &Path,
    meta: &Meta,
    count: u64,
    end_head: &Hash,
) -> Result<(), StoreError> {
    let write = || -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO close (id, count, end_head) VALUES (1, ?1, ?2)",
            params![count as i64, &end_head[..]],
        )?;
        tx.execute_batch(schema::at_close(meta.schema_version))?;
        tx.commit()
    };
    write().map_err(StoreError::sqlite("close segment: close row", path))
}

/// Steps 2 to 4 of closing, idempotent so that recovery can finish an interrupted close:
/// wait until every WAL frame is checkpointed into the file (readers that began before the
/// close row can delay this, briefly), empty the WAL if no reader holds it, close, fsync, make
/// the file read-only, fsync the directory. Returns the file's `file_blake3`.
///
/// The file keeps WAL mode in its header: switching to a rollback journal needs exclusive
/// access, which any reader would deny, and a closed file is never written again anyway.
/// Readers open closed segments `immutable`.
pub fn finish_close(path: &Path) -> Result<Hash, StoreError> {
    if !is_read_only(path)? {
        let conn =
            Connection::open(path).map_err(StoreError::sqlite("close segment: open", path))?;
        conn.busy_timeout(std::time::Duration::from_secs(1))
            .map_err(StoreError::sqlite("close segment: busy_timeout", path))?;
        checkpoint_all(&conn, path)?;
        // Best effort: a reader may still hold the (fully copied) WAL open.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        conn.close()
            .map_err(|(_, e)| StoreError::sqlite("close segment: close", path)(e))?;
        fsync_file(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o444))
            .map_err(StoreError::io("close segment: chmod 0444", path))?;
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
    }
    file_hash(path)
}

/// Runs PASSIVE checkpoints until every frame of the WAL is in the file.
fn checkpoint_all(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    for _ in 0..CHECKPOINT_ATTEMPTS {
        let (log, done): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .map_err(StoreError::sqlite(
                "close segment: wal_checkpoint(PASSIVE)",
                path,
            ))?;
        if log == done {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(StoreError::Sqlite {
        step: "close segment: wal_checkpoint(PASSIVE)",
        path: path.into(),
        detail: "readers kept part of the WAL from being checkpointed".into(),
    })
}

/// `file_blake3` of a closed segment: blake3 in derive-key mode over the file's bytes.
pub fn file_hash(path: &Path) -> Result<Hash, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("hash segment file", path))?;
    let mut hasher = chain::segment_file_hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(StoreError::io("hash segment file", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Opens a segment for reading only; closed segments are also opened `immutable`, which
/// needs no lock and no `-shm` file, so copies on read-only media verify too.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let read_only = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o222 == 0)
        .unwrap_or(false);
    let wal = Path::new(&format!("{}-wal", path.display())).exists();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!(
        "file:{}?mode=ro{}",
        uri_escape(&path.to_string_lossy()),
        if read_only && !wal {
            "&immutable=1"
        } else {
            ""
        }
    );
    let conn = Connection::open_with_flags(uri, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// A read-only connection to a segment ([`open_read_only`]) inside one read transaction,
/// held until it is dropped: a scan's block lookups then take no file locks each, and every
/// block of an open segment is read from the same snapshot.
pub fn open_snapshot(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_read_only(path)?;
    conn.execute_batch("BEGIN")?;
    Ok(conn)
}

fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '?' | '#' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

pub(crate) fn fsync_file(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("fsync", path))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_lookalikes() {
        assert_eq!(file_name(42), "seg-000000000042.sqlite");
        assert_eq!(parse_file_name("seg-000000000042.sqlite"), Some(42));
        for bad in [
            "seg-42.sqlite",
            "seg-000000000042.sqlite.tmp",
            "seg-00000000004x.sqlite",
            "x.sqlite",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
