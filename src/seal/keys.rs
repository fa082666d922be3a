//! The epoch key ratchet and the key file.
//!
//! Owns: `K(e+1) = blake3 derive_key("daftari v1 epoch ratchet", K(e))`, the epoch's Ed25519
//! signing key `from_bytes(derive_key("daftari v1 seal sign seed", K(e)))`, and
//! `state/epoch.key`: `"DFTK" ‖ u8 version ‖ u64 epoch ‖ K[32] ‖ blake3(previous bytes)[32]`,
//! replaced atomically (temporary file, fsync, rename, fsync the directory), mode 0600.
//!
//! Must not: keep an old epoch's key: keys are zeroized when dropped, and the file holds only
//! the current epoch's.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use zeroize::Zeroize;

use super::SealError;

pub const CTX_RATCHET: &str = "daftari v1 epoch ratchet";
pub const CTX_SIGN_SEED: &str = "daftari v1 seal sign seed";

const MAGIC: &[u8; 4] = b"DFTK";
const KEY_FILE_VERSION: u8 = 1;
const KEY_FILE_LEN: usize = 4 + 1 + 8 + 32 + 32;

/// The directory of the key file, inside the data directory.
pub const STATE_DIR: &str = "state";
/// The key file.
pub const KEY_FILE: &str = "epoch.key";

/// One epoch's secret. Zeroized on drop.
#[derive(Clone)]
pub struct EpochKey {
    epoch: u64,
    k: [u8; 32],
}

impl Drop for EpochKey {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochKey {{ epoch: {}, .. }}", self.epoch)
    }
}

impl EpochKey {
    /// A fresh epoch-0 key from the operating system's randomness.
    pub fn generate() -> Result<EpochKey, SealError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| SealError::File(format!("random epoch key: {e}")))?;
        Ok(EpochKey { epoch: 0, k })
    }

    pub fn from_parts(epoch: u64, k: [u8; 32]) -> EpochKey {
        EpochKey { epoch, k }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next epoch's key. The current one cannot be derived back from it.
    pub fn next(&self) -> EpochKey {
        EpochKey {
            epoch: self.epoch + 1,
            k: blake3::derive_key(CTX_RATCHET, &self.k),
        }
    }

    /// This epoch's signing key.
    pub fn signing_key(&self) -> SigningKey {
        let mut seed = blake3::derive_key(CTX_SIGN_SEED, &self.k);
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        key
    }

    /// This epoch's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_DIR).join(KEY_FILE)
}

/// Reads the key file, if there is one.
pub fn read(data_dir: &Path) -> Result<Option<EpochKey>, SealError> {
    let path = key_path(data_dir);
    let mut bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SealError::File(format!("{}: {e}", path.display()))),
    };
    let bad = |why: &str| SealError::Malformed(format!("{}: {why}", path.display()));
    if bytes.len() != KEY_FILE_LEN || &bytes[..4] != MAGIC || bytes[4] != KEY_FILE_VERSION {
        bytes.zeroize();
        return Err(bad("not a daftari epoch key file"));
    }
    let sum = blake3::hash(&bytes[..KEY_FILE_LEN - 32]);
    if sum.as_bytes() != &bytes[KEY_FILE_LEN - 32..] {
        bytes.zeroize();
        return Err(bad("checksum mismatch (damaged key file)"));
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&bytes[5..13]);
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes[13..45]);
    bytes.zeroize();
    Ok(Some(EpochKey {
        epoch: u64::from_be_bytes(epoch),
        k,
    }))
}

/// Replaces the key file with `key`: temporary file, fsync, rename, fsync the directory.
pub fn write(data_dir: &Path, key: &EpochKey) -> Result<(), SealError> {
    let dir = data_dir.join(STATE_DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| SealError::File(format!("{}: {e}", dir.display())))?;
    let mut bytes = Vec::with_capacity(KEY_FILE_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.push(KEY_FILE_VERSION);
    bytes.extend_from_slice(&key.epoch.to_be_bytes());
    bytes.extend_from_slice(&key.k);
    let sum = blake3::hash(&bytes);
    bytes.extend_from_slice(sum.as_bytes());
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    let result = write_synced(&tmp, &bytes);
    bytes.zeroize();
    result?;
    let path = dir.join(KEY_FILE);
    std::fs::rename(&tmp, &path)
        .map_err(|e| SealError::File(format!("rename {}: {e}", path.display())))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SealError::File(format!("fsync {}: {e}", dir.display())))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SealError::File(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| SealError::File(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratchet_is_deterministic_and_one_way_keys_differ() {
        let k0 = EpochKey::from_parts(0, [7; 32]);
        let k1 = k0.next();
        assert_eq!(k1.epoch(), 1);
        assert_eq!(k0.next().k, k1.k);
        assert_ne!(k0.public_key(), k1.public_key());
        assert_eq!(
            k1.k,
            blake3::derive_key(CTX_RATCHET, &[7; 32]),
            "K1 = derive_key(ratchet, K0)"
        );
    }

    #[test]
    fn the_key_file_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let k = EpochKey::from_parts(41, [5; 32]);
        write(dir.path(), &k).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!((back.epoch(), back.k), (41, [5; 32]));
        let path = key_path(dir.path());
        let mut b = std::fs::read(&path).unwrap();
        b[20] ^= 1;
        std::fs::write(&path, b).unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(matches!(e, SealError::Malformed(_)), "{e:?}");
        assert!(e.to_string().contains("checksum"), "{e}");
    }
}
