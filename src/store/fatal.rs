//! What ends the process: a storage failure after which no retry is safe.
//!
//! Owns: [`FATAL_EXIT_CODE`] and the rule of which SQLite failures during a commit or a
//! checkpoint are fatal (I/O, fsync, corruption). The writer and the checkpointer both apply
//! it; neither needs the other for it.
//!
//! Must not: decide anything about recoverable failures (a full disk is reported and
//! survived by the writer).

use rusqlite::ErrorCode;

/// Exit status when the ledger cannot continue safely (an fsync or I/O failure on commit):
/// `EX_IOERR`. The service manager restarts the process and recovery runs from disk.
pub const FATAL_EXIT_CODE: i32 = 74;

/// Stops the process on an I/O failure (fsync among them) or corruption during a commit or a
/// checkpoint:
/// after a failed fsync the kernel may have dropped the dirty pages, so a retry could
/// acknowledge data that is not on disk. Restart recovers from what is (INTEGRITY: fsyncgate).
pub(crate) fn stop_if_fatal(path: &std::path::Path, e: &rusqlite::Error) {
    let fatal = [
        ErrorCode::SystemIoFailure,
        ErrorCode::DatabaseCorrupt,
        ErrorCode::NotADatabase,
    ];
    if e.sqlite_error_code().is_some_and(|c| fatal.contains(&c)) {
        tracing::error!(
            path = %path.display(),
            error = %e,
            "fatal storage failure; stopping so that recovery runs from what is on disk"
        );
        std::process::exit(FATAL_EXIT_CODE);
    }
}
