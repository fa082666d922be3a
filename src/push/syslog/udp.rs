//! Syslog over UDP (RFC 5426): one message per datagram, its sender the push token its source
//! address is mapped to in `[syslog] sources`. A source address in a datagram is whatever the
//! sender wrote: anyone who can reach the port can send as any mapped address.
//!
//! Owns: receiving up to a batch of datagrams at a time (1,000, or 256 KiB of them),
//! refusing those from unmapped addresses (counted, never by address: a spoofer must not grow
//! the metrics) and those over `max_message_bytes`, and committing each sender's messages
//! once. There is no connection to hold back, so a batch that cannot be committed at once
//! (busy, over its rate, disk low) is dropped and counted as `dropped`: over UDP a flood
//! costs the flooder its own messages.
//!
//! Must not: retry a batch: it is committed once or dropped, so the socket is read again
//! within one commit.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{PushState, READ_CHUNK, attempt};

/// Datagrams taken into one batch at most, besides the one waited for.
const UDP_BATCH: usize = 1000;

/// Serves `sock` until `stop`.
pub async fn serve_udp(
    st: Arc<PushState>,
    sock: UdpSocket,
    sources: Arc<BTreeMap<IpAddr, String>>,
    max_message_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; max_message_bytes + 1];
    loop {
        let first = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut batch: BTreeMap<&str, Vec<Bytes>> = BTreeMap::new();
        let mut next = first.ok();
        // Copies held before the batch is charged: at most a connection's round of bytes.
        let (mut taken, mut bytes) = (0, 0);
        while let Some((n, peer)) = next.take() {
            taken += 1;
            bytes += n;
            match sources.get(&peer.ip()) {
                None => st.metrics.syslog.unknown_datagram(),
                Some(token) if n > max_message_bytes => {
                    st.metrics.syslog.messages(token, "too_large", 1)
                }
                Some(token) => batch
                    .entry(token.as_str())
                    .or_default()
                    .push(Bytes::copy_from_slice(&buf[..n])),
            }
            if taken < UDP_BATCH && bytes < READ_CHUNK {
                next = sock.try_recv_from(&mut buf).ok();
            }
        }
        for (token, messages) in batch {
            let Some(who) = st.verifier.by_name(token) else {
                st.metrics.syslog.messages(token, "dropped", messages.len());
                continue;
            };
            if let Err(e) = attempt(&st, &who, &messages).await {
                st.metrics.syslog.messages(token, "dropped", messages.len());
                tracing::debug!(sender = token, error = %e, "syslog datagrams dropped");
            }
        }
    }
}
