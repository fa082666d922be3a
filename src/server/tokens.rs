//! Keeps the running server's tokens in step with the token database.
//!
//! Owns: a thread that, every [`POLL_INTERVAL`], notices changes made by `daftari token`
//! (SQLite's `data_version`), replaces the verifier's set (so a revocation takes effect
//! within a second, without restart), appends queued token changes to the ledger's
//! `{__daftari__="admin"}` stream, and writes last-use times back.
//!
//! An admin event is marked appended only after its ledger entry is durable; a crash in
//! between appends it again on the next start (at least once, never lost).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::{Appender, Batch, NewEntry, Pairs, Stream};
use crate::token::{Manager, TokenError, Verifier};

/// How often the database is checked: revocations apply within this (and within a second).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often last-use times are written back.
const USE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The admin stream's label.
pub const ADMIN_LABEL: (&str, &str) = ("__daftari__", "admin");
/// The source recorded on admin entries.
pub const ADMIN_SOURCE: &str = "daftari";

/// One pass: reload tokens if the database changed, append pending admin events.
#[derive(Debug)]
pub struct Sync {
    manager: Manager,
    verifier: Arc<Verifier>,
    appender: Appender,
    seen_version: Option<i64>,
}

impl Sync {
    pub fn new(manager: Manager, verifier: Arc<Verifier>, appender: Appender) -> Sync {
        Sync {
            manager,
            verifier,
            appender,
            seen_version: None,
        }
    }

    /// Brings the verifier and the admin stream up to date.
    pub fn tick(&mut self) -> Result<(), TokenError> {
        let v = self.manager.data_version()?;
        if self.seen_version != Some(v) {
            self.verifier.replace(self.manager.live()?);
            self.seen_version = Some(v);
            self.append_events()?;
        }
        Ok(())
    }

    fn append_events(&mut self) -> Result<(), TokenError> {
        let events = self.manager.pending_events()?;
        if events.is_empty() {
            return Ok(());
        }
        let batch = admin_batch(events.iter().map(|e| (e.ts_ns, e.line.clone())).collect());
        match self.appender.append_blocking(batch) {
            Ok(receipt) => {
                for (i, e) in events.iter().enumerate() {
                    self.manager
                        .mark_appended(e.id, receipt.first_seq + i as u64)?;
                }
            }
            Err(e) => {
                // Retried on the next pass: forget the version so the pass runs again.
                self.seen_version = None;
                tracing::warn!(error = %e, "admin events not appended yet; retrying");
            }
        }
        Ok(())
    }

    /// Writes last-use times back.
    pub fn flush_uses(&self) -> Result<(), TokenError> {
        let uses = self.verifier.take_uses();
        if uses.is_empty() {
            return Ok(());
        }
        self.manager.record_use(&uses)
    }
}

/// A batch of lines for the admin stream.
fn admin_batch(lines: Vec<(i64, String)>) -> Batch {
    let labels = Pairs::new(vec![(ADMIN_LABEL.0.into(), ADMIN_LABEL.1.into())]).unwrap_or_default();
    Batch {
        source: ADMIN_SOURCE.into(),
        tenant: String::new(),
        streams: vec![Stream {
            labels,
            entries: lines
                .into_iter()
                .map(|(ts_ns, line)| NewEntry {
                    ts_ns,
                    metadata: Pairs::default(),
                    line: line.into_bytes(),
                })
                .collect(),
        }],
    }
}

/// How the sealer records a retention removal on the admin stream: one durable entry.
pub fn admin_log(appender: Appender) -> crate::seal::closes::AdminLog {
    Box::new(move |line| {
        appender
            .append_blocking(admin_batch(vec![(crate::clock::now_ns(), line)]))
            .map(|_| ())
            .map_err(|e| format!("admin entry: {e}"))
    })
}

/// Runs [`Sync`] on its own thread until `stop` is set; a last flush happens on the way out.
pub fn spawn(
    mut sync: Sync,
    stop: Arc<AtomicBool>,
    data_dir: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("token-sync".into())
        .spawn(move || {
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(POLL_INTERVAL);
                if let Err(e) = sync.tick() {
                    tracing::warn!(dir = %data_dir.display(), error = %e, "token database");
                }
                if last_flush.elapsed() >= USE_FLUSH_INTERVAL {
                    last_flush = Instant::now();
                    if let Err(e) = sync.flush_uses() {
                        tracing::warn!(error = %e, "token last-use times not written");
                    }
                }
            }
            if let Err(e) = sync.flush_uses() {
                tracing::warn!(error = %e, "token last-use times not written");
            }
        })
}
