//! The `[seal]` section: how long an epoch lasts, and where checkpoints go.
//!
//! Owns: its keys, defaults (named in `seal`) and validation.
//!
//! Must not: read keys or touch the seal chain.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, bad, dur};
use crate::seal::{DEFAULT_EPOCH_INTERVAL, MAX_EPOCH_INTERVAL, MIN_EPOCH_INTERVAL};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SealFile {
    epoch_interval: Option<String>,
    checkpoint_stdout: Option<bool>,
}

/// Whether each checkpoint is printed on stdout as a JSON line (default yes).
pub(super) fn checkpoint_stdout(f: &SealFile) -> bool {
    f.checkpoint_stdout.unwrap_or(true)
}

/// The epoch length: the flag, else the file, else the default; 1 s to 60 s.
pub(super) fn epoch_interval(
    f: &SealFile,
    flag: Option<Duration>,
) -> Result<Duration, ConfigError> {
    let d = match flag {
        Some(d) => d,
        None => dur(
            "seal.epoch_interval",
            &f.epoch_interval,
            DEFAULT_EPOCH_INTERVAL,
        )?,
    };
    if !(MIN_EPOCH_INTERVAL..=MAX_EPOCH_INTERVAL).contains(&d) {
        return Err(bad("seal.epoch_interval", "must be between 1s and 60s"));
    }
    Ok(d)
}
