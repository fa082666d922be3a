//! TLS on the push listener, with certificates made in the test: HTTP/1.1 and HTTP/2 by
//! ALPN, reload on SIGHUP without dropping open connections, client certificates (mTLS), and
//! tokens bound to a certificate identity; and TLS on the remote read listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::server::{ClientTls, Resp, Server, block_on, pushed, request_tls};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const TS: i64 = 1_754_400_000_000_000_000;

pub(crate) struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap())
    }

    /// A leaf certificate for `names` (the first is also the common name): (cert PEM, key PEM).
    pub(crate) fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = p.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub(crate) fn pem(&self) -> String {
        self.0.pem()
    }
}

/// Writes the server's certificate and key under `dir`; returns (cert path, key path).
pub(crate) fn write_server_cert(dir: &Path, ca: &Ca) -> (String, String) {
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"]);
    let (cp, kp) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cp, cert).unwrap();
    std::fs::write(&kp, key).unwrap();
    (cp.to_str().unwrap().into(), kp.to_str().unwrap().into())
}

pub(crate) fn client(ca: &Ca, alpn: &[&[u8]], identity: Option<(String, String)>) -> ClientTls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    ClientTls {
        config: Arc::new(cfg),
        server_name: "localhost".into(),
    }
}

fn body(line: &str) -> Vec<u8> {
    format!(r#"{{"streams":[{{"stream":{{"job":"tls"}},"values":[["{TS}","{line}"]]}}]}}"#)
        .into_bytes()
}

fn push_tls(s: &Server, tls: &ClientTls, token: &str, line: &str) -> Result<Resp, String> {
    let h = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_string()),
    ];
    request_tls(s.push, tls, "POST", "/loki/api/v1/push", &h, body(line))
}

#[test]
fn pushes_over_tls_with_http1_and_http2() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (cert, key) = write_server_cert(tmp.path(), &ca);
    let s = Server::start(
        &tmp.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let r = push_tls(
        &s,
        &client(&ca, &[b"h2", b"http/1.1"], None),
        &s.token,
        "over h2",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.version),
        (204, http::Version::HTTP_2),
        "{}",
        r.body
    );
    let r = push_tls(&s, &client(&ca, &[b"http/1.1"], None), &s.token, "over h1").unwrap();
    assert_eq!(
        (r.status, r.version),
        (204, http::Version::HTTP_11),
        "{}",
        r.body
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.push).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("/loki/api/v1/push")
            .body(Full::new(Bytes::from(body("x"))))
            .unwrap();
        tx.send_request(req).await.map(|r| r.status().as_u16())
    });
    assert!(plain.is_err(), "plain HTTP answered {plain:?}");
    let data = s.data.clone();
    assert!(s.stop().success());
    assert_eq!(pushed(&data).len(), 2);
}

/// One kept-alive HTTP/1.1 connection over TLS.
async fn open(s: &Server, tls: &ClientTls) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(s.push).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

