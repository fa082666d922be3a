//! Request parameters as Loki reads them: the URL query merged with a form body, timestamps
//! in every form Loki accepts, steps, limits, direction and the encoding flags header.
//!
//! Owns: turning raw parameters into validated values, with Loki's error texts.
//!
//! Must not: run queries.

use axum::http::HeaderMap;

use super::error::QueryError;
use super::logql::{MAX_DURATION_NS, parse_duration};
use crate::store::Order;

/// Form bodies larger than this are refused: a query is at most
/// [`super::logql::MAX_QUERY_BYTES`], and a body carries a few more fields.
pub const MAX_FORM_BYTES: usize = 1 << 20;

/// Points a range query may produce per series.
pub const MAX_POINTS: i64 = 11_000;

/// Default look-back when `start` and `since` are both absent.
pub const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;

/// Timestamps beyond this (about the year 2116) are refused: with durations bounded by
/// [`MAX_DURATION_NS`], window arithmetic cannot overflow.
pub const MAX_TIMESTAMP_NS: i64 = i64::MAX / 2;

/// Default `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// The request header carrying encoding flags, and the one flag defined.
pub const FLAGS_HEADER: &str = "x-loki-response-encoding-flags";
pub const CATEGORIZE_LABELS: &str = "categorize-labels";

/// All parameters of a request, in order, repeats kept.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses the URL query and, for a form body, the body.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Result<Params, QueryError> {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            out.extend(
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .map_err(|e| QueryError::bad(format!("invalid query string: {e}")))?,
            );
        }
        if let Some(b) = form_body {
            out.extend(
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(b)
                    .map_err(|e| QueryError::bad(format!("invalid form body: {e}")))?,
            );
        }
        Ok(Params(out))
    }

    /// The first value of `name`, empty counting as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn query(&self) -> Result<&str, QueryError> {
        self.get("query")
            .ok_or_else(|| QueryError::bad("query parameter is required"))
    }

    /// A timestamp parameter in nanoseconds, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, QueryError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_timestamp(v)
                .filter(|t| t.abs() <= MAX_TIMESTAMP_NS)
                .ok_or_else(|| {
                    QueryError::bad(format!(
                        "invalid {name} parameter: cannot parse \"{v}\" to a valid timestamp"
                    ))
                }),
        }
    }

    /// `start`/`end` with Loki's defaults: end is now, start is `min(end, now) - since`.
    pub fn bounds(&self, now: i64) -> Result<(i64, i64), QueryError> {
        let end = self.time("end", now)?;
        let since = match self.get("since") {
            None => DEFAULT_SINCE_NS,
            Some(s) => parse_step(s)
                .ok_or_else(|| QueryError::bad(format!("invalid since parameter: {s:?}")))?,
        };
        let start = self.time("start", end.min(now) - since)?;
        Ok((start, end))
    }

    pub fn limit(&self) -> Result<usize, QueryError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n as usize),
                Ok(_) => Err(QueryError::bad("limit must be a positive value")),
                Err(_) => Err(QueryError::bad(format!(
                    "invalid limit parameter: cannot parse \"{v}\""
                ))),
            },
        }
    }

    pub fn direction(&self) -> Result<Order, QueryError> {
        match self
            .get("direction")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("backward") => Ok(Order::Backward),
            Some("forward") => Ok(Order::Forward),
            Some(_) => Err(QueryError::bad(format!(
                "invalid direction '{}'",
                self.get("direction").unwrap_or("")
            ))),
        }
    }

    /// `step` (or the default for the range), validated against the point cap.
    pub fn step(&self, start: i64, end: i64) -> Result<i64, QueryError> {
        let step = match self.get("step") {
            None => default_step(start, end),
            Some(s) => parse_step(s).ok_or_else(|| {
                QueryError::bad(format!(
                    "invalid step parameter: cannot parse \"{s}\" to a valid duration"
                ))
            })?,
        };
        if step <= 0 {
            return Err(QueryError::bad(
                "zero or negative query resolution step widths are not accepted. Try a \
                 positive integer",
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(QueryError::bad(
                "exceeded maximum resolution of 11,000 points per time series. Try increasing \
                 the value of the step parameter",
            ));
        }
        Ok(step)
    }

    /// `interval` (log queries: at most one entry per interval), if given.
    pub fn interval(&self) -> Result<Option<i64>, QueryError> {
        match self.get("interval") {
            None => Ok(None),
            Some(s) => match parse_step(s) {
                Some(ns) if ns >= 0 => Ok((ns > 0).then_some(ns)),
                _ => Err(QueryError::bad(format!(
                    "invalid interval parameter: {s:?}"
                ))),
            },
        }
    }
}

/// A metric range query's evaluation times, as Loki's query frontend places them: `start`
/// rounded down and `end` rounded up to multiples of `step` (from the Unix epoch), then every
/// multiple in between. A dashboard panel therefore draws the same points whatever its start.
pub fn aligned_times(start: i64, end: i64, step: i64) -> Vec<i64> {
    let first = start - start.rem_euclid(step);
    let last = match end.rem_euclid(step) {
        0 => end,
        r => end.saturating_add(step - r),
    };
    (0..=((last - first) / step))
        .map(|k| first + k * step)
        .collect()
}

/// `max(floor((end - start) / 250) in whole seconds, 1s)`.
pub fn default_step(start: i64, end: i64) -> i64 {
    let secs = ((end - start) / 250) / 1_000_000_000;
    secs.max(1) * 1_000_000_000
}

/// Whether the request asked for `categorize-labels`.
pub fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all(FLAGS_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == CATEGORIZE_LABELS)
}

