//! The ledger benchmark behind `daftari bench ledger`: durable appends per second from 1 and
//! more concurrent appenders, and verify speed over a large ledger; `query` holds the read
//! plane's. They print figures; they assert nothing (speed targets are never timed tests).
//!
//! Must not: touch a data directory it did not create.

pub mod query;
pub mod seal;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::store::{self, Batch, NewEntry, Pairs, StoreConfig, Stream};
use crate::verify;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scratch directory; each run gets a fresh ledger below it, removed afterwards.
    pub dir: PathBuf,
    /// Entries each append run writes in all.
    pub entries: u64,
    pub batch: usize,
    pub line_bytes: usize,
    /// Concurrent appenders of each append run.
    pub appenders: Vec<usize>,
    /// Entries of the ledger that verify is timed on (0: skip).
    pub verify_entries: u64,
    pub runs: usize,
    pub segment_max_bytes: u64,
}

/// Figures of one append run.
#[derive(Debug, Clone, Copy)]
pub struct AppendRun {
    pub entries_per_s: f64,
    pub mb_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs every measurement and prints a line per run and a median per setting.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    println!(
        "ledger append: {} entries per run, batches of {}, ~{}-byte lines, WAL + synchronous=FULL, {} run(s) each",
        opts.entries, opts.batch, opts.line_bytes, opts.runs
    );
    let mut medians = Vec::new();
    for &k in &opts.appenders {
        let mut runs = Vec::new();
        for r in 0..opts.runs {
            let dir = scratch(&opts.dir, &format!("append-{k}-{r}"))?;
            let run = append_run(&dir, opts, k, opts.entries, None)?;
            std::fs::remove_dir_all(&dir)?;
            println!(
                "  appenders={k} run={r}: {:.0} entries/s, {:.1} MB/s, append p50 {:.1} ms, p99 {:.1} ms",
                run.entries_per_s,
                run.mb_per_s,
                ms(run.p50),
                ms(run.p99)
            );
            runs.push(run);
        }
        let med = median(runs.iter().map(|r| r.entries_per_s).collect());
        println!("appenders={k}: median {med:.0} entries/s durable");
        medians.push((k, med));
    }
    if let [(k1, m1), .., (kn, mn)] = medians.as_slice() {
        println!("ratio appenders={kn} / appenders={k1}: {:.2}", mn / m1);
    }
    if opts.verify_entries > 0 {
        verify_runs(opts)?;
    }
    Ok(())
}

