//! Blocks: how consecutive records are packed into one row of a segment's `blocks` table.
//!
//! A block holds up to [`BLOCK_MAX_RECORDS`] records with consecutive sequence numbers, all
//! from one group commit. Its records are `count × (u32 length ‖ ENTRY_V1)`; how they are
//! stored depends on the segment's [`Layout`]:
//! - v1: `records` raw, and `heads`, `count × 32` bytes (the chain head after each record);
//! - v2: `records` as one compressed [`frame`] with its `raw_bytes`, one `end_head` (the head
//!   after the last record; the others are recomputed), the derived [`columns`] (a raw
//!   summary and compressed rows) and the [`tokens`] filter.
//!
//! Storing many records per row amortises SQLite's per-row cost, which otherwise caps the
//! single writer; every record stays separately hashed and located by verify.
//!
//! Owns: building a block ([`Builder`]) and walking one ([`records`]). Must not: do I/O or
//! hash (the writer and `chain` do).

pub mod columns;
pub mod frame;
pub mod tokens;
mod varint;

use std::borrow::Cow;

use super::chain::{self, Hash, View};
use columns::ColumnsBuilder;
use tokens::TokensBuilder;

/// Records per block at most: a query that needs one record of a block decodes at most this
/// many. Key `block_max_records`.
pub const BLOCK_MAX_RECORDS: usize = 1024;

/// Encoded record bytes per block at most (a single larger record gets a block of its own):
/// keeps a block one modest read. Key `block_max_bytes`.
pub const BLOCK_MAX_BYTES: usize = 1 << 20;

/// How a segment stores its blocks, from its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Schema 1: raw records and one head per record.
    V1,
    /// Schema 2: compressed records, one head per block, columns and a token filter.
    V2,
}

impl Layout {
    pub fn of(schema_version: u32) -> Layout {
        if schema_version >= 2 {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// The two `blocks` columns that give a block's records: the stored `records` and the
    /// size they decompress to (0 for v1, whose records are stored raw).
    pub fn records_columns(self) -> &'static str {
        match self {
            Layout::V1 => "records, 0",
            Layout::V2 => "records, raw_bytes",
        }
    }
}

/// The raw records of a block from its stored `records` (and `raw_bytes`, for v2).
pub fn unpack(layout: Layout, stored: &[u8], raw_bytes: i64) -> Result<Cow<'_, [u8]>, String> {
    match layout {
        Layout::V1 => Ok(Cow::Borrowed(stored)),
        Layout::V2 => {
            let expected = u64::try_from(raw_bytes).map_err(|_| "negative raw_bytes")?;
            frame::decompress(stored, Some(expected))
                .map(Cow::Owned)
                .map_err(|e| format!("compressed records: {e}"))
        }
    }
}

/// Per-stream figures of one block: a row of `block_streams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpan {
    pub stream_id: i64,
    pub count: u64,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
}

impl StreamSpan {
    fn add(&mut self, ts_ns: i64) {
        self.count += 1;
        self.min_ts_ns = self.min_ts_ns.min(ts_ns);
        self.max_ts_ns = self.max_ts_ns.max(ts_ns);
    }
}

/// A block being filled by the writer (or rebuilt by verify from the records it read).
#[derive(Debug)]
pub struct Builder {
    pub layout: Layout,
    pub first_seq: u64,
    pub count: u64,
    /// `recv_ns` of the first record.
    pub recv_ns: i64,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
    /// The records, raw.
    pub records: Vec<u8>,
    /// v1: the head after each record.
    pub heads: Vec<u8>,
    /// The head after the last record.
    pub end_head: Hash,
    /// One span per stream, in order of first appearance (few per block).
    pub streams: Vec<StreamSpan>,
    columns: ColumnsBuilder,
    tokens: TokensBuilder,
}

/// A v2 block's derived values, uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The columns' summary (stored raw).
    pub summary: Vec<u8>,
    /// The columns' rows (stored compressed).
    pub columns: Vec<u8>,
    pub tokens: Vec<u8>,
}

