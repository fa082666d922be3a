//! Syslog senders through the real server: util-linux `logger` over plain TCP (octet counting
//! with RFC 5424, newline framing with RFC 3164) from an address mapped to a token, a TLS
//! sender known by its client certificate, and hostile senders (an unknown address or
//! certificate, an oversized message, a broken octet count, a flood from one sender while
//! another still gets through).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{
    Server, block_on, connect_from, metric, pushed, pushed_lines, request, start_with_config,
};
use daftari::server::{SYSLOG_TCP_BANNER, SYSLOG_TLS_BANNER, banner_addr};

use crate::push_tls::{Ca, client, write_server_cert};

fn syslog_addr(s: &Server, banner: &str) -> SocketAddr {
    banner_addr(&format!("{banner}{}", s.printed(banner)), banner).unwrap()
}

/// Waits up to 10 s for `series` to reach `n`.
fn wait_metric(s: &Server, series: &str, n: f64) {
    wait_metric_for(s, series, n, Duration::from_secs(10));
}

/// Waits up to `limit` for `series` to reach `n`.
pub(crate) fn wait_metric_for(s: &Server, series: &str, n: f64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while metric(s, series) < n {
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {} (want {n})",
            metric(s, series)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The series of messages stored for `sender`.
pub(crate) fn stored(sender: &str) -> String {
    format!("daftari_syslog_messages_total{{sender=\"{sender}\",outcome=\"stored\"}}")
}

const TCP: &str = "[syslog]\ntcp_listen = \"127.0.0.1:0\"\nmax_message_bytes = 4096\n\
    [syslog.sources]\n\"127.0.0.1\" = \"fw-1\"\n\"127.0.0.2\" = \"fw-2\"\n";

#[test]
fn logger_over_tcp_in_both_framings_lands_with_the_tokens_labels() {
    let (_tmp, s) = start_with_config(TCP, &[]);
    s.create_token("fw-1", &["--label", "host=fw-1"]);
    let addr = syslog_addr(&s, SYSLOG_TCP_BANNER);
    let port = addr.port().to_string();
    let logger = |args: &[&str]| {
        let out = Command::new("logger")
            .args(["--tcp", "-n", "127.0.0.1", "-P", &port])
            .args(args)
            .output()
            .expect("logger (util-linux) is needed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    logger(&[
        "--octet-count",
        "--rfc5424",
        "-t",
        "sshd",
        "-p",
        "auth.warning",
        "--msgid",
        "AUTH",
        "--id=4242",
        "--sd-id",
        "origin@32473",
        "--sd-param",
        "ip=\"203.0.113.7\"",
        "Failed password for root from 203.0.113.7 port 50022 ssh2",
    ]);
    logger(&[
        "--rfc3164",
        "-t",
        "sudo",
        "-p",
        "authpriv.notice",
        "ops : TTY=pts/0 ; COMMAND=/bin/sh",
    ]);
    wait_metric(&s, &stored("fw-1"), 2.0);
    let q = "/loki/api/v1/query_range?query=%7Bjob%3D%22syslog%22%2Chost%3D%22fw-1%22%7D&since=1h";
    let r = request(s.local, "GET", q, &[], Vec::new());
    assert!(
        r.body.contains("Failed password for root from 203.0.113.7"),
        "{}",
        r.body
    );
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(got.len(), 2);
    let sshd = got
        .iter()
        .find(|r| r.labels.get("app_name") == Some("sshd"))
        .unwrap();
    assert_eq!(sshd.source, "fw-1");
    assert_eq!(
        sshd.labels.get("host"),
        Some("fw-1"),
        "the token's host wins"
    );
    assert_eq!(sshd.labels.get("facility"), Some("auth"));
    assert_eq!(sshd.metadata.get("severity"), Some("warning"));
    assert_eq!(sshd.metadata.get("detected_level"), Some("warn"));
    assert_eq!(sshd.metadata.get("msgid"), Some("AUTH"));
    assert_eq!(sshd.metadata.get("sd_origin_32473_ip"), Some("203.0.113.7"));
    assert_eq!(sshd.metadata.get("procid"), Some("4242"));
    let sudo = got
        .iter()
        .find(|r| r.labels.get("app_name") == Some("sudo"))
        .unwrap();
    assert_eq!(sudo.labels.get("facility"), Some("authpriv"));
    assert_eq!(
        String::from_utf8_lossy(&sudo.line),
        "ops : TTY=pts/0 ; COMMAND=/bin/sh"
    );
    assert_eq!(common::verify(&data).code, 0);
}

/// An octet-counted RFC 5424 message.
fn frame(app: &str, msg: &str) -> Vec<u8> {
    let m = format!("<38>1 - h {app} - - - {msg}");
    format!("{} {m}", m.len()).into_bytes()
}

#[test]
fn hostile_senders_are_closed_or_skipped_and_others_go_on() {
    let (_tmp, s) = start_with_config(TCP, &[]);
    s.create_token("fw-1", &[]);
    let addr = syslog_addr(&s, SYSLOG_TCP_BANNER);

    // An address not in syslog.sources is closed at once.
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr);
    let _ = c.write_all(&frame("x", "from nowhere"));
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"unknown_sender\"}",
        1.0,
    );

    // A mapped address whose token does not exist (fw-2) is closed too.
    let _c2 = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"unknown_sender\"}",
        2.0,
    );

    // An oversized message is skipped unread and counted; the next one is stored.
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 1), addr);
    let big = format!("10000 {}", "x".repeat(10_000));
    c.write_all(big.as_bytes()).unwrap();
    c.write_all(&frame("app", "after the big one")).unwrap();
    let too_large = "daftari_syslog_messages_total{sender=\"fw-1\",outcome=\"too_large\"}";
    wait_metric(&s, too_large, 1.0);
    wait_metric(&s, &stored("fw-1"), 1.0);

    // Silent connections from one address hold at most its share of the listener.
    let idle: Vec<_> = (0..8)
        .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 1), addr))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let _ninth = connect_from(Ipv4Addr::new(127, 0, 0, 1), addr);
    wait_metric(
        &s,
        "daftari_connections_refused_total{listener=\"syslog\"}",
        1.0,
    );
    drop(idle);

    // A count that is no count ends the connection.
    c.write_all(b"12x not framed").unwrap();
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"framing\"}",
        1.0,
    );
    let data = s.data.clone();
    assert!(s.stop().success());
    let lines = pushed_lines(&data);
    assert_eq!(lines, ["after the big one"]);
}

