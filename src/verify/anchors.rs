//! Anchors: checkpoints exported off the box, checked against the ledger as it is now.
//!
//! Owns: the rules: each note must be signed by the operator's verifier key and name this
//! log's origin; an anchor for size N at or below the ledger's size must match the ledger's
//! head before N (otherwise history was rewritten or forked); an anchor above the ledger's
//! size means the ledger was cut back (truncation); two valid anchors for one size with
//! different heads are evidence of a fork.
//!
//! Must not: take the verifier key from the data directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::report::{At, Finding, Kind};
use super::seals::head_before;
use super::structure::Scan;
use crate::seal::note::{self, Checkpoint, VKey};

/// Findings and notes from the anchor files.
pub(crate) fn check(
    vkey: &VKey,
    files: &[PathBuf],
    scans: &[Scan],
    next_seq: u64,
) -> (Vec<Finding>, Vec<String>) {
    let at = |name: &str| At {
        segment: name.to_owned(),
        segment_index: u64::MAX,
    };
    let origin = scans
        .iter()
        .find_map(|s| s.meta.as_ref().map(|m| m.origin.clone()))
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut by_size: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    let mut checked = 0;
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                findings.push(at(&name).finding(Kind::Anchor, None, "anchor file", "readable", e));
                continue;
            }
        };
        for n in note::split_notes(&text) {
            let cp = match vkey.open(&n) {
                Ok(cp) if cp.origin == origin => cp,
                Ok(cp) => {
                    let f =
                        at(&name).finding(Kind::Anchor, None, "anchor origin", &origin, cp.origin);
                    findings.push(f);
                    continue;
                }
                Err(e) => {
                    let f = at(&name).finding(
                        Kind::Anchor,
                        None,
                        "anchor signature",
                        "a note signed by the verifier key",
                        e,
                    );
                    findings.push(f);
                    continue;
                }
            };
            checked += 1;
            if let Some(other) = by_size.get(&cp.size)
                && other.head != cp.head
            {
                findings.push(at(&name).finding(
                    Kind::Anchor,
                    Some(cp.size),
                    "two anchors for one size (fork evidence)",
                    hex::encode(other.head),
                    hex::encode(cp.head),
                ));
            }
            if cp.size > next_seq {
                findings.push(at(&name).finding(
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
                findings.push(at(&name).finding(
                    Kind::Anchor,
                    Some(cp.size),
                    "head at an anchored size (rewritten or forked)",
                    hex::encode(cp.head),
                    hex::encode(h),
                ));
            }
            by_size.insert(cp.size, cp);
        }
    }
    let newest = by_size.keys().next_back().copied().unwrap_or(0);
    let notes = vec![format!(
        "anchors: {checked} checkpoints checked, the newest for size {newest}"
    )];
    (findings, notes)
}
