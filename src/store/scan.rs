//! Scanning: the records of chosen streams whose timestamps lie in `[start, end)`.
//!
//! Owns: [`Reader::scan`], which plans from the stream index (segments without a matching
//! stream in range are never opened), then walks the matching blocks of each segment newest
//! or oldest first, and hands each decoded record of a wanted stream to a [`Visit`]or that
//! can stop the scan or rule out blocks by time; and the plan of one segment's blocks, which
//! tallies share. Blocks are found through `block_streams` by stream (or, in an open v2
//! segment, which has no index by stream yet, by time for recent ranges), or, when a query
//! wants a large share of a v2 segment's streams over most of its span, by walking every
//! block row and reading its summary ([`BLOCK_FIRST_SHARE`]). A v2 block whose token filter
//! lacks a word every wanted record holds is skipped unread.
//!
//! Must not: write, or return a record without checking its stream and timestamp itself.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};

use super::block::columns::Summary;
use super::block::{self, Layout, tokens::may_contain};
use super::chain::{self, View};
use super::error::StoreError;
use super::index::StreamId;
use super::reader::Reader;
use super::segment;

/// A v2 segment is walked block by block, rather than planned through `block_streams`, when
/// the query wants at least one in this many of its streams over at least half its span. A
/// block holds tens of streams, so such a query wants nearly every block anyway, and finding
/// them through `block_streams` reads one row per stream per block: on 10 M entries over
/// 24 h (10,000 blocks of 50 streams) that plan took 110 ms, more than reading the blocks'
/// summaries (BENCHMARKS.md). Key: none (a plan choice; both plans give the same answer).
pub const BLOCK_FIRST_SHARE: usize = 8;

/// Which end of the time range a scan starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest blocks first.
    Forward,
    /// Newest blocks first.
    Backward,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Scan {
    pub streams: Vec<StreamId>,
    /// Inclusive.
    pub start_ns: i64,
    /// Exclusive.
    pub end_ns: i64,
    pub order: Order,
    /// Token hashes ([`super::needle_hashes`]) every record the visitor can want holds: a
    /// block whose token filter lacks one is skipped unread (v2 segments). A hint only: the
    /// visitor still sees every record of the blocks read.
    pub tokens: Vec<u64>,
}

/// Receives the records of a scan.
pub trait Visit {
    /// Whether records with timestamps in `[min_ts, max_ts]` can still matter; a block or
    /// segment that cannot is skipped unread. Called before each segment and block.
    fn wants(&self, _min_ts: i64, _max_ts: i64) -> bool {
        true
    }

    /// One record of a chosen stream inside the range. Returning `false` ends the scan.
    fn visit(&mut self, stream: StreamId, record: &View<'_>) -> bool;
}

/// What a scan read, for query statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub segments_opened: u64,
    pub blocks_read: u64,
    /// Blocks left unread because their token filter lacks a required token.
    pub blocks_skipped: u64,
    /// Blocks answered from their columns, their records left compressed (tallies only).
    pub blocks_from_columns: u64,
    /// Of those, the blocks answered from their summary alone (no row read).
    pub blocks_from_summary: u64,
    pub records_decoded: u64,
    pub bytes_read: u64,
}

impl ScanStats {
    /// Adds what another scan (or another worker of one) read.
    pub fn add(&mut self, o: &ScanStats) {
        self.segments_opened += o.segments_opened;
        self.blocks_read += o.blocks_read;
        self.blocks_skipped += o.blocks_skipped;
        self.blocks_from_columns += o.blocks_from_columns;
        self.blocks_from_summary += o.blocks_from_summary;
        self.records_decoded += o.records_decoded;
        self.bytes_read += o.bytes_read;
    }
}

/// What a scan would read, estimated from the block index without reading a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Records of the chosen streams in blocks that overlap the range.
    pub entries: u64,
    /// Their share of those blocks' bytes (a block's bytes split by record count).
    pub bytes: u64,
    /// Blocks that would be read.
    pub blocks: u64,
}

/// Segment index to that segment's part of the plan.
pub(super) type Plan = BTreeMap<u64, SegPlan>;

