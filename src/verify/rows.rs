//! The walk over the records of one chunk (the blocks of one segment whose first seq lies in
//! a range).
//!
//! For every block: it starts where the previous one ended, its records decode and carry
//! consecutive sequence numbers, each stored head equals `link(previous stored head,
//! leaf(record))` (v2: the records decompress to `raw_bytes` and chain from the previous
//! block's end head to their own), and every derived column (count, recv_ns, time span, the
//! block_streams rows; v2: the columns and the token filter) matches the records. Because each
//! record (v2: each block) is checked against the stored head before it, chunks are independent
//! and run in parallel, and one changed record shows up at exactly its sequence number (v2: its
//! block's range).
//!
//! Must not: write, or stop at the first finding (it caps them instead).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::report::{At, Finding, Kind};
use crate::store::audit::{BlockRow as Block, SegmentFile, Stored, StreamSpan};
use crate::store::block::{self, frame};
use crate::store::chain::{self, Hash};
use crate::store::merkle;

/// Findings one chunk reports at most; past the first few, more add nothing to the report.
const MAX_FINDINGS_PER_CHUNK: usize = 32;

/// One unit of parallel work.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub at: At,
    pub path: PathBuf,
    /// Blocks whose first_seq lies in `lo..hi`.
    pub lo: u64,
    pub hi: u64,
    /// Where the segment starts: its first_seq and prev_head (used when no block precedes `lo`).
    pub seg_first: u64,
    pub seg_prev_head: Hash,
    /// Stream id of each labels section in the segment's streams table.
    pub streams: Arc<HashMap<Vec<u8>, i64>>,
}

/// What a chunk found.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    pub rows: u64,
    pub findings: Vec<Finding>,
    /// The chunk's stretch of its segment's Merkle tree (leaf positions within the
    /// segment), when every record of the stretch was read in order.
    pub merkle: Option<Vec<(u64, u32, Hash)>>,
    /// The segment the chunk belongs to.
    pub segment_index: u64,
}

pub(crate) fn walk(chunk: &Chunk, hasher: &chain::Hasher, progress: &AtomicU64) -> Walked {
    let mut out = Walked {
        segment_index: chunk.at.segment_index,
        ..Walked::default()
    };
    if let Err(e) = walk_blocks(chunk, hasher, progress, &mut out) {
        out.merkle = None;
        let f = chunk.at.finding(
            Kind::Corrupt,
            Some(chunk.lo),
            "blocks",
            "readable records",
            e,
        );
        out.findings.push(f);
    }
    out
}

/// Where the walk stands: the next expected seq and the stored head before it, and the
/// Merkle stretch so far (dropped at the first break).
struct Cursor {
    expected: u64,
    prev: Option<Hash>,
    tree: Option<merkle::Pieces>,
}

