//! daftari: an append-only, tamper-evident log sink that speaks Grafana Loki's protocols.
//!
//! Every entry a host pushes is appended to a ledger of hash-chained SQLite segment files and
//! acknowledged only once it is durable; `daftari verify` audits the chain offline.
//!
//! Layout:
//! - [`config`]: the TOML file and flags into a validated configuration.
//! - [`server`]: listeners, TLS, the startup and shutdown order.
//! - [`push`]: the push plane: Loki's push endpoint, decoding, validation, statuses. It holds
//!   an append handle and a token verifier, nothing that can read or delete.
//! - [`query`]: the read plane: Loki's query API and LogQL. It holds a reader, nothing that
//!   can append or delete.
//! - [`token`]: push tokens: secrets, keyed hashes, the token database, the verifier.
//! - [`store`]: the ledger. The append handle, the single writer thread with group commit,
//!   segment files, the canonical record format and chain, read-only readers.
//! - [`seal`]: forward-secure seals: the epoch key ratchet, the seal chain, the sealer.
//! - [`export`]: entries out of the ledger as JSON lines or Loki push bodies.
//! - [`proof`]: inclusion proofs of single entries, made from the ledger, checked without it.
//! - [`verify`]: the offline audit of a data directory over read-only files, with a report
//!   that names the first break.
//! - [`metrics`]: counters and their Prometheus rendering.
//! - [`loadgen`], [`bench`]: the push load generator and the ledger benchmark.
//! - [`logfmt`]: the logfmt scanner both planes read lines with.
//! - [`clock`]: wall-clock helpers; [`failpoint`]: crash points for tests (debug builds).
//! - `cli` (binary only): one file per subcommand, exit codes.

pub mod bench;
pub mod clock;
pub mod config;
pub mod export;
pub mod failpoint;
pub mod loadgen;
pub mod logfmt;
pub mod metrics;
pub mod proof;
pub mod push;
pub mod query;
pub mod seal;
pub mod server;
pub mod store;
pub mod token;
pub mod verify;
