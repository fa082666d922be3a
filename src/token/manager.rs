//! The token database: create, list and revoke tokens, and the admin events they leave for
//! the ledger.
//!
//! Owns: `tokens.sqlite` (schema in `migrations/tokens/`), opened by the CLI and by the
//! server at once (WAL, busy timeout), and the rule that every change queues an admin event
//! in the same transaction, so no change can skip the ledger.
//!
//! Must not: store or log a secret, or delete a token row (revocation only marks it).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{HashKey, Kind, db_path, new_secret};

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/tokens/0001_init.sql")];

/// How long a token command waits for the server's write to finish. Writes are tiny.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest token name: names appear in every record and in metrics labels.
pub const MAX_NAME_LEN: usize = 128;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("token database {0}: {1}")]
    Db(PathBuf, String),
    #[error("{0}: not a token key (expected 32 bytes)")]
    BadKey(PathBuf),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("a live token named {0:?} exists already; revoke it first or pick another name")]
    Exists(String),
    #[error("no live token named {0:?}")]
    NotFound(String),
    #[error("invalid token name {0:?}: use 1 to 128 of A-Z a-z 0-9 . _ -")]
    BadName(String),
    #[error("invalid label {0:?}: {1}")]
    BadLabel(String, String),
}

/// A token as `token list` shows it; never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub cert_identity: Option<String>,
    pub created_ns: i64,
    pub revoked_ns: Option<i64>,
    pub last_used_ns: Option<i64>,
}

/// A live token as the verifier needs it.
#[derive(Debug, Clone)]
pub(crate) struct LiveToken {
    pub name: String,
    pub kind: Kind,
    pub hash: [u8; 32],
    pub labels: Vec<(String, String)>,
    pub cert_identity: Option<String>,
}

/// A change waiting to be appended to the admin stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    pub id: i64,
    pub ts_ns: i64,
    pub line: String,
}

/// A read-write handle on the token database.
#[derive(Debug)]
pub struct Manager {
    conn: Connection,
    path: PathBuf,
    key: HashKey,
}

