//! The read-plane benchmark behind `daftari bench query`: builds a ledger of security lines
//! spread over a time span, then times the queries Grafana and alert rules send (median of
//! several runs) and prints lines scanned per second. It asserts nothing.
//!
//! Must not: touch a data directory it did not create.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::push::enrich;
use crate::query::logql::{self, Expr};
use crate::query::{Engine, Limits, metric, patterns};
use crate::store::{self, Batch, NewEntry, Order, Pairs, StoreConfig, Stream};

/// What to build and how often to run each query.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub entries: u64,
    pub hosts: usize,
    pub span: Duration,
    pub runs: usize,
    /// Segment layouts to build the ledger in, one after the other, each timed alike.
    pub formats: Vec<u32>,
    /// Times only the cases whose name contains this (case-insensitive; empty: every case).
    pub only: String,
}

/// The one line of the data holding this word: what a needle search looks for.
pub const NEEDLE: &str = "unique-needle-string";

const JOBS: [&str; 5] = ["sshd", "sudo", "auditd", "app", "fail2ban"];

/// Entries per append while building.
const BUILD_BATCH: u64 = 1000;

fn line(job: &str, k: u64) -> String {
    let ip = format!("203.0.113.{}", k % 250);
    match job {
        "sshd" if k.is_multiple_of(3) => {
            format!("Accepted publickey for ops from {ip} port 22 ssh2")
        }
        "sshd" => format!(
            "Failed password for root from {ip} port {} ssh2",
            40000 + k % 20000
        ),
        "sudo" => format!(
            "ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx #{k}"
        ),
        "auditd" => format!(
            "type=SYSCALL msg=audit(1754400000.{k}:1): arch=c000003e syscall=59 success=yes exit=0 comm=\"curl\" key=\"exec\""
        ),
        "app" => format!(
            r#"{{"level":"{}","msg":"request done","status":{},"duration":"{}ms","user":"u{}"}}"#,
            ["info", "info", "warn", "error"][(k % 4) as usize],
            [200, 200, 404, 500][(k % 4) as usize],
            k % 900,
            k % 50
        ),
        _ => format!("fail2ban.actions: NOTICE [sshd] Ban {ip}"),
    }
}

/// Builds the ledger; returns it with its engine and the end of the data's time span.
fn build(
    opts: &Options,
    dir: &std::path::Path,
    format: u32,
) -> anyhow::Result<(store::Ledger, Engine, i64)> {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_format = format;
    let (ledger, appender, reader) = store::open(cfg)?;
    let end = crate::clock::now_ns();
    let span = opts.span.as_nanos() as i64;
    let step = (span / opts.entries.max(1) as i64).max(1);
    let start = end - span;
    let mut k = 0u64;
    while k < opts.entries {
        let n = BUILD_BATCH.min(opts.entries - k);
        let mut streams: Vec<Stream> = Vec::new();
        for i in k..k + n {
            let job = JOBS[(i % JOBS.len() as u64) as usize];
            let host = format!("h{:02}", (i / JOBS.len() as u64) % opts.hosts as u64);
            let labels = Pairs::new(vec![("host".into(), host), ("job".into(), job.into())])?;
            let mut line = line(job, i);
            if i == opts.entries / 3 {
                line.push_str(&format!(" {NEEDLE}"));
            }
            let entry = NewEntry {
                ts_ns: start + i as i64 * step,
                metadata: Pairs::default(),
                line: line.into_bytes(),
            };
            match streams.iter_mut().find(|s| s.labels == labels) {
                Some(s) => s.entries.push(entry),
                None => streams.push(Stream {
                    labels,
                    entries: vec![entry],
                }),
            }
        }
        enrich::apply(&mut streams);
        appender.append_blocking(Batch {
            source: "bench".into(),
            tenant: String::new(),
            streams,
        })?;
        k += n;
    }
    let limits = Limits {
        timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    Ok((ledger, Engine::new(reader, limits), end))
}

/// One timed query.
struct Case {
    name: &'static str,
    query: &'static str,
    /// Look-back from the end of the data.
    range: Duration,
    /// Step of a range query; `None` for an instant query (or a log query).
    step: Option<Duration>,
    /// What is asked of the selector: a query, `index/stats` or `patterns`.
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    IndexStats,
    Patterns,
}

const CASES: &[Case] = &[
    Case {
        name: "Explore: one host's sshd, last 1h, 1000 lines",
        query: r#"{job="sshd", host="h03"}"#,
        range: Duration::from_secs(3600),
        step: None,
        kind: Kind::Query,
    },
    Case {
        name: "Explore: all sshd |= \"Failed\", 24h, 1000 lines",
        query: r#"{job="sshd"} |= "Failed password""#,
        range: Duration::from_secs(86400),
        step: None,
        kind: Kind::Query,
    },
    Case {
        name: "Needle: every stream |= one word, 24h, 1000 lines",
        query: r#"{job=~".+"} |= "unique-needle-string""#,
        range: Duration::from_secs(86400),
        step: None,
        kind: Kind::Query,
    },
    Case {
        name: "Log volume: sshd by detected_level, 24h, step 5m",
        query: r#"sum by (level, detected_level) (count_over_time({job="sshd"} | drop __error__ [5m]))"#,
        range: Duration::from_secs(86400),
        step: Some(Duration::from_secs(300)),
        kind: Kind::Query,
    },
    Case {
        name: "Alert: failed logins by host > 10, instant 5m",
        query: r#"sum by (host) (count_over_time({job="sshd"} |= "Failed password" [5m])) > 10"#,
        range: Duration::ZERO,
        step: None,
        kind: Kind::Query,
    },
    Case {
        name: "Silence: absent_over_time one host, instant 15m",
        query: r#"absent_over_time({host="h07"}[15m])"#,
        range: Duration::ZERO,
        step: None,
        kind: Kind::Query,
    },
    Case {
        name: "JSON: app error rate by level, 6h, step 1m",
        query: r#"sum by (level) (rate({job="app"} | json | __error__="" [5m]))"#,
        range: Duration::from_secs(6 * 3600),
        step: Some(Duration::from_secs(60)),
        kind: Kind::Query,
    },
    Case {
        name: "Volume panel: index/stats of sshd, 24h",
        query: r#"{job="sshd"}"#,
        range: Duration::from_secs(86400),
        step: None,
        kind: Kind::IndexStats,
    },
    Case {
        name: "Drilldown: patterns of sshd, 6h, step 5m",
        query: r#"{job="sshd"}"#,
        range: Duration::from_secs(6 * 3600),
        step: Some(Duration::from_secs(300)),
        kind: Kind::Patterns,
    },
];

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let mut medians: Vec<Vec<f64>> = Vec::new();
    for &format in &opts.formats {
        medians.push(run_format(opts, format)?);
    }
    if let [first, .., last] = medians.as_slice() {
        let (a, b) = (opts.formats[0], opts.formats[opts.formats.len() - 1]);
        println!("{:<55} {:>10}", "query", format!("v{a}/v{b}"));
        for (c, (x, y)) in cases(opts).zip(first.iter().zip(last)) {
            println!("{:<55} {:>10.1}", c.name, x / y.max(1e-9));
        }
    }
    Ok(())
}

