//! Request body to streams of raw entries, exactly in Loki's decision order.
//!
//! Owns: `Content-Encoding` (none, snappy, gzip, raw deflate), `Content-Type` (exactly
//! `application/json` is JSON, anything else is snappy-block protobuf), and every size check
//! that must come before memory is allocated: the decompressed size of gzip/deflate is capped
//! while inflating, snappy's declared length is compared with the cap before decompressing,
//! protobuf streams, entries and pairs are counted on the wire and charged to the budget
//! before they are decoded, and JSON ones are charged as the decoder meets them.
//!
//! Must not: validate labels, timestamps or limits on entries (that is `validate`).

use std::io::Read;

use bytes::Bytes;

use super::error::PushError;
use super::memory::{Charge, ENTRY_OVERHEAD, PAIR_OVERHEAD, STREAM_OVERHEAD};
use super::proto;
use super::raw::{Decoded, RawEntry, RawLabels, RawStream, Unit, too_many};
use super::{Limits, json};

/// Decodes a body given its `Content-Type` and `Content-Encoding` header values, taking
/// the decompressed bytes from `charge` before they are allocated.
pub fn decode(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: Bytes,
    limits: &Limits,
    charge: &mut Charge<'_>,
) -> Result<Decoded, PushError> {
    let body = decompress(
        content_encoding,
        body,
        limits.max_decompressed_bytes,
        charge,
    )?;
    match media_type(content_type)? {
        MediaType::Json => json::decode(&body, &mut json::Meter::new(charge, limits)),
        MediaType::Protobuf => protobuf(&body, limits, charge),
    }
}

enum MediaType {
    Json,
    Protobuf,
}

/// A `Content-Type`'s media type without its parameters, in lower case; empty when absent.
pub(super) fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn media_type(content_type: Option<&str>) -> Result<MediaType, PushError> {
    let essence = essence(content_type);
    if essence.is_empty() {
        return Err(PushError::BadRequest(
            "missing Content-Type: send application/x-protobuf (snappy) or application/json".into(),
        ));
    }
    Ok(if essence == "application/json" {
        MediaType::Json
    } else {
        MediaType::Protobuf
    })
}

pub(super) fn decompress(
    encoding: Option<&str>,
    body: Bytes,
    cap: usize,
    charge: &mut Charge<'_>,
) -> Result<Bytes, PushError> {
    let encoding = encoding.unwrap_or("").trim().to_ascii_lowercase();
    match encoding.as_str() {
        // Snappy is undone with the protobuf step; Promtail sends no header at all.
        "" | "identity" | "snappy" => Ok(body),
        "gzip" | "x-gzip" => {
            let gz = flate2::read::MultiGzDecoder::new(&body[..]);
            inflate(gz, cap, "gzip", charge)
        }
        "deflate" => inflate(
            flate2::read::DeflateDecoder::new(&body[..]),
            cap,
            "deflate",
            charge,
        ),
        other => Err(PushError::BadRequest(format!(
            "Content-Encoding {other:?} not supported"
        ))),
    }
}

/// Largest zstd window a body may ask its decoder for (`windowLog` 23, 8 MiB): zstd's own
/// command line compresses with at most this by default, and a frame asking for more (up to
/// 2 GiB) would make the decoder allocate it outside the budget. Charged before decoding.
pub const MAX_ZSTD_WINDOW_LOG: u32 = 23;

/// Decompresses a zstd body (OTLP's `Content-Encoding: zstd`) as [`inflate`] does, with the
/// decoder's window bounded and charged first.
pub(super) fn unzstd(body: &[u8], cap: usize, charge: &mut Charge<'_>) -> Result<Bytes, PushError> {
    charge.take(1 << MAX_ZSTD_WINDOW_LOG)?;
    let mut d = zstd::stream::read::Decoder::new(body)
        .map_err(|e| PushError::BadRequest(format!("invalid zstd body: {e}")))?;
    d.window_log_max(MAX_ZSTD_WINDOW_LOG)
        .map_err(|e| PushError::BadRequest(format!("invalid zstd body: {e}")))?;
    inflate(d, cap, "zstd", charge)
}

/// Inflates a step at a time, so memory is taken from the budget before it is filled.
const INFLATE_STEP: usize = 1 << 20;

/// Inflates at most `cap` bytes; one more means the body is over the limit.
fn inflate(
    r: impl Read,
    cap: usize,
    what: &str,
    charge: &mut Charge<'_>,
) -> Result<Bytes, PushError> {
    let mut r = r.take(cap as u64 + 1);
    let mut out = Vec::new();
    loop {
        charge.take(INFLATE_STEP)?;
        let n = (&mut r)
            .take(INFLATE_STEP as u64)
            .read_to_end(&mut out)
            .map_err(|e| PushError::BadRequest(format!("invalid {what} body: {e}")))?;
        if n < INFLATE_STEP {
            charge.give_back(INFLATE_STEP - n);
            break;
        }
    }
    if out.len() > cap {
        return Err(PushError::TooLarge(format!(
            "request body too large: decompressed size exceeds the limit of {cap} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

fn protobuf(body: &[u8], limits: &Limits, charge: &mut Charge<'_>) -> Result<Decoded, PushError> {
    let declared = snap::raw::decompress_len(body)
        .map_err(|e| PushError::BadRequest(format!("invalid snappy body: {e}")))?;
    if declared > limits.max_decompressed_bytes {
        return Err(PushError::TooLarge(format!(
            "request body too large: snappy declares {declared} bytes, over the limit of {} bytes",
            limits.max_decompressed_bytes
        )));
    }
    charge.take(declared)?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| PushError::BadRequest(format!("invalid snappy body: {e}")))?;
    let shape = proto::shape(&raw)
        .map_err(|e| PushError::BadRequest(format!("invalid protobuf body: {e}")))?;
    if shape.entries > limits.max_entries_per_request {
        return Err(too_many(
            Unit::Entries,
            Some(shape.entries),
            limits.max_entries_per_request,
        ));
    }
    if shape.streams > limits.max_streams_per_request {
        return Err(too_many(
            Unit::Streams,
            Some(shape.streams),
            limits.max_streams_per_request,
        ));
    }
    charge.take(
        shape
            .streams
            .saturating_mul(STREAM_OVERHEAD)
            .saturating_add(shape.entries.saturating_mul(ENTRY_OVERHEAD))
            .saturating_add(shape.pairs.saturating_mul(PAIR_OVERHEAD)),
    )?;
    let req: proto::PushRequest = prost::Message::decode(Bytes::from(raw))
        .map_err(|e| PushError::BadRequest(format!("invalid protobuf body: {e}")))?;
    let streams = req
        .streams
        .into_iter()
        .map(|s| RawStream {
            labels: RawLabels::Text(s.labels),
            entries: s
                .entries
                .into_iter()
                .map(|e| RawEntry {
                    ts_ns: timestamp(e.timestamp),
                    line: e.line,
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Decoded {
        streams,
        raw_bytes: declared,
    })
}

fn timestamp(ts: Option<proto::Timestamp>) -> Result<i64, &'static str> {
    let ts = ts.ok_or("entry has no timestamp")?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err("timestamp nanos out of range");
    }
    ts.seconds
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos)))
        .ok_or("timestamp out of range")
}
