//! Exporting checkpoints: after every seal, one signed note for the sealed size and head,
//! written as one JSON line on stdout (for journald or any log shipper to carry to another
//! host) and appended to a local file (`checkpoints.note`, for an operator to copy off the
//! box or to feed `verify --anchors`).
//!
//! Owns: both channels and their retry: a note the file could not take is kept (up to
//! [`MAX_PENDING`]) and written before the next one. An export failure is logged and never
//! stops sealing or ingest.
//!
//! Must not: block on a slow channel for longer than a write.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::note::{Checkpoint, NoteSigner};

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
}

impl Exporter {
    pub fn new(signer: NoteSigner, data_dir: &Path, stdout: bool) -> Exporter {
        Exporter {
            signer,
            file: data_dir.join(CHECKPOINT_FILE),
            pending: Vec::new(),
            stdout,
        }
    }

    /// Signs and exports one checkpoint.
    pub fn export(&mut self, cp: &Checkpoint) {
        let note = self.signer.sign(cp);
        if self.stdout {
            let line =
                serde_json::json!({"daftari_checkpoint": note, "size": cp.size, "epoch": cp.epoch});
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                tracing::warn!("checkpoint: stdout closed");
            }
        }
        self.pending.push(note);
        if self.pending.len() > MAX_PENDING {
            self.pending.remove(0);
        }
        match append(&self.file, &self.pending.concat()) {
            Ok(()) => self.pending.clear(),
            Err(e) => tracing::error!(
                error = %e,
                pending = self.pending.len(),
                "checkpoint export to the local file failed; retrying with the next one"
            ),
        }
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}
