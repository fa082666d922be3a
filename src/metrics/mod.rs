//! The server's counters, and their Prometheus text rendering for `/metrics`.
//!
//! Owns: what is counted (pushes by status and reason, entries and bytes per token, the last
//! push time per token that silence alerts are built on, auth failures, latency, connections,
//! reads by endpoint with their latency, seals and checkpoint exports, disk and ledger size).
//!
//! Must not: carry a secret or any log content in a label: token names and fixed reason
//! words only.
//!
//! Layout: this file holds the counters the server updates; `scrape` the gauges read at
//! scrape time from the disk and from the ledger's writer.

mod scrape;
mod syslog;

pub use scrape::{render_disk, render_writer};
pub use syslog::SyslogStats;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the push latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct TokenStats {
    entries: u64,
    bytes: u64,
    last_push_ns: i64,
}

/// A latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i] += 1;
            }
        }
    }

    /// The series of one histogram; `labels` is empty or `k="v",` pairs with a trailing comma.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (le, n) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = labels.trim_end_matches(',');
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    push_by_status: BTreeMap<u16, u64>,
    push_failures: BTreeMap<&'static str, u64>,
    auth_failures: BTreeMap<&'static str, u64>,
    rejected_entries: u64,
    tokens: BTreeMap<String, TokenStats>,
    push_latency: Histogram,
    /// Read requests by (endpoint, status), and latency by endpoint.
    queries: BTreeMap<(&'static str, u16), u64>,
    query_latency: BTreeMap<&'static str, Histogram>,
}

/// Shared counters; cheap enough to update once per request.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Connections of each listener; one `Metrics` serves them all, so every listener's
    /// figures reach `/metrics`.
    pub push: ListenerStats,
    pub local: ListenerStats,
    pub remote: ListenerStats,
    /// The syslog listeners (TLS and plain TCP together).
    pub syslog_conns: ListenerStats,
    pub syslog: SyslogStats,
    /// Successful and failed certificate reloads.
    pub tls_reloads: AtomicU64,
    pub tls_reload_failures: AtomicU64,
    /// Seals and checkpoint exports.
    pub seal: SealStats,
}

/// One listener's connections.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at accept by the listener's connection limit or per-address cap.
    pub refused: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: AtomicU64,
}

/// What the sealer reports: the newest seal, and checkpoint exports by channel.
#[derive(Debug, Default)]
pub struct SealStats {
    pub last_epoch: AtomicU64,
    /// Wall time of the newest seal, Unix seconds (0 before the first).
    pub last_seal_unix: AtomicU64,
    pub exports_file: AtomicU64,
    pub exports_stdout: AtomicU64,
    pub exports_push: AtomicU64,
    pub export_failures_file: AtomicU64,
    pub export_failures_stdout: AtomicU64,
    pub export_failures_push: AtomicU64,
}

