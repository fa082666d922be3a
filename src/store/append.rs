//! The append handle: what code outside the store holds to add records, and nothing more.
//!
//! Owns: [`Appender`], the bounded queue in front of the writer thread, and the encoding of
//! entries into canonical records (done here, on the caller's thread, so the single writer
//! only patches sequence numbers, hashes and inserts).
//!
//! Must not: read, change or delete records, or wait without bound: a full queue is the typed
//! outcome [`AppendError::Pushback`], returned at once.
//!
//! This module is everything the push plane imports from the store: the appender, the shapes
//! of what it takes, and how an append fails. Nothing here reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use tokio::sync::oneshot;

use std::ops::Range;

use super::chain::{self, Fields, Hash};
use super::space::DiskReserve;

pub use super::chain::{FormatError, Pairs};
pub use super::error::AppendError;

/// One log entry as a client sent it, before the ledger numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The client's timestamp, Unix ns.
    pub ts_ns: i64,
    pub metadata: Pairs,
    pub line: Vec<u8>,
}

/// Entries of one stream (one label set), in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub labels: Pairs,
    pub entries: Vec<NewEntry>,
}

/// Entries pushed together by one authenticated source, grouped by stream as Loki's push
/// request groups them. They are appended in this order: stream by stream, entry by entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Identity of the token that pushed the batch.
    pub source: String,
    /// `X-Scope-OrgID` as sent, or empty.
    pub tenant: String,
    pub streams: Vec<Stream>,
}

impl Batch {
    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an append landed: its entries hold `first_seq .. first_seq + count`, and `head` is
/// the chain head after the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub first_seq: u64,
    pub count: u64,
    pub head: Hash,
}

/// Where one record, ready but for its sequence number, lies in its job's buffer.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub canon: Range<usize>,
    /// The record's labels section, within the buffer.
    pub labels: Range<usize>,
}

/// One append waiting in the queue.
#[derive(Debug)]
pub(crate) struct Job {
    pub recv_ns: i64,
    /// Every record of the batch, encoded back to back with sequence number 0.
    pub buf: Vec<u8>,
    pub entries: Vec<Prepared>,
    /// Encoded bytes, released from the queue budget when the writer takes the job.
    pub bytes: usize,
    pub done: oneshot::Sender<Result<Receipt, AppendError>>,
}

/// What the writer thread receives.
#[derive(Debug)]
pub(crate) enum Msg {
    Append(Job),
    /// Sent once by close: commit what is queued before it, then stop.
    Shutdown,
}

/// State shared by every clone of the handle and the writer.
#[derive(Debug)]
pub(crate) struct Queue {
    pub tx: SyncSender<Msg>,
    /// Queue depth, group sizes, commit times.
    pub stats: Arc<super::stats::WriterStats>,
    pub max_bytes: usize,
    pub closed: AtomicBool,
    /// Stamps each record's receive time.
    pub clock: crate::clock::Clock,
}

/// The append-only handle to the ledger.
///
/// # Durability contract
/// A call resolves `Ok` **only after** the transaction holding every entry of the batch has
/// committed on a segment opened with `journal_mode=WAL` and `synchronous=FULL`, i.e. after
/// SQLite has fsynced the WAL. Appends are committed in groups; every append of a group
/// resolves with the same outcome. An `Err` means none of the batch's entries is reported
/// durable (a commit that failed is rolled back whole). An fsync failure stops the process,
/// because after a failed fsync the kernel may have dropped the dirty pages.
///
/// A handle made by [`Appender::guarded`] also refuses appends while free disk space is below
/// the reserve ([`AppendError::LowSpace`]); the server gives only such a handle to the push
/// plane, and keeps unguarded ones for the records that keep the ledger provable.
#[derive(Debug, Clone)]
pub struct Appender {
    pub(crate) queue: Arc<Queue>,
    pub(crate) reserve: Option<Arc<DiskReserve>>,
}

impl Appender {
    /// The writer's counters (queue depth, group sizes, commit times); they grant nothing.
    pub fn stats(&self) -> Arc<super::stats::WriterStats> {
        Arc::clone(&self.queue.stats)
    }

    /// A handle to the same ledger that also honours `reserve`. There is no way back to an
    /// unguarded handle from it.
    pub fn guarded(&self, reserve: Arc<DiskReserve>) -> Appender {
        Appender {
            queue: Arc::clone(&self.queue),
            reserve: Some(reserve),
        }
    }
}

