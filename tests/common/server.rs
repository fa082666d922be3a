//! Starting the real `daftari serve` binary on port 0, talking to it over real HTTP (plain,
//! TLS, HTTP/2), and reading back what it stored.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use daftari::store::{Reader, Record};

use super::BIN;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `daftari serve`.
pub struct Server {
    pub child: Child,
    pub push: SocketAddr,
    pub local: SocketAddr,
    /// The remote read listener, when the config sets one.
    pub remote: Option<SocketAddr>,
    pub data: PathBuf,
    /// The bootstrap token's secret (first start only; empty otherwise).
    pub token: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on `data` with both listeners on port 0 and `extra` arguments.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(data, extra, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(data, extra, env, Stdio::null())
    }

    /// [`Server::start`] with the server's stdout (its checkpoint lines) written to `stdout`.
    pub fn start_to(data: &Path, extra: &[&str], stdout: std::fs::File) -> Server {
        Server::spawn(data, extra, &[], Stdio::from(stdout))
    }

    /// [`Server::start`] with the server's stdout a pipe (in `child.stdout`).
    pub fn start_piped(data: &Path, extra: &[&str]) -> Server {
        Server::spawn(data, extra, &[], Stdio::piped())
    }

    fn spawn(data: &Path, extra: &[&str], env: &[(&str, &str)], stdout: Stdio) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args([
                "--push-listen",
                "127.0.0.1:0",
                "--local-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("DAFTARI_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Stored before it is announced: once `start` has seen a banner on the
                // channel, the banner is in `stderr` too.
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut push, mut local, mut remote) = (None, None, None);
        let wants_remote = extra.contains(&"--config")
            && extra
                .windows(2)
                .find(|w| w[0] == "--config")
                .and_then(|w| std::fs::read_to_string(w[1]).ok())
                .is_some_and(|t| t.contains("remote_listen"));
        let deadline = Instant::now() + START_TIMEOUT;
        while push.is_none() || local.is_none() || (wants_remote && remote.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start: {:#?}", lines.lock().unwrap());
                }
            };
            use daftari::server::{LOCAL_BANNER, PUSH_BANNER, REMOTE_BANNER, banner_addr};
            push = push.or(banner_addr(&line, PUSH_BANNER));
            local = local.or(banner_addr(&line, LOCAL_BANNER));
            remote = remote.or(banner_addr(&line, REMOTE_BANNER));
        }
        let token = std::fs::read_to_string(data.join("bootstrap-token"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Server {
            child,
            push: push.unwrap(),
            local: local.unwrap(),
            remote,
            data: data.to_path_buf(),
            token,
            stderr: lines,
        }
    }

    /// Sends `signal` (e.g. "TERM", "HUP") to the server.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Waits up to 10 s for a line of the server's stderr containing `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let t = Instant::now();
        while !self
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{needle:?} never logged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server printed after `marker` on a line of its stderr (waits up to 10 s),
    /// e.g. the keys of a new log.
    pub fn printed(&self, marker: &str) -> String {
        self.wait_for_log(marker);
        let lines = self.stderr.lock().unwrap();
        let line = lines.iter().find(|l| l.contains(marker)).unwrap();
        line.rsplit(marker).next().unwrap().trim().to_owned()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.stop_mut()
    }

    /// [`Server::stop`] through a reference.
    pub fn stop_mut(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(60))
    }

