//! An fsync failure stops the process (after a failed fsync the kernel may have dropped the
//! dirty pages, so retrying could acknowledge lost data). A child process appends under
//! libfiu's `fiu-run`; once it has acknowledged a few batches the parent makes every fsync fail
//! with `fiu-ctrl`. The child must exit with the ledger's fatal status at once, a restart must
//! recover, verify must pass, and every acknowledged entry must be present.
//!
//! Needs `fiu-run` and `fiu-ctrl` (Debian `fiu-utils`, installed by `.ci/run`). Without them the
//! test says so and passes, except under CI, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::harness::Outcome;
use daftari::store::{self, Reader};

const CHILD_ENV: &str = "DAFTARI_FSYNC_CHILD";
const PER_BATCH: usize = 20;

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    common::harness::run(
        "a_failed_fsync_stops_the_writer_and_loses_no_acknowledged_entry",
        || {
            let have = |tool: &str| Command::new(tool).arg("-h").output().is_ok();
            if !(have("fiu-run") && have("fiu-ctrl")) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "fiu-run/fiu-ctrl missing under CI: .ci/run installs fiu-utils"
                );
                return Outcome::Ignored(
                    "fiu-run and fiu-ctrl not installed (apt-get install fiu-utils)",
                );
            }
            parent();
            Outcome::Passed
        },
    );
}

/// Appends batches one after another, printing `ack <first_seq> <count> <batch>`.
fn child(dir: &Path) -> ! {
    let (_ledger, appender, _) = store::open(common::small_config(dir, 1 << 30)).unwrap();
    for k in 0.. {
        let r = appender.append_blocking(common::batch("fiu", &format!("b{k}"), PER_BATCH));
        let mut out = std::io::stdout().lock();
        match r {
            Ok(r) => writeln!(out, "ack {} {} {k}", r.first_seq, r.count).unwrap(),
            Err(e) => writeln!(out, "err {e}").unwrap(),
        }
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    unreachable!("the child appends until it stops")
}

fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ctrl = tmp.path().join("fiu-ctrl");
    let mut child = Command::new("fiu-run")
        .arg("-x")
        .arg("-f")
        .arg(&ctrl)
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut acks: Vec<(u64, u64, u64)> = Vec::new();
    while acks.len() < 5 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child acknowledges appends");
        acks.extend(parse_ack(&line));
    }
    let status = Command::new("fiu-ctrl")
        .arg("-f")
        .arg(&ctrl)
        .args(["-c", "enable name=posix/io/sync/*"])
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "fiu-ctrl failed");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child kept running after its fsyncs began to fail");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        acks.extend(parse_ack(&line));
    }
    assert_eq!(
        code,
        Some(store::FATAL_EXIT_CODE),
        "an fsync failure must stop the process with the fatal status"
    );

    // Recovery: the next start opens the ledger, verify passes, nothing acknowledged is lost.
    let (ledger, _, _) = store::open(common::small_config(&data, 1 << 30)).unwrap();
    ledger.close().unwrap();
    let v = common::verify(&data);
    assert_eq!(v.code, 0, "{}", v.json);
    let records = Reader::new(&data).read(0, usize::MAX).unwrap();
    for (first, count, k) in &acks {
        for i in 0..*count {
            let r = records
                .get((first + i) as usize)
                .unwrap_or_else(|| panic!("acknowledged seq {} lost", first + i));
            let line = String::from_utf8_lossy(&r.line);
            assert!(
                line.starts_with(&format!("b{k} entry {i}:")),
                "seq {}: {line}",
                first + i
            );
        }
    }
    println!(
        "fsync failure: the child stopped with status {}, {} acknowledged batches intact after restart",
        store::FATAL_EXIT_CODE,
        acks.len()
    );
}

fn parse_ack(line: &str) -> Option<(u64, u64, u64)> {
    let f: Vec<&str> = line.split(' ').collect();
    match f.as_slice() {
        ["ack", first, count, k] => {
            Some((first.parse().ok()?, count.parse().ok()?, k.parse().ok()?))
        }
        _ => None,
    }
}
