//! The background checkpointer of the active segment.
//!
//! Owns: a thread with its own connection that copies committed WAL frames into the segment
//! file (`PRAGMA wal_checkpoint(PASSIVE)`) every [`CHECKPOINT_INTERVAL`], so that this copy and
//! its fsync run beside the writer instead of inside its commits. The writer keeps a large
//! `wal_autocheckpoint` as a backstop, so the WAL stays bounded even if this thread falls
//! behind.
//!
//! Must not: write records, or run a checkpoint mode that waits on the writer. An I/O failure
//! (a failed fsync among them) stops the process, as it does in the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::error::StoreError;

/// How often committed frames are copied into the segment file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs PASSIVE checkpoints of one segment until dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let conn =
            Connection::open(path).map_err(StoreError::sqlite("checkpointer: open", path))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sqlite("checkpointer: synchronous", path))?;
        let (stop, rx) = mpsc::channel::<()>();
        let path: PathBuf = path.into();
        let handle = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_INTERVAL) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        super::fatal::stop_if_fatal(&path, &e);
                        tracing::error!(path = %path.display(), error = %e, "ledger: checkpoint failed");
                    }
                }
            })
            .map_err(StoreError::io(
                "checkpointer: start thread",
                "ledger-checkpoint",
            ))?;
        Ok(Self {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
