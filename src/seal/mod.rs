//! Forward-secure seals: every epoch (a few seconds, counted on the monotonic clock, never
//! derived from wall time) ends with a seal that binds the chain head and the records of the
//! epoch, signed with a key that is then ratcheted forward and destroyed. Someone who roots
//! the box later holds only the current key, and cannot re-seal the past.
//!
//! Owns: the key ratchet and key file (`keys`), the seal encoding (`record`), the seal chain
//! file (`chain_db`), the sealer thread with its crash-safe order at the end of an epoch
//! ([`Sealer`]), segment-close seals and retention (`closes`, with the background
//! `summarizer`), checkpoints and their channels (`note`, `checkpoints`, `remote`), and checking a
//! seal chain against the pinned epoch-0 public key (`check`, used by verify and proofs).
//!
//! The end of epoch `e`, in this order: its records are already durable (the tip the sealer
//! reads is updated only after a commit); the seal is committed to `seals.sqlite`; the key
//! file is replaced with `K(e+1)`; `K(e)` is zeroized. Recovery: a key file for `e` with a
//! seal for `e` means the crash came between the last two steps, so the key is advanced; a
//! key file for `e` without its seal means epoch `e` is still open.
//!
//! Must not: seal a record that is not durable, or keep an old epoch's key.

pub mod chain_db;
pub mod check;
pub mod checkpoints;
pub mod closes;
mod error;
pub mod exported;
pub mod keys;
pub mod note;
pub mod record;
pub mod remote;
mod summarizer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;

use crate::clock::{Clock, Mono};
use crate::failpoint;
use crate::store::{Hash, StreamIndex};
use chain_db::SealStore;
use keys::EpochKey;
use record::{Extra, Seal, SealKind};

pub use error::SealError;

/// Default epoch length: the window in which entries are not yet forward-secure.
/// Key `seal.epoch_interval`.
pub const DEFAULT_EPOCH_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest and longest epoch allowed.
pub const MIN_EPOCH_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_EPOCH_INTERVAL: Duration = Duration::from_secs(60);

/// The epoch-0 public key, written beside the ledger for convenience. verify never reads it:
/// the operator passes a copy kept off the box.
pub const EPOCH0_PUB_FILE: &str = "epoch0.pub";

/// Keeps the current epoch key out of core dumps: the core size limit goes to zero and the
/// process is marked not dumpable (which also keeps other users' debuggers out). Called by
/// `serve` before any key is read.
pub fn forbid_core_dumps() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, zero)?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// A public key as printed and as `verify --pubkey` takes it.
pub fn encode_pk(pk: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(pk)
}

pub fn decode_pk(s: &str) -> Result<[u8; 32], SealError> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| SealError::Malformed(format!("public key: not base64: {e}")))?;
    <[u8; 32]>::try_from(b).map_err(|_| SealError::Malformed("public key: not 32 bytes".into()))
}

/// Seals epochs of one ledger.
#[derive(Debug)]
pub struct Sealer {
    data_dir: PathBuf,
    origin: String,
    store: SealStore,
    key: EpochKey,
    index: Arc<StreamIndex>,
    /// First sequence number the next seal covers.
    next_first: u64,
    prev_digest: Hash,
    /// Checkpoints after every seal, when configured.
    exporter: Option<checkpoints::Exporter>,
    /// The last seal was committed but the key file still holds the epoch before.
    key_file_behind: bool,
    /// Close seals and retention.
    segments: closes::Segments,
    /// When epochs end, and the wall time seals and the retention cutoff carry.
    clock: Clock,
    /// The clock's reading when the sealer was opened: epochs are counted from it.
    opened: Mono,
}

/// A committed seal.
struct Sealed {
    digest: Hash,
    wall_ns: i64,
    /// Whether the key file was replaced (retried before the next seal if not).
    key_file: Result<(), SealError>,
}

