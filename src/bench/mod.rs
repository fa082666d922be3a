//! The ledger benchmark behind `daftari bench ledger`: durable appends per second from 1 and
//! more concurrent appenders, and verify speed over a large ledger; `query` holds the read
//! plane's. They print figures; they assert nothing (speed targets are never timed tests).
//!
//! Must not: touch a data directory it did not create.

pub mod io;
pub mod lines;
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
    /// Segment layouts to compare; each setting runs them alternately.
    pub formats: Vec<u32>,
    /// Entries per second all appenders send together (0: as fast as the ledger takes them).
    pub rate: u64,
    /// zstd level of v2 blocks.
    pub zstd_level: i32,
    /// Leave each append run's ledger in place (to inspect what it stores).
    pub keep: bool,
}

/// Figures of one append run.
#[derive(Debug, Clone, Copy)]
pub struct AppendRun {
    pub entries_per_s: f64,
    pub mb_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Bytes the process wrote to disk per entry (`/proc/self/io` write_bytes), from open to
    /// close with every file flushed.
    pub written_per_entry: f64,
    /// The same for what write calls asked for (`wchar`).
    pub issued_per_entry: f64,
    /// Bytes the ledger occupies on disk per entry after close.
    pub at_rest_per_entry: f64,
}

/// Runs every measurement and prints a line per run and a median per setting.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let rate = match opts.rate {
        0 => "as fast as they are taken".to_owned(),
        r => format!("paced at {r} entries/s"),
    };
    println!(
        "ledger append: {} entries per run, batches of {}, lines of {}+ bytes, {rate}, WAL + \
         synchronous=FULL, segment formats {:?} alternating, {} run(s) each",
        opts.entries, opts.batch, opts.line_bytes, opts.formats, opts.runs
    );
    let mut medians = Vec::new();
    for &k in &opts.appenders {
        let mut runs: Vec<(u32, AppendRun)> = Vec::new();
        for r in 0..opts.runs {
            for &f in &opts.formats {
                let dir = scratch(&opts.dir, &format!("append-{k}-{r}-v{f}"))?;
                let run = append_run(&dir, opts, k, opts.entries, None, f)?;
                if opts.keep {
                    println!("  kept {}", dir.display());
                } else {
                    std::fs::remove_dir_all(&dir)?;
                }
                println!(
                    "  appenders={k} v{f} run={r}: {:.0} entries/s, {:.1} MB/s, append p50 \
                     {:.1} ms, p99 {:.1} ms; per entry: {:.0} B written, {:.0} B issued, {:.1} B \
                     at rest",
                    run.entries_per_s,
                    run.mb_per_s,
                    ms(run.p50),
                    ms(run.p99),
                    run.written_per_entry,
                    run.issued_per_entry,
                    run.at_rest_per_entry
                );
                runs.push((f, run));
            }
        }
        for &f in &opts.formats {
            let of = |g: fn(&AppendRun) -> f64| {
                median(
                    runs.iter()
                        .filter(|(x, _)| *x == f)
                        .map(|(_, r)| g(r))
                        .collect(),
                )
            };
            let med = of(|r| r.entries_per_s);
            println!(
                "appenders={k} v{f}: median {med:.0} entries/s durable, p99 {:.1} ms, {:.0} B \
                 written, {:.1} B at rest per entry",
                of(|r| ms(r.p99)),
                of(|r| r.written_per_entry),
                of(|r| r.at_rest_per_entry)
            );
            medians.push((k, f, med));
        }
    }
    print_ratios(&medians);
    if opts.verify_entries > 0 {
        for &f in &opts.formats {
            verify_runs(opts, f)?;
        }
    }
    Ok(())
}

