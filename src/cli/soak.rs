//! `daftari soak`: a long run at a steady push rate from many tokens while Grafana-like
//! queries run and a verify audits the live ledger; prints, per window, the durable rate,
//! push latency, query latency, the server's RSS and the ledger's size, then the verdict of a
//! final verify with the epoch-0 key.
//!
//! It starts its own `daftari serve` on a scratch directory with a short retention, so a run
//! of any length keeps a bounded disk (and exercises pruning under load).
//!
//! Must not: assert anything; it measures and prints. Limits stay at their defaults: the
//! point is how the shipped configuration behaves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use daftari::loadgen::{self, Options};

use super::loadgen::duration;
use super::spawn::Spawned;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Total pushing time, e.g. 22m.
    #[arg(long, default_value = "22m", value_parser = duration)]
    duration: Duration,
    /// One printed row per window.
    #[arg(long, default_value = "1m", value_parser = duration)]
    window: Duration,
    /// Memory growth is measured from the end of this.
    #[arg(long, default_value = "5m", value_parser = duration)]
    warmup: Duration,
    /// Entries per second over all tokens (half the saturation figure in BENCHMARKS.md).
    #[arg(long, default_value_t = 120_000)]
    rate: u64,
    /// Push tokens, one connection each (each stays under the default per-token rate).
    #[arg(long, default_value_t = 32)]
    tokens: usize,
    /// Entries per request.
    #[arg(long, default_value_t = 1000)]
    batch_entries: usize,
    /// Retention of the spawned server: bounds the disk a long run uses.
    #[arg(long, default_value = "4m")]
    retention: String,
    /// Scratch directory (must not exist; removed afterwards unless --keep).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
}

/// The spawned server's config: the shipped defaults (1 GiB segments rotate about every half
/// minute at the default rate, and `--retention` prunes them during the run).
const CONFIG: &str = "";

/// Queries Grafana sends for a security dashboard, one host in view: Explore with a filter,
/// the log-volume histogram, a failed-login alert rule, a silence rule, and the label browser.
/// (Each host here pushes as much as a large fleet; whole-fleet queries at this rate measure
/// the query engine, which `daftari bench query` does.)
const QUERIES: [(&str, &str); 5] = [
    (
        "/loki/api/v1/query_range",
        "query=%7Bhost%3D%22host-003%22%2Cjob%3D%22sshd%22%7D%20%7C%3D%20%22Failed%20password%22&since=5m&limit=100",
    ),
    (
        "/loki/api/v1/query_range",
        "query=sum%20by%20(job)%20(count_over_time(%7Bhost%3D%22host-007%22%7D%5B1m%5D))&since=5m&step=1m",
    ),
    (
        "/loki/api/v1/query",
        "query=sum%20by%20(host)%20(count_over_time(%7Bhost%3D%22host-011%22%2Cjob%3D%22sshd%22%7D%20%7C%3D%20%22Failed%20password%22%20%5B5m%5D))",
    ),
    (
        "/loki/api/v1/query",
        "query=absent_over_time(%7Bjob%3D%22auditd%22%2Chost%3D%22host-003%22%7D%5B5m%5D)",
    ),
    ("/loki/api/v1/labels", "since=1h"),
];

/// Pause between two rounds of queries: a dashboard refresh or an alert evaluation interval.
const QUERY_PAUSE: Duration = Duration::from_secs(10);

