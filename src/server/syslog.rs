//! The syslog listeners: TLS (RFC 5425), where a sender is the push token bound to its
//! verified client certificate, and plain TCP (RFC 6587) and UDP (RFC 5426), where a sender
//! is the push token its source address is mapped to in `[syslog] sources`.
//!
//! Owns: accepting under the listeners' shared connection limit and per-address cap (closed
//! at accept beyond either, as on the push listener), the TLS handshake deadline, telling the
//! sender's identity to `push::syslog`, which serves the connection, and on stop: no new
//! connections, open ones ended within the grace period.
//!
//! Must not: read messages or know what is stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::accept::PeerCounts;
use super::tls::{self, TlsState};
use crate::config::{Config, SyslogConfig};
use crate::metrics::Metrics;
use crate::push::PushState;
use crate::push::syslog::{ConnLimits, Sender, serve as serve_conn};

/// The bound syslog sockets.
#[derive(Debug)]
pub struct Sockets {
    pub tls: Option<(TcpListener, Option<Arc<TlsState>>)>,
    pub tcp: Option<TcpListener>,
    pub udp: Option<tokio::net::UdpSocket>,
}

/// Starts a task for each bound syslog socket; each ends once `stop` turns true.
pub fn spawn(
    sys: Arc<Syslog>,
    sockets: Sockets,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let listeners = [sockets.tls, sockets.tcp.map(|l| (l, None))];
    for (l, tls) in listeners.into_iter().flatten() {
        tasks.push(tokio::spawn(serve(Arc::clone(&sys), l, tls, stop.clone())));
    }
    if let Some(sock) = sockets.udp {
        tasks.push(tokio::spawn(serve_udp(
            Arc::clone(&sys),
            sock,
            stop.clone(),
        )));
    }
    tasks
}

/// Serves the UDP syslog socket until `stop`.
pub async fn serve_udp(sys: Arc<Syslog>, sock: tokio::net::UdpSocket, stop: watch::Receiver<bool>) {
    let sources = Arc::new(sys.cfg.sources.clone());
    crate::push::syslog::serve_udp(
        Arc::clone(&sys.push),
        sock,
        sources,
        sys.cfg.max_message_bytes,
        stop,
    )
    .await;
}

/// What both syslog listeners share.
#[derive(Debug)]
pub struct Syslog {
    pub cfg: SyslogConfig,
    pub push: Arc<PushState>,
    pub metrics: Arc<Metrics>,
    pub handshake_timeout: Duration,
    pub grace: Duration,
    permits: Arc<Semaphore>,
    peers: Arc<PeerCounts>,
}

impl Syslog {
    /// The syslog listeners of `cfg`, storing through `push`.
    pub fn new(cfg: &Config, push: Arc<PushState>, metrics: Arc<Metrics>) -> Arc<Syslog> {
        Arc::new(Syslog {
            permits: Arc::new(Semaphore::new(cfg.syslog.max_connections)),
            peers: Arc::new(PeerCounts::default()),
            cfg: cfg.syslog.clone(),
            push,
            metrics,
            handshake_timeout: cfg.server.tls_handshake_timeout,
            grace: cfg.server.shutdown_grace,
        })
    }

    fn limits(&self) -> ConnLimits {
        ConnLimits {
            max_message_bytes: self.cfg.max_message_bytes,
            idle_timeout: self.cfg.idle_timeout,
        }
    }
}

/// Serves one syslog listener (`tls` set: TLS; else plain TCP) until `stop`.
pub async fn serve(
    sys: Arc<Syslog>,
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let stats = &sys.metrics.syslog_conns;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let permit = Arc::clone(&sys.permits).try_acquire_owned();
        let slot = PeerCounts::take(&sys.peers, peer.ip(), sys.cfg.max_connections_per_peer);
        let (Ok(permit), Some(slot)) = (permit, slot) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (sys, tls, stop) = (Arc::clone(&sys), tls.clone(), stop.clone());
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            sys.metrics
                .syslog_conns
                .open
                .fetch_add(1, Ordering::Relaxed);
            match tls {
                Some(tls) => over_tls(&sys, tcp, &tls, stop).await,
                None => plain(&sys, tcp, peer, stop).await,
            }
            sys.metrics
                .syslog_conns
                .open
                .fetch_sub(1, Ordering::Relaxed);
            drop((permit, slot));
        });
    }
    drop(listener);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(sys.grace, drained).await.is_err() {
        tracing::warn!("syslog connections still open after the grace period; closing");
    }
}

async fn over_tls(sys: &Syslog, tcp: TcpStream, tls: &TlsState, stop: watch::Receiver<bool>) {
    let handshake = tokio::time::timeout(sys.handshake_timeout, tls.acceptor().accept(tcp));
    let Ok(Ok(stream)) = handshake.await else {
        sys.metrics
            .syslog_conns
            .tls_failures
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let names = tls::peer_names(stream.get_ref().1);
    let sender = Sender::Cert(names.into());
    serve_conn(Arc::clone(&sys.push), stream, sender, sys.limits(), stop).await;
}

async fn plain(
    sys: &Syslog,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let Some(token) = sys.cfg.sources.get(&peer.ip()) else {
        sys.metrics.syslog.closed("unknown_sender");
        tracing::info!(%peer, "syslog connection from an address not in syslog.sources; closed");
        return;
    };
    let sender = Sender::Token(token.as_str().into());
    serve_conn(Arc::clone(&sys.push), tcp, sender, sys.limits(), stop).await;
}
