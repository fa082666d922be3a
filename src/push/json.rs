//! Loki's v1 JSON push body: `{"streams":[{"stream":{...},"values":[["<ns>","line",{meta}]]}]}`.
//!
//! Owns: the exact shape Loki accepts (timestamps as strings of integer nanoseconds, lines as
//! strings, an optional object of string metadata, `null` streams and entries skipped,
//! unknown keys ignored).
//!
//! Must not: validate labels or limits; that happens for both body formats in `validate`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};

use super::decode::{Decoded, RawEntry, RawLabels, RawStream};

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    streams: Option<Vec<JsonStream>>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: Option<BTreeMap<String, String>>,
    #[serde(default)]
    values: Option<Vec<Option<JsonEntry>>>,
}

struct JsonEntry {
    ts_ns: i64,
    line: String,
    metadata: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for JsonEntry {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = JsonEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an entry ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
        let ts: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let ts_ns = ts.parse::<i64>().map_err(|_| {
            de::Error::custom(format!(
                "timestamp {ts:?} is not a string of integer Unix nanoseconds"
            ))
        })?;
        let line: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let metadata: Option<BTreeMap<String, String>> = seq.next_element()?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(JsonEntry {
            ts_ns,
            line,
            metadata: metadata.unwrap_or_default(),
        })
    }
}

/// Decodes a JSON body. Any error fails the whole request, as in Loki.
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let body_len = body.len();
    let body: Body = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let streams = body
        .streams
        .unwrap_or_default()
        .into_iter()
        .map(|s| RawStream {
            labels: RawLabels::Pairs(s.stream.unwrap_or_default().into_iter().collect()),
            entries: s
                .values
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(|e| RawEntry {
                    ts_ns: Ok(e.ts_ns),
                    line: Bytes::from(e.line),
                    metadata: e
                        .metadata
                        .into_iter()
                        .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Decoded {
        streams,
        raw_bytes: body_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_loki_shapes() {
        let d = decode(
            br#"{"streams":[{"stream":{"job":"sshd"},"values":[["1","a"],null,["2","b",{"k":"v"}]]},
                 {"stream":{"job":"x"},"values":null}],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(d.streams.len(), 2);
        assert_eq!(d.streams[0].entries.len(), 2);
        assert_eq!(d.streams[0].entries[1].metadata.len(), 1);
        assert!(d.streams[1].entries.is_empty());
    }

    #[test]
    fn refuses_what_loki_refuses() {
        for bad in [
            r#"{"streams":[{"stream":{"a":"b"},"values":[[1,"a"]]}]}"#,
            r#"{"streams":[{"stream":{"a":"b"},"values":[["2024-01-01T00:00:00Z","a"]]}]}"#,
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1.5","a"]]}]}"#,
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1","a",{"k":1}]]}]}"#,
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
            r#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
            r#"{"streams":"#,
        ] {
            assert!(decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
