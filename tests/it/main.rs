//! The integration tests, in one binary: one link instead of one per file, and tests of
//! every file share the runner's threads, so those that wait on a server overlap the rest.
//! Run one file's tests with its module name as the filter: `cargo test --test it push::`.
//! `crash` and `fsync_failure` stay binaries of their own (each is its own child process).

#[path = "../common/mod.rs"]
mod common;

mod audit_tools;
mod checkpoint_push;
mod crash_points;
mod deploy;
mod disk_full;
mod export;
mod first_hour;
mod formats;
mod golden_chain;
mod hostile_connections;
mod hostile_push;
mod hostile_query;
mod ledger;
mod logql;
mod loki_golden;
mod metrics;
mod mutation;
mod otlp;
mod otlp_hostile;
mod pruned_audit;
mod push;
mod push_crash;
mod push_disk_full;
mod push_tls;
mod query_api;
mod rsyslog;
mod seals;
mod segment_seals;
mod serve_cli;
mod structure;
mod syslog;
mod tamper;
mod third_party_client;
mod verify_cli;
