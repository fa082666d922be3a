//! Hostile pushes against the real server: decode amplification, bodies that can never fit,
//! counts over their limits, and a seeded generator of malformed and amplifying bodies in
//! every format and encoding. Each gets a clear status with the right retry semantics,
//! the server's peak memory (`VmHWM` of the real process) stays within the push budget plus
//! a small constant, and the server goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::Write;

use bytes::Bytes;
use common::encode::{deflate, gzip, snappy};
use common::rng::{Rng, seed_and_cases};
use common::server::{Resp, Server, pushed};
use daftari::push::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

const TS: i64 = 1_754_400_000_000_000_000;
const MIB: u64 = 1 << 20;

/// Memory besides the push budget the server may use at its peak in these tests: its own
/// baseline, the writer queue, SQLite's caches, threads and allocator slack.
const SLACK: u64 = 96 * MIB;

/// A small-budget configuration, so the bound is tight enough to mean something.
const SMALL: &str = "[limits]\nmax_body_bytes = 4194304\nmax_decompressed_bytes = 4194304\n\
    max_entries_per_request = 20000\nmax_streams_per_request = 2000\n\
    max_inflight_bytes = 67108864\ntoken_max_inflight_bytes = 33554432\n\
    [store]\nqueue_max_bytes = 16777216\n";
const SMALL_BUDGET: u64 = 64 * MIB + 16 * MIB;
const SMALL_MAX_BODY: usize = 4 << 20;

