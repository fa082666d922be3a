//! Decoded streams to ledger streams: labels parsed and checked, the token's labels forced
//! on, every entry checked against the limits.
//!
//! Owns: Loki's per-stream and per-entry rules and messages (label count and lengths,
//! reserved names, empty label sets, line size, structured metadata size and count, UTF-8,
//! timestamps too far in the future), and the partial-failure rule: invalid entries are
//! listed, valid ones go on to the ledger.
//!
//! Old and out-of-order timestamps are accepted on purpose: arrival order is the chain
//! order, and a host that was cut off for a week must still be able to deliver its backlog.

use std::time::Duration;

use super::Limits;
use super::labels;
use super::raw::{Decoded, RawLabels, RawStream};
use crate::clock::rfc3339;
use crate::store::append::{NewEntry, Pairs, Stream};

/// Streams ready to append, and what was rejected.
#[derive(Debug, Default)]
pub struct Checked {
    pub streams: Vec<Stream>,
    /// Valid entries.
    pub entries: usize,
    /// Bytes of valid lines and metadata (for rate limits and metrics).
    pub bytes: usize,
    /// Messages for rejected entries, at most `MAX_LISTED_REJECTS`.
    pub reject_lines: Vec<String>,
    pub rejected: usize,
}

impl Checked {
    fn reject(&mut self, count: usize, mut msg: String) {
        use super::error::{MAX_LISTED_REJECTS, MAX_REJECT_LINE_BYTES};
        self.rejected += count;
        if self.reject_lines.len() >= MAX_LISTED_REJECTS {
            return;
        }
        cut(&mut msg, MAX_REJECT_LINE_BYTES);
        self.reject_lines.push(msg);
    }
}

/// Longest label string quoted in a message, so the reason after it stays readable.
const MAX_SHOWN_LABELS: usize = 256;

/// Cuts `s` to at most `max` bytes (at a character boundary), saying so.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push_str("...(cut)");
    }
}

/// A stream's labels as quoted in messages.
fn quoted_labels(mut s: String) -> String {
    cut(&mut s, MAX_SHOWN_LABELS);
    s
}