impl Sealer {
    /// Opens the seal chain and the key, recovering from a crash at any step; creates the
    /// epoch-0 key on the first start and returns its public key then.
    pub fn open(
        data_dir: &Path,
        origin: &str,
        index: Arc<StreamIndex>,
    ) -> Result<(Sealer, Option<[u8; 32]>), SealError> {
        let store = SealStore::open(data_dir)?;
        let last = store.last()?;
        let mut created = None;
        let key = match (keys::read(data_dir)?, &last) {
            (None, None) => {
                let k = EpochKey::generate()?;
                keys::write(data_dir, &k)?;
                let pk = k.public_key();
                let path = data_dir.join(EPOCH0_PUB_FILE);
                std::fs::write(&path, format!("{}\n", encode_pk(&pk)))
                    .map_err(|e| SealError::File(format!("{}: {e}", path.display())))?;
                created = Some(pk);
                k
            }
            (None, Some(_)) => {
                return Err(SealError::Refused(format!(
                    "{} is missing but seals exist: sealing cannot continue without the \
                     current epoch key; restore it from backup, or move seals.sqlite aside \
                     to start a new seal chain (verify will report the break)",
                    keys::key_path(data_dir).display()
                )));
            }
            (Some(k), None) if k.epoch() == 0 => k,
            (Some(k), Some(s)) if s.epoch + 1 == k.epoch() => k,
            (Some(k), Some(s)) if s.epoch == k.epoch() => {
                // The crash came after the seal and before the key file was replaced.
                let next = k.next();
                keys::write(data_dir, &next)?;
                next
            }
            (Some(k), last) => {
                return Err(SealError::Refused(format!(
                    "the key file is for epoch {} but the last seal is for {:?}: refusing to \
                     seal out of order",
                    k.epoch(),
                    last.as_ref().map(|s| s.epoch)
                )));
            }
        };
        let (next_first, prev_digest) = match &last {
            None => (0, [0; 32]),
            Some(s) => {
                let seal = Seal::decode(&s.body)?;
                (seal.first_seq + seal.count, record::digest(&s.body, &s.sig))
            }
        };
        let segments = closes::Segments::load(
            &store.of_kinds(&[SealKind::SegmentClose as u8, SealKind::Prune as u8])?,
        )?;
        Ok((
            Sealer {
                segments,
                data_dir: data_dir.to_owned(),
                origin: origin.to_owned(),
                store,
                key,
                index,
                next_first,
                prev_digest,
                exporter: None,
                key_file_behind: false,
                clock: Clock::system(),
                opened: Clock::system().mono(),
            },
            created,
        ))
    }

