//! `daftari init [--config FILE] [--data-dir DIR]`: creates the log before the first start:
//! the ledger with its origin and random log id, the epoch-0 key, and the checkpoint key. It
//! prints the epoch-0 public key and the checkpoint verifier key, which the operator keeps off
//! the box (verify never trusts the copies beside the ledger). `serve` does the same on a
//! first start without `init`.
//!
//! Exit codes: 0 created, 2 already created or could not create.

use std::path::PathBuf;

use anyhow::Context;
use daftari::config::{Config, Overrides};
use daftari::seal::note::NoteSigner;
use daftari::seal::{Sealer, encode_pk};
use daftari::store::{self, Reader};
use daftari::verify::EXIT_CANNOT_RUN;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config file (its data_dir and origin are used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let flags = Overrides {
        data_dir: args.data_dir,
        ..Overrides::default()
    };
    let cfg = Config::load(args.config.as_deref(), &flags)?;
    let data = cfg.data_dir.clone();
    if daftari::seal::chain_db::seals_path(&data).exists()
        || daftari::seal::keys::key_path(&data).exists()
    {
        eprintln!(
            "daftari init: {} already holds a log; its keys were printed when it was created",
            data.display()
        );
        return Ok(EXIT_CANNOT_RUN);
    }
    daftari::seal::forbid_core_dumps().context("disable core dumps")?;
    let (ledger, _appender, _reader) =
        store::open(cfg.store.clone()).context("create the ledger")?;
    ledger.close().context("close the ledger")?;
    let reader = Reader::new(&data);
    let meta = reader
        .segments()?
        .first()
        .map(|s| s.meta.clone())
        .context("the new ledger has no segment")?;
    let (sealer, pk) =
        Sealer::open(&data, &meta.origin, reader.index()?).map_err(anyhow::Error::msg)?;
    drop(sealer);
    let pk = pk.context("the seal chain already existed")?;
    let (_signer, vkey) = NoteSigner::open(&data, &meta.origin).map_err(anyhow::Error::msg)?;
    let vkey = vkey.context("the checkpoint key already existed")?;
    println!("origin: {}", meta.origin);
    println!("log id: {}", hex::encode(meta.log_id));
    println!("epoch-0 public key: {}", encode_pk(&pk));
    println!("checkpoint verifier key: {vkey}");
    eprintln!(
        "daftari: keep both keys OFF this box (a password manager, the audit team's wiki, a \
         printout): `daftari verify --pubkey <epoch-0 key> --vkey <verifier key>` and \
         `daftari verify-proof` check with them, never with the copies here"
    );
    Ok(0)
}