/// The appender scaling per format, and each format against the first at the same setting.
fn print_ratios(medians: &[(usize, u32, f64)]) {
    let mut formats: Vec<u32> = medians.iter().map(|m| m.1).collect();
    formats.sort_unstable();
    formats.dedup();
    for f in &formats {
        let mine: Vec<_> = medians.iter().filter(|m| m.1 == *f).collect();
        if let [(k1, _, m1), .., (kn, _, mn)] = mine.as_slice() {
            println!("v{f} ratio appenders={kn} / appenders={k1}: {:.2}", mn / m1);
        }
    }
    let Some(&(_, first, _)) = medians.first() else {
        return;
    };
    for &(k, f, m) in medians.iter().filter(|m| m.1 != first) {
        if let Some((_, _, base)) = medians.iter().find(|b| b.0 == k && b.1 == first) {
            println!("ratio v{f} / v{first} at appenders={k}: {:.2}", m / base);
        }
    }
}

fn verify_runs(opts: &Options, format: u32) -> anyhow::Result<()> {
    let dir = scratch(&opts.dir, &format!("verify-v{format}"))?;
    let fill_appenders = opts.appenders.iter().copied().max().unwrap_or(1);
    println!(
        "verify v{format}: filling a ledger with {} entries ...",
        opts.verify_entries
    );
    let fill = Options {
        rate: 0,
        ..opts.clone()
    };
    append_run(
        &dir,
        &fill,
        fill_appenders,
        opts.verify_entries,
        None,
        format,
    )?;
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
        "verify v{format}: median {:.0} entries/s over {} entries with {jobs} threads",
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
    format: u32,
) -> anyhow::Result<AppendRun> {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_max_bytes = opts.segment_max_bytes;
    cfg.segment_format = format;
    cfg.segment_zstd_level = opts.zstd_level;
    let before = io::Written::now();
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
                // Each thread sends its share of the rate: a batch every `gap`.
                let gap = (opts.rate > 0).then(|| {
                    Duration::from_secs_f64(opts.batch as f64 * k as f64 / opts.rate as f64)
                });
                s.spawn(move || append_thread(&appender, opts, t, n, gap))
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
    io::flush(dir);
    let written = io::Written::now().since(before);
    let at_rest = io::dir_bytes(dir);
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
        written_per_entry: written.write_bytes as f64 / entries,
        issued_per_entry: written.wchar as f64 / entries,
        at_rest_per_entry: at_rest as f64 / entries,
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
    gap: Option<Duration>,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let pool: Vec<Batch> = (0..BATCH_POOL)
        .map(|b| make_batch(t, b, opts.batch, opts.line_bytes))
        .collect();
    let mut lat = Vec::new();
    let mut bytes = 0u64;
    let start = Instant::now();
    for b in 0..n {
        if let Some(gap) = gap {
            let due = start + gap * b as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
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

/// A batch of realistic security lines from one host (as an agent sends them: one stream per
/// job), `n` entries, each padded with random fields to at least `line_bytes`.
pub fn make_batch(thread: usize, batch: u64, n: usize, line_bytes: usize) -> Batch {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let host = format!("host-{:02}", (thread + batch as usize * 3) % HOSTS);
    let mut streams: Vec<Stream> = lines::JOBS
        .iter()
        .map(|job| Stream {
            labels: Pairs::new(vec![
                ("host".into(), host.clone()),
                ("job".into(), (*job).into()),
            ])
            .unwrap_or_default(),
            entries: Vec::new(),
        })
        .collect();
    let mut rng = lines::Rng::new(((thread as u64) << 40) ^ batch);
    for i in 0..n {
        let t = rng.below(lines::JOBS.len() as u64) as usize;
        let ts_ns = now + i as i64;
        let mut line = lines::line(lines::JOBS[t], (ts_ns / 1_000_000_000) as u64, &mut rng);
        while line.len() < line_bytes {
            line.push_str(&format!(" id={:016x}", rng.next_u64()));
        }
        streams[t].entries.push(NewEntry {
            ts_ns,
            metadata: Pairs::default(),
            line: line.into_bytes(),
        });
    }
    streams.retain(|s| !s.entries.is_empty());
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
