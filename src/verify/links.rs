//! The links between segments: the files form an unbroken run of indices from 0, all from
//! one log, and each segment's meta continues the one before (first_seq, prev_head, and the
//! hash of the closed predecessor's file). The first segment starts at the genesis, or, once
//! retention removed the oldest segments, continues the close seal of the last one removed
//! (the caller passes it only after checking the prune seals).
//!
//! Must not: open files (it works on the scans).

use super::report::{At, Finding, Kind};
use super::structure::Scan;
use crate::seal::record::SegmentClose;
use crate::store::audit::{self, Meta};
use crate::store::chain;

/// Where the oldest segment present must start.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start<'a> {
    /// At the genesis: segment 0, seq 0.
    Genesis,
    /// Right after the last segment that verified prune seals removed.
    AfterPruned(&'a SegmentClose),
    /// Wherever the oldest file is: unverified prune seals say older ones were removed, and
    /// the caller reports the run as inconclusive instead.
    Unchecked,
}

/// Checks every link; returns findings and notes.
pub(crate) fn check(scans: &[Scan], start: Start<'_>) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let pruned = match start {
        Start::AfterPruned(c) => Some(c),
        _ => None,
    };
    let first = match start {
        Start::Genesis => 0,
        Start::AfterPruned(c) => c.index + 1,
        Start::Unchecked => scans.first().map_or(0, |s| s.at.segment_index),
    };
    check_indices(scans, first, &mut findings);
    let first_meta = scans.iter().find_map(|s| s.meta.as_ref());
    for (i, scan) in scans.iter().enumerate() {
        let Some(meta) = &scan.meta else { continue };
        if let Some(first) = first_meta
            && (meta.origin != first.origin || meta.log_id != first.log_id)
        {
            let what = "meta.origin/log_id (the segment belongs to another log)";
            let expected = format!("{} {}", first.origin, hex::encode(first.log_id));
            let found = format!("{} {}", meta.origin, hex::encode(meta.log_id));
            findings.push(
                scan.at
                    .finding(Kind::SegmentReplaced, None, what, expected, found),
            );
        }
        let prev = if i == 0 { None } else { Some(&scans[i - 1]) };
        match prev {
            None => match pruned {
                Some(c) => check_after_pruned(scan, meta, c, &mut findings),
                None => check_start(scan, meta, &mut findings),
            },
            Some(p) if p.at.segment_index + 1 == scan.at.segment_index => {
                check_link(p, scan, meta, &mut findings)
            }
            Some(_) => {}
        }
        if i + 1 < scans.len() && scan.close.is_none() && scan.meta.is_some() {
            let what = "close row (only the newest segment may be open)";
            findings.push(
                scan.at
                    .finding(Kind::Deleted, None, what, "a close row", "none"),
            );
        }
    }
    if let Some(last) = scans.last()
        && last.close.is_some()
    {
        notes.push(format!(
            "the newest segment, {}, is closed and has no successor: either a rotation was \
             interrupted (the next start creates it) or newer segments were removed; only an \
             exported checkpoint can tell the two apart",
            last.at.segment
        ));
    }
    (findings, notes)
}

/// File indices run `first`, `first + 1`, ... without a gap.
fn check_indices(scans: &[Scan], first: u64, findings: &mut Vec<Finding>) {
    let mut expected = first;
    for scan in scans {
        let found = scan.at.segment_index;
        if found != expected {
            let at = At {
                segment: audit::file_name(expected),
                segment_index: expected,
            };
            let what = "segment file";
            findings.push(at.finding(
                Kind::SegmentMissing,
                None,
                what,
                audit::file_name(expected),
                audit::file_name(found),
            ));
        }
        expected = found + 1;
    }
}

/// The first segment starts the log: seq 0, the genesis head, no predecessor.
fn check_start(scan: &Scan, meta: &Meta, findings: &mut Vec<Finding>) {
    if scan.at.segment_index != 0 {
        return; // reported as missing segments
    }
    if meta.first_seq != 0 {
        findings.push(
            scan.at
                .finding(Kind::Modified, None, "meta.first_seq", 0, meta.first_seq),
        );
    }
    let genesis = chain::genesis(&meta.origin, &meta.log_id);
    if meta.prev_head != genesis {
        let what = "meta.prev_head (the genesis of origin and log_id)";
        findings.push(scan.at.finding(
            Kind::Modified,
            None,
            what,
            hex::encode(genesis),
            hex::encode(meta.prev_head),
        ));
    }
    if meta.prev_file_hash != [0; 32] {
        let f = scan.at.finding(
            Kind::Modified,
            None,
            "meta.prev_file_hash",
            hex::encode([0; 32]),
            hex::encode(meta.prev_file_hash),
        );
        findings.push(f);
    }
}

/// The oldest remaining segment continues the close seal of the last pruned one.
fn check_after_pruned(scan: &Scan, meta: &Meta, c: &SegmentClose, findings: &mut Vec<Finding>) {
    if scan.at.segment_index != c.index + 1 {
        return; // reported as missing segments
    }
    let mut differs = |what: &str, expected: String, found: String| {
        if expected != found {
            let f = scan.at.finding(Kind::Modified, None, what, expected, found);
            findings.push(f);
        }
    };
    let what = "meta.first_seq (continues the last pruned segment's close seal)";
    differs(
        what,
        (c.first_seq + c.count).to_string(),
        meta.first_seq.to_string(),
    );
    let what = "meta.prev_head (the last pruned segment's sealed end head)";
    differs(what, hex::encode(c.end_head), hex::encode(meta.prev_head));
    let what = "meta.prev_file_hash (the last pruned segment's sealed file hash)";
    differs(
        what,
        hex::encode(c.file_hash),
        hex::encode(meta.prev_file_hash),
    );
}

/// Segment `scan` continues `prev`.
fn check_link(prev: &Scan, scan: &Scan, meta: &Meta, findings: &mut Vec<Finding>) {
    let (Some(pmeta), Some((count, end_head))) = (&prev.meta, prev.close) else {
        return; // an unreadable or open predecessor is reported on its own
    };
    if pmeta.segment_index != prev.at.segment_index || meta.segment_index != scan.at.segment_index {
        return; // a file holding another segment is reported as replaced; its links follow
    }
    let at = &scan.at;
    let first = pmeta.first_seq + count;
    if meta.first_seq != first {
        let kind = if meta.segment_index == scan.at.segment_index {
            Kind::Modified
        } else {
            Kind::SegmentReplaced
        };
        findings.push(at.finding(
            kind,
            None,
            "meta.first_seq (continues the previous segment)",
            first,
            meta.first_seq,
        ));
    }
    if meta.prev_head != end_head {
        let what = "meta.prev_head (the previous segment's end head)";
        findings.push(at.finding(
            Kind::Modified,
            None,
            what,
            hex::encode(end_head),
            hex::encode(meta.prev_head),
        ));
    }
    match prev.file_hash {
        Some(h) if h == meta.prev_file_hash => {}
        Some(h) => {
            // Either the file's bytes or the hash recorded at its close (in this segment's
            // meta) changed; the record walk says whether its content changed too.
            let what = format!(
                "file bytes (against the hash recorded at close, in {}'s meta)",
                at.segment
            );
            let (expected, found) = (hex::encode(meta.prev_file_hash), hex::encode(h));
            findings.push(
                prev.at
                    .finding(Kind::Modified, None, &what, expected, found),
            );
        }
        None => {} // unreadable: reported as corrupt
    }
}
