//! The push plane's memory budget: one bound on the bytes all pushes in flight may hold at
//! once, whatever their number, sizes and encodings, and each token's share of it.
//!
//! Each request takes its share step by step, before it allocates: the body as its frames
//! arrive; the decompressed size before decompressing (snappy declares it; gzip and deflate
//! take a step at a time and give back what they did not use); the decoded structures, priced
//! per stream, entry and pair (counted on the wire for protobuf, as the decoder goes for
//! JSON); then room for the validated and encoded copies of its entries.
//!
//! Three answers, so agents retry only what can pass later:
//! - the request alone would hold more than one token may ever hold: 413, final;
//! - the token's own pushes in flight hold its share: 429 with `Retry-After`;
//! - the budget shared by everybody is spent: 503 with `Retry-After`.
//!
//! A token may hold at most `token_max_inflight_bytes` and `token_max_inflight_pushes`, so a
//! rooted host that stalls or trickles its uploads leaves the rest to every other host.
//!
//! Owns: [`Budget`], [`Charge`], the prices of decoded units, and the estimate of what one
//! request may hold.
//!
//! Must not: wait. A full budget is an answer, not a queue: a waiting request would hold its
//! connection and its part of the budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::Limits;
use super::error::PushError;

/// Bytes all pushes in flight may hold together. With the writer queue (64 MiB) and the query
/// limits this keeps the server within about 512 MiB on a small box; it is above the largest
/// single request the default limits allow, so that request can always pass.
/// Key `limits.max_inflight_bytes`.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 << 20;

/// Bytes one token's pushes may hold together: half the budget, so one rooted host cannot
/// take what the others need, and above the largest single request.
/// Key `limits.token_max_inflight_bytes`.
pub const DEFAULT_TOKEN_MAX_INFLIGHT_BYTES: usize = 128 << 20;

/// Pushes one token may have in flight at once: a quarter of `max_inflight_pushes`. An agent
/// sends one batch at a time per endpoint; a few more cover retries that overlap.
/// Key `limits.token_max_inflight_pushes`.
pub const DEFAULT_TOKEN_MAX_INFLIGHT_PUSHES: usize = 16;

/// What one entry costs beyond its bytes while a push is processed: the wire-decoded struct
/// twice over (its vector grew one push at a time), beside the raw and validated structs;
/// rounded up, and pinned against the structs' sizes by a test.
pub const ENTRY_OVERHEAD: usize = 384;

/// What one stream costs beyond its bytes, counted as for entries.
pub const STREAM_OVERHEAD: usize = 384;

/// What one label or metadata pair costs beyond its bytes, counted as for entries.
pub const PAIR_OVERHEAD: usize = 384;

/// Copies of the decompressed bytes alive at the peak of a push, besides the decompressed
/// body itself: the decoded strings of a JSON body (protobuf shares the body's bytes), the
/// validated entries and their encoded records.
const COPIES_AFTER_DECODE: usize = 3;

/// The most one request within the count and size limits can hold under `limits`: the
/// config refuses a token share below it, since such a request could never pass and agents
/// would retry it forever. Pairs beyond these are priced too, and a request whose pairs take
/// it over the token's share is refused as too large (413).
pub fn largest_request(limits: &Limits) -> usize {
    limits
        .max_body_bytes
        .saturating_add(
            limits
                .max_decompressed_bytes
                .saturating_mul(1 + COPIES_AFTER_DECODE),
        )
        .saturating_add(
            limits
                .max_entries_per_request
                .saturating_mul(ENTRY_OVERHEAD),
        )
        .saturating_add(
            limits
                .max_streams_per_request
                .saturating_mul(STREAM_OVERHEAD),
        )
}

/// The shared budget and what each token holds of it.
#[derive(Debug)]
pub struct Budget {
    bytes: Semaphore,
    token_bytes: usize,
    token_pushes: usize,
    tokens: Mutex<HashMap<Arc<str>, Held>>,
}

/// What one token's pushes hold now.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    bytes: usize,
    pushes: usize,
}

impl Budget {
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            bytes: Semaphore::new(limits.max_inflight_bytes.min(Semaphore::MAX_PERMITS)),
            token_bytes: limits.token_max_inflight_bytes,
            token_pushes: limits.token_max_inflight_pushes,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A new, empty share for one push of `token`, or 429 when the token already has its
    /// share of pushes in flight.
    pub fn charge(&self, token: &Arc<str>) -> Result<Charge<'_>, PushError> {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(Arc::clone(token)).or_default();
        if held.pushes >= self.token_pushes {
            return Err(PushError::RateLimited {
                msg: format!(
                    "token {:?} already has {} pushes in flight, its share \
                     (limits.token_max_inflight_pushes); nothing was stored, retry",
                    &**token, held.pushes
                ),
                retry_after: 1,
            });
        }
        held.pushes += 1;
        Ok(Charge {
            budget: self,
            token: Arc::clone(token),
            held: 0,
        })
    }

    /// Bytes not taken by any request now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// One request's share of the budget, returned when it is dropped.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a Budget,
    token: Arc<str>,
    held: usize,
}

