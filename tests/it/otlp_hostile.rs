//! Hostile OTLP bodies through the real server: values nested too deep, records over the
//! request's limit counted on the wire, and the two amplifications of the mapping (resource
//! attributes copied into every record, names that repeat their parents' names), each
//! refused before it is built and within the push budget, after which the server serves on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use daftari::push::otlp::proto::{AnyValue, KeyValueList, LogRecord, Value};

use crate::otlp::{json, kv, proto, record, request_of, status_of, text};

const MIB: u64 = 1 << 20;

/// A value nested `depth` deep: maps inside maps.
fn nested(depth: usize) -> Option<AnyValue> {
    let mut v = text("leaf");
    for _ in 0..depth {
        v = Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("k", v)],
            })),
        });
    }
    v
}

const SMALL: &str = "[limits]\nmax_body_bytes = 4194304\nmax_decompressed_bytes = 4194304\n\
    max_entries_per_request = 20000\nmax_streams_per_request = 2000\n\
    max_inflight_bytes = 67108864\ntoken_max_inflight_bytes = 33554432\n\
    [store]\nqueue_max_bytes = 16777216\n";

#[test]
fn hostile_bodies_are_refused_within_the_budget() {
    let (_tmp, s) = common::server::start_with_config(SMALL, &[]);
    let ts = daftari::clock::now_ns() as u64 - 1_000_000_000;

    // Nesting: refused on the wire, before a decoder recurses.
    let deep = request_of(
        vec![kv("service.name", text("a")), kv("deep", nested(17))],
        None,
        vec![record(ts, text("x"))],
    );
    let r = proto(&s, &s.token, &deep);
    assert_eq!(r.status, 400);
    assert!(status_of(&r).message.contains("nested too deep"));
    let r = json(&s, &s.token, &"[".repeat(100_000));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nested too deep"), "{}", r.body);
    let fine = request_of(
        vec![kv("deep", nested(16))],
        None,
        vec![record(ts, text("x"))],
    );
    assert_eq!(proto(&s, &s.token, &fine).status, 200);

    // Records over the request's limit, counted on the wire: empty records are two bytes.
    let many = request_of(
        vec![],
        None,
        (0..20_001).map(|_| LogRecord::default()).collect(),
    );
    let r = proto(&s, &s.token, &many);
    assert_eq!(r.status, 413, "{}", status_of(&r).message);

    // Amplification: 60 KB of resource attributes copied into each of 20,000 tiny records
    // would be 1.2 GB; the copies are charged before they are made.
    let attrs = (0..100)
        .map(|i| kv(&format!("a{i}"), text(&"v".repeat(600))))
        .collect();
    let amp = request_of(
        attrs,
        None,
        (0..20_000).map(|i| record(ts + i, text("x"))).collect(),
    );
    let body = prost::Message::encode_to_vec(&amp);
    assert!(body.len() < 1 << 20);
    let r = proto(&s, &s.token, &amp);
    assert_eq!(r.status, 413, "{}", status_of(&r).message);
    assert!(status_of(&r).message.contains("token_max_inflight_bytes"));
    let peak = s.peak_rss();
    assert!(peak < 64 * MIB + 16 * MIB + 96 * MIB, "peak RSS {peak}");

    // Amplification through names: sixteen nested maps under 60 KB keys, then 20,000 leaves,
    // would flatten into 20,000 names of 960 KB each; every name is charged before it is built.
    let leaves = KeyValueList {
        values: (0..20_000)
            .map(|i| kv(&format!("{i}"), text("v")))
            .collect(),
    };
    let mut v = Some(AnyValue {
        value: Some(Value::KvlistValue(leaves)),
    });
    for level in 0..15 {
        let key = format!("{level}{}", "k".repeat(60_000));
        v = Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv(&key, v)],
            })),
        });
    }
    let names = request_of(
        vec![kv(&"n".repeat(60_000), v)],
        None,
        vec![record(ts, text("x"))],
    );
    assert!(prost::Message::encoded_len(&names) < 2 << 20);
    let r = proto(&s, &s.token, &names);
    assert_eq!(r.status, 413, "{}", status_of(&r).message);
    let peak = s.peak_rss();
    assert!(peak < 64 * MIB + 16 * MIB + 96 * MIB, "peak RSS {peak}");

    // The server goes on serving.
    let ok = request_of(
        vec![kv("service.name", text("app"))],
        None,
        vec![record(ts, text("after"))],
    );
    assert_eq!(proto(&s, &s.token, &ok).status, 200);
}
