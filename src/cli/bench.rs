//! `daftari bench ledger`: prints durable append and verify throughput. `daftari bench
//! query`: prints the latency of the queries Grafana and alert rules send.

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Durable appends per second (1 and N appenders) and verify entries per second.
    Ledger(Args),
    /// Query latency over a ledger of security lines spread over a day.
    Query(QueryArgs),
    /// The cost of one epoch end (seal, fsyncs, key rotation) and of checking seals.
    Seal(SealArgs),
}

#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Scratch directory (removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Epochs to seal.
    #[arg(long, default_value_t = 500)]
    epochs: usize,
    /// Entries per ingest run with and without sealing (0: skip that part); enough to fill
    /// more than one segment of the default size.
    #[arg(long, default_value_t = 6_000_000)]
    ingest_entries: u64,
    /// Segment size of the ingest runs (the server's default).
    #[arg(long, default_value_t = daftari::store::DEFAULT_SEGMENT_MAX_BYTES)]
    segment_max_bytes: u64,
    /// Ingest runs of each kind (medians are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Scratch directory for the benchmark ledger (removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Entries in the ledger.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Hosts the entries come from (each with 5 jobs).
    #[arg(long, default_value_t = 20)]
    hosts: usize,
    /// Time span the entries cover, ending now.
    #[arg(long, default_value = "24h", value_parser = parse_span)]
    span: std::time::Duration,
    /// Runs per query (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Segment layouts to build the ledger in (`1,2` times both, with their ratio).
    #[arg(long, value_delimiter = ',', default_value = "2")]
    segment_format: Vec<u32>,
    /// Times only the queries whose name contains this text (case-insensitive).
    #[arg(long, default_value = "")]
    only: String,
}

fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    daftari::config::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration"))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scratch directory for the benchmark ledgers (removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Entries per append run.
    #[arg(long, default_value_t = 2_000_000)]
    entries: u64,
    /// Entries per append.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Bytes per line at least: shorter lines get random fields appended (0: lines as the
    /// generator writes them, about 170 bytes on average).
    #[arg(long, default_value_t = 0)]
    line_bytes: usize,
    /// Concurrent appenders, one run setting per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    appenders: Vec<usize>,
    /// Entries of the ledger verify is timed on (0 skips it).
    #[arg(long, default_value_t = 5_000_000)]
    verify_entries: u64,
    /// Runs per setting (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Segment rotation size for the benchmark ledgers.
    #[arg(long, default_value_t = daftari::store::DEFAULT_SEGMENT_MAX_BYTES)]
    segment_max_bytes: u64,
    /// Segment layouts to run, alternately (`1,2` compares them side by side).
    #[arg(long, value_delimiter = ',', default_value = "2")]
    segment_format: Vec<u32>,
    /// Entries per second all appenders send together; 0 sends as fast as the ledger takes
    /// them (saturation).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// zstd level of v2 blocks (the server's `segment_zstd_level`).
    #[arg(long, default_value_t = daftari::store::StoreConfig::new("").segment_zstd_level)]
    zstd_level: i32,
    /// Keep each append run's ledger under --dir instead of removing it.
    #[arg(long)]
    keep: bool,
}

pub fn run(which: Which) -> anyhow::Result<u8> {
    let a = match which {
        Which::Ledger(a) => a,
        Which::Seal(s) => {
            anyhow::ensure!(s.epochs > 0, "--epochs must be positive");
            daftari::bench::seal::run(&s.dir, s.epochs)?;
            if s.ingest_entries > 0 {
                daftari::bench::seal::ingest(
                    &s.dir,
                    s.ingest_entries,
                    s.runs.max(1),
                    s.segment_max_bytes,
                )?;
            }
            return Ok(0);
        }
        Which::Query(q) => {
            anyhow::ensure!(
                q.hosts > 0 && q.entries > 0,
                "--hosts and --entries must be positive"
            );
            anyhow::ensure!(
                !q.segment_format.is_empty()
                    && q.segment_format.iter().all(|f| (1..=2).contains(f)),
                "--segment-format takes 1 and/or 2"
            );
            daftari::bench::query::run(&daftari::bench::query::Options {
                dir: q.dir,
                entries: q.entries,
                hosts: q.hosts,
                span: q.span,
                runs: q.runs,
                formats: q.segment_format,
                only: q.only,
            })?;
            return Ok(0);
        }
    };
    anyhow::ensure!(
        a.batch > 0 && a.runs > 0,
        "--batch and --runs must be positive"
    );
    anyhow::ensure!(
        !a.appenders.is_empty() && !a.appenders.contains(&0),
        "--appenders must be positive"
    );
    anyhow::ensure!(
        !a.segment_format.is_empty() && a.segment_format.iter().all(|f| (1..=2).contains(f)),
        "--segment-format takes 1 and/or 2"
    );
    daftari::bench::run(&daftari::bench::Options {
        dir: a.dir,
        entries: a.entries,
        batch: a.batch,
        line_bytes: a.line_bytes,
        appenders: a.appenders,
        verify_entries: a.verify_entries,
        runs: a.runs,
        segment_max_bytes: a.segment_max_bytes,
        formats: a.segment_format,
        rate: a.rate,
        zstd_level: a.zstd_level,
        keep: a.keep,
    })?;
    Ok(0)
}
