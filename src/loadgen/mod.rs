//! The push load generator: batches like Alloy's (protobuf + raw snappy, many streams,
//! realistic security lines), or the same records as OTLP/HTTP logs (protobuf + gzip, as an
//! OpenTelemetry Collector sends them), sent over N concurrent keep-alive connections,
//! closed-loop or at a fixed rate, with the figures that matter: durable entries/s, MB/s, push latency
//! percentiles, and the server's peak RSS.
//!
//! Must not: assert anything; it measures and prints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

pub mod syslog;

use crate::bench::lines::Rng;
use crate::push::proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp, encode_snappy};

/// Distinct pre-encoded bodies per connection, so consecutive requests differ.
const BODIES_PER_CONNECTION: usize = 8;

/// What to send.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    /// Push tokens; connection `c` uses `tokens[c % len]`.
    pub tokens: Vec<String>,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub batch_entries: usize,
    pub streams: usize,
    /// Entries per second over all connections; 0 sends as fast as acknowledgements allow.
    pub rate: u64,
    pub protocol: Protocol,
}

/// Which push API the load uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Protocol {
    /// `POST /loki/api/v1/push`, protobuf + snappy, as Alloy's `loki.write`.
    #[default]
    Loki,
    /// `POST /otlp/v1/logs`, protobuf + gzip, as an OpenTelemetry Collector's `otlphttp`.
    Otlp,
    /// RFC 5424 in octet-counted frames over plain TCP, as rsyslog forwards (`syslog`).
    Syslog,
}

impl Protocol {
    fn path(self) -> &'static str {
        match self {
            Protocol::Otlp => "/otlp/v1/logs",
            _ => "/loki/api/v1/push",
        }
    }

    fn encoding(self) -> &'static str {
        match self {
            Protocol::Otlp => "gzip",
            _ => "snappy",
        }
    }

    /// The status of a durable push.
    fn stored(self) -> u16 {
        match self {
            Protocol::Otlp => 200,
            _ => 204,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seconds: f64,
    pub entries: u64,
    pub line_bytes: u64,
    pub body_bytes: u64,
    pub requests: u64,
    /// Non-204 answers by status (0 = connection error).
    pub failures: Vec<(u16, u64)>,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Report {
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.seconds.max(1e-9)
    }
}

/// One pre-encoded request body and what it carries.
#[derive(Debug, Clone)]
struct Body {
    bytes: Bytes,
    entries: u64,
    line_bytes: u64,
}

#[derive(Debug, Default)]
struct Tally {
    entries: u64,
    line_bytes: u64,
    body_bytes: u64,
    requests: u64,
    failures: std::collections::BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
}

/// Runs the load and returns the figures of the measured part (after the warm-up).
pub async fn run(opts: &Options) -> Report {
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let mut tasks = Vec::new();
    for c in 0..opts.connections {
        let bodies: Vec<Body> = (0..BODIES_PER_CONNECTION)
            .map(|i| make_body(opts, c * BODIES_PER_CONNECTION + i))
            .collect();
        let opts = opts.clone();
        let interval = (opts.rate > 0).then(|| {
            Duration::from_secs_f64(
                opts.connections as f64 * opts.batch_entries as f64 / opts.rate as f64,
            )
        });
        let first = start
            + interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(c as f64 / opts.connections as f64)
            });
        let token = opts.tokens[c % opts.tokens.len().max(1)].clone();
        tasks.push(tokio::spawn(async move {
            connection(&opts, &token, bodies, first, interval, measure_from, end).await
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            total.entries += t.entries;
            total.line_bytes += t.line_bytes;
            total.body_bytes += t.body_bytes;
            total.requests += t.requests;
            total.latencies.extend(t.latencies);
            for (s, n) in t.failures {
                *total.failures.entry(s).or_default() += n;
            }
        }
    }
    total.latencies.sort();
    let pct = |p: f64| {
        let l = &total.latencies;
        if l.is_empty() {
            Duration::ZERO
        } else {
            l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1]
        }
    };
    Report {
        seconds: opts.duration.as_secs_f64(),
        entries: total.entries,
        line_bytes: total.line_bytes,
        body_bytes: total.body_bytes,
        requests: total.requests,
        failures: total.failures.into_iter().collect(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: total.latencies.last().copied().unwrap_or_default(),
    }
}

async fn connection(
    opts: &Options,
    token: &str,
    bodies: Vec<Body>,
    mut next: Instant,
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    let mut i = 0usize;
    while Instant::now() < end {
        if let Some(iv) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += iv;
        }
        if sender.is_none() {
            sender = connect(opts.addr).await;
            if sender.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let Some(tx) = sender.as_mut() else { continue };
        let body = &bodies[i % bodies.len()];
        i += 1;
        let req = http::Request::post(opts.protocol.path())
            .header("host", opts.addr.to_string())
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", opts.protocol.encoding())
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(body.bytes.clone()));
        let Ok(req) = req else { break };
        let sent = Instant::now();
        let status = match tx.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                status
            }
            Err(_) => {
                sender = None;
                0
            }
        };
        let took = sent.elapsed();
        if sent < measure_from || Instant::now() > end {
            continue;
        }
        tally.requests += 1;
        if status == opts.protocol.stored() {
            tally.entries += body.entries;
            tally.line_bytes += body.line_bytes;
            tally.body_bytes += body.bytes.len() as u64;
            tally.latencies.push(took);
        } else {
            *tally.failures.entry(status).or_default() += 1;
            if interval.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Option<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(tx)
}

