//! The server in process: `server::run` on port-0 listeners, on a manual clock that the test
//! moves. Epochs end when the test says so, not when a sleep guesses they have; retention
//! ages segments the same way. Tests that need a process (kill -9, crash points, signals,
//! the CLI) use `server::Server` instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daftari::clock::Clock;
use daftari::config::{Config, Overrides};
use daftari::server::{self, Control, Listeners};
use daftari::token::{Kind, Manager};
use tokio::sync::mpsc;

use super::server::{Resp, push_json_to};

/// How long a condition the server owes a test may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// How far behind the wall clock a manual clock starts.
const CLOCK_BEHIND: Duration = Duration::from_secs(24 * 3600);

/// A server running in this process on a manual clock.
pub struct InProc {
    pub push: SocketAddr,
    pub local: SocketAddr,
    pub data: PathBuf,
    /// The bootstrap token's secret (first start only; empty otherwise).
    pub token: String,
    pub clock: Clock,
    epoch: Duration,
    control: mpsc::Sender<Control>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProc {
    /// Starts a server on `data` with `toml` as its config file, epochs of `epoch` and
    /// `retention` if given, on a manual clock standing a day behind the wall clock: however
    /// far a test moves it, its seals are never in the future of a verify run after it.
    pub fn start(data: &Path, toml: &str, epoch: Duration, retention: Option<Duration>) -> InProc {
        let start = daftari::clock::now_ns() - CLOCK_BEHIND.as_nanos() as i64;
        InProc::start_on(data, toml, epoch, retention, Clock::manual(start))
    }

    /// [`InProc::start`] on a given clock (a restart that keeps the time where it was).
    pub fn start_on(
        data: &Path,
        toml: &str,
        epoch: Duration,
        retention: Option<Duration>,
        clock: Clock,
    ) -> InProc {
        let flags = Overrides {
            data_dir: Some(data.to_path_buf()),
            push_listen: Some("127.0.0.1:0".into()),
            local_listen: Some("127.0.0.1:0".into()),
            epoch_interval: Some(epoch),
            retention,
            ..Overrides::default()
        };
        let mut cfg = Config::from_toml(toml, &flags).unwrap();
        cfg.clock = clock.clone();
        // Checkpoints go to their file; stdout is the test runner's.
        cfg.checkpoint_stdout = false;
        let token = first_token(data);
        let (tx, rx) = mpsc::channel(4);
        let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listeners = Listeners::bind(&cfg).await?;
                let addrs = (listeners.push.local_addr()?, listeners.local.local_addr()?);
                let _ = addrs_tx.send(addrs);
                server::run(cfg, listeners, rx).await
            })
        });
        let Ok((push, local)) = addrs_rx.recv_timeout(WAIT) else {
            panic!("server did not bind: {:?}", thread.join());
        };
        let s = InProc {
            push,
            local,
            data: data.to_path_buf(),
            token,
            clock,
            epoch,
            control: tx,
            thread: Some(thread),
        };
        s.wait_ready();
        s
    }

    /// Waits until the server answers on its local listener: the ledger, the seal chain and
    /// the tokens are open by then.
    fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = super::server::try_request(self.local, "GET", "/ready", &[], Vec::new());
            if matches!(r, Ok(ref r) if r.status == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "server not ready: {r:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The epoch-0 public key the server wrote beside the ledger.
    pub fn pk(&self) -> String {
        std::fs::read_to_string(self.data.join(daftari::seal::EPOCH0_PUB_FILE))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The checkpoint verifier key of the log (what `serve` prints on a first start).
    pub fn vkey(&self) -> String {
        let origin = daftari::store::Reader::new(&self.data)
            .segments()
            .unwrap()
            .first()
            .map(|s| s.meta.origin.clone())
            .unwrap();
        daftari::seal::note::NoteSigner::load(&self.data, &origin)
            .unwrap()
            .vkey()
    }

    /// Ends the open epoch: moves the clock by one epoch and waits until its seal is
    /// committed and exported (the close seals and retention of that end of epoch come
    /// before it).
    pub fn end_epoch(&self) {
        let (before, _) = last_seal(&self.data);
        self.clock.advance(self.epoch);
        let deadline = Instant::now() + WAIT;
        let epoch = loop {
            match last_seal(&self.data) {
                (n, epoch) if n > before => break epoch,
                _ => {}
            }
            assert!(Instant::now() < deadline, "no seal after the clock moved");
            std::thread::sleep(Duration::from_millis(5));
        };
        // The exporter sets both gauges after the commit (the first seal is epoch 0, so
        // the epoch alone cannot tell).
        while self.metric("daftari_seal_last_epoch") < epoch as f64
            || self.metric("daftari_seal_last_timestamp_seconds") <= 0.0
        {
            assert!(
                Instant::now() < deadline,
                "epoch {epoch} sealed but not exported"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The value of one series of `/metrics` (0 if it is not there).
    pub fn metric(&self, series: &str) -> f64 {
        let m = super::server::request(self.local, "GET", "/metrics", &[], Vec::new());
        m.body
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// Ends `n` epochs in turn.
    pub fn end_epochs(&self, n: usize) {
        for _ in 0..n {
            self.end_epoch();
        }
    }

    /// Pushes a JSON body with `token`.
    pub fn push_json(&self, token: &str, json: &str) -> Resp {
        push_json_to(self.push, token, json)
    }

    /// Drains and stops the server as SIGTERM would (a shutdown seal, the ledger closed),
    /// failing the test if it stopped with an error.
    pub fn stop(mut self) {
        self.shutdown().unwrap();
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let _ = self.control.blocking_send(Control::Shutdown);
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The push token `serve` would make on a first start (through the token database, its
/// secret kept in `bootstrap-token`), or the one kept there by an earlier start.
fn first_token(data: &Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let kept = data.join("bootstrap-token");
    let manager = Manager::open(data).unwrap();
    if !manager.is_empty().unwrap() {
        return std::fs::read_to_string(kept)
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
    }
    let now = daftari::clock::now_ns();
    let secret = manager
        .create("bootstrap", Kind::Push, &[], None, now)
        .unwrap()
        .to_string();
    daftari::token::write_private(&kept, format!("{secret}\n").as_bytes()).unwrap();
    secret
}

/// The row number and epoch of the newest end-of-epoch seal, or zeros if there is none.
fn last_seal(data: &Path) -> (i64, i64) {
    let path = data.join("seals.sqlite");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, 0);
    };
    conn.query_row(
        "SELECT n, epoch FROM seals WHERE kind = 0 ORDER BY n DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap_or((0, 0))
}
