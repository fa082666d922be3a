//! Tallies: the scans behind aggregations (metric queries, volume, stats), on worker threads,
//! reading a v2 block's summary or columns instead of its records wherever they can answer.
//!
//! Owns: [`Reader::tally`] and the hand-out of its work. Each segment's blocks are found as
//! [`Reader::scan`] finds them (through `block_streams`), or, when the query wants a large
//! share of a v2 segment's streams over most of its span
//! ([`BLOCK_FIRST_SHARE`](super::scan::BLOCK_FIRST_SHARE)), walked in key order in ranges of
//! sequence numbers, each block kept when its summary holds a chosen stream. The work is
//! handed out in chunks to up to `workers` threads, each with its own [`Tally`] and its own
//! read-only connections in one read transaction; the caller merges what they folded. How
//! one block is read is [`block`]'s. Order is not kept: a tally must be a commutative fold.
//!
//! Must not: write, or hand a row or record outside the scan's streams and range.

mod block;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rusqlite::Connection;

use super::block::{BLOCK_MAX_RECORDS, Layout};
use super::chain::View;
use super::error::StoreError;
use super::index::StreamId;
use super::reader::Reader;
use super::scan::{Scan, ScanStats, matching_blocks, walk_range};
use super::segment;
use block::BlockReader;

/// Worker threads one tally uses at most, whatever is asked: the box this runs on has two
/// cores, and ingest must keep one. Key `query.scan_workers` (at most this).
pub const MAX_SCAN_WORKERS: usize = 4;

/// Jobs a worker takes from the shared list at a time: few enough that both workers end
/// together, enough that taking them costs nothing.
const CHUNK_JOBS: usize = 8;

/// Sequence numbers one walking job covers: a few full blocks.
const RANGE_SEQS: i64 = (BLOCK_MAX_RECORDS * 8) as i64;

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

/// The records of one stream and one level in a block lying wholly inside the range and
/// inside a span the tally said folds alike ([`Tally::folds_alike`]), summed.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub count: u64,
    /// Bytes of their lines together.
    pub line_bytes: u64,
    /// As in [`Row::level`].
    pub level: Option<&'a str>,
    /// The block's earliest and latest timestamps: every record of the group lies between.
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
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

    /// Whether every record with a timestamp in `[min_ts_ns, max_ts_ns]` folds alike, but
    /// for its stream, level and line length (it lands in the same buckets): then a block
    /// whose columns suffice and which lies there is handed as [`Group`]s, not rows.
    fn folds_alike(&self, _min_ts_ns: i64, _max_ts_ns: i64) -> bool {
        false
    }

    /// The records of a chosen stream and one level of such a block. `false` ends the tally.
    fn group(&mut self, stream: StreamId, group: &Group<'_>) -> bool;
}

/// One piece of a worker's work.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// One block the plan found, by its first sequence number.
    Block { seg: usize, first_seq: i64 },
    /// Every block whose first sequence number is in `[lo, hi)`, walked in key order.
    Range { seg: usize, lo: i64, hi: i64 },
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
            let seg = segs.len();
            match walk_range(&conn, &path, layout, scan, &p)? {
                Some((lo, hi)) => {
                    jobs.extend((lo..hi).step_by(RANGE_SEQS as usize).map(|lo| Job::Range {
                        seg,
                        lo,
                        hi: lo.saturating_add(RANGE_SEQS).min(hi),
                    }))
                }
                None => {
                    let blocks = matching_blocks(&conn, &path, layout, scan, &p)?;
                    jobs.extend(
                        blocks
                            .into_iter()
                            .map(|(first_seq, _, _)| Job::Block { seg, first_seq }),
                    );
                }
            }
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
            .min(jobs.len().div_ceil(CHUNK_JOBS).max(1));
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
    wanted: &'a foldhash::HashMap<Vec<u8>, StreamId>,
    next: AtomicUsize,
    stop: AtomicBool,
}

impl Shared<'_> {
    /// One worker: takes chunks of jobs until none are left or the tally is stopped.
    fn work<T: Tally>(&self, mut tally: T) -> Result<(T, ScanStats), StoreError> {
        let mut stats = ScanStats::default();
        let columns = tally.columns_suffice(&BlockFacts {
            names: Some(&[]),
            levels_listed: true,
        });
        let mut conns: HashMap<usize, Connection> = HashMap::new();
        loop {
            let from = self.next.fetch_add(CHUNK_JOBS, Ordering::Relaxed);
            if from >= self.jobs.len() {
                break;
            }
            for &job in &self.jobs[from..(from + CHUNK_JOBS).min(self.jobs.len())] {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok((tally, stats));
                }
                let (Job::Block { seg, .. } | Job::Range { seg, .. }) = job;
                let conn = match conns.entry(seg) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let path = &self.segs[seg].path;
                        let conn = segment::open_snapshot(path)
                            .map_err(StoreError::sqlite("tally: open", path))?;
                        e.insert(conn)
                    }
                };
                let reader = BlockReader {
                    conn,
                    seg: &self.segs[seg],
                    scan: self.scan,
                    wanted: self.wanted,
                    columns,
                };
                let go_on = match job {
                    Job::Block { first_seq, .. } => {
                        reader.read(first_seq, &mut tally, &mut stats)?
                    }
                    Job::Range { lo, hi, .. } => reader.walk(lo, hi, &mut tally, &mut stats)?,
                };
                if !go_on {
                    self.stop.store(true, Ordering::Relaxed);
                    return Ok((tally, stats));
                }
            }
        }
        Ok((tally, stats))
    }
}
