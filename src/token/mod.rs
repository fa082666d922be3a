//! Tokens: who may push, as what.
//!
//! Owns: the secret format, the keyed hash that is all the disk ever holds of a secret, the
//! token database (`<data-dir>/tokens.sqlite`) and its key (`<data-dir>/token.key`), and the
//! two handles on them: a [`Verifier`] (in memory, read-only, for the push plane) and a
//! [`Manager`] (create, list, revoke; for the CLI and the server's housekeeping).
//!
//! Must not: keep a secret after handing it out once, compare secrets in variable time, or
//! log a secret.
//!
//! Layout:
//! - `manager`: the database, its schema, and the admin events queued for the ledger;
//! - `verifier`: the in-memory set the listeners check credentials against;
//! - `credentials`: reading a presented secret, and throttling failed attempts.

pub mod credentials;
mod manager;
mod verifier;

use std::path::{Path, PathBuf};

use base64::Engine;

pub use manager::{Manager, TokenError, TokenInfo};
pub use verifier::{Identity, Verifier};

/// The token database, inside the data directory.
pub const TOKENS_FILE: &str = "tokens.sqlite";
/// The hashing key, inside the data directory (mode 0600).
pub const KEY_FILE: &str = "token.key";
/// Every secret starts with this, so a leaked one is recognisable by secret scanners.
pub const SECRET_PREFIX: &str = "dft_";
/// Random bytes in a secret: 256 bits, beyond guessing.
const SECRET_BYTES: usize = 32;
/// Bytes of the hashing key.
const KEY_BYTES: usize = 32;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Append through the push listener; nothing else.
    Push,
    /// Read through the query API; nothing else.
    Read,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::Read => "read",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "push" => Some(Kind::Push),
            "read" => Some(Kind::Read),
            _ => None,
        }
    }
}

/// The key that token hashes are keyed with.
#[derive(Clone)]
pub struct HashKey([u8; KEY_BYTES]);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl HashKey {
    /// The keyed hash stored for `secret`.
    pub fn hash(&self, secret: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, secret.as_bytes()).as_bytes()
    }

    /// Reads the key of `data_dir`, creating it (mode 0600) if there is none yet.
    pub fn load_or_create(data_dir: &Path) -> Result<HashKey, TokenError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; KEY_BYTES] = bytes
                    .try_into()
                    .map_err(|_| TokenError::BadKey(path.clone()))?;
                Ok(HashKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_BYTES];
                getrandom::fill(&mut key).map_err(|e| TokenError::Random(e.to_string()))?;
                write_private(&path, &key)?;
                Ok(HashKey(key))
            }
            Err(e) => Err(TokenError::Io(path, e)),
        }
    }
}

/// A fresh secret: the prefix and 32 random bytes, base64url without padding.
pub fn new_secret() -> Result<String, TokenError> {
    let mut raw = [0u8; SECRET_BYTES];
    getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// Writes `bytes` to a new file at `path` readable by its owner only, durably; refuses to
/// overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| TokenError::Io(path.to_path_buf(), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// `<data_dir>/tokens.sqlite`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKENS_FILE)
}