#[test]
fn a_flooding_sender_is_held_back_and_another_still_gets_through() {
    let config =
        format!("{TCP}[limits]\ntoken_entries_per_second = 2000\ntoken_burst_seconds = 1\n");
    let (_tmp, s) = start_with_config(&config, &[]);
    s.create_token("fw-1", &[]);
    s.create_token("fw-2", &[]);
    let addr = syslog_addr(&s, SYSLOG_TCP_BANNER);
    let flood_started = Instant::now();
    let flood = std::thread::spawn(move || {
        let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 1), addr);
        let one = frame("flood", "x");
        let burst: Vec<u8> = one.repeat(2000);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) {
            if c.write_all(&burst).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    c.write_all(&frame("quiet", "still heard")).unwrap();
    wait_metric(&s, &stored("fw-2"), 1.0);
    let took = started.elapsed();
    flood.join().unwrap();
    // The flood is held to its token's rate: 2,000/s, a second of burst, and one batch of at
    // most 1,000 admitted whole when the bucket is full.
    let flooded = metric(&s, &stored("fw-1"));
    let secs = flood_started.elapsed().as_secs_f64();
    assert!(
        flooded <= 2000.0 * secs + 2000.0 + 1000.0,
        "{flooded} stored in {secs:.1} s"
    );
    assert!(
        took < Duration::from_secs(3),
        "the quiet sender waited {took:?}"
    );
}

/// Sends `frames` over TLS as `identity` and closes; an error if the server refused.
fn send_tls(
    addr: SocketAddr,
    tls: &common::server::ClientTls,
    frames: &[Vec<u8>],
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&tls.config));
        let name = rustls_pki_types::ServerName::try_from(tls.server_name.clone()).unwrap();
        let mut s = connector.connect(name, tcp).await?;
        for f in frames {
            s.write_all(f).await?;
        }
        s.shutdown().await
    })
}

