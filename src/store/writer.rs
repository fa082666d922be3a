//! The writer thread: the one owner of the writable connection, and group commit.
//!
//! Owns: taking appends off the queue, grouping them (bounded by entries, bytes and a linger
//! time), numbering and chaining their records, packing them into blocks of the segment's
//! layout (v2: compressed, with columns and a token filter), committing the group in one
//! transaction, and only then resolving every waiter of the group with the same outcome;
//! rotating segments by size and age; stopping the process on an fsync failure.
//!
//! Must not: resolve an append before its transaction committed, or be reachable from
//! anything but the queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{ErrorCode, params};

use super::active::{self, Active};
use super::append::{Job, Msg, Queue, Receipt};
use super::block::{self, Layout, frame};
use super::chain;
use super::error::{AppendError, StoreError};
use super::fatal::stop_if_fatal;
use super::index::{Position, StreamIndex};
use super::{StoreConfig, segment};

/// How often an idle writer wakes to check the segment's age.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The writer thread's state.
pub(crate) struct Writer {
    cfg: StoreConfig,
    /// The writable segment; `None` while a rotation could not be finished (retried per group).
    active: Option<Active>,
    hasher: chain::Hasher,
    rx: Receiver<Msg>,
    queue: Arc<Queue>,
    /// Told about every commit before its waiters are answered.
    index: Arc<StreamIndex>,
    /// Compresses v2 blocks (one context, reused).
    compressor: frame::Compressor,
}

