//! The seal benchmark behind `daftari bench seal`: the cost of one epoch end (seal, sign,
//! commit with fsync, replace the key file with fsyncs), of checking a seal chain, durable
//! ingest with a sealer running beside the writer against the same without, and verify speed
//! with seals and Merkle roots. It prints figures; it asserts nothing.
//!
//! Must not: touch a data directory it did not create.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::seal::record::SealKind;
use crate::seal::{Sealer, chain_db, check};
use crate::store::StreamIndex;

/// Seals `epochs` epochs in a scratch directory and reports the median epoch end, then checks
/// the chain and reports seals verified per second.
pub fn run(dir: &Path, epochs: usize) -> anyhow::Result<()> {
    let dir = super::scratch(dir, "seal")?;
    let index = Arc::new(StreamIndex::default());
    let (mut sealer, pk) = Sealer::open(&dir, "bench", index).map_err(anyhow::Error::msg)?;
    let pk0 = pk.ok_or_else(|| anyhow::anyhow!("the scratch directory was not empty"))?;
    let mut times = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let t = Instant::now();
        sealer.seal(SealKind::Epoch).map_err(anyhow::Error::msg)?;
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "epoch end ({epochs} epochs): median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    drop(sealer);
    let seals = chain_db::read_all(&dir)
        .map_err(anyhow::Error::msg)?
        .unwrap_or_default();
    let genesis = [0u8; 32];
    let t = Instant::now();
    let out = check::check(&seals, &pk0, "bench", &|_| check::HeadAt::Known(genesis));
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(out.breaks.is_empty(), "the benchmark chain did not verify");
    println!(
        "seal chain check: {} seals in {:.3} s, {:.0} seals/s (one thread)",
        out.epochs,
        secs,
        out.epochs as f64 / secs
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Ingest with sealing (1 s epochs, the shortest allowed; runs long enough that segments
/// rotate, so close seals with their Merkle roots happen during the run) against ingest
/// without, runs alternating; then verify with the pinned key over the last sealed ledger.
pub fn ingest(
    base: &Path,
    entries: u64,
    runs: usize,
    segment_max_bytes: u64,
) -> anyhow::Result<()> {
    let opts = super::Options {
        dir: base.to_owned(),
        entries,
        batch: 1000,
        line_bytes: 120,
        appenders: vec![8],
        verify_entries: 0,
        runs,
        segment_max_bytes,
        formats: vec![crate::store::DEFAULT_SEGMENT_FORMAT],
        rate: 0,
        zstd_level: crate::store::StoreConfig::new(base).segment_zstd_level,
        keep: false,
    };
    println!(
        "ingest: {entries} entries per run, 8 appenders, batches of 1000, {} MiB segments, \
         1 s epochs, {runs} run(s) each, alternating",
        segment_max_bytes >> 20
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut last_sealed = None;
    for r in 0..runs {
        for sealing in [None, Some(Duration::from_secs(1))] {
            let dir = super::scratch(base, &format!("ingest-{r}-{}", sealing.is_some()))?;
            let run = super::append_run(&dir, &opts, 8, entries, sealing, opts.formats[0])?;
            let label = if sealing.is_some() {
                "sealing on "
            } else {
                "sealing off"
            };
            println!("  {label} run={r}: {:.0} entries/s", run.entries_per_s);
            if sealing.is_some() {
                on.push(run.entries_per_s);
                if let Some(old) = last_sealed.replace(dir) {
                    std::fs::remove_dir_all(old)?;
                }
            } else {
                off.push(run.entries_per_s);
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    let (off, on) = (super::median(off), super::median(on));
    println!(
        "ingest: median {off:.0} entries/s without sealing, {on:.0} with; ratio {:.3}",
        on / off
    );
    if let Some(dir) = last_sealed {
        close_seal_cost(&dir)?;
        verify_sealed(&dir)?;
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// What the sealer does for one closed segment before its close seal: re-read it, re-chain
/// it, build its Merkle root, hash its file.
fn close_seal_cost(dir: &Path) -> anyhow::Result<()> {
    let closed = crate::store::archive::list(dir)?;
    let Some((index, path)) = closed.first() else {
        return Ok(());
    };
    let bytes = std::fs::metadata(path)?.len();
    let t = Instant::now();
    let s = crate::store::archive::summarize(dir, *index)?;
    let took = t.elapsed();
    println!(
        "segment-close summary: {} entries, {:.0} MiB, {:.0} ms ({:.0} entries/s)",
        s.count,
        bytes as f64 / 1048576.0,
        ms(took),
        s.count as f64 / took.as_secs_f64()
    );
    Ok(())
}

/// Verify with the pinned key over a sealed ledger: seals, close seals, Merkle roots.
fn verify_sealed(dir: &Path) -> anyhow::Result<()> {
    let pk = std::fs::read_to_string(dir.join(crate::seal::EPOCH0_PUB_FILE))?;
    let pk = crate::seal::decode_pk(&pk).map_err(anyhow::Error::msg)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = crate::verify::Options {
        data_dir: dir.to_owned(),
        jobs,
        pubkey: Some(pk),
        anchors: None,
        retention: None,
        state: None,
    };
    let report = crate::verify::run(&opts, &crate::verify::Progress::default())?;
    anyhow::ensure!(
        report.intact(),
        "the sealed ledger did not verify: {:?}",
        report.first_break
    );
    println!(
        "verify with seals and Merkle roots ({jobs} threads): {}",
        report.summary()
    );
    for n in report.notes.iter().filter(|n| n.starts_with("seal chain")) {
        println!("  {n}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