    /// Runs epochs and stamps seals on `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Clock) -> Sealer {
        self.opened = clock.mono();
        self.clock = clock;
        self
    }

    /// Exports a signed checkpoint after every seal.
    pub fn with_exporter(mut self, exporter: checkpoints::Exporter) -> Sealer {
        self.exporter = Some(exporter);
        self
    }

    /// Removes the oldest closed segments once their close seal is older than `retention`,
    /// recording each removal on the admin stream through `admin` first and removing the
    /// files with the ledger's `pruner`.
    pub fn with_retention(
        mut self,
        retention: Option<Duration>,
        admin: closes::AdminLog,
        pruner: crate::store::Pruner,
    ) -> Sealer {
        self.segments.retention = retention;
        self.segments.admin = Some(admin);
        self.segments.pruner = Some(pruner);
        self
    }

    /// The epoch now open.
    pub fn epoch(&self) -> u64 {
        self.key.epoch()
    }

    /// One end of epoch: close seals for newly closed segments, retention, then the seal of
    /// `kind`. A failure of the first two is logged and retried at the next end of epoch;
    /// the epoch is sealed all the same.
    pub fn tick(&mut self, kind: SealKind) -> Result<(), SealError> {
        // At shutdown every closed segment is sealed before the last seal.
        if let Err(e) = self.seal_closed_segments(kind == SealKind::Shutdown) {
            tracing::error!(error = %e, "segment-close seal failed; retrying later");
        }
        if let Err(e) = self.apply_retention() {
            tracing::error!(error = %e, "retention failed; retrying next epoch");
        }
        self.seal(kind)
    }

    /// Ends the open epoch: seal, commit, ratchet the key file, forget the old key.
    pub fn seal(&mut self, kind: SealKind) -> Result<(), SealError> {
        self.seal_with(kind, Extra::None)?.key_file
    }

    /// Seals the open epoch with `extra`; `Err` only when no seal was committed.
    fn seal_with(&mut self, kind: SealKind, extra: Extra) -> Result<Sealed, SealError> {
        if self.key_file_behind {
            // The last seal is committed but its key file was not replaced: finish that first,
            // so the file never falls more than one epoch behind the seals.
            keys::write(&self.data_dir, &self.key)?;
            self.key_file_behind = false;
        }
        let (next_seq, head) = self.index.tip();
        let seal = Seal {
            kind,
            origin: self.origin.clone(),
            epoch: self.key.epoch(),
            first_seq: self.next_first,
            count: next_seq.saturating_sub(self.next_first),
            head,
            prev_digest: self.prev_digest,
            wall_ns: self.clock.wall_ns(),
            next_pk: self.key.next().public_key(),
            extra,
        };
        let body = seal.encode();
        let sig = seal.sign(&self.key.signing_key());
        failpoint::hit(if kind == SealKind::SegmentClose {
            failpoint::at::CLOSE_SEAL_BEFORE_COMMIT
        } else {
            failpoint::at::SEAL_BEFORE_COMMIT
        });
        self.store
            .append(seal.epoch, kind as u8, &body, &sig)
            .map_err(|e| SealError::Db(format!("seal epoch {}: {e}", seal.epoch)))?;
        // The epoch is sealed: move on in memory whatever happens to the key file (the old
        // key is dropped, and zeroized, here).
        self.key = self.key.next();
        self.next_first = seal.first_seq + seal.count;
        self.prev_digest = record::digest(&body, &sig);
        failpoint::hit(failpoint::at::SEAL_AFTER_COMMIT);
        let written = keys::write(&self.data_dir, &self.key);
        self.key_file_behind = written.is_err();
        failpoint::hit(failpoint::at::SEAL_AFTER_KEY_FILE);
        if let Some(x) = self.exporter.as_mut() {
            let cp = note::Checkpoint::of_seal(&seal, self.prev_digest);
            x.export(&cp, kind != SealKind::Epoch);
        }
        Ok(Sealed {
            digest: self.prev_digest,
            wall_ns: seal.wall_ns,
            key_file: written,
        })
    }

    /// Runs the epoch timer until `stop`, then writes a shutdown seal.
    pub fn spawn(
        mut self,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("sealer".into())
            .spawn(move || {
                let mut deadline = self.opened + interval;
                loop {
                    if !self.clock.wait_until(deadline, &stop) {
                        if let Err(e) = self.tick(SealKind::Shutdown) {
                            tracing::error!(error = %e, "shutdown seal failed");
                        }
                        return;
                    }
                    // Epochs are counted: a late tick seals one epoch and the next follows.
                    deadline += interval;
                    if let Err(e) = self.tick(SealKind::Epoch) {
                        tracing::error!(error = %e, "sealing failed; retrying next epoch");
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Sealer, Option<[u8; 32]>) {
        Sealer::open(dir, "test/log", Arc::new(StreamIndex::default())).unwrap()
    }

    #[test]
    fn the_first_open_creates_epoch_0_and_later_opens_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, pk) = open(dir.path());
        let pk = pk.expect("a new chain prints its key");
        assert_eq!(s.epoch(), 0);
        assert_eq!(keys::read(dir.path()).unwrap().unwrap().public_key(), pk);
        s.seal(SealKind::Epoch).unwrap();
        s.seal(SealKind::Epoch).unwrap();
        drop(s);
        let (s, again) = open(dir.path());
        assert!(again.is_none());
        assert_eq!(s.epoch(), 2);
    }

    #[test]
    fn a_crash_between_the_seal_and_the_key_file_advances_the_key_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open(dir.path());
        s.seal(SealKind::Epoch).unwrap();
        // The state a crash after step 2 leaves: seal 1 committed, key file still at epoch 1.
        let k1 = keys::read(dir.path()).unwrap().unwrap();
        s.seal(SealKind::Epoch).unwrap();
        keys::write(dir.path(), &k1).unwrap();
        drop(s);
        let (mut s, _) = open(dir.path());
        assert_eq!(s.epoch(), 2, "the key was ratcheted past the sealed epoch");
        s.seal(SealKind::Epoch).unwrap();
        let all = chain_db::read_all(dir.path()).unwrap().unwrap();
        let epochs: Vec<u64> = all.iter().map(|x| x.epoch).collect();
        assert_eq!(epochs, [0, 1, 2]);
    }

    #[test]
    fn a_key_file_that_cannot_be_replaced_is_retried_before_the_next_seal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open(dir.path());
        // A directory where the temporary key file goes makes the replacement fail.
        let tmp = dir.path().join("state").join("epoch.key.tmp");
        std::fs::create_dir(&tmp).unwrap();
        assert!(
            s.seal(SealKind::Epoch).is_err(),
            "the key file could not be replaced"
        );
        assert_eq!(s.epoch(), 1, "epoch 0 is sealed all the same");
        assert!(
            s.seal(SealKind::Epoch).is_err(),
            "no new seal while the file lags"
        );
        std::fs::remove_dir(&tmp).unwrap();
        s.seal(SealKind::Epoch).unwrap();
        drop(s);
        let (s, _) = open(dir.path());
        assert_eq!(s.epoch(), 2);
        let epochs: Vec<u64> = chain_db::read_all(dir.path())
            .unwrap()
            .unwrap()
            .iter()
            .map(|x| x.epoch)
            .collect();
        assert_eq!(epochs, [0, 1]);
    }

    #[test]
    fn a_missing_key_file_with_seals_refuses_to_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open(dir.path());
        s.seal(SealKind::Epoch).unwrap();
        drop(s);
        std::fs::remove_file(keys::key_path(dir.path())).unwrap();
        let e = Sealer::open(dir.path(), "test/log", Arc::new(StreamIndex::default())).unwrap_err();
        assert!(matches!(e, SealError::Refused(_)), "{e:?}");
        assert!(e.to_string().contains("sealing cannot continue"), "{e}");
    }
}
