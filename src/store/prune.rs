//! Removing whole closed segments: the retention path's capability.
//!
//! Owns: [`Pruner`], the only way a segment file ever leaves the ledger. The ledger hands out
//! one ([`super::Ledger::pruner`]) and the server gives it to the sealer, which removes a
//! segment only after a committed prune seal names it.
//!
//! Must not: remove the newest segment (the one the writer may hold), one without a close
//! row, or anything smaller than a whole segment.

use std::path::PathBuf;

use super::archive::{closed_path, meta_and_close};
use super::error::StoreError;
use super::segment;
use super::segments_dir;

/// Removes closed segments from the ledger. Not `Clone`: the ledger makes one.
#[derive(Debug)]
pub struct Pruner {
    data_dir: PathBuf,
}

impl Pruner {
    pub(super) fn new(data_dir: PathBuf) -> Pruner {
        Pruner { data_dir }
    }

    /// Removes closed segment `index` (retention; the caller has sealed the removal first).
    /// Refuses the newest segment and any segment without a close row.
    pub fn remove(&self, index: u64) -> Result<(), StoreError> {
        let path = closed_path(&self.data_dir, index)?;
        let file =
            segment::open_read_only(&path).map_err(StoreError::sqlite("open segment", &path))?;
        meta_and_close(&file, &path)?;
        drop(file);
        std::fs::remove_file(&path).map_err(StoreError::io("remove segment", &path))?;
        // Opening it (here, or for a query) may have left SQLite's shared-memory index and an
        // empty WAL beside it; without the file they are litter.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::io(
                        "remove segment",
                        std::path::Path::new(&side),
                    )(e));
                }
                _ => {}
            }
        }
        segment::fsync_dir(&segments_dir(&self.data_dir))
    }
}
