//! Segment-close seals and retention, run by the sealer at each epoch's end.
//!
//! Owns: noticing closed segments that have no close seal yet and sealing each one (its
//! range, end head, Merkle root and file hash, re-read from the file by the `summarizer`
//! worker), and the retention policy: the oldest closed, close-sealed segments older than
//! `retention` (by their close seal's time) are removed in this order: an entry on the admin
//! stream (durable), a prune seal naming them and their close seals (durable), then the
//! files. A crash after the
//! prune seal leaves files that the next pass removes; a crash before it leaves an admin
//! entry that the next pass writes again (at least once, never a removal without a seal).
//!
//! Must not: remove a segment without a committed prune seal, the newest segment, or one
//! that has no close seal. Nothing outside the sealer's timer can start a removal.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::SealError;
use super::Sealer;
use super::chain_db::Stored;
use super::record::{self, Extra, MAX_PRUNED_PER_SEAL, Pruned, Seal, SealKind, SegmentClose};
use super::summarizer::Summarizer;
use crate::store::Hash;
use crate::store::Pruner;
use crate::store::archive::{self, Summary};

/// After a closed segment could not be summarized (it does not chain to its close row), how
/// long before it is read again: reading a large segment every epoch would only repeat the
/// same error.
const CLOSE_RETRY: Duration = Duration::from_secs(600);

/// Appends one line to the admin stream, durably, or says why not.
pub type AdminLog = Box<dyn FnMut(String) -> Result<(), String> + Send>;

/// One segment's close seal, kept while its file exists.
#[derive(Debug, Clone, Copy)]
pub(super) struct Closed {
    index: u64,
    digest: Hash,
    wall_ns: i64,
}

/// What the sealer knows about segments: which are close-sealed, which were pruned.
#[derive(Default)]
pub(super) struct Segments {
    /// The next segment index that needs a close seal.
    next_close: u64,
    /// Close seals of segments not pruned, oldest first.
    closes: VecDeque<Closed>,
    /// Segments that prune seals removed.
    pruned: BTreeSet<u64>,
    retry_after: Option<Instant>,
    /// Summarizes closed segments in the background (started on first use).
    worker: Option<Summarizer>,
    pub retention: Option<Duration>,
    pub admin: Option<AdminLog>,
    /// The ledger's capability to remove closed segments, given with the retention policy.
    pub pruner: Option<Pruner>,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("next_close", &self.next_close)
            .field("closes", &self.closes.len())
            .field("pruned", &self.pruned.len())
            .field("retention", &self.retention)
            .finish()
    }
}

impl Segments {
    /// Rebuilds the state from the stored segment-close and prune seals.
    pub fn load(seals: &[Stored]) -> Result<Segments, SealError> {
        let mut out = Segments::default();
        for s in seals {
            let seal = Seal::decode(&s.body)?;
            match seal.extra {
                Extra::Segment(c) => {
                    out.next_close = out.next_close.max(c.index + 1);
                    out.closes.push_back(Closed {
                        index: c.index,
                        digest: record::digest(&s.body, &s.sig),
                        wall_ns: seal.wall_ns,
                    });
                }
                Extra::Prune(list) => out.pruned.extend(list.iter().map(|p| p.index)),
                Extra::None => {}
            }
        }
        let pruned = out.pruned.clone();
        out.closes.retain(|c| !pruned.contains(&c.index));
        Ok(out)
    }
}

