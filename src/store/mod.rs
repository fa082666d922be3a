//! The ledger: hash-chained SQLite segment files under `<data-dir>/segments/`.
//!
//! Owns: opening the ledger ([`open`]), which hands out the only ways to touch it: an
//! [`Appender`] (append only), [`Reader`]s (read-only, for queries), and the [`Ledger`] handle
//! that closes it and hands out its one [`Pruner`]. Offline readers of the files (the audit,
//! proofs, close seals) go through `audit` and `archive`, which only read. The single writer
//! thread, the segment files, the record format and its chain live in the submodules.
//!
//! Must not: export `rusqlite` types or SQL, hand out a writable connection, or offer any way
//! to change or delete a record. Whole closed segments leave only through the [`Pruner`],
//! which the sealer holds for retention and uses after it has sealed the removal.
//!
//! Layout:
//! - `chain`: the canonical record encoding and the blake3 chain (no I/O);
//! - `block`: how consecutive records are packed into one row (no I/O);
//! - `schema`: the segment schema, its version, and the writer's pragmas;
//! - `segment`: segment files (create, close, naming, meta);
//! - `active`: the writable segment, recovery at open, rotation;
//! - `append`: the append handle and its bounded queue;
//! - `writer`: the writer thread and group commit;
//! - `checkpointer`: copies the active segment's WAL into its file beside the writer;
//! - `fatal`: which storage failures stop the process, and its exit status;
//! - `index`: the in-memory stream index (label sets, and their time spans per segment);
//! - `reader`: read-only access for queries and tests;
//! - `stats`: the writer's counters for `/metrics`;
//! - `space`: the free-space reserve that stops pushes before seals run out of disk;
//! - `scan`: reading the records of chosen streams in a time range, newest or oldest first;
//! - `tally`: the scans behind aggregations, on worker threads, from v2 columns where they
//!   suffice;
//! - `merkle`: the per-segment Merkle tree (no I/O);
//! - `archive`: closed segments summarized for their close seal, and inclusion proofs;
//! - `audit`: a segment file read-only, in plain data, for `verify`;
//! - `prune`: the [`Pruner`], removal of a whole closed segment by retention (never a record).

pub mod archive;
pub mod audit;
pub mod block;
pub mod chain;
pub mod epoch_proof;
pub mod merkle;

pub mod append;

mod active;
mod checkpointer;
mod error;
mod fatal;
mod index;
mod prune;
mod reader;
mod scan;
mod schema;
mod segment;
mod space;
mod stats;
mod tally;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use append::{Appender, Batch, NewEntry, Receipt, Stream};
pub use block::tokens::{needle_hashes, value_hashes};
pub use chain::{Hash, Pairs, Record};
pub use error::{AppendError, StoreError};
pub use fatal::FATAL_EXIT_CODE;
pub use index::{SegSpan, StreamId, StreamIndex, StreamInfo};
pub use prune::Pruner;
pub use reader::{Reader, SegmentInfo};
pub use scan::{Estimate, Order, Scan, ScanStats, Visit};
pub use segment::Meta;
pub use space::{DEFAULT_DISK_RESERVE, DiskReserve, Reserve, Space, space};
pub use stats::{COMMIT_BUCKETS, GROUP_BUCKETS, WriterStats};
pub use tally::{BlockFacts, Group, MAX_SCAN_WORKERS, Row, Tally};

use append::{Msg, Queue};

/// Rotate a segment once its file reaches this size: large enough that a year is a few
/// hundred files, small enough that a segment verifies in seconds. Key `segment_max_bytes`.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 1 << 30;

/// Rotate a segment once its first record is this old, so retention can drop whole days.
/// Key `segment_max_age`.
pub const DEFAULT_SEGMENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Appends that may wait for the writer at once; beyond it callers get pushback.
/// Key `queue_max_batches`.
pub const DEFAULT_QUEUE_MAX_BATCHES: usize = 4096;

/// Encoded bytes that may wait for the writer at once: bounds the queue's memory.
/// Key `queue_max_bytes`.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 64 << 20;

/// Entries one group commit takes at most: bounds a transaction's time and the WAL it adds.
/// Key `group_max_entries`.
pub const DEFAULT_GROUP_MAX_ENTRIES: usize = 64 * 1024;

/// Encoded bytes one group commit takes at most. Key `group_max_bytes`.
pub const DEFAULT_GROUP_MAX_BYTES: usize = 32 << 20;

/// How long a group waits for more appends once the queue is empty. Zero: appends that
/// arrive while a commit is syncing form the next group anyway, so waiting only adds latency.
/// Key `group_linger`.
pub const DEFAULT_GROUP_LINGER: Duration = Duration::ZERO;

/// Layout of new segments: 2 (compressed blocks, columns, token filters; VERIFY.md). 1, the
/// raw layout, stays readable forever and is written only on request (side-by-side
/// benchmarks, tests of v1 ledgers). Key `segment_format`.
pub const DEFAULT_SEGMENT_FORMAT: u32 = schema::SCHEMA_VERSION;

/// Origin name of a new log when none is configured. Key `origin`.
pub const DEFAULT_ORIGIN: &str = "daftari";

