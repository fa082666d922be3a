//! The parallel phase of an audit: each walkable segment's range cut into chunks of
//! records, the whole-file tasks (file hash, SQLite's own check) beside them, one pool for
//! all of it, and the results folded back into the scans.
//!
//! Must not: decide what a finding means for the report (the caller sorts and judges them).

use std::collections::{BTreeMap, BTreeSet};

use super::report::{Finding, Kind};
use super::{Progress, pool, rows, structure};
use crate::store::{audit, chain, merkle};

/// Sequence numbers per unit of parallel work: big enough to amortise opening a connection,
/// small enough that two cores share one large segment evenly.
const CHUNK_ROWS: u64 = 256 * 1024;

/// Splits every walkable segment's range into chunks of [`CHUNK_ROWS`].
pub(super) fn chunks(
    scans: &[structure::Scan],
    skipped: &dyn Fn(&structure::Scan) -> bool,
) -> Vec<rows::Chunk> {
    let mut out = Vec::new();
    for scan in scans.iter().filter(|s| s.walkable() && !skipped(s)) {
        let (Some(meta), Some((_, max, _))) = (&scan.meta, scan.seqs) else {
            continue;
        };
        // Blocks are assigned to chunks by their first seq; the first chunk also takes any
        // block stored before the segment's range (reported as inserted, walked all the same).
        let mut lo = meta.first_seq.min(scan.seqs.map_or(u64::MAX, |s| s.0));
        while lo <= max {
            let hi = lo.saturating_add(CHUNK_ROWS).min(max + 1);
            out.push(rows::Chunk {
                at: scan.at.clone(),
                path: scan.path.clone(),
                lo,
                hi,
                seg_first: meta.first_seq,
                seg_prev_head: meta.prev_head,
                streams: scan.streams.clone(),
            });
            lo = hi;
        }
    }
    out
}

/// One pool for all the heavy work: whole-file tasks first, largest first, so that they
/// overlap the record walks.
pub(super) fn heavy_work(
    jobs: usize,
    scans: &[structure::Scan],
    chunks: &[rows::Chunk],
    skipped: &dyn Fn(&structure::Scan) -> bool,
    progress: &Progress,
) -> Vec<Done> {
    let mut tasks: Vec<Task> = Vec::new();
    for (i, scan) in scans.iter().enumerate() {
        if skipped(scan) || scan.close.is_none() {
            continue;
        }
        tasks.push(Task::Hash(i));
        // The open segment is left to the record walk: a long read of the file the writer is
        // about to close would hold up its rotation.
        if !scan.quick_checked {
            tasks.push(Task::Check(i));
        }
    }
    tasks.sort_by_key(|t| std::cmp::Reverse(t.bytes(scans)));
    tasks.extend((0..chunks.len()).map(Task::Walk));
    let hasher = chain::Hasher::default();
    pool::run(jobs, &tasks, |t| match *t {
        Task::Hash(i) => Done::Hash(
            i,
            audit::file_hash(&scans[i].path).map_err(|e| e.to_string()),
        ),
        Task::Check(i) => Done::Check(i, structure::quick_check(&scans[i].path)),
        Task::Walk(c) => Done::Walk(rows::walk(&chunks[c], &hasher, &progress.done)),
    })
}

/// Listed segments whose file is gone now. On a live ledger retention may remove the oldest
/// segments while this run reads them; such a segment is judged as if it had been removed
/// before the run: what was read of it is dropped, and the prune seals (read after the
/// removal) and the links must account for its absence like for any other. Judged by the
/// listed file, never by a recovered copy of it (which outlives the original).
pub(super) fn gone_since_listed(scans: &[structure::Scan]) -> BTreeSet<u64> {
    scans
        .iter()
        .filter(|s| !s.listed.exists())
        .map(|s| s.at.segment_index)
        .collect()
}

/// Folds the parallel results into the scans (file hashes, Merkle roots) and returns their
/// findings and the number of records walked.
pub(super) fn take_results(
    done: Vec<Done>,
    scans: &mut [structure::Scan],
    gone: &BTreeSet<u64>,
) -> (Vec<Finding>, u64) {
    let mut findings: Vec<Finding> = Vec::new();
    let mut entries = 0;
    let mut trees: BTreeMap<u64, Option<merkle::Builder>> = BTreeMap::new();
    for d in done {
        let of_gone = match &d {
            Done::Hash(i, _) | Done::Check(i, _) => gone.contains(&scans[*i].at.segment_index),
            Done::Walk(w) => gone.contains(&w.segment_index),
        };
        if of_gone {
            continue;
        }
        match d {
            Done::Hash(i, Ok(h)) => scans[i].file_hash = Some(h),
            Done::Hash(i, Err(e)) | Done::Check(i, Some(e)) => {
                let f = scans[i]
                    .at
                    .finding(Kind::Corrupt, None, "file", "a readable segment", e);
                findings.push(f);
            }
            Done::Check(_, None) => {}
            Done::Walk(w) => {
                entries += w.rows;
                findings.extend(w.findings);
                join_tree(&mut trees, w.segment_index, w.merkle.as_deref());
            }
        }
    }
    for scan in scans.iter_mut() {
        let tree = trees.get(&scan.at.segment_index).and_then(Option::as_ref);
        scan.merkle_root = match (tree, scan.close) {
            (Some(t), Some((count, _))) if t.count() == count => Some(t.root()),
            (None, Some((0, _))) => Some(merkle::empty_root()),
            _ => None,
        };
    }
    (findings, entries)
}

/// Adds one chunk's stretch to its segment's Merkle tree; a missing or out-of-place stretch
/// leaves the segment without a root.
fn join_tree(
    trees: &mut BTreeMap<u64, Option<merkle::Builder>>,
    segment: u64,
    pieces: Option<&[(u64, u32, chain::Hash)]>,
) {
    let tree = trees
        .entry(segment)
        .or_insert_with(|| Some(merkle::Builder::default()));
    let joined = match (tree.as_mut(), pieces) {
        (Some(t), Some(pieces)) => t.push_pieces(pieces),
        _ => false,
    };
    if !joined {
        *tree = None;
    }
}

/// A unit of the parallel phase.
pub(super) enum Task {
    /// `file_blake3` of closed segment `i`.
    Hash(usize),
    /// `quick_check` of segment `i`.
    Check(usize),
    /// Walk chunk `c`.
    Walk(usize),
}

impl Task {
    /// Bytes a whole-file task reads, to start the largest first.
    fn bytes(&self, scans: &[structure::Scan]) -> u64 {
        match *self {
            Task::Hash(i) | Task::Check(i) => scans[i].bytes,
            Task::Walk(_) => 0,
        }
    }
}

pub(super) enum Done {
    Hash(usize, Result<chain::Hash, String>),
    Check(usize, Option<String>),
    Walk(rows::Walked),
}
