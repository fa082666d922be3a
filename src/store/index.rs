//! The stream index: which label sets exist, and in which segments each one has records over
//! which time span. Queries narrow by selector and time here before any segment is opened.
//!
//! Owns: [`StreamIndex`], built from the segment files when the ledger opens and then kept up
//! to date by the writer after every commit (before any waiter is answered, so an
//! acknowledged entry is always findable).
//!
//! Must not: be trusted as evidence. It is derived from `streams` and `block_streams`, which
//! verify checks against the records; it is never written to disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::block::{Layout, StreamSpan};
use super::chain::{self, Hash, Pairs};
use super::error::StoreError;
use super::segment;

/// Position of a stream (a distinct label set) in the index. Stable while the process runs.
pub type StreamId = usize;

/// One stream's records inside one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegSpan {
    pub segment: u64,
    /// The stream's `streams.id` inside that segment.
    pub local_id: i64,
    pub count: u64,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
}

impl SegSpan {
    /// Whether any record of the span can lie in `[start, end)`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.max_ts_ns >= start && self.min_ts_ns < end
    }
}

/// Where a commit (or a loaded segment) sits in the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub segment: u64,
    /// First sequence number of the segment.
    pub first_seq: u64,
    /// Sequence number after the commit.
    pub next_seq: u64,
    /// Chain head after the commit.
    pub head: Hash,
}

/// A stream: its labels and where it has records.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub labels: Pairs,
    /// The labels section exactly as records carry it.
    pub labels_bytes: Vec<u8>,
    pub spans: Vec<SegSpan>,
}

/// The in-memory stream index. Cheap to read concurrently; the writer takes the write lock
/// for a few map updates per commit.
#[derive(Debug, Default)]
pub struct StreamIndex {
    inner: RwLock<Inner>,
    /// Sequence number of the next record: everything below it is durable and indexed.
    next_seq: AtomicU64,
    /// The durable tip: next sequence number and the head after the record before it.
    tip: Mutex<(u64, Hash)>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Vec<StreamInfo>,
    by_labels: HashMap<Vec<u8>, StreamId>,
    /// Segment index to its file and its local stream ids.
    segments: BTreeMap<u64, SegEntry>,
}

#[derive(Debug, Default)]
struct SegEntry {
    path: PathBuf,
    first_seq: u64,
    local: HashMap<i64, StreamId>,
}

impl StreamIndex {
    /// Builds the index from every segment under `segments_dir`, read-only.
    pub fn build(segments_dir: &Path) -> Result<StreamIndex, StoreError> {
        let index = StreamIndex::default();
        for (seg_index, path) in segment::list(segments_dir)? {
            index.load_segment(seg_index, &path)?;
        }
        Ok(index)
    }

