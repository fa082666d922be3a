//! The seal record (`SEAL_V1`): its bytes, its digest, and its signature.
//!
//! Owns: the one definition of what a seal binds, byte for byte, as `VERIFY.md` documents:
//! `kind u8 ‖ bstr origin ‖ u64 epoch ‖ u64 first_seq ‖ u64 count ‖ head[32] ‖
//! prev_digest[32] ‖ i64 wall_ns ‖ next_pk[32]`, then for a segment-close seal `u64 index ‖
//! u64 seg_first_seq ‖ u64 seg_count ‖ end_head[32] ‖ merkle_root[32] ‖ file_blake3[32]`, and
//! for a prune seal `u32 n ‖ n × (u64 index ‖ close_seal_digest[32])`; integers big-endian,
//! `bstr` a u32 length and the bytes. The signature is Ed25519 over `"daftari v1 seal" ‖ SEAL_V1`; the digest that
//! the next seal links to is blake3 derive-key `"daftari v1 seal digest"` over
//! `SEAL_V1 ‖ signature`.
//!
//! Must not: do I/O, or accept trailing bytes when decoding.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::SealError;
use crate::store::Hash;

/// Version byte of the seal encoding (first byte of the signed message's body).
pub const SEAL_VERSION: u8 = 1;
/// Domain separation of seal signatures.
pub const SIGN_PREFIX: &[u8] = b"daftari v1 seal";
/// Context of the digest the next seal links to.
pub const CTX_SEAL_DIGEST: &str = "daftari v1 seal digest";

/// What a seal closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    /// The end of an epoch.
    Epoch = 0,
    /// An epoch that also seals a closed segment ([`SegmentClose`]).
    SegmentClose = 1,
    /// An epoch that also records the removal of whole segments by retention.
    Prune = 2,
    /// The last epoch before a clean shutdown.
    Shutdown = 3,
}

impl SealKind {
    fn from_u8(b: u8) -> Option<SealKind> {
        match b {
            0 => Some(SealKind::Epoch),
            1 => Some(SealKind::SegmentClose),
            2 => Some(SealKind::Prune),
            3 => Some(SealKind::Shutdown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SealKind::Epoch => "epoch",
            SealKind::SegmentClose => "segment-close",
            SealKind::Prune => "prune",
            SealKind::Shutdown => "shutdown",
        }
    }
}

/// Segments one prune seal may list: a year of daily segments, with room to spare.
pub const MAX_PRUNED_PER_SEAL: usize = 4096;

/// What a segment-close seal binds about its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentClose {
    pub index: u64,
    pub first_seq: u64,
    pub count: u64,
    /// Head after the segment's last record.
    pub end_head: Hash,
    /// RFC 6962-shaped blake3 Merkle root over the segment's record leaves.
    pub merkle_root: Hash,
    /// `file_blake3` of the closed file.
    pub file_hash: Hash,
}

/// One segment removed by retention, named with the digest of its close seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub index: u64,
    pub close_digest: Hash,
}

/// The part of a seal that depends on its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// Epoch and shutdown seals.
    None,
    Segment(SegmentClose),
    Prune(Vec<Pruned>),
}

/// One seal, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub kind: SealKind,
    pub origin: String,
    pub epoch: u64,
    /// First sequence number the epoch covers.
    pub first_seq: u64,
    /// Records the epoch covers (0 for an empty epoch).
    pub count: u64,
    /// Chain head after the last covered record (unchanged by an empty epoch).
    pub head: Hash,
    /// Digest of the previous seal (zero for epoch 0).
    pub prev_digest: Hash,
    /// Wall clock at sealing, for people; never used to order anything.
    pub wall_ns: i64,
    /// Public key of the next epoch: the one that must verify the next seal.
    pub next_pk: [u8; 32],
    /// Segment-close and prune details (matching `kind`).
    pub extra: Extra,
}

impl Seal {
    /// The `SEAL_V1` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.origin.len());
        out.push(SEAL_VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&(self.origin.len() as u32).to_be_bytes());
        out.extend_from_slice(self.origin.as_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.first_seq.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.prev_digest);
        out.extend_from_slice(&self.wall_ns.to_be_bytes());
        out.extend_from_slice(&self.next_pk);
        match &self.extra {
            Extra::None => {}
            Extra::Segment(c) => {
                out.extend_from_slice(&c.index.to_be_bytes());
                out.extend_from_slice(&c.first_seq.to_be_bytes());
                out.extend_from_slice(&c.count.to_be_bytes());
                out.extend_from_slice(&c.end_head);
                out.extend_from_slice(&c.merkle_root);
                out.extend_from_slice(&c.file_hash);
            }
            Extra::Prune(list) => {
                out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                for p in list {
                    out.extend_from_slice(&p.index.to_be_bytes());
                    out.extend_from_slice(&p.close_digest);
                }
            }
        }
        out
    }

    /// Decodes `SEAL_V1` bytes, refusing anything malformed or trailing.
    pub fn decode(b: &[u8]) -> Result<Seal, SealError> {
        let mut c = Cur { b, pos: 0 };
        if c.take(1)?[0] != SEAL_VERSION {
            return Err(SealError::Malformed("unknown seal version".into()));
        }
        let kind = SealKind::from_u8(c.take(1)?[0])
            .ok_or_else(|| SealError::Malformed("unknown seal kind".into()))?;
        let n = u32::from_be_bytes(c.arr()?) as usize;
        if n > 255 {
            return Err(SealError::Malformed("origin longer than 255 bytes".into()));
        }
        let origin = String::from_utf8(c.take(n)?.to_vec())
            .map_err(|_| SealError::Malformed("origin not UTF-8".into()))?;
        let seal = Seal {
            kind,
            origin,
            epoch: u64::from_be_bytes(c.arr()?),
            first_seq: u64::from_be_bytes(c.arr()?),
            count: u64::from_be_bytes(c.arr()?),
            head: c.arr()?,
            prev_digest: c.arr()?,
            wall_ns: i64::from_be_bytes(c.arr()?),
            next_pk: c.arr()?,
            extra: Extra::None,
        };
        let seal = Seal {
            extra: decode_extra(kind, &mut c)?,
            ..seal
        };
        if c.pos != b.len() {
            return Err(SealError::Malformed(format!(
                "{} bytes after the seal",
                b.len() - c.pos
            )));
        }
        Ok(seal)
    }

    /// Signs the seal with its epoch's key.
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&message(&self.encode())).to_bytes()
    }
}

