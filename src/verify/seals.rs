//! The seal chain part of verify: run only with the operator's pinned epoch-0 public key.
//!
//! Owns: reading `seals.sqlite` read-only, giving the seal check the ledger's head before any
//! sequence number (from the segments' stored heads, which the record walk has checked), and
//! turning its outcome into findings and notes.
//!
//! Must not: read a public key from the data directory.

use rusqlite::{OptionalExtension, params};

use super::report::{At, Finding, Kind};
use super::structure::Scan;
use crate::seal::{self, check};
use crate::store::{Hash, segment};

/// Findings and notes about the seal chain of the ledger under `data_dir`.
pub(crate) fn check(
    data_dir: &std::path::Path,
    pk0: &[u8; 32],
    scans: &[Scan],
    next_seq: u64,
) -> (Vec<Finding>, Vec<String>) {
    let at = At {
        segment: seal::store::SEALS_FILE.into(),
        segment_index: u64::MAX,
    };
    let seals = match seal::store::read_all(data_dir) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let f = at.finding(
                Kind::SealChain,
                None,
                "seal chain",
                "seals.sqlite",
                "no file",
            );
            return (vec![f], Vec::new());
        }
        Err(e) => {
            let f = at.finding(
                Kind::Corrupt,
                None,
                "seal chain",
                "a readable seals.sqlite",
                e,
            );
            return (vec![f], Vec::new());
        }
    };
    let origin = scans
        .iter()
        .find_map(|s| s.meta.as_ref().map(|m| m.origin.clone()))
        .unwrap_or_default();
    let head_before = |n: u64| head_before(scans, next_seq, n);
    let outcome = check::check(&seals, pk0, &origin, &head_before);
    let findings: Vec<Finding> = outcome
        .breaks
        .iter()
        .map(|b| {
            let what = format!("epoch {}: {}", b.epoch, b.what);
            at.finding(Kind::SealChain, b.seq, &what, &b.expected, &b.found)
        })
        .collect();
    let mut notes = vec![format!(
        "seal chain: {} epochs verified with the given epoch-0 key, covering seq 0..{}",
        outcome.epochs, outcome.sealed
    )];
    if findings.is_empty() && next_seq > outcome.sealed {
        notes.push(format!(
            "{} records after the last seal (seq {}..{}) are present but not yet \
             forward-secure",
            next_seq - outcome.sealed,
            outcome.sealed,
            next_seq
        ));
    }
    (findings, notes)
}

/// The ledger's head before sequence number `n`: the genesis (or a segment's `prev_head`) at
/// a segment's start, else the stored head of record `n - 1`. `None` past the end.
pub(crate) fn head_before(scans: &[Scan], next_seq: u64, n: u64) -> Option<Hash> {
    if n > next_seq {
        return None;
    }
    let first = scans
        .iter()
        .filter_map(|s| s.meta.as_ref().map(|m| (s, m)))
        .find(|(_, m)| m.first_seq == n);
    if let Some((_, m)) = first {
        return Some(m.prev_head);
    }
    let seq = n - 1;
    let (scan, _) = scans
        .iter()
        .filter_map(|s| s.meta.as_ref().map(|m| (s, m)))
        .rfind(|(_, m)| m.first_seq <= seq)?;
    let conn = segment::open_read_only(&scan.path).ok()?;
    let (first_seq, heads): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, heads FROM blocks WHERE first_seq <= ?1 \
             ORDER BY first_seq DESC LIMIT 1",
            params![seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .ok()??;
    let at = (seq - first_seq as u64) as usize * 32;
    heads.get(at..at + 32)?.try_into().ok()
}