/// One window's figures.
struct Row {
    minute: f64,
    report: loadgen::Report,
    query_ms: Vec<f64>,
    query_failures: u64,
    rss_kib: u64,
    ledger_bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let s = Spawned::start(
        args.data_dir.clone(),
        CONFIG,
        &["--retention", &args.retention],
    )?;
    let data = s.dir.join("data");
    // Both verify runs check the seal chain with the key the new log printed.
    let pubkey = epoch0_key(&data)?;
    let tokens = create_tokens(&data, args.tokens.max(1))?;
    // The server loads new tokens within a second.
    std::thread::sleep(Duration::from_millis(1500));
    eprintln!(
        "soak: {} tokens, {} entries/s, {} entries/request, {:.0} min in windows of {:.0} s, retention {}",
        tokens.len(),
        args.rate,
        args.batch_entries,
        args.duration.as_secs_f64() / 60.0,
        args.window.as_secs_f64(),
        args.retention
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let query_stats = QueryStats::default();
    let queries = rt.spawn(query_loop(
        s.local,
        Arc::clone(&query_stats),
        Arc::clone(&stop),
    ));
    let opts = Options {
        addr: s.addr,
        tokens,
        connections: args.tokens.max(1),
        duration: args.window,
        warmup: Duration::ZERO,
        batch_entries: args.batch_entries.max(1),
        streams: 100,
        rate: args.rate,
        protocol: Default::default(),
    };
    let (rows, live_verify) = run_windows(&args, &rt, &opts, &s, &query_stats, &pubkey)?;
    stop.store(true, Ordering::Release);
    let _ = rt.block_on(queries);
    let live = match live_verify {
        Some(v) => Some(finish_verify(v)?),
        None => None,
    };
    let peak = loadgen::rss_kib(s.child.id()).map_or(0, |(peak, _)| peak);
    let dir = s.dir.clone();
    s.stop_keeping()?;
    let last = finish_verify(spawn_verify(&data, &args.retention, &pubkey)?)?;
    summary(&rows, args.warmup, peak, live.as_ref(), &last);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if last.0 == Some(0) { 0 } else { 1 })
}

/// The load in windows, one printed row each, with a verify started against the live
/// ledger half way through.
fn run_windows(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    opts: &Options,
    s: &Spawned,
    query_stats: &QueryStats,
    pubkey: &str,
) -> anyhow::Result<(Vec<Row>, Option<Verify>)> {
    let data = s.dir.join("data");
    let windows = (args.duration.as_secs_f64() / args.window.as_secs_f64()).ceil() as usize;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut live_verify = None;
    println!(
        "{:>6} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "minute", "entries/s", "p50 ms", "p99 ms", "fails", "query p99", "RSS MiB", "ledger GB"
    );
    for w in 0..windows {
        if w == windows / 2 {
            live_verify = Some(spawn_verify(&data, &args.retention, pubkey)?);
        }
        let report = rt.block_on(loadgen::run(opts));
        let (query_ms, query_failures) = take(query_stats);
        let row = Row {
            minute: started.elapsed().as_secs_f64() / 60.0,
            report,
            query_ms,
            query_failures,
            rss_kib: loadgen::rss_kib(s.child.id()).map_or(0, |(_, now)| now),
            ledger_bytes: dir_bytes(&data.join("segments")),
        };
        print_row(&row);
        rows.push(row);
    }
    Ok((rows, live_verify))
}

/// The new log's epoch-0 public key, once the server has written it.
fn epoch0_key(data: &Path) -> anyhow::Result<String> {
    let path = data.join(daftari::seal::EPOCH0_PUB_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(k) = std::fs::read_to_string(&path)
            && !k.trim().is_empty()
        {
            return Ok(k.trim().to_string());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} was not written within 30 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_tokens(data: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|i| {
            let out = Command::new(std::env::current_exe()?)
                .args([
                    "token",
                    "create",
                    &format!("soak-host-{i:03}"),
                    "--data-dir",
                ])
                .arg(data)
                .output()
                .context("daftari token create")?;
            anyhow::ensure!(
                out.status.success(),
                "token create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8(out.stdout)?.trim().to_string())
        })
        .collect()
}

/// Query latencies (ms) and failures since they were last taken.
type QueryStats = Arc<Mutex<(Vec<f64>, u64)>>;

fn take(stats: &QueryStats) -> (Vec<f64>, u64) {
    std::mem::take(&mut *stats.lock().unwrap_or_else(|p| p.into_inner()))
}

async fn query_loop(local: SocketAddr, stats: QueryStats, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        for (path, query) in QUERIES {
            let t = Instant::now();
            let ok = get(local, &format!("{path}?{query}")).await == Some(200);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let mut g = stats.lock().unwrap_or_else(|p| p.into_inner());
            if ok {
                g.0.push(ms);
            } else {
                g.1 += 1;
            }
        }
        tokio::time::sleep(QUERY_PAUSE).await;
    }
}

/// One GET on a new connection; the status, or `None` if the connection failed.
async fn get(addr: SocketAddr, uri: &str) -> Option<u16> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = http::Request::get(uri)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = tx.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}

