//! Loki's push protobuf (`logproto.PushRequest`), written out by hand for prost.
//!
//! Owns: the message types, a walk of the wire format that counts streams, entries and
//! metadata pairs before anything is allocated for them, and the encoder that the load
//! generator and tests use.
//!
//! Must not: interpret labels or validate entries. Strings are read as bytes so that one
//! entry with invalid UTF-8 is rejected alone instead of failing the whole request.

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    /// Set internally by Loki; ignored.
    #[prost(bytes = "bytes", tag = "2")]
    pub format: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label string, e.g. `{host="a", job="sshd"}`.
    #[prost(bytes = "bytes", tag = "1")]
    pub labels: Bytes,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Internal to Loki; ignored.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(bytes = "bytes", tag = "2")]
    pub line: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    // Field 4, `parsed`, is query-side only: it is not declared, so decoding skips it
    // without allocating, however many pairs a client sends.
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// What decoding an encoded `PushRequest` will build, counted on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub streams: usize,
    pub entries: usize,
    /// Structured metadata pairs over all entries.
    pub pairs: usize,
}

/// Walks the wire format of an encoded `PushRequest` without decoding it, counting what the
/// decoder would allocate. `Err` means the bytes are not a well-formed protobuf message.
pub fn shape(buf: &[u8]) -> Result<Shape, &'static str> {
    let mut out = Shape::default();
    walk(buf, |field, wire, stream| {
        if field == 1 && wire == 2 {
            out.streams += 1;
            walk(stream, |f, w, entry| {
                if f == 2 && w == 2 {
                    out.entries += 1;
                    walk(entry, |f, w, _| {
                        if f == 3 && w == 2 {
                            out.pairs += 1;
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(field, wire_type, length_delimited_body)` for each top-level field of `buf`.
fn walk(
    mut buf: &[u8],
    mut f: impl FnMut(u64, u8, &[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                varint(&mut buf)?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or("truncated fixed-width field")?;
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length overflow")?;
                let body = buf.get(..len).ok_or("truncated length-delimited field")?;
                f(field, wire, body)?;
                buf = &buf[len..];
            }
            _ => return Err("unsupported wire type"),
        }
    }
    Ok(())
}

pub(crate) fn varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long")
}

/// Encodes `req` as an agent sends it: protobuf, then raw (block) snappy.
pub fn encode_snappy(req: &PushRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_counts_what_decoding_builds() {
        let entry = |i: i64| EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: i,
                nanos: 5,
            }),
            line: Bytes::from(format!("line {i}")),
            structured_metadata: vec![LabelPairAdapter {
                name: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
            }],
        };
        let req = PushRequest {
            streams: vec![
                StreamAdapter {
                    labels: Bytes::from_static(b"{a=\"1\"}"),
                    entries: (0..3).map(entry).collect(),
                    hash: 7,
                },
                StreamAdapter {
                    labels: Bytes::from_static(b"{a=\"2\"}"),
                    entries: (0..2).map(entry).collect(),
                    hash: 0,
                },
            ],
            format: Bytes::new(),
        };
        let raw = prost::Message::encode_to_vec(&req);
        let want = Shape {
            streams: 2,
            entries: 5,
            pairs: 5,
        };
        assert_eq!(shape(&raw), Ok(want));
        assert!(shape(&raw[..raw.len() - 1]).is_err());
        assert!(shape(&[0x0a, 0xff]).is_err());
        // Empty streams cost nothing on the wire but a stream each once decoded.
        assert_eq!(
            shape(&[0x0a, 0x00].repeat(1000)).map(|s| s.streams),
            Ok(1000)
        );
    }
}
