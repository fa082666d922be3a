//! `daftari token create NAME [--read] [--label k=v]... [--cert-identity NAME]`, `daftari token list
//! [--all] [--json]`, `daftari token revoke NAME`. They work while the server runs: it picks
//! up every change within a second, and appends each to the ledger's admin stream.

use std::path::PathBuf;

use daftari::clock::{now_ns, rfc3339};
use daftari::token::{Kind, Manager, TokenInfo};

use super::serve::{BOOTSTRAP_FILE, BOOTSTRAP_NAME};

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Create a push token (or with --read, a read token) and print its secret (once).
    Create {
        /// Token name: the source of every entry pushed with it, or the principal of every
        /// read made with it.
        name: String,
        /// A read token, for the remote read listener (Grafana); it cannot push.
        #[arg(long, conflicts_with_all = ["labels", "cert_identity"])]
        read: bool,
        /// A label forced onto every stream pushed with this token (repeatable).
        #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Accept the token only over TLS with a client certificate carrying this name
        /// (common name or DNS name).
        #[arg(long)]
        cert_identity: Option<String>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// List tokens: name, kind, labels, creation and last use. Never secrets.
    List {
        /// Include revoked tokens.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Revoke a token; the running server refuses it within a second.
    Revoke {
        name: String,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// The data directory a token command names, which must hold a log (its segments, or the
/// token database a starting server makes before its first segment): tokens made beside no
/// log belong to no server.
fn data_dir_of(cmd: &Cmd) -> &PathBuf {
    match cmd {
        Cmd::Create { data_dir, .. }
        | Cmd::List { data_dir, .. }
        | Cmd::Revoke { data_dir, .. } => data_dir,
    }
}

pub fn run(cmd: Cmd) -> anyhow::Result<u8> {
    let dir = data_dir_of(&cmd);
    let segments = daftari::store::segments_dir(dir);
    if !segments.is_dir() && !dir.join(daftari::token::TOKENS_FILE).exists() {
        eprintln!(
            "daftari token: no log in {} (there is no {}): pass --data-dir with the server's \
             data directory, or create a log there with `daftari init`",
            dir.display(),
            segments.display()
        );
        return Ok(daftari::verify::EXIT_CANNOT_RUN);
    }
    match cmd {
        Cmd::Create {
            name,
            read,
            labels,
            cert_identity,
            data_dir,
        } => {
            let m = Manager::open(&data_dir)?;
            let kind = if read { Kind::Read } else { Kind::Push };
            let secret = m.create(&name, kind, &labels, cert_identity.as_deref(), now_ns())?;
            println!("{secret}");
            if kind == Kind::Push && name != BOOTSTRAP_NAME {
                retire_bootstrap(&m, &data_dir)?;
            }
        }
        Cmd::List {
            all,
            json,
            data_dir,
        } => {
            let m = Manager::open(&data_dir)?;
            let tokens = m.list(all)?;
            if json {
                for t in &tokens {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else {
                print_table(&tokens);
            }
        }
        Cmd::Revoke { name, data_dir } => {
            Manager::open(&data_dir)?.revoke(&name, now_ns())?;
            eprintln!("daftari: token {name:?} revoked");
            if name == BOOTSTRAP_NAME {
                remove_bootstrap_file(&data_dir)?;
            }
        }
    }
    Ok(0)
}

/// The bootstrap token lives until the operator's first own push token: then it is revoked
/// and its secret file removed, so that no secret stays on disk past its use.
fn retire_bootstrap(m: &Manager, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if m.list(false)?.iter().any(|t| t.name == BOOTSTRAP_NAME) {
        m.revoke(BOOTSTRAP_NAME, now_ns())?;
        eprintln!(
            "daftari: the first-start token {BOOTSTRAP_NAME:?} is revoked now that you have your \
             own push token (the running server refuses it within a second)"
        );
    }
    remove_bootstrap_file(data_dir)
}

fn remove_bootstrap_file(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = data_dir.join(BOOTSTRAP_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            eprintln!("daftari: removed {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("remove {}", path.display()))),
    }
}

fn print_table(tokens: &[TokenInfo]) {
    println!("NAME\tKIND\tLABELS\tCREATED\tLAST USED\tREVOKED");
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_string(), rfc3339);
    for t in tokens {
        let labels = if t.labels.is_empty() {
            "-".to_string()
        } else {
            t.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.name,
            t.kind,
            labels,
            rfc3339(t.created_ns),
            time(t.last_used_ns),
            time(t.revoked_ns)
        );
    }
}
