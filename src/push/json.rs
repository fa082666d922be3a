//! Loki's v1 JSON push body: `{"streams":[{"stream":{...},"values":[["<ns>","line",{meta}]]}]}`.
//!
//! Owns: the exact shape Loki accepts (timestamps as strings of integer nanoseconds, lines as
//! strings, an optional object of string metadata, `null` streams, values and entries
//! skipped, unknown keys ignored), decoded by a [`Meter`] that counts every stream, entry,
//! pair and string and charges the push budget for it before it is kept, so a body of
//! millions of empty objects is refused while it is read, not after it was built. Besides
//! what it charges, decoding holds only `serde_json`'s scratch buffer, which grows to the
//! longest escaped string of the body, and at most [`METER_STEP`] counted but not yet taken.
//!
//! Must not: validate labels or limits on entries; that happens for both body formats in
//! `validate`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Limits;
use super::error::PushError;
use super::memory::{Charge, ENTRY_OVERHEAD, PAIR_OVERHEAD, STREAM_OVERHEAD};
use super::raw::{Decoded, RawEntry, RawLabels, RawStream, Unit, too_many};

/// Bytes the meter counts before it takes them from the budget in one step: keeps the
/// budget's lock out of the per-entry path, and bounds what is held uncharged.
const METER_STEP: usize = 64 << 10;

/// Counts what decoding builds and charges it to the push budget as it goes.
pub struct Meter<'c, 'b> {
    charge: &'c mut Charge<'b>,
    limits: &'c Limits,
    streams: usize,
    entries: usize,
    pending: usize,
    /// Why decoding was stopped, when the meter stopped it.
    refused: Option<PushError>,
}

impl<'c, 'b> Meter<'c, 'b> {
    pub fn new(charge: &'c mut Charge<'b>, limits: &'c Limits) -> Self {
        Meter {
            charge,
            limits,
            streams: 0,
            entries: 0,
            pending: 0,
            refused: None,
        }
    }

    fn stop<E: de::Error>(&mut self, why: PushError) -> E {
        let text = why.to_string();
        self.refused = Some(why);
        E::custom(text)
    }

    fn add<E: de::Error>(&mut self, n: usize) -> Result<(), E> {
        self.pending += n;
        if self.pending >= METER_STEP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush<E: de::Error>(&mut self) -> Result<(), E> {
        let n = std::mem::take(&mut self.pending);
        self.charge.take(n).map_err(|e| self.stop(e))
    }

    fn stream<E: de::Error>(&mut self) -> Result<(), E> {
        self.streams += 1;
        if self.streams > self.limits.max_streams_per_request {
            let max = self.limits.max_streams_per_request;
            return Err(self.stop(too_many(Unit::Streams, None, max)));
        }
        self.add(STREAM_OVERHEAD)
    }

    fn entry<E: de::Error>(&mut self) -> Result<(), E> {
        self.entries += 1;
        if self.entries > self.limits.max_entries_per_request {
            let max = self.limits.max_entries_per_request;
            return Err(self.stop(too_many(Unit::Entries, None, max)));
        }
        self.add(ENTRY_OVERHEAD)
    }
}

/// A string, counted before it is copied out of the body.
struct Counted<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for Counted<'_, '_, '_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_, '_, '_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.0.add(v.len())?;
        Ok(v.to_owned())
    }
}

/// Decodes a JSON body. Any error fails the whole request, as in Loki.
pub fn decode(body: &[u8], meter: &mut Meter<'_, '_>) -> Result<Decoded, PushError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let streams = Nullable(BodySeed(&mut *meter))
        .deserialize(&mut de)
        .and_then(|s| de.end().map(|()| s));
    let streams = match streams {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            return Err(meter
                .refused
                .take()
                .unwrap_or_else(|| PushError::BadRequest(format!("invalid JSON body: {e}"))));
        }
    };
    meter.flush::<serde_json::Error>().map_err(|e| {
        meter
            .refused
            .take()
            .unwrap_or_else(|| PushError::BadRequest(e.to_string()))
    })?;
    Ok(Decoded {
        streams,
        raw_bytes: body.len(),
    })
}

/// A key of one of the body's objects.
enum Key {
    Streams,
    Stream,
    Values,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "streams" => Key::Streams,
                    "stream" => Key::Stream,
                    "values" => Key::Values,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `null` or what the inner seed reads.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// The top-level object.
struct BodySeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_, '_> {
    type Value = Vec<RawStream>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_, '_> {
    type Value = Vec<RawStream>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a push body {"streams": [...]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut streams = None;
        while let Some(key) = map.next_key::<Key>()? {
            if let Key::Streams = key {
                if streams.is_some() {
                    return Err(de::Error::duplicate_field("streams"));
                }
                streams = Some(map.next_value_seed(Nullable(StreamsSeed(&mut *self.0)))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(streams.flatten().unwrap_or_default())
    }
}

/// `[stream, ...]`; `null` elements are skipped.
struct StreamsSeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for StreamsSeed<'_, '_, '_> {
    type Value = Vec<RawStream>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StreamsSeed<'_, '_, '_> {
    type Value = Vec<RawStream>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of streams")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element_seed(Nullable(StreamSeed(&mut *self.0)))? {
            out.extend(s);
        }
        Ok(out)
    }
}

