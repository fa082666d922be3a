//! `daftari loadgen`: pushes Alloy-like batches at a server and prints throughput, latency
//! and the server's peak RSS.
//!
//! With `--spawn` (the default when no `--url` is given) it starts its own `daftari serve`
//! on a scratch data directory with per-token rate limits off, so the figures are the
//! sink's, and stops it afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use daftari::config::parse_duration;
use daftari::loadgen::{self, Options, Protocol, Report};

use super::spawn::Spawned;

/// The spawned server's config: per-token rate limits off and the one token's share of the
/// push budget the whole budget, since it stands in for a whole fleet: the figures are the
/// sink's.
const UNLIMITED_TOKENS: &str = "[limits]\ntoken_entries_per_second = 0\n\
    token_bytes_per_second = 0\ntoken_max_inflight_pushes = 64\n\
    token_max_inflight_bytes = 268435456\n";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Push listener to load, e.g. 127.0.0.1:3100 (default: spawn a server).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// File holding the push token (with --addr).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// PID of the server, to report its peak RSS (with --addr).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Scratch data directory for the spawned server (removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured duration, e.g. 20s.
    #[arg(long, default_value = "20s", value_parser = duration)]
    duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "3s", value_parser = duration)]
    warmup: Duration,
    /// Entries per request.
    #[arg(long, default_value_t = 1000)]
    batch_entries: usize,
    /// Distinct streams (label sets) in the load.
    #[arg(long, default_value_t = 50)]
    streams: usize,
    /// Target entries/s over all connections (0: as fast as acknowledgements come).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Segment layout of the spawned server (1 or 2; default: the server's).
    #[arg(long)]
    segment_format: Option<u32>,
    /// The push API: Loki's push (protobuf + snappy), OTLP/HTTP logs (protobuf + gzip), or
    /// syslog (octet-counted RFC 5424 over TCP; spawned server only).
    #[arg(long, value_enum, default_value_t = Protocol::Loki)]
    protocol: Protocol,
}

pub(super) fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration such as 20s"))
}

/// A loopback port free now, for the spawned server's syslog listener.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The spawned server's syslog listener: plain TCP from loopback, as its bootstrap token.
fn syslog_config(port: u16) -> String {
    format!(
        "[syslog]\ntcp_listen = \"127.0.0.1:{port}\"\nmax_connections_per_peer = 64\n\
         [syslog.sources]\n\"127.0.0.1\" = \"bootstrap\"\n"
    )
}

/// The server under load: the one at `--addr`, or a spawned one.
struct Target {
    addr: std::net::SocketAddr,
    token: String,
    pid: Option<u32>,
    spawned: Option<Spawned>,
    /// A spawned server's syslog port and local listener (`--protocol syslog`).
    syslog: Option<(u16, std::net::SocketAddr)>,
}

fn target(args: &Args) -> anyhow::Result<Target> {
    if let Some(addr) = args.addr {
        let file = args
            .token_file
            .as_ref()
            .context("--addr needs --token-file")?;
        let token =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        return Ok(Target {
            addr,
            token: token.trim().to_string(),
            pid: args.server_pid,
            spawned: None,
            syslog: None,
        });
    }
    let mut config = UNLIMITED_TOKENS.to_owned();
    if let Some(f) = args.segment_format {
        config.push_str(&format!("[store]\nsegment_format = {f}\n"));
    }
    let port = match args.protocol {
        Protocol::Syslog => Some(free_port()?),
        _ => None,
    };
    if let Some(p) = port {
        config.push_str(&syslog_config(p));
    }
    let s = Spawned::start(args.data_dir.clone(), &config, &[])?;
    Ok(Target {
        addr: s.addr,
        token: s.token.clone(),
        pid: Some(s.child.id()),
        syslog: port.map(|p| (p, s.local)),
        spawned: Some(s),
    })
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let Target {
        addr,
        token,
        pid,
        spawned,
        syslog,
    } = target(&args)?;
    let opts = Options {
        addr,
        tokens: vec![token],
        connections: args.connections.max(1),
        duration: args.duration,
        warmup: args.warmup,
        batch_entries: args.batch_entries.max(1),
        streams: args.streams.max(1),
        rate: args.rate,
        protocol: args.protocol,
    };
    eprintln!(
        "loadgen: {:?} pushes, {} connections, {} entries/request, {} streams, {} s measured after {} s warm-up, rate {}",
        opts.protocol,
        opts.connections,
        opts.batch_entries,
        opts.streams,
        opts.duration.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        if opts.rate == 0 {
            "unlimited".to_string()
        } else {
            format!("{} entries/s", opts.rate)
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The server's disk writes over the measured window, sampled beside the load.
    let written = pid.map(|pid| {
        let (warmup, duration) = (opts.warmup, opts.duration);
        std::thread::spawn(move || {
            std::thread::sleep(warmup);
            let before = loadgen::write_bytes(pid);
            std::thread::sleep(duration);
            Some(loadgen::write_bytes(pid)?.saturating_sub(before?))
        })
    });
    if let Some((port, local)) = syslog {
        let syslog = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let r = rt.block_on(loadgen::syslog::run(&opts, syslog, local));
        println!(
            "entries/s {:.0} committed  MB/s {:.1} on the wire",
            r.entries as f64 / r.seconds.max(1e-9),
            r.wire_bytes as f64 / r.seconds / 1e6
        );
        print_rss(pid);
        return finish(written, r.entries, spawned);
    }
    anyhow::ensure!(
        args.protocol != Protocol::Syslog,
        "--protocol syslog spawns its own server; leave out --addr"
    );
    let report = rt.block_on(loadgen::run(&opts));
    print(&report, pid);
    finish(written, report.entries, spawned)
}

/// Prints the server's bytes written per entry and stops a spawned server.
fn finish(
    written: Option<std::thread::JoinHandle<Option<u64>>>,
    entries: u64,
    spawned: Option<Spawned>,
) -> anyhow::Result<u8> {
    if let Some(bytes) = written.and_then(|h| h.join().ok().flatten()) {
        println!(
            "server wrote {:.0} B per entry to disk in the measured window (/proc/PID/io write_bytes)",
            bytes as f64 / entries.max(1) as f64
        );
    }
    if let Some(s) = spawned {
        s.stop()?;
    }
    Ok(0)
}

fn print(r: &Report, pid: Option<u32>) {
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|(s, n)| {
            format!(
                "{n}x {}",
                if *s == 0 {
                    "conn-error".into()
                } else {
                    s.to_string()
                }
            )
        })
        .collect();
    println!(
        "entries/s {:.0}  MB/s {:.1} (lines; {:.1} on the wire)  requests {}  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  failures {}",
        r.entries_per_second(),
        r.line_bytes as f64 / r.seconds / 1e6,
        r.body_bytes as f64 / r.seconds / 1e6,
        r.requests,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3,
        if failures.is_empty() {
            "none".to_string()
        } else {
            failures.join(", ")
        },
    );
    print_rss(pid);
}

fn print_rss(pid: Option<u32>) {
    if let Some((peak, now)) = pid.and_then(loadgen::rss_kib) {
        println!(
            "server RSS peak {:.1} MiB  now {:.1} MiB",
            peak as f64 / 1024.0,
            now as f64 / 1024.0
        );
    }
}
