//! Time: the wall clock in Unix ns, RFC 3339 rendering for messages, and [`Clock`], the
//! time the sealer and the store run on (the system's, or one a test moves by hand).
//!
//! Must not: be used to order records (arrival order is the chain order).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where the sealer and the store read time: when an epoch ends (monotonic), what wall time
/// a seal and the retention cutoff carry, and when a record arrived and a segment is old. [`Clock::system`] in every server; [`Clock::manual`] lets an
/// in-process test end epochs and age segments by moving time instead of sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// A clock that moves only when told to.
#[derive(Debug)]
struct Manual {
    /// (wall ns, monotonic ns since the clock was made)
    now: Mutex<(i64, u64)>,
    moved: Condvar,
}

/// How often a waiter on the system clock looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

impl Clock {
    /// The system's clocks.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock standing at wall time `wall_ns` that moves only by [`Clock::advance`].
    pub fn manual(wall_ns: i64) -> Clock {
        let manual = Manual {
            now: Mutex::new((wall_ns, 0)),
            moved: Condvar::new(),
        };
        Clock {
            manual: Some(Arc::new(manual)),
        }
    }

    /// Wall time, Unix ns.
    pub fn wall_ns(&self) -> i64 {
        match &self.manual {
            None => now_ns(),
            Some(m) => m
                .now
                .lock()
                .map(|n| n.0)
                .unwrap_or_else(|p| p.into_inner().0),
        }
    }

    /// Moves a manual clock forward by `d` (wall and monotonic alike) and wakes its waiters;
    /// does nothing to the system clock.
    pub fn advance(&self, d: Duration) {
        let Some(m) = &self.manual else { return };
        let mut now = m.now.lock().unwrap_or_else(|p| p.into_inner());
        now.0 = now
            .0
            .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64);
        now.1 = now
            .1
            .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
        m.moved.notify_all();
    }

    /// A monotonic reading, to measure intervals with.
    pub fn mono(&self) -> Mono {
        match &self.manual {
            None => Mono::System(Instant::now()),
            Some(m) => Mono::Manual(
                m.now
                    .lock()
                    .map(|n| n.1)
                    .unwrap_or_else(|p| p.into_inner().1),
            ),
        }
    }

    /// Blocks until `deadline` (a reading of this clock plus an interval) or until `stop` is
    /// set; returns whether the deadline came.
    pub fn wait_until(&self, deadline: Mono, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            match (&self.manual, deadline) {
                (None, Mono::System(at)) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return true;
                    }
                    std::thread::sleep(left.min(STOP_POLL));
                }
                (Some(m), Mono::Manual(at)) => {
                    let now = m.now.lock().unwrap_or_else(|p| p.into_inner());
                    if now.1 >= at {
                        return true;
                    }
                    // Woken by `advance`; the timeout only rechecks the stop flag.
                    let _ = m.moved.wait_timeout(now, STOP_POLL);
                }
                // A reading of another clock: treat it as due.
                _ => return true,
            }
        }
    }
}

/// A monotonic reading of a [`Clock`].
#[derive(Debug, Clone, Copy)]
pub enum Mono {
    System(Instant),
    Manual(u64),
}

impl std::ops::Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        match self {
            Mono::System(i) => Mono::System(i + d),
            Mono::Manual(n) => {
                Mono::Manual(n.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
            }
        }
    }
}

impl std::ops::AddAssign<Duration> for Mono {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// The wall clock in Unix ns (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Unix ns as RFC 3339 UTC with nanoseconds, for messages.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`2024-05-01T10:00:00Z`, `...00.123456789+02:00`) to Unix ns.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && matches!(tz.as_bytes()[0], b'+' | b'-')
            && tz.as_bytes()[3] == b':' =>
        {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_wakes_its_waiters() {
        let clock = Clock::manual(1_000);
        let start = clock.mono();
        assert_eq!(clock.wall_ns(), 1_000);
        let stop = AtomicBool::new(false);
        let woke = std::thread::scope(|s| {
            let waiter = s.spawn(|| clock.wait_until(start + Duration::from_secs(10), &stop));
            // Not due after half the interval.
            clock.advance(Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(120));
            assert!(!waiter.is_finished(), "woke before its deadline");
            clock.advance(Duration::from_secs(5));
            waiter.join().unwrap()
        });
        assert!(woke);
        assert_eq!(clock.wall_ns(), 1_000 + 10_000_000_000);
        // A clone is the same clock.
        clock.clone().advance(Duration::from_secs(1));
        assert_eq!(clock.wall_ns(), 1_000 + 11_000_000_000);
    }

    #[test]
    fn a_waiter_gives_up_when_stopped() {
        let clock = Clock::manual(0);
        let stop = AtomicBool::new(true);
        assert!(!clock.wait_until(clock.mono() + Duration::from_secs(1), &stop));
        let system = Clock::system();
        assert!(!system.wait_until(system.mono() + Duration::from_secs(60), &stop));
        let go = AtomicBool::new(false);
        assert!(
            system.wait_until(system.mono(), &go),
            "a deadline now is due"
        );
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_754_400_000_123_000_000),
            "2025-08-05T13:20:00.123000000Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn parse_rfc3339_inverts_rfc3339() {
        for ns in [0, 1_754_400_000_123_000_000, 951_782_400 * 1_000_000_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ns)), Some(ns));
        }
        assert_eq!(parse_rfc3339("1970-01-01T02:00:00+02:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01 00:00:00"), None);
    }
}
