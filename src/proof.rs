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
use crate::seal::record::{self, Extra, Seal, SealKind};
use crate::store::{archive, chain, merkle};

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
    /// The entry as people read it (informational; `record` is what is checked).
    pub entry: serde_json::Value,
    /// `ENTRY_V1`, base64.
    pub record: String,
    pub segment: u64,
    pub leaf_index: u64,
    pub leaf_count: u64,
    /// Sibling subtree roots from the leaf up, base64.
    pub path: Vec<String>,
    pub close_seal: SealBytes,
    /// The signed checkpoint note of the close seal's epoch.
    pub checkpoint: String,
    /// Seals of epochs 0 to the close seal's, when made with `--chain`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<SealBytes>,
}

/// Builds the proof of entry `seq` from the ledger under `data_dir`.
pub fn prove(data_dir: &Path, seq: u64, with_chain: bool) -> Result<Proof, String> {
    let closes = seal_store::read_kind(data_dir, SealKind::SegmentClose as u8)
        .map_err(|e| e.to_string())?
        .ok_or("no seals.sqlite: nothing is sealed")?;
    let mut found = None;
    for s in closes {
        let seal = Seal::decode(&s.body).map_err(|e| e.to_string())?;
        if let Extra::Segment(c) = &seal.extra
            && (c.first_seq..c.first_seq + c.count).contains(&seq)
        {
            let c = c.clone();
            found = Some((s, seal, c));
            break;
        }
    }
    let (stored, seal, close) = found.ok_or_else(|| {
        format!("seq {seq} is not in a close-sealed segment yet (only closed segments prove)")
    })?;
    let inc = archive::prove(data_dir, close.index, seq).map_err(|e| e.to_string())?;
    let signer = NoteSigner::load(data_dir, &seal.origin).map_err(|e| e.to_string())?;
    let note = signer.sign(&Checkpoint::of_seal(
        &seal,
        record::digest(&stored.body, &stored.sig),
    ));
    let view = chain::decode(&inc.record).map_err(|e| e.to_string())?;
    let record = view.to_record().map_err(|e| e.to_string())?;
    Ok(Proof {
        format: FORMAT.into(),
        origin: seal.origin.clone(),
        seq,
        entry: serde_json::json!({
            "ts_ns": record.ts_ns.to_string(),
            "recv_ns": record.recv_ns.to_string(),
            "source": record.source,
            "labels": record.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "metadata": record.metadata.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "line": String::from_utf8_lossy(&record.line),
        }),
        record: B64.encode(&inc.record),
        segment: close.index,
        leaf_index: inc.leaf_index,
        leaf_count: inc.leaf_count,
        path: inc.path.iter().map(|h| B64.encode(h)).collect(),
        close_seal: bytes_of(&stored),
        checkpoint: note,
        chain: if with_chain {
            seal_store::read_through(data_dir, stored.n)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
                .iter()
                .map(bytes_of)
                .collect()
        } else {
            Vec::new()
        },
    })
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
    let body = decode_b64(&proof.close_seal.body, "close seal")?;
    let sig = decode_b64(&proof.close_seal.sig, "close seal signature")?;
    let seal = Seal::decode(&body).map_err(|e| format!("close seal: {e}"))?;
    let Extra::Segment(c) = &seal.extra else {
        return Err("the close seal is not a segment-close seal".into());
    };
    if c.index != proof.segment
        || c.count != proof.leaf_count
        || c.first_seq + proof.leaf_index != proof.seq
        || seal.origin != proof.origin
    {
        return Err("the close seal names another segment, range or origin".into());
    }
    let path = proof
        .path
        .iter()
        .map(|p| decode_hash(p, "path"))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = chain::Hasher::default().leaf(&record);
    if !merkle::verify_path(
        proof.leaf_index,
        proof.leaf_count,
        &leaf,
        &path,
        &c.merkle_root,
    ) {
        return Err("the Merkle path does not lead to the sealed root".into());
    }
    let digest = record::digest(&body, &sig);
    let mut out = Checked {
        epoch: seal.epoch,
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
        return Err("the checkpoint does not name this close seal".into());
    }
    let mut trust = vec![format!(
        "checkpoint of epoch {} signed by {} names the close seal",
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

/// The carried chain verifies under `pk0` and ends with the close seal.
fn check_chain(proof: &Proof, pk0: &[u8; 32], close_digest: &[u8; 32]) -> Result<(), String> {
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
    if record::digest(&last.body, &last.sig) != *close_digest
        || last.kind != SealKind::SegmentClose as u8
    {
        return Err("the chain does not end with the close seal".into());
    }
    Ok(())
}

fn decode_b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(s).map_err(|_| format!("{what}: not base64"))
}

fn decode_hash(s: &str, what: &str) -> Result<[u8; 32], String> {
    <[u8; 32]>::try_from(decode_b64(s, what)?).map_err(|_| format!("{what}: not 32 bytes"))
}
