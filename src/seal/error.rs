//! How sealing fails: [`SealError`], the one error type of `seal/`.
//!
//! Owns: the kinds of failure and their wording. The server turns any of them into a stop
//! (a sealer that cannot seal must not keep acknowledging); verify and the CLI print them.
//!
//! Must not: carry a `rusqlite` type out of `seal/` (SQLite's message is kept as text).

use crate::store::StoreError;

/// A failure of the sealer, the seal chain, a key or checkpoint file, or a checkpoint push.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `seals.sqlite` could not be opened, read or appended to.
    #[error("{0}")]
    Db(String),
    /// A key, note or checkpoint file could not be read, written or synced, or no
    /// randomness was to be had for a new key.
    #[error("{0}")]
    File(String),
    /// Bytes that do not decode as the seal, note or key they claim to be.
    #[error("{0}")]
    Malformed(String),
    /// The ledger failed under the sealer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint push target is misconfigured or its worker is gone.
    #[error("{0}")]
    Remote(String),
    /// Sealing cannot go on as asked: a closed segment that does not chain to its close row,
    /// retention without its admin stream or pruner, an admin entry that failed.
    #[error("{0}")]
    Refused(String),
}