    /// Whether the process is still running.
    pub fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_bytes(self.child.id(), "VmHWM")
    }

    /// The server's resident memory now (`VmRSS`), in bytes.
    pub fn rss(&self) -> u64 {
        proc_status_bytes(self.child.id(), "VmRSS")
    }

    /// Waits for the process to exit, killing it after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "server did not exit within {limit:?}: {:#?}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `daftari token ARGS --data-dir <this server's>`, asserts success, returns stdout.
    pub fn token_cmd(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `daftari token create NAME [args]`; returns the secret once the running server
    /// accepts it (it picks up the token database within about a second).
    pub fn create_token(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["create", name];
        all.extend_from_slice(args);
        let secret = self.token_cmd(&all).trim().to_string();
        self.await_token(&secret, args.contains(&"--read"));
        secret
    }

    /// Waits until the server accepts `secret`: a push token on the push listener (an
    /// undecodable body gets 400 once the token is known, 401 before), a read token on the
    /// remote read listener. A valid token is never throttled, so the 401s cannot lock it out.
    pub fn await_token(&self, secret: &str, read: bool) {
        let auth = [
            ("authorization", format!("Bearer {secret}")),
            ("content-type", "application/json".to_string()),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = match (read, self.remote) {
                (false, _) => {
                    try_request(self.push, "POST", "/loki/api/v1/push", &auth, b"x".to_vec())
                }
                (true, Some(remote)) => {
                    try_request(remote, "GET", "/loki/api/v1/labels", &auth, Vec::new())
                }
                (true, None) => return,
            };
            let Ok(Resp { status, .. }) = answer else {
                // A TLS listener: give the server the second it takes instead.
                std::thread::sleep(Duration::from_millis(1200));
                return;
            };
            if status != 401 && status != 429 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server never took the new token"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn revoke_token(&self, name: &str) {
        self.token_cmd(&["revoke", name]);
    }

    /// Pushes `body` with the bootstrap token.
    pub fn push(&self, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Resp {
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        headers.push(("content-type", content_type.to_string()));
        if let Some(e) = encoding {
            headers.push(("content-encoding", e.to_string()));
        }
        request(self.push, "POST", "/loki/api/v1/push", &headers, body)
    }

    /// [`Server::push`], with an error instead of a panic when the exchange fails.
    pub fn try_push(
        &self,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        headers.push(("content-type", content_type.to_string()));
        if let Some(e) = encoding {
            headers.push(("content-encoding", e.to_string()));
        }
        try_request(self.push, "POST", "/loki/api/v1/push", &headers, body)
    }

    /// Pushes a JSON body with `token`.
    pub fn push_json(&self, token: &str, json: &str) -> Resp {
        push_json_to(self.push, token, json)
    }
}

/// Pushes a JSON body with `token` to the push listener at `push`.
pub fn push_json_to(push: SocketAddr, token: &str, json: &str) -> Resp {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_string()),
    ];
    request(
        push,
        "POST",
        "/loki/api/v1/push",
        &headers,
        json.as_bytes().to_vec(),
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record in a data directory whose server has stopped, in chain order.
pub fn records(data: &Path) -> Vec<Record> {
    Reader::new(data).read(0, usize::MAX).unwrap()
}

/// Records that are not admin-stream entries.
pub fn pushed(data: &Path) -> Vec<Record> {
    records(data)
        .into_iter()
        .filter(|r| r.labels.get("__daftari__").is_none())
        .collect()
}

/// The lines of [`pushed`], as text.
pub fn pushed_lines(data: &Path) -> Vec<String> {
    pushed(data)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect()
}

/// The value of `series` (its whole name with labels) in the server's `/metrics`, 0 when
/// absent.
pub fn metric(s: &Server, series: &str) -> f64 {
    let m = request(s.local, "GET", "/metrics", &[], Vec::new()).body;
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A response, body as text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    /// The body as it came (a binary body is lossy in `body`).
    pub bytes: Vec<u8>,
    /// The HTTP version the exchange used.
    pub version: http::Version,
}

/// Client-side TLS for [`request_tls`].
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: String,
}

/// One plain HTTP/1.1 request on a new connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Resp {
    block_on(send(addr, None, method, path, headers, body)).unwrap()
}

/// One plain HTTP/1.1 request; an error instead of a panic when the server is gone.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    block_on(send(addr, None, method, path, headers, body))
}

/// One request over TLS on a new connection (HTTP/2 if the server picks it by ALPN).
pub fn request_tls(
    addr: SocketAddr,
    tls: &ClientTls,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    block_on(send(addr, Some(tls), method, path, headers, body))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn build(
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(Full::new(Bytes::from(body))).unwrap()
}

async fn send(
    addr: SocketAddr,
    tls: Option<&ClientTls>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let Some(tls) = tls else {
        let mut req = build(method, path, headers, body);
        req.headers_mut()
            .insert("host", addr.to_string().parse().unwrap());
        return http1(TokioIo::new(tcp), req).await;
    };
    let name = rustls_pki_types::ServerName::try_from(tls.server_name.clone()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let uri = format!("https://{}{path}", tls.server_name);
    let mut req = build(method, &uri, headers, body);
    if h2 {
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
        collect(resp).await
    } else {
        req.headers_mut()
            .insert("host", tls.server_name.parse().unwrap());
        http1(TokioIo::new(stream), req).await
    }
}

async fn http1<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<Resp, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    collect(resp).await
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Result<Resp, String> {
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body.to_vec(),
        version,
    })
}

/// Starts a server in a new temporary directory with `config` as its config file and `env`
/// as extra environment variables.
pub fn start_with_config(config: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("daftari.toml");
    std::fs::write(&path, config).unwrap();
    let s = Server::start_with_env(
        &tmp.path().join("data"),
        &["--config", path.to_str().unwrap()],
        env,
    );
    (tmp, s)
}

/// A TCP connection to `addr` from the loopback address `src` (any of 127.0.0.0/8), so that
/// one test can act as many peers.
pub fn connect_from(src: std::net::Ipv4Addr, addr: SocketAddr) -> std::net::TcpStream {
    block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::from((src, 0)))?;
        let s = sock.connect(addr).await?;
        let s = s.into_std()?;
        s.set_nonblocking(false)?;
        std::io::Result::Ok(s)
    })
    .unwrap()
}

/// One HTTP/1.1 request from the loopback address `src`, on a new connection.
pub fn request_from(
    src: std::net::Ipv4Addr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Resp {
    use std::io::{Read, Write};
    let mut c = connect_from(src, addr);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body);
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    parse_response(&raw)
}

/// A whole HTTP/1.1 response as read off a connection (`content-length` bodies).
pub fn parse_response(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers = http::HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    Resp {
        status,
        headers,
        body: body.to_string(),
        bytes: body.as_bytes().to_vec(),
        version: http::Version::HTTP_11,
    }
}

/// A field of `/proc/PID/status` in bytes (`VmHWM`, `VmRSS`).
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}