/// Checks every stream of `req`, forcing `forced` labels on (they overwrite the client's).
pub fn check(req: Decoded, forced: &[(String, String)], limits: &Limits, now_ns: i64) -> Checked {
    let mut out = Checked::default();
    let newest_ok = now_ns.saturating_add(duration_ns(limits.creation_grace));
    for stream in req.streams {
        let n = stream.entries.len();
        if n == 0 {
            continue;
        }
        match stream_labels(&stream, forced, limits) {
            Ok((pairs, shown)) => check_entries(stream, pairs, &shown, limits, newest_ok, &mut out),
            Err(msg) => out.reject(n, msg),
        }
    }
    out
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The stream's final label set and its rendering for messages.
fn stream_labels(
    s: &RawStream,
    forced: &[(String, String)],
    limits: &Limits,
) -> Result<(Pairs, String), String> {
    let (mut pairs, shown) = match &s.labels {
        RawLabels::Text(t) => {
            let shown = quoted_labels(
                String::from_utf8_lossy(&t[..t.len().min(MAX_SHOWN_LABELS + 4)]).into_owned(),
            );
            // Beyond this many the stream is refused whatever forced labels replace.
            let most = limits.max_label_names_per_series + forced.len() + 1;
            let p = labels::parse(t, most).map_err(|e| format!("stream '{shown}': {e}"))?;
            (p, shown)
        }
        RawLabels::Pairs(p) => {
            let mut p: Vec<_> = p.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
            p.sort();
            let shown = quoted_labels(labels::render(
                p.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            ));
            for (name, _) in &p {
                if !valid_name(name) {
                    return Err(format!("stream '{shown}': invalid label name '{name}'"));
                }
            }
            (p, shown)
        }
    };
    if let Some((name, _)) = pairs.iter().find(|(n, _)| n.starts_with("__")) {
        return Err(format!(
            "stream '{shown}': label name '{name}' is reserved (names starting with __)"
        ));
    }
    pairs.retain(|(n, _)| !forced.iter().any(|(f, _)| f == n));
    pairs.extend(forced.iter().cloned());
    let pairs = Pairs::new(pairs).map_err(|e| match e {
        crate::store::append::FormatError::DuplicateName(n) => {
            format!("stream '{shown}' has duplicate label name: '{n}'")
        }
        other => format!("stream '{shown}': {other}"),
    })?;
    let shown = quoted_labels(labels::render(pairs.iter()));
    if pairs.is_empty() {
        return Err(format!(
            "stream '{shown}': error at least one label pair is required per stream"
        ));
    }
    let counted = pairs.iter().filter(|(n, _)| *n != "service_name").count();
    if counted > limits.max_label_names_per_series {
        return Err(format!(
            "entry for stream '{shown}' has {counted} label names; limit {}",
            limits.max_label_names_per_series
        ));
    }
    for (n, v) in pairs.iter() {
        if n.len() > limits.max_label_name_length {
            return Err(format!("stream '{shown}' has label name too long: '{n}'"));
        }
        if v.len() > limits.max_label_value_length {
            return Err(format!("stream '{shown}' has label value too long: '{v}'"));
        }
    }
    Ok((pairs, shown))
}

fn check_entries(
    s: RawStream,
    labels: Pairs,
    shown: &str,
    limits: &Limits,
    newest_ok: i64,
    out: &mut Checked,
) {
    let mut entries = Vec::with_capacity(s.entries.len());
    for (i, e) in s.entries.into_iter().enumerate() {
        let result = entry(e, shown, limits, newest_ok);
        match result {
            Ok((entry, bytes)) => {
                out.bytes += bytes;
                entries.push(entry);
            }
            Err(msg) => out.reject(1, format!("stream '{shown}': entry {i}: {msg}")),
        }
    }
    if !entries.is_empty() {
        out.entries += entries.len();
        out.streams.push(Stream { labels, entries });
    }
}

fn entry(
    e: super::raw::RawEntry,
    shown: &str,
    limits: &Limits,
    newest_ok: i64,
) -> Result<(NewEntry, usize), String> {
    let ts_ns = e.ts_ns.map_err(str::to_string)?;
    if ts_ns < 0 {
        return Err(format!("timestamp {ts_ns} is before 1970"));
    }
    if ts_ns > newest_ok {
        return Err(format!(
            "entry for stream '{shown}' has timestamp too new: {}",
            rfc3339(ts_ns)
        ));
    }
    if e.line.len() > limits.max_line_size {
        return Err(format!(
            "max entry size '{}' bytes exceeded for stream '{shown}' while adding an entry with \
             length '{}' bytes",
            limits.max_line_size,
            e.line.len()
        ));
    }
    if std::str::from_utf8(&e.line).is_err() {
        return Err("line is not valid UTF-8".into());
    }
    let metadata = metadata(e.metadata, shown, limits)?;
    let bytes = e.line.len()
        + metadata
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    Ok((
        NewEntry {
            ts_ns,
            metadata,
            line: e.line.to_vec(),
        },
        bytes,
    ))
}

fn metadata(
    raw: Vec<(bytes::Bytes, bytes::Bytes)>,
    shown: &str,
    limits: &Limits,
) -> Result<Pairs, String> {
    if raw.len() > limits.max_metadata_entries {
        return Err(format!(
            "structured metadata count {} exceeds the limit of {} for stream '{shown}'",
            raw.len(),
            limits.max_metadata_entries
        ));
    }
    let size: usize = raw.iter().map(|(n, v)| n.len() + v.len()).sum();
    if size > limits.max_metadata_bytes {
        return Err(format!(
            "structured metadata size {size} bytes exceeds the limit of {} bytes for stream \
             '{shown}'",
            limits.max_metadata_bytes
        ));
    }
    let mut pairs = Vec::with_capacity(raw.len());
    for (n, v) in raw {
        let (Ok(n), Ok(v)) = (String::from_utf8(n.to_vec()), String::from_utf8(v.to_vec())) else {
            return Err("structured metadata is not valid UTF-8".into());
        };
        if !valid_name(&n) {
            return Err(format!("invalid structured metadata name '{n}'"));
        }
        if !v.is_empty() {
            pairs.push((n, v));
        }
    }
    Pairs::new(pairs).map_err(|e| format!("structured metadata: {e}"))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}