#[test]
fn tls_senders_are_known_by_their_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Ca::new("server ca"), Ca::new("client ca"));
    let (cert, key) = write_server_cert(tmp.path(), &server_ca);
    let ca_path = tmp.path().join("clients.pem");
    std::fs::write(&ca_path, client_ca.pem()).unwrap();
    let config = format!(
        "[syslog]\nlisten = \"127.0.0.1:0\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n\
         tls_client_ca = {:?}\n",
        ca_path.to_str().unwrap()
    );
    let (_t, s) = start_with_config(&config, &[]);
    // Bound to a certificate, the token cannot be awaited with a plain push.
    s.token_cmd(&[
        "create",
        "fw-tls",
        "--cert-identity",
        "fw.example",
        "--label",
        "host=fw-tls",
    ]);
    std::thread::sleep(Duration::from_millis(600));
    let addr = syslog_addr(&s, SYSLOG_TLS_BANNER);
    let fw = client(&server_ca, &[], Some(client_ca.leaf(&["fw.example"])));
    let frames = [
        frame(
            "suricata",
            r#"{"event_type":"alert","src_ip":"203.0.113.9"}"#,
        ),
        frame("sshd", "two"),
    ];
    send_tls(addr, &fw, &frames).unwrap();
    wait_metric(&s, &stored("fw-tls"), 2.0);

    // A certificate from the right CA that no token is bound to: closed, nothing stored.
    let stranger = client(&server_ca, &[], Some(client_ca.leaf(&["db.example"])));
    let _ = send_tls(addr, &stranger, &[frame("x", "stranger")]);
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"unknown_sender\"}",
        1.0,
    );
    // No certificate at all: the handshake fails.
    let anonymous = client(&server_ca, &[], None);
    let _ = send_tls(addr, &anonymous, &[frame("x", "anonymous")]);
    wait_metric(
        &s,
        "daftari_tls_handshake_failures_total{listener=\"syslog\"}",
        1.0,
    );
    // A revoked token's certificate is a stranger from then on.
    s.revoke_token("fw-tls");
    std::thread::sleep(Duration::from_millis(600));
    let _ = send_tls(addr, &fw, &[frame("x", "after revocation")]);
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"unknown_sender\"}",
        2.0,
    );

    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    let lines = pushed_lines(&data);
    assert_eq!(
        lines,
        [r#"{"event_type":"alert","src_ip":"203.0.113.9"}"#, "two"]
    );
    assert!(
        got.iter()
            .all(|r| r.source == "fw-tls" && r.labels.get("host") == Some("fw-tls"))
    );
}

#[test]
fn udp_datagrams_from_mapped_addresses_only() {
    let config = "[syslog]\nudp_listen = \"127.0.0.1:0\"\nmax_message_bytes = 4096\n\
        [syslog.sources]\n\"127.0.0.1\" = \"fw-1\"\n";
    let (_tmp, s) = start_with_config(config, &[]);
    s.create_token("fw-1", &["--label", "host=fw-1"]);
    let addr = syslog_addr(&s, daftari::server::SYSLOG_UDP_BANNER);
    let out = Command::new("logger")
        .args(["--udp", "-n", "127.0.0.1", "-P", &addr.port().to_string()])
        .args(["--rfc5424", "-t", "kernel", "-p", "daemon.warning"])
        .arg("[UFW BLOCK] IN=eth0 SRC=203.0.113.7 DST=198.51.100.10 PROTO=TCP DPT=22")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_metric(&s, &stored("fw-1"), 1.0);
    let stranger = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger
        .send_to(&frame("x", "spoofed?")[3..], addr)
        .unwrap();
    wait_metric(&s, "daftari_syslog_unknown_datagrams_total", 1.0);
    let mapped = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    mapped.send_to(&vec![b'x'; 5000], addr).unwrap();
    let too_large = "daftari_syslog_messages_total{sender=\"fw-1\",outcome=\"too_large\"}";
    wait_metric(&s, too_large, 1.0);
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("facility"), Some("daemon"));
    assert_eq!(got[0].labels.get("host"), Some("fw-1"));
}

#[test]
fn a_silent_connection_is_closed_at_the_idle_timeout() {
    use std::io::Read;
    let config = TCP.replace(
        "max_message_bytes = 4096",
        "max_message_bytes = 4096\nidle_timeout = \"1s\"",
    );
    let (_tmp, s) = start_with_config(&config, &[]);
    s.create_token("fw-1", &[]);
    let addr = syslog_addr(&s, SYSLOG_TCP_BANNER);
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 1), addr);
    c.write_all(&frame("app", "then nothing")).unwrap();
    wait_metric(&s, &stored("fw-1"), 1.0);
    let started = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        c.read(&mut b).unwrap(),
        0,
        "the server closes the connection"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    wait_metric(
        &s,
        "daftari_syslog_connections_closed_total{reason=\"idle\"}",
        1.0,
    );
}
