//! Checkpoints: C2SP signed notes that anchor the log's size and head off the box.
//!
//! Owns: the static log key (`state/log.key`, an Ed25519 seed, mode 0600), its verifier key
//! in C2SP form (`<origin>+<key id hex>+<base64(0x01 ‖ public key)>`, the key id being the
//! first 4 bytes of SHA-256 over `origin ‖ "\n" ‖ 0x01 ‖ public key`), the checkpoint body
//!
//! ```text
//! daftari-checkpoint/v1
//! <origin>
//! <size: the next sequence number>
//! <base64 head after record size-1>
//! epoch <e>
//! seal <base64 digest of epoch e's seal>
//! time <unix seconds>
//! ```
//!
//! and the note around it: the body, a blank line, and `— <origin> <base64(key id ‖ sig)>`,
//! the Ed25519 signature being over the body bytes. A distinct first line keeps the body from
//! being mistaken for an RFC 6962 checkpoint.
//!
//! Must not: sign anything but a checkpoint body.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::SealError;
use crate::store::Hash;

/// First line of every checkpoint body.
pub const HEADER: &str = "daftari-checkpoint/v1";
/// The static checkpoint signing key, inside the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
/// The signature line's lead: an em dash and a space, as C2SP notes write it.
const SIG_LEAD: &str = "\u{2014} ";
/// C2SP signature type of Ed25519.
const ED25519_TYPE: u8 = 0x01;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub head: Hash,
    pub epoch: u64,
    /// Digest of the seal of `epoch` (binds the seal chain, and so every close seal and
    /// Merkle root before it, to this checkpoint).
    pub seal: Hash,
    pub time_s: i64,
}

impl Checkpoint {
    /// The checkpoint exported after a seal whose bytes have `digest`. Notes are
    /// deterministic, so this re-makes an exported note byte for byte.
    pub fn of_seal(seal: &super::record::Seal, digest: Hash) -> Checkpoint {
        Checkpoint {
            origin: seal.origin.clone(),
            size: seal.first_seq + seal.count,
            head: seal.head,
            epoch: seal.epoch,
            seal: digest,
            time_s: seal.wall_ns.div_euclid(1_000_000_000),
        }
    }

    pub fn body(&self) -> String {
        format!(
            "{HEADER}\n{}\n{}\n{}\nepoch {}\nseal {}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.head),
            self.epoch,
            B64.encode(self.seal),
            self.time_s
        )
    }

    fn parse_body(body: &str) -> Result<Checkpoint, SealError> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| SealError::Malformed("body must end with a newline".into()))?
            .split('\n')
            .collect();
        let [header, origin, size, head, epoch, seal, time] = lines[..] else {
            return Err(SealError::Malformed(format!(
                "a checkpoint body has 7 lines, this one {}",
                lines.len()
            )));
        };
        if header != HEADER {
            return Err(SealError::Malformed(format!(
                "first line is not {HEADER:?}"
            )));
        }
        let head = B64
            .decode(head)
            .ok()
            .and_then(|b| <Hash>::try_from(b).ok())
            .ok_or_else(|| SealError::Malformed("head is not 32 base64 bytes".into()))?;
        let seal = seal
            .strip_prefix("seal ")
            .and_then(|v| B64.decode(v).ok())
            .and_then(|b| <Hash>::try_from(b).ok())
            .ok_or_else(|| SealError::Malformed("bad \"seal \" line".into()))?;
        let num = |line: &str, key: &str| -> Result<i64, SealError> {
            line.strip_prefix(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| SealError::Malformed(format!("bad {key:?} line")))
        };
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: size
                .parse()
                .map_err(|_| SealError::Malformed("bad size line".into()))?,
            head,
            epoch: num(epoch, "epoch ")? as u64,
            seal,
            time_s: num(time, "time ")?,
        })
    }
}

/// The checkpoint signer: the static log key and the origin it signs as.
#[derive(Debug)]
pub struct NoteSigner {
    origin: String,
    key: SigningKey,
}

