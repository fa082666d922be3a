//! The `[seal]` section: how long an epoch lasts, and where checkpoints go.
//!
//! Owns: its keys, defaults (named in `seal`) and validation.
//!
//! Must not: read keys or touch the seal chain.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, bad, dur};
use crate::seal::remote::PushTarget;
use crate::seal::{DEFAULT_EPOCH_INTERVAL, MAX_EPOCH_INTERVAL, MIN_EPOCH_INTERVAL};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SealFile {
    epoch_interval: Option<String>,
    checkpoint_stdout: Option<bool>,
    checkpoint_every: Option<u64>,
    checkpoint_push_url: Option<String>,
    checkpoint_push_token_file: Option<std::path::PathBuf>,
    checkpoint_push_ca: Option<std::path::PathBuf>,
    checkpoint_push_tenant: Option<String>,
}

/// Where checkpoints are pushed, if anywhere: the URL and a file holding the push token of
/// the receiving endpoint (read at start; never logged).
pub(super) fn checkpoint_push(f: &SealFile) -> Result<Option<PushTarget>, ConfigError> {
    let Some(url) = &f.checkpoint_push_url else {
        return Ok(None);
    };
    let Some(token_file) = &f.checkpoint_push_token_file else {
        return Err(bad(
            "seal.checkpoint_push_token_file",
            "checkpoint_push_url needs the file that holds the endpoint's push token",
        ));
    };
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| {
            bad(
                "seal.checkpoint_push_token_file",
                format!("{}: {e}", token_file.display()),
            )
        })?
        .trim()
        .to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(bad(
            "seal.checkpoint_push_token_file",
            "must hold one token",
        ));
    }
    Ok(Some(PushTarget {
        url: url.clone(),
        token,
        ca_file: f.checkpoint_push_ca.clone(),
        tenant: f.checkpoint_push_tenant.clone(),
    }))
}

/// Whether each checkpoint is printed on stdout as a JSON line (default yes).
/// A checkpoint after every how many epochs (default 1: every one); segment-close, prune and
/// shutdown seals always get one.
pub(super) fn checkpoint_every(f: &SealFile) -> Result<u64, ConfigError> {
    match f.checkpoint_every {
        None => Ok(1),
        Some(n) if (1..=360).contains(&n) => Ok(n),
        Some(_) => Err(bad("seal.checkpoint_every", "must be 1 to 360 epochs")),
    }
}

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
