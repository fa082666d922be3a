//! Helpers shared by the integration tests: building real ledgers through the library,
//! copying them, and running the real `daftari` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod encode;
pub mod harness;
pub mod inproc;
pub mod rng;
pub mod server;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use daftari::store::{self, Batch, NewEntry, Pairs, StoreConfig, Stream};

pub const BIN: &str = env!("CARGO_BIN_EXE_daftari");

/// A label set.
pub fn labels(pairs: &[(&str, &str)]) -> Pairs {
    Pairs::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

/// An entry with the given line.
pub fn entry(line: &str, ts_ns: i64) -> NewEntry {
    NewEntry {
        ts_ns,
        metadata: Pairs::default(),
        line: line.as_bytes().to_vec(),
    }
}

/// A batch of `n` entries from `source` over three streams, lines tagged with `tag` and
/// numbered in append order ("<tag> entry <i>: ...").
pub fn batch(source: &str, tag: &str, n: usize) -> Batch {
    // Each line carries a session id, so blocks compress about as much as real logs do.
    let mut rng = rng::Rng::new(tag.bytes().fold(n as u64, |h, b| h * 31 + u64::from(b)));
    let streams = ["sshd", "sudo", "auditd"]
        .iter()
        .enumerate()
        .map(|(j, job)| Stream {
            labels: labels(&[("host", source), ("job", job)]),
            entries: (j * n / 3..(j + 1) * n / 3)
                .map(|i| {
                    let line = format!(
                        "{tag} entry {i}: Failed password for root from 203.0.113.{} port 22 \
                         session={}",
                        i % 250,
                        rng.hex(24)
                    );
                    entry(&line, 1_754_400_000_000_000_000 + i as i64)
                })
                .collect(),
        })
        .collect();
    Batch {
        source: source.into(),
        tenant: String::new(),
        streams,
    }
}

/// Opens a ledger under `dir` with small segments so that tests see rotation.
pub fn small_config(dir: &Path, segment_max_bytes: u64) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.origin = "test.daftari.example/log".into();
    cfg.segment_max_bytes = segment_max_bytes;
    cfg
}

/// Appends `batches` batches of `n` entries one after another, then closes the ledger.
pub fn build_ledger(dir: &Path, segment_max_bytes: u64, batches: usize, n: usize) {
    build_ledger_with(small_config(dir, segment_max_bytes), batches, n);
}

/// [`build_ledger`] with a config of its own (a segment layout, say).
pub fn build_ledger_with(cfg: StoreConfig, batches: usize, n: usize) {
    let (ledger, appender, _reader) = store::open(cfg).unwrap();
    for b in 0..batches {
        appender
            .append_blocking(batch("host-a", &format!("b{b}"), n))
            .unwrap();
    }
    ledger.close().unwrap();
}

/// Copies a data directory (files only, two levels), keeping read-only modes.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let dest = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &dest);
        } else {
            std::fs::copy(item.path(), &dest).unwrap();
        }
    }
}

/// The segment files of a data dir, sorted.
pub fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect();
    v.sort();
    v
}

/// Opens a segment file for writing as an attacker would (making it writable first).
pub fn open_rw(path: &Path) -> rusqlite::Connection {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    rusqlite::Connection::open(path).unwrap()
}

/// Result of running `daftari verify --json`.
#[derive(Debug)]
pub struct Verdict {
    pub code: i32,
    pub json: serde_json::Value,
    pub stderr: String,
}

impl Verdict {
    pub fn first_break(&self) -> &serde_json::Value {
        &self.json["first_break"]
    }

    pub fn kinds(&self) -> Vec<String> {
        self.json["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["kind"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn verify(data: &Path) -> Verdict {
    verify_with(data, &[])
}

/// `daftari verify --json --data-dir DATA` with `extra` arguments.
pub fn verify_with(data: &Path, extra: &[&str]) -> Verdict {
    let out = Command::new(BIN)
        .args(["verify", "--json", "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    Verdict {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A Python in a virtual environment under the target directory, named `name`, with
/// `requirement` installed from PyPI on first use (checked by importing `import`).
pub fn python_venv(name: &str, requirement: &str, import: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python3");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {import}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&python) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(status.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet"])
            .args(requirement.split_whitespace())
            .status()
            .unwrap();
        assert!(
            pip.success(),
            "pip install {requirement} failed (PyPI must be reachable)"
        );
    }
    python
}

/// A directory under the target directory, named `name`, with the npm `packages` installed
/// in it from the npm registry on first use (checked by the first package's directory).
/// Scripts that import them must run from this directory (copy them in): Node resolves an
/// ES module's imports from the module's own location.
pub fn node_modules(name: &str, packages: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let first = packages[0].rsplit_once('@').map_or(packages[0], |(p, _)| p);
    if !dir.join("node_modules").join(first).is_dir() {
        std::fs::create_dir_all(&dir).unwrap();
        let npm = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .args(packages)
            .status()
            .expect("npm is needed (Node.js)");
        assert!(
            npm.success(),
            "npm install {packages:?} failed (the npm registry must be reachable)"
        );
    }
    dir
}

/// A tmpfs mounted for a test, unmounted on drop.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (e.g. "3m") on `dir`; `None` where that is not allowed (not root).
pub fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(dir.to_owned()))
}

/// How many seals of `kind` (0 epoch, 1 segment close, 2 prune, 3 shutdown) the seal chain
/// under `data` holds (0 if it cannot be read yet).
pub fn seal_count(data: &Path, kind: u8) -> i64 {
    rusqlite::Connection::open_with_flags(
        data.join("seals.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| {
        c.query_row("SELECT count(*) FROM seals WHERE kind = ?1", [kind], |r| {
            r.get(0)
        })
    })
    .unwrap_or(0)
}

/// Waits (up to 30 s) until the seal chain under `data` holds at least `n` seals of `kind`:
/// for a server in its own process, whose epochs run on the wall clock.
pub fn wait_for_seals_of(data: &Path, kind: u8, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let count = seal_count(data, kind);
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} of {n} seals of kind {kind} after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until the seal chain under `data` holds at least `n` end-of-epoch seals.
pub fn wait_for_seals(data: &Path, n: i64) {
    wait_for_seals_of(data, 0, n);
}
