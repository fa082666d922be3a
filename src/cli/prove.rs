//! `daftari prove SEQ [--data-dir DIR] [--chain]` prints a self-contained inclusion proof of
//! one entry, found by its seq or by `--selector`, `--line`, `--from` and `--to`;
//! `daftari verify-proof FILE [--vkey VKEY [--anchors FILE...]] [--pubkey KEY]` checks one
//! without the ledger.
//!
//! Exit codes of verify-proof: 0 the proof holds, 1 it does not, 2 it could not be checked.

use std::path::PathBuf;

use daftari::proof::{self, Proof, Trust};
use daftari::seal::note::VKey;
use daftari::verify::AnchorFile;
use daftari::verify::{EXIT_BROKEN, EXIT_CANNOT_RUN, EXIT_INTACT};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true)
    .args(["seq", "selector", "line"])))]
pub struct ProveArgs {
    /// Sequence number of the entry (the `seq` of `daftari export`); or find it with
    /// --selector, --line, --from and --to.
    seq: Option<u64>,
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Also carry every seal from epoch 0, so the proof checks with `--pubkey` alone.
    #[arg(long)]
    chain: bool,
    /// Find the entry among these streams, e.g. '{job="sshd", host="web-1"}'.
    #[arg(long, conflicts_with = "seq")]
    selector: Option<String>,
    /// Find the entry whose line contains this text.
    #[arg(long, conflicts_with = "seq")]
    line: Option<String>,
    /// Find the entry at or after this time (RFC 3339, Unix seconds or nanoseconds, or a
    /// duration before now such as 1h).
    #[arg(long, conflicts_with = "seq")]
    from: Option<String>,
    /// Find the entry before this time.
    #[arg(long, conflicts_with = "seq")]
    to: Option<String>,
}

/// Candidates `prove` lists when a search matches more than one entry.
const MAX_CANDIDATES: usize = 20;

pub fn prove(args: ProveArgs) -> anyhow::Result<u8> {
    let seq = match args.seq {
        Some(seq) => seq,
        None => match find(&args) {
            Ok(seq) => seq,
            Err(e) => {
                eprintln!("daftari prove: {e}");
                return Ok(EXIT_CANNOT_RUN);
            }
        },
    };
    match proof::prove(&args.data_dir, seq, args.chain) {
        Ok(p) => {
            println!("{}", serde_json::to_string(&p)?);
            Ok(0)
        }
        Err(e) => {
            eprintln!("daftari prove: {e}");
            Ok(EXIT_CANNOT_RUN)
        }
    }
}

/// The seq of the one entry the search options match.
fn find(args: &ProveArgs) -> Result<u64, String> {
    let now = daftari::clock::now_ns();
    let time = |flag: &str, v: &Option<String>, default: i64| match v {
        None => Ok(default),
        Some(t) => super::parse_time(flag, t, now),
    };
    let range = (
        time("--from", &args.from, 0)?,
        time("--to", &args.to, now + 1)?,
    );
    if !daftari::store::segments_dir(&args.data_dir).is_dir() {
        return Err(format!("no ledger at {}", args.data_dir.display()));
    }
    let reader = daftari::store::Reader::new(&args.data_dir);
    let found = daftari::export::find(
        &reader,
        args.selector.as_deref(),
        range,
        args.line.as_deref(),
        MAX_CANDIDATES + 1,
    )
    .map_err(|e| e.to_string())?;
    match found.as_slice() {
        [] => Err("no entry matches (check --selector, --line, --from and --to)".into()),
        [one] => Ok(one.seq),
        many => {
            let count = if many.len() > MAX_CANDIDATES {
                format!("more than {MAX_CANDIDATES}")
            } else {
                many.len().to_string()
            };
            let mut msg = format!("{count} entries match; give one's seq, or narrow the search:");
            for f in many.iter().take(MAX_CANDIDATES) {
                msg.push_str(&format!("\n  seq {}  ts {}  {}", f.seq, f.ts_ns, f.line));
            }
            Err(msg)
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The proof file (`daftari prove` output).
    file: PathBuf,
    /// Your off-box copy of the checkpoint verifier key.
    #[arg(long)]
    vkey: Option<String>,
    /// Checkpoints exported off the box: the proof's checkpoint must agree with them.
    #[arg(long, num_args = 1..)]
    anchors: Vec<PathBuf>,
    /// Your off-box copy of the epoch-0 public key (needs a proof made with --chain).
    #[arg(long)]
    pubkey: Option<String>,
}

pub fn verify_proof(args: CheckArgs) -> anyhow::Result<u8> {
    let cannot = |what: String| {
        eprintln!("daftari verify-proof: {what}");
        Ok(EXIT_CANNOT_RUN)
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => return cannot(format!("{}: {e}", args.file.display())),
    };
    let p: Proof = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => return cannot(format!("{}: not a proof: {e}", args.file.display())),
    };
    let pubkey = match args.pubkey.as_deref().map(daftari::seal::decode_pk) {
        None => None,
        Some(Ok(pk)) => Some(pk),
        Some(Err(e)) => return cannot(format!("--pubkey: {e}")),
    };
    let vkey = match args.vkey.as_deref().map(VKey::parse) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => return cannot(format!("--vkey: {e}")),
    };
    let mut anchors = Vec::new();
    for file in &args.anchors {
        let Some(k) = &vkey else {
            return cannot("--anchors needs --vkey".into());
        };
        let notes = match AnchorFile::read(file) {
            Ok(f) => f.notes,
            Err(e) => return cannot(format!("--anchors {e}")),
        };
        anchors.extend(notes.iter().filter_map(|n| k.open(n).ok()));
    }
    if pubkey.is_some() && p.chain.is_empty() {
        return cannot("--pubkey needs a proof made with `daftari prove --chain`".into());
    }
    if pubkey.is_none() && vkey.is_none() {
        return cannot("give --vkey (with --anchors) or --pubkey (with a --chain proof)".into());
    }
    let trust = Trust {
        pubkey: pubkey.as_ref(),
        vkey: vkey.as_ref(),
        anchors,
    };
    match proof::check(&p, &trust) {
        Ok(c) => {
            println!(
                "proof holds: seq {} is in the ledger, {}, sealed at epoch {}",
                p.seq, c.how, c.epoch
            );
            for t in c.trust {
                println!("  {t}");
            }
            println!("entry (decoded from the proved record): {}", c.entry);
            Ok(EXIT_INTACT)
        }
        Err(e) => {
            println!("PROOF FAILS: {e}");
            Ok(EXIT_BROKEN)
        }
    }
}
