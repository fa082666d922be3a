//! Inclusion proofs: one entry, shown to be in the ledger without the rest of it.
//!
//! Owns: the proof file (`daftari-proof/v1`, one JSON object), building it from a ledger
//! ([`prove`]) and checking it with nothing but the proof and the operator's keys ([`check`]).
//!
//! A proof holds the entry's `ENTRY_V1` bytes, its Merkle path to the root of its segment,
//! the segment-close seal that binds that root (with its signature), and the checkpoint note
//! of the close seal's epoch, whose body names the seal's digest. Two ways to trust it:
//! - `--vkey` (and better, `--anchors` with checkpoints exported off the box): the note is
//!   signed by the checkpoint key and, when it matches an anchor, was published before any
//!   later compromise;
//! - `--pubkey` with a proof made with `--chain`: the proof also carries every seal from
//!   epoch 0 to the close seal, checked under the pinned epoch-0 key (forward-secure, but
//!   about 260 bytes per epoch).
//!
//! Must not: write to the ledger, or trust a key found beside the proof.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::seal::chain_db::{self as seal_store, Stored};
use crate::seal::check::{self, HeadAt};
use crate::seal::note::{Checkpoint, NoteSigner, VKey};
use crate::seal::record::{self, Extra, Seal};
use crate::store::{archive, chain, epoch_proof, merkle};

/// First field of every proof.
pub const FORMAT: &str = "daftari-proof/v1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A seal as a proof carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealBytes {
    pub body: String,
    pub sig: String,
}

/// The proof file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proof {
    pub format: String,
    pub origin: String,
    pub seq: u64,
    /// The entry as people read it (informational; `record` is what is checked, and this
    /// must equal what it decodes to).
    pub entry: serde_json::Value,
    /// `ENTRY_V1`, base64.
    pub record: String,
    /// How the record reaches a seal.
    #[serde(flatten)]
    pub through: Through,
    /// The signed checkpoint note of the seal's epoch.
    pub checkpoint: String,
    /// Seals of epochs 0 to the proof's seal, when made with `--chain`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<SealBytes>,
}

/// How a proof's record reaches the seal it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Through {
    /// A Merkle path to the root a segment-close seal binds: for entries of closed
    /// segments, O(log n) hashes.
    Segment {
        segment: u64,
        leaf_index: u64,
        leaf_count: u64,
        /// Sibling subtree roots from the leaf up, base64.
        path: Vec<String>,
        close_seal: SealBytes,
    },
    /// The chain from the head before the record to the head its epoch's seal binds: for
    /// entries whose segment is still open, one leaf per later record of the epoch.
    Epoch {
        /// The head before the record, base64.
        prev_head: String,
        /// Leaves of the epoch's records after it, base64.
        later: Vec<String>,
        epoch_seal: SealBytes,
    },
}

