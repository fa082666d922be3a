//! Checking a seal chain against the pinned epoch-0 public key, for verify.
//!
//! Owns: the rules: seals for consecutive epochs from 0; each signed by its own epoch's key
//! (epoch 0's is pinned by the operator, each later one is carried by the seal before it);
//! digests linked; sequence ranges contiguous; each sealed head equal to the ledger's head at
//! that point; nothing sealed beyond the end of the ledger. What follows the last seal is
//! reported as present but not yet forward-secure. Segment-close seals come in index order
//! and cover their segment's range; a prune seal names only segments whose close seal it
//! repeats by digest, oldest first. The caller matches close seals against the segment files
//! and prune seals against the retention policy.
//!
//! Must not: trust anything on the box about keys: the public key comes from the caller.

use super::chain_db::Stored;
use super::record::{self, Extra, Seal, SegmentClose};
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

/// A verified segment-close seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFact {
    pub epoch: u64,
    pub wall_ns: i64,
    pub digest: Hash,
    pub close: SegmentClose,
}

/// A verified prune seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneFact {
    pub epoch: u64,
    pub wall_ns: i64,
    pub indices: Vec<u64>,
}

/// The ledger's head before a sequence number, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadAt {
    Known(Hash),
    /// In segments removed by retention (whose prune seals the caller checks).
    Pruned,
    /// Past the end of the ledger.
    Beyond,
}

/// Where a check starts: epoch 0 with the pinned key, or where an earlier run left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The epoch the next seal must have.
    pub epoch: u64,
    /// Its public key.
    pub pk: [u8; 32],
    /// The digest it must link to.
    pub prev: Hash,
    /// The first sequence number it must cover.
    pub first: u64,
    /// The index the next segment-close seal must have, and where its range must start.
    pub next_close: u64,
    pub close_end: Option<u64>,
    /// The index the next prune seal must start with.
    pub next_prune: u64,
    /// Close seals of segments not pruned (a prune seal must repeat their digests).
    pub closes: Vec<CloseFact>,
}

impl Start {
    pub fn genesis(pk0: &[u8; 32]) -> Start {
        Start {
            epoch: 0,
            pk: *pk0,
            prev: [0; 32],
            first: 0,
            next_close: 0,
            close_end: None,
            next_prune: 0,
            closes: Vec::new(),
        }
    }
}

/// What the check concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub breaks: Vec<Break>,
    /// Epochs sealed and verified.
    pub epochs: u64,
    /// Records covered by verified seals (sequence numbers `0..sealed`).
    pub sealed: u64,
    /// Verified segment-close seals, by segment index.
    pub closes: Vec<CloseFact>,
    pub prunes: Vec<PruneFact>,
    /// Where a later run can start: after the last verified seal.
    pub end: Option<Start>,
    next_close: u64,
    close_end: Option<u64>,
    next_prune: u64,
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
    head_before: &dyn Fn(u64) -> HeadAt,
) -> Outcome {
    check_from(seals, Start::genesis(pk0), origin, head_before)
}

