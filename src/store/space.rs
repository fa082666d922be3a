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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::AppendError;

/// The reserve when none is configured: a seal and its checkpoint take under 1 KiB, about
/// 2 GiB a year at 10 s epochs, so this keeps the seal chain going for months after pushes
/// stop, and it is small next to any disk that holds a year of logs. Key `store.disk_reserve`.
pub const DEFAULT_DISK_RESERVE: Reserve = Reserve::Bytes(1 << 30);

/// How long one reading of the free space is trusted (other writers use the disk too).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A reading is also trusted only until pushes admitted after it add up to this share of the
/// headroom it showed (free space, less the WAL files still to be copied, above the reserve).
/// A record takes a few times its encoded bytes on disk before the next reading (WAL pages,
/// index rows), well under this factor; so the reserve is not overrun, and close to it every
/// push reads the free space afresh (a `statvfs` and a listing of `segments/`).
const HEADROOM_SHARE: u64 = 16;

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

/// The reserve's check and state, shared by the guarded append handle, the server's timer
/// (which re-reads it every few seconds, so recovery is noticed and logged with no push
/// arriving) and `/metrics`.
#[derive(Debug)]
pub struct DiskReserve {
    dir: PathBuf,
    reserve: Reserve,
    /// True while pushes are refused.
    low: AtomicBool,
    /// The reserve in bytes as of the last reading (a percentage moves with the size).
    reserve_bytes: AtomicU64,
    /// Encoded bytes admitted may reach this before the free space is read again: a share of
    /// the headroom of the last reading (zero while low, so every push reads it).
    trusted_bytes: AtomicU64,
    /// Encoded bytes admitted since the last reading.
    admitted: AtomicU64,
    /// When the free space was last read, in ns since `born`; the caller that swaps it does
    /// the next reading.
    checked_ns: AtomicU64,
    born: Instant,
}

impl DiskReserve {
    pub fn new(dir: impl Into<PathBuf>, reserve: Reserve) -> DiskReserve {
        DiskReserve {
            dir: dir.into(),
            reserve,
            low: AtomicBool::new(false),
            reserve_bytes: AtomicU64::new(reserve.bytes(0)),
            trusted_bytes: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            checked_ns: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// Whether a push of `bytes` encoded bytes may be appended now: `Err(LowSpace)` while
    /// free space is below the reserve. The free space is read again once [`CHECK_INTERVAL`]
    /// passed or the pushes admitted since the last reading could have used a share of its
    /// headroom; far from the reserve that is rarely, close to it on every push.
    pub fn admit(&self, bytes: usize) -> Result<(), AppendError> {
        let admitted = self.admitted.fetch_add(bytes as u64, Ordering::AcqRel) + bytes as u64;
        let now = self.born.elapsed().as_nanos() as u64;
        let last = self.checked_ns.load(Ordering::Acquire);
        let stale = now.saturating_sub(last) >= CHECK_INTERVAL.as_nanos() as u64
            && self
                .checked_ns
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if stale || admitted >= self.trusted_bytes.load(Ordering::Acquire) {
            self.refresh();
        }
        if self.low.load(Ordering::Acquire) {
            return Err(AppendError::LowSpace);
        }
        Ok(())
    }

    /// Reads the free space now, updates the state, logs a change either way, and returns the
    /// reading. A failed reading keeps the previous state (and is logged), so a transient
    /// error refuses nothing new and admits nothing refused.
    pub fn refresh(&self) -> Option<Space> {
        let s = match space(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read free space");
                return None;
            }
        };
        let reserve = self.reserve.bytes(s.size);
        self.reserve_bytes.store(reserve, Ordering::Relaxed);
        self.admitted.store(0, Ordering::Release);
        // What is committed but still only in a WAL is copied into its segment file later:
        // that space is as good as used.
        let free = s
            .free
            .saturating_sub(wal_bytes(&super::segments_dir(&self.dir)));
        let headroom = free.saturating_sub(reserve);
        self.trusted_bytes
            .store(headroom / HEADROOM_SHARE, Ordering::Release);
        let low = free < reserve;
        if self.low.swap(low, Ordering::AcqRel) != low {
            log_change(&self.dir, free, reserve, low);
        }
        Some(s)
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

/// Bytes of the segments' WAL files: an upper bound on what checkpoints will still copy into
/// the segment files.
fn wal_bytes(segments: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(segments) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("-wal"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The one log line of each change of state.
fn log_change(dir: &Path, free: u64, reserve: u64, low: bool) {
    if low {
        tracing::error!(
            dir = %dir.display(),
            free_bytes = free,
            reserve_bytes = reserve,
            "free space is below the reserve: refusing pushes (507) until space returns; \
             seals and checkpoints go on"
        );
    } else {
        tracing::warn!(
            dir = %dir.display(),
            free_bytes = free,
            reserve_bytes = reserve,
            "free space is above the reserve again: accepting pushes"
        );
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
        assert_eq!(full.admit(1), Err(AppendError::LowSpace));
        assert!(full.is_low());
        let none = DiskReserve::new(dir.path(), Reserve::Bytes(0));
        assert_eq!(none.admit(1), Ok(()));
        assert!(!none.is_low());
    }
}
