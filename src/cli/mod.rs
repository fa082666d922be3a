//! Command-line parsing: one file per subcommand, each turning its flags into validated
//! options for a library call and an exit code.
//!
//! Must not: hold logic a test cannot reach without a process.

mod bench;
mod checkpoint;
mod export;
mod init;
mod loadgen;
mod prove;
mod serve;
mod soak;
mod spawn;
mod token;
mod verify;

use clap::{Parser, Subcommand};

/// daftari: an append-only, tamper-evident log sink for Loki clients.
#[derive(Debug, Parser)]
#[command(name = "daftari", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the log (ledger, epoch-0 key, checkpoint key) and print its public keys.
    Init(init::Args),
    /// Run the server: the push listener and the loopback-only local listener.
    Serve(serve::Args),
    /// Create, list and revoke push tokens (also while the server runs).
    #[command(subcommand)]
    Token(token::Cmd),
    /// Audit the ledger offline: re-hash every record, check every link, report the first break.
    Verify(verify::Args),
    /// Print the newest exported checkpoint (a signed note of the log's size and head).
    Checkpoint(checkpoint::Args),
    /// Stream entries out of the ledger (read-only; works while the server runs).
    Export(export::Args),
    /// Print a self-contained proof that one entry is in the sealed ledger (by its seq, or
    /// found by --selector and --line), for an auditor.
    Prove(prove::ProveArgs),
    /// Check an inclusion proof without the ledger, with your off-box keys.
    VerifyProof(prove::CheckArgs),
    /// Push Alloy-like load at a server and print entries/s, latency and peak RSS.
    Loadgen(loadgen::Args),
    /// Push at a steady rate from many tokens for a long run while querying and verifying;
    /// print RSS and latency over time and the final verdict.
    Soak(soak::Args),
    /// Measure the ledger: durable appends per second and verify speed.
    #[command(subcommand)]
    Bench(bench::Which),
}

/// Parses the command line and runs the subcommand; returns the exit code.
pub fn run() -> anyhow::Result<u8> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() {
                daftari::verify::EXIT_CANNOT_RUN
            } else {
                0
            });
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        tool_logging();
    }
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Verify(args) => verify::run(args),
        Command::Checkpoint(args) => checkpoint::run(args),
        Command::Export(args) => export::run(args),
        Command::Prove(args) => prove::prove(args),
        Command::VerifyProof(args) => prove::verify_proof(args),
        Command::Bench(which) => bench::run(which),
        Command::Loadgen(args) => loadgen::run(args),
        Command::Soak(args) => soak::run(args),
    }
}

/// Warnings and errors of the library (a store failure during `bench` or `soak`, say) as
/// plain lines on stderr for every command but `serve`, which sets up its own logging.
/// `DAFTARI_LOG` chooses the level, as for the server.
fn tool_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAFTARI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Draws a progress bar on stderr from two counters until `finished`.
fn progress_bar(
    total: &std::sync::atomic::AtomicU64,
    done: &std::sync::atomic::AtomicU64,
    finished: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while !finished.load(Ordering::Acquire) {
        bar.set_length(total.load(Ordering::Relaxed));
        bar.set_position(done.load(Ordering::Relaxed));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// The forms a time argument (`--from`, `--to`) takes, as Loki's tools take them.
const TIME_FORMS: &str = "RFC 3339 (2026-11-01T00:00:00Z), Unix seconds or nanoseconds, \
                          `now`, or a duration before now (24h, 7d, 90m)";

/// A time argument, in ns since the Unix epoch; `now_ns` anchors relative ones.
fn parse_time(flag: &str, v: &str, now_ns: i64) -> Result<i64, String> {
    if v == "now" {
        return Ok(now_ns);
    }
    if let Some(t) = daftari::query::params::parse_timestamp(v) {
        return Ok(t);
    }
    if let Some(d) = daftari::config::parse_duration(v) {
        let ago = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        return Ok(now_ns.saturating_sub(ago));
    }
    Err(format!("{flag}: {v:?} is not a time: give {TIME_FORMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_loki_forms_and_errors_name_them() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(parse_time("--from", "now", now), Ok(now));
        assert_eq!(
            parse_time("--from", "24h", now),
            Ok(now - 86_400_000_000_000)
        );
        assert_eq!(
            parse_time("--from", "1700000000", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("--from", "2026-11-01T00:00:00Z", now),
            Ok(1_793_491_200_000_000_000)
        );
        let e = parse_time("--from", "yesterday", now).unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("24h"), "{e}");
    }
}
