//! A query's budget: its deadline, and the memory it may hold for what it keeps.
//!
//! Owns: [`Budget`], cloned into every part of one query (scans, collectors, range
//! aggregations), which count what they keep as they keep it. Must not: allocate on behalf of
//! the query or hold what it counts; it only counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::error::QueryError;

/// A query's deadline and its memory: what it holds is counted as it is kept, and the query
/// fails (400, nothing partial returned) before it goes over.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Instant,
    memory: Arc<Memory>,
}

#[derive(Debug)]
struct Memory {
    held: AtomicUsize,
    max: usize,
}

impl Budget {
    pub fn new(timeout: Duration, max_memory_bytes: usize) -> Budget {
        Budget {
            deadline: Instant::now() + timeout,
            memory: Arc::new(Memory {
                held: AtomicUsize::new(0),
                max: max_memory_bytes,
            }),
        }
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    pub fn check(&self) -> Result<(), QueryError> {
        if self.expired() {
            Err(QueryError::Timeout)
        } else {
            Ok(())
        }
    }

    /// Counts `bytes` more held by the query, or fails if that goes over its limit.
    pub fn hold(&self, bytes: usize) -> Result<(), QueryError> {
        let m = &self.memory;
        let held = m
            .held
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if held > m.max {
            return Err(QueryError::bad(format!(
                "the query would hold more than {} MiB of results in memory \
                 (query.max_memory_bytes); narrow its time range or selector, add filters, or \
                 aggregate",
                m.max >> 20
            )));
        }
        Ok(())
    }

    /// Counts `bytes` no longer held.
    pub fn release(&self, bytes: usize) {
        self.memory.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}
