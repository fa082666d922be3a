//! The connection-level bounds of a listener (the `[push]` connection keys and
//! `shutdown_grace`), shared by the push and remote read listeners.
//!
//! Owns: [`ServerLimits`], its defaults and validation.
//!
//! Must not: open listeners or read anything but its input.

use std::time::Duration;

use super::{ConfigError, PushFile, bad, dur};

/// Connection-level bounds of the push listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// Connections one peer address (an IPv6 /64) may hold open at once.
    pub max_connections_per_peer: usize,
    /// How long a new connection may stay silent before its first byte.
    pub first_byte_timeout: Duration,
    /// How long a TLS handshake may take once it started.
    pub tls_handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
}

/// Most connections the push listener holds open at once; more are closed at accept, so
/// sockets and buffers stay bounded. Key `push.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections one peer address may hold open at once (an IPv6 peer counts by its /64): an
/// agent uses one or two, so idle sockets from one rooted host cannot fill the listener.
/// Key `push.max_connections_per_peer` (the remote read listener has its own,
/// `query.max_connections_per_peer`, and shares the push listener's other connection limits).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 32;
/// A new connection that sends nothing within this is closed: agents speak at once, so a
/// silent socket is only holding a slot. Key `push.first_byte_timeout`.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// A TLS handshake must finish within this once its first byte came.
/// Key `push.tls_handshake_timeout`.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must send its request headers within this, or the connection is closed:
/// slow-loris protection. Key `push.header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The push plane's own default (`push::DEFAULT_BODY_TIMEOUT`). Key `push.body_timeout`.
pub use crate::push::DEFAULT_BODY_TIMEOUT;
/// Request headers larger than this are refused; agents send well under 4 KiB.
/// Key `push.max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// How long SIGTERM waits for in-flight pushes to become durable before closing anyway.
/// Key `shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The `[push]` connection keys and `shutdown_grace`, validated.
pub(super) fn build(
    p: &PushFile,
    shutdown_grace: &Option<String>,
) -> Result<ServerLimits, ConfigError> {
    let s = ServerLimits {
        max_connections: p.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        max_connections_per_peer: p
            .max_connections_per_peer
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_PEER),
        first_byte_timeout: dur(
            "push.first_byte_timeout",
            &p.first_byte_timeout,
            DEFAULT_FIRST_BYTE_TIMEOUT,
        )?,
        tls_handshake_timeout: dur(
            "push.tls_handshake_timeout",
            &p.tls_handshake_timeout,
            DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        )?,
        header_timeout: dur(
            "push.header_timeout",
            &p.header_timeout,
            DEFAULT_HEADER_TIMEOUT,
        )?,
        body_timeout: dur("push.body_timeout", &p.body_timeout, DEFAULT_BODY_TIMEOUT)?,
        max_header_bytes: p.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES),
        shutdown_grace: dur("shutdown_grace", shutdown_grace, DEFAULT_SHUTDOWN_GRACE)?,
    };
    if s.max_connections == 0 {
        return Err(bad("push.max_connections", "must be at least 1"));
    }
    if s.max_connections_per_peer == 0 {
        return Err(bad("push.max_connections_per_peer", "must be at least 1"));
    }
    if s.max_header_bytes < 8192 {
        return Err(bad("push.max_header_bytes", "must be at least 8192"));
    }
    for (key, d) in [
        ("push.first_byte_timeout", s.first_byte_timeout),
        ("push.tls_handshake_timeout", s.tls_handshake_timeout),
        ("push.header_timeout", s.header_timeout),
        ("push.body_timeout", s.body_timeout),
    ] {
        if d.is_zero() {
            return Err(bad(key, "must be more than zero"));
        }
    }
    Ok(s)
}