impl Sealer {
    /// Seals closed segments that have no close seal yet, oldest first. Their summaries come
    /// from the background worker: without `wait` this collects a finished one and starts the
    /// next; with `wait` (at shutdown) it seals every closed segment before returning.
    pub(super) fn seal_closed_segments(&mut self, wait: bool) -> Result<(), SealError> {
        if self
            .segments
            .retry_after
            .is_some_and(|t| Instant::now() < t)
        {
            return Ok(());
        }
        if self.segments.worker.is_none() {
            self.segments.worker = Some(Summarizer::start(self.data_dir.clone())?);
        }
        loop {
            let Some(worker) = self.segments.worker.as_mut() else {
                return Ok(());
            };
            if let Some((index, summary)) = worker.finished(wait)? {
                let s = match summary {
                    Ok(s) => s,
                    Err(e) => {
                        self.segments.retry_after = Some(Instant::now() + CLOSE_RETRY);
                        return Err(SealError::Refused(format!(
                            "segment {index} cannot be close-sealed: {e}"
                        )));
                    }
                };
                if index == self.segments.next_close {
                    self.seal_close(s)?;
                }
            }
            let next = archive::list(&self.data_dir)?
                .into_iter()
                .map(|(i, _)| i)
                .find(|i| *i >= self.segments.next_close);
            let Some(worker) = self.segments.worker.as_mut() else {
                return Ok(());
            };
            match next {
                Some(i) if worker.busy().is_none() => worker.submit(i)?,
                Some(_) => {}
                None => return Ok(()),
            }
            if !wait {
                return Ok(());
            }
        }
    }

    /// Writes the segment-close seal of one summarized segment.
    fn seal_close(&mut self, s: Summary) -> Result<(), SealError> {
        let index = s.index;
        let extra = Extra::Segment(SegmentClose {
            index,
            first_seq: s.first_seq,
            count: s.count,
            end_head: s.end_head,
            merkle_root: s.merkle_root,
            file_hash: s.file_hash,
        });
        let sealed = self.seal_with(SealKind::SegmentClose, extra)?;
        self.segments.next_close = index + 1;
        self.segments.retry_after = None;
        self.segments.closes.push_back(Closed {
            index,
            digest: sealed.digest,
            wall_ns: sealed.wall_ns,
        });
        sealed.key_file
    }

    /// Removes what retention allows, and finishes a removal a crash interrupted.
    pub(super) fn apply_retention(&mut self) -> Result<(), SealError> {
        let present: BTreeSet<u64> = archive::list(&self.data_dir)?
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        for index in present.intersection(&self.segments.pruned) {
            self.index.forget_segment(*index);
            self.pruner()?.remove(*index)?;
        }
        let Some(retention) = self.segments.retention else {
            return Ok(());
        };
        let cutoff = self
            .clock
            .wall_ns()
            .saturating_sub(retention.as_nanos() as i64);
        let due: Vec<Closed> = self
            .segments
            .closes
            .iter()
            .take_while(|c| c.wall_ns <= cutoff && present.contains(&c.index))
            .take(MAX_PRUNED_PER_SEAL)
            .copied()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let line = prune_line(&due, retention);
        match self.segments.admin.as_mut() {
            Some(log) => log(line).map_err(SealError::Refused)?,
            None => {
                return Err(SealError::Refused(
                    "retention needs the admin stream to record removals".into(),
                ));
            }
        }
        crate::failpoint::hit(crate::failpoint::at::PRUNE_AFTER_ADMIN);
        let list = due
            .iter()
            .map(|c| Pruned {
                index: c.index,
                close_digest: c.digest,
            })
            .collect();
        let sealed = self.seal_with(SealKind::Prune, Extra::Prune(list))?;
        crate::failpoint::hit(crate::failpoint::at::PRUNE_AFTER_SEAL);
        for c in &due {
            self.segments.pruned.insert(c.index);
            self.segments.closes.pop_front();
            self.index.forget_segment(c.index);
            self.pruner()?.remove(c.index)?;
        }
        tracing::info!(segments = due.len(), "retention removed segments");
        sealed.key_file
    }
}

impl super::Sealer {
    fn pruner(&self) -> Result<&Pruner, SealError> {
        self.segments.pruner.as_ref().ok_or_else(|| {
            SealError::Refused("removing pruned segments needs the ledger's pruner".into())
        })
    }
}

/// The admin-stream entry that records a removal before it happens.
fn prune_line(due: &[Closed], retention: Duration) -> String {
    let indices: Vec<String> = due.iter().map(|c| c.index.to_string()).collect();
    let digests: Vec<String> = due.iter().map(|c| hex::encode(c.digest)).collect();
    format!(
        "event=prune segments={} close_seals={} retention={}s",
        indices.join(","),
        digests.join(","),
        retention.as_secs()
    )
}
