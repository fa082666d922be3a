//! The append handle: what code outside the store holds to add records, and nothing more.
//!
//! Owns: [`Appender`], the bounded queue in front of the writer thread, and the encoding of
//! entries into canonical records (done here, on the caller's thread, so the single writer
//! only patches sequence numbers, hashes and inserts).
//!
//! Must not: read, change or delete records, or wait without bound: a full queue is the typed
//! outcome [`AppendError::Pushback`], returned at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use tokio::sync::oneshot;

use super::chain::{self, Encoded, Hash, Pairs, RecordRef};
use super::error::AppendError;

/// One log entry as a client sent it, before the ledger numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The client's timestamp, Unix ns.
    pub ts_ns: i64,
    pub labels: Pairs,
    pub metadata: Pairs,
    pub line: Vec<u8>,
}

/// Entries pushed together by one authenticated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Identity of the token that pushed the batch.
    pub source: String,
    /// `X-Scope-OrgID` as sent, or empty.
    pub tenant: String,
    pub entries: Vec<NewEntry>,
}

/// Where an append landed: its entries hold `first_seq .. first_seq + count`, and `head` is
/// the chain head after the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub first_seq: u64,
    pub count: u64,
    pub head: Hash,
}

/// A record ready for the writer, missing only its sequence number.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub canon: Encoded,
    pub ts_ns: i64,
}

/// One append waiting in the queue.
#[derive(Debug)]
pub(crate) struct Job {
    pub recv_ns: i64,
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
    pub queued_bytes: AtomicUsize,
    pub max_bytes: usize,
    pub closed: AtomicBool,
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
#[derive(Debug, Clone)]
pub struct Appender {
    pub(crate) queue: Arc<Queue>,
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
        let recv_ns = now_ns();
        let (entries, bytes) = prepare(&batch, recv_ns)?;
        let queue = &self.queue;
        if queue.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes > queue.max_bytes {
            queue.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(AppendError::Pushback("queued bytes at their limit"));
        }
        let (done, rx) = oneshot::channel();
        let job = Job {
            recv_ns,
            entries,
            bytes,
            done,
        };
        match queue.tx.try_send(Msg::Append(job)) {
            Ok(()) => Ok(rx),
            Err(e) => {
                queue.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                Err(match e {
                    TrySendError::Full(_) => AppendError::Pushback("queued batches at their limit"),
                    TrySendError::Disconnected(_) => AppendError::Closed,
                })
            }
        }
    }
}

/// Encodes every entry with sequence number 0; the writer patches it in.
fn prepare(batch: &Batch, recv_ns: i64) -> Result<(Vec<Prepared>, usize), AppendError> {
    let mut out = Vec::with_capacity(batch.entries.len());
    let mut bytes = 0;
    for (index, e) in batch.entries.iter().enumerate() {
        let record = RecordRef {
            seq: 0,
            recv_ns,
            ts_ns: e.ts_ns,
            source: &batch.source,
            tenant: &batch.tenant,
            labels: &e.labels,
            metadata: &e.metadata,
            line: &e.line,
        };
        let canon = chain::encode(record).map_err(|err| AppendError::Invalid {
            index,
            reason: err.to_string(),
        })?;
        bytes += canon.bytes.len();
        out.push(Prepared {
            canon,
            ts_ns: e.ts_ns,
        });
    }
    Ok((out, bytes))
}

/// The wall clock in Unix ns (0 if the clock is before 1970).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}