/// The kind-dependent tail of a seal.
fn decode_extra(kind: SealKind, c: &mut Cur<'_>) -> Result<Extra, SealError> {
    Ok(match kind {
        SealKind::Epoch | SealKind::Shutdown => Extra::None,
        SealKind::SegmentClose => Extra::Segment(SegmentClose {
            index: u64::from_be_bytes(c.arr()?),
            first_seq: u64::from_be_bytes(c.arr()?),
            count: u64::from_be_bytes(c.arr()?),
            end_head: c.arr()?,
            merkle_root: c.arr()?,
            file_hash: c.arr()?,
        }),
        SealKind::Prune => {
            let n = u32::from_be_bytes(c.arr()?) as usize;
            if n == 0 || n > MAX_PRUNED_PER_SEAL {
                return Err(SealError::Malformed(format!(
                    "a prune seal listing {n} segments"
                )));
            }
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(Pruned {
                    index: u64::from_be_bytes(c.arr()?),
                    close_digest: c.arr()?,
                });
            }
            Extra::Prune(list)
        }
    })
}

/// The signed message: the domain prefix and the seal bytes.
fn message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_PREFIX.len() + body.len());
    m.extend_from_slice(SIGN_PREFIX);
    m.extend_from_slice(body);
    m
}

/// Whether `sig` is `pk`'s signature over the seal bytes `body` (strict verification).
pub fn verify_sig(pk: &[u8; 32], body: &[u8], sig: &[u8]) -> bool {
    verify_ed25519(pk, &message(body), sig)
}

/// Whether `sig` is `pk`'s strict Ed25519 signature over `msg`.
pub fn verify_ed25519(pk: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (VerifyingKey::from_bytes(pk), Signature::from_slice(sig)) else {
        return false;
    };
    pk.verify_strict(msg, &sig).is_ok()
}

/// The digest the next seal links to.
pub fn digest(body: &[u8], sig: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(CTX_SEAL_DIGEST);
    h.update(body);
    h.update(sig);
    *h.finalize().as_bytes()
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SealError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| SealError::Malformed("seal ends early".into()))?;
        let out = &self.b[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], SealError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> Seal {
        Seal {
            kind: SealKind::Epoch,
            origin: "sink.example/log".into(),
            epoch: 7,
            first_seq: 100,
            count: 5,
            head: [1; 32],
            prev_digest: [2; 32],
            wall_ns: 1_754_400_000_000_000_000,
            next_pk: [3; 32],
            extra: Extra::None,
        }
    }

    fn with_extras() -> Vec<Seal> {
        let close = Seal {
            kind: SealKind::SegmentClose,
            extra: Extra::Segment(SegmentClose {
                index: 3,
                first_seq: 90,
                count: 12,
                end_head: [4; 32],
                merkle_root: [5; 32],
                file_hash: [6; 32],
            }),
            ..seal()
        };
        let prune = Seal {
            kind: SealKind::Prune,
            extra: Extra::Prune(vec![
                Pruned {
                    index: 0,
                    close_digest: [7; 32],
                },
                Pruned {
                    index: 1,
                    close_digest: [8; 32],
                },
            ]),
            ..seal()
        };
        vec![seal(), close, prune]
    }

    #[test]
    fn decode_inverts_encode_and_refuses_trailing_bytes() {
        for s in with_extras() {
            let b = s.encode();
            assert_eq!(Seal::decode(&b).unwrap(), s);
            let mut longer = b.clone();
            longer.push(0);
            assert!(Seal::decode(&longer).is_err());
            assert!(Seal::decode(&b[..b.len() - 1]).is_err());
        }
    }

    #[test]
    fn a_kind_without_its_details_does_not_decode() {
        let mut b = seal().encode();
        b[1] = SealKind::SegmentClose as u8;
        assert!(Seal::decode(&b).is_err());
        b[1] = SealKind::Prune as u8;
        b.extend_from_slice(&0u32.to_be_bytes());
        assert!(Seal::decode(&b).is_err(), "an empty prune list");
    }

    #[test]
    fn a_signature_covers_every_byte() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pk = key.verifying_key().to_bytes();
        for s in with_extras() {
            let body = s.encode();
            let sig = s.sign(&key);
            assert!(verify_sig(&pk, &body, &sig));
            for i in 0..body.len() {
                let mut bad = body.clone();
                bad[i] ^= 1;
                assert!(!verify_sig(&pk, &bad, &sig), "byte {i}");
            }
        }
        let body = seal().encode();
        let sig = seal().sign(&key);
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert!(!verify_sig(&other, &body, &sig));
    }
}
