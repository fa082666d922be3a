//! LogQL's literal units: durations (`5m`, `1.5s`) and byte sizes (`20MB`, `1KiB`), parsed
//! alike by the lexer, by `unwrap` conversions and by template functions.
//!
//! Owns: the unit tables and [`MAX_DURATION_NS`]. Must not: depend on the rest of `logql`
//! (the lexer and the templates both use it).

/// Longest duration accepted (about 36 years): an eighth of `i64` nanoseconds, so that a
/// timestamp (at most half of `i64`) minus an offset minus a range can never overflow.
pub const MAX_DURATION_NS: i64 = i64::MAX / 8;

/// A Prometheus duration (`1h30m`, `500ms`, `1d`, `2w`, `1y`) or Go duration (`1.5s`,
/// `100us`), in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let n: f64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() || (i < b.len() && b[i] == 0xc2) {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "y" => 365.0 * 86400e9,
            _ => return None,
        };
        total += n * unit;
    }
    (total.is_finite() && total <= MAX_DURATION_NS as f64).then_some(total as i64)
}

/// A byte size such as `20MB`, `1KiB`, `512B` (decimal and binary units, any case).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let n: f64 = s[..split].parse().ok()?;
    let mult: f64 = match s[split..].to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "ti" => 1024f64.powi(4),
        "pib" | "pi" => 1024f64.powi(5),
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}
