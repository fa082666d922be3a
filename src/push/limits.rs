//! Every bound on what one push may carry or cost: [`Limits`], each default a named constant
//! with its reason and config key.
//!
//! Must not: enforce anything; the push path does, each bound where its unit is counted.

use std::time::Duration;

use super::memory;

/// Compressed body size limit. Alloy and promtail send batches of about 1 MiB; Loki allows
/// 100 MiB, which a small box cannot hold for many clients at once. Key `limits.max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Decompressed body size limit, checked before inflating: 16 times an agent's 1 MiB batch,
/// and small enough that the largest request fits in one token's share of the budget.
/// Key `limits.max_decompressed_bytes`.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 16 << 20;
/// Entries in one request, counted on the wire before decoding, since a tiny encoded entry
/// costs ~100 bytes decoded. Alloy's 1 MiB batches hold a few thousand.
/// Key `limits.max_entries_per_request`.
pub const DEFAULT_MAX_ENTRIES_PER_REQUEST: usize = 100_000;
/// Streams in one request, counted on the wire (protobuf) or as they are read (JSON) before
/// they are kept: an empty stream is two bytes on the wire and hundreds once decoded. An
/// agent's batch holds one stream per label set it saw, rarely a thousand.
/// Key `limits.max_streams_per_request`.
pub const DEFAULT_MAX_STREAMS_PER_REQUEST: usize = 20_000;
/// Slowest a body may arrive, on average from the end of its first second: a body that
/// trickles slower is cut off (408), so slow uploads cannot hold the budget and the push
/// slots. A 1 MiB agent batch (a few hundred KiB compressed) at this rate still arrives well
/// inside the body timeout. Key `limits.min_body_bytes_per_second` (0 = no minimum).
pub const DEFAULT_MIN_BODY_BYTES_PER_SECOND: u64 = 16 << 10;
/// How long a body may take to start before the minimum rate applies.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(1);
/// Pushes decoded or waiting for durability at once; beyond it, 503 at once instead of a
/// growing queue. Bounds the memory of request bodies. Key `limits.max_inflight_pushes`.
pub const DEFAULT_MAX_INFLIGHT_PUSHES: usize = 64;
/// Loki's `max_line_size`: 256 KB. Key `limits.max_line_size`.
pub const DEFAULT_MAX_LINE_SIZE: usize = 256 * 1024;
/// Loki's `max_label_names_per_series`. Key `limits.max_label_names_per_series`.
pub const DEFAULT_MAX_LABEL_NAMES: usize = 15;
/// Loki's `max_label_name_length`. Key `limits.max_label_name_length`.
pub const DEFAULT_MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Loki's `max_label_value_length`. Key `limits.max_label_value_length`.
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: usize = 2048;
/// Loki's `max_structured_metadata_size`: 64 KB. Key `limits.max_structured_metadata_size`.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 64 * 1024;
/// Loki's `max_structured_metadata_entries_count`.
/// Key `limits.max_structured_metadata_entries_count`.
pub const DEFAULT_MAX_METADATA_ENTRIES: usize = 128;
/// Loki's `creation_grace_period`: entries stamped further in the future are refused.
/// Key `limits.creation_grace_period`.
pub const DEFAULT_CREATION_GRACE: Duration = Duration::from_secs(600);
/// Entries per second one token may push, sustained: far above a host's security logs, low
/// enough that one rooted host cannot take the sink's whole capacity.
/// Key `limits.token_entries_per_second` (0 = unlimited).
pub const DEFAULT_TOKEN_ENTRIES_PER_SECOND: u64 = 20_000;
/// Bytes of lines and metadata per second one token may push, sustained.
/// Key `limits.token_bytes_per_second` (0 = unlimited).
pub const DEFAULT_TOKEN_BYTES_PER_SECOND: u64 = 16 << 20;
/// Seconds of the rate a token may push at once (the bucket size), so an agent can catch up
/// after an outage. Key `limits.token_burst_seconds`.
pub const DEFAULT_TOKEN_BURST_SECONDS: u64 = 10;
/// Failed authentications per minute from one address before it is refused unchecked.
/// Key `limits.auth_failures_per_minute` (0 = no throttle).
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;
/// Longest accepted `X-Scope-OrgID`, as Loki.
pub const MAX_TENANT_LEN: usize = 150;

/// Every bound on what one push may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_entries_per_request: usize,
    pub max_streams_per_request: usize,
    pub max_inflight_pushes: usize,
    /// Bytes all pushes in flight may hold together ([`memory`]).
    pub max_inflight_bytes: usize,
    /// Bytes one token's pushes in flight may hold together.
    pub token_max_inflight_bytes: usize,
    /// Pushes one token may have in flight at once.
    pub token_max_inflight_pushes: usize,
    /// Slowest average body rate after [`BODY_RATE_GRACE`]; 0 = none.
    pub min_body_bytes_per_second: u64,
    pub max_line_size: usize,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_metadata_bytes: usize,
    pub max_metadata_entries: usize,
    pub creation_grace: Duration,
    pub token_entries_per_second: u64,
    pub token_bytes_per_second: u64,
    pub token_burst_seconds: u64,
    pub auth_failures_per_minute: u32,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
}

/// A client must send the whole body within this. Alloy gives a request 10 s in all.
/// Key `push.body_timeout`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_entries_per_request: DEFAULT_MAX_ENTRIES_PER_REQUEST,
            max_streams_per_request: DEFAULT_MAX_STREAMS_PER_REQUEST,
            max_inflight_pushes: DEFAULT_MAX_INFLIGHT_PUSHES,
            max_inflight_bytes: memory::DEFAULT_MAX_INFLIGHT_BYTES,
            token_max_inflight_bytes: memory::DEFAULT_TOKEN_MAX_INFLIGHT_BYTES,
            token_max_inflight_pushes: memory::DEFAULT_TOKEN_MAX_INFLIGHT_PUSHES,
            min_body_bytes_per_second: DEFAULT_MIN_BODY_BYTES_PER_SECOND,
            max_line_size: DEFAULT_MAX_LINE_SIZE,
            max_label_names_per_series: DEFAULT_MAX_LABEL_NAMES,
            max_label_name_length: DEFAULT_MAX_LABEL_NAME_LENGTH,
            max_label_value_length: DEFAULT_MAX_LABEL_VALUE_LENGTH,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_metadata_entries: DEFAULT_MAX_METADATA_ENTRIES,
            creation_grace: DEFAULT_CREATION_GRACE,
            token_entries_per_second: DEFAULT_TOKEN_ENTRIES_PER_SECOND,
            token_bytes_per_second: DEFAULT_TOKEN_BYTES_PER_SECOND,
            token_burst_seconds: DEFAULT_TOKEN_BURST_SECONDS,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}
