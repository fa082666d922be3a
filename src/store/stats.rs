//! Counters of the writer for `/metrics`: what waits in the queue, how large commit groups
//! are, and how long a commit takes (insert, then the fsync that makes it durable).
//!
//! Owns: [`WriterStats`], shared by the append handles and the writer thread, read by anyone
//! who holds it; nothing in it can append or read records. Must not: take a lock on the
//! writer's path (atomics only).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-group size histogram, in entries.
pub const GROUP_BUCKETS: [u64; 7] = [1, 10, 100, 1_000, 10_000, 65_536, 1 << 20];
/// Upper bounds of the commit latency histogram, in seconds.
pub const COMMIT_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// A histogram of atomics.
#[derive(Debug)]
pub struct AtomicHistogram<const N: usize> {
    pub buckets: [AtomicU64; N],
    pub count: AtomicU64,
    /// Sum of observations, in their unit (entries) or in microseconds (latency).
    pub sum: AtomicU64,
}

impl<const N: usize> Default for AtomicHistogram<N> {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> AtomicHistogram<N> {
    /// The bucket counts, the count and the sum, as read now.
    pub fn view(&self) -> (Vec<u64>, u64, u64) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            self.buckets.iter().map(load).collect(),
            load(&self.count),
            load(&self.sum),
        )
    }

    fn observe(&self, bounds: impl Iterator<Item = bool>, sum: u64) {
        for (b, within) in self.buckets.iter().zip(bounds) {
            if within {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(sum, Ordering::Relaxed);
    }
}

/// The writer's counters.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Appends waiting for the writer.
    pub queued_batches: AtomicUsize,
    /// Their encoded bytes.
    pub queued_bytes: AtomicUsize,
    /// Entries per committed group.
    pub group_entries: AtomicHistogram<{ GROUP_BUCKETS.len() }>,
    /// Time per commit (sum in microseconds).
    pub commit_seconds: AtomicHistogram<{ COMMIT_BUCKETS.len() }>,
    /// Commits that failed (nothing of them acknowledged).
    pub commit_failures: AtomicU64,
}

impl WriterStats {
    pub(crate) fn committed(&self, entries: u64, took: Duration) {
        self.group_entries
            .observe(GROUP_BUCKETS.iter().map(|b| entries <= *b), entries);
        let s = took.as_secs_f64();
        self.commit_seconds.observe(
            COMMIT_BUCKETS.iter().map(|b| s <= *b),
            took.as_micros() as u64,
        );
    }
}
