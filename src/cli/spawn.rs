//! A `daftari serve` child process on a scratch directory, for the load commands.
//!
//! Owns: starting it on port 0, learning its listeners and bootstrap token from what it
//! prints, draining its stderr, and stopping it. Must not: touch the ledger itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

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
        let mut lines = BufReader::new(stderr).lines();
        let mut next = |prefix: &str| -> anyhow::Result<SocketAddr> {
            loop {
                let Some(Ok(line)) = lines.next() else {
                    bail!("the spawned server exited before listening");
                };
                if let Some(a) = line.strip_prefix(prefix) {
                    return Ok(a.parse()?);
                }
            }
        };
        let addr = next("daftari: push listener on http://")?;
        let local = next("daftari: local listener on http://")?;
        // Keep draining the server's stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
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
