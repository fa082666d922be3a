//! The third checkpoint channel: each signed note pushed as one log line to another
//! Loki-compatible endpoint (a second daftari, or the cluster's Loki), so that two sinks
//! anchor each other over the same API.
//!
//! Owns: a thread with its own small runtime that sends queued notes in order to
//! `<url>/loki/api/v1/push` (Loki JSON, `Authorization: Bearer <token>`, optional
//! `X-Scope-OrgID`), over TLS with the configured CA for `https`. A failed push is counted,
//! logged and retried with backoff; the queue is bounded and, when full, the new note is
//! counted as a failure (a later checkpoint covers everything an earlier one does).
//!
//! Must not: block the sealer (it only enqueues), or log the token.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use super::SealError;
use crate::metrics::Metrics;

/// Notes waiting for the endpoint at most. Key: none (the file channel keeps them all).
pub const QUEUE: usize = 1024;
/// How long one push may take before it counts as failed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between retries of one note: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where checkpoints are pushed (`[seal] checkpoint_push_*`).
#[derive(Clone)]
pub struct PushTarget {
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    pub url: String,
    pub token: String,
    /// PEM CA bundle that signs the endpoint's certificate (needed for https).
    pub ca_file: Option<PathBuf>,
    pub tenant: Option<String>,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// The sealer's side: enqueue and forget.
#[derive(Debug)]
pub struct Pusher {
    tx: SyncSender<(i64, String)>,
    metrics: Arc<Metrics>,
}

impl Pusher {
    /// Starts the pushing thread.
    pub fn start(
        target: PushTarget,
        origin: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Pusher, SealError> {
        let endpoint = Endpoint::new(&target)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let m = Arc::clone(&metrics);
        let origin = origin.to_owned();
        std::thread::Builder::new()
            .name("checkpoint-push".into())
            .spawn(move || run(rx, endpoint, target, origin, m))
            .map_err(|e| SealError::Remote(format!("start the checkpoint pusher: {e}")))?;
        Ok(Pusher { tx, metrics })
    }

    pub fn send(&self, ts_ns: i64, note: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send((ts_ns, note))
        {
            self.metrics
                .seal
                .export_failures_push
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("checkpoint push queue full; this checkpoint is not pushed");
        }
    }
}

/// Where and how to connect.
struct Endpoint {
    host: String,
    port: u16,
    prefix: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Endpoint {
    fn new(t: &PushTarget) -> Result<Endpoint, SealError> {
        let (tls, rest, default_port) = if let Some(r) = t.url.strip_prefix("https://") {
            (true, r, 443)
        } else if let Some(r) = t.url.strip_prefix("http://") {
            (false, r, 80)
        } else {
            return Err(SealError::Remote(
                "checkpoint_push_url must start with http:// or https://".into(),
            ));
        };
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| SealError::Remote("checkpoint_push_url: bad port".into()))?,
            ),
            None => (authority, default_port),
        };
        let tls = if tls {
            let ca = t.ca_file.as_ref().ok_or_else(|| {
                SealError::Remote("an https checkpoint_push_url needs checkpoint_push_ca".into())
            })?;
            Some(connector(ca)?)
        } else {
            None
        };
        Ok(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            prefix: prefix.trim_end_matches('/').to_owned(),
            tls,
        })
    }
}

fn connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, SealError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| SealError::Remote(format!("{}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| SealError::Remote(format!("{}: {e}", ca.display())))?;
        roots
            .add(c)
            .map_err(|e| SealError::Remote(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SealError::Remote(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn run(
    rx: Receiver<(i64, String)>,
    endpoint: Endpoint,
    target: PushTarget,
    origin: String,
    metrics: Arc<Metrics>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("checkpoint pusher: no runtime; pushing is off");
        return;
    };
    while let Ok((ts_ns, note)) = rx.recv() {
        let body = body(&origin, ts_ns, &note);
        let mut wait = BACKOFF_FIRST;
        loop {
            let sent = rt.block_on(async {
                tokio::time::timeout(PUSH_TIMEOUT, push(&endpoint, &target, body.clone())).await
            });
            match sent {
                Ok(Ok(())) => {
                    metrics.seal.exports_push.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(e)) => warn_failed(&metrics, &e.to_string(), wait),
                Err(_) => warn_failed(&metrics, "timed out", wait),
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(BACKOFF_MAX);
        }
    }
}

fn warn_failed(metrics: &Metrics, e: &str, retry: Duration) {
    metrics
        .seal
        .export_failures_push
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(error = %e, retry_in_s = retry.as_secs(), "checkpoint push failed");
}

/// The Loki JSON push body: one stream, one line (the note).
fn body(origin: &str, ts_ns: i64, note: &str) -> Vec<u8> {
    serde_json::json!({
        "streams": [{
            "stream": {"job": "daftari-checkpoint", "origin": origin},
            "values": [[ts_ns.to_string(), note]],
        }]
    })
    .to_string()
    .into_bytes()
}

async fn push(ep: &Endpoint, target: &PushTarget, body: Vec<u8>) -> Result<(), SealError> {
    use http_body_util::Full;
    let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| SealError::Remote(format!("connect: {e}")))?;
    let mut req = http::Request::post(format!("{}/loki/api/v1/push", ep.prefix))
        .header(http::header::HOST, format!("{}:{}", ep.host, ep.port))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", target.token),
        );
    if let Some(t) = &target.tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| SealError::Remote(e.to_string()))?;
    let status = match &ep.tls {
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(ep.host.clone())
                .map_err(|e| SealError::Remote(format!("server name: {e}")))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| SealError::Remote(format!("tls: {e}")))?;
            send(hyper_util::rt::TokioIo::new(stream), req).await?
        }
        None => send(hyper_util::rt::TokioIo::new(tcp), req).await?,
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(SealError::Remote(format!("the endpoint answered {status}")))
    }
}

async fn send<T>(
    io: T,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<http::StatusCode, SealError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SealError::Remote(format!("http: {e}")))?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| SealError::Remote(format!("http: {e}")))?;
    Ok(resp.status())
}