/// Sends only the headers of a push that declares `len` bytes, and reads the answer.
fn declare_only(s: &Server, content_type: &str, len: usize) -> Resp {
    use std::io::Read;
    let mut c = std::net::TcpStream::connect(s.push).unwrap();
    let head = format!(
        "POST /loki/api/v1/push HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: {content_type}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        s.token
    );
    c.write_all(head.as_bytes()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    common::server::parse_response(&raw)
}

fn start_with(config: &str) -> (tempfile::TempDir, Server) {
    common::server::start_with_config(config, &[])
}

/// A JSON push of `n` tiny entries in one stream.
fn json_entries(n: i64) -> String {
    let values: Vec<String> = (0..n).map(|i| format!(r#"["{}","e"]"#, TS + i)).collect();
    format!(
        r#"{{"streams":[{{"stream":{{"job":"many"}},"values":[{}]}}]}}"#,
        values.join(",")
    )
}

/// A protobuf entry message body: timestamp, line, then `extra` raw bytes of fields.
fn entry_bytes(line: &[u8], extra: &[u8]) -> Vec<u8> {
    let e = EntryAdapter {
        timestamp: Some(Timestamp {
            seconds: TS / 1_000_000_000,
            nanos: 0,
        }),
        line: Bytes::copy_from_slice(line),
        structured_metadata: vec![],
    };
    let mut out = prost::Message::encode_to_vec(&e);
    out.extend_from_slice(extra);
    out
}

/// A length-delimited protobuf field.
fn field(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![(tag << 3) | 2];
    let mut n = body.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// One stream `{job="amp"}` with one entry carrying `extra` raw bytes of fields.
fn one_entry_request(extra: &[u8]) -> Vec<u8> {
    labelled_request(br#"{job="amp"}"#, extra)
}

/// One stream with the label string `labels` and one entry carrying `extra` raw field bytes.
fn labelled_request(labels: &[u8], extra: &[u8]) -> Vec<u8> {
    let entry = entry_bytes(b"amplified", extra);
    let mut stream = field(1, labels);
    stream.extend(field(2, &entry));
    field(1, &stream)
}

fn assert_final(r: &Resp, status: u16, needle: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(r.body.contains(needle), "{what}: {}", r.body);
    assert!(
        r.headers.get("retry-after").is_none(),
        "{what}: a final answer must not invite a retry"
    );
}

fn assert_within(s: &Server, base: u64, budget: u64, what: &str) {
    let peak = s.peak_rss();
    assert!(
        peak <= base + budget + SLACK,
        "{what}: peak RSS {} MiB, over {} MiB at start + {} MiB budget + {} MiB",
        peak / MIB,
        base / MIB,
        budget / MIB,
        SLACK / MIB
    );
    eprintln!(
        "{what}: peak RSS {} MiB (start {} MiB)",
        peak / MIB,
        base / MIB
    );
}

fn small_push_ok(s: &Server, tag: &str) {
    let body =
        format!(r#"{{"streams":[{{"stream":{{"job":"ok"}},"values":[["{TS}","{tag}"]]}}]}}"#);
    let r = s.push_json(&s.token, &body);
    assert_eq!(r.status, 204, "{tag}: {}", r.body);
}

#[test]
fn amplifying_bodies_at_the_default_limits_are_refused_with_memory_bounded() {
    // Regression: a 3 MiB snappy body of 32 M empty streams took the server to 2.1-2.5 GB and
    // was answered 204; 65 KB of gzip JSON reached 1.3-1.6 GB; 10 M empty metadata pairs
    // about 700 MB; 7 M tiny JSON entries in 130 KB of gzip about 1 GB, then 503 (retried
    // forever); 150,000 JSON entries were accepted although protobuf stops at 100,000.
    let (_tmp, mut s) = start_with("");
    let base = s.rss();
    let json = "application/json";
    let proto = "application/x-protobuf";
    let streams = snappy(&[0x0a, 0x00].repeat(32_000_000));
    assert!(streams.len() < 4 * MIB as usize);
    let r = s.push(proto, None, streams);
    assert_final(&r, 413, "too large", "32 M empty streams");
    let mut empty = br#"{"streams":["#.to_vec();
    empty.extend(b"{},".repeat(8_000_000));
    empty.extend(b"{}]}");
    let r = s.push(json, Some("gzip"), gzip(&empty));
    assert_final(&r, 413, "too large", "8 M empty JSON streams, gzip");
    let pairs = one_entry_request(&[0x1a, 0x00].repeat(10_000_000));
    let r = s.push(proto, None, snappy(&pairs));
    assert_final(&r, 413, "too large", "10 M empty metadata pairs");
    let mut tiny = br#"{"streams":[{"stream":{"job":"t"},"values":["#.to_vec();
    tiny.extend(br#"["1","a"],"#.repeat(7_000_000));
    tiny.extend(br#"["1","a"]]}]}"#);
    let r = s.push(json, Some("gzip"), gzip(&tiny));
    assert_final(&r, 413, "too large", "7 M tiny JSON entries, gzip");
    let many = json_entries(150_000);
    let r = s.push_json(&s.token, &many);
    assert_final(&r, 413, "max_entries_per_request", "150,000 JSON entries");
    let four = vec![empty.clone(); 4];
    let handles: Vec<_> = four
        .into_iter()
        .map(|b| {
            let (addr, token) = (s.push, s.token.clone());
            std::thread::spawn(move || {
                let headers = [
                    ("authorization", format!("Bearer {token}")),
                    ("content-type", "application/json".to_string()),
                    ("content-encoding", "gzip".to_string()),
                ];
                common::server::request(addr, "POST", "/loki/api/v1/push", &headers, gzip(&b))
                    .status
            })
        })
        .collect();
    for h in handles {
        let status = h.join().unwrap();
        assert!(matches!(status, 413 | 429 | 503), "{status}");
    }
    assert_within(&s, base, 256 * MIB + 64 * MIB, "default limits");
    small_push_ok(&s, "after");
    assert!(s.child_alive());
    let data = s.data.clone();
    assert!(s.stop_mut().success());
    let lines: Vec<_> = pushed(&data).iter().map(|r| r.line.clone()).collect();
    assert_eq!(lines, vec![b"after".to_vec()], "nothing refused was stored");
}

#[test]
fn decoded_units_are_priced_before_they_are_built() {
    let (_tmp, mut s) = start_with(SMALL);
    let base = s.rss();
    let proto = "application/x-protobuf";
    // Up to the stream count, each stream priced: 2,000 empty streams pass (and store
    // nothing); one more is final.
    let r = s.push(proto, None, snappy(&[0x0a, 0x00].repeat(2000)));
    assert_eq!(r.status, 204, "2,000 empty streams: {}", r.body);
    let r = s.push(proto, None, snappy(&[0x0a, 0x00].repeat(2001)));
    assert_final(&r, 413, "max_streams_per_request", "2,001 empty streams");
    // 1.9 M metadata pairs fit the 4 MiB body, not the 32 MiB one push may hold.
    let r = s.push(
        proto,
        None,
        snappy(&one_entry_request(&[0x1a, 0x00].repeat(1_900_000))),
    );
    assert_final(&r, 413, "token_max_inflight_bytes", "1.9 M metadata pairs");
    // The same as JSON pairs, counted as the decoder meets them.
    let mut meta = br#"{"streams":[{"stream":{"job":"m"},"values":[["1","a",{"#.to_vec();
    for i in 0..250_000 {
        meta.extend(format!(r#""k{i}":"","#).as_bytes());
    }
    meta.extend(br#""z":""}]]}]}"#);
    let r = s.push("application/json", None, meta);
    assert_final(
        &r,
        413,
        "token_max_inflight_bytes",
        "250 k JSON metadata pairs",
    );
    // Parsed pairs are query-side: never decoded, so they cost nothing but their bytes.
    let r = s.push(
        proto,
        None,
        snappy(&one_entry_request(&[0x22, 0x00].repeat(1_900_000))),
    );
    assert_eq!(r.status, 204, "parsed pairs: {}", r.body);
    // A label string of 500 k pairs stops parsing at the first pair past the label limit.
    let labels = format!("{{{}}}", r#"a="b","#.repeat(500_000));
    let r = s.push(
        proto,
        None,
        snappy(&labelled_request(labels.as_bytes(), &[])),
    );
    assert_final(&r, 400, "more than 16 label names", "500 k label pairs");
    assert!(r.body.len() < 4096, "the 400 echoed {} bytes", r.body.len());
    // JSON entries over the count stop the decoder at the first one over.
    let many = json_entries(30_000);
    let r = s.push(
        "application/json",
        Some("deflate"),
        deflate(many.as_bytes()),
    );
    assert_final(&r, 413, "more than 20000 entries", "30,000 JSON entries");
    assert_within(&s, base, SMALL_BUDGET, "small limits");
    small_push_ok(&s, "after");
    assert!(s.stop_mut().success());
}

const ENCODINGS: &[Option<&str>] = &[
    None,
    Some("snappy"),
    Some("gzip"),
    Some("deflate"),
    Some("br"),
];
const CONTENT_TYPES: &[&str] = &[
    "application/x-protobuf",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
];

/// A string that is sometimes not UTF-8, sometimes a reserved or odd label value.
fn text(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let n = rng.below(40);
            rng.bytes(n)
        }
        1 => vec![0xff, 0xfe, b'x'],
        2 => "\u{202e}évil\u{0}".as_bytes().to_vec(),
        3 => b"x".repeat(rng.below(300_000)),
        _ => format!("v{}", rng.below(1000)).into_bytes(),
    }
}

fn random_proto(rng: &mut Rng) -> Vec<u8> {
    let streams = (0..1 + rng.below(5))
        .map(|_| {
            let labels = match rng.below(5) {
                0 => Bytes::from(text(rng)),
                1 => Bytes::from_static(b"{}"),
                2 => Bytes::from(format!("{{{}}}", "a=\"b\",".repeat(rng.below(50)))),
                _ => Bytes::from(format!("{{job=\"gen\", n=\"{}\"}}", rng.below(10))),
            };
            let entries = (0..rng.below(20))
                .map(|_| EntryAdapter {
                    timestamp: (!rng.one_in(8)).then(|| Timestamp {
                        seconds: TS / 1_000_000_000 + rng.below(100) as i64,
                        nanos: if rng.one_in(10) { -1 } else { 0 },
                    }),
                    line: Bytes::from(text(rng)),
                    structured_metadata: (0..rng.below(4))
                        .map(|_| LabelPairAdapter {
                            name: Bytes::from(text(rng)),
                            value: Bytes::from(text(rng)),
                        })
                        .collect(),
                })
                .collect();
            StreamAdapter {
                labels,
                entries,
                hash: 0,
            }
        })
        .collect();
    prost::Message::encode_to_vec(&PushRequest {
        streams,
        format: Bytes::new(),
    })
}

fn random_json(rng: &mut Rng) -> Vec<u8> {
    let lossy = |b: Vec<u8>| serde_json::Value::String(String::from_utf8_lossy(&b).into_owned());
    let mut streams = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let mut labels = serde_json::Map::new();
        for _ in 0..rng.below(5) {
            let k = String::from_utf8_lossy(&text(rng)).into_owned();
            labels.insert(k, lossy(text(rng)));
        }
        let values: Vec<serde_json::Value> = (0..rng.below(20))
            .map(|_| {
                let ts = serde_json::Value::String((TS + rng.below(1000) as i64).to_string());
                match rng.below(6) {
                    0 => serde_json::Value::Null,
                    1 => serde_json::json!([ts, lossy(text(rng)), {"k": lossy(text(rng))}]),
                    2 => serde_json::json!([1, "bad"]),
                    _ => serde_json::json!([ts, lossy(text(rng))]),
                }
            })
            .collect();
        streams.push(serde_json::json!({"stream": labels, "values": values}));
    }
    serde_json::to_vec(&serde_json::json!({ "streams": streams })).unwrap()
}

/// A shape that is cheap on the wire and expensive once decoded, or deeply nested.
fn amplifier(rng: &mut Rng, json: bool) -> Vec<u8> {
    let n = [1000, 100_000, 1_000_000, 1_900_000][rng.below(4)];
    match (json, rng.below(4)) {
        (false, 0) => [0x0a, 0x00].repeat(n),
        (false, 1) => one_entry_request(&[0x1a, 0x00].repeat(n)),
        (false, 2) => one_entry_request(&[0x22, 0x00].repeat(n)),
        (false, _) => {
            let mut v = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f];
            v.extend(rng.bytes(100));
            v
        }
        (true, 0) => format!(r#"{{"streams":[{}{{}}]}}"#, "{},".repeat(n)).into_bytes(),
        (true, 1) => format!(
            r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[{}["1","a"]]}}]}}"#,
            r#"["1","a"],"#.repeat(n / 2)
        )
        .into_bytes(),
        (true, 2) => format!(
            "{}1{}",
            "[".repeat(n.min(100_000)),
            "]".repeat(n.min(100_000))
        )
        .into_bytes(),
        (true, _) => format!(
            r#"{{"streams":[{{"stream":{{{}"a":"b"}},"values":[]}}]}}"#,
            r#""k":"v","#.repeat(n / 4)
        )
        .into_bytes(),
    }
}

fn corrupt(rng: &mut Rng, mut raw: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 if !raw.is_empty() => {
            let cut = rng.below(raw.len());
            raw.truncate(cut);
        }
        1 if !raw.is_empty() => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(raw.len());
                raw[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let n = rng.below(64);
            raw.extend(rng.bytes(n));
        }
        _ => {}
    }
    raw
}

fn encode(rng: &mut Rng, raw: Vec<u8>, encoding: Option<&str>) -> Vec<u8> {
    let body = match encoding {
        Some("gzip") => gzip(&raw),
        Some("deflate") => deflate(&raw),
        Some("br") => raw,
        _ => snappy(&raw),
    };
    if rng.one_in(6) {
        corrupt(rng, body)
    } else {
        body
    }
}

/// The answer is one the agents can act on: a 204, a final 4xx without `Retry-After`, or a
/// momentary 429/503 with it; never another 5xx.
fn assert_sane(r: &Resp, what: &str) {
    let retry = r.headers.get("retry-after").is_some();
    match r.status {
        204 => {}
        429 | 503 => assert!(retry, "{what}: {} without Retry-After", r.status),
        400 | 408 | 413 | 415 | 422 => {
            assert!(!retry, "{what}: final {} with Retry-After", r.status)
        }
        other => panic!("{what}: status {other}: {}", r.body),
    }
}

#[test]
fn generated_hostile_bodies_get_clear_answers_with_memory_bounded() {
    let (seed, cases) = seed_and_cases(300);
    let (_tmp, mut s) = start_with(SMALL);
    let base = s.rss();
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let content_type = *rng.pick(CONTENT_TYPES);
        let json = content_type.starts_with("application/json");
        let raw = match rng.below(3) {
            0 => amplifier(&mut rng, json),
            _ if json => random_json(&mut rng),
            _ => random_proto(&mut rng),
        };
        let raw = if rng.one_in(5) {
            corrupt(&mut rng, raw)
        } else {
            raw
        };
        let encoding = *rng.pick(ENCODINGS);
        // Protobuf is always snappy; JSON may be plain.
        let body = if json && encoding.is_none() {
            raw
        } else {
            encode(&mut rng, raw, encoding)
        };
        let what = format!(
            "seed {seed} case {case} ({content_type}, {encoding:?}, {} bytes)",
            body.len()
        );
        if body.len() > SMALL_MAX_BODY {
            // Refused on its declared length before a byte of it is read; a client still
            // writing it would only see the connection close.
            let r = declare_only(&s, content_type, body.len());
            assert_final(&r, 413, "max_body_bytes", &what);
            continue;
        }
        let r = s
            .try_push(content_type, encoding, body)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_sane(&r, &what);
        if case % 25 == 0 {
            assert!(
                s.child_alive(),
                "seed {seed} case {case}: the server is gone"
            );
        }
    }
    assert_within(
        &s,
        base,
        SMALL_BUDGET,
        &format!("seed {seed}, {cases} cases"),
    );
    small_push_ok(&s, "after");
    assert!(s.stop_mut().success());
}
