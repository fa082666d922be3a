//! The `[syslog]` section: the syslog listeners (both off unless set) and their bounds.
//!
//! Owns: its keys, defaults and validation: TLS syslog needs a certificate, a key and the CA
//! that signs senders' client certificates (a sender is known by its certificate); plain TCP
//! and UDP need a source-address map, since nothing else can say who a sender is.
//!
//! Must not: open listeners or read certificates.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, TlsConfig, bad, dur};
use crate::push::syslog::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES};

/// Most syslog connections open at once, over both listeners; more are closed at accept.
/// Key `syslog.max_connections`.
pub const DEFAULT_SYSLOG_MAX_CONNECTIONS: usize = 512;
/// Syslog connections one address may hold: a sender uses one (rsyslog, syslog-ng) or a few.
/// Key `syslog.max_connections_per_peer`.
pub const DEFAULT_SYSLOG_MAX_CONNECTIONS_PER_PEER: usize = 8;
/// Smallest `max_message_bytes` accepted: RFC 5425's 2,048 bytes every receiver must take.
const MIN_MESSAGE_BYTES: usize = 2048;

/// The syslog listeners' configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyslogConfig {
    /// Syslog over TLS (RFC 5425), senders known by client certificate.
    pub listen: Option<SocketAddr>,
    pub tls: Option<TlsConfig>,
    /// Plain TCP (RFC 6587), senders known by source address only.
    pub tcp_listen: Option<SocketAddr>,
    /// UDP (RFC 5426), senders known by a source address anyone can forge.
    pub udp_listen: Option<SocketAddr>,
    /// Source address → push token name, for plain TCP.
    pub sources: BTreeMap<IpAddr, String>,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyslogFile {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tcp_listen: Option<String>,
    udp_listen: Option<String>,
    #[serde(default)]
    sources: BTreeMap<String, String>,
    max_message_bytes: Option<usize>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
}

fn addr(key: &'static str, v: &Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    v.as_ref()
        .map(|t| {
            t.parse()
                .map_err(|_| bad(key, format!("{t:?} is not an IP:port address")))
        })
        .transpose()
}

pub(super) fn build(f: &SyslogFile) -> Result<SyslogConfig, ConfigError> {
    let listen = addr("syslog.listen", &f.listen)?;
    let tcp_listen = addr("syslog.tcp_listen", &f.tcp_listen)?;
    let udp_listen = addr("syslog.udp_listen", &f.udp_listen)?;
    let tls = match (&f.tls_cert, &f.tls_key, &f.tls_client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(ca.clone()),
        }),
        (None, None, None) => None,
        _ => {
            return Err(bad(
                "syslog.tls_client_ca",
                "TLS syslog needs syslog.tls_cert, syslog.tls_key and syslog.tls_client_ca \
                 (senders are known by their client certificates)",
            ));
        }
    };
    if listen.is_some() != tls.is_some() {
        return Err(bad(
            "syslog.listen",
            "set syslog.listen together with syslog.tls_cert, syslog.tls_key and \
             syslog.tls_client_ca",
        ));
    }
    let mut sources = BTreeMap::new();
    for (ip, token) in &f.sources {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad("syslog.sources", format!("{ip:?} is not an IP address")))?;
        sources.insert(ip, token.clone());
    }
    if (tcp_listen.is_some() || udp_listen.is_some()) && sources.is_empty() {
        return Err(bad(
            "syslog.sources",
            "plain TCP and UDP syslog need syslog.sources: each sender's address and the push \
             token it stands for",
        ));
    }
    let out = SyslogConfig {
        listen,
        tls,
        tcp_listen,
        udp_listen,
        sources,
        max_message_bytes: f.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        idle_timeout: dur("syslog.idle_timeout", &f.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
        max_connections: f.max_connections.unwrap_or(DEFAULT_SYSLOG_MAX_CONNECTIONS),
        max_connections_per_peer: f
            .max_connections_per_peer
            .unwrap_or(DEFAULT_SYSLOG_MAX_CONNECTIONS_PER_PEER),
    };
    if !(MIN_MESSAGE_BYTES..=16 << 20).contains(&out.max_message_bytes) {
        return Err(bad(
            "syslog.max_message_bytes",
            format!("between {MIN_MESSAGE_BYTES} and 16777216"),
        ));
    }
    if out.max_connections == 0 || out.max_connections_per_peer == 0 {
        return Err(bad("syslog.max_connections", "must be at least 1"));
    }
    if out.idle_timeout.is_zero() {
        return Err(bad("syslog.idle_timeout", "must be more than zero"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Overrides};

    #[test]
    fn the_annotated_section_is_off_and_every_key_of_it_parses() {
        let text = include_str!("../../deploy/daftari.toml");
        let c = Config::from_toml(text, &Overrides::default()).unwrap();
        assert!(c.syslog.listen.is_none() && c.syslog.tcp_listen.is_none());
        // Every syslog key, uncommented, parses into a working section.
        let syslog = text.split("[syslog]").nth(1).unwrap();
        let key = regex::Regex::new(r#"^# (("[^"]+"|[a-z_]+) = |\[syslog\.sources\]$)"#).unwrap();
        let on: String = syslog
            .lines()
            .map(|l| if key.is_match(l) { &l[2..] } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(&format!("[syslog]{on}"), &Overrides::default()).unwrap();
        assert_eq!(c.syslog.listen.map(|a| a.port()), Some(6514));
        assert_eq!(c.syslog.tcp_listen.map(|a| a.port()), Some(601));
        assert_eq!(c.syslog.sources.len(), 1);
    }

    #[test]
    fn listeners_need_what_identifies_their_senders() {
        let bad = |t: &str| {
            Config::from_toml(t, &Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[syslog]\nlisten = \"127.0.0.1:6514\"").contains("syslog.listen"));
        let e = bad("[syslog]\nlisten = \"127.0.0.1:6514\"\ntls_cert = \"c\"\ntls_key = \"k\"");
        assert!(e.contains("tls_client_ca"), "{e}");
        assert!(bad("[syslog]\ntcp_listen = \"127.0.0.1:601\"").contains("syslog.sources"));
        assert!(bad("[syslog]\nudp_listen = \"127.0.0.1:514\"").contains("syslog.sources"));
        let e = bad("[syslog]\ntcp_listen = \"127.0.0.1:601\"\n[syslog.sources]\n\"x\" = \"t\"");
        assert!(e.contains("not an IP address"), "{e}");
        assert!(bad("[syslog]\nmax_message_bytes = 100").contains("max_message_bytes"));
    }
}