fn verify_runs(opts: &Options) -> anyhow::Result<()> {
    let dir = scratch(&opts.dir, "verify")?;
    let fill_appenders = opts.appenders.iter().copied().max().unwrap_or(1);
    println!(
        "verify: filling a ledger with {} entries ...",
        opts.verify_entries
    );
    append_run(&dir, opts, fill_appenders, opts.verify_entries, None)?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut rates = Vec::new();
    for r in 0..opts.runs {
        let report = verify::run(
            &verify::Options {
                data_dir: dir.clone(),
                jobs,
                pubkey: None,
                anchors: None,
                retention: None,
                state: None,
            },
            &verify::Progress::default(),
        )?;
        anyhow::ensure!(
            report.intact(),
            "the benchmark ledger did not verify: {:?}",
            report.first_break
        );
        println!("  verify run={r}: {}", report.summary());
        rates.push(report.entries_per_second);
    }
    println!(
        "verify: median {:.0} entries/s over {} entries with {jobs} threads",
        median(rates),
        opts.verify_entries
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Appends `total` entries from `k` threads, each sending batches back to back; with
/// `sealing`, a sealer runs beside them at that epoch length, as in the server.
pub(crate) fn append_run(
    dir: &Path,
    opts: &Options,
    k: usize,
    total: u64,
    sealing: Option<Duration>,
) -> anyhow::Result<AppendRun> {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_max_bytes = opts.segment_max_bytes;
    let (ledger, appender, reader) = store::open(cfg)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sealer = match sealing {
        Some(interval) => {
            let (sealer, _) =
                crate::seal::Sealer::open(dir, &StoreConfig::new(dir).origin, reader.index()?)
                    .map_err(anyhow::Error::msg)?;
            Some(sealer.spawn(interval, std::sync::Arc::clone(&stop))?)
        }
        None => None,
    };
    let batches = total.div_ceil(opts.batch as u64);
    let per_thread = batches.div_ceil(k as u64);
    let started = Instant::now();
    let results: Vec<anyhow::Result<(Vec<Duration>, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..k)
            .map(|t| {
                let appender = appender.clone();
                let n = per_thread.min(batches.saturating_sub(t as u64 * per_thread));
                s.spawn(move || append_thread(&appender, opts, t, n))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("appender thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Release);
    if let Some(h) = sealer {
        let _ = h.join();
    }
    ledger.close()?;
    let mut lat = Vec::new();
    let mut bytes = 0;
    for r in results {
        let (l, b) = r?;
        lat.extend(l);
        bytes += b;
    }
    lat.sort();
    let entries = (batches * opts.batch as u64) as f64;
    Ok(AppendRun {
        entries_per_s: entries / elapsed,
        mb_per_s: bytes as f64 / elapsed / 1e6,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
    })
}

/// One appender thread: `n` batches from a pool built before the clock starts (the
/// benchmark measures the ledger, not string formatting); each append's latency and the
/// line bytes sent.
fn append_thread(
    appender: &store::Appender,
    opts: &Options,
    t: usize,
    n: u64,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let pool: Vec<Batch> = (0..BATCH_POOL)
        .map(|b| make_batch(t, b, opts.batch, opts.line_bytes))
        .collect();
    let mut lat = Vec::new();
    let mut bytes = 0u64;
    for b in 0..n {
        let batch = pool[b as usize % BATCH_POOL as usize].clone();
        bytes += batch
            .streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.len() as u64)
            .sum::<u64>();
        let t0 = Instant::now();
        append_retrying(appender, batch)?;
        lat.push(t0.elapsed());
    }
    Ok((lat, bytes))
}

fn append_retrying(appender: &store::Appender, batch: Batch) -> anyhow::Result<()> {
    loop {
        match appender.append_blocking(batch.clone()) {
            Err(store::AppendError::Pushback(_)) => std::thread::sleep(Duration::from_millis(1)),
            other => return other.map(|_| ()).map_err(Into::into),
        }
    }
}

/// Distinct batches each appender thread cycles through.
const BATCH_POOL: u64 = 16;

const HOSTS: usize = 16;
const TEMPLATES: &[(&str, &str)] = &[
    (
        "sshd",
        "sshd[{p}]: Failed password for invalid user admin from 203.0.113.{o} port {p} ssh2",
    ),
    (
        "sshd",
        "sshd[{p}]: Accepted publickey for deploy from 198.51.100.{o} port {p} ssh2: ED25519 SHA256:Qm9vYmFyYmF6cXV4",
    ),
    (
        "sudo",
        "sudo[{p}]:     ops : TTY=pts/{o} ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
    ),
    (
        "auditd",
        "type=SYSCALL msg=audit(1754400000.{p}:{o}): arch=c000003e syscall=59 success=yes exit=0 pid={p} auid=1000 comm=\"curl\" exe=\"/usr/bin/curl\" key=\"exec\"",
    ),
    (
        "fail2ban",
        "fail2ban.actions [{p}]: NOTICE [sshd] Ban 192.0.2.{o} after 5 failures within 600 seconds",
    ),
];

/// A batch of realistic security lines from one host (as an agent sends them: one stream per
/// job), `n` entries padded to about `line_bytes`.
pub fn make_batch(thread: usize, batch: u64, n: usize, line_bytes: usize) -> Batch {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let host = format!("host-{:02}", (thread + batch as usize * 3) % HOSTS);
    let mut streams: Vec<Stream> = TEMPLATES
        .iter()
        .map(|(job, _)| Stream {
            labels: Pairs::new(vec![
                ("host".into(), host.clone()),
                ("job".into(), (*job).into()),
            ])
            .unwrap_or_default(),
            entries: Vec::new(),
        })
        .collect();
    for i in 0..n {
        let k = batch as usize * n + i;
        let t = k % TEMPLATES.len();
        let mut line = TEMPLATES[t]
            .1
            .replace("{p}", &(1000 + k % 60000).to_string())
            .replace("{o}", &(k % 254).to_string());
        while line.len() < line_bytes {
            line.push_str(" pad=0123456789abcdef");
        }
        line.truncate(line_bytes.max(1));
        streams[t].entries.push(NewEntry {
            ts_ns: now + i as i64,
            metadata: Pairs::default(),
            line: line.into_bytes(),
        });
    }
    Batch {
        source: format!("bench-{thread}"),
        tenant: String::new(),
        streams,
    }
}

pub(crate) fn scratch(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join(format!("daftari-bench-{}-{name}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
