//! The server: open the ledger and tokens, serve the push, local and remote listeners, shut
//! down in order.
//!
//! Owns: the startup and shutdown order, as named steps in [`run`] (`open`, the endpoints,
//! `follow_control`, `Threads::stop_then_close`). Listeners arrive
//! bound (so tests use port 0) and control messages arrive on a channel (so tests reload and
//! stop at will); signals are the CLI's business.
//!
//! Shutdown: `/ready` fails, listeners stop accepting, in-flight pushes finish (each answered
//! only once durable) within the grace period, token state is flushed, the last epoch gets a
//! shutdown seal, and the ledger closes cleanly.
//!
//! Must not: contain handlers or SQL.
//!
//! Layout:
//! - `endpoints`: each listener's router, TLS and connection limits;
//! - `accept`: the accept loop (connection limit, TLS, HTTP/1.1 + HTTP/2, draining);
//! - `tls`: certificates, client certificates, reload;
//! - `tokens`: keeping the verifier and the admin stream in step with the token database;
//! - `local`: the loopback-only listener's own routes (`/ready`, `/metrics`);
//! - `read`: the query API on the local and remote read listeners, read tokens, and the
//!   audit record of every read.

mod accept;
mod endpoints;
mod local;
mod syslog;

/// What `daftari serve` prints on stderr once a listener is bound, before its URL (a scheme
/// such as `http://`, `https://`, `tls://` or `tcp://`, and the address): the contract that
/// scripts, the load commands and the tests read to find a server started on port 0.
pub const PUSH_BANNER: &str = "daftari: push listener on ";
pub const LOCAL_BANNER: &str = "daftari: local listener on ";
pub const REMOTE_BANNER: &str = "daftari: remote read listener on ";
pub const SYSLOG_TLS_BANNER: &str = "daftari: syslog TLS listener on ";
pub const SYSLOG_TCP_BANNER: &str = "daftari: syslog TCP listener on ";
pub const SYSLOG_UDP_BANNER: &str = "daftari: syslog UDP listener on ";

/// The address a banner line announces, if `line` is the banner `prefix`.
pub fn banner_addr(line: &str, prefix: &str) -> Option<std::net::SocketAddr> {
    let url = line.strip_prefix(prefix)?;
    let (_, addr) = url.split_once("://")?;
    addr.parse().ok()
}
pub mod read;
pub mod tls;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::query::{Engine, QueryState};
use crate::seal::Sealer;
use crate::seal::checkpoints::Exporter;
use crate::seal::note::NoteSigner;
use crate::store;
use crate::token::{Manager, Verifier};
use endpoints::{Shared, load_tls};

/// What the server can be told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the TLS certificate and key (SIGHUP).
    Reload,
    /// Drain and stop (SIGTERM, SIGINT).
    Shutdown,
}

/// The listeners, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    pub push: TcpListener,
    pub local: TcpListener,
    /// The remote read listener, when `query.remote_listen` is set.
    pub remote: Option<TcpListener>,
    /// The syslog listeners, when `syslog.listen` (TLS) or `syslog.tcp_listen` is set.
    pub syslog_tls: Option<TcpListener>,
    pub syslog_tcp: Option<TcpListener>,
    /// The UDP syslog socket, when `syslog.udp_listen` is set.
    pub syslog_udp: Option<tokio::net::UdpSocket>,
}

async fn bind_optional(
    addr: Option<std::net::SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    use anyhow::Context;
    match addr {
        None => Ok(None),
        Some(a) => Ok(Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("bind {what} {a}"))?,
        )),
    }
}

impl Listeners {
    /// Binds the configured addresses. The local address was checked to be loopback when
    /// the config was validated; it is checked again here, on the address actually bound.
    pub async fn bind(cfg: &Config) -> anyhow::Result<Listeners> {
        use anyhow::Context;
        let push = TcpListener::bind(cfg.push_listen)
            .await
            .with_context(|| format!("bind push listener {}", cfg.push_listen))?;
        let local = TcpListener::bind(cfg.local_listen)
            .await
            .with_context(|| format!("bind local listener {}", cfg.local_listen))?;
        let bound = local.local_addr()?;
        anyhow::ensure!(
            bound.ip().is_loopback(),
            "local listener bound {bound}, which is not a loopback address"
        );
        Ok(Listeners {
            push,
            local,
            remote: bind_optional(cfg.query.remote_listen, "remote read listener").await?,
            syslog_tls: bind_optional(cfg.syslog.listen, "syslog TLS listener").await?,
            syslog_tcp: bind_optional(cfg.syslog.tcp_listen, "syslog TCP listener").await?,
            syslog_udp: match cfg.syslog.udp_listen {
                None => None,
                Some(a) => Some(
                    tokio::net::UdpSocket::bind(a)
                        .await
                        .with_context(|| format!("bind syslog UDP listener {a}"))?,
                ),
            },
        })
    }
}