impl Manager {
    /// Opens (creating if needed, mode 0600) the token database of `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Manager, TokenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| TokenError::Io(data_dir.into(), e))?;
        let key = HashKey::load_or_create(data_dir)?;
        let path = db_path(data_dir);
        let conn = Connection::open(&path).map_err(db(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| TokenError::Io(path.clone(), e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db(&path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db(&path))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db(&path))?;
        let m = Manager { conn, path, key };
        m.migrate()?;
        Ok(m)
    }

    fn migrate(&self) -> Result<(), TokenError> {
        let version: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db(&self.path))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.unchecked_transaction().map_err(db(&self.path))?;
            tx.execute_batch(sql).map_err(db(&self.path))?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)
                .map_err(db(&self.path))?;
            tx.commit().map_err(db(&self.path))?;
        }
        Ok(())
    }

    /// The key hashes are made with (for a [`super::Verifier`]).
    pub fn key(&self) -> &HashKey {
        &self.key
    }

    /// Creates a token and returns its secret: the only time the secret exists in full.
    pub fn create(
        &self,
        name: &str,
        kind: Kind,
        labels: &[(String, String)],
        cert_identity: Option<&str>,
        now_ns: i64,
    ) -> Result<String, TokenError> {
        check_name(name)?;
        let labels = check_labels(labels)?;
        let secret = new_secret()?;
        let hash = self.key.hash(&secret);
        let labels_json = serde_json::Value::from_iter(
            labels
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))),
        )
        .to_string();
        let event = serde_json::json!({
            "action": "token_create", "name": name, "kind": kind.as_str(),
            "labels": labels, "cert_identity": cert_identity,
        });
        let tx = self.conn.unchecked_transaction().map_err(db(&self.path))?;
        let inserted = tx.execute(
            "INSERT INTO tokens (name, kind, hash, labels, cert_identity, created_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                kind.as_str(),
                &hash[..],
                labels_json,
                cert_identity,
                now_ns
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(TokenError::Exists(name.to_string()));
            }
            Err(e) => return Err(db(&self.path)(e)),
        }
        queue_event(&tx, now_ns, &event).map_err(db(&self.path))?;
        tx.commit().map_err(db(&self.path))?;
        Ok(secret)
    }

    /// Revokes the live token `name`; the running server stops accepting it within a second.
    pub fn revoke(&self, name: &str, now_ns: i64) -> Result<(), TokenError> {
        let tx = self.conn.unchecked_transaction().map_err(db(&self.path))?;
        let n = tx
            .execute(
                "UPDATE tokens SET revoked_ns = ?2 WHERE name = ?1 AND revoked_ns IS NULL",
                params![name, now_ns],
            )
            .map_err(db(&self.path))?;
        if n == 0 {
            return Err(TokenError::NotFound(name.to_string()));
        }
        let event = serde_json::json!({"action": "token_revoke", "name": name});
        queue_event(&tx, now_ns, &event).map_err(db(&self.path))?;
        tx.commit().map_err(db(&self.path))
    }

    /// Every token, live first by name, then revoked ones if `all`.
    pub fn list(&self, all: bool) -> Result<Vec<TokenInfo>, TokenError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, kind, labels, cert_identity, created_ns, revoked_ns, last_used_ns \
                 FROM tokens WHERE ?1 OR revoked_ns IS NULL \
                 ORDER BY revoked_ns IS NOT NULL, name, id",
            )
            .map_err(db(&self.path))?;
        let rows = stmt
            .query_map([all], |r| {
                let kind: String = r.get(1)?;
                let labels: String = r.get(2)?;
                Ok(TokenInfo {
                    name: r.get(0)?,
                    kind: Kind::parse(&kind).map_or("unknown", Kind::as_str),
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    cert_identity: r.get(3)?,
                    created_ns: r.get(4)?,
                    revoked_ns: r.get(5)?,
                    last_used_ns: r.get(6)?,
                })
            })
            .map_err(db(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(db(&self.path))
    }

    /// Whether any token was ever created (revoked ones count).
    pub fn is_empty(&self) -> Result<bool, TokenError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))
            .map_err(db(&self.path))?;
        Ok(n == 0)
    }

    /// The live tokens, for a verifier.
    pub(crate) fn live(&self) -> Result<Vec<LiveToken>, TokenError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, kind, hash, labels, cert_identity FROM tokens \
                 WHERE revoked_ns IS NULL",
            )
            .map_err(db(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                let kind: String = r.get(1)?;
                let hash: Vec<u8> = r.get(2)?;
                let labels: String = r.get(3)?;
                Ok((r.get::<_, String>(0)?, kind, hash, labels, r.get(4)?))
            })
            .map_err(db(&self.path))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, kind, hash, labels, cert_identity) = row.map_err(db(&self.path))?;
            let (Some(kind), Ok(hash)) = (Kind::parse(&kind), <[u8; 32]>::try_from(hash)) else {
                continue;
            };
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&labels).unwrap_or_default();
            out.push(LiveToken {
                name,
                kind,
                hash,
                labels: labels.into_iter().collect(),
                cert_identity,
            });
        }
        Ok(out)
    }

    /// Changes made by other connections since the last call return a different number.
    pub fn data_version(&self) -> Result<i64, TokenError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(db(&self.path))
    }

    /// Admin events not yet in the ledger, oldest first.
    pub fn pending_events(&self) -> Result<Vec<AdminEvent>, TokenError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, ts_ns, line FROM admin_events WHERE seq IS NULL ORDER BY id")
            .map_err(db(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AdminEvent {
                    id: r.get(0)?,
                    ts_ns: r.get(1)?,
                    line: r.get(2)?,
                })
            })
            .map_err(db(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(db(&self.path))
    }

    /// Records that event `id` is durable in the ledger at `seq`.
    pub fn mark_appended(&self, id: i64, seq: u64) -> Result<(), TokenError> {
        self.conn
            .execute(
                "UPDATE admin_events SET seq = ?2 WHERE id = ?1",
                params![id, seq as i64],
            )
            .map(drop)
            .map_err(db(&self.path))
    }

    /// Stores last-use times of live tokens (only ever moves them forward).
    pub fn record_use(&self, uses: &[(String, i64)]) -> Result<(), TokenError> {
        let tx = self.conn.unchecked_transaction().map_err(db(&self.path))?;
        for (name, ns) in uses {
            tx.execute(
                "UPDATE tokens SET last_used_ns = max(coalesce(last_used_ns, 0), ?2) \
                 WHERE name = ?1 AND revoked_ns IS NULL",
                params![name, ns],
            )
            .map_err(db(&self.path))?;
        }
        tx.commit().map_err(db(&self.path))
    }
}

fn queue_event(
    tx: &rusqlite::Transaction<'_>,
    now_ns: i64,
    event: &serde_json::Value,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO admin_events (ts_ns, line) VALUES (?1, ?2)",
        params![now_ns, event.to_string()],
    )
    .map(drop)
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> TokenError + '_ {
    move |e| TokenError::Db(path.to_path_buf(), e.to_string())
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadName(name.to_string()))
    }
}

/// Forced labels must be valid stream labels, and may not use the reserved `__` prefix.
fn check_labels(labels: &[(String, String)]) -> Result<BTreeMap<String, String>, TokenError> {
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        let bad = |why: &str| TokenError::BadLabel(format!("{k}={v}"), why.to_string());
        let mut chars = k.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("names are [a-zA-Z_][a-zA-Z0-9_]*"));
        }
        if k.starts_with("__") {
            return Err(bad("names starting with __ are reserved"));
        }
        if v.is_empty() {
            return Err(bad("the value is empty"));
        }
        if out.insert(k.clone(), v.clone()).is_some() {
            return Err(bad("the name is given twice"));
        }
    }
    Ok(out)
}
