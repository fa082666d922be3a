//! The server's configuration: a TOML file and command-line flags into one validated
//! [`Config`], with every default a named constant.
//!
//! Owns: the config file format (annotated in `deploy/daftari.toml`), the precedence (flags
//! override the file, the file overrides the defaults), errors that name the key at fault, and
//! the rule that the local listener binds a loopback address only.
//!
//! Must not: read anything but its inputs, or open listeners and files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::push::Limits;
use crate::store::StoreConfig;

mod connections;
mod duration;
mod limits;
mod query;
mod seal;
mod syslog;

pub use connections::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_PEER, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TLS_HANDSHAKE_TIMEOUT, ServerLimits,
};
pub use duration::parse_duration;
pub use query::QueryConfig;
pub use syslog::SyslogConfig;

/// Where a fresh server keeps its ledger and token database. Key `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Loki's own port, so agents' default URLs work. Key `push.listen`.
pub const DEFAULT_PUSH_LISTEN: &str = "127.0.0.1:3100";
/// The loopback-only listener for metrics, queries and administration. Key `local.listen`.
pub const DEFAULT_LOCAL_LISTEN: &str = "127.0.0.1:3101";

/// Errors in the configuration; each names the key (or flag) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("config key `{key}`: {detail}")]
    Key { key: &'static str, detail: String },
}

fn bad(key: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key,
        detail: detail.into(),
    }
}

