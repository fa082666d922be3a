//! The seal chain part of verify: run only with the operator's pinned epoch-0 public key.
//!
//! Owns: reading `seals.sqlite` read-only; giving the seal check the ledger's head before any
//! sequence number (from the segments' stored heads, which the record walk has checked);
//! matching every segment-close seal against its segment (range, end head, Merkle root, file
//! hash); accepting a missing oldest segment only under a verified prune seal that respects
//! the operator's retention period; and turning all that into findings and notes.
//!
//! Must not: read a public key or a retention policy from the data directory.

use std::collections::BTreeSet;
use std::time::Duration;

use super::report::{At, Finding, Kind};
use super::state::Resume;
use super::structure::Scan;
use crate::seal::check::{self, CloseFact, HeadAt, Outcome, Start};
use crate::seal::record::SegmentClose;
use crate::seal::{self};
use crate::store::Hash;
use crate::store::audit::{self, SegmentFile};

/// What the seal chain says about the ledger.
#[derive(Debug, Default)]
pub(crate) struct SealFacts {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Why the run cannot conclude (exit 2) even without findings.
    pub inconclusive: Vec<String>,
    /// The close seal of the newest segment that verified prune seals removed.
    pub pruned_last: Option<SegmentClose>,
    /// Without the key: the oldest segments are absent and prune seals, unchecked, say why.
    pub unchecked_prune: bool,
    /// Where the next incremental run starts, when the chain verified to its end.
    pub resume: Option<Resume>,
}

/// The operator's policy for the check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy<'a> {
    pub pk0: &'a [u8; 32],
    pub retention: Option<Duration>,
    /// The verifier's clock, in ns since the epoch.
    pub now_ns: i64,
    /// Where an earlier intact run stopped (incremental mode).
    pub resume: Option<&'a Resume>,
}

fn at() -> At {
    At {
        segment: seal::chain_db::SEALS_FILE.into(),
        segment_index: u64::MAX,
    }
}

/// Findings and notes about the seal chain of the ledger under `data_dir`.
pub(crate) fn check(
    data_dir: &std::path::Path,
    policy: Policy<'_>,
    scans: &[Scan],
    next_seq: u64,
) -> SealFacts {
    let mut facts = SealFacts::default();
    let seals = match read_seals(data_dir) {
        Ok(s) => s,
        Err(f) => {
            facts.findings.push(*f);
            return facts;
        }
    };
    let origin = scans
        .iter()
        .find_map(|s| s.meta.as_ref().map(|m| m.origin.clone()))
        .unwrap_or_default();
    let first_present = scans
        .iter()
        .find_map(|s| s.meta.as_ref().map(|m| m.first_seq));
    let head_before = |n: u64| match first_present {
        Some(f) if n < f => HeadAt::Pruned,
        _ => head_before_live(data_dir, scans, next_seq, n).map_or(HeadAt::Beyond, HeadAt::Known),
    };
    let (to_check, start) = match starting_point(&seals, policy) {
        Ok(s) => s,
        Err(f) => {
            facts.findings.push(*f);
            return facts;
        }
    };
    let outcome = check::check_from(to_check, start, &origin, &head_before);
    if outcome.breaks.is_empty()
        && let Some(end) = outcome.end.clone()
    {
        let n = to_check
            .last()
            .map(|s| s.n)
            .or(policy.resume.map(|r| r.n))
            .unwrap_or(0);
        let meta = scans.iter().find_map(|s| s.meta.as_ref());
        facts.resume = Some(Resume {
            origin: origin.clone(),
            log_id: meta.map(|m| hex::encode(m.log_id)).unwrap_or_default(),
            pk0: *policy.pk0,
            n,
            digest: end.prev,
            verified_through: None,
            start: end,
        });
    }
    facts.findings.extend(outcome.breaks.iter().map(|b| {
        let what = format!("epoch {}: {}", b.epoch, b.what);
        at().finding(Kind::SealChain, b.seq, &what, &b.expected, &b.found)
    }));
    summarize_chain(&outcome, next_seq, &mut facts.notes);
    let skipped = policy.resume.and_then(|r| r.verified_through);
    check_closes(&outcome, scans, skipped, &mut facts);
    check_prunes(&outcome, scans, policy, &mut facts);
    facts
}

/// Every stored seal, or the finding that says why there are none to check.
fn read_seals(data_dir: &std::path::Path) -> Result<Vec<seal::chain_db::Stored>, Box<Finding>> {
    match seal::chain_db::read_all(data_dir) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Box::new(at().finding(
            Kind::SealChain,
            None,
            "seal chain",
            "seals.sqlite",
            "no file",
        ))),
        Err(e) => Err(Box::new(at().finding(
            Kind::Corrupt,
            None,
            "seal chain",
            "a readable seals.sqlite",
            e,
        ))),
    }
}

