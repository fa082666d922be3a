//! Tallies: the scans behind aggregations (metric queries, volume, stats), on worker threads,
//! reading a v2 block's columns instead of its records wherever the columns can answer.
//!
//! Owns: [`Reader::tally`]. It plans as [`Reader::scan`] does (the stream index, then each
//! segment's matching blocks), then hands the blocks out in chunks to up to `workers`
//! threads, each with its own [`Tally`] and its own read-only connections; the caller merges
//! what they folded. A v2 block is read through its columns (time, stream, line length,
//! level) when the tally says they suffice, given the metadata names the block lists; any
//! other block, and every v1 block, is decompressed and its records decoded. Order is not
//! kept: a tally must be a commutative fold.
//!
//! Must not: write, or hand a row or record outside the scan's streams and range.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use super::block::{self, Layout, columns::Columns, frame, tokens::may_contain};
use super::chain::{self, View};
use super::error::StoreError;
use super::index::StreamId;
use super::reader::Reader;
use super::scan::{Scan, ScanStats, matching_blocks};
use super::segment;

/// Worker threads one tally uses at most, whatever is asked: the box this runs on has two
/// cores, and ingest must keep one. Key `query.scan_workers` (at most this).
pub const MAX_SCAN_WORKERS: usize = 4;

/// Blocks a worker takes from the shared list at a time: few enough that both workers end
/// together, enough that taking them costs nothing.
const CHUNK_BLOCKS: usize = 8;

/// What one record is, read from a block's columns.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub ts_ns: i64,
    /// Bytes of the line.
    pub line_len: u64,
    /// The record's `detected_level` metadata; exact only in a block whose
    /// [`BlockFacts::levels_listed`] is true (otherwise `None` where it is not listed).
    pub level: Option<&'a str>,
}

/// What a block's columns say about all of its records, for [`Tally::columns_suffice`].
#[derive(Debug, Clone, Copy)]
pub struct BlockFacts<'a> {
    /// The metadata names besides `detected_level` any record of the block holds; `None`
    /// when there are more than a block lists.
    pub names: Option<&'a [Vec<u8>]>,
    /// Whether every record's level is in the columns (as UTF-8).
    pub levels_listed: bool,
}

/// One worker's fold.
pub trait Tally: Send {
    /// Whether [`Row`]s can stand for the records of a block with these facts. Monotone: a
    /// block listing no names and every level is the most a block offers, and a tally that
    /// refuses it is never handed columns (they are not even read).
    fn columns_suffice(&self, facts: &BlockFacts<'_>) -> bool;

    /// One record of a chosen stream inside the range, from the columns. `false` ends the
    /// whole tally.
    fn row(&mut self, stream: StreamId, row: &Row<'_>) -> bool;

    /// One record of a chosen stream inside the range, decoded. `false` ends the tally.
    fn record(&mut self, stream: StreamId, view: &View<'_>) -> bool;
}

/// One block to read.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// Index into the segments of the plan.
    seg: usize,
    first_seq: i64,
}

/// One segment of the plan, as the workers open it.
#[derive(Debug)]
struct Seg {
    path: PathBuf,
    layout: Layout,
    ids: foldhash::HashMap<i64, StreamId>,
}

impl Reader {
    /// Folds the records of `scan.streams` in `[start, end)` on up to `workers` threads, one
    /// tally each from `make`; returns the tallies (to merge) and what was read.
    pub fn tally<T: Tally>(
        &self,
        scan: &Scan,
        workers: usize,
        make: &(dyn Fn() -> T + Sync),
    ) -> Result<(Vec<T>, ScanStats), StoreError> {
        let index = self.index()?;
        let (plan, wanted) = self.plan(scan)?;
        let mut segs = Vec::new();
        let mut jobs = Vec::new();
        for (seg_index, p) in plan {
            let Some(path) = index.segment_path(seg_index) else {
                continue;
            };
            let conn =
                segment::open_read_only(&path).map_err(StoreError::sqlite("tally: open", &path))?;
            let layout =
                segment::layout(&conn).map_err(StoreError::sqlite("tally: open", &path))?;
            let blocks = matching_blocks(&conn, &path, layout, scan, &p)?;
            jobs.extend(blocks.into_iter().map(|(first_seq, _, _)| Job {
                seg: segs.len(),
                first_seq,
            }));
            segs.push(Seg {
                path,
                layout,
                ids: p.ids,
            });
        }
        let shared = Shared {
            scan,
            segs: &segs,
            jobs: &jobs,
            wanted: &wanted,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        let n = workers
            .clamp(1, MAX_SCAN_WORKERS)
            .min(jobs.len().div_ceil(CHUNK_BLOCKS).max(1));
        let results: Vec<Result<(T, ScanStats), StoreError>> = if n == 1 {
            vec![shared.work(make())]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..n).map(|_| s.spawn(|| shared.work(make()))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut stats = ScanStats {
            segments_opened: segs.len() as u64,
            ..ScanStats::default()
        };
        let mut tallies = Vec::with_capacity(results.len());
        for r in results {
            let (t, s) = r?;
            stats.add(&s);
            tallies.push(t);
        }
        Ok((tallies, stats))
    }
}

/// What every worker of one tally shares.
struct Shared<'a> {
    scan: &'a Scan,
    segs: &'a [Seg],
    jobs: &'a [Job],
    wanted: &'a HashMap<Vec<u8>, StreamId>,
    next: AtomicUsize,
    stop: AtomicBool,
}

impl Shared<'_> {
    /// One worker: takes chunks of blocks until none are left or the tally is stopped.
    fn work<T: Tally>(&self, mut tally: T) -> Result<(T, ScanStats), StoreError> {
        let mut stats = ScanStats::default();
        let columns = tally.columns_suffice(&BlockFacts {
            names: Some(&[]),
            levels_listed: true,
        });
        let mut conns: HashMap<usize, Connection> = HashMap::new();
        loop {
            let from = self.next.fetch_add(CHUNK_BLOCKS, Ordering::Relaxed);
            if from >= self.jobs.len() {
                break;
            }
            for job in &self.jobs[from..(from + CHUNK_BLOCKS).min(self.jobs.len())] {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok((tally, stats));
                }
                let seg = &self.segs[job.seg];
                let conn = match conns.entry(job.seg) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        segment::open_read_only(&seg.path)
                            .map_err(StoreError::sqlite("tally: open", &seg.path))?,
                    ),
                };
                let reader = BlockReader {
                    conn,
                    seg,
                    scan: self.scan,
                    wanted: self.wanted,
                    columns,
                };
                if !reader.read(job.first_seq, &mut tally, &mut stats)? {
                    self.stop.store(true, Ordering::Relaxed);
                    return Ok((tally, stats));
                }
            }
        }
        Ok((tally, stats))
    }
}

