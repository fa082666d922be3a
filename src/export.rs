//! Exporting entries out of the ledger: how an operator hands all logs of a period to
//! someone else. Read-only (a [`Reader`]), so it runs beside a live server.
//!
//! Owns: choosing the streams (a LogQL stream selector, or every stream), the time range, and
//! the two output forms:
//! - `jsonl`: one JSON object per entry with everything the record holds (seq, timestamps,
//!   source, tenant, labels, structured metadata, line), for archives and auditors;
//! - `loki-json`: one Loki push body per line (at most [`PUSH_BATCH`] entries each), ready to
//!   `POST /loki/api/v1/push` into any Loki. Loki refuses label names that begin with `__`,
//!   so `__daftari__` is written as `daftari_internal`.
//!
//! Entries come in stored order (by block, oldest first), not sorted by timestamp across
//! streams. Must not: write to the ledger.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::query::logql;
use crate::store::{Order, Reader, Scan, StoreError, StreamId, Visit, chain::View};

/// Entries per push body in `loki-json`: a size any Loki accepts.
pub const PUSH_BATCH: usize = 1000;

/// The label Loki is given instead of a reserved `__…` one.
const RENAMED_RESERVED: &str = "daftari_internal";

/// The output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    LokiJson,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Options {
    /// A stream selector (`{job="sshd"}`); `None` for every stream.
    pub selector: Option<String>,
    /// Timestamps in `[from_ns, to_ns)`.
    pub from_ns: i64,
    pub to_ns: i64,
    pub format: Format,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--selector: {0}")]
    Selector(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("write: {0}")]
    Write(#[from] std::io::Error),
}

/// Counters for a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub done: AtomicU64,
}

/// The scan of the streams `selector` chooses over `[from_ns, to_ns)`, oldest first.
fn chosen(
    reader: &Reader,
    selector: Option<&str>,
    from_ns: i64,
    to_ns: i64,
) -> Result<Scan, ExportError> {
    let matchers = match selector {
        Some(s) => logql::parse_selector(s).map_err(|e| ExportError::Selector(e.to_string()))?,
        None => Vec::new(),
    };
    let index = reader.index()?;
    let streams = index.select(from_ns, to_ns, |id, info| {
        let ok = matchers
            .iter()
            .all(|m| m.matches(info.labels.get(&m.name).unwrap_or("")));
        ok.then_some(id)
    });
    Ok(Scan {
        streams,
        start_ns: from_ns,
        end_ns: to_ns,
        order: Order::Forward,
        tokens: Vec::new(),
    })
}

/// One entry found by [`find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub ts_ns: i64,
    pub line: String,
}

/// The entries of the streams `selector` chooses in `[from_ns, to_ns)` whose line contains
/// `line` (every one when `None`), at most `max` of them, oldest first: how an auditor
/// finds the sequence number of an entry seen in Grafana.
pub fn find(
    reader: &Reader,
    selector: Option<&str>,
    (from_ns, to_ns): (i64, i64),
    line: Option<&str>,
    max: usize,
) -> Result<Vec<Found>, ExportError> {
    struct Finder<'a> {
        needle: Option<&'a [u8]>,
        max: usize,
        out: Vec<Found>,
    }
    impl Visit for Finder<'_> {
        fn visit(&mut self, _stream: StreamId, v: &View<'_>) -> bool {
            let hit = self
                .needle
                .is_none_or(|n| n.is_empty() || v.line.windows(n.len()).any(|w| w == n));
            if hit {
                self.out.push(Found {
                    seq: v.seq,
                    ts_ns: v.ts_ns,
                    line: String::from_utf8_lossy(v.line).into_owned(),
                });
            }
            self.out.len() < self.max
        }
    }
    let mut scan = chosen(reader, selector, from_ns, to_ns)?;
    // A v2 block whose token filter lacks a word of the text cannot hold a match.
    scan.tokens = line.map(crate::store::needle_hashes).unwrap_or_default();
    let mut f = Finder {
        needle: line.map(str::as_bytes),
        max,
        out: Vec::new(),
    };
    reader.scan(&scan, &mut f)?;
    Ok(f.out)
}