/// The seals to check and the state before the first: from the genesis, or after the seal
/// an earlier intact run verified last (which must still be there, unchanged).
fn starting_point<'s>(
    seals: &'s [seal::chain_db::Stored],
    policy: Policy<'_>,
) -> Result<(&'s [seal::chain_db::Stored], Start), Box<Finding>> {
    let Some(r) = policy.resume else {
        return Ok((seals, Start::genesis(policy.pk0)));
    };
    match seals.iter().position(|s| s.n == r.n) {
        Some(i) if crate::seal::record::digest(&seals[i].body, &seals[i].sig) == r.digest => {
            Ok((&seals[i + 1..], r.start.clone()))
        }
        _ => {
            let what = format!(
                "seal row {} (verified by the run the state file records)",
                r.n
            );
            Err(Box::new(at().finding(
                Kind::SealChain,
                None,
                &what,
                hex::encode(r.digest),
                "gone or changed",
            )))
        }
    }
}

/// The notes that say what the chain covered, and what is not yet sealed.
fn summarize_chain(outcome: &Outcome, next_seq: u64, notes: &mut Vec<String>) {
    notes.push(format!(
        "seal chain: {} epochs verified with the given epoch-0 key, covering seq 0..{}; {} \
         segment-close seals, {} prune seals",
        outcome.epochs,
        outcome.sealed,
        outcome.closes.len(),
        outcome.prunes.len()
    ));
    if outcome.breaks.is_empty() && next_seq > outcome.sealed {
        notes.push(format!(
            "{} records after the last seal (seq {}..{}) are present but not yet \
             forward-secure",
            next_seq - outcome.sealed,
            outcome.sealed,
            next_seq
        ));
    }
}

/// Each close seal against its segment; each closed segment has its close seal in turn.
fn check_closes(outcome: &Outcome, scans: &[Scan], skipped: Option<u64>, facts: &mut SealFacts) {
    for f in &outcome.closes {
        if skipped.is_some_and(|k| f.close.index <= k) {
            continue; // matched by the earlier run
        }
        let Some(scan) = scans.iter().find(|s| s.at.segment_index == f.close.index) else {
            continue; // created after this run's snapshot, or removed (see the prune seals)
        };
        if scan.close.is_none() && closed_now(&scan.path) {
            facts.notes.push(format!(
                "{} was closed and close-sealed while this run read it; the next run checks \
                 it against its close seal",
                scan.at.segment
            ));
            continue;
        }
        facts.findings.extend(match_close(f, scan));
    }
    if let Some(r) = facts.resume.as_mut() {
        r.verified_through = outcome
            .closes
            .iter()
            .map(|f| f.close.index)
            .filter(|i| {
                scans
                    .iter()
                    .any(|s| s.at.segment_index == *i && s.close.is_some())
            })
            .max()
            .or(skipped);
    }
    let newest_sealed = outcome.closes.last().map(|f| f.close.index);
    for scan in scans.iter().filter(|s| s.close.is_some()) {
        let i = scan.at.segment_index;
        if outcome.closes.iter().any(|f| f.close.index == i) || skipped.is_some_and(|k| i <= k) {
            continue;
        }
        if newest_sealed.is_some_and(|n| n > i) || !outcome.breaks.is_empty() {
            if outcome.breaks.is_empty() {
                let what = "segment-close seal (a later segment has one)";
                let f = scan
                    .at
                    .finding(Kind::SealChain, None, what, "a close seal", "none");
                facts.findings.push(f);
            }
        } else {
            facts.notes.push(format!(
                "{} is closed but not yet close-sealed (the next epoch end seals it)",
                scan.at.segment
            ));
        }
    }
}

/// Whether the segment file has a close row now (a live ledger closes its open segment while
/// verify runs).
fn closed_now(path: &std::path::Path) -> bool {
    SegmentFile::open(path)
        .ok()
        .and_then(|f| f.is_closed().ok())
        .unwrap_or(false)
}

/// Findings where a segment differs from its close seal.
fn match_close(f: &CloseFact, scan: &Scan) -> Vec<Finding> {
    let c = &f.close;
    let mut out = Vec::new();
    let mut differs = |what: &str, sealed: String, found: String| {
        if sealed != found {
            let what = format!("{what} (sealed by epoch {})", f.epoch);
            out.push(scan.at.finding(Kind::SealChain, None, &what, sealed, found));
        }
    };
    let first = scan.meta.as_ref().map(|m| m.first_seq);
    let first = first.map_or("none".into(), |v| v.to_string());
    differs("segment first seq", c.first_seq.to_string(), first);
    let Some((count, end_head)) = scan.close else {
        differs("segment close row", "a close row".into(), "none".into());
        return out;
    };
    differs("segment count", c.count.to_string(), count.to_string());
    differs(
        "segment end head",
        hex::encode(c.end_head),
        hex::encode(end_head),
    );
    let hex_opt = |h: Option<Hash>| {
        h.map_or(
            "not computable (see the other findings)".into(),
            hex::encode,
        )
    };
    differs(
        "segment Merkle root",
        hex::encode(c.merkle_root),
        hex_opt(scan.merkle_root),
    );
    differs(
        "segment file hash",
        hex::encode(c.file_hash),
        hex_opt(scan.file_hash),
    );
    out
}