/// Builds the proof of entry `seq` from the ledger under `data_dir`: through its segment's
/// close seal when there is one, else through its epoch's seal.
pub fn prove(data_dir: &Path, seq: u64, with_chain: bool) -> Result<Proof, String> {
    let seals = seal_store::read_all(data_dir)
        .map_err(|e| e.to_string())?
        .ok_or("no seals.sqlite: nothing is sealed")?;
    let mut decoded = Vec::with_capacity(seals.len());
    for s in seals {
        let seal = Seal::decode(&s.body).map_err(|e| e.to_string())?;
        decoded.push((s, seal));
    }
    let closing = decoded.iter().find(|(_, seal)| {
        matches!(&seal.extra, Extra::Segment(c) if (c.first_seq..c.first_seq + c.count).contains(&seq))
    });
    let covering = || {
        decoded
            .iter()
            .find(|(_, seal)| (seal.first_seq..seal.first_seq + seal.count).contains(&seq))
    };
    let (stored, seal, record, through) = match closing {
        Some((stored, seal)) => {
            let Extra::Segment(close) = &seal.extra else {
                unreachable!("matched above")
            };
            let inc = archive::prove(data_dir, close.index, seq).map_err(|e| e.to_string())?;
            let through = Through::Segment {
                segment: close.index,
                leaf_index: inc.leaf_index,
                leaf_count: inc.leaf_count,
                path: inc.path.iter().map(|h| B64.encode(h)).collect(),
                close_seal: bytes_of(stored),
            };
            (stored, seal, inc.record, through)
        }
        None => {
            let (stored, seal) = covering().ok_or_else(|| not_sealed(&decoded, seq))?;
            let end = seal.first_seq + seal.count;
            let inc = epoch_proof::prove(data_dir, seq, end).map_err(|e| e.to_string())?;
            let through = Through::Epoch {
                prev_head: B64.encode(inc.prev_head),
                later: inc.later.iter().map(|h| B64.encode(h)).collect(),
                epoch_seal: bytes_of(stored),
            };
            (stored, seal, inc.record, through)
        }
    };
    let signer = NoteSigner::load(data_dir, &seal.origin).map_err(|e| e.to_string())?;
    let note = signer.sign(&Checkpoint::of_seal(
        seal,
        record::digest(&stored.body, &stored.sig),
    ));
    let chain = if with_chain {
        seal_store::read_through(data_dir, stored.n)
            .map_err(|e| e.to_string())?
            .unwrap_or_default()
            .iter()
            .map(bytes_of)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Proof {
        format: FORMAT.into(),
        origin: seal.origin.clone(),
        seq,
        entry: entry_of(&record)?,
        record: B64.encode(&record),
        through,
        checkpoint: note,
        chain,
    })
}

/// Why no seal covers `seq`: its epoch is still open, or there is no such entry.
fn not_sealed(seals: &[(Stored, Seal)], seq: u64) -> String {
    let sealed = seals
        .iter()
        .map(|(_, s)| s.first_seq + s.count)
        .max()
        .unwrap_or(0);
    format!(
        "seq {seq} is not sealed yet: seals cover seqs below {sealed}; an entry is sealed at \
         the end of its epoch (seal.epoch_interval, 10 s by default) while the server runs: \
         try again then (or check that the entry exists with `daftari export`)"
    )
}

/// The entry as people read it, decoded from its `ENTRY_V1` bytes: what a proof shows, and
/// what its informational `entry` must equal.
fn entry_of(record: &[u8]) -> Result<serde_json::Value, String> {
    let view = chain::decode(record).map_err(|e| format!("record: {e}"))?;
    let r = view.to_record().map_err(|e| format!("record: {e}"))?;
    Ok(serde_json::json!({
        "ts_ns": r.ts_ns.to_string(),
        "recv_ns": r.recv_ns.to_string(),
        "source": r.source,
        "labels": r.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "metadata": r.metadata.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "line": String::from_utf8_lossy(&r.line),
    }))
}