/// Writes the chosen entries to `out`; returns how many.
pub fn run(
    reader: &Reader,
    opts: &Options,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<u64, ExportError> {
    let scan = chosen(reader, opts.selector.as_deref(), opts.from_ns, opts.to_ns)?;
    progress
        .total
        .store(reader.estimate(&scan)?.entries, Ordering::Relaxed);
    let mut w = Writer {
        out,
        format: opts.format,
        pending: Vec::new(),
        error: None,
        count: 0,
        progress,
    };
    reader.scan(&scan, &mut w)?;
    w.flush_batch();
    match w.error {
        Some(e) => Err(e.into()),
        None => Ok(w.count),
    }
}

/// One entry, decoded.
struct Entry {
    labels: Vec<(String, String)>,
    metadata: Vec<(String, String)>,
    ts_ns: i64,
    line: String,
}

struct Writer<'a> {
    out: &'a mut dyn Write,
    format: Format,
    /// Entries of the `loki-json` body being built.
    pending: Vec<Entry>,
    error: Option<std::io::Error>,
    count: u64,
    progress: &'a Progress,
}

impl Visit for Writer<'_> {
    fn visit(&mut self, _stream: StreamId, v: &View<'_>) -> bool {
        let Ok(r) = v.to_record() else {
            return true; // the scan reports undecodable records itself
        };
        let line = String::from_utf8_lossy(&r.line).into_owned();
        let written = match self.format {
            Format::Jsonl => {
                let obj = serde_json::json!({
                    "seq": r.seq,
                    "ts_ns": r.ts_ns.to_string(),
                    "recv_ns": r.recv_ns.to_string(),
                    "source": r.source,
                    "tenant": r.tenant,
                    "labels": r.labels.iter().collect::<BTreeMap<_, _>>(),
                    "metadata": r.metadata.iter().collect::<BTreeMap<_, _>>(),
                    "line": line,
                });
                writeln!(self.out, "{obj}")
            }
            Format::LokiJson => {
                self.pending.push(Entry {
                    labels: r.labels.into_vec(),
                    metadata: r.metadata.into_vec(),
                    ts_ns: r.ts_ns,
                    line,
                });
                if self.pending.len() >= PUSH_BATCH {
                    self.flush_batch();
                }
                Ok(())
            }
        };
        self.count += 1;
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        match written {
            Ok(()) => self.error.is_none(),
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

impl Writer<'_> {
    /// Writes the pending entries as one push body, grouped by stream.
    fn flush_batch(&mut self) {
        if self.pending.is_empty() || self.error.is_some() {
            return;
        }
        let mut streams: BTreeMap<Vec<(String, String)>, Vec<serde_json::Value>> = BTreeMap::new();
        for e in self.pending.drain(..) {
            let labels = e
                .labels
                .into_iter()
                .map(|(k, v)| match k.starts_with("__") {
                    true => (RENAMED_RESERVED.to_owned(), v),
                    false => (k, v),
                })
                .collect();
            let mut value = vec![
                serde_json::Value::String(e.ts_ns.to_string()),
                serde_json::Value::String(e.line),
            ];
            if !e.metadata.is_empty() {
                value.push(serde_json::json!(
                    e.metadata.into_iter().collect::<BTreeMap<_, _>>()
                ));
            }
            streams.entry(labels).or_default().push(value.into());
        }
        let body = serde_json::json!({
            "streams": streams
                .into_iter()
                .map(|(labels, values)| serde_json::json!({
                    "stream": labels.into_iter().collect::<BTreeMap<_, _>>(),
                    "values": values,
                }))
                .collect::<Vec<_>>(),
        });
        if let Err(e) = writeln!(self.out, "{body}") {
            self.error = Some(e);
        }
    }
}
