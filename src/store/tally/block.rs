//! How a tally worker reads one block: a v2 block's summary first (its token filter too,
//! when the scan has required tokens), then the least that answers: the summary's groups
//! when the block lies inside the range and in a span the tally folds alike, the columns'
//! rows when the tally says they suffice, the records otherwise (and for every v1 block).
//!
//! Owns: [`BlockReader`]. Must not: write, or hand a row or record outside the scan's
//! streams and range.

use rusqlite::{Connection, OptionalExtension, params};

use super::{BlockFacts, Group, Row, Seg, Tally};
use crate::store::block::columns::Summary;
use crate::store::block::{self, Layout, frame, tokens::may_contain};
use crate::store::chain;
use crate::store::error::StoreError;
use crate::store::index::StreamId;
use crate::store::scan::{Scan, ScanStats};

/// Reads the blocks of one segment for a worker.
pub(super) struct BlockReader<'a> {
    pub(super) conn: &'a Connection,
    pub(super) seg: &'a Seg,
    pub(super) scan: &'a Scan,
    pub(super) wanted: &'a foldhash::HashMap<Vec<u8>, StreamId>,
    /// Whether the tally may take a block's columns at all.
    pub(super) columns: bool,
}

/// What a v2 block's row says before its columns and records.
struct Head {
    first_seq: i64,
    count: usize,
    /// `(min_ts_ns, max_ts_ns)`.
    span: (i64, i64),
    summary: Vec<u8>,
    /// Empty unless the scan has required tokens.
    tokens: Vec<u8>,
}

impl Head {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Head> {
        let count: i64 = r.get(1)?;
        Ok(Head {
            first_seq: r.get(0)?,
            count: usize::try_from(count).unwrap_or(usize::MAX),
            span: (r.get(2)?, r.get(3)?),
            summary: r.get(4)?,
            tokens: r.get(5)?,
        })
    }
}