/// The cases `--only` selects.
fn cases(opts: &Options) -> impl Iterator<Item = &'static Case> + '_ {
    let only = opts.only.to_lowercase();
    CASES
        .iter()
        .filter(move |c| c.name.to_lowercase().contains(&only))
}

/// Builds the ledger in segment layout `format` and times every case; the medians, in ms.
fn run_format(opts: &Options, format: u32) -> anyhow::Result<Vec<f64>> {
    let dir = super::scratch(&opts.dir, &format!("query-v{format}"))?;
    let t = Instant::now();
    let (ledger, engine, end) = build(opts, &dir, format)?;
    println!(
        "built {} entries over {:?} ({} hosts x {} jobs) in segment format v{format} in {:.1} s, {:.1} B per entry on disk",
        opts.entries,
        opts.span,
        opts.hosts,
        JOBS.len(),
        t.elapsed().as_secs_f64(),
        super::io::dir_bytes(&dir) as f64 / opts.entries.max(1) as f64
    );
    let mut out = Vec::new();
    println!(
        "{:<55} {:>10} {:>12} {:>14}",
        "query", "median ms", "lines read", "lines/s"
    );
    for c in cases(opts) {
        let mut times = Vec::new();
        let mut lines = 0;
        for _ in 0..opts.runs.max(1) {
            let t = Instant::now();
            lines = run_case(&engine, c, end)?;
            times.push(t.elapsed().as_secs_f64());
        }
        let med = super::median(times);
        out.push(med * 1e3);
        let rate = if med > 0.0 { lines as f64 / med } else { 0.0 };
        println!(
            "{:<55} {:>10.1} {:>12} {:>14.0}",
            c.name,
            med * 1e3,
            lines,
            rate
        );
    }
    ledger.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(out)
}

/// Runs one case; returns the lines it read.
fn run_case(engine: &Engine, c: &Case, end: i64) -> anyhow::Result<u64> {
    let budget = engine.budget();
    let start = end - c.range.as_nanos() as i64;
    match c.kind {
        Kind::Query => {}
        Kind::IndexStats => {
            let m = logql::parse_selector(c.query)?;
            return Ok(engine.index_stats(&m, start, end + 1, budget)?.entries);
        }
        Kind::Patterns => {
            let m = logql::parse_selector(c.query)?;
            let step = c.step.unwrap_or(Duration::from_secs(60)).as_nanos() as i64;
            let found = patterns::mine(engine, budget, &m, (start, end), step)?;
            return Ok(found.iter().flat_map(|f| f.samples.values()).sum::<i64>() as u64);
        }
    }
    let stats = match logql::parse(c.query)? {
        Expr::Log(l) => {
            engine
                .logs(&l, (start, end + 1), 1000, Order::Backward, budget)?
                .1
        }
        Expr::Metric(m) => {
            let times: Vec<i64> = match c.step {
                Some(step) => {
                    let step = step.as_nanos() as i64;
                    (0..=(end - start) / step)
                        .map(|k| start + k * step)
                        .collect()
                }
                None => vec![end],
            };
            metric::eval(engine, &m, &times, budget)?.1
        }
    };
    Ok(stats.lines_processed)
}