impl Charge<'_> {
    /// Takes `n` more bytes: 413 if this request would then hold more than a token may ever
    /// hold, 429 if the token's other pushes hold its share, 503 if the shared budget cannot
    /// give them now.
    pub fn take(&mut self, n: usize) -> Result<(), PushError> {
        if n == 0 {
            return Ok(());
        }
        let cap = self.budget.token_bytes;
        if self.held.saturating_add(n) > cap {
            return Err(PushError::TooLarge(format!(
                "request too large: processing it would hold more than the {cap} bytes one \
                 push may hold (limits.token_max_inflight_bytes); send smaller batches"
            )));
        }
        let mut map = self.budget.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(Arc::clone(&self.token)).or_default();
        if held.bytes + n > cap {
            return Err(PushError::RateLimited {
                msg: format!(
                    "token {:?}'s pushes in flight hold its share of memory \
                     (limits.token_max_inflight_bytes); nothing was stored, retry",
                    &*self.token
                ),
                retry_after: 1,
            });
        }
        let permits = u32::try_from(n).map_err(|_| busy())?;
        self.budget
            .bytes
            .try_acquire_many(permits)
            .map_err(|_| busy())?
            .forget();
        held.bytes += n;
        self.held += n;
        Ok(())
    }

    /// Gives back `n` bytes taken but not used.
    pub fn give_back(&mut self, n: usize) {
        let n = n.min(self.held);
        self.held -= n;
        let mut map = self.budget.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get_mut(&self.token) {
            h.bytes -= n.min(h.bytes);
        }
        self.budget.bytes.add_permits(n);
    }

    /// After decoding: room for the copies of `raw_bytes` decompressed bytes that the
    /// validated and encoded entries hold (JSON's decoded strings are taken as they decode).
    pub fn take_for_copies(&mut self, raw_bytes: usize) -> Result<(), PushError> {
        self.take(raw_bytes.saturating_mul(COPIES_AFTER_DECODE - 1))
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        let mut map = self.budget.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get_mut(&self.token) {
            h.bytes -= self.held.min(h.bytes);
            h.pushes = h.pushes.saturating_sub(1);
            if h.pushes == 0 {
                map.remove(&self.token);
            }
        }
        self.budget.bytes.add_permits(self.held);
    }
}

fn busy() -> PushError {
    PushError::Busy {
        msg: "the server's memory for pushes in flight is in use; nothing was stored, retry".into(),
        retry_after: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{proto, raw};
    use crate::store::append::{NewEntry, Stream};

    fn budget(total: usize, token_bytes: usize, token_pushes: usize) -> Budget {
        Budget::new(&Limits {
            max_inflight_bytes: total,
            token_max_inflight_bytes: token_bytes,
            token_max_inflight_pushes: token_pushes,
            ..Limits::default()
        })
    }

    #[test]
    fn shares_are_bounded_and_returned_when_dropped() {
        let b = budget(1000, 1000, 4);
        let (a, c) = (Arc::from("a"), Arc::from("c"));
        let mut one = b.charge(&a).unwrap();
        one.take(600).unwrap();
        let mut two = b.charge(&c).unwrap();
        assert!(matches!(two.take(500), Err(PushError::Busy { .. })));
        two.take(400).unwrap();
        assert_eq!(b.available(), 0);
        one.give_back(100);
        assert_eq!(b.available(), 100);
        drop(one);
        assert_eq!(b.available(), 600);
        drop(two);
        assert_eq!(b.available(), 1000);
    }

    #[test]
    fn one_token_cannot_take_more_than_its_share() {
        let b = budget(1000, 400, 2);
        let (a, other) = (Arc::from("a"), Arc::from("other"));
        let mut one = b.charge(&a).unwrap();
        one.take(300).unwrap();
        let mut two = b.charge(&a).unwrap();
        assert!(matches!(two.take(200), Err(PushError::RateLimited { .. })));
        assert!(matches!(b.charge(&a), Err(PushError::RateLimited { .. })));
        let mut theirs = b.charge(&other).unwrap();
        theirs.take(400).unwrap();
        assert!(matches!(
            theirs.take(1),
            Err(PushError::TooLarge(m)) if m.contains("token_max_inflight_bytes")
        ));
        drop((one, two, theirs));
        assert_eq!(b.available(), 1000);
        assert!(b.tokens.lock().unwrap().is_empty());
    }

    #[test]
    fn the_default_share_holds_the_largest_default_request() {
        let d = Limits::default();
        let largest = largest_request(&d);
        assert!(largest <= d.token_max_inflight_bytes, "{largest}");
        assert!(d.token_max_inflight_bytes <= d.max_inflight_bytes);
    }

    #[test]
    fn prices_cover_the_structures_decoding_builds() {
        use std::mem::size_of;
        // At its peak a unit lives in the wire-decoded struct, in a vector that grew one
        // push at a time (up to twice its length), beside the raw and validated ones, which
        // are collected into vectors of exactly their length.
        let stream = 2 * size_of::<proto::StreamAdapter>()
            + size_of::<raw::RawStream>()
            + size_of::<Stream>();
        assert!(stream <= STREAM_OVERHEAD, "{stream}");
        let entry = 2 * size_of::<proto::EntryAdapter>()
            + size_of::<raw::RawEntry>()
            + size_of::<NewEntry>();
        assert!(entry <= ENTRY_OVERHEAD, "{entry}");
        let pair = 2 * size_of::<proto::LabelPairAdapter>()
            + size_of::<(bytes::Bytes, bytes::Bytes)>()
            + size_of::<(String, String)>();
        assert!(pair <= PAIR_OVERHEAD, "{pair}");
    }
}
