//! `daftari verify [--data-dir DIR] [--pubkey KEY] [--retention DURATION] [--state FILE]
//! [--vkey VKEY --anchors FILE...] [--json] [--jobs N]`.
//!
//! Exit codes: 0 intact, 1 integrity failure, 2 could not run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use daftari::verify::{self, Progress, Report};

/// Findings printed in text mode; `--json` carries them all.
const MAX_PRINTED_FINDINGS: usize = 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory (or a copy of it).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Threads to verify with (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Your off-box copy of the epoch-0 public key (base64, printed when the log was
    /// created): checks the seal chain. Never read from the data directory.
    #[arg(long)]
    pubkey: Option<String>,
    /// Your off-box copy of the checkpoint verifier key (`<origin>+<id>+<key>`, printed when
    /// the log was created). Needed with --anchors.
    #[arg(long)]
    vkey: Option<String>,
    /// Files of checkpoints exported off the box (as `checkpoints.note` or the JSON lines'
    /// notes hold them): each must match the ledger, and one newer than the ledger shows a
    /// truncation.
    #[arg(long, num_args = 1..)]
    anchors: Vec<PathBuf>,
    /// Your retention policy (e.g. 400d): segments removed by retention must have been kept
    /// at least this long. Needed once the log has pruned segments.
    #[arg(long, value_parser = parse_retention)]
    retention: Option<Duration>,
    /// Incremental mode: a file (kept off the box, like the keys) that remembers where the
    /// last intact run stopped; only newer seals and segments are checked, and the file is
    /// rewritten after an intact run. Needs --pubkey.
    #[arg(long)]
    state: Option<PathBuf>,
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    daftari::config::parse_duration(s).ok_or_else(|| "expected a duration such as 400d".into())
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let pubkey = match args.pubkey.as_deref().map(daftari::seal::decode_pk) {
        None => None,
        Some(Ok(pk)) => Some(pk),
        Some(Err(e)) => {
            eprintln!("daftari verify: --pubkey: {e}");
            return Ok(verify::EXIT_CANNOT_RUN);
        }
    };
    let anchors = match (&args.vkey, args.anchors.is_empty()) {
        (None, true) => None,
        (None, false) => {
            eprintln!("daftari verify: --anchors needs --vkey (your copy of the verifier key)");
            return Ok(verify::EXIT_CANNOT_RUN);
        }
        (Some(v), _) => match daftari::seal::note::VKey::parse(v) {
            Ok(k) => {
                let files: Result<Vec<_>, _> = args
                    .anchors
                    .iter()
                    .map(|p| verify::AnchorFile::read(p))
                    .collect();
                match files {
                    Ok(files) => Some((k, files)),
                    Err(e) => {
                        eprintln!("daftari verify: --anchors {e}");
                        return Ok(verify::EXIT_CANNOT_RUN);
                    }
                }
            }
            Err(e) => {
                eprintln!("daftari verify: --vkey: {e}");
                return Ok(verify::EXIT_CANNOT_RUN);
            }
        },
    };
    let opts = verify::Options {
        data_dir: args.data_dir.clone(),
        jobs,
        pubkey,
        anchors,
        retention: args.retention,
        state: args.state.clone(),
    };
    let progress = Progress::default();
    let show_bar = !args.json && std::io::stderr().is_terminal();
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if show_bar {
            s.spawn(|| super::progress_bar(&progress.total, &progress.done, &done));
        }
        let r = verify::run(&opts, &progress);
        done.store(true, Ordering::Release);
        r
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("daftari verify: cannot conclude: {e}");
            eprintln!("Try: daftari verify --data-dir <the directory that holds segments/>");
            return Ok(verify::EXIT_CANNOT_RUN);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    Ok(verify::exit_code(&report))
}

fn print_text(report: &Report) {
    if let Some(first) = &report.first_break {
        println!("FIRST BREAK: {first}");
        for f in report
            .findings
            .iter()
            .skip(1)
            .take(MAX_PRINTED_FINDINGS - 1)
        {
            println!("  also: {f}");
        }
        if report.findings.len() > MAX_PRINTED_FINDINGS {
            println!(
                "  ... {} findings in all (--json lists them)",
                report.findings.len()
            );
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for why in &report.inconclusive {
        println!("CANNOT CONCLUDE: {why}");
    }
    println!(
        "head after seq {}: {}",
        report.next_seq.saturating_sub(1),
        report.head
    );
    println!("{}", report.summary());
}