impl Builder {
    pub fn new(first_seq: u64, layout: Layout) -> Self {
        Self {
            layout,
            first_seq,
            count: 0,
            recv_ns: 0,
            min_ts_ns: i64::MAX,
            max_ts_ns: i64::MIN,
            records: Vec::new(),
            heads: Vec::new(),
            end_head: [0; 32],
            streams: Vec::new(),
            columns: ColumnsBuilder::default(),
            tokens: TokensBuilder::default(),
        }
    }

    /// Whether `next_len` more bytes of record would overflow the block.
    pub fn is_full_for(&self, next_len: usize) -> bool {
        self.count as usize >= BLOCK_MAX_RECORDS
            || (self.count > 0 && self.records.len() + next_len > BLOCK_MAX_BYTES)
    }

    /// Adds record `canon` (decoded as `view`), after which the chain head is `head`.
    pub fn push(&mut self, canon: &[u8], view: &View<'_>, head: &Hash, stream_id: i64) {
        let ts_ns = view.ts_ns;
        if self.count == 0 {
            self.recv_ns = view.recv_ns;
        }
        self.count += 1;
        self.min_ts_ns = self.min_ts_ns.min(ts_ns);
        self.max_ts_ns = self.max_ts_ns.max(ts_ns);
        self.records
            .extend_from_slice(&(canon.len() as u32).to_be_bytes());
        self.records.extend_from_slice(canon);
        self.end_head = *head;
        match self.layout {
            Layout::V1 => self.heads.extend_from_slice(head),
            Layout::V2 => self.index(view, stream_id),
        }
        match self.streams.iter_mut().find(|s| s.stream_id == stream_id) {
            Some(span) => span.add(ts_ns),
            None => self.streams.push(StreamSpan {
                stream_id,
                count: 1,
                min_ts_ns: ts_ns,
                max_ts_ns: ts_ns,
            }),
        }
    }

    fn index(&mut self, view: &View<'_>, stream_id: i64) {
        let mut level = None;
        self.tokens.add(view.line);
        for (name, value) in chain::raw_pairs(view.metadata) {
            self.tokens.add(value);
            if name == columns::LEVEL_NAME {
                level = Some(value);
            } else {
                self.columns.note_name(name);
            }
        }
        self.columns
            .push(view.ts_ns, stream_id, view.line.len(), level);
    }

    /// The v2 derived values of the records pushed so far.
    pub fn derived(&mut self) -> Derived {
        let (summary, columns) = self.columns.encode(self.min_ts_ns);
        Derived {
            summary,
            columns,
            tokens: self.tokens.encode(),
        }
    }
}

/// The head after a block's last record, from its `heads` (v1) or `end_head` (v2) column.
pub fn end_head(layout: Layout, count: i64, stored: &[u8]) -> Option<Hash> {
    match layout {
        Layout::V1 => head(stored, usize::try_from(count.checked_sub(1)?).ok()?),
        Layout::V2 => stored.try_into().ok(),
    }
}

/// Walks the records of a `records` blob; an `Err` gives the byte offset where framing broke.
pub fn records(blob: &[u8]) -> Records<'_> {
    Records { blob, pos: 0 }
}

#[derive(Debug)]
pub struct Records<'a> {
    blob: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.blob.len() {
            return None;
        }
        let start = self.pos;
        let Some(len) = self.blob.get(start..start + 4) else {
            self.pos = self.blob.len();
            return Some(Err(start));
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let end = (start + 4)
            .checked_add(len)
            .filter(|&e| e <= self.blob.len());
        let Some(end) = end else {
            self.pos = self.blob.len();
            return Some(Err(start));
        };
        self.pos = end;
        Some(Ok(&self.blob[start + 4..end]))
    }
}

