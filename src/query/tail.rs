//! Live tail over WebSocket (`/loki/api/v1/tail`), as Grafana's live mode and `logcli
//! --tail` use it.
//!
//! Owns: validating parameters before the upgrade (plain-text 400), the concurrent-tail
//! limit, replaying up to `limit` recent entries, then following the ledger by sequence
//! number every second, a ping every second, close code 1011 on errors, and the one-hour cap.
//!
//! Must not: block the runtime (reads run on blocking threads) or hold anything but a reader.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::encode;
use super::engine::LogEntry;
use super::error::QueryError;
use super::logql::{self, Expr, ast::LogExpr};
use super::params::{self, Params};
use super::{Audit, QueryState, TAIL_MAX_DURATION, pipeline};
use crate::clock::now_ns;
use crate::store::{Order, Record};

/// Records read per poll at most; a faster log is followed over several polls.
const POLL_MAX_RECORDS: usize = 10_000;

/// How often new records are looked for and a ping is sent.
const TICK: Duration = Duration::from_secs(1);

/// Largest `delay_for` Loki accepts, in seconds.
const MAX_DELAY_FOR: u64 = 5;

/// WebSocket close code for a server-side error.
const CLOSE_INTERNAL: u16 = 1011;

/// A validated tail request.
#[derive(Debug)]
pub struct TailRequest {
    query: String,
    log: LogExpr,
    limit: usize,
    start: i64,
    categorize: bool,
}

impl TailRequest {
    pub fn new(p: &Params, headers: &HeaderMap) -> Result<TailRequest, QueryError> {
        let query = p.query()?.to_owned();
        let log = match logql::parse(&query)? {
            Expr::Log(l) => l,
            Expr::Metric(_) => return Err(QueryError::bad("tail queries must be log queries")),
        };
        if let Some(d) = p.get("delay_for") {
            let d: u64 = d
                .parse()
                .map_err(|_| QueryError::bad(format!("invalid delay_for parameter: {d:?}")))?;
            if d > MAX_DELAY_FOR {
                return Err(QueryError::bad("delay_for can't be greater than 5"));
            }
        }
        Ok(TailRequest {
            query,
            log,
            limit: p.limit()?,
            start: p.time("start", now_ns() - params::DEFAULT_SINCE_NS)?,
            categorize: params::categorize(headers),
        })
    }
}

/// Upgrades the connection and follows the log (429 when too many tails are open). `share`
/// is the read token's own tail slot, held until the tail ends.
pub fn start(
    st: QueryState,
    req: TailRequest,
    ws: WebSocketUpgrade,
    share: Option<OwnedSemaphorePermit>,
) -> Response {
    let Ok(permit) = st.tails.clone().try_acquire_owned() else {
        return QueryError::TooManyTails.into_response();
    };
    let audit = Audit {
        query: req.query,
        start_ns: Some(req.start),
        end_ns: None,
        results: 0,
    };
    let tail = Tail {
        st,
        log: req.log,
        limit: req.limit,
        start: req.start,
        categorize: req.categorize,
        _permits: (permit, share),
    };
    let mut r = ws
        .on_upgrade(move |socket| tail.run(socket))
        .into_response();
    r.extensions_mut().insert(audit);
    r
}

struct Tail {
    st: QueryState,
    log: LogExpr,
    limit: usize,
    start: i64,
    categorize: bool,
    _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

impl Tail {
    async fn run(self, mut socket: WebSocket) {
        if let Err(e) = self.follow(&mut socket).await {
            let frame = CloseFrame {
                code: CLOSE_INTERNAL,
                reason: e.to_string().into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
    }

    async fn follow(&self, socket: &mut WebSocket) -> Result<(), QueryError> {
        let began = Instant::now();
        let engine = self.st.engine.clone();
        let mut from = engine.next_seq()?;
        let (log, limit, start) = (self.log.clone(), self.limit, self.start);
        let replay = tokio::task::spawn_blocking(move || {
            let budget = engine.budget();
            engine.logs(&log, (start, now_ns() + 1), limit, Order::Backward, budget)
        })
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))??;
        let mut entries = replay.0;
        entries.reverse();
        self.send(socket, &entries).await?;
        // Entries appended while the replay ran may be in it and in the first polls.
        let mut replayed: std::collections::HashSet<u64> = entries
            .iter()
            .filter(|e| e.seq >= from)
            .map(|e| e.seq)
            .collect();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if began.elapsed() > TAIL_MAX_DURATION {
                        let _ = socket.send(Message::Close(None)).await;
                        return Ok(());
                    }
                    if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                        return Ok(());
                    }
                    let (mut entries, next) = self.poll(from).await?;
                    from = next;
                    if !replayed.is_empty() {
                        entries.retain(|e| !replayed.remove(&e.seq));
                    }
                    if !entries.is_empty() && self.send(socket, &entries).await.is_err() {
                        return Ok(());
                    }
                }
                msg = socket.recv() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// New matching entries from `from` on, and the sequence number to continue from.
    async fn poll(&self, from: u64) -> Result<(Vec<LogEntry>, u64), QueryError> {
        let engine = self.st.engine.clone();
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            let records = engine.read_since(from, POLL_MAX_RECORDS)?;
            let next = records.last().map_or(from, |r| r.seq + 1);
            let entries = records.iter().filter_map(|r| matching(&log, r)).collect();
            Ok((entries, next))
        })
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))?
    }

    async fn send(&self, socket: &mut WebSocket, entries: &[LogEntry]) -> Result<(), QueryError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut body = json!({"streams": encode::streams(entries, self.categorize)});
        if self.categorize {
            body["encodingFlags"] = json!([params::CATEGORIZE_LABELS]);
        }
        socket
            .send(Message::Text(body.to_string().into()))
            .await
            .map_err(|e| QueryError::Internal(format!("tail: send: {e}")))
    }
}

fn matching(log: &LogExpr, r: &Record) -> Option<LogEntry> {
    let ok = log
        .matchers
        .iter()
        .all(|m| m.matches(r.labels.get(&m.name).unwrap_or("")));
    if !ok {
        return None;
    }
    let stream = r.labels.clone().into_vec();
    let meta = r.metadata.clone().into_vec();
    let line = std::str::from_utf8(&r.line).unwrap_or("");
    let out = pipeline::run(&log.pipeline, line, r.ts_ns, &stream, &meta)?;
    Some(LogEntry {
        ts_ns: r.ts_ns,
        seq: r.seq,
        line: out.line.into_owned(),
        labels: out.labels,
    })
}
