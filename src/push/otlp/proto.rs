//! The OTLP logs messages (`opentelemetry.proto.collector.logs.v1`), written out by hand for
//! prost and serde: the protobuf encoding by field number, the JSON encoding (OTLP/JSON:
//! lowerCamelCase keys, 64-bit integers as strings or numbers, ids as hex) by field name.
//!
//! Owns: the message types, the response and error messages, and a walk of the protobuf wire
//! format that counts resources, records and attribute values, and bounds their nesting,
//! before anything is allocated for them.
//!
//! Must not: map records to entries (that is `map`) or decide statuses.

use serde::Deserialize;

use serde::Deserializer;

use super::json::{hex_id, opt_b64, opt_double, opt_int, u64_or_string};

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
    // Field 3, `schema_url`, is not kept.
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    #[serde(deserialize_with = "u64_or_string")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    #[serde(deserialize_with = "u64_or_string")]
    pub observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(string, tag = "3")]
    pub severity_text: String,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "7")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "8")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "9")]
    #[serde(deserialize_with = "hex_id")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    #[serde(deserialize_with = "hex_id")]
    pub span_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// An attribute value or a body; JSON `{"stringValue": "…"}` and so on, decoded in `json`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    BytesValue(Vec<u8>),
}

/// `{"stringValue": "…"}`, `{"intValue": "5"}`, …; `{}` is the empty value.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Fields {
    string_value: Option<String>,
    bool_value: Option<bool>,
    #[serde(deserialize_with = "opt_int")]
    int_value: Option<i64>,
    #[serde(deserialize_with = "opt_double")]
    double_value: Option<f64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    #[serde(deserialize_with = "opt_b64")]
    bytes_value: Option<Vec<u8>>,
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = Fields::deserialize(d)?;
        let value = f
            .string_value
            .map(Value::StringValue)
            .or(f.bool_value.map(Value::BoolValue))
            .or(f.int_value.map(Value::IntValue))
            .or(f.double_value.map(Value::DoubleValue))
            .or(f.array_value.map(Value::ArrayValue))
            .or(f.kvlist_value.map(Value::KvlistValue))
            .or(f.bytes_value.map(Value::BytesValue));
        Ok(AnyValue { value })
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `ExportLogsServiceResponse`: empty when everything was stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportLogsPartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsPartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_log_records: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`, the body of every OTLP error response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Deepest nesting of attribute values (arrays and maps inside values) a request may carry:
/// OpenTelemetry's semantic conventions nest two or three deep; every level costs a stack
/// frame when decoded and a key prefix when flattened.
pub const MAX_VALUE_DEPTH: usize = 16;

/// What decoding an encoded request will build, counted on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// `ResourceLogs`: each becomes one stream.
    pub resources: usize,
    pub records: usize,
    /// Key-value pairs and values inside arrays, at every depth.
    pub values: usize,
}

/// Walks an encoded `ExportLogsServiceRequest` without decoding it. `Err` means the bytes
/// are not a well-formed message or nest values deeper than [`MAX_VALUE_DEPTH`].
pub fn shape(buf: &[u8]) -> Result<Shape, &'static str> {
    let mut out = Shape::default();
    walk(buf, |f, rl| {
        if f != 1 {
            return Ok(());
        }
        out.resources += 1;
        walk(rl, |f, body| match f {
            1 => walk(body, |f, kv| {
                if f == 1 {
                    key_value(kv, 0, &mut out)
                } else {
                    Ok(())
                }
            }),
            2 => walk(body, |f, part| match f {
                1 => walk(part, |f, kv| {
                    if f == 3 {
                        key_value(kv, 0, &mut out)
                    } else {
                        Ok(())
                    }
                }),
                2 => {
                    out.records += 1;
                    walk(part, |f, field| match f {
                        5 => any_value(field, 0, &mut out),
                        6 => key_value(field, 0, &mut out),
                        _ => Ok(()),
                    })
                }
                _ => Ok(()),
            }),
            _ => Ok(()),
        })
    })?;
    Ok(out)
}

/// A key and its value, the value `depth` levels inside an attribute.
fn key_value(buf: &[u8], depth: usize, out: &mut Shape) -> Result<(), &'static str> {
    out.values += 1;
    walk(buf, |f, v| {
        if f == 2 {
            any_value(v, depth, out)
        } else {
            Ok(())
        }
    })
}

fn any_value(buf: &[u8], depth: usize, out: &mut Shape) -> Result<(), &'static str> {
    if depth > MAX_VALUE_DEPTH {
        return Err("attribute values nested too deep");
    }
    walk(buf, |f, inner| match f {
        5 => walk(inner, |f, v| {
            if f == 1 {
                out.values += 1;
                any_value(v, depth + 1, out)
            } else {
                Ok(())
            }
        }),
        6 => walk(inner, |f, kv| {
            if f == 1 {
                key_value(kv, depth + 1, out)
            } else {
                Ok(())
            }
        }),
        _ => Ok(()),
    })
}

/// Calls `f(field, body)` for each length-delimited field of `buf`, skipping the others.
fn walk(
    mut buf: &[u8],
    mut f: impl FnMut(u64, &[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    while !buf.is_empty() {
        let key = crate::push::proto::varint(&mut buf)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                crate::push::proto::varint(&mut buf)?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or("truncated fixed-width field")?;
            }
            2 => {
                let len = crate::push::proto::varint(&mut buf)?;
                let len = usize::try_from(len).map_err(|_| "length overflow")?;
                let body = buf.get(..len).ok_or("truncated length-delimited field")?;
                f(field, body)?;
                buf = &buf[len..];
            }
            _ => return Err("unsupported wire type"),
        }
    }
    Ok(())
}