/// Reads the blocks of one segment for a worker.
struct BlockReader<'a> {
    conn: &'a Connection,
    seg: &'a Seg,
    scan: &'a Scan,
    wanted: &'a HashMap<Vec<u8>, StreamId>,
    /// Whether the tally may take a block's columns at all.
    columns: bool,
}

impl BlockReader<'_> {
    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.seg.path.clone(),
            detail,
        }
    }

    /// Folds one block; `false` when the tally asked to stop.
    fn read<T: Tally>(
        &self,
        first_seq: i64,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<bool, StoreError> {
        let tokens = !self.scan.tokens.is_empty();
        if self.seg.layout == Layout::V2 && (self.columns || tokens) {
            // Only what this tally can use is read: the columns, the filter, or both.
            let sql = match (self.columns, tokens) {
                (true, false) => {
                    "SELECT count, min_ts_ns, columns, x'' FROM blocks WHERE first_seq = ?1"
                }
                (false, _) => {
                    "SELECT count, min_ts_ns, x'', tokens FROM blocks WHERE first_seq = ?1"
                }
                (true, true) => {
                    "SELECT count, min_ts_ns, columns, tokens FROM blocks WHERE first_seq = ?1"
                }
            };
            let mut stmt = self
                .conn
                .prepare_cached(sql)
                .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
            let row: Option<(i64, i64, Vec<u8>, Vec<u8>)> = stmt
                .query_row(params![first_seq], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
            let Some((count, min_ts, columns, tokens)) = row else {
                return Ok(true);
            };
            if !self.scan.tokens.iter().all(|&h| may_contain(&tokens, h)) {
                stats.blocks_skipped += 1;
                return Ok(true);
            }
            if !self.columns {
                return self.fold_records(first_seq, tally, stats);
            }
            let raw = frame::decompress(&columns, None)
                .map_err(|e| self.corrupt(format!("block {first_seq}: columns: {e}")))?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            let c = Columns::decode(&raw, count, min_ts)
                .map_err(|e| self.corrupt(format!("block {first_seq}: columns: {e}")))?;
            if let Some(go_on) = self.fold_columns(&c, tally) {
                stats.blocks_read += 1;
                stats.blocks_from_columns += 1;
                stats.bytes_read += raw.len() as u64;
                return Ok(go_on);
            }
        }
        self.fold_records(first_seq, tally, stats)
    }

    /// Folds a block's rows if the tally says its columns suffice; `None` if they do not.
    fn fold_columns<T: Tally>(&self, c: &Columns, tally: &mut T) -> Option<bool> {
        let levels: Option<Vec<&str>> = c
            .levels
            .iter()
            .map(|l| std::str::from_utf8(l).ok())
            .collect();
        let facts = BlockFacts {
            names: c.names.as_deref(),
            levels_listed: levels.is_some() && c.levels_listed(),
        };
        if !tally.columns_suffice(&facts) {
            return None;
        }
        let levels = levels.unwrap_or_default();
        for i in 0..c.ts_ns.len() {
            let ts_ns = c.ts_ns[i];
            if ts_ns < self.scan.start_ns || ts_ns >= self.scan.end_ns {
                continue;
            }
            let Some(&stream) = self.seg.ids.get(&c.stream_id[i]) else {
                continue;
            };
            let level = match c.level[i] {
                0 => None,
                k => levels.get(k as usize - 1).copied(),
            };
            let row = Row {
                ts_ns,
                line_len: c.line_len[i],
                level,
            };
            if !tally.row(stream, &row) {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Folds a block's decoded records.
    fn fold_records<T: Tally>(
        &self,
        first_seq: i64,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT {} FROM blocks WHERE first_seq = ?1",
            self.seg.layout.records_columns()
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
        let (stored, raw_bytes): (Vec<u8>, i64) = stmt
            .query_row(params![first_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
        stats.blocks_read += 1;
        let blob = block::unpack(self.seg.layout, &stored, raw_bytes)
            .map_err(|e| self.corrupt(format!("block {first_seq}: {e}")))?;
        stats.bytes_read += blob.len() as u64;
        for canon in block::records(&blob) {
            let canon =
                canon.map_err(|at| self.corrupt(format!("block framing breaks at byte {at}")))?;
            let view = chain::decode(canon)
                .map_err(|e| self.corrupt(format!("undecodable record: {e}")))?;
            stats.records_decoded += 1;
            if view.ts_ns < self.scan.start_ns || view.ts_ns >= self.scan.end_ns {
                continue;
            }
            let Some(&stream) = self.wanted.get(view.labels) else {
                continue;
            };
            if !tally.record(stream, &view) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
