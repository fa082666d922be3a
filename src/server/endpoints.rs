//! The HTTP listeners' endpoints: which router, TLS and connection limits each one gets.
//!
//! Owns: building the push, local and remote endpoints from what they share (config,
//! metrics, readiness, disk reserve, query state, the appender and the token verifier).
//!
//! Must not: bind sockets or run them (`accept` serves, `run` starts and stops).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::net::TcpListener;

use super::{accept, local, read, tls};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::push::{self, PushState};
use crate::query::QueryState;
use crate::store;
use crate::token::Verifier;

/// A listener's certificate, if it has TLS.
pub(super) fn load_tls(
    t: &Option<crate::config::TlsConfig>,
) -> anyhow::Result<Option<Arc<tls::TlsState>>> {
    Ok(match t {
        Some(t) => Some(Arc::new(
            tls::TlsState::load(t.clone()).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    })
}

/// What the listeners' routers share.
pub(super) struct Shared<'c> {
    pub(super) cfg: &'c Config,
    pub(super) metrics: Arc<Metrics>,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) reserve: Arc<store::DiskReserve>,
    pub(super) query: QueryState,
    pub(super) appender: store::Appender,
    pub(super) verifier: Arc<Verifier>,
}

impl Shared<'_> {
    /// What every push protocol shares (the push listener's and the syslog listeners'): one
    /// budget and one rate per token, appending through the disk reserve.
    pub(super) fn push_state(&self) -> Arc<PushState> {
        Arc::new(PushState::new(
            self.appender.guarded(Arc::clone(&self.reserve)),
            Arc::clone(&self.verifier),
            Arc::clone(&self.metrics),
            self.cfg.limits.clone(),
            Arc::clone(&self.ready),
        ))
    }

    /// The push listener, authenticated by push tokens.
    pub(super) fn push_endpoint(
        &self,
        listener: TcpListener,
        tls: Option<Arc<tls::TlsState>>,
        state: Arc<PushState>,
    ) -> accept::Endpoint {
        accept::Endpoint {
            name: "push",
            listener,
            app: push::router(state),
            tls,
            limits: self.cfg.server.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// The loopback listener: readiness, metrics, admin and the whole read API.
    pub(super) fn local_endpoint(&self, listener: TcpListener) -> accept::Endpoint {
        let app = local::router(local::LocalState {
            metrics: Arc::clone(&self.metrics),
            ready: Arc::clone(&self.ready),
            data_dir: self.cfg.data_dir.clone(),
            writer: self.appender.stats(),
            reserve: Arc::clone(&self.reserve),
        })
        .merge(read::local(
            self.query.clone(),
            self.appender.clone(),
            Arc::clone(&self.metrics),
        ));
        accept::Endpoint {
            name: "local",
            listener,
            app,
            tls: None,
            // Every local client is this box: no per-peer cap on the loopback listener.
            limits: crate::config::ServerLimits {
                max_connections_per_peer: self.cfg.server.max_connections,
                ..self.cfg.server.clone()
            },
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// The remote read listener: the read API for read tokens, with their shares.
    pub(super) fn remote_endpoint(
        &self,
        listener: TcpListener,
        tls: Option<Arc<tls::TlsState>>,
    ) -> accept::Endpoint {
        let q = &self.cfg.query;
        accept::Endpoint {
            name: "remote",
            listener,
            app: read::remote(
                self.query.clone(),
                self.appender.clone(),
                Arc::clone(&self.verifier),
                self.cfg.limits.auth_failures_per_minute,
                read::ReadShares {
                    queries: q.max_concurrent_per_token,
                    tails: q.max_concurrent_tails_per_token,
                },
                Arc::clone(&self.metrics),
            ),
            tls,
            limits: crate::config::ServerLimits {
                max_connections_per_peer: q.max_connections_per_peer,
                ..self.cfg.server.clone()
            },
            metrics: Arc::clone(&self.metrics),
        }
    }
}
