//! The store's error types: what opening, writing and reading the ledger can fail with.
//!
//! Owns: [`StoreError`] (opening, recovery, reading) and [`AppendError`] (one append's outcome,
//! whose variants are the categories the push plane maps to statuses).
//!
//! Must not: carry `rusqlite` types across the store boundary; causes are kept as text.

use std::path::PathBuf;

/// A failure to open, recover, rotate or read the ledger. Every variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{step}: {path}: {detail}")]
    Sqlite {
        step: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{0}")]
    Config(String),
    /// The writer thread ended by a panic; nothing it had not resolved was acknowledged.
    #[error("the ledger writer thread stopped unexpectedly")]
    WriterLost,
}

impl StoreError {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { step, path, source }
    }

    pub(crate) fn sqlite(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(rusqlite::Error) -> Self {
        let path = path.into();
        move |e| Self::Sqlite {
            step,
            path,
            detail: e.to_string(),
        }
    }
}

/// Why an append was not made durable. Nothing of a failed append is acknowledged: either
/// every entry of its group commit is durable, or none is reported so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The writer's queue is full: try again shortly. Maps to a retryable status.
    #[error("the ledger writer is busy ({0}); retry shortly")]
    Pushback(&'static str),
    /// The store is closing or closed; nothing more is accepted.
    #[error("the ledger is closed")]
    Closed,
    /// The disk is full: nothing of the group was committed.
    #[error("the ledger's disk is full; nothing was stored")]
    DiskFull,
    /// Free space is below the reserve kept for seals and checkpoints: nothing was queued.
    #[error("free space on the ledger's disk is below its reserve; nothing was stored")]
    LowSpace,
    /// Any other failure to commit; nothing of the group was committed.
    #[error("the ledger could not commit: {0}")]
    Storage(String),
    /// An entry cannot be encoded (a field over the format's limits); nothing was queued.
    #[error("entry {index} cannot be stored: {reason}")]
    Invalid { index: usize, reason: String },
}