/// `{"stream": {...}, "values": [...]}`.
struct StreamSeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for StreamSeed<'_, '_, '_> {
    type Value = RawStream;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StreamSeed<'_, '_, '_> {
    type Value = RawStream;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a stream {"stream": {...}, "values": [...]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.0.stream()?;
        let (mut labels, mut values) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Stream if labels.is_some() => {
                    return Err(de::Error::duplicate_field("stream"));
                }
                Key::Values if values.is_some() => {
                    return Err(de::Error::duplicate_field("values"));
                }
                Key::Stream => {
                    labels = Some(map.next_value_seed(Nullable(PairsSeed(&mut *self.0)))?)
                }
                Key::Values => {
                    values = Some(map.next_value_seed(Nullable(EntriesSeed(&mut *self.0)))?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawStream {
            labels: RawLabels::Pairs(labels.flatten().unwrap_or_default()),
            entries: values.flatten().unwrap_or_default(),
        })
    }
}

/// An object of string values, as sorted pairs (a repeated name keeps its last value).
struct PairsSeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for PairsSeed<'_, '_, '_> {
    type Value = Vec<(String, String)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PairsSeed<'_, '_, '_> {
    type Value = Vec<(String, String)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of string values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key_seed(Counted(&mut *self.0))? {
            self.0.add(PAIR_OVERHEAD)?;
            let v = map.next_value_seed(Counted(&mut *self.0))?;
            out.insert(k, v);
        }
        Ok(out.into_iter().collect())
    }
}

/// `[entry, ...]`; `null` entries are skipped.
struct EntriesSeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_, '_> {
    type Value = Vec<RawEntry>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_, '_> {
    type Value = Vec<RawEntry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(e) = seq.next_element_seed(Nullable(EntrySeed(&mut *self.0)))? {
            out.extend(e);
        }
        Ok(out)
    }
}

/// `["<unix ns>", "<line>"]` or `["<unix ns>", "<line>", {metadata}]`.
struct EntrySeed<'m, 'c, 'b>(&'m mut Meter<'c, 'b>);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, '_, '_> {
    type Value = RawEntry;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, '_, '_> {
    type Value = RawEntry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an entry ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]"#)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
        self.0.entry()?;
        let ts = seq
            .next_element_seed(Counted(&mut *self.0))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let ts_ns = ts.parse::<i64>().map_err(|_| {
            de::Error::custom(format!(
                "timestamp {ts:?} is not a string of integer Unix nanoseconds"
            ))
        })?;
        let line = seq
            .next_element_seed(Counted(&mut *self.0))?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let metadata = seq
            .next_element_seed(Nullable(PairsSeed(&mut *self.0)))?
            .flatten()
            .unwrap_or_default();
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(RawEntry {
            ts_ns: Ok(ts_ns),
            line: Bytes::from(line),
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::memory::Budget;
    use std::sync::Arc;

    fn run(body: &str, limits: &Limits) -> Result<Decoded, PushError> {
        let budget = Budget::new(limits);
        let token: Arc<str> = Arc::from("t");
        let mut charge = budget.charge(&token)?;
        let mut meter = Meter::new(&mut charge, limits);
        decode(body.as_bytes(), &mut meter)
    }

    #[test]
    fn takes_loki_shapes() {
        let d = run(
            r#"{"streams":[{"stream":{"job":"sshd"},"values":[["1","a"],null,["2","b",{"k":"v"}]]},
                 {"stream":{"job":"x"},"values":null},null],"extra":1}"#,
            &Limits::default(),
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
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1","a",{},1]]}]}"#,
            r#"{"streams":"#,
            r#"{"streams":[]} x"#,
        ] {
            let e = run(bad, &Limits::default()).unwrap_err();
            assert!(matches!(e, PushError::BadRequest(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn counts_are_refused_as_they_are_read() {
        let limits = Limits {
            max_entries_per_request: 3,
            max_streams_per_request: 2,
            ..Limits::default()
        };
        let entries = r#"{"streams":[{"stream":{"a":"b"},"values":[["1","a"],["1","a"],["1","a"],["1","a"]]}]}"#;
        assert!(
            matches!(run(entries, &limits), Err(PushError::TooLarge(m)) if m.contains("more than 3 entries"))
        );
        let streams = r#"{"streams":[{},{},{}]}"#;
        assert!(
            matches!(run(streams, &limits), Err(PushError::TooLarge(m)) if m.contains("streams"))
        );
    }

    #[test]
    fn pairs_are_charged_before_they_are_kept() {
        let limits = Limits {
            token_max_inflight_bytes: 100 * PAIR_OVERHEAD,
            ..Limits::default()
        };
        let pairs: Vec<String> = (0..2000).map(|i| format!("\"k{i}\":\"\"")).collect();
        let body = format!(
            r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["1","a",{{{}}}]]}}]}}"#,
            pairs.join(",")
        );
        assert!(matches!(run(&body, &limits), Err(PushError::TooLarge(_))));
    }
}
