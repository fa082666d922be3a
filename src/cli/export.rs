//! `daftari export [--data-dir DIR] [--from T] [--to T] [--selector '{...}']
//! [--format jsonl|loki-json]`: streams entries out of the ledger on stdout, read-only (it
//! works while the server runs), with a progress bar on a terminal.
//!
//! Times take Loki's forms: RFC 3339, Unix seconds or nanoseconds, `now`, or a duration
//! before now (`24h`). Exit codes: 0 done,
//! 2 bad arguments or an unreadable ledger.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use daftari::export::{self, Format, Options, Progress};
use daftari::store::Reader;
use daftari::verify::EXIT_CANNOT_RUN;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Earliest timestamp (inclusive): RFC 3339, Unix seconds or nanoseconds, `now`, or a
    /// duration before now such as 24h [default: the beginning].
    #[arg(long)]
    from: Option<String>,
    /// Latest timestamp (exclusive), in the same forms [default: now].
    #[arg(long)]
    to: Option<String>,
    /// A LogQL stream selector, e.g. '{job="sshd", host=~"web-.*"}' [default: every stream].
    #[arg(long)]
    selector: Option<String>,
    /// jsonl: one object per entry with everything recorded; loki-json: one Loki push body
    /// per line, to POST into any Loki.
    #[arg(long, default_value = "jsonl", value_parser = parse_format)]
    format: Format,
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "jsonl" => Ok(Format::Jsonl),
        "loki-json" => Ok(Format::LokiJson),
        _ => Err("expected jsonl or loki-json".into()),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let now = daftari::clock::now_ns();
    let time = |flag: &str, v: &Option<String>, default: i64| match v {
        None => Ok(default),
        Some(t) => super::parse_time(flag, t, now),
    };
    let range =
        time("--from", &args.from, 0).and_then(|from| Ok((from, time("--to", &args.to, now + 1)?)));
    let (from_ns, to_ns) = match range {
        Ok(r) => r,
        Err(e) => {
            eprintln!("daftari export: {e}");
            return Ok(EXIT_CANNOT_RUN);
        }
    };
    if !store_exists(&args.data_dir) {
        eprintln!("daftari export: no ledger at {}", args.data_dir.display());
        return Ok(EXIT_CANNOT_RUN);
    }
    let opts = Options {
        selector: args.selector,
        from_ns,
        to_ns,
        format: args.format,
    };
    let reader = Reader::new(&args.data_dir);
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = std::thread::scope(|s| {
        if std::io::stderr().is_terminal() {
            s.spawn(|| super::progress_bar(&progress.total, &progress.done, &done));
        }
        let r = export::run(&reader, &opts, &mut out, &progress);
        done.store(true, Ordering::Release);
        r
    });
    // A reader that closed the pipe (`| head`) wanted no more: that ends the export quietly.
    let closed = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    let flushed = out.flush();
    match result {
        Err(export::ExportError::Write(e)) if closed(&e) => Ok(0),
        Ok(_) if flushed.as_ref().is_err_and(closed) => Ok(0),
        Ok(n) => {
            flushed?;
            eprintln!("daftari export: {n} entries");
            Ok(0)
        }
        Err(e @ export::ExportError::Selector(_)) => {
            eprintln!("daftari export: {e}");
            Ok(EXIT_CANNOT_RUN)
        }
        Err(e) => Err(e.into()),
    }
}

fn store_exists(data_dir: &std::path::Path) -> bool {
    daftari::store::segments_dir(data_dir).is_dir()
}
