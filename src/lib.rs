//! daftari: an append-only, tamper-evident log sink that speaks Grafana Loki's protocols.
//!
//! Every entry a host pushes is appended to a ledger of hash-chained SQLite segment files and
//! acknowledged only once it is durable; `daftari verify` audits the chain offline.
//!
//! Layout:
//! - [`store`]: the ledger. The append handle, the single writer thread with group commit,
//!   segment files, the canonical record format and chain, read-only readers.
//! - [`verify`]: the offline audit of a data directory over read-only files, with a report
//!   that names the first break.
//! - [`bench`]: the ledger benchmark that prints throughput figures.
//! - `cli` (binary only): one file per subcommand, exit codes.

pub mod bench;
pub mod store;
pub mod verify;
