//! The seal benchmark behind `daftari bench seal`: the cost of one epoch end (seal, sign,
//! commit with fsync, replace the key file with fsyncs) and of checking a seal chain. It
//! prints figures; it asserts nothing.
//!
//! Must not: touch a data directory it did not create.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::seal::record::SealKind;
use crate::seal::{Sealer, check, store};
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
    let seals = store::read_all(&dir)
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