/// Loki's timestamp forms: float seconds (with a `.`), integer seconds (up to 10 digits) or
/// nanoseconds, or RFC 3339.
pub fn parse_timestamp(v: &str) -> Option<i64> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        return Some(((f * 1000.0).round() as i64).saturating_mul(1_000_000));
    }
    if let Ok(n) = v.parse::<i64>() {
        let digits = v.trim_start_matches('-').len();
        return Some(if digits <= 10 {
            n.saturating_mul(1_000_000_000)
        } else {
            n
        });
    }
    crate::clock::parse_rfc3339(v)
}

/// A step: float seconds (`15`, `0.5`) or a Prometheus duration (`1m`, `500ms`).
pub fn parse_step(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        return (ns.is_finite() && ns.abs() <= MAX_DURATION_NS as f64).then(|| ns.round() as i64);
    }
    parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_form() {
        assert_eq!(
            parse_timestamp("4000000000"),
            Some(4_000_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1754400000123000000"),
            Some(1_754_400_000_123_000_000)
        );
        assert_eq!(
            parse_timestamp("1754400000.5"),
            Some(1_754_400_000_500_000_000)
        );
        assert_eq!(
            parse_timestamp("2025-08-05T13:20:00Z"),
            Some(1_754_400_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2025-08-05T15:20:00.25+02:00"),
            Some(1_754_400_000_250_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        let p = Params::parse(Some("start=9223372036854775807"), None).unwrap();
        assert!(
            p.time("start", 0).is_err(),
            "out of range, not overflowing later"
        );
    }

    #[test]
    fn evaluation_times_sit_on_multiples_of_the_step() {
        let s = 1_000_000_000;
        // 17:06:00 to 18:06:00 with a 5 m step: 17:05:00 to 18:10:00.
        let t = aligned_times(1_796_144_760 * s, 1_796_148_360 * s, 300 * s);
        assert_eq!(t.first(), Some(&(1_796_144_700 * s)));
        assert_eq!(t.last(), Some(&(1_796_148_600 * s)));
        assert_eq!(t.len(), 14);
        // Already aligned bounds stay where they are; odd steps align the same way.
        assert_eq!(
            aligned_times(600 * s, 1200 * s, 300 * s),
            [600 * s, 900 * s, 1200 * s]
        );
        assert_eq!(
            aligned_times(20 * s, 40 * s, 17 * s),
            [17 * s, 34 * s, 51 * s]
        );
    }

    #[test]
    fn steps_and_their_limits() {
        assert_eq!(parse_step("15"), Some(15_000_000_000));
        assert_eq!(parse_step("0.5"), Some(500_000_000));
        assert_eq!(parse_step("1m30s"), Some(90_000_000_000));
        let p = Params::parse(Some("step=1ms"), None).unwrap();
        let e = p.step(0, 3_600_000_000_000).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("exceeded maximum resolution of 11,000 points")
        );
        let p = Params::parse(Some("step=0"), None).unwrap();
        assert!(
            p.step(0, 10)
                .unwrap_err()
                .to_string()
                .starts_with("zero or negative")
        );
        assert_eq!(default_step(0, 3_600_000_000_000), 14_000_000_000);
    }

    #[test]
    fn limit_and_direction() {
        let p = Params::parse(Some("limit=0&direction=sideways"), None).unwrap();
        assert_eq!(
            p.limit().unwrap_err().to_string(),
            "limit must be a positive value"
        );
        assert_eq!(
            p.direction().unwrap_err().to_string(),
            "invalid direction 'sideways'"
        );
    }
}
