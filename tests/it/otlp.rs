//! OTLP/HTTP logs on the push listener, through the real server: both encodings map to the
//! same records as Loki maps them, the answers follow OTLP (a response message, a partial
//! success, a `google.rpc.Status` with a status OTLP senders retry only when a retry can
//! help), and the token's labels win. Hostile OTLP bodies are in `otlp_hostile`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::encode::gzip;
use common::server::{Resp, Server, pushed, request};
use daftari::push::otlp::proto::{
    AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList,
    LogRecord, Resource, ResourceLogs, ScopeLogs, Status, Value,
};

pub(crate) fn text(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

pub(crate) fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
    }
}

pub(crate) fn record(ts: u64, body: Option<AnyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: ts,
        body,
        ..Default::default()
    }
}

pub(crate) fn request_of(
    resource: Vec<KeyValue>,
    scope: Option<InstrumentationScope>,
    records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![ScopeLogs {
                scope,
                log_records: records,
            }],
        }],
    }
}

fn otlp(
    s: &Server,
    token: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Resp {
    let mut headers = vec![
        ("authorization", format!("Bearer {token}")),
        ("content-type", content_type.to_string()),
    ];
    if let Some(e) = encoding {
        headers.push(("content-encoding", e.to_string()));
    }
    request(s.push, "POST", "/otlp/v1/logs", &headers, body)
}

pub(crate) fn proto(s: &Server, token: &str, req: &ExportLogsServiceRequest) -> Resp {
    otlp(
        s,
        token,
        "application/x-protobuf",
        None,
        prost::Message::encode_to_vec(req),
    )
}

pub(crate) fn json(s: &Server, token: &str, body: &str) -> Resp {
    otlp(s, token, "application/json", None, body.as_bytes().to_vec())
}

/// An sshd failure as an OpenTelemetry SDK sends it, in protobuf.
fn sshd_request(ts: u64) -> ExportLogsServiceRequest {
    let mut r = record(
        ts,
        text("Failed password for root from 203.0.113.7 port 50022 ssh2"),
    );
    r.observed_time_unix_nano = ts + 5;
    r.severity_number = 13;
    r.severity_text = "WARN".into();
    r.trace_id = vec![0xab; 16];
    r.span_id = vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
    r.flags = 1;
    r.attributes = vec![
        kv("client.address", text("203.0.113.7")),
        kv(
            "user",
            Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("name", text("root")),
                        kv(
                            "id",
                            Some(AnyValue {
                                value: Some(Value::IntValue(0)),
                            }),
                        ),
                    ],
                })),
            }),
        ),
    ];
    let mut structured = record(ts + 1, None);
    structured.severity_number = 17;
    structured.body = Some(AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![
                kv("event", text("login")),
                kv(
                    "ok",
                    Some(AnyValue {
                        value: Some(Value::BoolValue(false)),
                    }),
                ),
                kv(
                    "tries",
                    Some(AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(Value::DoubleValue(1.5)),
                            }],
                        })),
                    }),
                ),
            ],
        })),
    });
    request_of(
        vec![
            kv("service.name", text("sshd")),
            kv("host.name", text("bastion-1")),
            kv("k8s.namespace.name", text("edge")),
        ],
        Some(InstrumentationScope {
            name: "auth".into(),
            version: "1.2".into(),
            attributes: vec![kv("scope.attr", text("x"))],
            dropped_attributes_count: 0,
        }),
        vec![r, structured],
    )
}

