//! Anchors: checkpoints exported off the box, checked against the ledger as it is now.
//!
//! Owns: the rules: each note must be signed by the operator's verifier key and name this
//! log's origin; an anchor for size N at or below the ledger's size must match the ledger's
//! head before N (otherwise history was rewritten or forked); an anchor above the ledger's
//! size means the ledger was cut back (truncation); two valid anchors for one size with
//! different heads are evidence of a fork; an anchor's seal digest must be the digest of the
//! stored seal of its epoch (else the seal chain was rewritten since the anchor left the box).
//!
//! Must not: take the verifier key from the data directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::report::{At, Finding, Kind};
use super::seals::head_before;
use super::structure::Scan;
use crate::seal::exported::notes_in;
use crate::seal::note::{Checkpoint, VKey};

/// One file of checkpoints exported off the box, read before verify starts.
#[derive(Debug, Clone)]
pub struct AnchorFile {
    pub name: String,
    /// The notes found in it, in order, not yet checked.
    pub notes: Vec<String>,
}

impl AnchorFile {
    /// Reads the notes of `path` in any form [`notes_in`] knows. A file that cannot be read,
    /// or holds no note at all, is an error (the operator gave the wrong file), never a
    /// finding about the ledger.
    pub fn read(path: &Path) -> Result<AnchorFile, String> {
        let name = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
        let notes = notes_in(&String::from_utf8_lossy(&text));
        if notes.is_empty() {
            return Err(format!(
                "{name}: no checkpoint note in it (give checkpoints.note, the server's \
                 {{\"daftari_checkpoint\": …}} lines, or a journald export of them)"
            ));
        }
        Ok(AnchorFile { name, notes })
    }
}

fn at(name: &str) -> At {
    At {
        segment: name.to_owned(),
        segment_index: u64::MAX,
    }
}

/// Findings and notes from the anchor files.
pub(crate) fn check(
    vkey: &VKey,
    files: &[AnchorFile],
    scans: &[Scan],
    next_seq: u64,
    data_dir: &Path,
) -> (Vec<Finding>, Vec<String>) {
    let origin = scans
        .iter()
        .find_map(|s| s.meta.as_ref().map(|m| m.origin.clone()))
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut by_size: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    let mut all = Vec::new();
    for file in files {
        let name = &file.name;
        for n in &file.notes {
            let Some(cp) = open_note(vkey, n, &origin, name, &mut findings) else {
                continue;
            };
            check_one(&cp, name, &by_size, scans, next_seq, &mut findings);
            all.push(cp.clone());
            by_size.insert(cp.size, cp);
        }
    }
    findings.extend(check_seal_digests(&all, data_dir));
    let newest = by_size.keys().next_back().copied().unwrap_or(0);
    let notes = vec![format!(
        "anchors: {} checkpoints checked, the newest for size {newest}",
        all.len()
    )];
    (findings, notes)
}

/// The checkpoint in note `n`, if the verifier key signed it for this log's origin.
fn open_note(
    vkey: &VKey,
    n: &str,
    origin: &str,
    name: &str,
    findings: &mut Vec<Finding>,
) -> Option<Checkpoint> {
    match vkey.open(n) {
        Ok(cp) if cp.origin == origin => Some(cp),
        Ok(cp) => {
            let f = at(name).finding(Kind::Anchor, None, "anchor origin", origin, cp.origin);
            findings.push(f);
            None
        }
        Err(e) => {
            let f = at(name).finding(
                Kind::Anchor,
                None,
                "anchor signature",
                "a note signed by the verifier key",
                e,
            );
            findings.push(f);
            None
        }
    }
}

/// One anchor against the anchors before it (one head per size) and the ledger (its size,
/// and its head at the anchored size).
fn check_one(
    cp: &Checkpoint,
    name: &str,
    by_size: &BTreeMap<u64, Checkpoint>,
    scans: &[Scan],
    next_seq: u64,
    findings: &mut Vec<Finding>,
) {
    if let Some(other) = by_size.get(&cp.size)
        && other.head != cp.head
    {
        findings.push(at(name).finding(
            Kind::Anchor,
            Some(cp.size),
            "two anchors for one size (fork evidence)",
            hex::encode(other.head),
            hex::encode(cp.head),
        ));
    }
    if cp.size > next_seq {
        findings.push(at(name).finding(
            Kind::Anchor,
            Some(next_seq),
            &format!(
                "ledger size (truncated: an anchor of epoch {} at unix time {} saw more)",
                cp.epoch, cp.time_s
            ),
            cp.size,
            next_seq,
        ));
    } else if let Some(h) = head_before(scans, next_seq, cp.size)
        && h != cp.head
    {
        findings.push(at(name).finding(
            Kind::Anchor,
            Some(cp.size),
            "head at an anchored size (rewritten or forked)",
            hex::encode(cp.head),
            hex::encode(h),
        ));
    }
}

/// Each anchor's seal digest against the stored seal of its epoch.
fn check_seal_digests(anchors: &[Checkpoint], data_dir: &Path) -> Vec<Finding> {
    let Ok(Some(seals)) = crate::seal::chain_db::read_all(data_dir) else {
        return Vec::new(); // a missing or unreadable seal file is reported by the seal check
    };
    let stored: HashMap<u64, crate::store::Hash> = seals
        .iter()
        .map(|s| (s.epoch, crate::seal::record::digest(&s.body, &s.sig)))
        .collect();
    let at = At {
        segment: crate::seal::chain_db::SEALS_FILE.into(),
        segment_index: u64::MAX,
    };
    anchors
        .iter()
        .filter_map(|cp| {
            let found = stored.get(&cp.epoch).map_or("no seal".into(), hex::encode);
            (found != hex::encode(cp.seal)).then(|| {
                let what = format!("seal of anchored epoch {} (rewritten since)", cp.epoch);
                at.finding(
                    Kind::Anchor,
                    Some(cp.size),
                    &what,
                    hex::encode(cp.seal),
                    found,
                )
            })
        })
        .collect()
}