impl Writer {
    pub fn new(
        cfg: StoreConfig,
        active: Active,
        rx: Receiver<Msg>,
        queue: Arc<Queue>,
        index: Arc<StreamIndex>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            active: Some(active),
            hasher: chain::Hasher::default(),
            rx,
            queue,
            index,
            compressor: frame::Compressor::new(cfg.segment_zstd_level)?,
            cfg,
        })
    }

    /// Runs until close, then checkpoints and closes the connection (the segment stays open
    /// for the next start). Returns the first error of the final steps.
    pub fn run(mut self) -> Result<(), StoreError> {
        loop {
            match self.rx.recv_timeout(IDLE_TICK) {
                Ok(Msg::Append(job)) => {
                    let (group, stop) = self.collect(job);
                    self.commit_group(group);
                    self.rotate_if_due();
                    if stop {
                        break;
                    }
                }
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.rotate_if_due(),
            }
        }
        // Anything that slipped in after the shutdown message is refused, not lost silently.
        while let Ok(Msg::Append(job)) = self.rx.try_recv() {
            self.release(&job);
            let _ = job.done.send(Err(AppendError::Closed));
        }
        self.active.take().map_or(Ok(()), Active::shutdown)
    }

    /// Gathers queued appends behind `first` into one group. Returns the group and whether a
    /// shutdown was seen behind it.
    fn collect(&mut self, first: Job) -> (Vec<Job>, bool) {
        let deadline = Instant::now() + self.cfg.group_linger;
        let (mut entries, mut bytes) = (first.entries.len(), first.bytes);
        self.release(&first);
        let mut group = vec![first];
        while entries < self.cfg.group_max_entries && bytes < self.cfg.group_max_bytes {
            let next = match self.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Disconnected) => return (group, true),
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.rx.recv_timeout(left) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return (group, true),
                    }
                }
            };
            match next {
                Msg::Append(job) => {
                    entries += job.entries.len();
                    bytes += job.bytes;
                    self.release(&job);
                    group.push(job);
                }
                Msg::Shutdown => return (group, true),
            }
        }
        (group, false)
    }

    fn release(&self, job: &Job) {
        let stats = &self.queue.stats;
        stats.queued_bytes.fetch_sub(job.bytes, Ordering::AcqRel);
        stats.queued_batches.fetch_sub(1, Ordering::AcqRel);
    }

    /// Commits `group` in one transaction and resolves every job with the same outcome.
    fn commit_group(&mut self, mut group: Vec<Job>) {
        let started = std::time::Instant::now();
        let outcome = match self.ensure_active() {
            Ok(()) => match self.active.as_mut() {
                Some(active) => {
                    let ctx = Context {
                        hasher: &self.hasher,
                        index: &self.index,
                        compressor: &mut self.compressor,
                    };
                    commit(active, ctx, &mut group)
                }
                None => Err(AppendError::Storage("no writable segment".into())),
            },
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(_) => {
                let entries = group.iter().map(|j| j.entries.len() as u64).sum();
                self.queue.stats.committed(entries, started.elapsed());
            }
            Err(_) => {
                self.queue
                    .stats
                    .commit_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        match outcome {
            Ok(receipts) => {
                for (job, receipt) in group.into_iter().zip(receipts) {
                    let _ = job.done.send(Ok(receipt));
                }
            }
            Err(err) => {
                for job in group {
                    let _ = job.done.send(Err(err.clone()));
                }
            }
        }
    }

    /// The writable segment, opening the next one first if a rotation was left unfinished.
    fn ensure_active(&mut self) -> Result<(), AppendError> {
        if self.active.is_none() {
            let dir = self.cfg.segments_dir();
            match active::advance(&dir, &self.cfg.origin, self.cfg.segment_format) {
                Ok(a) => self.active = Some(a),
                Err(e) => {
                    tracing::error!(error = %e, "ledger: cannot open the next segment");
                    return Err(AppendError::Storage(
                        "the next segment could not be opened".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Closes the active segment and opens the next when it is over its size or age.
    fn rotate_if_due(&mut self) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let by_age = active.first_recv_ns.is_some_and(|first| {
            self.cfg.clock.wall_ns().saturating_sub(first)
                >= self.cfg.segment_max_age.as_nanos().min(i64::MAX as u128) as i64
        });
        let by_size = active.count() > 0
            && active
                .file_bytes()
                .is_ok_and(|b| b >= self.cfg.segment_max_bytes);
        if !(by_age || by_size) {
            return;
        }
        let Some(active) = self.active.take() else {
            return;
        };
        let dir = self.cfg.segments_dir();
        let (started, index) = (Instant::now(), active.meta.segment_index);
        let result = active
            .close(self.cfg.segment_format)
            .inspect(|_| crate::failpoint::hit(crate::failpoint::at::CLOSE_AFTER_FINISH))
            .and_then(|next| segment::create(&dir, &next))
            .and_then(|_| active::advance(&dir, &self.cfg.origin, self.cfg.segment_format));
        match result {
            Ok(next) => {
                // Appends wait for this: the close is on the writer's path (BENCHMARKS.md).
                tracing::info!(
                    segment = index,
                    took_ms = started.elapsed().as_millis() as u64,
                    "segment closed; writing the next"
                );
                self.active = Some(next);
            }
            // The next group retries through `ensure_active`; until then appends fail with a
            // retryable error and nothing is acknowledged.
            Err(e) => tracing::error!(error = %e, "ledger: rotation failed, will retry"),
        }
    }
}

/// What a commit uses beside the segment: the hasher, the stream index it tells, and the
/// block compressor.
struct Context<'a> {
    hasher: &'a chain::Hasher,
    index: &'a StreamIndex,
    compressor: &'a mut frame::Compressor,
}

/// Numbers, chains and inserts every entry of `group` in one transaction. On success the tip
/// advances and one receipt per job is returned; on failure the tip is unchanged.
fn commit(
    active: &mut Active,
    ctx: Context<'_>,
    group: &mut [Job],
) -> Result<Vec<Receipt>, AppendError> {
    let (start_seq, start_head) = (active.next_seq, active.head);
    let mut new_streams: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut spans: Vec<block::StreamSpan> = Vec::new();
    let index = ctx.index;
    let result = insert_group(active, ctx, group, &mut new_streams, &mut spans);
    match result {
        Ok(receipts) => {
            let at = Position {
                segment: active.meta.segment_index,
                first_seq: active.meta.first_seq,
                next_seq: active.next_seq,
                head: active.head,
            };
            if let Err(e) = index.record(at, &active.path, &new_streams, &spans) {
                tracing::error!(error = %e, "ledger: stream index");
            }
            if active.first_recv_ns.is_none() {
                active.first_recv_ns = group
                    .iter()
                    .find(|j| !j.entries.is_empty())
                    .map(|j| j.recv_ns);
            }
            Ok(receipts)
        }
        Err(e) => {
            active.next_seq = start_seq;
            active.head = start_head;
            for (_, labels) in new_streams {
                active.streams.remove(&labels);
            }
            stop_if_fatal(&active.path, &e);
            Err(classify(&active.path, &e))
        }
    }
}

fn insert_group(
    active: &mut Active,
    ctx: Context<'_>,
    group: &mut [Job],
    new_streams: &mut Vec<(i64, Vec<u8>)>,
    spans: &mut Vec<block::StreamSpan>,
) -> rusqlite::Result<Vec<Receipt>> {
    let layout = Layout::of(active.meta.schema_version);
    let Active {
        conn,
        next_seq,
        head,
        streams,
        ..
    } = active;
    let tx = conn.unchecked_transaction()?;
    let mut receipts = Vec::with_capacity(group.len());
    {
        let mut sql = Statements {
            block: tx.prepare_cached(match layout {
                Layout::V1 => INSERT_BLOCK_V1,
                Layout::V2 => INSERT_BLOCK_V2,
            })?,
            span: tx.prepare_cached(INSERT_SPAN)?,
            stream: tx.prepare_cached(INSERT_STREAM)?,
            spans,
            compressor: ctx.compressor,
        };
        let mut block = block::Builder::new(*next_seq, layout);
        for job in group.iter_mut() {
            let first_seq = *next_seq;
            for p in &job.entries {
                if block.is_full_for(p.canon.len()) {
                    sql.insert_block(&mut block)?;
                    block = block::Builder::new(*next_seq, layout);
                }
                chain::set_seq(&mut job.buf[p.canon.clone()], *next_seq);
                let canon = &job.buf[p.canon.clone()];
                let view = chain::decode(canon)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                *head = ctx.hasher.next_head(head, canon);
                let labels = &job.buf[p.labels.clone()];
                let stream_id = match streams.get(labels) {
                    Some(id) => *id,
                    None => {
                        let id = sql.insert_stream(&tx, labels)?;
                        streams.insert(labels.to_vec(), id);
                        new_streams.push((id, labels.to_vec()));
                        id
                    }
                };
                block.push(canon, &view, head, stream_id);
                *next_seq += 1;
            }
            receipts.push(Receipt {
                first_seq,
                count: *next_seq - first_seq,
                head: *head,
            });
        }
        if block.count > 0 {
            sql.insert_block(&mut block)?;
        }
    }
    tx.commit()?;
    Ok(receipts)
}

const INSERT_BLOCK_V1: &str = "INSERT INTO blocks (first_seq, count, recv_ns, min_ts_ns, max_ts_ns, records, heads) \
                               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_BLOCK_V2: &str = "INSERT INTO blocks (first_seq, count, recv_ns, min_ts_ns, max_ts_ns, raw_bytes, \
                               end_head, summary, columns, tokens, records) \
                               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_SPAN: &str = "INSERT INTO block_streams (first_seq, stream_id, count, min_ts_ns, max_ts_ns) \
                           VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_STREAM: &str = "INSERT INTO streams (labels) VALUES (?1)";

/// The prepared statements of one group commit, and the spans it inserted.
struct Statements<'c, 's> {
    block: rusqlite::CachedStatement<'c>,
    span: rusqlite::CachedStatement<'c>,
    stream: rusqlite::CachedStatement<'c>,
    spans: &'s mut Vec<block::StreamSpan>,
    compressor: &'s mut frame::Compressor,
}

impl Statements<'_, '_> {
    fn insert_block(&mut self, b: &mut block::Builder) -> rusqlite::Result<()> {
        let first = b.first_seq as i64;
        let (count, recv, min, max) = (b.count as i64, b.recv_ns, b.min_ts_ns, b.max_ts_ns);
        match b.layout {
            Layout::V1 => {
                self.block
                    .execute(params![first, count, recv, min, max, b.records, b.heads])?;
            }
            Layout::V2 => {
                let derived = b.derived();
                let fail = |e: std::io::Error| rusqlite::Error::ToSqlConversionFailure(e.into());
                let records = self.compressor.compress(&b.records).map_err(fail)?;
                let columns = self.compressor.compress(&derived.columns).map_err(fail)?;
                let raw = b.records.len() as i64;
                self.block.execute(params![
                    first,
                    count,
                    recv,
                    min,
                    max,
                    raw,
                    b.end_head,
                    derived.summary,
                    columns,
                    derived.tokens,
                    records
                ])?;
            }
        }
        for s in &b.streams {
            self.span.execute(params![
                first,
                s.stream_id,
                s.count as i64,
                s.min_ts_ns,
                s.max_ts_ns
            ])?;
        }
        self.spans.extend_from_slice(&b.streams);
        Ok(())
    }

    fn insert_stream(
        &mut self,
        conn: &rusqlite::Connection,
        labels: &[u8],
    ) -> rusqlite::Result<i64> {
        self.stream.execute(params![labels])?;
        Ok(conn.last_insert_rowid())
    }
}

/// Maps a failed commit to what the waiters are told: a full disk is reported and survived,
/// any other failure is a retryable storage error. I/O failures and corruption never get here:
/// [`stop_if_fatal`] ends the process first.
fn classify(path: &std::path::Path, e: &rusqlite::Error) -> AppendError {
    if e.sqlite_error_code() == Some(ErrorCode::DiskFull) {
        return AppendError::DiskFull;
    }
    tracing::error!(path = %path.display(), error = %e, "ledger: commit failed");
    AppendError::Storage("commit failed".into())
}