/// The same request in OTLP/JSON.
fn sshd_json(ts: u64) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"sshd"}}}},
            {{"key":"host.name","value":{{"stringValue":"bastion-1"}}}},
            {{"key":"k8s.namespace.name","value":{{"stringValue":"edge"}}}}]}},
          "scopeLogs":[{{"scope":{{"name":"auth","version":"1.2","attributes":[{{"key":"scope.attr","value":{{"stringValue":"x"}}}}]}},
            "logRecords":[
              {{"timeUnixNano":"{ts}","observedTimeUnixNano":"{obs}","severityNumber":13,"severityText":"WARN",
                "traceId":"abababababababababababababababab","spanId":"0102030405060708","flags":1,
                "body":{{"stringValue":"Failed password for root from 203.0.113.7 port 50022 ssh2"}},
                "attributes":[{{"key":"client.address","value":{{"stringValue":"203.0.113.7"}}}},
                  {{"key":"user","value":{{"kvlistValue":{{"values":[{{"key":"name","value":{{"stringValue":"root"}}}},{{"key":"id","value":{{"intValue":"0"}}}}]}}}}}}]}},
              {{"timeUnixNano":{ts1},"severityNumber":17,"body":{{"kvlistValue":{{"values":[{{"key":"event","value":{{"stringValue":"login"}}}},
                {{"key":"ok","value":{{"boolValue":false}}}},{{"key":"tries","value":{{"arrayValue":{{"values":[{{"doubleValue":1.5}}]}}}}}}]}}}}}}
            ]}}]}}]}}"#,
        obs = ts + 5,
        ts1 = ts + 1,
    )
}

fn pairs(p: &daftari::store::Pairs) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn both_encodings_store_the_records_loki_would() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let token = s.create_token("web-1", &["--label", "host=web-1"]);
    let ts = daftari::clock::now_ns() as u64 - 60_000_000_000;
    let r = proto(&s, &token, &sshd_request(ts));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/x-protobuf");
    assert!(
        r.body.is_empty(),
        "an empty ExportLogsServiceResponse: {:?}",
        r.body
    );
    let r = json(&s, &token, &sshd_json(ts + 10));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body, "{}");
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(got.len(), 4);
    let (p, j) = (&got[..2], &got[2..]);
    for (a, b) in p.iter().zip(j) {
        assert_eq!(a.line, b.line);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.ts_ns + 10, b.ts_ns);
        let strip = |m: &daftari::store::Pairs| {
            pairs(m)
                .into_iter()
                .filter(|(n, _)| n != "observed_timestamp")
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a.metadata), strip(&b.metadata));
    }
    let first = &got[0];
    assert_eq!(first.source, "web-1");
    assert_eq!(
        pairs(&first.labels),
        [
            ("host", "web-1"),
            ("k8s_namespace_name", "edge"),
            ("service_name", "sshd"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(first.ts_ns, ts as i64);
    assert_eq!(
        String::from_utf8_lossy(&first.line),
        "Failed password for root from 203.0.113.7 port 50022 ssh2"
    );
    let meta = pairs(&first.metadata);
    let get = |n: &str| meta.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("client_address"), Some("203.0.113.7"));
    assert_eq!(get("user_name"), Some("root"));
    assert_eq!(get("user_id"), Some("0"));
    assert_eq!(
        get("observed_timestamp"),
        Some((ts + 5).to_string().as_str())
    );
    assert_eq!(get("severity_number"), Some("13"));
    assert_eq!(get("severity_text"), Some("WARN"));
    assert_eq!(get("flags"), Some("1"));
    assert_eq!(get("trace_id"), Some("abababababababababababababababab"));
    assert_eq!(get("span_id"), Some("0102030405060708"));
    assert_eq!(get("host_name"), Some("bastion-1"));
    assert_eq!(get("scope_name"), Some("auth"));
    assert_eq!(get("scope_version"), Some("1.2"));
    assert_eq!(get("scope_attr"), Some("x"));
    assert_eq!(get("detected_level"), Some("warn"));
    let second = &got[1];
    assert_eq!(
        String::from_utf8_lossy(&second.line),
        r#"{"event":"login","ok":false,"tries":[1.5]}"#
    );
    // No level text: the severity number gives it, as in Loki.
    assert_eq!(second.metadata.get("detected_level"), Some("error"));
}

#[test]
fn the_tokens_labels_win_and_a_resource_without_labels_is_an_unknown_service() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let forced = s.create_token("auditd", &["--label", "service_name=auditd"]);
    let plain = s.create_token("plain", &[]);
    let ts = daftari::clock::now_ns() as u64 - 1_000_000_000;
    let req = request_of(
        vec![kv("service.name", text("spoofed"))],
        None,
        vec![record(ts, text("a"))],
    );
    assert_eq!(proto(&s, &forced, &req).status, 200);
    let req = request_of(
        vec![kv("os.type", text("linux"))],
        None,
        vec![record(ts, text("b"))],
    );
    assert_eq!(proto(&s, &plain, &req).status, 200);
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(got[0].labels.get("service_name"), Some("auditd"));
    assert_eq!(got[1].labels.get("service_name"), Some("unknown_service"));
    assert_eq!(got[1].metadata.get("os_type"), Some("linux"));
}