/// Log output format for daftari's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// TLS for the push listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key, re-read on SIGHUP.
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The validated configuration of `daftari serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub push_listen: SocketAddr,
    pub local_listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub server: ServerLimits,
    pub limits: Limits,
    pub store: StoreConfig,
    pub query: QueryConfig,
    pub syslog: SyslogConfig,
    /// How long an epoch lasts before it is sealed.
    pub epoch_interval: Duration,
    /// Print each checkpoint on stdout as a JSON line.
    pub checkpoint_stdout: bool,
    /// A checkpoint after every this many epochs.
    pub checkpoint_every: u64,
    /// Remove whole closed segments once this old (`None`: keep forever).
    pub retention: Option<Duration>,
    /// Free space below which pushes are refused so that sealing can go on.
    pub disk_reserve: crate::store::Reserve,
    /// Push each checkpoint to another Loki-compatible endpoint.
    pub checkpoint_push: Option<crate::seal::remote::PushTarget>,
    pub log_format: LogFormat,
    /// The time the sealer runs on: always the system's, but for in-process tests.
    pub clock: crate::clock::Clock,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub push_listen: Option<String>,
    pub local_listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub epoch_interval: Option<Duration>,
    pub retention: Option<Duration>,
    pub disk_reserve: Option<crate::store::Reserve>,
}

/// The file's shape. Unknown keys are errors, so a typo does not silently keep a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    origin: Option<String>,
    log_format: Option<LogFormat>,
    shutdown_grace: Option<String>,
    #[serde(default)]
    push: PushFile,
    #[serde(default)]
    local: LocalFile,
    #[serde(default)]
    limits: limits::LimitsFile,
    #[serde(default)]
    store: StoreFile,
    #[serde(default)]
    query: query::QueryFile,
    #[serde(default)]
    seal: seal::SealFile,
    #[serde(default)]
    syslog: syslog::SyslogFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushFile {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
    first_byte_timeout: Option<String>,
    tls_handshake_timeout: Option<String>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_header_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalFile {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    segment_max_bytes: Option<u64>,
    segment_format: Option<u32>,
    segment_zstd_level: Option<i32>,
    segment_max_age: Option<String>,
    queue_max_batches: Option<usize>,
    queue_max_bytes: Option<usize>,
    group_max_entries: Option<usize>,
    group_max_bytes: Option<usize>,
    group_linger: Option<String>,
    retention: Option<String>,
    disk_reserve: Option<String>,
}

impl Config {
    /// Reads `path` (if given), applies `flags`, and validates the result.
    pub fn load(path: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => parse_file(p)?,
            None => File::default(),
        };
        build(file, flags)
    }

    /// Parses `text` as a config file (for tests and `deploy/daftari.toml` checks).
    pub fn from_toml(text: &str, flags: &Overrides) -> Result<Self, ConfigError> {
        let file = toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::from("<text>"),
            detail: e.to_string(),
        })?;
        build(file, flags)
    }
}

fn parse_file(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn build(f: File, flags: &Overrides) -> Result<Config, ConfigError> {
    let data_dir = flags
        .data_dir
        .clone()
        .or(f.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let push_listen = addr(
        "push.listen",
        flags.push_listen.as_deref(),
        f.push.listen.as_deref(),
        DEFAULT_PUSH_LISTEN,
    )?;
    let local_listen = addr(
        "local.listen",
        flags.local_listen.as_deref(),
        f.local.listen.as_deref(),
        DEFAULT_LOCAL_LISTEN,
    )?;
    if !local_listen.ip().is_loopback() {
        return Err(bad(
            "local.listen",
            format!(
                "{local_listen} is not a loopback address; the local listener serves \
                 administration and must bind 127.0.0.1 or ::1"
            ),
        ));
    }
    let tls = tls(&f.push, flags)?;
    let server = connections::build(&f.push, &f.shutdown_grace)?;
    // `push.body_timeout` is read once, here: the push plane's limits carry it.
    let limits = limits::build(&f.limits, server.body_timeout)?;
    let mut store = StoreConfig::new(&data_dir);
    apply_store(&mut store, &f.store, f.origin.clone())?;
    store.validate().map_err(|e| bad("store", e.to_string()))?;
    Ok(Config {
        data_dir,
        push_listen,
        local_listen,
        tls,
        server,
        limits,
        store,
        query: query::build(&f.query)?,
        syslog: syslog::build(&f.syslog)?,
        epoch_interval: seal::epoch_interval(&f.seal, flags.epoch_interval)?,
        checkpoint_stdout: seal::checkpoint_stdout(&f.seal),
        checkpoint_every: seal::checkpoint_every(&f.seal)?,
        retention: retention(&f.store, flags.retention)?,
        disk_reserve: disk_reserve(&f.store, flags.disk_reserve)?,
        checkpoint_push: seal::checkpoint_push(&f.seal)?,
        log_format: flags.log_format.or(f.log_format).unwrap_or(LogFormat::Text),
        clock: crate::clock::Clock::system(),
    })
}

fn addr(
    key: &'static str,
    flag: Option<&str>,
    file: Option<&str>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = flag.or(file).unwrap_or(default);
    text.parse()
        .map_err(|_| bad(key, format!("{text:?} is not an IP:port address")))
}

fn tls(p: &PushFile, flags: &Overrides) -> Result<Option<TlsConfig>, ConfigError> {
    let cert = flags.tls_cert.clone().or(p.tls_cert.clone());
    let key = flags.tls_key.clone().or(p.tls_key.clone());
    let client_ca = flags.tls_client_ca.clone().or(p.tls_client_ca.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err(bad(
            "push.tls_client_ca",
            "client certificates need TLS: set push.tls_cert and push.tls_key too",
        )),
        (Some(_), None) => Err(bad("push.tls_key", "push.tls_cert is set but not the key")),
        (None, Some(_)) => Err(bad("push.tls_cert", "push.tls_key is set but not the cert")),
    }
}

/// `store.retention` (or `--retention`): absent or "0" keeps everything forever.
fn retention(f: &StoreFile, flag: Option<Duration>) -> Result<Option<Duration>, ConfigError> {
    let d = match flag {
        Some(d) => d,
        None => dur("store.retention", &f.retention, Duration::ZERO)?,
    };
    Ok((!d.is_zero()).then_some(d))
}

/// `store.disk_reserve` (or `--disk-reserve`): a size or a percentage; "0" turns it off.
fn disk_reserve(
    f: &StoreFile,
    flag: Option<crate::store::Reserve>,
) -> Result<crate::store::Reserve, ConfigError> {
    if let Some(r) = flag {
        return Ok(r);
    }
    match &f.disk_reserve {
        None => Ok(crate::store::DEFAULT_DISK_RESERVE),
        Some(text) => crate::store::Reserve::parse(text).ok_or_else(|| {
            bad(
                "store.disk_reserve",
                format!("{text:?} is not a size such as \"1GiB\" or a share such as \"5%\" (at most 50%)"),
            )
        }),
    }
}

fn apply_store(
    s: &mut StoreConfig,
    f: &StoreFile,
    origin: Option<String>,
) -> Result<(), ConfigError> {
    if let Some(o) = origin {
        s.origin = o;
    }
    if let Some(v) = f.segment_max_bytes {
        s.segment_max_bytes = v;
    }
    if let Some(v) = f.segment_format {
        s.segment_format = v;
    }
    if let Some(v) = f.segment_zstd_level {
        s.segment_zstd_level = v;
    }
    s.segment_max_age = dur(
        "store.segment_max_age",
        &f.segment_max_age,
        s.segment_max_age,
    )?;
    if let Some(v) = f.queue_max_batches {
        s.queue_max_batches = v;
    }
    if let Some(v) = f.queue_max_bytes {
        s.queue_max_bytes = v;
    }
    if let Some(v) = f.group_max_entries {
        s.group_max_entries = v;
    }
    if let Some(v) = f.group_max_bytes {
        s.group_max_bytes = v;
    }
    s.group_linger = dur("store.group_linger", &f.group_linger, s.group_linger)?;
    Ok(())
}

fn dur(key: &'static str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(text) => parse_duration(text).ok_or_else(|| {
            bad(
                key,
                format!("{text:?} is not a duration such as \"500ms\", \"10s\", \"5m\", \"1h30m\""),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_at_fault() {
        let flags = Overrides::default();
        let e = Config::from_toml("[limits]\ncreation_grace_period = \"soon\"", &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.creation_grace_period"), "{e}");
        let e = Config::from_toml("[local]\nlisten = \"0.0.0.0:3101\"", &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("local.listen") && e.contains("loopback"), "{e}");
        let e = Config::from_toml("[push]\nlisten = \"x\"", &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("push.listen"), "{e}");
        let e = Config::from_toml("[push]\nlisen = \"x\"", &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn the_body_timeout_is_read_once_into_the_push_limits() {
        let flags = Overrides::default();
        let c = Config::from_toml("[push]\nbody_timeout = \"45s\"", &flags).unwrap();
        assert_eq!(c.server.body_timeout, Duration::from_secs(45));
        assert_eq!(c.limits.body_timeout, Duration::from_secs(45));
        let c = Config::from_toml("", &flags).unwrap();
        assert_eq!(c.limits.body_timeout, crate::push::DEFAULT_BODY_TIMEOUT);
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Overrides {
            push_listen: Some("127.0.0.1:9999".into()),
            ..Overrides::default()
        };
        let c = Config::from_toml("[push]\nlisten = \"127.0.0.1:1234\"", &flags).unwrap();
        assert_eq!(c.push_listen.port(), 9999);
        assert_eq!(c.local_listen.to_string(), DEFAULT_LOCAL_LISTEN);
    }

    #[test]
    fn the_annotated_example_parses_and_sets_what_it_says() {
        let text = include_str!("../../deploy/daftari.toml");
        let c = Config::from_toml(text, &Overrides::default()).unwrap();
        assert_eq!(c.push_listen.to_string(), "0.0.0.0:3100");
        assert_eq!(c.local_listen.to_string(), DEFAULT_LOCAL_LISTEN);
        assert!(c.tls.is_some());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(
            c.store.segment_max_bytes,
            crate::store::DEFAULT_SEGMENT_MAX_BYTES
        );
        assert_eq!(c.server.header_timeout, DEFAULT_HEADER_TIMEOUT);
        assert_eq!(
            c.server.max_connections_per_peer,
            DEFAULT_MAX_CONNECTIONS_PER_PEER
        );
        assert_eq!(c.server.first_byte_timeout, DEFAULT_FIRST_BYTE_TIMEOUT);
        assert_eq!(
            c.server.tls_handshake_timeout,
            DEFAULT_TLS_HANDSHAKE_TIMEOUT
        );
        assert_eq!(c.query, QueryConfig::default());
        assert_eq!(c.disk_reserve, crate::store::DEFAULT_DISK_RESERVE);
        assert_eq!(c.syslog, syslog::build(&Default::default()).unwrap());
    }

    #[test]
    fn a_push_memory_budget_below_the_largest_request_is_refused() {
        let flags = Overrides::default();
        let text = "[limits]\nmax_body_bytes = 1000\nmax_decompressed_bytes = 1000\n\
                    max_entries_per_request = 10\nmax_streams_per_request = 10\n\
                    max_inflight_bytes = ";
        let e = Config::from_toml(&format!("{text}12679"), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.max_inflight_bytes") && e.contains("12680"),
            "{e}"
        );
        let c = Config::from_toml(&format!("{text}12680"), &flags).unwrap();
        assert_eq!(c.limits.max_inflight_bytes, 12680);
        assert_eq!(c.limits.token_max_inflight_bytes, 12680);
        let share = format!("{text}20000\ntoken_max_inflight_bytes = 12000");
        let e = Config::from_toml(&share, &flags).unwrap_err().to_string();
        assert!(e.contains("limits.token_max_inflight_bytes"), "{e}");
    }

    #[test]
    fn the_disk_reserve_takes_a_size_or_a_share_and_names_its_key_when_wrong() {
        use crate::store::Reserve;
        let flags = Overrides::default();
        let c = Config::from_toml("[store]\ndisk_reserve = \"5%\"", &flags).unwrap();
        assert_eq!(c.disk_reserve, Reserve::Percent(5.0));
        let e = Config::from_toml("[store]\ndisk_reserve = \"lots\"", &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.disk_reserve"), "{e}");
        let flags = Overrides {
            disk_reserve: Some(Reserve::Bytes(0)),
            ..Overrides::default()
        };
        let c = Config::from_toml("[store]\ndisk_reserve = \"5%\"", &flags).unwrap();
        assert_eq!(c.disk_reserve, Reserve::Bytes(0));
    }
}
