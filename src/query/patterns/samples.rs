//! A cluster's counts over time: one sample per 10 s in which lines matched, in chunks of at
//! most an hour, and their sums per step of a query, as Loki's pattern ingester keeps and
//! answers them.
//!
//! Owns: Loki's rules: a sample's time is its line's time truncated to 10 s; a chunk holds
//! samples less than an hour after its first; a line older than the newest sample is not
//! counted; per step, a chunk answers from the step of its first sample in range to the step
//! of its last, with zeros in between (at a 10 s step, its samples as they are).
//!
//! Must not: know patterns, levels or streams.

use std::collections::BTreeMap;

/// Loki's `SampleInterval` (and the least step a query gets), in milliseconds.
pub const SAMPLE_MS: i64 = 10_000;
/// Loki's `MaxChunkAge`, in milliseconds.
const CHUNK_MS: i64 = 3_600_000;

/// Samples `(time in ms, count)`, chunk by chunk.
#[derive(Debug, Default)]
pub struct Chunks(Vec<Vec<(i64, i64)>>);

fn truncate(ts: i64, step: i64) -> i64 {
    ts - ts.rem_euclid(step)
}

impl Chunks {
    /// Counts a line at `ts_ms`; whether that took a new sample.
    pub fn add(&mut self, ts_ms: i64) -> bool {
        let t = truncate(ts_ms, SAMPLE_MS);
        let Some(last) = self.0.last_mut().filter(|c| !c.is_empty()) else {
            self.0.push(vec![(t, 1)]);
            return true;
        };
        let chunk_start = last[0].0;
        let Some(newest) = last.last_mut() else {
            return false;
        };
        if newest.0 == t {
            newest.1 += 1;
            return false;
        }
        if t - chunk_start >= CHUNK_MS {
            self.0.push(vec![(t, 1)]);
            return true;
        }
        if ts_ms < newest.0 {
            return false;
        }
        last.push((t, 1));
        true
    }

    /// Adds the counts in `[from, through)` per `step` (all in ms) into `out`.
    pub fn sum_into(&self, from: i64, through: i64, step: i64, out: &mut BTreeMap<i64, i64>) {
        for c in &self.0 {
            for (t, v) in for_range(c, from, through, step) {
                *out.entry(t).or_default() += v;
            }
        }
    }
}

fn for_range(c: &[(i64, i64)], start: i64, end: i64, step: i64) -> Vec<(i64, i64)> {
    let (Some(&(first, _)), Some(&(last, _))) = (c.first(), c.last()) else {
        return Vec::new();
    };
    if start >= end || first >= end || last < start {
        return Vec::new();
    }
    let lo = if start > first {
        c.partition_point(|s| s.0 < start)
    } else {
        0
    };
    let hi = if end < last {
        c.partition_point(|s| s.0 < end)
    } else {
        c.len()
    };
    if lo >= hi {
        return Vec::new();
    }
    let c = &c[lo..hi];
    if step == SAMPLE_MS {
        return c.to_vec();
    }
    let mut current = truncate(c[0].0, step);
    let mut out = vec![(current, 0)];
    for &(t, v) in c {
        if t >= current + step {
            let at = truncate(t, step);
            let mut k = current + step;
            while k <= at {
                out.push((k, 0));
                k += step;
            }
            current = at;
        }
        if let Some(l) = out.last_mut() {
            l.1 += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_10s_buckets_and_steps_fill_zeros_between_them() {
        let mut c = Chunks::default();
        for t in [1_000, 5_000, 12_000, 65_000] {
            c.add(t);
        }
        let mut raw = BTreeMap::new();
        c.sum_into(0, 100_000, SAMPLE_MS, &mut raw);
        assert_eq!(
            raw.into_iter().collect::<Vec<_>>(),
            [(0, 2), (10_000, 1), (60_000, 1)]
        );
        let mut by20 = BTreeMap::new();
        c.sum_into(0, 100_000, 20_000, &mut by20);
        assert_eq!(
            by20.into_iter().collect::<Vec<_>>(),
            [(0, 3), (20_000, 0), (40_000, 0), (60_000, 1)]
        );
    }

    #[test]
    fn a_chunk_holds_an_hour_and_an_older_line_is_not_counted() {
        let mut c = Chunks::default();
        assert!(c.add(0));
        assert!(c.add(20_000));
        assert!(!c.add(10_000));
        assert!(c.add(CHUNK_MS));
        assert_eq!(c.0.len(), 2);
        let mut out = BTreeMap::new();
        c.sum_into(15_000, CHUNK_MS + 1, SAMPLE_MS, &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            [(20_000, 1), (CHUNK_MS, 1)]
        );
    }
}