/// Checks what the configuration names on disk (the TLS certificates, keys and client CAs
/// of the push and remote listeners) before anything is created or announced: a server
/// that cannot serve must not print a listener line or leave a new log behind.
pub fn preflight(cfg: &Config) -> anyhow::Result<()> {
    use anyhow::Context;
    load_tls(&cfg.tls).context("[tls]")?;
    load_tls(&cfg.query.remote_tls).context("[query] remote TLS")?;
    load_tls(&cfg.syslog.tls).context("[syslog] TLS")?;
    Ok(())
}

/// Runs the server until a [`Control::Shutdown`] arrives (or the channel closes).
pub async fn run(
    cfg: Config,
    listeners: Listeners,
    mut control: mpsc::Receiver<Control>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let Opened {
        ledger,
        appender,
        reader,
        verifier,
        sync,
        sealer,
    } = open(&cfg, Arc::clone(&metrics)).await?;
    let tls = load_tls(&cfg.tls)?;
    let remote_tls = load_tls(&cfg.query.remote_tls)?;
    let syslog_tls = load_tls(&cfg.syslog.tls)?;
    let q = &cfg.query;
    let shared = Shared {
        cfg: &cfg,
        metrics: Arc::clone(&metrics),
        ready: Arc::new(AtomicBool::new(true)),
        reserve: Arc::new(store::DiskReserve::new(&cfg.data_dir, cfg.disk_reserve)),
        query: QueryState::new(
            Engine::new(reader, q.limits.clone()),
            q.max_concurrent,
            q.max_concurrent_tails,
        ),
        appender,
        verifier,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let push_state = shared.push_state();
    let push_ep = shared.push_endpoint(listeners.push, tls.clone(), Arc::clone(&push_state));
    let syslog_tasks = syslog::spawn(
        syslog::Syslog::new(&cfg, push_state, Arc::clone(&metrics)),
        syslog::Sockets {
            tls: listeners.syslog_tls.map(|l| (l, syslog_tls.clone())),
            tcp: listeners.syslog_tcp,
            udp: listeners.syslog_udp,
        },
        &stop_rx,
    );
    let local_ep = shared.local_endpoint(listeners.local);
    let remote_task = listeners.remote.map(|listener| {
        let ep = shared.remote_endpoint(listener, remote_tls.clone());
        tokio::spawn(accept::serve(ep, stop_rx.clone()))
    });
    let Shared { ready, reserve, .. } = shared;
    let space_task = tokio::spawn(watch_space(reserve, stop_rx.clone()));
    let push_task = tokio::spawn(accept::serve(push_ep, stop_rx.clone()));
    let local_task = tokio::spawn(accept::serve(local_ep, stop_rx));
    let threads = Threads::start(sealer, sync, &cfg)?;

    follow_control(
        &mut control,
        tls.as_deref(),
        [remote_tls.as_deref(), syslog_tls.as_deref()],
        &metrics,
    )
    .await;

    tracing::info!("shutting down: draining in-flight pushes");
    ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    let tasks = [
        Some(push_task),
        Some(local_task),
        remote_task,
        Some(space_task),
    ];
    for t in tasks.into_iter().flatten().chain(syslog_tasks) {
        let _ = t.await;
    }
    tokio::task::spawn_blocking(move || threads.stop_then_close(ledger)).await??;
    tracing::info!("stopped: the ledger is closed");
    Ok(())
}

/// What the server runs on, opened from the data directory.
struct Opened {
    ledger: store::Ledger,
    appender: store::Appender,
    reader: store::Reader,
    verifier: Arc<Verifier>,
    sync: tokens::Sync,
    sealer: Sealer,
}

/// Opens the ledger (recovering it), the seal chain and the token database, and loads the
/// tokens, on a blocking thread.
async fn open(cfg: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Opened> {
    use anyhow::Context;
    let mut store_cfg = cfg.store.clone();
    store_cfg.clock = cfg.clock.clone();
    let exports = Exports {
        stdout: cfg.checkpoint_stdout,
        every: cfg.checkpoint_every,
        push: cfg.checkpoint_push.clone(),
        metrics,
    };
    let retention = cfg.retention;
    let clock = cfg.clock.clone();
    let data_dir = cfg.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let (mut ledger, appender, reader) = store::open(store_cfg).context("open the ledger")?;
        let pruner = ledger.pruner().context("the ledger's pruner")?;
        let sealer = open_sealer(&data_dir, &reader, exports)?
            .with_clock(clock)
            .with_retention(retention, tokens::admin_log(appender.clone()), pruner);
        let manager = Manager::open(&data_dir).context("open the token database")?;
        let verifier = Arc::new(Verifier::new(manager.key().clone()));
        let mut sync = tokens::Sync::new(manager, Arc::clone(&verifier), appender.clone());
        sync.tick().context("load tokens")?;
        anyhow::Ok(Opened {
            ledger,
            appender,
            reader,
            verifier,
            sync,
            sealer,
        })
    })
    .await?
}

