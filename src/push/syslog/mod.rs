//! Syslog senders: RFC 5424 and RFC 3164 messages over TCP with RFC 6587 framing, or over TLS
//! (RFC 5425), on their own listener, stored through the same path as a push (the sender's
//! token, its forced labels, the budget, validation, the rate limit, durability).
//!
//! Owns: one connection's life: who the sender is (the push token bound to its verified
//! client certificate, or the token its source address is mapped to), reading within the
//! idle timeout, framing, and committing what arrived before reading on. Syslog has no
//! acknowledgement: a message counts as received once its batch is committed and durable, and
//! while a batch waits (the writer busy, the token over its rate or its share of memory, the
//! disk below its reserve) the connection is not read, so the sender's socket buffer fills
//! and TCP holds it back. A sender that gives up and drops its connection loses what it had
//! sent and daftari had not yet committed; rsyslog's disk-assisted queues resend it.
//!
//! Over UDP (RFC 5426, `udp`) there is no connection to hold back: a datagram that arrives
//! while its batch cannot be committed at once is dropped and counted.
//!
//! Must not: answer the sender anything (syslog has no replies), or name the query plane,
//! token management or deletion.

pub mod frame;
mod map;
pub mod parse;
mod udp;

pub use udp::serve_udp;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use super::error::PushError;
use super::memory::ENTRY_OVERHEAD;
use super::{PushState, commit};
use crate::token::Identity;
use frame::{Frame, Framer};

/// Longest message: RFC 5425 asks receivers for at least 2,048 bytes and advises 8,192;
/// Suricata's EVE records and audit lines run to a few KiB. Key `syslog.max_message_bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 10;
/// A connection that sends nothing for this long is closed (senders reconnect when they
/// next have something to say). Key `syslog.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most bytes taken from a connection into one round of framing and commits: what a busy
/// connection holds besides a message that straddles two rounds.
pub const READ_CHUNK: usize = 256 << 10;
/// What a connection waits for its next bytes with: a quiet connection (rsyslog keeps one
/// open for hours) holds this, not a busy round's buffer, which is let go once it is empty.
pub const QUIET_READ: usize = 4 << 10;
/// Messages committed together at most: an agent's batch, so one admission by the token's
/// rate limit is never far beyond its burst.
pub const MAX_BATCH_MESSAGES: usize = 1000;

/// How a connection's sender is known.
#[derive(Debug, Clone)]
pub enum Sender {
    /// By the names of its verified client certificate.
    Cert(Arc<[String]>),
    /// By the push token its source address is mapped to.
    Token(Arc<str>),
}

/// A connection's bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
}

impl Sender {
    /// The live push token it is, if any (checked again for every batch, so a revocation
    /// ends the connection within one batch).
    pub fn identify(&self, st: &PushState) -> Option<Identity> {
        match self {
            Sender::Cert(names) => st.verifier.by_cert(names),
            Sender::Token(name) => st.verifier.by_name(name),
        }
    }
}

/// Serves one connection until the sender closes it, goes idle, breaks the framing, or is
/// no longer a live token, or the server stops.
pub async fn serve<S: AsyncRead + Unpin>(
    st: Arc<PushState>,
    mut io: S,
    sender: Sender,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let Some(who) = sender.identify(&st) else {
        st.metrics.syslog.closed("unknown_sender");
        tracing::info!(
            ?sender,
            "syslog sender matches no live push token; connection closed"
        );
        return;
    };
    let mut framer = Framer::new(limits.max_message_bytes);
    let mut buf = BytesMut::new();
    loop {
        if buf.is_empty() && buf.capacity() > QUIET_READ {
            buf = BytesMut::new();
        }
        let eof = match fill(&mut io, &mut buf, limits.idle_timeout, &mut stop).await {
            Ok(eof) => eof,
            Err(Ended::Idle) => {
                st.metrics.syslog.closed("idle");
                return;
            }
            Err(Ended::Gone) => return,
        };
        if eof && !buf.is_empty() && !buf.ends_with(b"\n") {
            // The last message of a stream may end with the stream.
            buf.extend_from_slice(b"\n");
        }
        let mut frames = Vec::new();
        if framer.frames(&mut buf, &mut frames).is_err() {
            st.metrics.syslog.closed("framing");
            tracing::info!(sender = %who.name, "syslog framing broken (an invalid octet count); connection closed");
            return;
        }
        let (messages, too_large) = split(frames);
        st.metrics
            .syslog
            .messages(&who.name, "too_large", too_large);
        for batch in messages.chunks(MAX_BATCH_MESSAGES) {
            if !store(&st, &sender, batch, &mut stop).await {
                return;
            }
        }
        if eof {
            return;
        }
    }
}