impl NoteSigner {
    /// Reads `state/log.key`, creating it on the first start (returns the verifier key then).
    pub fn open(data_dir: &Path, origin: &str) -> Result<(NoteSigner, Option<String>), SealError> {
        let path = key_path(data_dir);
        let (seed, created) = match std::fs::read(&path) {
            Ok(b) => (
                <[u8; 32]>::try_from(b).map_err(|_| {
                    SealError::Malformed(format!("{}: not 32 bytes", path.display()))
                })?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| SealError::File(format!("random log key: {e}")))?;
                write_private(&path, &seed)?;
                (seed, true)
            }
            Err(e) => return Err(SealError::File(format!("{}: {e}", path.display()))),
        };
        let signer = NoteSigner {
            origin: origin.to_owned(),
            key: SigningKey::from_bytes(&seed),
        };
        let vkey = created.then(|| signer.vkey());
        Ok((signer, vkey))
    }

    /// Reads an existing `state/log.key` (never creates one).
    pub fn load(data_dir: &Path, origin: &str) -> Result<NoteSigner, SealError> {
        let path = key_path(data_dir);
        let b = std::fs::read(&path)
            .map_err(|e| SealError::File(format!("{}: {e}", path.display())))?;
        let seed = <[u8; 32]>::try_from(b)
            .map_err(|_| SealError::Malformed(format!("{}: not 32 bytes", path.display())))?;
        Ok(NoteSigner {
            origin: origin.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The verifier key in C2SP form.
    pub fn vkey(&self) -> String {
        vkey_string(&self.origin, &self.key.verifying_key().to_bytes())
    }

    /// The signed note of `cp`.
    pub fn sign(&self, cp: &Checkpoint) -> String {
        let body = cp.body();
        let pk = self.key.verifying_key().to_bytes();
        let mut sig = key_id(&self.origin, &pk).to_vec();
        sig.extend_from_slice(&self.key.sign(body.as_bytes()).to_bytes());
        format!("{body}\n{SIG_LEAD}{} {}\n", self.origin, B64.encode(sig))
    }
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(super::keys::STATE_DIR).join(LOG_KEY_FILE)
}

/// Writes a new private (0600) file, creating its directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| SealError::File(format!("{}: {e}", dir.display())))?;
    }
    crate::token::write_private(path, bytes).map_err(|e| SealError::File(e.to_string()))
}

fn key_id(name: &str, pk: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(pk);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn vkey_string(name: &str, pk: &[u8; 32]) -> String {
    let mut b = vec![ED25519_TYPE];
    b.extend_from_slice(pk);
    format!("{name}+{}+{}", hex::encode(key_id(name, pk)), B64.encode(b))
}

/// A verifier key parsed from its C2SP form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VKey {
    pub name: String,
    id: [u8; 4],
    pk: [u8; 32],
}

impl VKey {
    pub fn parse(s: &str) -> Result<VKey, SealError> {
        // The name cannot hold '+'; the base64 key can.
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed(
                "a verifier key is <name>+<key id>+<base64 key>".into(),
            ));
        };
        let b = B64
            .decode(key)
            .map_err(|_| SealError::Malformed("verifier key: not base64".into()))?;
        let (Some((&ED25519_TYPE, pk)), true) = (b.split_first(), b.len() == 33) else {
            return Err(SealError::Malformed(
                "verifier key: not an Ed25519 key".into(),
            ));
        };
        let pk = <[u8; 32]>::try_from(pk)
            .map_err(|_| SealError::Malformed("verifier key: not 32 bytes".into()))?;
        let id = key_id(name, &pk);
        if hex::decode(id_hex).ok().as_deref() != Some(&id[..]) {
            return Err(SealError::Malformed(
                "verifier key: the key id does not match the key".into(),
            ));
        }
        Ok(VKey {
            name: name.to_owned(),
            id,
            pk,
        })
    }

    /// Verifies a note; returns its checkpoint when one of its signatures is this key's.
    pub fn open(&self, note: &str) -> Result<Checkpoint, SealError> {
        let (body, sigs) = note.split_once("\n\n").ok_or_else(|| {
            SealError::Malformed("a note has a body, a blank line and signatures".into())
        })?;
        let body = format!("{body}\n");
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix(SIG_LEAD) else {
                continue;
            };
            let Some((name, sig)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(sig) = B64.decode(sig) else { continue };
            if name != self.name || sig.len() != 68 || sig[..4] != self.id {
                continue;
            }
            if super::record::verify_ed25519(&self.pk, body.as_bytes(), &sig[4..]) {
                return Checkpoint::parse_body(&body);
            }
            return Err(SealError::Malformed("the signature does not verify".into()));
        }
        Err(SealError::Malformed(format!(
            "no signature by {:?}",
            self.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "sink.example/log".into(),
            size: 1234,
            head: [7; 32],
            epoch: 99,
            seal: [8; 32],
            time_s: 1_754_400_000,
        }
    }

    #[test]
    fn a_signed_note_opens_with_its_vkey_only() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, vkey) = NoteSigner::open(dir.path(), "sink.example/log").unwrap();
        let vkey = vkey.expect("created");
        assert!(vkey.starts_with("sink.example/log+"));
        let note = signer.sign(&cp());
        assert!(note.starts_with("daftari-checkpoint/v1\nsink.example/log\n1234\n"));
        assert!(note.contains("\n\n\u{2014} sink.example/log "));
        let vk = VKey::parse(&vkey).unwrap();
        assert_eq!(vk.open(&note).unwrap(), cp());
        // Any change to the body breaks the signature.
        let bad = note.replace("\n1234\n", "\n1235\n");
        assert!(vk.open(&bad).is_err());
        // Another key does not open it; a reopened signer keeps its key.
        let other = tempfile::tempdir().unwrap();
        let (o, _) = NoteSigner::open(other.path(), "sink.example/log").unwrap();
        assert!(VKey::parse(&o.vkey()).unwrap().open(&note).is_err());
        let (again, created) = NoteSigner::open(dir.path(), "sink.example/log").unwrap();
        assert!(created.is_none());
        assert_eq!(again.vkey(), vkey);
        assert!(VKey::parse("name+00000000+AAAA").is_err());
    }
}
