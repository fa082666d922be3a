//! Checking a seal chain against the pinned epoch-0 public key, for verify.
//!
//! Owns: the rules: seals for consecutive epochs from 0; each signed by its own epoch's key
//! (epoch 0's is pinned by the operator, each later one is carried by the seal before it);
//! digests linked; sequence ranges contiguous; each sealed head equal to the ledger's head at
//! that point; nothing sealed beyond the end of the ledger. What follows the last seal is
//! reported as present but not yet forward-secure.
//!
//! Must not: trust anything on the box about keys: the public key comes from the caller.

use super::record::{self, Seal};
use super::store::Stored;
use crate::store::Hash;

/// One break in the seal chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub epoch: u64,
    /// The sequence number the seal starts at, when it decoded.
    pub seq: Option<u64>,
    pub what: String,
    pub expected: String,
    pub found: String,
}

/// What the check concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub breaks: Vec<Break>,
    /// Epochs sealed and verified.
    pub epochs: u64,
    /// Records covered by verified seals (sequence numbers `0..sealed`).
    pub sealed: u64,
}

/// What the next seal must continue from.
struct Expect<'a> {
    epoch: u64,
    pk: [u8; 32],
    prev: Hash,
    first: u64,
    origin: &'a str,
}

/// Checks `seals` with `pk0`. `head_before(n)` gives the ledger's head before sequence
/// number `n` (the genesis for 0), or `None` when the ledger has no record `n - 1`.
pub fn check(
    seals: &[Stored],
    pk0: &[u8; 32],
    origin: &str,
    head_before: &dyn Fn(u64) -> Option<Hash>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut want = Expect {
        epoch: 0,
        pk: *pk0,
        prev: [0; 32],
        first: 0,
        origin,
    };
    for s in seals {
        match one(s, &want, head_before) {
            Ok(seal) => {
                want.epoch += 1;
                want.pk = seal.next_pk;
                want.prev = record::digest(&s.body, &s.sig);
                want.first = seal.first_seq + seal.count;
                out.epochs += 1;
                out.sealed = want.first;
            }
            Err(b) => {
                out.breaks.push(b);
                return out;
            }
        }
    }
    out
}

/// Checks one stored seal against what must come next.
fn one(
    s: &Stored,
    want: &Expect<'_>,
    head_before: &dyn Fn(u64) -> Option<Hash>,
) -> Result<Seal, Break> {
    let brk = |seq, what: &str, expected: String, found: String| Break {
        epoch: want.epoch,
        seq,
        what: what.into(),
        expected,
        found,
    };
    let seal =
        Seal::decode(&s.body).map_err(|e| brk(None, "seal bytes", "a SEAL_V1 record".into(), e))?;
    let seq = Some(seal.first_seq);
    if seal.epoch != want.epoch || s.epoch != want.epoch {
        let what = if seal.epoch < want.epoch {
            "seal epoch (an old epoch sealed again)"
        } else {
            "seal epoch (an epoch's seal is missing)"
        };
        return Err(brk(
            seq,
            what,
            want.epoch.to_string(),
            seal.epoch.to_string(),
        ));
    }
    if !record::verify_sig(&want.pk, &s.body, &s.sig) {
        let expected = format!("a signature by epoch {}'s key", want.epoch);
        return Err(brk(
            seq,
            "seal signature",
            expected,
            "a signature that does not verify".into(),
        ));
    }
    if seal.prev_digest != want.prev {
        return Err(brk(
            seq,
            "seal link",
            hex::encode(want.prev),
            hex::encode(seal.prev_digest),
        ));
    }
    if seal.first_seq != want.first {
        return Err(brk(
            seq,
            "seal range start",
            want.first.to_string(),
            seal.first_seq.to_string(),
        ));
    }
    if seal.origin != want.origin {
        return Err(brk(
            seq,
            "seal origin",
            want.origin.to_owned(),
            seal.origin.clone(),
        ));
    }
    let end = seal.first_seq + seal.count;
    match head_before(end) {
        None => Err(brk(
            seq,
            "sealed records (the ledger ends before them: truncated)",
            format!("records up to seq {}", end.saturating_sub(1)),
            "fewer records".into(),
        )),
        Some(h) if h != seal.head => Err(brk(
            seq,
            "sealed head",
            hex::encode(seal.head),
            hex::encode(h),
        )),
        Some(_) => Ok(seal),
    }
}