impl SealStats {
    fn render(&self, out: &mut String) {
        let gauges = [
            (
                "daftari_seal_last_epoch",
                "The newest sealed epoch.",
                &self.last_epoch,
            ),
            (
                "daftari_seal_last_timestamp_seconds",
                "Wall time of the newest seal (alert when it stops moving).",
                &self.last_seal_unix,
            ),
        ];
        for (name, help, v) in gauges {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let by_channel = [
            ("file", &self.exports_file, &self.export_failures_file),
            ("stdout", &self.exports_stdout, &self.export_failures_stdout),
            ("push", &self.exports_push, &self.export_failures_push),
        ];
        let series = [
            (
                "daftari_checkpoint_exports_total",
                "Checkpoints exported, by channel.",
                true,
            ),
            (
                "daftari_checkpoint_export_failures_total",
                "Checkpoint exports that failed (each is retried or superseded), by channel.",
                false,
            ),
        ];
        for (name, help, exported) in series {
            header(out, name, "counter", help);
            for (ch, ok, failed) in by_channel {
                let n = if exported { ok } else { failed };
                let _ = writeln!(
                    out,
                    "{name}{{channel=\"{ch}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn push_done(&self, status: u16, took: Duration) {
        let s = took.as_secs_f64();
        self.with(|m| {
            *m.push_by_status.entry(status).or_default() += 1;
            m.push_latency.observe(s);
        });
    }

    /// One request on a read listener; `endpoint` is a fixed name, never a path.
    pub fn query_done(&self, endpoint: &'static str, status: u16, took: Duration) {
        self.with(|m| {
            *m.queries.entry((endpoint, status)).or_default() += 1;
            m.query_latency
                .entry(endpoint)
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    pub fn push_failed(&self, reason: &'static str) {
        self.with(|m| *m.push_failures.entry(reason).or_default() += 1);
    }

    pub fn auth_failed(&self, reason: &'static str) {
        self.with(|m| *m.auth_failures.entry(reason).or_default() += 1);
    }

    pub fn rejected_entries(&self, n: usize) {
        self.with(|m| m.rejected_entries += n as u64);
    }

    pub fn accepted(&self, token: &str, entries: usize, bytes: usize, now_ns: i64) {
        self.with(|m| {
            let t = m.tokens.entry(token.to_string()).or_default();
            t.entries += entries as u64;
            t.bytes += bytes as u64;
            t.last_push_ns = t.last_push_ns.max(now_ns);
        });
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|m| render_inner(m, &mut out));
        self.render_listeners(&mut out);
        let gauges = [
            (
                "daftari_push_connections_open",
                "gauge",
                "Connections open on the push listener (also in daftari_connections_open).",
                &self.push.open,
            ),
            (
                "daftari_push_connections_refused_total",
                "counter",
                "Push connections closed at accept by the connection limit (also in \
                 daftari_connections_refused_total).",
                &self.push.refused,
            ),
            (
                "daftari_tls_reloads_total",
                "counter",
                "Certificate reloads that succeeded.",
                &self.tls_reloads,
            ),
            (
                "daftari_tls_reload_failures_total",
                "counter",
                "Certificate reloads that failed (the old certificate stays).",
                &self.tls_reload_failures,
            ),
        ];
        for (name, kind, help, v) in gauges {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        self.seal.render(&mut out);
        self.syslog.render(&mut out);
        out
    }
}

impl Metrics {
    /// The figures of the listener named `name` (`push`, `local`, `remote` or `syslog`).
    pub fn listener(&self, name: &str) -> &ListenerStats {
        match name {
            "local" => &self.local,
            "remote" => &self.remote,
            "syslog" => &self.syslog_conns,
            _ => &self.push,
        }
    }

    fn render_listeners(&self, out: &mut String) {
        let families = [
            (
                "daftari_connections_open",
                "gauge",
                "Connections open, by listener.",
                (|l: &ListenerStats| &l.open) as fn(&ListenerStats) -> &AtomicU64,
            ),
            (
                "daftari_connections_refused_total",
                "counter",
                "Connections closed at accept by the connection limit or the per-address cap, \
                 by listener.",
                |l| &l.refused,
            ),
            (
                "daftari_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or timed out, by listener.",
                |l| &l.tls_failures,
            ),
        ];
        for (name, kind, help, field) in families {
            header(out, name, kind, help);
            for (listener, l) in [
                ("push", &self.push),
                ("local", &self.local),
                ("remote", &self.remote),
                ("syslog", &self.syslog_conns),
            ] {
                let v = field(l).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{listener=\"{listener}\"}} {v}");
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_inner(m: &Inner, out: &mut String) {
    let name = "daftari_push_requests_total";
    header(out, name, "counter", "Push requests by HTTP status.");
    for (status, n) in &m.push_by_status {
        let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
    }
    let name = "daftari_push_failures_total";
    header(out, name, "counter", "Refused push requests by reason.");
    for (reason, n) in &m.push_failures {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    let name = "daftari_auth_failures_total";
    header(
        out,
        name,
        "counter",
        "Failed push authentications by reason.",
    );
    for (reason, n) in &m.auth_failures {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    let name = "daftari_rejected_entries_total";
    header(out, name, "counter", "Entries refused by validation (400).");
    let _ = writeln!(out, "{name} {}", m.rejected_entries);
    token_series(m, out);
    let name = "daftari_push_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Push request latency, until durable.",
    );
    m.push_latency.render(out, name, "");
    let name = "daftari_query_requests_total";
    header(
        out,
        name,
        "counter",
        "Read requests by endpoint and HTTP status.",
    );
    for ((endpoint, status), n) in &m.queries {
        let _ = writeln!(
            out,
            "{name}{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
        );
    }
    let name = "daftari_query_duration_seconds";
    header(out, name, "histogram", "Read request latency by endpoint.");
    for (endpoint, h) in &m.query_latency {
        h.render(out, name, &format!("endpoint=\"{endpoint}\","));
    }
}

/// A per-token series: name, help, and how to read its value.
type TokenSeries = (&'static str, &'static str, fn(&TokenStats) -> String);

fn token_series(m: &Inner, out: &mut String) {
    let series: [TokenSeries; 3] = [
        (
            "daftari_token_entries_total",
            "Entries accepted (durable) per token.",
            |t| t.entries.to_string(),
        ),
        (
            "daftari_token_bytes_total",
            "Line and metadata bytes accepted per token.",
            |t| t.bytes.to_string(),
        ),
        (
            "daftari_token_last_push_timestamp_seconds",
            "Time of the token's last accepted push.",
            |t| format!("{:.3}", t.last_push_ns as f64 / 1e9),
        ),
    ];
    for (name, help, value) in series {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        header(out, name, kind, help);
        for (token, t) in &m.tokens {
            let _ = writeln!(out, "{name}{{token=\"{token}\"}} {}", value(t));
        }
    }
}
