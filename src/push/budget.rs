//! The push plane's memory budget: one bound on the bytes all pushes in flight may hold at
//! once, whatever their number, sizes and encodings.
//!
//! Each request takes its share step by step, before it allocates: the body as its frames
//! arrive; the decompressed size before decompressing (snappy declares it; gzip and deflate
//! take their cap and give back what they did not use); then, once decoded, room for the
//! validated and encoded copies of its entries. A request that finds the budget spent gets
//! 503 (agents retry) with nothing stored; its share returns when it is answered.
//!
//! Owns: [`Budget`], [`Charge`], and the estimate of what one request may hold.
//!
//! Must not: wait. A full budget is an answer, not a queue: a waiting request would hold its
//! connection and its part of the budget.

use tokio::sync::Semaphore;

use super::Limits;
use super::error::PushError;

/// Bytes all pushes in flight may hold together. With the writer queue (64 MiB) and the query
/// limits this keeps the server within about 512 MiB on a small box; it is above the largest
/// single request the default limits allow (about 233 MiB), so that request can always pass.
/// Key `limits.max_inflight_bytes`.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 << 20;

/// What one entry costs beyond its bytes while a push is processed: the decoded, validated
/// and encoded structures that describe it (measured at about 200 bytes; rounded up).
pub const ENTRY_OVERHEAD: usize = 256;

/// Copies of the decompressed bytes alive at the peak of a push, besides the decompressed
/// body itself: the validated entries and their encoded records.
const COPIES_AFTER_DECODE: usize = 2;

/// The most one request can hold under `limits`: the config refuses a budget below it, since
/// such a request could never pass and agents would retry it forever.
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
}

/// The shared budget.
#[derive(Debug)]
pub struct Budget {
    bytes: Semaphore,
}

impl Budget {
    pub fn new(max_bytes: usize) -> Budget {
        Budget {
            bytes: Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS)),
        }
    }

    /// A new, empty share for one request.
    pub fn charge(&self) -> Charge<'_> {
        Charge {
            budget: self,
            held: 0,
        }
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
    held: usize,
}

impl Charge<'_> {
    /// Takes `n` more bytes, or refuses the request (503) if the budget cannot give them now.
    pub fn take(&mut self, n: usize) -> Result<(), PushError> {
        if n == 0 {
            return Ok(());
        }
        let permits = u32::try_from(n).map_err(|_| busy())?;
        let permit = self
            .budget
            .bytes
            .try_acquire_many(permits)
            .map_err(|_| busy())?;
        permit.forget();
        self.held += n;
        Ok(())
    }

    /// Gives back `n` bytes taken but not used.
    pub fn give_back(&mut self, n: usize) {
        let n = n.min(self.held);
        self.held -= n;
        self.budget.bytes.add_permits(n);
    }

    /// After decoding: room for the validated and encoded copies of `raw_bytes` decompressed
    /// bytes in `entries` entries.
    pub fn take_for_entries(&mut self, raw_bytes: usize, entries: usize) -> Result<(), PushError> {
        self.take(
            raw_bytes
                .saturating_mul(COPIES_AFTER_DECODE)
                .saturating_add(entries.saturating_mul(ENTRY_OVERHEAD)),
        )
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
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

    #[test]
    fn shares_are_bounded_and_returned_when_dropped() {
        let b = Budget::new(1000);
        let mut one = b.charge();
        one.take(600).unwrap();
        let mut two = b.charge();
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
    fn the_default_budget_holds_the_largest_default_request() {
        let largest = largest_request(&Limits::default());
        assert!(largest <= DEFAULT_MAX_INFLIGHT_BYTES, "{largest}");
    }
}
