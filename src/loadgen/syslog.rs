//! The syslog load: the same security lines as RFC 5424 messages in octet-counted frames
//! (as rsyslog forwards them), streamed over N plain TCP connections, closed-loop or at a
//! fixed rate. Syslog has no acknowledgement, so what counts is what the server reports as
//! committed (`daftari_syslog_messages_total{outcome="stored"}`) over the measured window.
//!
//! Must not: assert anything; it measures and prints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{JOBS, Options, security_line};
use crate::bench::lines::Rng;

/// What the syslog load measured.
#[derive(Debug, Clone, Default)]
pub struct SyslogReport {
    pub seconds: f64,
    /// Messages the server committed in the measured window.
    pub entries: u64,
    /// Bytes of frames written in the measured window.
    pub wire_bytes: u64,
}

/// Streams to `syslog` and reads the committed count from the local listener at `local`.
pub async fn run(opts: &Options, syslog: SocketAddr, local: SocketAddr) -> SyslogReport {
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let mut tasks = Vec::new();
    for c in 0..opts.connections {
        let burst = frames(opts, c);
        let interval = (opts.rate > 0).then(|| {
            Duration::from_secs_f64(
                opts.connections as f64 * opts.batch_entries as f64 / opts.rate as f64,
            )
        });
        tasks.push(tokio::spawn(async move {
            stream(syslog, burst, interval, measure_from, end).await
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = committed(local).await;
    tokio::time::sleep_until(end.into()).await;
    let after = committed(local).await;
    let mut wire_bytes = 0;
    for t in tasks {
        wire_bytes += t.await.unwrap_or(0);
    }
    SyslogReport {
        seconds: opts.duration.as_secs_f64(),
        entries: after.saturating_sub(before),
        wire_bytes,
    }
}

/// `opts.batch_entries` messages over `opts.streams` hosts and jobs, octet-counted.
fn frames(opts: &Options, seed: usize) -> Vec<u8> {
    let mut rng = Rng::new((seed as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::new();
    for i in 0..opts.batch_entries {
        let s = rng.below(opts.streams.max(1) as u64) as usize;
        let job = JOBS[s % JOBS.len()];
        let msg = format!(
            "<38>1 - host-{:03} {job} {} - - {}",
            s / JOBS.len(),
            1000 + i,
            security_line(job, &mut rng)
        );
        out.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
    }
    out
}

/// Writes `burst` again and again (every `interval` if set) until `end`; the bytes written in
/// the measured window.
async fn stream(
    addr: SocketAddr,
    burst: Vec<u8>,
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
) -> u64 {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let mut next = Instant::now();
    let mut written = 0;
    while Instant::now() < end {
        if let Some(iv) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += iv;
        }
        let write = tokio::time::timeout_at(end.into(), tcp.write_all(&burst));
        match write.await {
            Ok(Ok(())) if Instant::now() >= measure_from => written += burst.len() as u64,
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    written
}

/// The committed count of the spawned server's bootstrap sender.
async fn committed(local: SocketAddr) -> u64 {
    let series = "daftari_syslog_messages_total{sender=\"bootstrap\",outcome=\"stored\"} ";
    let Ok(mut tcp) = tokio::net::TcpStream::connect(local).await else {
        return 0;
    };
    let req = format!("GET /metrics HTTP/1.0\r\nhost: {local}\r\n\r\n");
    if tcp.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut body = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut body).await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.parse().ok())
        .unwrap_or(0)
}
