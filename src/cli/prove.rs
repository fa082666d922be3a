//! `daftari prove SEQ [--data-dir DIR] [--chain]` prints a self-contained inclusion proof of
//! one entry; `daftari verify-proof FILE [--vkey VKEY [--anchors FILE...]] [--pubkey KEY]`
//! checks one without the ledger.
//!
//! Exit codes of verify-proof: 0 the proof holds, 1 it does not, 2 it could not be checked.

use std::path::PathBuf;

use daftari::proof::{self, Proof, Trust};
use daftari::seal::note::{VKey, split_notes};
use daftari::verify::{EXIT_BROKEN, EXIT_CANNOT_RUN, EXIT_INTACT};

#[derive(Debug, clap::Args)]
pub struct ProveArgs {
    /// Sequence number of the entry (as `verify` and the read API's audit report it).
    seq: u64,
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Also carry every seal from epoch 0, so the proof checks with `--pubkey` alone.
    #[arg(long)]
    chain: bool,
}

pub fn prove(args: ProveArgs) -> anyhow::Result<u8> {
    let p = proof::prove(&args.data_dir, args.seq, args.chain).map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string(&p)?);
    Ok(0)
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
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => return cannot(format!("{}: {e}", file.display())),
        };
        anchors.extend(split_notes(&text).iter().filter_map(|n| k.open(n).ok()));
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
                "proof holds: seq {} is entry {} of {} in segment {}, sealed at epoch {}",
                p.seq, p.leaf_index, p.leaf_count, p.segment, c.epoch
            );
            for t in c.trust {
                println!("  {t}");
            }
            println!("entry: {}", p.entry);
            Ok(EXIT_INTACT)
        }
        Err(e) => {
            println!("PROOF FAILS: {e}");
            Ok(EXIT_BROKEN)
        }
    }
}
