//! Windows of a range aggregation: the figures kept per bucket ([`Agg`]), merging them, and
//! the value of each function over a window, with Prometheus's quantile and counter rate.
//!
//! Must not: read records or know about series.

use super::super::logql::ast::{RangeAgg, RangeOp};

/// Figures of the samples in one bucket or window.
#[derive(Debug, Clone)]
pub(super) struct Agg {
    pub(super) count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: (i64, f64),
    last: (i64, f64),
    mean: f64,
    m2: f64,
    raw: Vec<(i64, f64)>,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: (i64::MAX, 0.0),
            last: (i64::MIN, 0.0),
            mean: 0.0,
            m2: 0.0,
            raw: Vec::new(),
        }
    }
}

impl Agg {
    pub(super) fn add(&mut self, ts: i64, v: f64, keep_raw: bool) {
        self.merge(
            &Agg {
                count: 1,
                sum: v,
                min: v,
                max: v,
                first: (ts, v),
                last: (ts, v),
                mean: v,
                m2: 0.0,
                raw: if keep_raw { vec![(ts, v)] } else { Vec::new() },
            },
            keep_raw,
        );
    }

    /// `count` samples adding up to `sum`, the first at `first_ts` and the last at
    /// `last_ts`, for the functions that read only the count and the sum (count, rate,
    /// bytes, absent): the other figures are those of `count` equal samples.
    pub(super) fn add_many(&mut self, (first_ts, last_ts): (i64, i64), count: u64, sum: f64) {
        if count == 0 {
            return;
        }
        let mean = sum / count as f64;
        self.merge(
            &Agg {
                count,
                sum,
                min: mean,
                max: mean,
                first: (first_ts, mean),
                last: (last_ts, mean),
                mean,
                m2: 0.0,
                raw: Vec::new(),
            },
            false,
        );
    }

    pub(super) fn merge(&mut self, o: &Agg, keep_raw: bool) {
        if o.count == 0 {
            return;
        }
        let (na, nb) = (self.count as f64, o.count as f64);
        let n = na + nb;
        let delta = o.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += o.m2 + delta * delta * na * nb / n;
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.first.0 < self.first.0 {
            self.first = o.first;
        }
        if o.last.0 >= self.last.0 {
            self.last = o.last;
        }
        if keep_raw {
            self.raw.extend_from_slice(&o.raw);
        }
    }
}

pub(super) fn window_value(
    r: &RangeAgg,
    w: &mut Agg,
    range_s: f64,
    window: (i64, i64),
) -> Option<f64> {
    let n = w.count as f64;
    Some(match r.op {
        RangeOp::Count => n,
        RangeOp::Rate if r.unwrap.is_some() => w.sum / range_s,
        RangeOp::Rate => n / range_s,
        RangeOp::Bytes | RangeOp::Sum => w.sum,
        RangeOp::BytesRate => w.sum / range_s,
        RangeOp::Avg => w.sum / n,
        RangeOp::Min => w.min,
        RangeOp::Max => w.max,
        RangeOp::First => w.first.1,
        RangeOp::Last => w.last.1,
        RangeOp::Stdvar => w.m2 / n,
        RangeOp::Stddev => (w.m2 / n).sqrt(),
        RangeOp::Quantile => {
            let mut vals: Vec<f64> = w.raw.iter().map(|(_, v)| *v).collect();
            quantile(r.param.unwrap_or(0.5), &mut vals)
        }
        RangeOp::RateCounter => {
            w.raw.sort_by_key(|(t, _)| *t);
            counter_rate(&w.raw, window)?
        }
        RangeOp::Absent => 1.0,
    })
}

/// Prometheus's φ-quantile with linear interpolation.
fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(f64::total_cmp);
    let rank = q * (vals.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(vals.len() - 1);
    let w = rank - lo as f64;
    vals[lo] * (1.0 - w) + vals[hi] * w
}

/// The extrapolated counter rate over `(start, end]`, step for step as Loki computes it
/// (Prometheus's rule, with the zero point applied after the start threshold). A window with
/// fewer than two samples is 0, not absent: Loki keeps such series.
fn counter_rate(s: &[(i64, f64)], (start, end): (i64, i64)) -> Option<f64> {
    if s.len() < 2 {
        return Some(0.0);
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    let mut prev = 0.0;
    for &(_, v) in s {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let secs = |ns: i64| ns as f64 / 1e9;
    let sampled = secs(last.0 - first.0);
    let avg = sampled / (s.len() - 1) as f64;
    let threshold = avg * 1.1;
    let mut to_start = secs(first.0 - start);
    let mut to_end = secs(end - last.0);
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if result > 0.0 && first.1 >= 0.0 {
        to_start = to_start.min(sampled * (first.1 / result));
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let interval = sampled + to_start + to_end;
    Some(result * (interval / sampled) / secs(end - start))
}
