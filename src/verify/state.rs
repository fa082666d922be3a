//! Incremental verify: a state file that remembers where the last intact run stopped, so
//! that a daily run checks only what is new.
//!
//! Owns: the file (`daftari-verify-state/v1`, JSON): the log's origin and id, the pinned key it
//! was made with, the last verified seal (row, digest) and what the next seal must continue
//! (epoch, key, range start, segment-close and prune positions, the close seals still needed),
//! and the highest segment index whose file was checked against its close seal.
//!
//! A resumed run re-checks that the remembered seal is still there with the same digest, then
//! verifies only later seals, and skips the record walk, file hash and SQLite check of the
//! segments already verified (their close seals were checked against them then; a change
//! since is for a full run to find). The operator keeps the file where the sink's root cannot
//! write, like the keys.
//!
//! Must not: be read from the data directory by default, or be written after a run that was
//! not intact.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::seal::check::{CloseFact, Start};
use crate::seal::record::SegmentClose;
use crate::store::Hash;

pub const FORMAT: &str = "daftari-verify-state/v1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where the last intact run stopped.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    pub origin: String,
    pub log_id: String,
    pub pk0: [u8; 32],
    /// Row and digest of the last verified seal.
    pub n: u64,
    pub digest: Hash,
    pub start: Start,
    /// Segments up to this index were checked against their close seals.
    pub verified_through: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    format: String,
    origin: String,
    log_id: String,
    pubkey: String,
    seal_row: u64,
    seal_digest: String,
    next_epoch: u64,
    next_pk: String,
    next_first_seq: u64,
    next_close: u64,
    close_end: Option<u64>,
    next_prune: u64,
    closes: Vec<Close>,
    verified_through: Option<u64>,
    verified_at_unix: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Close {
    epoch: u64,
    wall_ns: i64,
    digest: String,
    index: u64,
    first_seq: u64,
    count: u64,
    end_head: String,
    merkle_root: String,
    file_hash: String,
}

fn hash(s: &str, what: &str) -> Result<Hash, String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <Hash>::try_from(b).ok())
        .ok_or_else(|| format!("state file: {what} is not 32 hex bytes"))
}

fn key(s: &str, what: &str) -> Result<[u8; 32], String> {
    B64.decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("state file: {what} is not a base64 key"))
}

/// Reads a state file; `Ok(None)` when there is none yet (the first run is a full one).
pub(crate) fn read(path: &Path) -> Result<Option<Resume>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let f: File = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if f.format != FORMAT {
        return Err(format!("{}: not a {FORMAT} file", path.display()));
    }
    let mut closes = Vec::with_capacity(f.closes.len());
    for c in &f.closes {
        closes.push(CloseFact {
            epoch: c.epoch,
            wall_ns: c.wall_ns,
            digest: hash(&c.digest, "digest")?,
            close: SegmentClose {
                index: c.index,
                first_seq: c.first_seq,
                count: c.count,
                end_head: hash(&c.end_head, "end_head")?,
                merkle_root: hash(&c.merkle_root, "merkle_root")?,
                file_hash: hash(&c.file_hash, "file_hash")?,
            },
        });
    }
    Ok(Some(Resume {
        origin: f.origin,
        log_id: f.log_id,
        pk0: key(&f.pubkey, "pubkey")?,
        n: f.seal_row,
        digest: hash(&f.seal_digest, "seal_digest")?,
        start: Start {
            epoch: f.next_epoch,
            pk: key(&f.next_pk, "next_pk")?,
            prev: hash(&f.seal_digest, "seal_digest")?,
            first: f.next_first_seq,
            next_close: f.next_close,
            close_end: f.close_end,
            next_prune: f.next_prune,
            closes,
        },
        verified_through: f.verified_through,
    }))
}

/// Writes the state after an intact run (temporary file, then rename).
pub(crate) fn write(path: &Path, r: &Resume) -> Result<(), String> {
    let s = &r.start;
    let f = File {
        format: FORMAT.into(),
        origin: r.origin.clone(),
        log_id: r.log_id.clone(),
        pubkey: B64.encode(r.pk0),
        seal_row: r.n,
        seal_digest: hex::encode(r.digest),
        next_epoch: s.epoch,
        next_pk: B64.encode(s.pk),
        next_first_seq: s.first,
        next_close: s.next_close,
        close_end: s.close_end,
        next_prune: s.next_prune,
        closes: s
            .closes
            .iter()
            .map(|c| Close {
                epoch: c.epoch,
                wall_ns: c.wall_ns,
                digest: hex::encode(c.digest),
                index: c.close.index,
                first_seq: c.close.first_seq,
                count: c.close.count,
                end_head: hex::encode(c.close.end_head),
                merkle_root: hex::encode(c.close.merkle_root),
                file_hash: hex::encode(c.close.file_hash),
            })
            .collect(),
        verified_through: r.verified_through,
        verified_at_unix: crate::clock::now_ns().div_euclid(1_000_000_000),
    };
    let text = serde_json::to_string_pretty(&f).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}