impl Appender {
    /// Appends `batch` and waits, asynchronously, until it is durable.
    pub async fn append(&self, batch: Batch) -> Result<Receipt, AppendError> {
        let rx = self.submit(batch)?;
        rx.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Appends `batch` and blocks the thread until it is durable. Not for async contexts.
    pub fn append_blocking(&self, batch: Batch) -> Result<Receipt, AppendError> {
        let rx = self.submit(batch)?;
        rx.blocking_recv().unwrap_or(Err(AppendError::Closed))
    }

    /// Encodes and queues `batch`; the receiver resolves once its group commit is done.
    fn submit(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Receipt, AppendError>>, AppendError> {
        if self.queue.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        let recv_ns = self.queue.clock.wall_ns();
        let (buf, entries) = prepare(&batch, recv_ns)?;
        let bytes = buf.len();
        if let Some(reserve) = &self.reserve {
            reserve.admit(bytes)?;
        }
        let queue = &self.queue;
        if queue.stats.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes > queue.max_bytes {
            queue.stats.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(AppendError::Pushback("queued bytes at their limit"));
        }
        let (done, rx) = oneshot::channel();
        let job = Job {
            recv_ns,
            buf,
            entries,
            bytes,
            done,
        };
        match queue.tx.try_send(Msg::Append(job)) {
            Ok(()) => {
                queue.stats.queued_batches.fetch_add(1, Ordering::AcqRel);
                Ok(rx)
            }
            Err(e) => {
                queue.stats.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                Err(match e {
                    TrySendError::Full(_) => AppendError::Pushback("queued batches at their limit"),
                    TrySendError::Disconnected(_) => AppendError::Closed,
                })
            }
        }
    }
}

/// Encodes every entry into one buffer with sequence number 0; the writer patches it in.
/// An entry that cannot be encoded refuses the whole batch, naming its index.
fn prepare(batch: &Batch, recv_ns: i64) -> Result<(Vec<u8>, Vec<Prepared>), AppendError> {
    let mut buf = Vec::with_capacity(batch.streams.iter().map(estimate).sum());
    let mut out = Vec::with_capacity(batch.len());
    let invalid = |index: usize, err: chain::FormatError| AppendError::Invalid {
        index,
        reason: err.to_string(),
    };
    for stream in &batch.streams {
        let labels =
            chain::encode_pairs(&stream.labels, "label").map_err(|e| invalid(out.len(), e))?;
        for e in &stream.entries {
            let fields = Fields {
                seq: 0,
                recv_ns,
                ts_ns: e.ts_ns,
                source: &batch.source,
                tenant: &batch.tenant,
                labels: &labels,
            };
            let start = buf.len();
            let labels = chain::encode_into(&mut buf, &fields, &e.metadata, &e.line)
                .map_err(|err| invalid(out.len(), err))?;
            out.push(Prepared {
                canon: start..buf.len(),
                labels,
            });
        }
    }
    Ok((buf, out))
}

/// Roughly the encoded size of a stream's entries, to size the buffer once.
fn estimate(s: &Stream) -> usize {
    let labels: usize = s.labels.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    s.entries.iter().map(|e| 64 + labels + e.line.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::Record;

    fn pairs(v: &[(&str, &str)]) -> Pairs {
        Pairs::new(
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_prepared_batch_holds_exactly_the_canonical_records() {
        let entry = |ts_ns, meta: &[(&str, &str)], line: &str| NewEntry {
            ts_ns,
            metadata: pairs(meta),
            line: line.as_bytes().to_vec(),
        };
        let batch = Batch {
            source: "host-a".into(),
            tenant: "t".into(),
            streams: vec![
                Stream {
                    labels: pairs(&[("job", "sshd"), ("host", "a")]),
                    entries: vec![entry(1, &[], "one"), entry(2, &[("k", "v")], "two")],
                },
                Stream {
                    labels: pairs(&[("job", "sudo")]),
                    entries: vec![entry(-3, &[], "")],
                },
            ],
        };
        let (buf, prepared) = prepare(&batch, 42).unwrap();
        let mut seen = Vec::new();
        for s in &batch.streams {
            for e in &s.entries {
                let record = Record {
                    seq: 0,
                    recv_ns: 42,
                    ts_ns: e.ts_ns,
                    source: batch.source.clone(),
                    tenant: batch.tenant.clone(),
                    labels: s.labels.clone(),
                    metadata: e.metadata.clone(),
                    line: e.line.clone(),
                };
                seen.push(chain::encode(&record).unwrap());
            }
        }
        assert_eq!(prepared.len(), 3);
        for (p, expected) in prepared.iter().zip(&seen) {
            assert_eq!(&buf[p.canon.clone()], expected.bytes.as_slice());
            assert_eq!(&buf[p.labels.clone()], expected.labels_bytes());
        }
    }

    #[test]
    fn an_oversized_entry_refuses_the_batch_and_names_its_index() {
        let batch = Batch {
            source: "s".into(),
            tenant: String::new(),
            streams: vec![Stream {
                labels: Pairs::default(),
                entries: (0..3)
                    .map(|i| NewEntry {
                        ts_ns: 0,
                        metadata: Pairs::default(),
                        line: vec![b'x'; if i == 2 { chain::MAX_BSTR + 1 } else { 1 }],
                    })
                    .collect(),
            }],
        };
        assert!(matches!(
            prepare(&batch, 0),
            Err(AppendError::Invalid { index: 2, .. })
        ));
    }
}
