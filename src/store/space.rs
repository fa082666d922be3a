//! The free-space reserve: pushes stop while the data directory's filesystem has less free
//! space than the reserve, so the seals, checkpoints, retention entries and read-audit records
//! that keep the ledger provable can still be written; pushes resume by themselves once space
//! returns (a prune, an operator freeing space, a grown volume), without a restart.
//!
//! Owns: [`Reserve`] (what the operator configured), [`DiskReserve`] (the check, its cached
//! state, the log line on each change, and the gauges `/metrics` shows).
//!
//! Must not: delete or move anything to make space, or refuse appends made by the server
//! itself: only the append handle the push plane holds is guarded (see
//! [`super::Appender::guarded`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::AppendError;

/// The reserve when none is configured: a seal and its checkpoint take under 1 KiB, about
/// 2 GiB a year at 10 s epochs, so this keeps the seal chain going for months after pushes
/// stop, and it is small next to any disk that holds a year of logs. Key `store.disk_reserve`.
pub const DEFAULT_DISK_RESERVE: Reserve = Reserve::Bytes(1 << 30);

/// How long one reading of the free space is trusted while free space is well above the
/// reserve (over twice it): readings then cost one `statvfs` per interval, not one per push.
/// Nearer the reserve every push reads it afresh, so the reserve is not overrun by more than
/// the pushes already admitted.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The amount of free space to keep: a size, or a share of the filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    Bytes(u64),
    /// A percentage of the filesystem's size, 0 to 50.
    Percent(f64),
}

impl Reserve {
    /// Parses `"256MiB"`, `"1GiB"`, `"5%"`, `"1048576"` or `"0"` (no reserve). Units are the
    /// binary ones (`KiB MiB GiB TiB`) and their one-letter forms (`K M G T`).
    pub fn parse(text: &str) -> Option<Reserve> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().ok()?;
            return (v.is_finite() && (0.0..=50.0).contains(&v)).then_some(Reserve::Percent(v));
        }
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = t[..digits].parse().ok()?;
        let shift = match t[digits..].trim() {
            "" | "B" => 0,
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            "T" | "TiB" => 40,
            _ => return None,
        };
        n.checked_mul(1u64 << shift).map(Reserve::Bytes)
    }

    /// The reserve in bytes on a filesystem of `size` bytes.
    pub fn bytes(self, size: u64) -> u64 {
        match self {
            Reserve::Bytes(b) => b,
            Reserve::Percent(p) => (size as f64 * p / 100.0) as u64,
        }
    }
}

/// One reading of the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    pub size: u64,
}

/// Reads the free space of the filesystem holding `dir`.
pub fn space(dir: &Path) -> std::io::Result<Space> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(Space {
        free: st.f_bavail.saturating_mul(st.f_frsize),
        size: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

/// The reserve's check and state, shared by the guarded append handle, the sealer (which
/// re-checks every epoch, so recovery is noticed and logged with no push arriving) and
/// `/metrics`.
#[derive(Debug)]
pub struct DiskReserve {
    dir: PathBuf,
    reserve: Reserve,
    /// True while pushes are refused.
    low: AtomicBool,
    /// The reserve in bytes as of the last reading (a percentage moves with the size).
    reserve_bytes: AtomicU64,
    /// True while the last reading was within twice the reserve: read on every push.
    near: AtomicBool,
    /// When the free space was last read; the lock also makes one caller do the reading.
    checked: Mutex<Option<Instant>>,
}

impl DiskReserve {
    pub fn new(dir: impl Into<PathBuf>, reserve: Reserve) -> DiskReserve {
        DiskReserve {
            dir: dir.into(),
            reserve,
            low: AtomicBool::new(false),
            reserve_bytes: AtomicU64::new(reserve.bytes(0)),
            near: AtomicBool::new(true),
            checked: Mutex::new(None),
        }
    }

    /// Whether a push may be appended now: `Err(LowSpace)` while free space is below the
    /// reserve. Far from the reserve the filesystem is read at most once per
    /// [`CHECK_INTERVAL`]; near it, on every call.
    pub fn admit(&self) -> Result<(), AppendError> {
        let stale = {
            let mut at = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            let stale = self.near.load(Ordering::Acquire)
                || at.is_none_or(|t| t.elapsed() >= CHECK_INTERVAL);
            if stale {
                *at = Some(Instant::now());
            }
            stale
        };
        if stale {
            self.refresh();
        }
        if self.low.load(Ordering::Acquire) {
            return Err(AppendError::LowSpace);
        }
        Ok(())
    }

    /// Reads the free space now, updates the state, and logs a change either way. A failed
    /// reading keeps the previous state (and is logged), so a transient error refuses nothing
    /// new and admits nothing refused.
    pub fn refresh(&self) {
        let s = match space(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read free space");
                return;
            }
        };
        let reserve = self.reserve.bytes(s.size);
        self.reserve_bytes.store(reserve, Ordering::Relaxed);
        self.near
            .store(s.free / 2 < reserve.max(1), Ordering::Release);
        let low = s.free < reserve;
        if self.low.swap(low, Ordering::AcqRel) == low {
            return;
        }
        if low {
            tracing::error!(
                dir = %self.dir.display(),
                free_bytes = s.free,
                reserve_bytes = reserve,
                "free space is below the reserve: refusing pushes (507) until space returns; \
                 seals and checkpoints go on"
            );
        } else {
            tracing::warn!(
                dir = %self.dir.display(),
                free_bytes = s.free,
                reserve_bytes = reserve,
                "free space is above the reserve again: accepting pushes"
            );
        }
    }

    /// True while pushes are refused.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// The reserve in bytes, as of the last reading.
    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_parse_as_sizes_and_percentages() {
        assert_eq!(Reserve::parse("0"), Some(Reserve::Bytes(0)));
        assert_eq!(Reserve::parse("4096"), Some(Reserve::Bytes(4096)));
        assert_eq!(Reserve::parse("256MiB"), Some(Reserve::Bytes(256 << 20)));
        assert_eq!(Reserve::parse("2 G"), Some(Reserve::Bytes(2 << 30)));
        assert_eq!(Reserve::parse("1TiB"), Some(Reserve::Bytes(1 << 40)));
        assert_eq!(Reserve::parse("5%"), Some(Reserve::Percent(5.0)));
        assert_eq!(Reserve::parse("0.5 %"), Some(Reserve::Percent(0.5)));
        for bad in [
            "",
            "MiB",
            "5 percent",
            "-1",
            "60%",
            "NaN%",
            "1.5GiB",
            "99999999999T",
        ] {
            assert_eq!(Reserve::parse(bad), None, "{bad}");
        }
        assert_eq!(Reserve::Percent(5.0).bytes(1000), 50);
        assert_eq!(Reserve::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_a_zero_reserve_admits() {
        let dir = tempfile::tempdir().unwrap();
        let free = space(dir.path()).unwrap().free;
        let full = DiskReserve::new(dir.path(), Reserve::Bytes(free.saturating_mul(2) + 1));
        assert_eq!(full.admit(), Err(AppendError::LowSpace));
        assert!(full.is_low());
        let none = DiskReserve::new(dir.path(), Reserve::Bytes(0));
        assert_eq!(none.admit(), Ok(()));
        assert!(!none.is_low());
    }
}
