//! OTLP/HTTP logs (`POST /otlp/v1/logs`): the body formats and answers of the OpenTelemetry
//! protocol over the push plane's own path (credentials, budget, limits, validation,
//! durability), so an OpenTelemetry SDK, Collector or Alloy `otelcol.exporter.otlphttp`
//! pushes with a write-only token as Alloy's `loki.write` does.
//!
//! Owns: `Content-Type` (`application/x-protobuf` or `application/json`, anything else 415),
//! `Content-Encoding` (none, gzip, deflate, zstd with its window bounded), every count and
//! nesting bound taken before the body is decoded, and the answers: `200` with an `ExportLogsServiceResponse` (with
//! `partial_success` when some records were refused), or a `google.rpc.Status` in the
//! request's format. Statuses follow OTLP's retry rules: a sender retries 429, 502, 503 and
//! 504 only, so a full disk and a failed commit answer 503 (with `Retry-After`), not 507 and
//! 500, which an OpenTelemetry sender would drop.
//!
//! Layout: `proto` (the messages and the wire walk), `json` (OTLP/JSON field forms), `map`
//! (records to streams, as Loki maps them), `value` (values and names as text).
//!
//! Must not: store, authenticate or validate entries itself; `push` does that for both
//! protocols alike.

mod json;
mod map;
pub mod proto;
mod value;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

pub use map::INDEX_ATTRIBUTES;
pub use value::label_name;

use super::Limits;
use super::error::PushError;
use super::memory::{Charge, ENTRY_OVERHEAD, PAIR_OVERHEAD, STREAM_OVERHEAD};
use super::raw::{Decoded, Unit, too_many};

/// Deepest nesting of a JSON body: the request's own structure (six levels down to an
/// attribute value) and four levels per nested attribute value.
const MAX_JSON_DEPTH: usize = 8 + 4 * proto::MAX_VALUE_DEPTH;

/// The two encodings OTLP/HTTP defines; the answer uses the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The format of a `Content-Type`, or 415.
    pub fn of(content_type: Option<&str>) -> Result<Format, PushError> {
        match super::decode::essence(content_type).as_str() {
            "application/x-protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(PushError::UnsupportedMediaType(format!(
                "unsupported Content-Type {:?}: OTLP/HTTP sends application/x-protobuf or \
                 application/json",
                content_type.unwrap_or("")
            ))),
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        })
    }
}

/// Decodes an OTLP request body and maps its records to streams, taking what each step
/// builds from `charge` before it is allocated.
pub fn decode(
    format: Format,
    content_encoding: Option<&str>,
    body: Bytes,
    limits: &Limits,
    charge: &mut Charge<'_>,
    now_ns: i64,
) -> Result<Decoded, PushError> {
    let encoding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    let cap = limits.max_decompressed_bytes;
    let body = match encoding.as_str() {
        "" | "identity" | "gzip" | "x-gzip" | "deflate" => {
            super::decode::decompress(Some(&encoding), body, cap, charge)?
        }
        "zstd" => super::decode::unzstd(&body, cap, charge)?,
        _ => {
            return Err(PushError::BadRequest(format!(
                "Content-Encoding {encoding:?} not supported: send gzip, zstd or none"
            )));
        }
    };
    let req = match format {
        Format::Protobuf => protobuf(&body, limits, charge)?,
        Format::Json => json_body(&body, limits, charge)?,
    };
    let mut decoded = map::to_raw(req, charge, now_ns)?;
    decoded.raw_bytes = decoded.raw_bytes.max(body.len());
    Ok(decoded)
}

fn protobuf(
    body: &[u8],
    limits: &Limits,
    charge: &mut Charge<'_>,
) -> Result<proto::ExportLogsServiceRequest, PushError> {
    let shape = proto::shape(body)
        .map_err(|e| PushError::BadRequest(format!("invalid OTLP protobuf body: {e}")))?;
    counts(shape.resources, shape.records, limits)?;
    charge.take(
        body.len()
            .saturating_add(shape.resources.saturating_mul(STREAM_OVERHEAD))
            .saturating_add(shape.records.saturating_mul(ENTRY_OVERHEAD))
            .saturating_add(shape.values.saturating_mul(PAIR_OVERHEAD)),
    )?;
    prost::Message::decode(body)
        .map_err(|e| PushError::BadRequest(format!("invalid OTLP protobuf body: {e}")))
}

fn json_body(
    body: &[u8],
    limits: &Limits,
    charge: &mut Charge<'_>,
) -> Result<proto::ExportLogsServiceRequest, PushError> {
    let containers = json::containers(body, MAX_JSON_DEPTH)
        .map_err(|e| PushError::BadRequest(format!("invalid OTLP JSON body: {e}")))?;
    charge.take(
        body.len()
            .saturating_add(containers.saturating_mul(PAIR_OVERHEAD)),
    )?;
    let req: proto::ExportLogsServiceRequest = serde_json::from_slice(body)
        .map_err(|e| PushError::BadRequest(format!("invalid OTLP JSON body: {e}")))?;
    let records = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    counts(req.resource_logs.len(), records, limits)?;
    Ok(req)
}

fn counts(resources: usize, records: usize, limits: &Limits) -> Result<(), PushError> {
    if records > limits.max_entries_per_request {
        return Err(too_many(
            Unit::Entries,
            Some(records),
            limits.max_entries_per_request,
        ));
    }
    if resources > limits.max_streams_per_request {
        return Err(too_many(
            Unit::Streams,
            Some(resources),
            limits.max_streams_per_request,
        ));
    }
    Ok(())
}

/// The answer to a request whose valid records are durable: `rejected` records were refused,
/// for the reasons in `message`.
pub fn accepted(format: Format, rejected: usize, message: String) -> Response {
    let partial_success = (rejected > 0).then(|| proto::ExportLogsPartialSuccess {
        rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: message,
    });
    let body = match format {
        Format::Protobuf => {
            prost::Message::encode_to_vec(&proto::ExportLogsServiceResponse { partial_success })
        }
        Format::Json => match partial_success {
            None => b"{}".to_vec(),
            Some(p) => serde_json::json!({"partialSuccess": {
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message,
            }})
            .to_string()
            .into_bytes(),
        },
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    resp
}

/// The status an OTLP sender gets for `e`: the push plane's, except that what may pass
/// later is always retryable under OTLP's rules.
pub fn status(e: &PushError) -> StatusCode {
    match e.status() {
        StatusCode::INSUFFICIENT_STORAGE | StatusCode::INTERNAL_SERVER_ERROR => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        s => s,
    }
}

/// `e` as an OTLP error: a `google.rpc.Status` in the request's format.
pub fn refused(format: Format, e: PushError) -> Response {
    e.log_cause();
    let status = status(&e);
    let st = proto::Status {
        code: grpc_code(status),
        message: e.to_string(),
    };
    let body = match format {
        Format::Protobuf => prost::Message::encode_to_vec(&st),
        Format::Json => serde_json::json!({"code": st.code, "message": st.message})
            .to_string()
            .into_bytes(),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, format.content_type());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(s) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// The gRPC code OTLP pairs with an HTTP status.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        408 | 504 => 4,
        429 => 8,
        503 => 14,
        _ => 2,
    }
}
