//! Crash and pause points for tests: in debug builds, `DAFTARI_FAILPOINT=<name>` makes the
//! process abort (no destructors, no flush: what `kill -9` leaves) when it reaches the named
//! step, or, at a pause point, wait `DAFTARI_FAILPOINT_PAUSE_MS` (default 5000) so a test can
//! act in between. Release builds compile every point to nothing.
//!
//! Owns: the names of the points. Must not: do anything but abort or wait.

/// The steps a crash test can stop at.
pub mod at {
    /// Epoch end: the seal is built and signed, not yet committed.
    pub const SEAL_BEFORE_COMMIT: &str = "seal-before-commit";
    /// Epoch end: the seal is committed, the key file not yet replaced.
    pub const SEAL_AFTER_COMMIT: &str = "seal-after-commit";
    /// Epoch end: the key file is replaced, the checkpoint not yet exported.
    pub const SEAL_AFTER_KEY_FILE: &str = "seal-after-key-file";
    /// Segment close: the close row is durable, the file not yet finished.
    pub const CLOSE_AFTER_CLOSE_ROW: &str = "close-after-close-row";
    /// Segment close: the file is finished (read-only, hashed), its successor not created.
    pub const CLOSE_AFTER_FINISH: &str = "close-after-finish";
    /// Segment close: the close seal is computed, not yet committed.
    pub const CLOSE_SEAL_BEFORE_COMMIT: &str = "close-seal-before-commit";
    /// Retention: the admin entry is durable, the prune seal not yet written.
    pub const PRUNE_AFTER_ADMIN: &str = "prune-after-admin";
    /// Retention: the prune seal is committed, the files not yet removed.
    pub const PRUNE_AFTER_SEAL: &str = "prune-after-seal";
    /// Pause point. Verify: every segment is listed and opened, no record read yet.
    pub const VERIFY_AFTER_SCAN: &str = "verify-after-scan";
    /// Pause point. A query holds its slot and is about to run.
    pub const QUERY_IN_SLOT: &str = "query-in-slot";
}

/// Aborts the process if `DAFTARI_FAILPOINT` names `point` (debug builds only).
#[inline]
pub fn hit(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("DAFTARI_FAILPOINT").is_ok_and(|v| v == point) {
        eprintln!("daftari: failpoint {point}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Waits if `DAFTARI_FAILPOINT` names `point` (debug builds only).
#[inline]
pub fn pause(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("DAFTARI_FAILPOINT").is_ok_and(|v| v == point) {
        let ms = std::env::var("DAFTARI_FAILPOINT_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        eprintln!("daftari: failpoint {point}: pausing {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
