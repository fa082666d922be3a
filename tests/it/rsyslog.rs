//! rsyslog (from Debian's packages) forwarding over TLS with a client certificate made in the
//! test and deploy/rsyslog/daftari.conf, as a syslog relay or a firewall would: every message reaches the ledger under the
//! token bound to the certificate; then the sink is killed with SIGKILL in the middle of the
//! stream and restarted, after which every message it had committed is still there, rsyslog's
//! later messages arrive over its reconnection, and verify passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, metric, pushed};

use crate::push_tls::{Ca, write_server_cert};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// Messages counted as stored for `sender`.
fn stored(s: &Server, sender: &str) -> u64 {
    metric(s, &crate::syslog::stored(sender)) as u64
}

fn wait_stored(s: &Server, sender: &str, n: u64, limit: Duration) {
    crate::syslog::wait_metric_for(s, &crate::syslog::stored(sender), n as f64, limit);
}

/// An rsyslogd in the foreground reading a Unix socket under `dir` and forwarding
/// everything to `port` with deploy/rsyslog/daftari.conf, its paths, target and retry
/// interval replaced by the test's.
fn rsyslogd(dir: &Path, port: u16, ca: &Path, cert: &Path, key: &Path) -> Child {
    std::fs::create_dir_all(dir.join("work")).unwrap();
    let snippet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/rsyslog/daftari.conf"
    ))
    .unwrap();
    let mut forward = snippet;
    for (from, to) in [
        (
            "target=\"sink.mesh.example\"",
            "target=\"127.0.0.1\"".to_string(),
        ),
        ("port=\"6514\"", format!("port=\"{port}\"")),
        (
            "PermittedPeers=\"sink.mesh.example\"",
            "PermittedPeers=\"localhost\"".into(),
        ),
        ("/etc/rsyslog.d/daftari-ca.pem", ca.display().to_string()),
        (
            "/etc/rsyslog.d/daftari-client.pem",
            cert.display().to_string(),
        ),
        (
            "/etc/rsyslog.d/daftari-client.key",
            key.display().to_string(),
        ),
        (
            "action.resumeInterval=\"10\"",
            "action.resumeInterval=\"1\"".into(),
        ),
    ] {
        assert!(
            forward.contains(from),
            "deploy/rsyslog/daftari.conf has no {from}"
        );
        forward = forward.replace(from, &to);
    }
    let conf = format!(
        "global(workDirectory=\"{d}/work\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n{forward}",
        d = dir.display(),
    );
    let path = dir.join("rsyslog.conf");
    std::fs::write(&path, conf).unwrap();
    let check = Command::new(RSYSLOGD)
        .args(["-N1", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(RSYSLOGD)
        .args(["-n", "-i", "NONE", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (Debian: rsyslog, rsyslog-gnutls)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("log.sock").exists() {
        assert!(Instant::now() < deadline, "rsyslogd made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Logs `lines` through the socket with util-linux `logger`, one message each.
fn log(sock: &Path, lines: &[String]) {
    let file = sock.with_extension(format!("lines-{}", lines.len()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = Command::new("logger")
        .arg("-u")
        .arg(sock)
        .args(["-t", "sshd", "-p", "auth.info", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn rsyslog_over_tls_survives_a_kill_of_the_sink() {
    if !Path::new(RSYSLOGD).exists() {
        panic!("rsyslogd is needed (.ci/run installs rsyslog and rsyslog-gnutls)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Ca::new("server ca"), Ca::new("client ca"));
    let (cert, key) = write_server_cert(tmp.path(), &server_ca);
    let (ccert, ckey) = client_ca.leaf(&["relay.example"]);
    let files = [
        ("server-ca.pem", server_ca.pem()),
        ("clients-ca.pem", client_ca.pem()),
        ("relay.pem", ccert),
        ("relay.key", ckey),
    ];
    for (name, text) in &files {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let port = free_port();
    let config = tmp.path().join("daftari.toml");
    std::fs::write(
        &config,
        format!(
            "[syslog]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n\
             tls_client_ca = {:?}\n",
            tmp.path().join("clients-ca.pem")
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let args = ["--config", config.to_str().unwrap()];
    let mut s = Server::start(&data, &args);
    s.token_cmd(&[
        "create",
        "relay",
        "--cert-identity",
        "relay.example",
        "--label",
        "host=relay",
    ]);
    std::thread::sleep(Duration::from_millis(600));
    let rdir = tmp.path().join("rsyslog");
    let mut relay = rsyslogd(
        &rdir,
        port,
        &tmp.path().join("server-ca.pem"),
        &tmp.path().join("relay.pem"),
        &tmp.path().join("relay.key"),
    );
    let sock = rdir.join("log.sock");

    let first: Vec<String> = (0..200)
        .map(|i| format!("Failed password for root, attempt {i:05}"))
        .collect();
    log(&sock, &first);
    wait_stored(&s, "relay", 200, Duration::from_secs(30));

    // Kill the sink in the middle of a stream of 40 chunks over four seconds; what it had
    // committed must survive, and the chunks sent after the restart must all arrive.
    let chunks: Vec<Vec<String>> = (0..40)
        .map(|c| {
            (0..100)
                .map(|i| format!("burst {c:02} line {i:03}"))
                .collect()
        })
        .collect();
    let sender = {
        let (sock, chunks) = (sock.clone(), chunks.clone());
        std::thread::spawn(move || {
            for chunk in &chunks {
                log(&sock, chunk);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut committed = 200;
    while committed < 500 && Instant::now() < deadline {
        committed = stored(&s, "relay");
        std::thread::sleep(Duration::from_millis(5));
    }
    s.child.kill().unwrap();
    let _ = s.child.wait();
    let s = Server::start(&data, &args);
    sender.join().unwrap();
    // rsyslog reconnects (it retries every second) and sends what it still holds.
    let last_chunk = &chunks[chunks.len() - 1];
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&s, "relay") < last_chunk.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = relay.kill();
    let _ = relay.wait();
    assert!(s.stop().success());

    let got = pushed(&data);
    assert!(
        got.iter()
            .all(|r| r.source == "relay" && r.labels.get("host") == Some("relay"))
    );
    let lines: BTreeSet<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    for l in &first {
        assert!(
            lines.contains(l),
            "{l} is missing; the ledger has {:?}",
            lines.iter().take(3).collect::<Vec<_>>()
        );
    }
    let second: Vec<&String> = chunks.iter().flatten().collect();
    let sent: BTreeSet<&String> = first.iter().chain(second.iter().copied()).collect();
    assert!(lines.iter().all(|l| sent.contains(l)), "a line nobody sent");
    let kept = second.iter().filter(|l| lines.contains(**l)).count() as u64;
    assert!(
        kept + 200 >= committed,
        "{committed} were committed before the kill, {} are in the ledger",
        kept + 200
    );
    for l in last_chunk {
        assert!(lines.contains(l), "{l}, sent after the restart, is missing");
    }
    assert_eq!(common::verify(&data).code, 0);
}