pub(crate) fn status_of(r: &Resp) -> Status {
    prost::Message::decode(&r.bytes[..]).unwrap()
}

#[test]
fn answers_follow_otlp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let ts = daftari::clock::now_ns() as u64 - 1_000_000_000;
    let ok = request_of(
        vec![kv("service.name", text("app"))],
        None,
        vec![record(ts, text("ok"))],
    );

    let r = otlp(&s, &s.token, "text/plain", None, b"x".to_vec());
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(status_of(&r).message.contains("application/x-protobuf"));

    let r = otlp(
        &s,
        "dft_wrong",
        "application/x-protobuf",
        None,
        prost::Message::encode_to_vec(&ok),
    );
    assert_eq!(r.status, 401);
    assert_eq!(status_of(&r).code, 16);

    let r = otlp(
        &s,
        &s.token,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&prost::Message::encode_to_vec(&ok)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let raw = prost::Message::encode_to_vec(&ok);
    let zst = zstd::stream::encode_all(&raw[..], 3).unwrap();
    let r = otlp(&s, &s.token, "application/x-protobuf", Some("zstd"), zst);
    assert_eq!(r.status, 200, "{}", r.body);
    // A zstd frame that asks for a 64 MiB window (zstd's own decoder allows 128 MiB) is
    // refused before a decoder allocates it.
    let greedy = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80, 0x09, 0x00, 0x00, b'x'].to_vec();
    let r = otlp(&s, &s.token, "application/x-protobuf", Some("zstd"), greedy);
    assert_eq!(r.status, 400, "{}", status_of(&r).message);
    assert!(status_of(&r).message.contains("invalid zstd body"));
    let r = otlp(
        &s,
        &s.token,
        "application/x-protobuf",
        Some("snappy"),
        prost::Message::encode_to_vec(&ok),
    );
    assert_eq!(r.status, 400);

    let r = json(&s, &s.token, "{}");
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));

    // One record too far in the future: the other is stored, and the answer says so.
    let future = ts + 3_600_000_000_000;
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[
            {{"timeUnixNano":"{ts}","body":{{"stringValue":"kept"}}}},
            {{"timeUnixNano":"{future}","body":{{"stringValue":"refused"}}}}]}}]}}]}}"#
    );
    let r = json(&s, &s.token, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("timestamp too new")
    );

    // Every record refused: a 400 with a Status, which a sender does not retry.
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{future}","body":{{"stringValue":"x"}}}}]}}]}}]}}"#
    );
    let r = json(&s, &s.token, &body);
    assert_eq!(r.status, 400, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["code"], 3);

    let r = json(
        &s,
        &s.token,
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalid hex id"), "{}", r.body);

    // A string that is not UTF-8 fails its request alone.
    let mut raw = prost::Message::encode_to_vec(&ok);
    let at = raw.windows(2).position(|w| w == b"ok").unwrap();
    raw[at] = 0xff;
    let r = otlp(&s, &s.token, "application/x-protobuf", None, raw);
    assert_eq!(r.status, 400);
    assert_eq!(proto(&s, &s.token, &ok).status, 200);

    let data = s.data.clone();
    assert!(s.stop().success());
    let lines: Vec<String> = pushed(&data)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    assert_eq!(lines, ["ok", "ok", "kept", "ok"]);
}