/// The `i`-th head of a `heads` blob, if there is one.
pub fn head(heads: &[u8], i: usize) -> Option<Hash> {
    heads.get(i * 32..i * 32 + 32)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::{Pairs, Record, encode};

    fn record(seq: u64, recv_ns: i64, ts_ns: i64, line: &str, level: Option<&str>) -> Vec<u8> {
        let metadata = level.map(|l| vec![("detected_level".into(), l.into())]);
        encode(&Record {
            seq,
            recv_ns,
            ts_ns,
            source: "token:web".into(),
            tenant: String::new(),
            labels: Pairs::new(vec![("job".into(), "sshd".into())]).unwrap(),
            metadata: Pairs::new(metadata.unwrap_or_default()).unwrap(),
            line: line.as_bytes().to_vec(),
        })
        .unwrap()
        .bytes
    }

    fn push(b: &mut Builder, canon: &[u8], head: u8, stream_id: i64) {
        let view = chain::decode(canon).unwrap();
        b.push(canon, &view, &[head; 32], stream_id);
    }

    #[test]
    fn records_walk_what_the_builder_packed() {
        let mut b = Builder::new(10, Layout::V1);
        let recs = [
            record(10, 5, 20, "one", None),
            record(11, 5, 10, "three", None),
            record(12, 6, 30, "", None),
        ];
        for (i, r) in recs.iter().enumerate() {
            push(&mut b, r, i as u8 + 1, [1, 2, 1][i]);
        }
        let got: Vec<_> = records(&b.records).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, recs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(
            (b.count, b.recv_ns, b.min_ts_ns, b.max_ts_ns),
            (3, 5, 10, 30)
        );
        assert_eq!(
            b.streams[0],
            StreamSpan {
                stream_id: 1,
                count: 2,
                min_ts_ns: 20,
                max_ts_ns: 30
            }
        );
        assert_eq!(head(&b.heads, 2), Some([3; 32]));
        assert_eq!(head(&b.heads, 3), None);
        assert_eq!(b.end_head, [3; 32]);
    }

    #[test]
    fn a_v2_block_keeps_one_head_and_derives_columns_and_tokens() {
        let mut b = Builder::new(0, Layout::V2);
        push(
            &mut b,
            &record(0, 1, 50, "Accepted key for alice", Some("info")),
            1,
            4,
        );
        push(
            &mut b,
            &record(1, 1, 40, "Failed password", Some("warn")),
            2,
            5,
        );
        push(&mut b, &record(2, 1, 60, "no level", None), 3, 4);
        assert!(b.heads.is_empty());
        assert_eq!(b.end_head, [3; 32]);
        let d = b.derived();
        let c = columns::Columns::decode((&d.summary, &d.columns), 3, b.min_ts_ns).unwrap();
        assert_eq!(c.rows.ts_ns, [50, 40, 60]);
        assert_eq!(c.rows.stream_id, [4, 5, 4]);
        assert_eq!(c.rows.line_len, [22, 15, 8]);
        assert_eq!(c.rows.level, [1, 2, 0]);
        assert_eq!(c.summary.groups.len(), 3);
        for word in ["alice", "Failed", "level", "info", "warn"] {
            let h = tokens::hash(word.as_bytes());
            assert!(tokens::may_contain(&d.tokens, h), "{word}");
        }
    }

    #[test]
    fn a_cut_blob_reports_where_framing_broke() {
        let mut b = Builder::new(0, Layout::V1);
        push(&mut b, &record(0, 0, 0, "abcdef", None), 0, 1);
        let cut = &b.records[..7];
        assert_eq!(records(cut).next(), Some(Err(0)));
    }

    #[test]
    fn a_block_is_full_by_count_or_bytes_but_takes_one_oversized_record() {
        let mut b = Builder::new(0, Layout::V2);
        assert!(!b.is_full_for(BLOCK_MAX_BYTES * 2));
        push(&mut b, &record(0, 0, 0, "x", None), 0, 1);
        assert!(b.is_full_for(BLOCK_MAX_BYTES));
        for i in 1..BLOCK_MAX_RECORDS {
            push(&mut b, &record(i as u64, 0, 0, "x", None), 0, 1);
        }
        assert!(b.is_full_for(1));
    }
}
