//! The segment file schema: its migrations, version, application id and pragmas.
//!
//! Owns: the DDL (from `migrations/segment/`), the expected `sqlite_master` of each version
//! (which `verify` compares exactly), and the pragmas a writable segment runs with, read back
//! after they are set.
//!
//! Must not: write records or decide when segments rotate.

use rusqlite::Connection;

/// `PRAGMA application_id` of every segment file: "DAFT".
pub const APPLICATION_ID: i32 = 0x4441_4654;

/// Migrations, oldest first. Version N of the schema is the result of applying the first N.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/segment/0001_init.sql"),
    include_str!("../../migrations/segment/0002_compressed_blocks.sql"),
];

/// The schema version new segments are created with.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// One object of `sqlite_master` (SQLite's own `sqlite_*` objects excluded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct SchemaObject {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: Option<String>,
}

/// Applies migrations `1..=version` and stamps the version and application id.
pub fn apply(conn: &Connection, version: u32) -> rusqlite::Result<()> {
    for sql in &MIGRATIONS[..version as usize] {
        conn.execute_batch(sql)?;
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", version)?;
    Ok(())
}

/// Reads a file's schema objects, sorted, SQLite's internal ones left out.
pub fn objects(conn: &Connection) -> rusqlite::Result<Vec<SchemaObject>> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SchemaObject {
            kind: r.get(0)?,
            name: r.get(1)?,
            table: r.get(2)?,
            sql: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// What the transaction that closes a segment of `version` adds to its schema.
pub fn at_close(version: u32) -> &'static str {
    if version >= 2 {
        include_str!("../../migrations/segment/0002_close.sql")
    } else {
        ""
    }
}

/// The exact schema objects a segment of `version` must have, open or `closed`, or `None` for
/// an unknown version.
pub fn expected_objects(version: u32, closed: bool) -> Option<Vec<SchemaObject>> {
    if version == 0 || version > SCHEMA_VERSION {
        return None;
    }
    let conn = Connection::open_in_memory().ok()?;
    apply(&conn, version).ok()?;
    if closed {
        conn.execute_batch(at_close(version)).ok()?;
    }
    objects(&conn).ok()
}

/// The oldest schema version still written (on request: `segment_format = 1`).
pub const OLDEST_VERSION: u32 = 1;

/// Page size of new v1 segments. Records live in raw blocks (blobs of up to 1 MiB), so large
/// pages mean fewer overflow pages, WAL frames and write calls per byte (measured: +8%
/// appends/s over 4 KiB).
const PAGE_SIZE_V1: i64 = 16 * 1024;

/// Page size of new v2 segments. Compressed blocks are small (tens of KiB), so the half page
/// a block's last overflow page wastes on average, and the leaf pages every commit rewrites,
/// dominate what is written and kept: 4 KiB pages cut both (BENCHMARKS.md).
const PAGE_SIZE_V2: i64 = 4 * 1024;

/// Page size of new segments of schema `version`.
pub fn page_size(version: u32) -> i64 {
    if version >= 2 {
        PAGE_SIZE_V2
    } else {
        PAGE_SIZE_V1
    }
}

/// Pages after which the writer checkpoints the WAL itself: a backstop only (128 MiB), since
/// the background checkpointer normally keeps the WAL far smaller.
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 8 * 1024;

/// Size the WAL file is cut back to after a reset. Equal to the backstop, so that in normal
/// operation the file is overwritten in place rather than truncated and extended again, which
/// costs the kernel a page allocation per write.
const JOURNAL_SIZE_LIMIT: i64 = WAL_AUTOCHECKPOINT_PAGES * PAGE_SIZE_V1;

/// Page cache of the writer connection, in KiB (negative `cache_size` means KiB).
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Sets the writer pragmas and reads each one back: WAL, `synchronous=FULL`, no foreign keys.
/// A setting that does not read back as asked is an error, never a silent downgrade.
pub fn configure_writer(conn: &Connection) -> Result<(), String> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| format!("journal_mode: {e}"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("journal_mode reads back as {mode:?}, not \"wal\""));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| format!("synchronous: {e}"))?;
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .map_err(|e| format!("synchronous: {e}"))?;
    if sync != 2 {
        return Err(format!("synchronous reads back as {sync}, not 2 (FULL)"));
    }
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(|e| format!("wal_autocheckpoint: {e}"))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| format!("journal_size_limit: {e}"))?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| format!("cache_size: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| format!("busy_timeout: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_pragmas_read_back_as_set() {
        let dir = std::env::temp_dir().join(format!("daftari-pragma-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("t.sqlite")).unwrap();
        configure_writer(&conn).unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!((sync, mode.as_str()), (2, "wal"));
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expected_schema_has_the_five_tables_and_the_index_once_closed() {
        let names = |version, closed| -> Vec<String> {
            let objs = expected_objects(version, closed).unwrap();
            objs.into_iter().map(|o| o.name).collect()
        };
        let tables = ["block_streams", "blocks", "close", "meta", "streams"];
        let with = |indexes: &[&'static str]| -> Vec<String> {
            indexes
                .iter()
                .chain(&tables)
                .map(|s| s.to_string())
                .collect()
        };
        // v1 keeps its index by stream throughout; v2 indexes by time and builds the index by
        // stream when the segment closes.
        assert_eq!(names(1, false), with(&["block_streams_by_stream"]));
        assert_eq!(names(1, true), with(&["block_streams_by_stream"]));
        assert_eq!(names(2, false), with(&["block_streams_by_time"]));
        assert_eq!(
            names(2, true),
            with(&["block_streams_by_stream", "block_streams_by_time"])
        );
        assert!(expected_objects(SCHEMA_VERSION + 1, false).is_none());
    }
}
