//! A `daftari serve` child process on a scratch directory, for the load commands.
//!
//! Owns: starting it on port 0, learning its listeners and bootstrap token from what it
//! prints, draining its stderr, and stopping it. Must not: touch the ledger itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use daftari::server::{LOCAL_BANNER, PUSH_BANNER, banner_addr};

/// How long a spawned server may take to open the ledger and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server started for the run.
pub struct Spawned {
    pub child: Child,
    /// The push listener.
    pub addr: SocketAddr,
    /// The local (loopback) listener.
    pub local: SocketAddr,
    /// The bootstrap token's secret.
    pub token: String,
    /// The scratch directory (the ledger is in `data/` under it).
    pub dir: PathBuf,
}

impl Spawned {
    /// Starts `daftari serve` on `dir` (or a fresh scratch directory) with `config` as its
    /// config file and `extra` arguments; returns once it listens.
    pub fn start(dir: Option<PathBuf>, config: &str, extra: &[&str]) -> anyhow::Result<Spawned> {
        let dir = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("daftari-loadgen-{}", std::process::id()))
        });
        if dir.exists() {
            bail!("{} exists; pass an empty --data-dir", dir.display());
        }
        std::fs::create_dir_all(&dir)?;
        let config_file = dir.join("daftari.toml");
        std::fs::write(&config_file, config)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args([
                "--push-listen",
                "127.0.0.1:0",
                "--local-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start daftari serve")?;
        let stderr = child.stderr.take().context("server stderr")?;
        // Lines arrive on a channel, so that waiting for a banner has a deadline; the thread
        // keeps draining the server's stderr so it never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut next = |prefix: &str| -> anyhow::Result<SocketAddr> {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(line) = rx.recv_timeout(left) else {
                    let _ = child.kill();
                    bail!(
                        "the spawned server exited or did not listen within {} s",
                        START_TIMEOUT.as_secs()
                    );
                };
                if let Some(a) = banner_addr(&line, prefix) {
                    return Ok(a);
                }
            }
        };
        let addr = next(PUSH_BANNER)?;
        let local = next(LOCAL_BANNER)?;
        let token = std::fs::read_to_string(dir.join("data/bootstrap-token"))?
            .trim()
            .to_string();
        Ok(Spawned {
            child,
            addr,
            local,
            token,
            dir,
        })
    }

    /// Stops the server (SIGTERM) and removes the scratch directory.
    pub fn stop(self) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let result = self.stop_keeping();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Stops the server (SIGTERM) and keeps its directory.
    pub fn stop_keeping(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the spawned server exited with {status}");
        Ok(())
    }
}