/// Refuses a proof whose informational `entry` says anything the proved record does not,
/// naming the first field that differs.
fn same_entry(shown: &serde_json::Value, proved: &serde_json::Value) -> Result<(), String> {
    if shown == proved {
        return Ok(());
    }
    let field = match (shown.as_object(), proved.as_object()) {
        (Some(a), Some(b)) => b
            .iter()
            .find(|(k, v)| a.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .or_else(|| a.keys().find(|k| !b.contains_key(*k)).cloned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    Err(format!(
        "the proof's `entry` disagrees with the proved record in `{field}`"
    ))
}

fn bytes_of(s: &Stored) -> SealBytes {
    SealBytes {
        body: B64.encode(&s.body),
        sig: B64.encode(&s.sig),
    }
}

/// The keys and anchors a proof is checked with.
#[derive(Debug, Default)]
pub struct Trust<'a> {
    pub pubkey: Option<&'a [u8; 32]>,
    pub vkey: Option<&'a VKey>,
    /// Checkpoints exported off the box.
    pub anchors: Vec<Checkpoint>,
}

/// What a valid proof established.
#[derive(Debug)]
pub struct Checked {
    pub epoch: u64,
    /// How the record reached the seal, for people.
    pub how: String,
    /// The entry decoded from the proved record bytes (never the proof's own copy).
    pub entry: serde_json::Value,
    /// How the close seal is trusted, one line each.
    pub trust: Vec<String>,
}

/// Checks `proof` without the ledger.
pub fn check(proof: &Proof, trust: &Trust<'_>) -> Result<Checked, String> {
    if proof.format != FORMAT {
        return Err(format!("not a {FORMAT} proof"));
    }
    let record = decode_b64(&proof.record, "record")?;
    let view = chain::decode(&record).map_err(|e| format!("record: {e}"))?;
    if view.seq != proof.seq {
        return Err(format!("the record is seq {}, not {}", view.seq, proof.seq));
    }
    let entry = entry_of(&record)?;
    same_entry(&proof.entry, &entry)?;
    let (seal, body, sig, how) = match &proof.through {
        Through::Segment {
            segment,
            leaf_index,
            leaf_count,
            path,
            close_seal,
        } => {
            let at = LeafAt {
                segment: *segment,
                index: *leaf_index,
                count: *leaf_count,
            };
            check_segment(proof, &record, at, path, close_seal)?
        }
        Through::Epoch {
            prev_head,
            later,
            epoch_seal,
        } => check_epoch(proof, &record, prev_head, later, epoch_seal)?,
    };
    let digest = record::digest(&body, &sig);
    let mut out = Checked {
        epoch: seal.epoch,
        how,
        entry,
        trust: Vec::new(),
    };
    if let Some(vkey) = trust.vkey {
        out.trust = check_checkpoint(proof, vkey, &trust.anchors, &seal, digest)?;
    }
    if let Some(pk0) = trust.pubkey {
        check_chain(proof, pk0, &digest)?;
        out.trust.push(format!(
            "seals of epochs 0 to {} verify under the pinned epoch-0 key",
            seal.epoch
        ));
    }
    if out.trust.is_empty() {
        return Err("give --vkey (with --anchors) or --pubkey (with a --chain proof)".into());
    }
    Ok(out)
}

/// A seal as a proof carries it, decoded: the seal, its bytes and its signature.
type Opened = (Seal, Vec<u8>, Vec<u8>, String);

fn open_seal(bytes: &SealBytes, what: &str) -> Result<(Seal, Vec<u8>, Vec<u8>), String> {
    let body = decode_b64(&bytes.body, what)?;
    let sig = decode_b64(&bytes.sig, &format!("{what} signature"))?;
    let seal = Seal::decode(&body).map_err(|e| format!("{what}: {e}"))?;
    Ok((seal, body, sig))
}

/// Where a Merkle proof puts its leaf.
#[derive(Debug, Clone, Copy)]
struct LeafAt {
    segment: u64,
    index: u64,
    count: u64,
}

/// The record's Merkle path leads to the root its segment's close seal binds.
fn check_segment(
    proof: &Proof,
    record: &[u8],
    at: LeafAt,
    path: &[String],
    close_seal: &SealBytes,
) -> Result<Opened, String> {
    let (seal, body, sig) = open_seal(close_seal, "close seal")?;
    let Extra::Segment(c) = &seal.extra else {
        return Err("the close seal is not a segment-close seal".into());
    };
    if c.index != at.segment
        || c.count != at.count
        || c.first_seq + at.index != proof.seq
        || seal.origin != proof.origin
    {
        return Err("the close seal names another segment, range or origin".into());
    }
    let path = path
        .iter()
        .map(|p| decode_hash(p, "path"))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = chain::Hasher::default().leaf(record);
    if !merkle::verify_path(at.index, at.count, &leaf, &path, &c.merkle_root) {
        return Err("the Merkle path does not lead to the sealed root".into());
    }
    let how = format!(
        "entry {} of {} in segment {}, by its Merkle path to the segment's close seal",
        at.index, at.count, at.segment
    );
    Ok((seal, body, sig, how))
}

/// Folding the record and the later leaves onto `prev_head` gives the head its epoch's seal
/// binds, at the seal's last seq.
fn check_epoch(
    proof: &Proof,
    record: &[u8],
    prev_head: &str,
    later: &[String],
    epoch_seal: &SealBytes,
) -> Result<Opened, String> {
    let (seal, body, sig) = open_seal(epoch_seal, "epoch seal")?;
    let end = seal.first_seq + seal.count;
    if seal.origin != proof.origin
        || !(seal.first_seq..end).contains(&proof.seq)
        || later.len() as u64 != end - proof.seq - 1
    {
        return Err("the epoch seal names another range or origin".into());
    }
    let hasher = chain::Hasher::default();
    let mut head = hasher.next_head(&decode_hash(prev_head, "prev_head")?, record);
    for l in later {
        head = hasher.link(&head, &decode_hash(l, "later")?);
    }
    if head != seal.head {
        return Err("the chain from the record does not reach its epoch's sealed head".into());
    }
    let how = format!(
        "by the chain through the {} later records of its epoch to the head the epoch's seal binds",
        later.len()
    );
    Ok((seal, body, sig, how))
}

/// The proof's checkpoint is signed by `vkey` and names the close seal, and no anchor kept
/// off the box contradicts it; returns what that establishes, one line each.
fn check_checkpoint(
    proof: &Proof,
    vkey: &VKey,
    anchors: &[Checkpoint],
    seal: &Seal,
    digest: [u8; 32],
) -> Result<Vec<String>, String> {
    let cp = vkey
        .open(&proof.checkpoint)
        .map_err(|e| format!("checkpoint: {e}"))?;
    if cp != Checkpoint::of_seal(seal, digest) {
        return Err("the checkpoint does not name the proof's seal".into());
    }
    let mut trust = vec![format!(
        "checkpoint of epoch {} signed by {} names the proof's seal",
        seal.epoch, vkey.name
    )];
    let same_size: Vec<&Checkpoint> = anchors.iter().filter(|a| a.size == cp.size).collect();
    if same_size
        .iter()
        .any(|a| a.head != cp.head || (a.epoch == cp.epoch && **a != cp))
    {
        return Err("an anchor for this size disagrees with the proof".into());
    }
    if same_size.iter().any(|a| **a == cp) {
        trust.push("the checkpoint is one of the anchors exported off the box".into());
    } else if let Some(a) = same_size.first() {
        trust.push(format!(
            "an anchor exported off the box (epoch {}) has the same size and head",
            a.epoch
        ));
    } else if !anchors.is_empty() {
        trust.push("no anchor has this checkpoint's size (the anchors do not cover it)".into());
    }
    Ok(trust)
}

/// The carried chain verifies under `pk0` and ends with the proof's seal.
fn check_chain(proof: &Proof, pk0: &[u8; 32], seal_digest: &[u8; 32]) -> Result<(), String> {
    if proof.chain.is_empty() {
        return Err("--pubkey needs a proof made with `daftari prove --chain`".into());
    }
    let mut stored = Vec::with_capacity(proof.chain.len());
    for (n, s) in proof.chain.iter().enumerate() {
        let body = decode_b64(&s.body, "chain seal")?;
        let seal = Seal::decode(&body).map_err(|e| format!("chain seal {n}: {e}"))?;
        stored.push(Stored {
            n: n as u64,
            epoch: seal.epoch,
            kind: seal.kind as u8,
            body,
            sig: decode_b64(&s.sig, "chain seal signature")?,
        });
    }
    let outcome = check::check(&stored, pk0, &proof.origin, &|_| HeadAt::Pruned);
    if let Some(b) = outcome.breaks.first() {
        return Err(format!(
            "seal chain: epoch {}: {}: expected {}, found {}",
            b.epoch, b.what, b.expected, b.found
        ));
    }
    let last = stored.last().ok_or("empty chain")?;
    if record::digest(&last.body, &last.sig) != *seal_digest {
        return Err("the chain does not end with the proof's seal".into());
    }
    Ok(())
}

fn decode_b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(s).map_err(|_| format!("{what}: not base64"))
}

fn decode_hash(s: &str, what: &str) -> Result<[u8; 32], String> {
    <[u8; 32]>::try_from(decode_b64(s, what)?).map_err(|_| format!("{what}: not 32 bytes"))
}
