//! Gauges read at scrape time, not counted: the ledger's segments and bytes, the free and
//! total space under the data directory, and the writer's queue and commit statistics.
//!
//! Must not: change what they read.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::header;

/// Gauges read from the disk at scrape time: the ledger's segments and bytes, and the free
/// and total space of the filesystem that holds the data directory.
pub fn render_disk(data_dir: &std::path::Path, reserve: &crate::store::DiskReserve) -> String {
    let mut out = String::new();
    let segments = crate::store::segment_files(data_dir).unwrap_or_default();
    let bytes: u64 = segments
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut gauge = |name: &str, help: &str, v: u64| {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(
        "daftari_ledger_segments",
        "Segment files in the ledger.",
        segments.len() as u64,
    );
    gauge(
        "daftari_ledger_bytes",
        "Bytes of the ledger's segment files.",
        bytes,
    );
    // One reading serves the gauges and the reserve's state.
    if let Some(space) = reserve.refresh() {
        gauge(
            "daftari_disk_free_bytes",
            "Free bytes (for daftari) on the data directory's filesystem.",
            space.free,
        );
        gauge(
            "daftari_disk_size_bytes",
            "Size of the data directory's filesystem.",
            space.size,
        );
    }
    gauge(
        "daftari_disk_reserve_bytes",
        "Free space kept for seals and checkpoints; pushes are refused below it.",
        reserve.reserve_bytes(),
    );
    gauge(
        "daftari_disk_low_space",
        "1 while pushes are refused because free space is below the reserve.",
        u64::from(reserve.is_low()),
    );
    out
}

/// The writer's counters: queue depth, commit-group sizes and commit latency.
pub fn render_writer(w: &crate::store::WriterStats) -> String {
    use crate::store::{COMMIT_BUCKETS, GROUP_BUCKETS};
    let mut out = String::new();
    let gauges = [
        (
            "daftari_writer_queue_batches",
            "Appends waiting for the writer.",
            w.queued_batches.load(Ordering::Relaxed) as u64,
        ),
        (
            "daftari_writer_queue_bytes",
            "Encoded bytes waiting for the writer.",
            w.queued_bytes.load(Ordering::Relaxed) as u64,
        ),
    ];
    for (name, help, v) in gauges {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let name = "daftari_writer_commit_failures_total";
    header(
        &mut out,
        name,
        "counter",
        "Group commits that failed (none of their appends acknowledged).",
    );
    let _ = writeln!(out, "{name} {}", w.commit_failures.load(Ordering::Relaxed));
    let group_bounds: Vec<String> = GROUP_BUCKETS.iter().map(u64::to_string).collect();
    let commit_bounds: Vec<String> = COMMIT_BUCKETS.iter().map(f64::to_string).collect();
    let histograms = [
        (
            "daftari_writer_group_entries",
            "Entries per group commit (one fsync each).",
            &group_bounds,
            w.group_entries.view(),
            1.0,
        ),
        (
            "daftari_writer_commit_duration_seconds",
            "Time per group commit, fsync included.",
            &commit_bounds,
            w.commit_seconds.view(),
            1e-6,
        ),
    ];
    for (name, help, bounds, (buckets, count, sum), unit) in histograms {
        header(&mut out, name, "histogram", help);
        for (le, n) in bounds.iter().zip(buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", sum as f64 * unit);
        let _ = writeln!(out, "{name}_count {count}");
    }
    out
}