/// Checks `seals`, which must continue `start`.
pub fn check_from(
    seals: &[Stored],
    start: Start,
    origin: &str,
    head_before: &dyn Fn(u64) -> HeadAt,
) -> Outcome {
    let mut out = Outcome {
        closes: start.closes.clone(),
        next_close: start.next_close,
        close_end: start.close_end,
        next_prune: start.next_prune,
        sealed: start.first,
        ..Outcome::default()
    };
    let mut want = Expect {
        epoch: start.epoch,
        pk: start.pk,
        prev: start.prev,
        first: start.first,
        origin,
    };
    for s in seals {
        let checked = one(s, &want, head_before).and_then(|seal| {
            kind_rules(&seal, &s.body, &s.sig, &mut out)?;
            Ok(seal)
        });
        match checked {
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
    // Kept: the closes of segments not pruned, and of the last one pruned (the oldest remaining
    // segment continues it).
    let keep_from = out.next_prune.saturating_sub(1);
    out.end = Some(Start {
        epoch: want.epoch,
        pk: want.pk,
        prev: want.prev,
        first: want.first,
        next_close: out.next_close,
        close_end: out.close_end,
        next_prune: out.next_prune,
        closes: out
            .closes
            .iter()
            .filter(|c| c.close.index >= keep_from)
            .cloned()
            .collect(),
    });
    out
}

impl Outcome {
    /// Segments `0..pruned_below()` were removed under verified prune seals.
    pub fn pruned_below(&self) -> u64 {
        self.next_prune
    }
}

/// The rules of segment-close and prune seals; records them in `out`.
fn kind_rules(seal: &Seal, body: &[u8], sig: &[u8], out: &mut Outcome) -> Result<(), Break> {
    let brk = |what: &str, expected: String, found: String| Break {
        epoch: seal.epoch,
        seq: Some(seal.first_seq),
        what: what.into(),
        expected,
        found,
    };
    match &seal.extra {
        Extra::None => {}
        Extra::Segment(c) => {
            if c.index != out.next_close {
                let what = "segment-close seal (segments are sealed in order)";
                return Err(brk(what, out.next_close.to_string(), c.index.to_string()));
            }
            if let Some(end) = out.close_end
                && c.first_seq != end
            {
                let what = "segment-close seal: first seq";
                return Err(brk(what, end.to_string(), c.first_seq.to_string()));
            }
            if c.first_seq + c.count > seal.first_seq + seal.count {
                let what = "segment-close seal: the segment ends after the sealed range";
                let expected = format!("at most seq {}", seal.first_seq + seal.count);
                return Err(brk(what, expected, (c.first_seq + c.count).to_string()));
            }
            out.next_close = c.index + 1;
            out.close_end = Some(c.first_seq + c.count);
            out.closes.push(CloseFact {
                epoch: seal.epoch,
                wall_ns: seal.wall_ns,
                digest: record::digest(body, sig),
                close: c.clone(),
            });
        }
        Extra::Prune(list) => {
            let first = out.next_prune;
            for (next, p) in (first..).zip(list) {
                let close = out.closes.iter().find(|f| f.close.index == p.index);
                if p.index != next {
                    let what = "prune seal (only the oldest segments, in order)";
                    return Err(brk(what, next.to_string(), p.index.to_string()));
                }
                if close.map(|f| f.digest) != Some(p.close_digest) {
                    let what = "prune seal: the pruned segment's close seal";
                    let expected = close.map_or("a close seal".into(), |f| hex::encode(f.digest));
                    return Err(brk(what, expected, hex::encode(p.close_digest)));
                }
            }
            out.next_prune = first + list.len() as u64;
            out.prunes.push(PruneFact {
                epoch: seal.epoch,
                wall_ns: seal.wall_ns,
                indices: list.iter().map(|p| p.index).collect(),
            });
        }
    }
    Ok(())
}

/// Checks one stored seal against what must come next.
fn one(s: &Stored, want: &Expect<'_>, head_before: &dyn Fn(u64) -> HeadAt) -> Result<Seal, Break> {
    let brk = |seq, what: &str, expected: String, found: String| Break {
        epoch: want.epoch,
        seq,
        what: what.into(),
        expected,
        found,
    };
    let seal = Seal::decode(&s.body)
        .map_err(|e| brk(None, "seal bytes", "a SEAL_V1 record".into(), e.to_string()))?;
    check_header(s, &seal, want)?;
    let seq = Some(seal.first_seq);
    let end = seal.first_seq + seal.count;
    match head_before(end) {
        HeadAt::Beyond => Err(brk(
            seq,
            "sealed records (the ledger ends before them: truncated)",
            format!("records up to seq {}", end.saturating_sub(1)),
            "fewer records".into(),
        )),
        HeadAt::Known(h) if h != seal.head => Err(brk(
            seq,
            "sealed head",
            hex::encode(seal.head),
            hex::encode(h),
        )),
        HeadAt::Known(_) | HeadAt::Pruned => Ok(seal),
    }
}

/// The seal's epoch, signature, link, range start, origin and kind column are the ones
/// that must come next.
fn check_header(s: &Stored, seal: &Seal, want: &Expect<'_>) -> Result<(), Break> {
    let brk = |what: &str, expected: String, found: String| Break {
        epoch: want.epoch,
        seq: Some(seal.first_seq),
        what: what.into(),
        expected,
        found,
    };
    if seal.epoch != want.epoch {
        let what = if seal.epoch < want.epoch {
            "seal epoch (an old epoch sealed again)"
        } else {
            "seal epoch (an epoch's seal is missing)"
        };
        return Err(brk(what, want.epoch.to_string(), seal.epoch.to_string()));
    }
    if s.epoch != want.epoch {
        let what = "seals.epoch column (differs from the epoch its signed body names)";
        return Err(brk(what, want.epoch.to_string(), s.epoch.to_string()));
    }
    if !record::verify_sig(&want.pk, &s.body, &s.sig) {
        let expected = format!("a signature by epoch {}'s key", want.epoch);
        let found = "a signature that does not verify".into();
        return Err(brk("seal signature", expected, found));
    }
    if seal.prev_digest != want.prev {
        let (expected, found) = (hex::encode(want.prev), hex::encode(seal.prev_digest));
        return Err(brk("seal link", expected, found));
    }
    if seal.first_seq != want.first {
        let (expected, found) = (want.first.to_string(), seal.first_seq.to_string());
        return Err(brk("seal range start", expected, found));
    }
    if seal.origin != want.origin {
        return Err(brk(
            "seal origin",
            want.origin.to_owned(),
            seal.origin.clone(),
        ));
    }
    if s.kind != seal.kind as u8 {
        let (expected, found) = ((seal.kind as u8).to_string(), s.kind.to_string());
        return Err(brk("seal kind column", expected, found));
    }
    Ok(())
}