/// A running verify: the child, when it started, and where its output goes.
struct Verify(std::process::Child, Instant);

fn spawn_verify(data: &Path, retention: &str, pubkey: &str) -> anyhow::Result<Verify> {
    let child = Command::new(std::env::current_exe()?)
        .arg("verify")
        .arg("--data-dir")
        .arg(data)
        .args(["--retention", retention, "--pubkey", pubkey])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("daftari verify")?;
    Ok(Verify(child, Instant::now()))
}

/// Exit code, seconds taken, and the verdict's last line.
type Verdict = (Option<i32>, f64, String);

fn finish_verify(v: Verify) -> anyhow::Result<Verdict> {
    let out = v.0.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The verdict line, or the whole report when it is not "intact".
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    let last = if out.status.success() {
        last
    } else {
        text.trim().to_string()
    };
    Ok((out.status.code(), v.1.elapsed().as_secs_f64(), last))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn p99(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

fn print_row(r: &Row) {
    let fails: u64 = r.report.failures.iter().map(|(_, n)| n).sum();
    let mut q = r.query_ms.clone();
    println!(
        "{:>6.1} {:>10.0} {:>8.1} {:>8.1} {:>9} {:>9.1} {:>9.1} {:>10.2}",
        r.minute,
        r.report.entries_per_second(),
        r.report.p50.as_secs_f64() * 1e3,
        r.report.p99.as_secs_f64() * 1e3,
        fails + r.query_failures,
        p99(&mut q),
        r.rss_kib as f64 / 1024.0,
        r.ledger_bytes as f64 / 1e9,
    );
}

fn summary(rows: &[Row], warmup: Duration, peak_kib: u64, live: Option<&Verdict>, last: &Verdict) {
    let warm: Vec<&Row> = rows
        .iter()
        .filter(|r| r.minute * 60.0 >= warmup.as_secs_f64())
        .collect();
    let mib = |k: u64| k as f64 / 1024.0;
    if let (Some(first), Some(end)) = (warm.first(), warm.last()) {
        let max = warm.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        println!(
            "RSS after warm-up: {:.1} MiB at minute {:.1}, {:.1} MiB at the end, {:.1} MiB at most \
             (growth {:+.1} MiB); peak over the run {:.1} MiB",
            mib(first.rss_kib),
            first.minute,
            mib(end.rss_kib),
            mib(max),
            mib(end.rss_kib) - mib(first.rss_kib),
            mib(peak_kib),
        );
        let mut p99s: Vec<f64> = warm
            .iter()
            .map(|r| r.report.p99.as_secs_f64() * 1e3)
            .collect();
        p99s.sort_by(f64::total_cmp);
        println!(
            "push p99 per window after warm-up: median {:.1} ms, worst {:.1} ms",
            p99s[p99s.len() / 2],
            p99s.last().copied().unwrap_or(0.0)
        );
    }
    let entries: u64 = rows.iter().map(|r| r.report.entries).sum();
    let failures: u64 = rows
        .iter()
        .map(|r| r.report.failures.iter().map(|(_, n)| n).sum::<u64>())
        .sum();
    let queries: usize = rows.iter().map(|r| r.query_ms.len()).sum();
    let query_failures: u64 = rows.iter().map(|r| r.query_failures).sum();
    println!(
        "pushed {entries} entries durably, {failures} push failures; {queries} queries, \
         {query_failures} failed"
    );
    if let Some((code, _, line)) = live {
        println!("verify under load, with the epoch-0 key: exit {code:?}: {line}");
    }
    let (code, secs, line) = last;
    println!("final verify with the epoch-0 key: exit {code:?} after {secs:.0} s: {line}");
}
