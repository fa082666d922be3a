//! The local listener's own routes: `/ready` and `/metrics`. It binds a loopback address
//! only (enforced in `config` and again on the bound address); the query API is merged in
//! by the server (see `read`), and answers every other path.
//!
//! Must not: be reachable from the push listener's router.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct LocalState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// The data directory, for the disk and ledger gauges.
    pub data_dir: std::path::PathBuf,
    /// The writer's counters.
    pub writer: Arc<crate::store::WriterStats>,
    /// The free-space reserve's state.
    pub reserve: Arc<crate::store::DiskReserve>,
}

pub fn router(state: LocalState) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(st): State<LocalState>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(st): State<LocalState>) -> Response {
    let mut text = st.metrics.render();
    text.push_str(&crate::metrics::render_writer(&st.writer));
    let (dir, reserve) = (st.data_dir.clone(), Arc::clone(&st.reserve));
    // A directory listing and a statvfs: off the async threads.
    let disk = tokio::task::spawn_blocking(move || crate::metrics::render_disk(&dir, &reserve));
    if let Ok(disk) = disk.await {
        text.push_str(&disk);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
