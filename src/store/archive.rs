//! Closed segments, read-only: as a segment-close seal sees them, and as an inclusion proof
//! needs them.
//!
//! Owns: [`list`]; [`summarize`], which re-reads a closed segment, recomputes its chain from
//! the meta's `prev_head` to the close row's end head, builds its Merkle root, and takes its
//! file hash from its successor's meta (where the writer recorded it at close); and
//! [`prove`], which gives one record with its Merkle path.
//!
//! Must not: open a segment for writing, or remove one (only a [`super::Pruner`] removes).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::chain::{self, Hash};
use super::error::StoreError;
use super::merkle;
use super::segment::{self, Meta};
use super::segments_dir;

/// What a segment-close seal binds about one closed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub index: u64,
    pub first_seq: u64,
    pub count: u64,
    pub end_head: Hash,
    pub merkle_root: Hash,
    pub file_hash: Hash,
}

/// The closed segments of the ledger: every segment file but the newest (the writer finishes
/// a close before it creates the next file), by index.
pub fn list(data_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut all = segment::list(&segments_dir(data_dir))?;
    all.pop();
    Ok(all)
}

/// Re-reads closed segment `index` and summarizes it, failing if its records do not chain to
/// the end head its close row states.
pub fn summarize(data_dir: &Path, index: u64) -> Result<Summary, StoreError> {
    let path = closed_path(data_dir, index)?;
    let conn = segment::open_read_only(&path).map_err(StoreError::sqlite("open segment", &path))?;
    let (meta, count, end_head) = meta_and_close(&conn, &path)?;
    let hasher = chain::Hasher::default();
    let mut tree = merkle::Builder::default();
    let mut head = meta.prev_head;
    each_record(&conn, &path, |canon| {
        let leaf = hasher.leaf(canon);
        head = hasher.link(&head, &leaf);
        tree.push_leaf(leaf);
        Ok(())
    })?;
    if tree.count() != count || head != end_head {
        return Err(corrupt(
            &path,
            format!(
                "its {} records chain to {} but its close row says {count} records ending at {}",
                tree.count(),
                hex::encode(head),
                hex::encode(end_head)
            ),
        ));
    }
    Ok(Summary {
        index,
        first_seq: meta.first_seq,
        count,
        end_head,
        merkle_root: tree.root(),
        file_hash: recorded_file_hash(data_dir, index, &path)?,
    })
}

/// The file hash the writer computed when it closed segment `index`, as its successor's meta
/// records it (the file is not read again); hashed afresh if the successor cannot say.
fn recorded_file_hash(data_dir: &Path, index: u64, path: &Path) -> Result<Hash, StoreError> {
    let next = segments_dir(data_dir).join(segment::file_name(index + 1));
    let recorded = segment::open_read_only(&next)
        .ok()
        .and_then(|c| segment::read_meta(&c).ok().flatten())
        .filter(|m| m.segment_index == index + 1)
        .map(|m| m.prev_file_hash);
    match recorded {
        Some(h) => Ok(h),
        None => segment::file_hash(path),
    }
}

/// One record of a closed segment with its Merkle path.
#[derive(Debug, Clone)]
pub struct Inclusion {
    /// The record's `ENTRY_V1` bytes.
    pub record: Vec<u8>,
    /// Its position in the segment and the segment's record count.
    pub leaf_index: u64,
    pub leaf_count: u64,
    /// Sibling subtree roots, from the leaf up.
    pub path: Vec<Hash>,
}

/// The record `seq` of closed segment `index` and its path to the segment's Merkle root, in
/// one pass over the segment with O(log n) state.
pub fn prove(data_dir: &Path, index: u64, seq: u64) -> Result<Inclusion, StoreError> {
    let path = closed_path(data_dir, index)?;
    let conn = segment::open_read_only(&path).map_err(StoreError::sqlite("open segment", &path))?;
    let (meta, count, _) = meta_and_close(&conn, &path)?;
    if seq < meta.first_seq || seq - meta.first_seq >= count {
        return Err(corrupt(&path, format!("seq {seq} is not in this segment")));
    }
    let m = seq - meta.first_seq;
    let ranges = merkle::path_ranges(m, count);
    let mut trees = vec![merkle::Builder::default(); ranges.len()];
    let hasher = chain::Hasher::default();
    let mut record = Vec::new();
    let mut i = 0u64;
    each_record(&conn, &path, |canon| {
        if i == m {
            record = canon.to_vec();
        } else if let Some(k) = ranges.iter().position(|&(lo, hi)| (lo..hi).contains(&i)) {
            trees[k].push_leaf(hasher.leaf(canon));
        }
        i += 1;
        Ok(())
    })?;
    Ok(Inclusion {
        record,
        leaf_index: m,
        leaf_count: count,
        path: trees.iter().map(merkle::Builder::root).collect(),
    })
}

/// The path of closed segment `index`, or an error if it is not a closed segment.
pub(super) fn closed_path(data_dir: &Path, index: u64) -> Result<PathBuf, StoreError> {
    list(data_dir)?
        .into_iter()
        .find(|(i, _)| *i == index)
        .map(|(_, p)| p)
        .ok_or_else(|| StoreError::Corrupt {
            path: segments_dir(data_dir).join(segment::file_name(index)),
            detail: "not a closed segment of this ledger".into(),
        })
}

pub(super) fn meta_and_close(
    conn: &Connection,
    path: &Path,
) -> Result<(Meta, u64, Hash), StoreError> {
    let meta = segment::read_meta(conn)
        .map_err(StoreError::sqlite("read meta", path))?
        .ok_or_else(|| corrupt(path, "no meta row".into()))?;
    let (count, end_head) = conn
        .query_row("SELECT count, end_head FROM close WHERE id = 1", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, segment::blob_array(r, 1)?))
        })
        .map_err(StoreError::sqlite("read close row", path))?;
    Ok((meta, count, end_head))
}

/// Calls `f` with every record's bytes in sequence order.
fn each_record(
    conn: &Connection,
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), StoreError> {
    super::reader::each_record(conn, path, 0, |canon| f(canon).map(|()| true))
}

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        detail,
    }
}
