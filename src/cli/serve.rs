//! `daftari serve [--config FILE] [--data-dir DIR] [--push-listen ADDR] [--local-listen ADDR]
//! [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [--log-format text|json]`.
//!
//! Signals: SIGTERM or SIGINT drains in-flight pushes and closes the ledger; a second one
//! exits at once. SIGHUP reloads the TLS certificate and key.
//!
//! On the first start (no token ever created) it creates the push token `bootstrap`, writes
//! its secret to `<data-dir>/bootstrap-token` (mode 0600) and prints a `curl` line that
//! pushes a test entry with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use daftari::config::{Config, LogFormat, Overrides};
use daftari::server::{
    self, Control, LOCAL_BANNER, Listeners, PUSH_BANNER, REMOTE_BANNER, SYSLOG_TCP_BANNER,
    SYSLOG_TLS_BANNER, SYSLOG_UDP_BANNER,
};
use daftari::token::{self, Kind, Manager};
use tokio::sync::mpsc;

/// File the bootstrap token's secret is written to, inside the data directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap-token";
/// Name of the token created on first start.
pub const BOOTSTRAP_NAME: &str = "bootstrap";
/// Exit code after a second SIGTERM: 128 + 15, as a shell reports a process killed by it.
const EXIT_FORCED: i32 = 143;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config file (see deploy/daftari.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory: ledger segments, token database [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Push listener address [default: 127.0.0.1:3100].
    #[arg(long)]
    push_listen: Option<String>,
    /// Local (loopback-only) listener address [default: 127.0.0.1:3101].
    #[arg(long)]
    local_listen: Option<String>,
    /// PEM certificate chain for TLS on the push listener.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the push listener.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates issued by it (mTLS).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// daftari's own log format [default: text].
    #[arg(long, value_parser = parse_format)]
    log_format: Option<LogFormat>,
    /// Seconds per epoch before it is sealed (1s to 60s; default 10s).
    #[arg(long, value_parser = parse_interval)]
    epoch_interval: Option<std::time::Duration>,
    /// Remove whole closed segments once this old, e.g. 400d (default: keep forever).
    #[arg(long, value_parser = parse_retention)]
    retention: Option<std::time::Duration>,
    /// Refuse pushes (507) while free disk space is below this, so seals and checkpoints
    /// can still be written: a size such as 1GiB or a share such as 5%; 0 turns it off
    /// [default: 1GiB].
    #[arg(long, value_parser = parse_reserve)]
    disk_reserve: Option<daftari::store::Reserve>,
}

fn parse_reserve(s: &str) -> Result<daftari::store::Reserve, String> {
    daftari::store::Reserve::parse(s)
        .ok_or_else(|| "expected a size such as 1GiB or a share such as 5%".into())
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    daftari::config::parse_duration(s).ok_or_else(|| "expected a duration such as 400d".into())
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".into()),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let flags = Overrides {
        data_dir: args.data_dir,
        push_listen: args.push_listen,
        local_listen: args.local_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        log_format: args.log_format,
        epoch_interval: args.epoch_interval,
        retention: args.retention,
        disk_reserve: args.disk_reserve,
    };
    let cfg = Config::load(args.config.as_deref(), &flags)?;
    init_logging(cfg.log_format);
    // The epoch key must not end up in a core file.
    daftari::seal::forbid_core_dumps().context("disable core dumps")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("daftari")
        .build()
        .context("start the runtime")?;
    rt.block_on(serve(cfg))?;
    Ok(0)
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    // Handlers go in before any listener line is printed: a SIGTERM sent as soon as a
    // listener is announced must drain and close, not kill the process.
    let signals = Signals::install().context("install the signal handlers")?;
    server::preflight(&cfg)?;
    let listeners = Listeners::bind(&cfg).await?;
    let push_addr = listeners.push.local_addr()?;
    let local_addr = listeners.local.local_addr()?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    bootstrap(&cfg, push_addr, scheme)?;
    eprintln!("{PUSH_BANNER}{scheme}://{push_addr}");
    eprintln!("{LOCAL_BANNER}http://{local_addr}");
    if let Some(remote) = &listeners.remote {
        let scheme = if cfg.query.remote_tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("{REMOTE_BANNER}{scheme}://{}", remote.local_addr()?);
    }
    if let Some(l) = &listeners.syslog_tls {
        eprintln!("{SYSLOG_TLS_BANNER}tls://{}", l.local_addr()?);
    }
    if let Some(l) = &listeners.syslog_tcp {
        eprintln!("{SYSLOG_TCP_BANNER}tcp://{}", l.local_addr()?);
    }
    if let Some(l) = &listeners.syslog_udp {
        eprintln!("{SYSLOG_UDP_BANNER}udp://{}", l.local_addr()?);
    }
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(signals.forward(tx));
    server::run(cfg, listeners, rx).await
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    daftari::config::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration"))
}

/// The process's stop and reload signals, registered with the runtime.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers now, so that from here on the signals are queued, never fatal.
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Maps signals to control messages; a second stop signal exits at once.
    async fn forward(mut self, tx: mpsc::Sender<Control>) {
        let mut stopping = false;
        loop {
            let msg = tokio::select! {
                _ = self.term.recv() => Control::Shutdown,
                _ = self.int.recv() => Control::Shutdown,
                _ = self.hup.recv() => Control::Reload,
            };
            if msg == Control::Shutdown {
                if stopping {
                    eprintln!("daftari: second stop signal: exiting now");
                    std::process::exit(EXIT_FORCED);
                }
                stopping = true;
            }
            let _ = tx.send(msg).await;
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAFTARI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Creates the first push token if no token was ever created, and says how to use it.
fn bootstrap(cfg: &Config, push_addr: SocketAddr, scheme: &str) -> anyhow::Result<()> {
    let manager = Manager::open(&cfg.data_dir).context("open the token database")?;
    if !manager.is_empty()? {
        return Ok(());
    }
    let path = cfg.data_dir.join(BOOTSTRAP_FILE);
    // A file left by a token database that is gone holds a secret that no longer works.
    let _ = std::fs::remove_file(&path);
    let secret = manager.create(
        BOOTSTRAP_NAME,
        Kind::Push,
        &[],
        None,
        daftari::clock::now_ns(),
    )?;
    token::write_private(&path, format!("{secret}\n").as_bytes())?;
    let host = if push_addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], push_addr.port()))
    } else {
        push_addr
    };
    let cacert = match &cfg.tls {
        Some(t) => format!(" --cacert '{}'", t.cert.display()),
        None => String::new(),
    };
    let token_path = std::path::absolute(&path).unwrap_or(path);
    eprintln!(
        "daftari: first start: created push token \"{BOOTSTRAP_NAME}\"; its secret is in {} \
         (mode 0600). Push a test entry with:",
        token_path.display()
    );
    eprintln!(
        "curl -sS -w '%{{http_code}}\\n'{cacert} -H \"Authorization: Bearer $(cat '{}')\" \
         -H 'Content-Type: application/json' --data-raw \"{{\\\"streams\\\":[{{\\\"stream\\\":\
         {{\\\"job\\\":\\\"daftari-test\\\"}},\\\"values\\\":[[\\\"$(date +%s%N)\\\",\\\"hello \
         from curl\\\"]]}}]}}\" {scheme}://{host}/loki/api/v1/push",
        token_path.display()
    );
    Ok(())
}
