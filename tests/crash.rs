//! Crash test: a child process appends to a ledger from several threads and prints every
//! acknowledged range; the parent kills it with SIGKILL at random moments, then checks that
//! `daftari verify` accepts what is left as it is, that a restart (the ledger's own recovery)
//! succeeds, and that every acknowledged entry is then present, exactly.
//!
//! Runs `DAFTARI_CRASH_KILLS` kill cycles (default 50). The same binary is the child when
//! `DAFTARI_CRASH_CHILD` names a data directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daftari::store::{self, Batch, Reader, Stream};

const CHILD_ENV: &str = "DAFTARI_CRASH_CHILD";
const KILLS_ENV: &str = "DAFTARI_CRASH_KILLS";
const DEFAULT_KILLS: usize = 50;
const THREADS: usize = 4;
const PER_BATCH: usize = 50;
/// Small segments, so that kills also land inside rotations.
const SEGMENT_BYTES: u64 = 256 * 1024;

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    common::harness::run("acknowledged_entries_survive_every_sigkill", || {
        let kills = std::env::var(KILLS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_KILLS);
        let started = Instant::now();
        let acked = parent(kills);
        println!(
            "crash: {kills} SIGKILLs, {acked} acknowledged entries all present, verify intact after every kill ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        common::harness::Outcome::Passed
    });
}

/// The line of entry `i` of batch `k` of thread `t` of process `pid`.
fn line(pid: u32, t: usize, k: u64, i: usize) -> String {
    format!(
        "pid={pid} thread={t} batch={k} entry={i} sshd[811]: Failed password for root from 198.51.100.7"
    )
}

/// Appends forever from `THREADS` threads, printing `ack first_seq count pid thread batch`.
fn child(dir: &Path) -> ! {
    let (_ledger, appender, _) = store::open(common::small_config(dir, SEGMENT_BYTES)).unwrap();
    let pid = std::process::id();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let appender = appender.clone();
            s.spawn(move || {
                for k in 0.. {
                    let half = PER_BATCH / 2;
                    let streams = [("a", 0..half), ("b", half..PER_BATCH)]
                        .into_iter()
                        .map(|(job, range)| Stream {
                            labels: common::labels(&[("host", "crash"), ("job", job)]),
                            entries: range
                                .map(|i| common::entry(&line(pid, t, k, i), i as i64))
                                .collect(),
                        })
                        .collect();
                    let batch = Batch {
                        source: format!("t{t}"),
                        tenant: String::new(),
                        streams,
                    };
                    if let Ok(r) = appender.append_blocking(batch) {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {} {} {pid} {t} {k}", r.first_seq, r.count).unwrap();
                        out.flush().unwrap();
                    }
                }
            });
        }
    });
    unreachable!("the child appends until it is killed")
}

/// One acknowledged append as the child reported it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    count: u64,
    pid: u32,
    thread: usize,
    batch: u64,
}

fn parent(kills: usize) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut acks: BTreeMap<u64, Ack> = BTreeMap::new();
    for round in 0..kills {
        let new = run_and_kill(&data, Duration::from_millis(20 + rng.next() % 230));
        for (first, ack) in &new {
            assert!(
                acks.insert(*first, *ack).is_none(),
                "seq {first} acknowledged twice"
            );
        }
        let v = common::verify(&data);
        if v.code != 0 {
            let keep = tmp.keep();
            panic!(
                "round {round}: verify after SIGKILL: {} {} (data kept in {})",
                v.json,
                v.stderr,
                keep.display()
            );
        }
        restart(&data);
        check_present(&data, &new, v.json["next_seq"].as_u64().unwrap());
    }
    // Recovery: a normal open appends after everything, and the whole ledger still verifies.
    let (ledger, appender, _) = store::open(common::small_config(&data, SEGMENT_BYTES)).unwrap();
    appender
        .append_blocking(common::batch("after", "recovered", 10))
        .unwrap();
    ledger.close().unwrap();
    assert_eq!(common::verify(&data).code, 0);
    check_present(&data, &acks, u64::MAX);
    acks.values().map(|a| a.count as usize).sum()
}

/// Opens and closes the ledger: recovery as a restarted server runs it.
fn restart(data: &Path) {
    if data.exists() {
        let (ledger, _, _) = store::open(common::small_config(data, SEGMENT_BYTES)).unwrap();
        ledger.close().unwrap();
    }
}

/// Starts a child, lets it append for `after`, kills it with SIGKILL, returns what it acked.
fn run_and_kill(data: &Path, after: Duration) -> BTreeMap<u64, Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = BTreeMap::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let f: Vec<&str> = l.split(' ').collect();
            if let ["ack", first, count, pid, thread, batch] = f.as_slice() {
                let ack = Ack {
                    count: count.parse().unwrap(),
                    pid: pid.parse().unwrap(),
                    thread: thread.parse().unwrap(),
                    batch: batch.parse().unwrap(),
                };
                acks.insert(first.parse::<u64>().unwrap(), ack);
            }
        }
        acks
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Every acknowledged entry is stored at its acknowledged seq with exactly its content.
fn check_present(data: &Path, acks: &BTreeMap<u64, Ack>, next_seq: u64) {
    let Some(from) = acks.keys().next().copied() else {
        return;
    };
    let records = Reader::new(data).read(from, usize::MAX).unwrap();
    let by_seq: BTreeMap<u64, _> = records.iter().map(|r| (r.seq, r)).collect();
    for (first, ack) in acks {
        assert!(
            first + ack.count <= next_seq,
            "acked seqs {first}+{} beyond the ledger's end {next_seq}",
            ack.count
        );
        for i in 0..ack.count {
            let r = by_seq
                .get(&(first + i))
                .unwrap_or_else(|| panic!("acknowledged seq {} is missing", first + i));
            let expected = line(ack.pid, ack.thread, ack.batch, i as usize);
            assert_eq!(r.line, expected.as_bytes(), "seq {}", first + i);
            assert_eq!(r.source, format!("t{}", ack.thread));
        }
    }
}

/// xorshift64: random kill moments without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