/// Why a connection stopped being read.
enum Ended {
    /// Nothing came within the idle timeout.
    Idle,
    /// A read failed, or the server stops.
    Gone,
}

/// Waits (within `idle`) for the next bytes, [`QUIET_READ`] at most, then takes what else has
/// already arrived, up to [`READ_CHUNK`] in all; true at the end of the stream.
async fn fill<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    idle: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, Ended> {
    buf.reserve(QUIET_READ);
    let first = (&mut *io).take(QUIET_READ as u64);
    let read = tokio::select! {
        r = tokio::time::timeout(idle, read_into(first, buf)) => r,
        _ = stop.wait_for(|s| *s) => return Err(Ended::Gone),
    };
    match read {
        Err(_) => return Err(Ended::Idle),
        Ok(Err(_)) => return Err(Ended::Gone),
        Ok(Ok(0)) => return Ok(true),
        Ok(Ok(_)) => {}
    }
    let mut taken = buf.len();
    while taken < READ_CHUNK {
        let want = READ_CHUNK - taken;
        buf.reserve(want.min(64 << 10));
        let more = (&mut *io).take(want as u64);
        // Polled once: what the socket (or TLS) holds now, without waiting for more.
        match tokio::time::timeout(Duration::ZERO, read_into(more, buf)).await {
            Ok(Ok(0)) => return Ok(true),
            Ok(Ok(n)) => taken += n,
            Ok(Err(_)) => return Err(Ended::Gone),
            Err(_) => break,
        }
    }
    Ok(false)
}

async fn read_into<R: AsyncRead + Unpin>(mut r: R, buf: &mut BytesMut) -> std::io::Result<usize> {
    r.read_buf(buf).await
}

fn split(frames: Vec<Frame>) -> (Vec<Bytes>, usize) {
    let mut messages = Vec::with_capacity(frames.len());
    let mut too_large = 0;
    for f in frames {
        match f {
            Frame::Message(m) => messages.push(m),
            Frame::TooLarge(_) => too_large += 1,
        }
    }
    (messages, too_large)
}

/// Commits `messages`, waiting out momentary refusals; false when the connection must end
/// (the sender is no longer a live token, or the server stops).
async fn store(
    st: &PushState,
    sender: &Sender,
    messages: &[Bytes],
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let Some(who) = sender.identify(st) else {
            st.metrics.syslog.closed("revoked");
            return false;
        };
        let wait = match attempt(st, &who, messages).await {
            Ok(()) => return true,
            Err(PushError::Closing) => return false,
            Err(e) => match e.retry_after() {
                Some(s) => Duration::from_secs(s.max(1)),
                None => {
                    st.metrics
                        .syslog
                        .messages(&who.name, "refused", messages.len());
                    tracing::debug!(sender = %who.name, error = %e, "syslog batch refused");
                    return true;
                }
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
    }
}

pub(super) async fn attempt(
    st: &PushState,
    who: &Identity,
    messages: &[Bytes],
) -> Result<(), PushError> {
    let mut charge = st.memory.charge(&who.name)?;
    let bytes: usize = messages.iter().map(Bytes::len).sum();
    charge.take(bytes + messages.len() * ENTRY_OVERHEAD)?;
    let decoded = map::to_raw(messages, crate::clock::now_ns());
    let outcome = commit(st, who, String::new(), decoded, &mut charge).await?;
    st.metrics
        .syslog
        .messages(&who.name, "stored", outcome.entries);
    st.metrics
        .syslog
        .messages(&who.name, "refused", outcome.rejected);
    if outcome.rejected > 0 {
        tracing::debug!(sender = %who.name, refused = ?outcome.lines, "syslog messages refused");
    }
    Ok(())
}
