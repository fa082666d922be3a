//! The read plane: Loki's query API and LogQL over the ledger, for Grafana and logcli.
//!
//! Owns: the read router ([`router`]), which serves the same endpoints under any path prefix;
//! LogQL; query execution on blocking threads under a concurrency limit and a deadline;
//! Loki's JSON encodings; live tail over WebSocket.
//!
//! Must not: hold an append handle or a token manager, or offer any route that changes data.
//! Who may call it (loopback, or a read token) is the server's business; what was read is
//! reported to the server in an [`Audit`] response extension so that it can be recorded.
//!
//! Layout:
//! - `logql`: lexer, parser, printer, templates, patterns, `ip()`;
//! - `params`: request parameters as Loki reads them;
//! - `pipeline`: one entry through line filters, parsers, label filters and formatting;
//! - `engine`: stream selection, scans, log queries, labels, series; `index_stats`: stats;
//! - `budget`: a query's deadline and memory bound;
//! - `fold`: aggregations over the store's tallies, one fold per scan worker, merged;
//! - `metric`: metric query evaluation;
//! - `volume`: `index/volume` and `index/volume_range`;
//! - `detected`, `drilldown`, `patterns`: Logs Drilldown's fields, labels, limits and
//!   patterns (Drain);
//! - `encode`: response shapes;
//! - `routes`: which endpoint a path reaches; `api`: answering it; `info`: buildinfo and
//!   `format_query`; `tail`: live tail;
//! - `error`: the one error type and its statuses.

mod api;
mod budget;
mod detected;
mod drilldown;
pub use routes::endpoint_name;
pub mod encode;
pub mod engine;
pub mod error;
mod fold;
mod index_stats;
mod info;
pub mod logql;
pub mod metric;
pub mod params;
pub mod patterns;
pub mod pipeline;
mod routes;
mod tail;
pub mod value;
mod volume;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::Semaphore;

pub use engine::{Engine, Limits};
pub use error::QueryError;

/// Queries that may run at once; more wait, then get 429. Key `query.max_concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

/// Requests one read token may have running at once on the remote read listener; the rest
/// of its requests wait (then get 429), so one token cannot take every query slot from the
/// others (Grafana's and an alerting token, say). Key `query.max_concurrent_per_token`.
pub const DEFAULT_MAX_CONCURRENT_PER_TOKEN: usize = 2;

/// Connections one address may hold open on the remote read listener: Grafana, one address,
/// keeps up to 100 idle connections to a data source and opens one per panel in flight, so
/// the push listener's per-host cap would refuse a large dashboard.
/// Key `query.max_connections_per_peer`.
pub const DEFAULT_REMOTE_CONNECTIONS_PER_PEER: usize = 128;

/// Live tails that may be open at once: Loki's `max_concurrent_tail_requests`.
/// Key `query.max_concurrent_tails`.
pub const DEFAULT_MAX_TAILS: usize = 10;

/// Live tails one read token may hold open on the remote read listener, half the listener's,
/// so one token cannot take every tail. Key `query.max_concurrent_tails_per_token`.
pub const DEFAULT_MAX_TAILS_PER_TOKEN: usize = 5;

/// A read token's slot for one live tail, taken by the read listener before the upgrade and
/// held by the tail until it ends.
#[derive(Debug, Clone)]
pub struct TailShare(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl TailShare {
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit) -> TailShare {
        TailShare(Arc::new(std::sync::Mutex::new(Some(permit))))
    }

    fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// How long a tail may stay open: Loki's `tail_max_duration`.
pub const TAIL_MAX_DURATION: Duration = Duration::from_secs(3600);

/// What a read request read, attached to its response for the audit record.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// The LogQL query or selector, if any.
    pub query: String,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Entries, series, label names or values returned.
    pub results: u64,
}

/// Everything the read router needs.
#[derive(Debug, Clone)]
pub struct QueryState {
    pub engine: Engine,
    slots: Arc<Semaphore>,
    tails: Arc<Semaphore>,
}

impl QueryState {
    pub fn new(engine: Engine, max_concurrent: usize, max_tails: usize) -> QueryState {
        QueryState {
            engine,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            tails: Arc::new(Semaphore::new(max_tails.max(1))),
        }
    }
}

/// The read API router. Every Loki read path is matched by its suffix, so the router works
/// behind any prefix a data-source URL adds.
pub fn router(state: QueryState) -> Router {
    Router::new().fallback(api::dispatch).with_state(state)
}