    fn load_segment(&self, seg_index: u64, path: &Path) -> Result<(), StoreError> {
        let conn =
            segment::open_read_only(path).map_err(StoreError::sqlite("index: open", path))?;
        let mut streams = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, labels FROM streams")
                .map_err(StoreError::sqlite("index: read streams", path))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .map_err(StoreError::sqlite("index: read streams", path))?;
            for row in rows {
                streams.push(row.map_err(StoreError::sqlite("index: read streams", path))?);
            }
        }
        let mut spans = Vec::new();
        {
            let mut stmt = conn
                .prepare(
                    "SELECT stream_id, sum(count), min(min_ts_ns), max(max_ts_ns) \
                     FROM block_streams GROUP BY stream_id",
                )
                .map_err(StoreError::sqlite("index: read spans", path))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(StreamSpan {
                        stream_id: r.get(0)?,
                        count: r.get::<_, i64>(1)? as u64,
                        min_ts_ns: r.get(2)?,
                        max_ts_ns: r.get(3)?,
                    })
                })
                .map_err(StoreError::sqlite("index: read spans", path))?;
            for row in rows {
                spans.push(row.map_err(StoreError::sqlite("index: read spans", path))?);
            }
        }
        let meta = segment::read_meta(&conn)
            .map_err(StoreError::sqlite("index: read meta", path))?
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_owned(),
                detail: "no meta row".into(),
            })?;
        let count: u64 = spans.iter().map(|s| s.count).sum();
        let last = segment::block_before(&conn, Layout::of(meta.schema_version), i64::MAX)
            .map_err(StoreError::sqlite("index: read the last head", path))?;
        let head = last.and_then(|(_, _, h)| h).unwrap_or(meta.prev_head);
        let at = Position {
            segment: seg_index,
            first_seq: meta.first_seq,
            next_seq: meta.first_seq + count,
            head,
        };
        self.record(at, path, &streams, &spans)
            .map_err(|detail| StoreError::Corrupt {
                path: path.to_owned(),
                detail,
            })
    }

    /// Adds committed records: `new_streams` are the (local id, labels section) pairs first
    /// stored by this commit, `spans` the per-stream figures of its blocks.
    pub(crate) fn record(
        &self,
        at: Position,
        path: &Path,
        new_streams: &[(i64, Vec<u8>)],
        spans: &[StreamSpan],
    ) -> Result<(), String> {
        let seg_index = at.segment;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.next_seq.fetch_max(at.next_seq, Ordering::AcqRel);
        {
            let mut tip = self.tip.lock().unwrap_or_else(|e| e.into_inner());
            if at.next_seq >= tip.0 {
                *tip = (at.next_seq, at.head);
            }
        }
        let Inner {
            streams,
            by_labels,
            segments,
        } = &mut *inner;
        let seg = segments.entry(seg_index).or_insert_with(|| SegEntry {
            path: path.to_owned(),
            first_seq: at.first_seq,
            local: HashMap::new(),
        });
        for (local_id, bytes) in new_streams {
            let id = match by_labels.get(bytes) {
                Some(id) => *id,
                None => {
                    let pairs = chain::decode_pairs(bytes, "labels")
                        .and_then(Pairs::new)
                        .map_err(|e| format!("stream {local_id}: {e}"))?;
                    streams.push(StreamInfo {
                        labels: pairs,
                        labels_bytes: bytes.clone(),
                        spans: Vec::new(),
                    });
                    by_labels.insert(bytes.clone(), streams.len() - 1);
                    streams.len() - 1
                }
            };
            seg.local.insert(*local_id, id);
        }
        for s in spans {
            let Some(&id) = seg.local.get(&s.stream_id) else {
                return Err(format!("span of unknown stream id {}", s.stream_id));
            };
            let list = &mut streams[id].spans;
            match list.iter_mut().rev().find(|x| x.segment == seg_index) {
                Some(x) => {
                    x.count += s.count;
                    x.min_ts_ns = x.min_ts_ns.min(s.min_ts_ns);
                    x.max_ts_ns = x.max_ts_ns.max(s.max_ts_ns);
                }
                None => list.push(SegSpan {
                    segment: seg_index,
                    local_id: s.stream_id,
                    count: s.count,
                    min_ts_ns: s.min_ts_ns,
                    max_ts_ns: s.max_ts_ns,
                }),
            }
        }
        Ok(())
    }

    /// Calls `f` with every stream that has records in `[start, end)`, and returns what `f`
    /// kept. The lock is held only while this runs.
    pub fn select<T>(
        &self,
        start: i64,
        end: i64,
        mut f: impl FnMut(StreamId, &StreamInfo) -> Option<T>,
    ) -> Vec<T> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .streams
            .iter()
            .enumerate()
            .filter(|(_, s)| s.spans.iter().any(|x| x.overlaps(start, end)))
            .filter_map(|(id, s)| f(id, s))
            .collect()
    }

    /// A copy of one stream's entry.
    pub fn stream(&self, id: StreamId) -> Option<StreamInfo> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.streams.get(id).cloned()
    }

    /// Path of a segment.
    pub fn segment_path(&self, seg_index: u64) -> Option<PathBuf> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.segments.get(&seg_index).map(|s| s.path.clone())
    }

    /// The durable tip: the next sequence number and the chain head after the last record.
    pub fn tip(&self) -> (u64, Hash) {
        *self.tip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Paths of the segments that may hold records from `seq` on, oldest first.
    pub fn segments_from(&self, seq: u64) -> Vec<(u64, PathBuf)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let all: Vec<(u64, PathBuf)> = inner
            .segments
            .values()
            .map(|s| (s.first_seq, s.path.clone()))
            .collect();
        let start = all.iter().rposition(|(f, _)| *f <= seq).unwrap_or(0);
        all[start..].to_vec()
    }

    /// Drops a segment that retention is about to remove, so that no query opens it again.
    pub(crate) fn forget_segment(&self, seg_index: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.segments.remove(&seg_index);
        for s in &mut inner.streams {
            s.spans.retain(|x| x.segment != seg_index);
        }
    }

    /// Number of distinct streams.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