/// Missing oldest segments are accepted only under verified prune seals within retention.
fn check_prunes(outcome: &Outcome, scans: &[Scan], policy: Policy<'_>, facts: &mut SealFacts) {
    let pruned: BTreeSet<u64> = (0..outcome.pruned_below()).collect();
    let oldest_present = scans.first().map_or(0, |s| s.at.segment_index);
    // The removed prefix: 0, 1, ... as long as prune seals name them and no file is there.
    let mut last = None;
    for i in 0..oldest_present {
        if !pruned.contains(&i) {
            break;
        }
        last = Some(i);
    }
    facts.pruned_last = last.and_then(|i| {
        outcome
            .closes
            .iter()
            .find(|f| f.close.index == i)
            .map(|f| f.close.clone())
    });
    for i in pruned.iter().filter(|i| **i >= oldest_present) {
        if scans.iter().any(|s| s.at.segment_index == *i) {
            facts.notes.push(format!(
                "{} was pruned by a prune seal but its file is still there (a removal the \
                 server finishes on its next epoch end)",
                audit::file_name(*i)
            ));
        }
    }
    if outcome.prunes.is_empty() {
        return;
    }
    let Some(retention) = policy.retention else {
        facts.inconclusive.push(format!(
            "{} segments were removed under prune seals: pass --retention with your \
             retention policy to check that none was removed early",
            pruned.len()
        ));
        return;
    };
    for p in &outcome.prunes {
        for i in &p.indices {
            let Some(c) = outcome.closes.iter().find(|f| f.close.index == *i) else {
                continue; // the chain check already refused a prune without a close seal
            };
            let kept_ns = p.wall_ns.min(policy.now_ns).saturating_sub(c.wall_ns);
            if kept_ns < retention.as_nanos() as i64 {
                let at = At {
                    segment: audit::file_name(*i),
                    segment_index: *i,
                };
                let what = format!(
                    "segment removed before the retention period (prune seal of epoch {})",
                    p.epoch
                );
                let expected = format!("kept at least {}s after its close", retention.as_secs());
                let found = format!("removed {}s after its close", kept_ns / 1_000_000_000);
                facts
                    .findings
                    .push(at.finding(Kind::SegmentMissing, None, &what, expected, found));
            }
        }
    }
    if let Some(c) = &facts.pruned_last {
        facts.notes.push(format!(
            "segments 0..={} were removed by retention under verified prune seals",
            c.index
        ));
    }
}

/// The ledger's head before sequence number `n`: the genesis (or a segment's `prev_head`) at
/// a segment's start, else the stored head of record `n - 1`. `None` past the end.
pub(crate) fn head_before(scans: &[Scan], next_seq: u64, n: u64) -> Option<Hash> {
    if n > next_seq {
        return None;
    }
    stored_head_before(scans, n)
}

/// The head before `n` for a seal read after the segments were scanned: on a live ledger the
/// server goes on appending and sealing while verify runs, so a seal may cover records past
/// this run's snapshot. Those records are looked up in the segment files as they are now (the
/// seal was read first, so every record it covers must exist by now, or the ledger was cut);
/// the next run re-hashes them. `None` if they are not there.
pub(crate) fn head_before_live(
    data_dir: &std::path::Path,
    scans: &[Scan],
    next_seq: u64,
    n: u64,
) -> Option<Hash> {
    if n <= next_seq {
        return stored_head_before(scans, n);
    }
    let seq = n - 1;
    let files = audit::segment_files(data_dir).ok()?;
    for (_, path) in files.iter().rev() {
        let Ok(file) = SegmentFile::open(path) else {
            continue;
        };
        let Ok(Some(meta)) = file.meta() else {
            continue;
        };
        if meta.first_seq > seq {
            continue;
        }
        return file.head_of(seq);
    }
    None
}

fn stored_head_before(scans: &[Scan], n: u64) -> Option<Hash> {
    let first = scans
        .iter()
        .filter_map(|s| s.meta.as_ref().map(|m| (s, m)))
        .find(|(_, m)| m.first_seq == n);
    if let Some((_, m)) = first {
        return Some(m.prev_head);
    }
    let seq = n.checked_sub(1)?;
    let (scan, _) = scans
        .iter()
        .filter_map(|s| s.meta.as_ref().map(|m| (s, m)))
        .rfind(|(_, m)| m.first_seq <= seq)?;
    SegmentFile::open(&scan.path).ok()?.head_of(seq)
}
