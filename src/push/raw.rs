//! A push body once decoded and before validation: the shapes both decoders (protobuf in
//! `decode`, JSON in `json`) produce, and the 413 for a count over its limit.
//!
//! Must not: decode or validate; it only names what the decoders hand to `validate`.

use bytes::Bytes;

use super::error::PushError;

/// What a request counts before it keeps it.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Streams,
    Entries,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Streams => "streams",
            Unit::Entries => "entries",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Unit::Streams => "limits.max_streams_per_request",
            Unit::Entries => "limits.max_entries_per_request",
        }
    }
}

/// The 413 for a count over its limit: final, since the same body can never pass. `n` is
/// the whole count when it is known (counted on the wire), `None` when decoding stopped at
/// the first one over.
pub fn too_many(unit: Unit, n: Option<usize>, max: usize) -> PushError {
    let count = match n {
        Some(n) => format!("{n} {}", unit.name()),
        None => format!("more than {max} {}", unit.name()),
    };
    PushError::TooLarge(format!(
        "request body too large: {count}, over the limit of {max} per request ({})",
        unit.key()
    ))
}

/// A decoded push request, before validation.
#[derive(Debug, Default)]
pub struct Decoded {
    pub streams: Vec<RawStream>,
    /// Bytes of the body once decompressed.
    pub raw_bytes: usize,
}

#[derive(Debug)]
pub struct RawStream {
    pub labels: RawLabels,
    pub entries: Vec<RawEntry>,
}

/// A stream's labels as the body carried them.
#[derive(Debug)]
pub enum RawLabels {
    /// A protobuf label string, parsed in `validate`.
    Text(Bytes),
    /// A JSON `stream` object.
    Pairs(Vec<(String, String)>),
}

#[derive(Debug)]
pub struct RawEntry {
    /// Unix ns, or why the timestamp is unusable.
    pub ts_ns: Result<i64, &'static str>,
    pub line: Bytes,
    pub metadata: Vec<(Bytes, Bytes)>,
}
