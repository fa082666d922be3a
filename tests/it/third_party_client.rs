//! Third-party clients log to the real server: a Loki client from PyPI (python-logging-loki,
//! JSON push with Basic auth, the secret as the password), and the OpenTelemetry SDKs' OTLP/HTTP
//! log exporters (Python from PyPI, protobuf and JSON; JavaScript from npm, JSON). What each
//! sent is in the ledger and comes back from a query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::server::{Server, pushed, request};

/// A file of `tests/spec/`.
fn spec(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/spec")
        .join(name)
}

/// Runs `client` with the URL of `path` on the push listener and `token` as its last two
/// arguments; a failure fails the test with the client's stderr.
fn run_client(mut client: Command, s: &Server, path: &str, token: &str) {
    let out = client
        .arg(format!("http://{}{path}", s.push))
        .arg(token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_logging_loki_pushes_into_the_ledger() {
    let python = common::python_venv(
        "pyclient-venv",
        "python-logging-loki==0.3.1",
        "logging_loki",
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let mut client = Command::new(python);
    client.arg(spec("python_loki_client.py"));
    run_client(client, &s, "/loki/api/v1/push", &s.token);
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    let lines: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "Failed password for root from 203.0.113.9 port 52144 ssh2",
            "session opened for user ops",
            "unicode \u{e9} \u{2603} line",
        ]
    );
    assert!(
        got.iter()
            .all(|r| r.labels.get("job") == Some("python-client") && r.source == "bootstrap")
    );
    assert_eq!(got[0].labels.get("severity"), Some("warning"));
    assert_eq!(got[1].labels.get("unit"), Some("sshd"));
}

#[test]
fn opentelemetry_python_sdk_exports_protobuf_into_a_query() {
    otel_python("protobuf");
}

#[test]
fn opentelemetry_python_sdk_exports_json_into_a_query() {
    otel_python("json");
}

/// The OpenTelemetry Python SDK's OTLP/HTTP log exporter in `encoding` (gzip) sends to
/// `/otlp/v1/logs` with a push token; a LogQL query over the local listener reads the lines
/// back with the labels and metadata Loki would give them.
fn otel_python(encoding: &str) {
    // The two exporters pin different versions of their shared packages: one venv each.
    let python = match encoding {
        "json" => common::python_venv(
            "otel-python-json-venv",
            "opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-json-http==0.66b1",
            "opentelemetry.exporter.otlp.json.http._log_exporter",
        ),
        _ => common::python_venv(
            "otel-python-venv",
            "opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2",
            "opentelemetry.exporter.otlp.proto.http._log_exporter",
        ),
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let token = s.create_token("app-1", &["--label", "host=app-1"]);
    let mut client = Command::new(python);
    client.arg(spec("otel_python_client.py")).arg(encoding);
    run_client(client, &s, "/otlp/v1/logs", &token);
    let q = format!(
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22otel-python-{encoding}%22%7D&since=1h"
    );
    let r = request(s.local, "GET", &q, &[], Vec::new());
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    let mut lines = Vec::new();
    for stream in result {
        assert_eq!(stream["stream"]["host"], "app-1", "{stream}");
        for value in stream["values"].as_array().unwrap() {
            lines.push(value[1].as_str().unwrap().to_string());
        }
    }
    lines.sort();
    assert_eq!(
        lines,
        [
            "Failed password for root from 203.0.113.9 port 52144 ssh2",
            "session opened for user ops",
            "unicode \u{e9} \u{2603} line",
        ]
    );
    let data = s.data.clone();
    assert!(s.stop().success());
    let got = pushed(&data);
    assert!(got.iter().all(|r| r.source == "app-1"));
    let warn = got
        .iter()
        .find(|r| r.line.starts_with(b"Failed password"))
        .unwrap();
    assert_eq!(warn.metadata.get("severity_text"), Some("WARN"));
    assert_eq!(warn.metadata.get("detected_level"), Some("warn"));
    assert_eq!(warn.metadata.get("client_address"), Some("203.0.113.9"));
    assert_eq!(warn.metadata.get("host_name"), Some("app-1"));
    assert_eq!(warn.metadata.get("scope_name"), Some("auth"));
}

/// The OpenTelemetry JavaScript SDK's OTLP/HTTP log exporter, which sends OTLP/JSON, pushes
/// to `/otlp/v1/logs`; a query reads every record back, a map body as its JSON.
#[test]
fn opentelemetry_js_sdk_exports_json_into_a_query() {
    let dir = common::node_modules(
        "otel-js",
        &[
            "@opentelemetry/sdk-logs@0.223.1",
            "@opentelemetry/exporter-logs-otlp-http@0.223.1",
            "@opentelemetry/api-logs@0.223.1",
            "@opentelemetry/resources@2.12.1",
        ],
    );
    let script = dir.join("otel_js_client.mjs");
    std::fs::copy(spec("otel_js_client.mjs"), &script).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let token = s.create_token("app-2", &["--label", "host=app-2"]);
    let mut client = Command::new("node");
    client.arg(&script).current_dir(&dir);
    run_client(client, &s, "/otlp/v1/logs", &token);
    let q = "/loki/api/v1/query_range?query=%7Bservice_name%3D%22otel-js%22%2C%20host%3D%22app-2%22%7D%20%7C%20detected_level%3D%22warn%22&since=1h";
    let r = request(s.local, "GET", q, &[], Vec::new());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("Failed password for root from 203.0.113.10 port 40022 ssh2"),
        "{}",
        r.body
    );
    let data = s.data.clone();
    assert!(s.stop().success());
    // The SDK exports each record on its own request, so they may arrive in any order.
    let mut got = pushed(&data);
    got.sort_by(|a, b| a.line.cmp(&b.line));
    let lines: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.line).into_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "Failed password for root from 203.0.113.10 port 40022 ssh2",
            "unicode \u{e9} \u{2603} line",
            r#"{"event":"login","user":"ops"}"#,
        ]
    );
    assert_eq!(got[0].metadata.get("attempt"), Some("3"));
    assert_eq!(got[0].metadata.get("scope_version"), Some("2.0"));
    assert_eq!(got[1].metadata.get("severity_number"), Some("17"));
    assert_eq!(got[2].metadata.get("detected_level"), Some("info"));
}