/// Everything the ledger needs to open.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// The log's name, bound into its genesis; used only when the log is created.
    pub origin: String,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    pub queue_max_batches: usize,
    pub queue_max_bytes: usize,
    pub group_max_entries: usize,
    pub group_max_bytes: usize,
    pub group_linger: Duration,
    /// Schema version (layout) of new segments.
    pub segment_format: u32,
    /// zstd level of v2 blocks.
    pub segment_zstd_level: i32,
    /// Stamps receive times and ages segments: the system's, but for in-process tests.
    pub clock: crate::clock::Clock,
}

impl StoreConfig {
    /// The defaults, with the ledger under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            origin: DEFAULT_ORIGIN.into(),
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age: DEFAULT_SEGMENT_MAX_AGE,
            queue_max_batches: DEFAULT_QUEUE_MAX_BATCHES,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            group_max_entries: DEFAULT_GROUP_MAX_ENTRIES,
            group_max_bytes: DEFAULT_GROUP_MAX_BYTES,
            group_linger: DEFAULT_GROUP_LINGER,
            segment_format: DEFAULT_SEGMENT_FORMAT,
            segment_zstd_level: block::frame::DEFAULT_LEVEL,
            clock: crate::clock::Clock::system(),
        }
    }

    pub fn segments_dir(&self) -> PathBuf {
        segments_dir(&self.data_dir)
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |key: &str, why: &str| Err(StoreError::Config(format!("{key}: {why}")));
        if self.origin.is_empty()
            || self.origin.len() > 255
            || self.origin.chars().any(|c| c.is_whitespace() || c == '+')
        {
            return bad(
                "origin",
                "must be 1 to 255 bytes without white space or '+'",
            );
        }
        if self.segment_max_bytes < 64 * 1024 {
            return bad("segment_max_bytes", "must be at least 64 KiB");
        }
        if !(schema::OLDEST_VERSION..=schema::SCHEMA_VERSION).contains(&self.segment_format) {
            return bad("segment_format", "must be 1 or 2");
        }
        if !(1..=block::frame::MAX_LEVEL).contains(&self.segment_zstd_level) {
            return bad("segment_zstd_level", "must be 1 to 19");
        }
        if self.segment_max_age < Duration::from_secs(1) {
            return bad("segment_max_age", "must be at least 1s");
        }
        if self.queue_max_batches == 0 || self.queue_max_bytes == 0 {
            return bad("queue_max_batches/queue_max_bytes", "must be positive");
        }
        if self.group_max_entries == 0 || self.group_max_bytes == 0 {
            return bad("group_max_entries/group_max_bytes", "must be positive");
        }
        if self.group_linger > Duration::from_millis(100) {
            return bad("group_linger", "must be at most 100ms");
        }
        Ok(())
    }
}

/// `<data_dir>/segments`.
pub fn segments_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(segment::SEGMENTS_DIR)
}

/// The segment files of the ledger under `data_dir`, by index.
pub fn segment_files(data_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    segment::list(&segments_dir(data_dir))
}

/// The open ledger's lifecycle handle.
#[derive(Debug)]
pub struct Ledger {
    queue: Arc<Queue>,
    writer: Option<JoinHandle<Result<(), StoreError>>>,
    pruner: Option<Pruner>,
}

impl Ledger {
    /// The ledger's one [`Pruner`], for the retention path; `None` once it was handed out.
    pub fn pruner(&mut self) -> Option<Pruner> {
        self.pruner.take()
    }

    /// Refuses new appends, lets the writer commit everything already queued (each waiter
    /// gets its outcome), then closes the writable connection. Returns the first error.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        self.queue.closed.store(true, Ordering::Release);
        // Blocking send: waits for room behind the queued appends, which the writer drains.
        let _ = self.queue.tx.send(Msg::Shutdown);
        writer.join().unwrap_or(Err(StoreError::WriterLost))
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "ledger: close failed");
        }
    }
}

/// Opens (or creates) the ledger under `cfg.data_dir`, recovering from any interrupted
/// rotation, and starts the writer thread.
pub fn open(cfg: StoreConfig) -> Result<(Ledger, Appender, Reader), StoreError> {
    cfg.validate()?;
    let dir = cfg.segments_dir();
    std::fs::create_dir_all(&dir).map_err(StoreError::io("create segments directory", &dir))?;
    let active = active::advance(&dir, &cfg.origin, cfg.segment_format)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue_max_batches);
    let queue = Arc::new(Queue {
        tx,
        stats: Arc::new(stats::WriterStats::default()),
        max_bytes: cfg.queue_max_bytes,
        closed: AtomicBool::new(false),
        clock: cfg.clock.clone(),
    });
    let index = Arc::new(StreamIndex::build(&dir)?);
    let reader = Reader::with_index(&cfg.data_dir, Arc::clone(&index));
    let pruner = Pruner::new(cfg.data_dir.clone());
    let w = writer::Writer::new(cfg, active, rx, Arc::clone(&queue), index)
        .map_err(|e| StoreError::Config(format!("block compressor: {e}")))?;
    let handle = std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || w.run())
        .map_err(StoreError::io("start writer thread", &dir))?;
    let appender = Appender {
        queue: Arc::clone(&queue),
        reserve: None,
    };
    Ok((
        Ledger {
            queue,
            writer: Some(handle),
            pruner: Some(pruner),
        },
        appender,
        reader,
    ))
}
