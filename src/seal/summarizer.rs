//! The background worker that summarizes closed segments for their close seals: re-reading a
//! large segment takes seconds of CPU, which must neither hold up the next epoch seal (the
//! forward-security window) nor take CPU from ingest. The worker runs one summary at a time at
//! a lower CPU priority (nice +10), and the sealer collects the result at an epoch end.
//!
//! Owns: the worker thread and its two channels. Must not: write a seal (the sealer does).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use super::SealError;
use crate::store::archive::{self, Summary};

/// How much lower the worker's CPU priority is than the server's other threads.
const NICE: i32 = 10;

/// A finished summary of one segment.
pub(super) type Done = (u64, Result<Summary, SealError>);

#[derive(Debug)]
pub(super) struct Summarizer {
    jobs: Sender<u64>,
    done: Receiver<Done>,
    busy: Option<u64>,
}

impl Summarizer {
    pub fn start(data_dir: PathBuf) -> Result<Summarizer, SealError> {
        let (jobs, rx) = std::sync::mpsc::channel::<u64>();
        let (tx, done) = std::sync::mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name("segment-summary".into())
            .spawn(move || {
                // Per thread on Linux: only this worker yields to the others.
                if let Err(e) = rustix::process::setpriority_process(None, NICE) {
                    tracing::debug!(error = %e, "segment summaries run at normal priority");
                }
                while let Ok(index) = rx.recv() {
                    let r = archive::summarize(&data_dir, index).map_err(SealError::from);
                    if tx.send((index, r)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SealError::Refused(format!("start the segment summary worker: {e}")))?;
        Ok(Summarizer {
            jobs,
            done,
            busy: None,
        })
    }

    /// The segment being summarized, if any.
    pub fn busy(&self) -> Option<u64> {
        self.busy
    }

    /// Hands segment `index` to the worker (one at a time).
    pub fn submit(&mut self, index: u64) -> Result<(), SealError> {
        self.jobs
            .send(index)
            .map_err(|_| SealError::Refused("the segment summary worker stopped".into()))?;
        self.busy = Some(index);
        Ok(())
    }

    /// The finished summary, if there is one; with `wait`, waits for the running one.
    pub fn finished(&mut self, wait: bool) -> Result<Option<Done>, SealError> {
        if self.busy.is_none() {
            return Ok(None);
        }
        let got = if wait {
            self.done.recv().map(Some).map_err(|_| ())
        } else {
            match self.done.try_recv() {
                Ok(d) => Ok(Some(d)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(TryRecvError::Disconnected) => Err(()),
            }
        };
        let got =
            got.map_err(|()| SealError::Refused("the segment summary worker stopped".into()))?;
        if got.is_some() {
            self.busy = None;
        }
        Ok(got)
    }
}