async fn send_on(
    tx: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    token: &str,
    line: &str,
) -> u16 {
    let req = http::Request::post("/loki/api/v1/push")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body(line))))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old ca"), Ca::new("new ca"));
    let (cert, key) = write_server_cert(tmp.path(), &old_ca);
    let s = Server::start(
        &tmp.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let (old_client, new_client) = (
        client(&old_ca, &[b"http/1.1"], None),
        client(&new_ca, &[b"http/1.1"], None),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut kept = rt.block_on(open(&s, &old_client));
    assert_eq!(
        rt.block_on(send_on(&mut kept, &s.token, "before reload")),
        204
    );

    write_server_cert(tmp.path(), &new_ca);
    s.signal("HUP");
    s.wait_for_log("TLS certificate reloaded");
    assert_eq!(
        push_tls(&s, &new_client, &s.token, "new cert")
            .unwrap()
            .status,
        204
    );
    assert!(
        push_tls(&s, &old_client, &s.token, "old ca").is_err(),
        "old certificate still served"
    );
    assert_eq!(
        rt.block_on(send_on(
            &mut kept,
            &s.token,
            "after reload, same connection"
        )),
        204
    );

    // A broken file keeps the working certificate.
    std::fs::write(&cert, "not a certificate").unwrap();
    s.signal("HUP");
    s.wait_for_log("TLS reload failed");
    assert_eq!(
        push_tls(&s, &new_client, &s.token, "still served")
            .unwrap()
            .status,
        204
    );
    drop(kept);
    let data = s.data.clone();
    assert!(s.stop().success());
    assert_eq!(pushed(&data).len(), 4);
}

#[test]
fn mtls_requires_a_client_certificate_from_the_configured_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, rogue_ca) =
        (Ca::new("server ca"), Ca::new("client ca"), Ca::new("rogue"));
    let (cert, key) = write_server_cert(tmp.path(), &server_ca);
    let ca_path = tmp.path().join("clients.pem");
    std::fs::write(&ca_path, client_ca.pem()).unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            ca_path.to_str().unwrap(),
        ],
    );
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let anonymous = client(&server_ca, alpn, None);
    assert!(push_tls(&s, &anonymous, &s.token, "no cert").is_err());
    let rogue = client(&server_ca, alpn, Some(rogue_ca.leaf(&["web-1.example"])));
    assert!(push_tls(&s, &rogue, &s.token, "rogue cert").is_err());
    let good = client(&server_ca, alpn, Some(client_ca.leaf(&["web-1.example"])));
    assert_eq!(
        push_tls(&s, &good, &s.token, "good cert").unwrap().status,
        204
    );

    // A token bound to a certificate identity works only with that certificate.
    let bound = s.create_token("web-1", &["--cert-identity", "web-1.example"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        push_tls(&s, &good, &bound, "bound, right cert")
            .unwrap()
            .status,
        204
    );
    let other = client(&server_ca, alpn, Some(client_ca.leaf(&["db-2.example"])));
    let r = push_tls(&s, &other, &bound, "bound, wrong cert").unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.body
            .contains("must be used with a client certificate for \"web-1.example\"")
    );
    let data = s.data.clone();
    assert!(s.stop().success());
    let lines: Vec<_> = pushed(&data)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    assert_eq!(lines, ["good cert", "bound, right cert"]);
}

#[test]
fn the_remote_read_listener_speaks_tls_with_read_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("test read CA");
    let (cert, key) = write_server_cert(tmp.path(), &ca);
    let cfg = tmp.path().join("daftari.toml");
    std::fs::write(
        &cfg,
        format!(
            "[query]\nremote_listen = \"127.0.0.1:0\"\nremote_tls_cert = {cert:?}\nremote_tls_key = {key:?}\n"
        ),
    )
    .unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert!(
        s.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("daftari: remote read listener on https://"))
    );
    let remote = s.remote.unwrap();
    let grafana = s.create_token("grafana", &["--read"]);
    let auth = vec![("authorization", format!("Bearer {grafana}"))];
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let tls = client(&ca, &[alpn], None);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let r = loop {
            let r = request_tls(
                remote,
                &tls,
                "GET",
                "/loki/api/v1/labels",
                &auth,
                Vec::new(),
            )
            .unwrap();
            if r.status != 401 || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.starts_with(r#"{"status":"success","data":["#),
            "{}",
            r.body
        );
    }
    // Plain HTTP to the TLS listener gets nothing.
    let plain = std::panic::catch_unwind(|| {
        common::server::request(remote, "GET", "/loki/api/v1/labels", &auth, Vec::new())
    });
    assert!(plain.is_err() || plain.unwrap().status != 200);
}

#[test]
fn a_stalled_tls_handshake_is_closed_at_its_own_deadline() {
    // A client that starts a handshake and stops holds its connection only until the
    // handshake deadline (`push.tls_handshake_timeout`), far sooner than the header timeout.
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let (cert, key) = write_server_cert(tmp.path(), &ca);
    let config = tmp.path().join("daftari.toml");
    std::fs::write(
        &config,
        "[push]\ntls_handshake_timeout = \"1s\"\nheader_timeout = \"30s\"\n",
    )
    .unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let mut c = std::net::TcpStream::connect(s.push).unwrap();
    // The first bytes of a ClientHello record, then nothing.
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break t.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    // Meanwhile and afterwards, a real client completes its handshake and pushes.
    let r = push_tls(&s, &client(&ca, &[b"http/1.1"], None), &s.token, "after").unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}