/// Reloads certificates on `Reload` (the push listener's, saying so if it has none, and the
/// remote and syslog listeners' where they have any) until `Shutdown` or the sender is gone.
async fn follow_control(
    control: &mut mpsc::Receiver<Control>,
    push: Option<&tls::TlsState>,
    others: [Option<&tls::TlsState>; 2],
    metrics: &Metrics,
) {
    while let Some(msg) = control.recv().await {
        match msg {
            Control::Reload => {
                reload(push, metrics);
                for t in others.into_iter().flatten() {
                    reload(Some(t), metrics);
                }
            }
            Control::Shutdown => return,
        }
    }
}

/// The server's background threads, each with its stop flag.
struct Threads {
    sync: (Arc<AtomicBool>, std::thread::JoinHandle<()>),
    seal: (Arc<AtomicBool>, std::thread::JoinHandle<()>),
}

impl Threads {
    /// Starts the sealer and the token sync.
    fn start(sealer: Sealer, sync: tokens::Sync, cfg: &Config) -> anyhow::Result<Threads> {
        use anyhow::Context;
        let seal_stop = Arc::new(AtomicBool::new(false));
        let seal_thread = sealer
            .spawn(cfg.epoch_interval, Arc::clone(&seal_stop))
            .context("start the sealer")?;
        let sync_stop = Arc::new(AtomicBool::new(false));
        let sync_thread = tokens::spawn(sync, Arc::clone(&sync_stop), cfg.data_dir.clone())
            .context("start the token sync thread")?;
        Ok(Threads {
            sync: (sync_stop, sync_thread),
            seal: (seal_stop, seal_thread),
        })
    }

    /// Stops the token sync, then the sealer (whose shutdown seal covers everything
    /// acknowledged, all of it committed by now), then closes the ledger.
    fn stop_then_close(self, ledger: store::Ledger) -> anyhow::Result<()> {
        use anyhow::Context;
        self.sync.0.store(true, Ordering::Release);
        let _ = self.sync.1.join();
        self.seal.0.store(true, Ordering::Release);
        let _ = self.seal.1.join();
        ledger.close().context("close the ledger")
    }
}

/// Re-reads the free space on a timer, so that pushes refused for lack of space are admitted
/// again (and the change is logged and shown in `/metrics`) even while no push arrives.
async fn watch_space(reserve: Arc<store::DiskReserve>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SPACE_WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let r = Arc::clone(&reserve);
                let _ = tokio::task::spawn_blocking(move || r.refresh()).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// How often the free space is read with no push arriving.
const SPACE_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Where checkpoints go.
struct Exports {
    stdout: bool,
    every: u64,
    push: Option<crate::seal::remote::PushTarget>,
    metrics: Arc<Metrics>,
}

/// Opens the seal chain for the ledger (recovering from any crash point); on the first start
/// prints the epoch-0 public key, which the operator must keep off the box.
fn open_sealer(
    data_dir: &std::path::Path,
    reader: &store::Reader,
    exports: Exports,
) -> anyhow::Result<Sealer> {
    use anyhow::Context;
    let origin = reader
        .segments()
        .context("read the ledger's origin")?
        .first()
        .map(|s| s.meta.origin.clone())
        .unwrap_or_default();
    let (sealer, created) =
        Sealer::open(data_dir, &origin, reader.index()?).map_err(anyhow::Error::msg)?;
    let (signer, vkey) = NoteSigner::open(data_dir, &origin).map_err(anyhow::Error::msg)?;
    if let Some(vkey) = vkey {
        eprintln!("daftari: new checkpoint key; verifier key: {vkey}");
    }
    let pusher = match exports.push {
        Some(t) => Some(
            crate::seal::remote::Pusher::start(t, &origin, Arc::clone(&exports.metrics))
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let exporter = Exporter::new(signer, data_dir, exports.stdout, pusher, exports.metrics)
        .every(exports.every);
    let sealer = sealer.with_exporter(exporter);
    if let Some(pk) = created {
        eprintln!(
            "daftari: new seal chain; epoch-0 public key: {}",
            crate::seal::encode_pk(&pk)
        );
        eprintln!(
            "daftari: keep a copy of that key OFF this box: `daftari verify --pubkey <key>` \
             checks the seals with it (a convenience copy is in {})",
            data_dir.join(crate::seal::EPOCH0_PUB_FILE).display()
        );
    }
    tracing::info!(epoch = sealer.epoch(), "sealing");
    Ok(sealer)
}

fn reload(tls: Option<&tls::TlsState>, metrics: &Metrics) {
    let Some(tls) = tls else {
        tracing::info!("reload requested; no TLS configured, nothing to reload");
        return;
    };
    match tls.reload() {
        Ok(()) => {
            metrics.tls_reloads.fetch_add(1, Ordering::Relaxed);
            tracing::info!("TLS certificate reloaded");
        }
        Err(e) => {
            metrics.tls_reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate");
        }
    }
}