/// A batch of `opts.batch_entries` entries spread over `opts.streams` streams.
fn make_body(opts: &Options, seed: usize) -> Body {
    let mut rng = Rng::new((seed as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let base_ns = crate::clock::now_ns();
    let mut streams: Vec<StreamAdapter> = (0..opts.streams.max(1))
        .map(|s| StreamAdapter {
            labels: Bytes::from(format!(
                "{{host=\"host-{:03}\", job=\"{}\"}}",
                s / JOBS.len(),
                JOBS[s % JOBS.len()]
            )),
            entries: Vec::new(),
            hash: 0,
        })
        .collect();
    let mut line_bytes = 0u64;
    for i in 0..opts.batch_entries {
        let s = rng.below(streams.len() as u64) as usize;
        let line = security_line(JOBS[s % JOBS.len()], &mut rng);
        line_bytes += line.len() as u64;
        let ts = base_ns + i as i64 * 1000;
        streams[s].entries.push(EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: ts / 1_000_000_000,
                nanos: (ts % 1_000_000_000) as i32,
            }),
            line: Bytes::from(line),
            structured_metadata: Vec::new(),
        });
    }
    streams.retain(|s| !s.entries.is_empty());
    let bytes = match opts.protocol {
        Protocol::Otlp => otlp_gzip(streams),
        _ => encode_snappy(&PushRequest {
            streams,
            format: Bytes::new(),
        }),
    };
    Body {
        bytes: Bytes::from(bytes),
        entries: opts.batch_entries as u64,
        line_bytes,
    }
}

/// The same streams as OTLP: a resource per stream (`service.name` its job, `host.name` its
/// host), one scope, the lines as string bodies; protobuf, then gzip.
fn otlp_gzip(streams: Vec<StreamAdapter>) -> Vec<u8> {
    use crate::push::otlp::proto::{
        AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs,
        Value,
    };
    let text = |v: &str| {
        Some(AnyValue {
            value: Some(Value::StringValue(v.to_owned())),
        })
    };
    let resource_logs = streams
        .into_iter()
        .map(|s| {
            let labels = String::from_utf8_lossy(&s.labels).into_owned();
            let value = |name: &str| {
                labels
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            let attributes = vec![
                KeyValue {
                    key: "service.name".into(),
                    value: text(&value("job")),
                },
                KeyValue {
                    key: "host.name".into(),
                    value: text(&value("host")),
                },
            ];
            let log_records = s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.timestamp.unwrap_or_default();
                    LogRecord {
                        time_unix_nano: (ts.seconds * 1_000_000_000 + i64::from(ts.nanos)) as u64,
                        body: text(&String::from_utf8_lossy(&e.line)),
                        ..Default::default()
                    }
                })
                .collect();
            ResourceLogs {
                resource: Some(Resource {
                    attributes,
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records,
                }],
            }
        })
        .collect();
    let raw = prost::Message::encode_to_vec(&ExportLogsServiceRequest { resource_logs });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = std::io::Write::write_all(&mut gz, &raw);
    gz.finish().unwrap_or_default()
}

pub(crate) const JOBS: [&str; 5] = ["sshd", "sudo", "auditd", "fail2ban", "kernel"];
const USERS: [&str; 6] = ["root", "admin", "ops", "deploy", "postgres", "ubuntu"];

pub(crate) fn security_line(job: &str, r: &mut Rng) -> String {
    let ip = format!("203.0.{}.{}", r.below(256), r.below(256));
    let user = USERS[r.below(USERS.len() as u64) as usize];
    let pid = 1000 + r.below(60_000);
    match job {
        "sshd" => format!(
            "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {} ssh2",
            1024 + r.below(60_000)
        ),
        "sudo" => format!(
            "sudo[{pid}]: {user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx.service",
            r.below(8)
        ),
        "auditd" => format!(
            "type=SYSCALL msg=audit({}.{:03}:{}): arch=c000003e syscall=59 success=yes exit=0 ppid={} pid={pid} auid=1000 uid=0 comm=\"bash\" exe=\"/usr/bin/bash\" key=\"exec\"",
            1_754_400_000 + r.below(100_000),
            r.below(1000),
            r.below(1_000_000),
            pid - 1
        ),
        "fail2ban" => format!(
            "fail2ban.actions [{pid}]: NOTICE [sshd] Ban {ip} after 5 failures within 600 seconds"
        ),
        _ => format!(
            "kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={ip} DST=198.51.100.10 LEN=60 TTL=49 PROTO=TCP SPT={} DPT=22 SYN",
            1024 + r.below(60_000)
        ),
    }
}

/// Peak and current resident set size of process `pid`, in KiB (Linux).
/// Bytes process `pid` has caused to be written to storage (`/proc/PID/io` write_bytes).
pub fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
}

pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