/// One segment's part of the plan.
#[derive(Debug, Default)]
pub(super) struct SegPlan {
    pub local_ids: Vec<i64>,
    /// Each chosen stream's id in the ledger, by its id in the segment (looked up per row).
    pub ids: foldhash::HashMap<i64, StreamId>,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl Reader {
    /// Estimates what [`Reader::scan`] would read, from `block_streams` and block sizes only.
    pub fn estimate(&self, scan: &Scan) -> Result<Estimate, StoreError> {
        let (plan, _) = self.plan(scan)?;
        let index = self.index()?;
        let mut total = Estimate::default();
        for (seg_index, p) in plan {
            let Some(path) = index.segment_path(seg_index) else {
                continue;
            };
            let conn = segment::open_read_only(&path)
                .map_err(StoreError::sqlite("estimate: open", &path))?;
            let ids: Vec<String> = p.local_ids.iter().map(i64::to_string).collect();
            let layout = segment::layout(&conn).map_err(StoreError::sqlite("estimate", &path))?;
            // Bytes as decompressed: what a scan reads.
            let size = match layout {
                Layout::V1 => "length(b.records)",
                Layout::V2 => "b.raw_bytes",
            };
            // The ids are integers from the index, never client text.
            let sql = format!(
                "SELECT coalesce(sum(s.count), 0), \
                        coalesce(sum({size} * s.count / b.count), 0), \
                        count(DISTINCT s.first_seq) \
                 FROM block_streams s JOIN blocks b ON b.first_seq = s.first_seq \
                 WHERE s.stream_id IN ({}) AND s.max_ts_ns >= ?1 AND s.min_ts_ns < ?2",
                ids.join(",")
            );
            let (entries, bytes, blocks): (i64, i64, i64) = conn
                .query_row(&sql, params![scan.start_ns, scan.end_ns], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(StoreError::sqlite("estimate", &path))?;
            total.entries += entries as u64;
            total.bytes += bytes as u64;
            total.blocks += blocks as u64;
        }
        Ok(total)
    }

    /// Segments holding the chosen streams in range (with their local ids and time span),
    /// and the labels section of each chosen stream.
    pub(super) fn plan(
        &self,
        scan: &Scan,
    ) -> Result<(Plan, foldhash::HashMap<Vec<u8>, StreamId>), StoreError> {
        let index = self.index()?;
        let mut wanted: foldhash::HashMap<Vec<u8>, StreamId> = foldhash::HashMap::default();
        let mut plan = Plan::new();
        for &id in &scan.streams {
            let Some(info) = index.stream(id) else {
                continue;
            };
            for span in info
                .spans
                .iter()
                .filter(|s| s.overlaps(scan.start_ns, scan.end_ns))
            {
                let p = plan.entry(span.segment).or_insert(SegPlan {
                    local_ids: Vec::new(),
                    ids: foldhash::HashMap::default(),
                    min_ts: i64::MAX,
                    max_ts: i64::MIN,
                });
                p.local_ids.push(span.local_id);
                p.ids.insert(span.local_id, id);
                p.min_ts = p.min_ts.min(span.min_ts_ns);
                p.max_ts = p.max_ts.max(span.max_ts_ns);
            }
            wanted.insert(info.labels_bytes, id);
        }
        Ok((plan, wanted))
    }

    /// Reads the records of `scan.streams` in `[start, end)` into `visitor`.
    pub fn scan(&self, scan: &Scan, visitor: &mut dyn Visit) -> Result<ScanStats, StoreError> {
        let index = self.index()?;
        let (plan, wanted) = self.plan(scan)?;
        let mut order: Vec<(u64, SegPlan)> = plan.into_iter().collect();
        match scan.order {
            Order::Forward => order.sort_by_key(|(_, p)| p.min_ts),
            Order::Backward => order.sort_by_key(|(_, p)| std::cmp::Reverse(p.max_ts)),
        }
        let mut stats = ScanStats::default();
        for (seg_index, p) in order {
            if !visitor.wants(p.min_ts, p.max_ts) {
                continue;
            }
            let Some(path) = index.segment_path(seg_index) else {
                continue;
            };
            stats.segments_opened += 1;
            let go_on = scan_segment(&path, scan, &p, &wanted, visitor, &mut stats)?;
            if !go_on {
                break;
            }
        }
        Ok(stats)
    }
}

/// Scans one segment; returns `false` when the visitor stopped the scan.
fn scan_segment(
    path: &Path,
    scan: &Scan,
    plan: &SegPlan,
    wanted: &foldhash::HashMap<Vec<u8>, StreamId>,
    visitor: &mut dyn Visit,
    stats: &mut ScanStats,
) -> Result<bool, StoreError> {
    let conn = segment::open_snapshot(path).map_err(StoreError::sqlite("scan: open", path))?;
    let layout = segment::layout(&conn).map_err(StoreError::sqlite("scan: open", path))?;
    let mut blocks = planned_blocks(&conn, path, layout, scan, plan)?;
    match scan.order {
        Order::Forward => blocks.sort_by_key(|b| (b.1, b.0)),
        Order::Backward => blocks.sort_by_key(|b| std::cmp::Reverse((b.2, b.0))),
    }
    let sql = format!(
        "SELECT {} FROM blocks WHERE first_seq = ?1",
        layout.records_columns()
    );
    let mut stmt = conn
        .prepare(&sql)
        .map_err(StoreError::sqlite("scan: read block", path))?;
    let mut filter = match layout {
        Layout::V2 if !scan.tokens.is_empty() => Some(
            conn.prepare("SELECT tokens FROM blocks WHERE first_seq = ?1")
                .map_err(StoreError::sqlite("scan: read block", path))?,
        ),
        _ => None,
    };
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.into(),
        detail,
    };
    for (first_seq, min_ts, max_ts) in blocks {
        if !visitor.wants(min_ts, max_ts) {
            continue;
        }
        if let Some(stmt) = filter.as_mut() {
            let tokens: Vec<u8> = stmt
                .query_row(params![first_seq], |r| r.get(0))
                .map_err(StoreError::sqlite("scan: read block", path))?;
            if !scan.tokens.iter().all(|&h| may_contain(&tokens, h)) {
                stats.blocks_skipped += 1;
                continue;
            }
        }
        let (stored, raw_bytes): (Vec<u8>, i64) = stmt
            .query_row(params![first_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::sqlite("scan: read block", path))?;
        stats.blocks_read += 1;
        let blob = block::unpack(layout, &stored, raw_bytes).map_err(corrupt)?;
        stats.bytes_read += blob.len() as u64;
        for canon in block::records(&blob) {
            let canon =
                canon.map_err(|at| corrupt(format!("block framing breaks at byte {at}")))?;
            let view =
                chain::decode(canon).map_err(|e| corrupt(format!("undecodable record: {e}")))?;
            stats.records_decoded += 1;
            if view.ts_ns < scan.start_ns || view.ts_ns >= scan.end_ns {
                continue;
            }
            let Some(&stream) = wanted.get(view.labels) else {
                continue;
            };
            if !visitor.visit(stream, &view) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The first sequence numbers `[lo, hi)` of a v2 segment's blocks, when walking them all is
/// the cheaper plan ([`BLOCK_FIRST_SHARE`]); `None` to plan through `block_streams`.
pub(super) fn walk_range(
    conn: &Connection,
    path: &Path,
    layout: Layout,
    scan: &Scan,
    p: &SegPlan,
) -> Result<Option<(i64, i64)>, StoreError> {
    let span = p.max_ts.saturating_sub(p.min_ts);
    let covered = p
        .max_ts
        .min(scan.end_ns)
        .saturating_sub(p.min_ts.max(scan.start_ns));
    if layout != Layout::V2 || covered < span / 2 {
        return Ok(None);
    }
    let sql = "SELECT (SELECT count(*) FROM streams), \
               (SELECT min(first_seq) FROM blocks), (SELECT max(first_seq) FROM blocks)";
    let (streams, lo, hi): (i64, Option<i64>, Option<i64>) = conn
        .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(StoreError::sqlite("plan: walk", path))?;
    let wanted = p.local_ids.len() as i64;
    match (lo, hi) {
        (Some(lo), Some(hi)) if wanted.saturating_mul(BLOCK_FIRST_SHARE as i64) >= streams => {
            Ok(Some((lo, hi.saturating_add(1))))
        }
        _ => Ok(None),
    }
}

/// `(first_seq, min_ts, max_ts)` of every block of the segment holding a chosen stream in
/// range: through `block_streams` ([`matching_blocks`], the times being the chosen streams'
/// own), or by walking every block row and keeping those whose summary holds one (the
/// times being the block's, which bound the chosen streams' too) when [`walk_range`] says
/// that is cheaper.
fn planned_blocks(
    conn: &Connection,
    path: &Path,
    layout: Layout,
    scan: &Scan,
    plan: &SegPlan,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let Some((lo, hi)) = walk_range(conn, path, layout, scan, plan)? else {
        return matching_blocks(conn, path, layout, scan, plan);
    };
    let fail = |e| StoreError::sqlite("scan: walk blocks", path)(e);
    let mut stmt = conn
        .prepare(
            "SELECT first_seq, count, min_ts_ns, max_ts_ns, summary FROM blocks \
             WHERE first_seq >= ?1 AND first_seq < ?2 AND max_ts_ns >= ?3 AND min_ts_ns < ?4",
        )
        .map_err(fail)?;
    let mut rows = stmt
        .query(params![lo, hi, scan.start_ns, scan.end_ns])
        .map_err(fail)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(fail)? {
        let (first_seq, count): (i64, i64) = (r.get(0).map_err(fail)?, r.get(1).map_err(fail)?);
        let summary = r.get_ref(4).and_then(|v| Ok(v.as_blob()?)).map_err(fail)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let holds =
            Summary::any_stream(summary, count, |id| plan.ids.contains_key(&id)).map_err(|e| {
                StoreError::Corrupt {
                    path: path.into(),
                    detail: format!("block {first_seq}: summary: {e}"),
                }
            })?;
        if holds {
            out.push((first_seq, r.get(2).map_err(fail)?, r.get(3).map_err(fail)?));
        }
    }
    Ok(out)
}

/// `(first_seq, min_ts, max_ts)` of every block holding one of `local_ids` in range, the
/// times being those of the chosen streams only.
pub(super) fn matching_blocks(
    conn: &Connection,
    path: &Path,
    layout: Layout,
    scan: &Scan,
    plan: &SegPlan,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let ids: Vec<String> = plan.local_ids.iter().map(i64::to_string).collect();
    // An open v2 segment has no index by stream (it is built at close): when the range covers
    // less than half of the streams' span there, its blocks are found by time (which the
    // planner would pass over for the primary key's order); otherwise reading every row in
    // key order is cheaper than the index and a sort.
    let closed = segment::is_closed(conn).map_err(StoreError::sqlite("scan: plan blocks", path))?;
    let span = plan.max_ts.saturating_sub(plan.min_ts).max(1);
    let covered = plan.max_ts.saturating_sub(scan.start_ns.max(plan.min_ts));
    let index = match (layout, closed) {
        (Layout::V2, false) if covered < span / 2 => "INDEXED BY block_streams_by_time",
        (Layout::V2, false) => "",
        _ => "INDEXED BY block_streams_by_stream",
    };
    // The ids are integers from the index, never client text.
    let sql = format!(
        "SELECT first_seq, min(min_ts_ns), max(max_ts_ns) FROM block_streams {index} \
         WHERE stream_id IN ({}) AND max_ts_ns >= ?1 AND min_ts_ns < ?2 GROUP BY first_seq",
        ids.join(",")
    );
    let mut stmt = conn
        .prepare(&sql)
        .map_err(StoreError::sqlite("scan: plan blocks", path))?;
    let rows = stmt
        .query_map(params![scan.start_ns, scan.end_ns], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(StoreError::sqlite("scan: plan blocks", path))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("scan: plan blocks", path))
}
