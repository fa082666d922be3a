//! Entries not yet under a segment-close seal: one record with the chain from the head
//! before it to the head its epoch's seal binds.
//!
//! Owns: [`prove`], which finds record `seq` in whatever segment holds it (the open one
//! included), the head before it (the previous block's head, or the segment's `prev_head`),
//! and the leaves of the records after it up to the end of its epoch, which may lie in the
//! next segment. Folding those leaves onto the record's head gives the sealed head; finding
//! another record that does so is a blake3 collision.
//!
//! Must not: write, or return a proof longer than [`MAX_EPOCH_PROOF_LEAVES`].

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::block::Layout;
use super::chain::{self, Hash};
use super::error::StoreError;
use super::segment;
use super::segments_dir;

/// Leaves an epoch proof may carry after its record: 32 MiB, an epoch of 10 s at 100,000
/// entries/s. A busier epoch proves by its segment's Merkle root once the segment closes.
pub const MAX_EPOCH_PROOF_LEAVES: u64 = 1 << 20;

/// One record, the head before it, and the leaves after it to the end of its epoch.
#[derive(Debug, Clone)]
pub struct EpochInclusion {
    /// The record's `ENTRY_V1` bytes.
    pub record: Vec<u8>,
    pub prev_head: Hash,
    /// Leaves of records `seq + 1 .. end_seq`, in order.
    pub later: Vec<Hash>,
}

/// Record `seq` and the chain from it to the head after record `end_seq - 1`.
pub fn prove(data_dir: &Path, seq: u64, end_seq: u64) -> Result<EpochInclusion, StoreError> {
    let dir = segments_dir(data_dir);
    let later_count = end_seq.saturating_sub(seq + 1);
    if seq >= end_seq || later_count > MAX_EPOCH_PROOF_LEAVES {
        return Err(StoreError::Corrupt {
            path: dir,
            detail: format!(
                "an epoch proof of seq {seq} would carry {later_count} leaves (at most \
                 {MAX_EPOCH_PROOF_LEAVES}); prove it once its segment closes"
            ),
        });
    }
    // Newest first, and only as far back as the segment that holds `seq`: an entry not yet
    // close-sealed lies in the newest segment or the one before it, not in a year of them.
    let mut opened = Vec::new();
    for (_, path) in segment::list(&dir)?.into_iter().rev() {
        let conn =
            segment::open_read_only(&path).map_err(StoreError::sqlite("open segment", &path))?;
        let meta = segment::read_meta(&conn)
            .map_err(StoreError::sqlite("read meta", &path))?
            .ok_or_else(|| corrupt(&path, "no meta row".into()))?;
        let holds = meta.first_seq <= seq;
        opened.push((path, conn, meta));
        if holds {
            break;
        }
    }
    if opened.last().is_none_or(|(_, _, m)| m.first_seq > seq) {
        return Err(corrupt(&dir, format!("no segment holds seq {seq}")));
    }
    opened.reverse();
    let mut out = EpochInclusion {
        record: Vec::new(),
        prev_head: [0; 32],
        later: Vec::with_capacity(later_count as usize),
    };
    let hasher = chain::Hasher::default();
    let mut next = seq;
    for (i, (path, conn, meta)) in opened.iter().enumerate() {
        let from = if i == 0 { seq } else { meta.first_seq };
        if from != next {
            return Err(corrupt(path, format!("starts at seq {from}, not {next}")));
        }
        let (mut at, mut head) = block_start(conn, path, meta, from)?;
        super::reader::each_record(conn, path, from, |canon| {
            if at < seq {
                head = hasher.next_head(&head, canon);
            } else if at == seq {
                out.prev_head = head;
                out.record = canon.to_vec();
            } else {
                out.later.push(hasher.leaf(canon));
            }
            at += 1;
            Ok(at < end_seq)
        })?;
        next = at;
        if next >= end_seq {
            return Ok(out);
        }
    }
    Err(corrupt(
        &dir,
        format!("the ledger ends at seq {next}, before its epoch's end at {end_seq}"),
    ))
}

/// The first seq of the block holding `seq` and the head before that block.
fn block_start(
    conn: &Connection,
    path: &Path,
    meta: &segment::Meta,
    seq: u64,
) -> Result<(u64, Hash), StoreError> {
    let fail = StoreError::sqlite("read blocks", path);
    let first: Option<i64> = conn
        .query_row(
            "SELECT first_seq FROM blocks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1",
            params![seq as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("read blocks", path))?;
    let first = first.ok_or_else(|| corrupt(path, format!("no block holds seq {seq}")))?;
    let head_col = match segment::layout(conn).map_err(StoreError::sqlite("read blocks", path))? {
        Layout::V1 => "substr(heads, -32)",
        Layout::V2 => "end_head",
    };
    let sql = format!(
        "SELECT {head_col} FROM blocks WHERE first_seq < ?1 ORDER BY first_seq DESC LIMIT 1"
    );
    let before: Option<Vec<u8>> = conn
        .query_row(&sql, params![first], |r| r.get(0))
        .optional()
        .map_err(fail)?;
    let head = match before {
        None => meta.prev_head,
        Some(h) => h.try_into().map_err(|_| {
            corrupt(
                path,
                format!("the head before block {first} is not 32 bytes"),
            )
        })?,
    };
    Ok((first as u64, head))
}

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        detail,
    }
}
