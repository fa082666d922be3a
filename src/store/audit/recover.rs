//! Reading a segment whose WAL needs recovery, without writing to it.
//!
//! After a crash the open segment's `-wal` holds committed transactions but its `-shm` index
//! is stale, or a segment caught mid-close has a hot `-journal`; SQLite must recover before
//! reading, and a read-only connection may not.
//! The audit never opens a segment for writing, so it copies the file and its WAL into a private
//! temporary directory, lets SQLite recover the copy, and audits the copy. A live writer keeps
//! the index valid, so this path is taken only when no writer runs.
//!
//! Owns: [`RecoveredCopy`]. Must not: touch the original files beyond reading them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A recovered copy of a segment, removed when dropped.
#[derive(Debug)]
pub struct RecoveredCopy {
    dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for RecoveredCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The journal files SQLite may need to recover a database from.
const JOURNALS: [&str; 2] = ["-wal", "-journal"];

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Whether opening `path` read-only failed because a WAL or journal needs recovery.
pub(super) fn needs_recovery(path: &Path, error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly)
        && JOURNALS.iter().any(|s| sidecar(path, s).exists())
}

/// Copies `path` and its `-wal` or `-journal` into a new temporary directory and lets SQLite
/// recover the copy (a read in a read-write connection replays the WAL or rolls back the
/// journal; closing checkpoints).
pub(super) fn recover_copy(path: &Path) -> Result<RecoveredCopy, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("daftari-verify-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("recover: create {}: {e}", dir.display()))?;
    let name = path.file_name().unwrap_or_default();
    let copy = RecoveredCopy {
        path: dir.join(name),
        dir,
    };
    std::fs::copy(path, &copy.path)
        .map_err(|e| format!("recover: copy {}: {e}", path.display()))?;
    for suffix in JOURNALS {
        let from = sidecar(path, suffix);
        match std::fs::copy(&from, sidecar(&copy.path, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("recover: copy {}: {e}", from.display()));
            }
            _ => {}
        }
    }
    let mut perms = std::fs::metadata(&copy.path)
        .map_err(|e| e.to_string())?
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)] // the copy is private and must be writable
    perms.set_readonly(false);
    std::fs::set_permissions(&copy.path, perms).map_err(|e| e.to_string())?;
    let conn =
        rusqlite::Connection::open(&copy.path).map_err(|e| format!("recover: open copy: {e}"))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| format!("recover: read copy: {e}"))?;
    conn.close()
        .map_err(|(_, e)| format!("recover: close copy: {e}"))?;
    Ok(copy)
}
