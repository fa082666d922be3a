//! What syslog senders did: messages by sender (the token a connection is identified as) and
//! outcome, and connections closed and why.
//!
//! Must not: carry message content: token names and fixed words only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::header;

/// Counters of the syslog listeners.
#[derive(Debug, Default)]
pub struct SyslogStats {
    /// (sender, outcome) → messages. Outcomes: `stored`, `refused` (invalid, listed in the
    /// debug log), `too_large` (over `syslog.max_message_bytes`, skipped unread), `dropped`
    /// (UDP only: not committed at once).
    messages: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// reason → connections closed by the server: `unknown_sender`, `revoked`, `framing`,
    /// `idle`.
    closed: Mutex<BTreeMap<&'static str, u64>>,
    /// UDP datagrams from addresses no sender is mapped to.
    unknown_datagrams: AtomicU64,
}

impl SyslogStats {
    pub fn messages(&self, sender: &str, outcome: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((sender.to_string(), outcome)).or_default() += n as u64;
    }

    pub fn unknown_datagram(&self) {
        self.unknown_datagrams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: &'static str) {
        let mut m = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(reason).or_default() += 1;
    }

    pub(super) fn render(&self, out: &mut String) {
        let name = "daftari_syslog_messages_total";
        header(
            out,
            name,
            "counter",
            "Syslog messages by sender and outcome (stored, refused, too_large, dropped).",
        );
        let m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        for ((sender, outcome), n) in m.iter() {
            let _ = writeln!(
                out,
                "{name}{{sender=\"{sender}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let name = "daftari_syslog_connections_closed_total";
        header(
            out,
            name,
            "counter",
            "Syslog connections the server closed, by reason.",
        );
        let c = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, n) in c.iter() {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
        }
        let name = "daftari_syslog_unknown_datagrams_total";
        header(
            out,
            name,
            "counter",
            "UDP syslog datagrams from addresses not in syslog.sources.",
        );
        let n = self.unknown_datagrams.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {n}");
    }
}