fn walk_blocks(
    chunk: &Chunk,
    hasher: &chain::Hasher,
    progress: &AtomicU64,
    out: &mut Walked,
) -> Result<(), String> {
    let file = SegmentFile::open(&chunk.path).map_err(|e| e.to_string())?;
    let mut cur = start(chunk, &file)?;
    let spans = file.spans(chunk.lo, chunk.hi).map_err(|e| e.to_string())?;
    file.each_block(chunk.lo, chunk.hi, |b| {
        let stored = spans
            .get(&b.first_seq)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let n = check_block(chunk, &file, hasher, b, stored, &mut cur, &mut out.findings);
        out.rows += n;
        progress.fetch_add(n, Ordering::Relaxed);
        if out.findings.len() >= MAX_FINDINGS_PER_CHUNK {
            cur.tree = None;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    out.merkle = cur.tree.map(merkle::Pieces::into_vec);
    Ok(())
}

/// The cursor before the chunk's first block: the end of the block before `lo`, or the
/// segment's start.
fn start(chunk: &Chunk, file: &SegmentFile) -> Result<Cursor, String> {
    let before = file.block_before(chunk.lo).map_err(|e| e.to_string())?;
    Ok(match before {
        Some((first, count, head)) if chunk.lo > chunk.seg_first => {
            let expected = (first + count) as u64;
            Cursor {
                expected,
                prev: head,
                tree: expected
                    .checked_sub(chunk.seg_first)
                    .map(merkle::Pieces::starting_at),
            }
        }
        _ => Cursor {
            expected: chunk.seg_first,
            prev: Some(chunk.seg_prev_head),
            tree: Some(merkle::Pieces::starting_at(0)),
        },
    })
}

/// Checks one block; returns the number of records walked.
fn check_block(
    chunk: &Chunk,
    file: &SegmentFile,
    hasher: &chain::Hasher,
    b: &Block<'_>,
    stored_spans: &[StreamSpan],
    cur: &mut Cursor,
    out: &mut Vec<Finding>,
) -> u64 {
    check_placement(&chunk.at, b, cur, out);
    let mut derived = block::Builder::new(b.first_seq, file.layout());
    let (walked, broke) = match b.raw_records() {
        Ok(raw) => walk_records(chunk, file, hasher, b, &raw, cur, &mut derived, out),
        Err(e) => {
            let what = "blocks.records (compressed frame)";
            let expected = "one zstd frame of raw_bytes bytes";
            let f = chunk
                .at
                .finding(Kind::Modified, Some(b.first_seq), what, expected, e);
            out.push(f);
            (0, true)
        }
    };
    // Once the walk broke, the derived columns can only disagree with a partial block, and
    // the walk goes on after the records the block claims to hold, with no trusted head.
    if broke {
        cur.expected = b.first_seq + walked.max(b.count.max(0) as u64);
        cur.prev = None;
        cur.tree = None;
    } else {
        cur.expected = b.first_seq + walked;
        if let Stored::V2 { end_head, .. } = b.stored {
            check_end_head(&chunk.at, b, end_head, cur, out);
        }
        check_derived(&chunk.at, b, &mut derived, stored_spans, out);
    }
    walked
}

/// A v2 block's records must chain to its stored end head; the walk goes on from the stored
/// head (as it does from each stored head of v1), so blocks stay independent.
fn check_end_head(
    at: &At,
    b: &Block<'_>,
    end_head: &[u8],
    cur: &mut Cursor,
    out: &mut Vec<Finding>,
) {
    let Ok(stored) = Hash::try_from(end_head) else {
        let found = format!("{} bytes", end_head.len());
        out.push(at.finding(
            Kind::Modified,
            Some(b.first_seq),
            "blocks.end_head",
            "32 bytes",
            found,
        ));
        cur.prev = None;
        return;
    };
    if let Some(computed) = cur.prev.filter(|c| *c != stored) {
        let last = b.first_seq + (b.count.max(1) as u64) - 1;
        let what = format!(
            "records {}..={last} or end_head (the block's records do not chain to its end head)",
            b.first_seq
        );
        out.push(at.finding(
            Kind::Modified,
            Some(b.first_seq),
            &what,
            hex::encode(stored),
            hex::encode(computed),
        ));
    }
    cur.prev = Some(stored);
}

/// A block must start where the previous one ended; if it does not, the chain and the Merkle
/// stretch start afresh after it.
fn check_placement(at: &At, b: &Block<'_>, cur: &mut Cursor, out: &mut Vec<Finding>) {
    if b.first_seq > cur.expected {
        out.push(at.finding(
            Kind::Deleted,
            Some(cur.expected),
            "blocks (records missing)",
            cur.expected,
            b.first_seq,
        ));
    } else if b.first_seq < cur.expected {
        let what = "blocks (a block overlaps the records before it)";
        out.push(at.finding(
            Kind::Inserted,
            Some(b.first_seq),
            what,
            cur.expected,
            b.first_seq,
        ));
    } else {
        return;
    }
    cur.prev = None;
    cur.tree = None;
}

/// Walks the block's records: each decodes, sits at its own seq, has a stream and a stored
/// head, and chains from its predecessor. Returns the records walked and whether the walk
/// broke off (a record that cannot be read or placed).
#[allow(clippy::too_many_arguments)]
fn walk_records(
    chunk: &Chunk,
    file: &SegmentFile,
    hasher: &chain::Hasher,
    b: &Block<'_>,
    raw: &[u8],
    cur: &mut Cursor,
    derived: &mut block::Builder,
    out: &mut Vec<Finding>,
) -> (u64, bool) {
    let at = &chunk.at;
    let mut walked = 0u64;
    for (i, canon) in block::records(raw).enumerate() {
        let seq = b.first_seq + i as u64;
        let view = match canon.map(|c| (c, chain::decode(c))) {
            Ok((canon, Ok(v))) => (canon, v),
            Ok((_, Err(e))) => {
                let what = "blocks.records";
                out.push(at.finding(Kind::Modified, Some(seq), what, "a well-formed record", e));
                return (walked, true);
            }
            Err(_) => {
                let what = "blocks.records (framing)";
                let expected = "a length-prefixed record";
                out.push(at.finding(Kind::Modified, Some(seq), what, expected, "a broken frame"));
                return (walked, true);
            }
        };
        let (canon, view) = view;
        if view.seq != seq {
            out.push(misplaced(at, file, b, i, view.seq));
            return (walked, true);
        }
        let stream_id = chunk.streams.get(view.labels).copied().unwrap_or(-1);
        if stream_id < 0 {
            let what = "streams (no stream holds the record's labels)";
            out.push(at.finding(Kind::Modified, Some(seq), what, "a streams row", "none"));
        }
        let leaf = hasher.leaf(canon);
        let Stored::V1 { heads } = b.stored else {
            // v2: the heads inside a block are recomputed, and checked at its end head.
            if let Some(t) = cur.tree.as_mut() {
                t.push_leaf(leaf);
            }
            cur.prev = cur.prev.map(|p| hasher.link(&p, &leaf));
            derived.push(canon, &view, &cur.prev.unwrap_or_default(), stream_id);
            walked += 1;
            continue;
        };
        let stored_head = block::head(heads, i);
        derived.push(canon, &view, &stored_head.unwrap_or_default(), stream_id);
        walked += 1;
        let Some(stored_head) = stored_head else {
            let what = "blocks.heads (too short)";
            out.push(at.finding(Kind::Modified, Some(seq), what, "a head", "none"));
            return (walked, true);
        };
        chain_record(at, seq, leaf, stored_head, hasher, cur, out);
    }
    (walked, false)
}

/// Adds one record's leaf to the Merkle stretch and checks its stored head against
/// `link(previous stored head, leaf)`.
fn chain_record(
    at: &At,
    seq: u64,
    leaf: Hash,
    stored_head: Hash,
    hasher: &chain::Hasher,
    cur: &mut Cursor,
    out: &mut Vec<Finding>,
) {
    if let Some(t) = cur.tree.as_mut() {
        t.push_leaf(leaf);
    }
    if let Some(prev) = &cur.prev {
        let computed = hasher.link(prev, &leaf);
        if computed != stored_head {
            // Expected is what the records say (recomputed), found what is stored.
            let what = "record or head (the record does not chain from its predecessor)";
            out.push(at.finding(
                Kind::Modified,
                Some(seq),
                what,
                hex::encode(computed),
                hex::encode(stored_head),
            ));
        }
    }
    cur.prev = Some(stored_head);
}

/// The block's own columns and its block_streams rows against what its records say.
fn check_derived(
    at: &At,
    b: &Block<'_>,
    derived: &mut block::Builder,
    stored: &[StreamSpan],
    out: &mut Vec<Finding>,
) {
    let seq = Some(b.first_seq);
    let mut mismatch = |what: &str, expected: String, found: String| {
        out.push(at.finding(Kind::Modified, seq, what, expected, found));
    };
    if b.count != derived.count as i64 {
        let what = "blocks.count";
        mismatch(
            what,
            format!("{} records", derived.count),
            b.count.to_string(),
        );
        return;
    }
    if let Stored::V1 { heads } = b.stored
        && heads.len() != b.count.max(0) as usize * 32
    {
        let found = format!("{} head bytes", heads.len());
        mismatch("blocks.heads", format!("{} records", derived.count), found);
        return;
    }
    if derived.count == 0 {
        mismatch("blocks.count", "at least 1 record".into(), "0".into());
        return;
    }
    if b.recv_ns != derived.recv_ns {
        mismatch(
            "blocks.recv_ns",
            derived.recv_ns.to_string(),
            b.recv_ns.to_string(),
        );
    }
    if (b.min_ts_ns, b.max_ts_ns) != (derived.min_ts_ns, derived.max_ts_ns) {
        let expected = format!("{}..{}", derived.min_ts_ns, derived.max_ts_ns);
        mismatch(
            "blocks.min_ts_ns/max_ts_ns",
            expected,
            format!("{}..{}", b.min_ts_ns, b.max_ts_ns),
        );
    }
    let mut spans = derived.streams.clone();
    spans.sort_by_key(|s| s.stream_id);
    if spans != stored {
        mismatch("block_streams", format!("{spans:?}"), format!("{stored:?}"));
    }
    if let Stored::V2 {
        summary,
        columns,
        tokens,
        ..
    } = b.stored
    {
        let stored = StoredIndexes {
            summary,
            columns,
            tokens,
        };
        check_indexes(derived.derived(), &stored, &mut mismatch);
    }
}

/// What a v2 block stores beside its records, derived from them.
struct StoredIndexes<'a> {
    summary: &'a [u8],
    columns: &'a [u8],
    tokens: &'a [u8],
}

/// A v2 block's column summary and token filter (compared byte for byte) and its columns
/// (compared decompressed, so any zstd encoder may have written them) against what its
/// records give.
fn check_indexes(
    derived: block::Derived,
    stored: &StoredIndexes<'_>,
    mismatch: &mut impl FnMut(&str, String, String),
) {
    let StoredIndexes {
        summary,
        columns,
        tokens,
    } = *stored;
    if summary != derived.summary {
        mismatch(
            "blocks.summary (it disagrees with the records)",
            format!(
                "{} bytes {}",
                derived.summary.len(),
                digest(&derived.summary)
            ),
            format!("{} bytes {}", summary.len(), digest(summary)),
        );
    }
    match frame::decompress(columns, None) {
        Ok(c) if c == derived.columns => {}
        Ok(c) => mismatch(
            "blocks.columns (they disagree with the records)",
            format!(
                "{} bytes {}",
                derived.columns.len(),
                digest(&derived.columns)
            ),
            format!("{} bytes {}", c.len(), digest(&c)),
        ),
        Err(e) => mismatch(
            "blocks.columns (compressed frame)",
            "one zstd frame".into(),
            e.to_string(),
        ),
    }
    if tokens != derived.tokens {
        mismatch(
            "blocks.tokens (the filter disagrees with the records)",
            format!("{} bytes {}", derived.tokens.len(), digest(&derived.tokens)),
            format!("{} bytes {}", tokens.len(), digest(tokens)),
        );
    }
}

/// A short fingerprint of bytes too long to print in a finding.
fn digest(bytes: &[u8]) -> String {
    format!("blake3:{}", &blake3::hash(bytes).to_hex()[..16])
}

/// A block whose records belong elsewhere: a copy of the block that still sits at its own
/// place is a duplicate; otherwise blocks were moved.
fn misplaced(at: &At, file: &SegmentFile, b: &Block<'_>, i: usize, own_seq: u64) -> Finding {
    let seq = b.first_seq + i as u64;
    let original = file.block_records(own_seq).ok().flatten();
    let kind = if i == 0 && original.as_deref() == Some(b.records) {
        Kind::Duplicated
    } else {
        Kind::Reordered
    };
    at.finding(
        kind,
        Some(seq),
        "blocks (a record's own seq differs from its place)",
        seq,
        own_seq,
    )
}
