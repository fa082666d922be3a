//! What a benchmark run costs the disk: bytes the process wrote (`/proc/self/io`) and bytes a
//! directory occupies.
//!
//! Must not: write anything.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The process's write counters: `write_bytes` (what reached the block layer, the figure
/// that wears a disk) and `wchar` (what write calls asked for, page cache included).
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub write_bytes: u64,
    pub wchar: u64,
}

impl Written {
    /// The counters now (zeros where `/proc` cannot tell).
    pub fn now() -> Written {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        Written {
            write_bytes: field("write_bytes:"),
            wchar: field("wchar:"),
        }
    }

    /// What was written since `before`.
    pub fn since(self, before: Written) -> Written {
        Written {
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            wchar: self.wchar.saturating_sub(before.wchar),
        }
    }
}

/// Bytes the files under `dir` occupy on disk (allocated blocks, as `du` counts them).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Writes the dirty pages of the files under `dir` out, so `write_bytes` counts them now
/// rather than whenever the kernel would have.
pub fn flush(dir: &Path) {
    let Ok(items) = std::fs::read_dir(dir) else {
        return;
    };
    for e in items.flatten() {
        let p = e.path();
        if p.is_dir() {
            flush(&p);
        } else if let Ok(f) = std::fs::File::open(&p) {
            let _ = f.sync_all();
        }
    }
}
