//! The `[query]` section: the read plane's limits and the optional remote read listener.
//!
//! Owns: its keys, defaults (named in `query`) and validation.
//!
//! Must not: open listeners or read certificates.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, TlsConfig, bad, dur};
use crate::query::{self, Limits, engine};

/// The read plane's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// The remote read listener (read tokens only), if any.
    pub remote_listen: Option<SocketAddr>,
    /// TLS of the remote read listener.
    pub remote_tls: Option<TlsConfig>,
    pub limits: Limits,
    pub max_concurrent: usize,
    /// Requests one read token may have running on the remote listener at once; more wait.
    pub max_concurrent_per_token: usize,
    /// Connections one address may hold open on the remote read listener.
    pub max_connections_per_peer: usize,
    /// Live tails one read token may hold open on the remote listener.
    pub max_concurrent_tails_per_token: usize,
    pub max_concurrent_tails: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            remote_listen: None,
            remote_tls: None,
            limits: Limits::default(),
            max_concurrent: query::DEFAULT_MAX_CONCURRENT,
            max_concurrent_per_token: query::DEFAULT_MAX_CONCURRENT_PER_TOKEN,
            max_connections_per_peer: query::DEFAULT_REMOTE_CONNECTIONS_PER_PEER,
            max_concurrent_tails_per_token: query::DEFAULT_MAX_TAILS_PER_TOKEN,
            max_concurrent_tails: query::DEFAULT_MAX_TAILS,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryFile {
    remote_listen: Option<String>,
    remote_tls_cert: Option<PathBuf>,
    remote_tls_key: Option<PathBuf>,
    max_entries_limit_per_query: Option<usize>,
    max_series: Option<usize>,
    max_range_series: Option<usize>,
    max_memory_bytes: Option<usize>,
    scan_workers: Option<usize>,
    timeout: Option<String>,
    max_concurrent: Option<usize>,
    max_concurrent_per_token: Option<usize>,
    max_connections_per_peer: Option<usize>,
    max_concurrent_tails_per_token: Option<usize>,
    max_concurrent_tails: Option<usize>,
}

pub(super) fn build(f: &QueryFile) -> Result<QueryConfig, ConfigError> {
    let d = QueryConfig::default();
    let remote_listen = match &f.remote_listen {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| {
            bad(
                "query.remote_listen",
                format!("{t:?} is not an IP:port address"),
            )
        })?),
    };
    let remote_tls = match (&f.remote_tls_cert, &f.remote_tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(bad(
                "query.remote_tls_key",
                "the cert is set but not the key",
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "query.remote_tls_cert",
                "the key is set but not the cert",
            ));
        }
    };
    if remote_tls.is_some() && remote_listen.is_none() {
        return Err(bad("query.remote_tls_cert", "set query.remote_listen too"));
    }
    let limits = Limits {
        max_entries: f
            .max_entries_limit_per_query
            .unwrap_or(d.limits.max_entries),
        max_series: f.max_series.unwrap_or(d.limits.max_series),
        max_range_series: f
            .max_range_series
            .unwrap_or(engine::DEFAULT_MAX_RANGE_SERIES),
        max_memory_bytes: f
            .max_memory_bytes
            .unwrap_or(engine::DEFAULT_MAX_MEMORY_BYTES),
        scan_workers: f.scan_workers.unwrap_or(engine::DEFAULT_SCAN_WORKERS),
        timeout: dur("query.timeout", &f.timeout, engine::DEFAULT_TIMEOUT)?,
    };
    let out = QueryConfig {
        remote_listen,
        remote_tls,
        limits,
        max_concurrent: f.max_concurrent.unwrap_or(d.max_concurrent),
        max_connections_per_peer: f
            .max_connections_per_peer
            .unwrap_or(d.max_connections_per_peer),
        max_concurrent_tails_per_token: f.max_concurrent_tails_per_token.unwrap_or(
            d.max_concurrent_tails_per_token
                .min(f.max_concurrent_tails.unwrap_or(d.max_concurrent_tails)),
        ),
        max_concurrent_per_token: f.max_concurrent_per_token.unwrap_or(
            d.max_concurrent_per_token
                .min(f.max_concurrent.unwrap_or(d.max_concurrent)),
        ),
        max_concurrent_tails: f.max_concurrent_tails.unwrap_or(d.max_concurrent_tails),
    };
    for (key, v) in [
        ("query.max_entries_limit_per_query", out.limits.max_entries),
        ("query.max_series", out.limits.max_series),
        ("query.max_range_series", out.limits.max_range_series),
        ("query.max_memory_bytes", out.limits.max_memory_bytes),
        ("query.scan_workers", out.limits.scan_workers),
        ("query.max_concurrent", out.max_concurrent),
        (
            "query.max_concurrent_per_token",
            out.max_concurrent_per_token,
        ),
        (
            "query.max_concurrent_tails_per_token",
            out.max_concurrent_tails_per_token,
        ),
        (
            "query.max_connections_per_peer",
            out.max_connections_per_peer,
        ),
        ("query.max_concurrent_tails", out.max_concurrent_tails),
    ] {
        if v == 0 {
            return Err(bad(key, "must be at least 1"));
        }
    }
    if out.limits.scan_workers > crate::store::MAX_SCAN_WORKERS {
        return Err(bad(
            "query.scan_workers",
            format!("at most {}", crate::store::MAX_SCAN_WORKERS),
        ));
    }
    if out.limits.timeout.is_zero() {
        return Err(bad("query.timeout", "must be more than zero"));
    }
    Ok(out)
}
