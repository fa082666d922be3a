//! The in-memory token set the push plane checks credentials against.
//!
//! Owns: the current set of live tokens (hashes, forced labels, certificate bindings), its
//! replacement when the database changes, constant-time comparison, and last-use times
//! waiting to be written back.
//!
//! Must not: touch the database or see a secret beyond hashing the presented one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use super::manager::LiveToken;
use super::{HashKey, Kind};

/// Who a request authenticated as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's name: recorded as the source of every entry it pushes.
    pub name: Arc<str>,
    /// Labels forced onto every stream it pushes, sorted by name.
    pub labels: Arc<[(String, String)]>,
    /// The client-certificate identity the token is bound to, if any.
    pub cert_identity: Option<Arc<str>>,
    last_used: Arc<AtomicI64>,
}

impl Identity {
    /// Notes a successful push at `ns`, for `token list` and metrics.
    pub fn touch(&self, ns: i64) {
        self.last_used.fetch_max(ns, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    hash: [u8; 32],
    identity: Identity,
    /// Last use already written back.
    flushed: AtomicI64,
}

/// Checks presented secrets against the live tokens. Cheap to share; replaced in place.
#[derive(Debug)]
pub struct Verifier {
    key: HashKey,
    set: RwLock<Arc<Vec<Entry>>>,
}

impl Verifier {
    pub fn new(key: HashKey) -> Verifier {
        Verifier {
            key,
            set: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// The identity of the live token of `kind` whose secret is `secret`, if any. Every live
    /// token's hash is compared, in constant time each.
    pub fn check(&self, secret: &str, kind: Kind) -> Option<Identity> {
        let presented = self.key.hash(secret);
        let set = self.snapshot();
        let mut found = None;
        for e in set.iter() {
            let same = e.hash.ct_eq(&presented);
            if bool::from(same) && e.kind == kind {
                found = Some(e.identity.clone());
            }
        }
        found
    }

    /// The live push token bound to one of a verified client certificate's `names` (a token
    /// made with `--cert-identity`): how a syslog sender over TLS is identified.
    pub fn by_cert(&self, names: &[String]) -> Option<Identity> {
        let set = self.snapshot();
        set.iter()
            .filter(|e| e.kind == Kind::Push)
            .find(|e| {
                e.identity
                    .cert_identity
                    .as_deref()
                    .is_some_and(|c| names.iter().any(|n| n == c))
            })
            .map(|e| e.identity.clone())
    }

    /// The live push token named `name`: how a plain-TCP syslog sender, known by its source
    /// address, is identified.
    pub fn by_name(&self, name: &str) -> Option<Identity> {
        let set = self.snapshot();
        set.iter()
            .find(|e| e.kind == Kind::Push && &*e.identity.name == name)
            .map(|e| e.identity.clone())
    }

    /// Replaces the live set (after the database changed). Last-use times carry over.
    pub(crate) fn replace(&self, live: Vec<LiveToken>) {
        let old = self.snapshot();
        let entries = live
            .into_iter()
            .map(|t| {
                let prev = old.iter().find(|e| e.hash == t.hash);
                let last_used = prev.map_or_else(
                    || Arc::new(AtomicI64::new(0)),
                    |e| Arc::clone(&e.identity.last_used),
                );
                let flushed = prev.map_or(0, |e| e.flushed.load(Ordering::Relaxed));
                Entry {
                    kind: t.kind,
                    hash: t.hash,
                    identity: Identity {
                        name: t.name.into(),
                        labels: t.labels.into(),
                        cert_identity: t.cert_identity.map(Into::into),
                        last_used,
                    },
                    flushed: AtomicI64::new(flushed),
                }
            })
            .collect();
        if let Ok(mut set) = self.set.write() {
            *set = Arc::new(entries);
        }
    }

    /// Last-use times that changed since the previous call, to write back.
    pub fn take_uses(&self) -> Vec<(String, i64)> {
        let set = self.snapshot();
        set.iter()
            .filter_map(|e| {
                let used = e.identity.last_used.load(Ordering::Relaxed);
                let before = e.flushed.swap(used, Ordering::Relaxed);
                (used > before).then(|| (e.identity.name.to_string(), used))
            })
            .collect()
    }

    /// Live tokens in the set.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        match self.set.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}