impl BlockReader<'_> {
    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.seg.path.clone(),
            detail,
        }
    }

    /// The columns of a v2 block's head, with its filter only when the scan needs it.
    fn head_columns(&self) -> &'static str {
        match self.scan.tokens.is_empty() {
            true => "first_seq, count, min_ts_ns, max_ts_ns, summary, x''",
            false => "first_seq, count, min_ts_ns, max_ts_ns, summary, tokens",
        }
    }

    /// Folds the block that starts at `first_seq`; `false` when the tally asked to stop.
    pub(super) fn read<T: Tally>(
        &self,
        first_seq: i64,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<bool, StoreError> {
        if self.seg.layout == Layout::V1 {
            return self.fold_records(first_seq, tally, stats);
        }
        let sql = format!(
            "SELECT {} FROM blocks WHERE first_seq = ?1",
            self.head_columns()
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
        let head = stmt
            .query_row(params![first_seq], Head::from_row)
            .optional()
            .map_err(StoreError::sqlite("tally: read block", &self.seg.path))?;
        match head {
            Some(head) => self.fold_block(&head, tally, stats),
            None => Ok(true),
        }
    }

    /// Folds every v2 block whose first sequence number is in `[lo, hi)`, in key order;
    /// `false` when the tally asked to stop.
    pub(super) fn walk<T: Tally>(
        &self,
        lo: i64,
        hi: i64,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT {} FROM blocks WHERE first_seq >= ?1 AND first_seq < ?2 ORDER BY first_seq",
            self.head_columns()
        );
        let fail = |e| StoreError::sqlite("tally: walk blocks", &self.seg.path)(e);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(fail)?;
        let mut rows = stmt.query(params![lo, hi]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            let head = Head::from_row(row).map_err(fail)?;
            if !self.fold_block(&head, tally, stats)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Folds a v2 block from its head: skipped when it lies outside the range, when its
    /// filter lacks a required token, or when its summary holds no chosen stream.
    fn fold_block<T: Tally>(
        &self,
        head: &Head,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<bool, StoreError> {
        let (min_ts, max_ts) = head.span;
        if max_ts < self.scan.start_ns || min_ts >= self.scan.end_ns {
            return Ok(true);
        }
        if !self
            .scan
            .tokens
            .iter()
            .all(|&h| may_contain(&head.tokens, h))
        {
            stats.blocks_skipped += 1;
            return Ok(true);
        }
        let corrupt = |e| self.corrupt(format!("block {}: summary: {e}", head.first_seq));
        let ids = &self.seg.ids;
        if !Summary::any_stream(&head.summary, head.count, |id| ids.contains_key(&id))
            .map_err(corrupt)?
        {
            return Ok(true);
        }
        let summary = Summary::decode(&head.summary, head.count).map_err(corrupt)?;
        if self.columns
            && let Some(go_on) = self.fold_columns(head, &summary, tally, stats)?
        {
            stats.blocks_read += 1;
            stats.blocks_from_columns += 1;
            stats.bytes_read += head.summary.len() as u64;
            return Ok(go_on);
        }
        self.fold_records(head.first_seq, tally, stats)
    }

    /// Folds a block from its summary and columns if the tally says they suffice (`None` if
    /// not): from its groups when it lies inside the range and in a span that folds alike,
    /// otherwise from its rows.
    fn fold_columns<T: Tally>(
        &self,
        head: &Head,
        summary: &Summary,
        tally: &mut T,
        stats: &mut ScanStats,
    ) -> Result<Option<bool>, StoreError> {
        let levels: Option<Vec<&str>> = summary
            .levels
            .iter()
            .map(|l| std::str::from_utf8(l).ok())
            .collect();
        let facts = BlockFacts {
            names: summary.names.as_deref(),
            levels_listed: levels.is_some() && summary.levels_listed(),
        };
        if !tally.columns_suffice(&facts) {
            return Ok(None);
        }
        let levels = levels.unwrap_or_default();
        let level = |k: u64| match k {
            0 => None,
            k => levels.get(k as usize - 1).copied(),
        };
        let (min_ts, max_ts) = head.span;
        let inside = min_ts >= self.scan.start_ns && max_ts < self.scan.end_ns;
        if inside && tally.folds_alike(min_ts, max_ts) {
            stats.blocks_from_summary += 1;
            for g in &summary.groups {
                let Some(&stream) = self.seg.ids.get(&g.stream_id) else {
                    continue;
                };
                let group = Group {
                    count: g.count,
                    line_bytes: g.line_bytes,
                    level: level(g.level),
                    min_ts_ns: min_ts,
                    max_ts_ns: max_ts,
                };
                if !tally.group(stream, &group) {
                    return Ok(Some(false));
                }
            }
            return Ok(Some(true));
        }
        let raw = self.columns_of(head.first_seq)?;
        stats.bytes_read += raw.len() as u64;
        let rows = summary
            .rows(&raw, head.count, min_ts)
            .map_err(|e| self.corrupt(format!("block {}: columns: {e}", head.first_seq)))?;
        for i in 0..rows.ts_ns.len() {
            let ts_ns = rows.ts_ns[i];
            if ts_ns < self.scan.start_ns || ts_ns >= self.scan.end_ns {
                continue;
            }
            let Some(&stream) = self.seg.ids.get(&rows.stream_id[i]) else {
                continue;
            };
            let row = Row {
                ts_ns,
                line_len: rows.line_len[i],
                level: level(rows.level[i]),
            };
            if !tally.row(stream, &row) {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    }

    /// A block's columns, decompressed.
    fn columns_of(&self, first_seq: i64) -> Result<Vec<u8>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT columns FROM blocks WHERE first_seq = ?1")
            .map_err(StoreError::sqlite("tally: read columns", &self.seg.path))?;
        let stored: Vec<u8> = stmt
            .query_row(params![first_seq], |r| r.get(0))
            .map_err(StoreError::sqlite("tally: read columns", &self.seg.path))?;
        frame::decompress(&stored, None)
            .map_err(|e| self.corrupt(format!("block {first_seq}: columns: {e}")))
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
