//! Blocks: how consecutive records are packed into one row of a segment's `blocks` table.
//!
//! A block holds up to [`BLOCK_MAX_RECORDS`] records with consecutive sequence numbers, all
//! from one group commit: `records` is `count × (u32 length ‖ ENTRY_V1)`, `heads` is
//! `count × 32` bytes (the chain head after each record). Storing many records per row
//! amortises SQLite's per-row cost, which otherwise caps the single writer; every record stays
//! separately hashed and separately located by verify.
//!
//! Owns: building a block ([`Builder`]) and walking one ([`records`]).
//! Must not: do I/O or hash (the writer and `chain` do).

use super::chain::Hash;

/// Records per block at most: a query that needs one record of a block decodes at most this
/// many. Key `block_max_records`.
pub const BLOCK_MAX_RECORDS: usize = 1024;

/// Encoded record bytes per block at most (a single larger record gets a block of its own):
/// keeps a block one modest read. Key `block_max_bytes`.
pub const BLOCK_MAX_BYTES: usize = 1 << 20;

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

/// A block being filled by the writer.
#[derive(Debug)]
pub struct Builder {
    pub first_seq: u64,
    pub count: u64,
    /// `recv_ns` of the first record.
    pub recv_ns: i64,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
    pub records: Vec<u8>,
    pub heads: Vec<u8>,
    /// One span per stream, in order of first appearance (few per block).
    pub streams: Vec<StreamSpan>,
}

impl Builder {
    pub fn new(first_seq: u64) -> Self {
        Self {
            first_seq,
            count: 0,
            recv_ns: 0,
            min_ts_ns: i64::MAX,
            max_ts_ns: i64::MIN,
            records: Vec::new(),
            heads: Vec::new(),
            streams: Vec::new(),
        }
    }

    /// Whether `next_len` more bytes of record would overflow the block.
    pub fn is_full_for(&self, next_len: usize) -> bool {
        self.count as usize >= BLOCK_MAX_RECORDS
            || (self.count > 0 && self.records.len() + next_len > BLOCK_MAX_BYTES)
    }

    pub fn push(&mut self, canon: &[u8], head: &Hash, recv_ns: i64, ts_ns: i64, stream_id: i64) {
        if self.count == 0 {
            self.recv_ns = recv_ns;
        }
        self.count += 1;
        self.min_ts_ns = self.min_ts_ns.min(ts_ns);
        self.max_ts_ns = self.max_ts_ns.max(ts_ns);
        self.records
            .extend_from_slice(&(canon.len() as u32).to_be_bytes());
        self.records.extend_from_slice(canon);
        self.heads.extend_from_slice(head);
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

    #[test]
    fn records_walk_what_the_builder_packed() {
        let mut b = Builder::new(10);
        b.push(b"one", &[1; 32], 5, 20, 1);
        b.push(b"three", &[2; 32], 5, 10, 2);
        b.push(b"", &[3; 32], 6, 30, 1);
        let got: Vec<_> = records(&b.records).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, [&b"one"[..], b"three", b""]);
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
    }

    #[test]
    fn a_cut_blob_reports_where_framing_broke() {
        let mut b = Builder::new(0);
        b.push(b"abcdef", &[0; 32], 0, 0, 1);
        let cut = &b.records[..7];
        assert_eq!(records(cut).next(), Some(Err(0)));
    }

    #[test]
    fn a_block_is_full_by_count_or_bytes_but_takes_one_oversized_record() {
        let mut b = Builder::new(0);
        assert!(!b.is_full_for(BLOCK_MAX_BYTES * 2));
        b.push(&[0; 10], &[0; 32], 0, 0, 1);
        assert!(b.is_full_for(BLOCK_MAX_BYTES));
        for _ in 1..BLOCK_MAX_RECORDS {
            b.push(b"x", &[0; 32], 0, 0, 1);
        }
        assert!(b.is_full_for(1));
    }
}
