//! The push plane's durability contract, proved by killing the real server: after SIGKILL
//! under concurrent pushes, every entry acknowledged with 204 is in the ledger and verify
//! passes; SIGTERM drains in-flight pushes and closes cleanly; a second SIGTERM exits at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::server::{Server, pushed, request};

/// Kill rounds per run.
const ROUNDS: usize = 5;
/// Concurrent pushing clients.
const CLIENTS: usize = 4;
/// Entries per push.
const PER_PUSH: usize = 50;

/// Pushes batches of uniquely named entries until `stop` or the server goes away; returns
/// the names of entries acknowledged with 204.
fn pusher(
    addr: std::net::SocketAddr,
    token: String,
    tag: String,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut failures = 0;
    for b in 0.. {
        if stop.load(Ordering::Relaxed) || failures > 20 {
            break;
        }
        let names: Vec<String> = (0..PER_PUSH).map(|i| format!("{tag}-b{b}-e{i}")).collect();
        let values: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    r#"["{}","{n} Failed password for root"]"#,
                    1_754_400_000_000_000_000i64 + i as i64
                )
            })
            .collect();
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"sshd","client":"{tag}"}},"values":[{}]}}]}}"#,
            values.join(",")
        );
        let h = [
            ("authorization", format!("Bearer {token}")),
            ("content-type", "application/json".to_string()),
        ];
        let r = std::panic::catch_unwind(|| {
            request(addr, "POST", "/loki/api/v1/push", &h, body.into_bytes())
        });
        match r {
            Ok(r) if r.status == 204 => acked.extend(names),
            _ => {
                failures += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    acked
}

fn run_clients(
    s: &Server,
    round: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..CLIENTS)
        .map(|c| {
            let (addr, token, stop) = (s.push, s.token.clone(), Arc::clone(stop));
            std::thread::spawn(move || pusher(addr, token, format!("r{round}c{c}"), stop))
        })
        .collect()
}

fn lines(data: &Path) -> BTreeSet<String> {
    pushed(data)
        .iter()
        .map(|r| {
            let l = String::from_utf8_lossy(&r.line);
            l.split(' ').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn after_sigkill_under_concurrent_pushes_every_acknowledged_entry_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut acked = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..ROUNDS {
        // One-second epochs, so that kills also land around seals and key rotations.
        let mut s = Server::start(&data, &["--epoch-interval", "1s"]);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = run_clients(&s, round, &stop);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(300 + seed % 700));
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let mut n = 0;
        for c in clients {
            let a = c.join().unwrap();
            n += a.len();
            acked.extend(a);
        }
        assert!(
            n > 0,
            "round {round}: nothing was acknowledged before the kill"
        );
        // The test reads the on-box copy of the key; an auditor uses their own.
        let pk = std::fs::read_to_string(data.join("epoch0.pub")).unwrap();
        let v = common::verify_with(&data, &["--pubkey", pk.trim()]);
        assert_eq!(
            v.code, 0,
            "round {round}: verify after SIGKILL: {} {:#}",
            v.stderr, v.json
        );
    }
    // A clean start and stop recovers the last segment; then read everything back.
    let s = Server::start(&data, &[]);
    assert!(s.stop().success());
    let stored = lines(&data);
    let missing: Vec<_> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged entries missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(common::verify(&data).code, 0);
    eprintln!(
        "{ROUNDS} SIGKILLs: {} acknowledged entries, all present",
        acked.len()
    );
}

#[test]
fn sigterm_drains_in_flight_pushes_then_closes_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = run_clients(&s, 0, &stop);
    std::thread::sleep(Duration::from_millis(500));
    let status = s.stop();
    assert!(status.success(), "exit status {status}");
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(!acked.is_empty());
    let stored = lines(&data);
    assert!(acked.iter().all(|a| stored.contains(a)));
    let v = common::verify(&data);
    assert_eq!(v.code, 0, "{}", v.stderr);
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("daftari.toml");
    std::fs::write(
        &cfg,
        "shutdown_grace = \"60s\"\n[push]\nbody_timeout = \"60s\"\n",
    )
    .unwrap();
    let mut s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    // A push whose body never finishes keeps the drain waiting.
    let mut slow = std::net::TcpStream::connect(s.push).unwrap();
    write!(
        slow,
        "POST /loki/api/v1/push HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"streams\"",
        s.token
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the first SIGTERM must wait for the push"
    );
    let t = Instant::now();
    s.signal("TERM");
    let status = s.wait(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
}
