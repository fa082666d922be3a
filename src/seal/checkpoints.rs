//! Exporting checkpoints: after every seal, one signed note for the sealed size and head,
//! written as one JSON line on stdout (for journald or any log shipper to carry to another
//! host), appended to a local file (`checkpoints.note`, for an operator to copy off the box
//! or to feed `verify --anchors`), and optionally pushed to another Loki-compatible endpoint
//! (`remote`).
//!
//! Owns: the channels, their counters in `/metrics`, and the file's retry: a note the file
//! could not take is kept (up to [`MAX_PENDING`]) and written before the next one. An export
//! failure is counted, logged and never stops sealing or ingest.
//!
//! Must not: block on a slow channel for longer than a write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::SealError;
use super::exported::JSON_FIELD;
use super::note::{Checkpoint, NoteSigner};
use super::remote::Pusher;
use crate::metrics::Metrics;

/// The local checkpoint file, inside the data directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.note";
/// Notes kept for a retry when the file cannot be written; older ones are dropped first
/// (a later checkpoint covers everything an earlier one does).
pub const MAX_PENDING: usize = 1024;

#[derive(Debug)]
pub struct Exporter {
    signer: NoteSigner,
    file: PathBuf,
    pending: Vec<String>,
    /// Whether to print each note as a JSON line on stdout.
    stdout: bool,
    push: Option<Pusher>,
    metrics: Arc<Metrics>,
    /// Export after every this many epochs.
    every: u64,
}

impl Exporter {
    pub fn new(
        signer: NoteSigner,
        data_dir: &Path,
        stdout: bool,
        push: Option<Pusher>,
        metrics: Arc<Metrics>,
    ) -> Exporter {
        Exporter {
            signer,
            file: data_dir.join(CHECKPOINT_FILE),
            pending: Vec::new(),
            stdout,
            push,
            metrics,
            every: 1,
        }
    }

    /// Exports only every `n`th epoch's checkpoint (and every one that `export` is told to).
    pub fn every(mut self, n: u64) -> Exporter {
        self.every = n.max(1);
        self
    }

    /// Signs and exports the checkpoint of a seal; an epoch seal only every `every` epochs,
    /// any other (`always`) each time.
    pub fn export(&mut self, cp: &Checkpoint, always: bool) {
        let stats = &self.metrics.seal;
        stats.last_epoch.store(cp.epoch, Ordering::Relaxed);
        stats
            .last_seal_unix
            .store(cp.time_s.max(0) as u64, Ordering::Relaxed);
        if !always && !cp.epoch.is_multiple_of(self.every) {
            return;
        }
        let note = self.signer.sign(cp);
        if self.stdout {
            let line = serde_json::json!({ JSON_FIELD: note, "size": cp.size, "epoch": cp.epoch });
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => {
                    stats.exports_stdout.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.export_failures_stdout.fetch_add(1, Ordering::Relaxed);
                    // A closed stdout stays closed: say so once, and stop printing (the
                    // checkpoints still go to the file and the push channel).
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        self.stdout = false;
                        tracing::warn!(
                            "checkpoint: stdout is closed; checkpoints are no longer printed \
                             there (they still go to checkpoints.note)"
                        );
                    } else {
                        tracing::warn!(error = %e, "checkpoint: cannot write to stdout");
                    }
                }
            }
        }
        if let Some(p) = &self.push {
            p.send(cp.time_s.saturating_mul(1_000_000_000), note.clone());
        }
        self.pending.push(note);
        if self.pending.len() > MAX_PENDING {
            self.pending.remove(0);
        }
        match append(&self.file, &self.pending.concat()) {
            Ok(()) => {
                stats.exports_file.fetch_add(1, Ordering::Relaxed);
                self.pending.clear();
            }
            Err(e) => {
                stats.export_failures_file.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    pending = self.pending.len(),
                    "checkpoint export to the local file failed; retrying with the next one"
                );
            }
        }
    }
}

fn append(path: &Path, text: &str) -> Result<(), SealError> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| SealError::File(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| SealError::File(format!("{}: {e}", path.display())))
}
