//! The accept loop of one listener: connection limit, TLS handshake, HTTP/1.1 and HTTP/2,
//! header limits and timeouts, and graceful draining.
//!
//! Owns: what happens between a TCP accept and the router: a permit per connection and a
//! count per peer address (both taken before anything is read; none left means the socket is
//! closed at once), a deadline on the first byte, on the TLS handshake and on request
//! headers, the connection's identity (peer address, client certificate names) attached to
//! every request, and on stop: no new connections, in-flight requests finished within the
//! grace period.
//!
//! Must not: contain handlers or know what a route does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::tls::{self, TlsState};
use crate::config::ServerLimits;
use crate::metrics::Metrics;
use crate::push::ConnInfo;

/// One listener and what it serves.
#[derive(Debug)]
pub struct Endpoint {
    pub name: &'static str,
    pub listener: TcpListener,
    pub app: Router,
    pub tls: Option<Arc<TlsState>>,
    pub limits: ServerLimits,
    pub metrics: Arc<Metrics>,
}

/// Serves `ep` until `stop` turns true, then drains open connections for at most the grace
/// period.
pub async fn serve(ep: Endpoint, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(ep.limits.max_connections));
    let peers = Arc::new(PeerCounts::default());
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(http_builder(&ep.limits));
    loop {
        let accepted = tokio::select! {
            r = ep.listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = ep.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            ep.metrics
                .listener(ep.name)
                .refused
                .fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let Some(peer_slot) =
            PeerCounts::take(&peers, peer.ip(), ep.limits.max_connections_per_peer)
        else {
            ep.metrics
                .listener(ep.name)
                .refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = ep.name, %peer, "too many connections from this peer");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            app: ep.app.clone(),
            builder: Arc::clone(&builder),
            metrics: Arc::clone(&ep.metrics),
            listener: ep.name,
            first_byte_timeout: ep.limits.first_byte_timeout,
            handshake_timeout: ep.limits.tls_handshake_timeout,
            peer,
        };
        let watcher = graceful.watcher();
        let tls = ep.tls.clone();
        tokio::spawn(async move {
            conn.stats().open.fetch_add(1, Ordering::Relaxed);
            if conn.first_byte(&tcp).await {
                match tls {
                    None => conn.http(tcp, Vec::new(), watcher).await,
                    Some(tls) => conn.tls(tcp, &tls, watcher).await,
                }
            }
            conn.stats().open.fetch_sub(1, Ordering::Relaxed);
            drop((permit, peer_slot));
        });
    }
    drop(ep.listener);
    let grace = ep.limits.shutdown_grace;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(listener = ep.name, ?grace, "connections still open after the grace period; closing");
        }
    }
}

fn http_builder(limits: &ServerLimits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_timeout);
    b
}

/// Open connections per peer address, so one address cannot hold the whole listener.
#[derive(Debug, Default)]
pub(super) struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its peer's count, given back when dropped.
#[derive(Debug)]
pub(super) struct PeerSlot {
    counts: Arc<PeerCounts>,
    key: IpAddr,
}

impl PeerCounts {
    /// A slot for a connection from `ip`, or `None` if its peer holds `max` already.
    pub(super) fn take(counts: &Arc<PeerCounts>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let key = crate::token::credentials::peer_key(ip);
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: Arc::clone(counts),
            key,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

struct Conn {
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    metrics: Arc<Metrics>,
    listener: &'static str,
    first_byte_timeout: std::time::Duration,
    handshake_timeout: std::time::Duration,
    peer: std::net::SocketAddr,
}

impl Conn {
    fn stats(&self) -> &crate::metrics::ListenerStats {
        self.metrics.listener(self.listener)
    }

    /// Waits for the client's first byte (a request line or a TLS ClientHello) within the
    /// first-byte deadline: a connection that never speaks would otherwise hold its permit,
    /// since header and handshake timeouts start with the first byte.
    async fn first_byte(&self, tcp: &tokio::net::TcpStream) -> bool {
        let mut b = [0u8; 1];
        match tokio::time::timeout(self.first_byte_timeout, tcp.peek(&mut b)).await {
            Ok(Ok(n)) => n > 0,
            _ => {
                tracing::debug!(peer = %self.peer, "no first byte within the deadline");
                false
            }
        }
    }

    async fn tls(
        &self,
        tcp: tokio::net::TcpStream,
        tls: &TlsState,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let handshake = tls.acceptor().accept(tcp);
        let stream = match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.stats().tls_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.stats().tls_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                return;
            }
        };
        let names = tls::peer_names(stream.get_ref().1);
        self.http(stream, names, watcher).await;
    }

    async fn http<I>(
        &self,
        io: I,
        client_names: Vec<String>,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let info = ConnInfo {
            peer: self.peer,
            client_names: client_names.into(),
        };
        let svc = tower::ServiceExt::map_request(
            self.app.clone(),
            move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            },
        );
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}
