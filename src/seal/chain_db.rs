//! `seals.sqlite`: the append-only seal chain.
//!
//! Owns: its schema (`migrations/seals/`), appending a seal in its own durable transaction
//! (WAL, `synchronous=FULL`), and reading the chain back, read-only, for recovery and verify.
//!
//! Must not: update or delete a row.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::SealError;

/// The seal chain file, inside the data directory.
pub const SEALS_FILE: &str = "seals.sqlite";

/// The migrations, in order; `user_version` counts those applied.
const MIGRATIONS: [&str; 2] = [
    include_str!("../../migrations/seals/0001_init.sql"),
    include_str!("../../migrations/seals/0002_by_kind.sql"),
];

/// A stored seal: its bytes and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub n: u64,
    pub epoch: u64,
    pub kind: u8,
    pub body: Vec<u8>,
    pub sig: Vec<u8>,
}

pub fn seals_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SEALS_FILE)
}

/// The writable seal chain (the sealer's only connection).
#[derive(Debug)]
pub struct SealStore {
    conn: Connection,
}

impl SealStore {
    pub fn open(data_dir: &Path) -> Result<SealStore, SealError> {
        let path = seals_path(data_dir);
        let err = |e: rusqlite::Error| SealError::Db(format!("{}: {e}", path.display()));
        let conn = Connection::open(&path).map_err(err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SealError::Db(format!(
                "{}: journal_mode reads back {mode}",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.unchecked_transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(SealStore { conn })
    }

    /// Appends one seal; durable when this returns.
    pub fn append(&self, epoch: u64, kind: u8, body: &[u8], sig: &[u8]) -> Result<(), SealError> {
        self.conn
            .execute(
                "INSERT INTO seals (epoch, kind, body, sig) VALUES (?1, ?2, ?3, ?4)",
                params![epoch as i64, kind, body, sig],
            )
            .map(|_| ())
            .map_err(|e| SealError::Db(format!("append seal of epoch {epoch}: {e}")))
    }

    /// The seals of the given kinds, in order.
    pub fn of_kinds(&self, kinds: &[u8]) -> Result<Vec<Stored>, SealError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT n, epoch, kind, body, sig FROM seals WHERE kind = ?1 ORDER BY n")
            .map_err(|e| SealError::Db(format!("read seals: {e}")))?;
        for k in kinds {
            let rows = stmt
                .query_map([k], row)
                .map_err(|e| SealError::Db(format!("read seals: {e}")))?;
            for r in rows {
                out.push(r.map_err(|e| SealError::Db(format!("read seals: {e}")))?);
            }
        }
        out.sort_by_key(|s| s.n);
        Ok(out)
    }

    /// The newest seal.
    pub fn last(&self) -> Result<Option<Stored>, SealError> {
        self.conn
            .query_row(
                "SELECT n, epoch, kind, body, sig FROM seals ORDER BY n DESC LIMIT 1",
                [],
                row,
            )
            .optional()
            .map_err(|e| SealError::Db(format!("read the last seal: {e}")))
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        n: r.get::<_, i64>(0)? as u64,
        epoch: r.get::<_, i64>(1)? as u64,
        kind: r.get(2)?,
        body: r.get(3)?,
        sig: r.get(4)?,
    })
}

/// Every seal, in order, read-only (`None` when there is no seal file).
pub fn read_all(data_dir: &Path) -> Result<Option<Vec<Stored>>, SealError> {
    read_where(data_dir, "1")
}

/// The seals of one kind, in order, read-only (`None` when there is no seal file).
pub fn read_kind(data_dir: &Path, kind: u8) -> Result<Option<Vec<Stored>>, SealError> {
    read_where(data_dir, &format!("kind = {kind}"))
}

/// The seals up to row `n`, in order, read-only.
pub fn read_through(data_dir: &Path, n: u64) -> Result<Option<Vec<Stored>>, SealError> {
    read_where(data_dir, &format!("n <= {n}"))
}

fn read_where(data_dir: &Path, filter: &str) -> Result<Option<Vec<Stored>>, SealError> {
    let path = seals_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    let err = |e: rusqlite::Error| SealError::Db(format!("{}: {e}", path.display()));
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT n, epoch, kind, body, sig FROM seals WHERE {filter} ORDER BY n"
        ))
        .map_err(err)?;
    let rows = stmt.query_map([], row).map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map(Some).map_err(err)
}

/// What differs between `seals.sqlite` and the schema its `user_version` names, as
/// (expected, found); `None` when the file is exactly that schema (no other table, index,
/// trigger or view) and its rows are numbered `n` = 1, 2, 3, ... without a gap.
pub fn schema_mismatch(data_dir: &Path) -> Result<Option<(String, String)>, SealError> {
    let path = seals_path(data_dir);
    let err = |e: rusqlite::Error| SealError::Db(format!("{}: {e}", path.display()));
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if !(1..=MIGRATIONS.len() as i64).contains(&version) {
        let expected = format!("user_version 1 to {}", MIGRATIONS.len());
        return Ok(Some((expected, format!("user_version {version}"))));
    }
    let want = Connection::open_in_memory().map_err(err)?;
    for sql in &MIGRATIONS[..version as usize] {
        want.execute_batch(sql).map_err(err)?;
    }
    let (want, found) = (objects(&want).map_err(err)?, objects(&conn).map_err(err)?);
    if want != found {
        let extra = found.iter().find(|o| !want.contains(o));
        let missing = want.iter().find(|o| !found.contains(o));
        let show = |o: Option<&String>| o.cloned().unwrap_or_else(|| "nothing".into());
        return Ok(Some((show(missing), show(extra))));
    }
    let (rows, max): (i64, Option<i64>) = conn
        .query_row("SELECT count(*), max(n) FROM seals", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(err)?;
    let min: Option<i64> = conn
        .query_row("SELECT min(n) FROM seals", [], |r| r.get(0))
        .map_err(err)?;
    if rows > 0 && (min != Some(1) || max != Some(rows)) {
        let found = format!(
            "{rows} rows numbered {} to {}",
            min.unwrap_or(0),
            max.unwrap_or(0)
        );
        return Ok(Some((format!("rows numbered 1 to {rows}"), found)));
    }
    Ok(None)
}

/// Every schema object but SQLite's own, as "type name: sql", sorted.
fn objects(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "{} {}: {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?
        ))
    })?;
    rows.collect()
}
