//! The read plane end to end: a real server, entries pushed through the push listener, and
//! the requests Grafana and logcli send answered through the local listener; golden JSON for
//! every endpoint and result type in both encodings; the remote read listener and its read
//! tokens; the audit stream; live tail; the query timeout.
//!
//! Golden files live in `tests/golden/query/`; `DAFTARI_BLESS=1 cargo test --test query_api`
//! rewrites them (review the diff before committing).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use crate::common;

use std::net::SocketAddr;
use std::path::Path;

use common::server::{Resp, Server, request};
use serde_json::{Value, json};

/// 2025-08-05T13:20:00Z, in seconds: the pushed entries sit just after it.
const T: i64 = 1_754_400_000;
const S: i64 = 1_000_000_000;

fn ns(sec: i64) -> String {
    ((T + sec) * S).to_string()
}

/// Pushes the fixed data set through the push listener.
fn push_data(s: &Server) {
    let body = json!({"streams": [
        {"stream": {"job": "sshd", "host": "a"}, "values": [
            [ns(1), "Failed password for root from 10.0.0.1 port 22 ssh2"],
            [ns(2), "Accepted publickey for ops from 192.168.1.5 port 22 ssh2", {"trace_id": "abc"}],
            [ns(3), "error: PAM authentication failure for root"]
        ]},
        {"stream": {"job": "sshd", "host": "b"}, "values": [
            [ns(2), "Failed password for admin from 203.0.113.9 port 22 ssh2"]
        ]},
        {"stream": {"job": "app", "env": "prod"}, "values": [
            [ns(1), "level=info msg=ok user=alice"],
            [ns(4), "level=error msg=boom user=bob"]
        ]}
    ]});
    let r = s.push_json(&s.token, &body.to_string());
    assert_eq!(r.status, 204, "{}", r.body);
}

fn start() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    push_data(&s);
    (tmp, s)
}

fn enc(params: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

fn get(addr: SocketAddr, path: &str, params: &[(&str, &str)], headers: &[(&str, String)]) -> Resp {
    let sep = if path.contains('?') { '&' } else { '?' };
    request(
        addr,
        "GET",
        &format!("{path}{sep}{}", enc(params)),
        headers,
        Vec::new(),
    )
}

fn json_of(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

const CATEGORIZE: (&str, &str) = ("X-Loki-Response-Encoding-Flags", "categorize-labels");

fn categorized() -> Vec<(&'static str, String)> {
    vec![(CATEGORIZE.0, CATEGORIZE.1.to_string())]
}

/// Compares a response with its golden file (stats removed: they hold timings).
fn golden(name: &str, r: &Resp) {
    let mut v = json_of(r);
    if let Some(d) = v.get_mut("data").and_then(Value::as_object_mut) {
        d.remove("stats");
    }
    let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/query/{name}.json"));
    if std::env::var_os("DAFTARI_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with DAFTARI_BLESS=1 to create)",
            path.display()
        )
    });
    assert_eq!(
        text,
        want,
        "{name}: response differs from {}",
        path.display()
    );
}

fn range(q: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("query", q.to_string()),
        ("start", ns(0)),
        ("end", ns(10)),
        ("step", "2000ms".to_string()),
    ];
    p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    p
}

fn get_owned(
    addr: SocketAddr,
    path: &str,
    params: &[(&'static str, String)],
    headers: &[(&str, String)],
) -> Resp {
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    get(addr, path, &p, headers)
}

#[test]
fn golden_answers_for_every_endpoint_and_result_type() {
    let (_tmp, s) = start();
    let l = s.local;
    let logs = range(
        r#"{job="sshd"}"#,
        &[("limit", "1000"), ("direction", "backward")],
    );
    golden(
        "streams",
        &get_owned(l, "/loki/api/v1/query_range", &logs, &[]),
    );
    golden(
        "streams_categorized",
        &get_owned(l, "/loki/api/v1/query_range", &logs, &categorized()),
    );
    let parsed = range(
        r#"{job="app"} | logfmt | level="error""#,
        &[("direction", "forward")],
    );
    golden(
        "streams_parsed",
        &get_owned(l, "/loki/api/v1/query_range", &parsed, &[]),
    );
    golden(
        "streams_parsed_categorized",
        &get_owned(l, "/loki/api/v1/query_range", &parsed, &categorized()),
    );
    let volume = range(
        r#"sum by (level, detected_level) (count_over_time({job="sshd"} | drop __error__[2s]))"#,
        &[("limit", "1000")],
    );
    golden(
        "matrix_log_volume",
        &get_owned(l, "/loki/api/v1/query_range", &volume, &categorized()),
    );
    let inst = |q: &str| vec![("query", q.to_string()), ("time", ns(10))];
    golden(
        "vector",
        &get_owned(
            l,
            "/loki/api/v1/query",
            &inst(r#"sum by (host) (count_over_time({job="sshd"}[1m]))"#),
            &[],
        ),
    );
    golden(
        "scalar",
        &get_owned(l, "/loki/api/v1/query", &inst("1 + 1"), &[]),
    );
    let b = [("start", ns(0)), ("end", ns(10))];
    golden("labels", &get_owned(l, "/loki/api/v1/labels", &b, &[]));
    let mut with_q = b.to_vec();
    with_q.push(("query", r#"{job="sshd"}"#.into()));
    golden(
        "labels_with_query",
        &get_owned(l, "/loki/api/v1/labels", &with_q, &[]),
    );
    golden(
        "label_values",
        &get_owned(l, "/loki/api/v1/label/host/values", &with_q, &[]),
    );
    let mut series = b.to_vec();
    series.push(("match[]", r#"{job="sshd"}"#.into()));
    golden("series", &get_owned(l, "/loki/api/v1/series", &series, &[]));
    golden(
        "index_stats",
        &get_owned(l, "/loki/api/v1/index/stats", &with_q, &[]),
    );
    let mut vol = b.to_vec();
    vol.push(("query", r#"{job=~".+"}"#.into()));
    vol.push(("targetLabels", "job".into()));
    golden(
        "index_volume",
        &get_owned(l, "/loki/api/v1/index/volume", &vol, &[]),
    );
    vol.push(("step", "5s".into()));
    golden(
        "index_volume_range",
        &get_owned(l, "/loki/api/v1/index/volume_range", &vol, &[]),
    );
    golden(
        "format_query",
        &get(
            l,
            "/loki/api/v1/format_query",
            &[("query", r#"sum(rate({job="sshd"}[5m])) by (host)"#)],
            &[],
        ),
    );
    golden(
        "prometheus_rules",
        &get(l, "/prometheus/api/v1/rules", &[], &[]),
    );
}

#[test]
fn grafana_health_check_and_explore_requests() {
    let (_tmp, s) = start();
    let l = s.local;
    // Save & test: exactly what Grafana sends; one sample, value 2, and key order.
    let r = request(
        l,
        "GET",
        "/loki/api/v1/query?direction=backward&query=vector%281%29%2Bvector%281%29&time=4000000000",
        &[],
        Vec::new(),
    );
    assert!(
        r.body.starts_with(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":["#
        ),
        "{}",
        r.body
    );
    let v = json_of(&r);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["result"][0]["value"][1], "2");
    // Explore, categorized: the flags come before the result, every entry has 3 elements,
    // stream labels are indexed labels only, detected_level and service_name were added.
    let logs = range(
        r#"{job="sshd"}"#,
        &[("limit", "1000"), ("direction", "backward")],
    );
    let r = get_owned(l, "/loki/api/v1/query_range", &logs, &categorized());
    assert!(
        r.body
            .contains(r#""resultType":"streams","encodingFlags":["categorize-labels"],"result":"#)
    );
    let v = json_of(&r);
    for stream in v["data"]["result"].as_array().unwrap() {
        assert_eq!(stream["stream"]["service_name"], "sshd");
        assert!(stream["stream"].get("detected_level").is_none());
        for entry in stream["values"].as_array().unwrap() {
            assert_eq!(entry.as_array().unwrap().len(), 3, "{entry}");
            assert!(
                entry[0]
                    .as_str()
                    .unwrap()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            );
            assert!(entry[2]["structuredMetadata"]["detected_level"].is_string());
        }
    }
    // Without the flag: 2 elements, metadata folded into the stream labels.
    let v = json_of(&get_owned(l, "/loki/api/v1/query_range", &logs, &[]));
    assert!(v["data"].get("encodingFlags").is_none());
    for stream in v["data"]["result"].as_array().unwrap() {
        assert!(stream["stream"]["detected_level"].is_string());
        for entry in stream["values"].as_array().unwrap() {
            assert_eq!(entry.as_array().unwrap().len(), 2);
        }
    }
    // The log-volume query Grafana adds: coloured by detected_level.
    let volume = range(
        r#"sum by (level, detected_level) (count_over_time({job="sshd"} | drop __error__[2s]))"#,
        &[],
    );
    let v = json_of(&get_owned(
        l,
        "/loki/api/v1/query_range",
        &volume,
        &categorized(),
    ));
    let levels: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["detected_level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "unknown"]);
    // Show context: forward from a row, limit 10.
    let ctx = vec![
        ("query", r#"{host="a", job="sshd"}"#.to_string()),
        ("start", ns(2)),
        ("end", ns(10)),
        ("limit", "10".into()),
        ("direction", "forward".into()),
    ];
    let v = json_of(&get_owned(l, "/loki/api/v1/query_range", &ctx, &[]));
    let lines: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[1].as_str().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("Accepted"));
    // logcli: float-second steps, `interval` (one entry per interval per stream) and
    // `series?match=`.
    let thin = vec![
        (
            "query",
            r#"{host="a", job="sshd"} | drop detected_level, trace_id"#.to_string(),
        ),
        ("start", ns(0)),
        ("end", ns(10)),
        ("step", "0.5".into()),
        ("interval", "2".into()),
        ("direction", "forward".into()),
    ];
    let v = json_of(&get_owned(l, "/loki/api/v1/query_range", &thin, &[]));
    let mut kept: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[0].as_str().unwrap())
        })
        .collect();
    kept.sort();
    // One stream once metadata is dropped: +2 is within 2 s of +1, +3 is not.
    assert_eq!(kept, [ns(1), ns(3)]);
    let v = json_of(&get(
        l,
        "/loki/api/v1/series",
        &[
            ("match", r#"{host="b"}"#),
            ("start", &ns(0)),
            ("end", &ns(10)),
        ],
        &[],
    ));
    assert_eq!(
        v["data"],
        json!([{"host": "b", "job": "sshd", "service_name": "sshd"}])
    );
    // POST with a form body, under a path prefix.
    let form = enc(&[
        ("query", r#"count_over_time({job="app"}[10s])"#),
        ("time", &ns(10)),
    ]);
    // (T, T+10] holds the app's lines at +1 and +4.
    let r = request(
        l,
        "POST",
        "/grafana/daftari/loki/api/v1/query",
        &[("content-type", "application/x-www-form-urlencoded".into())],
        form.into_bytes(),
    );
    // Two series: detected_level (info, error) is part of each entry's labels.
    let v = json_of(&r);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);
    // The ruler answers empty.
    let r = get(l, "/loki/api/v1/rules", &[], &[]);
    assert_eq!((r.status, r.body.as_str()), (404, "no rule groups found\n"));
    // The Loki release whose read API daftari serves, with daftari's own version as semver
    // build metadata, so Grafana's version checks read 3.6.0.
    let version = json_of(&get(l, "/loki/api/v1/status/buildinfo", &[], &[]))["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(version.starts_with("3.6.0+daftari."), "{version}");
    assert_eq!(
        json_of(&get(
            l,
            "/loki/api/v1/label/__stream_shard__/values",
            &[],
            &[]
        ))["data"],
        json!([])
    );
}

#[test]
fn bad_requests_get_lokis_status_and_text() {
    let (_tmp, s) = start();
    let l = s.local;
    let cases: Vec<(&str, Vec<(&str, String)>, u16, &str)> = vec![
        (
            "/loki/api/v1/query",
            vec![("query", r#"{job="sshd"}"#.into())],
            400,
            "log queries are not supported as an instant query type, please change your query to a range query type",
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("limit", "5001".into()),
            ],
            400,
            "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", r#"{job="sshd"}"#.into()), ("limit", "0".into())],
            400,
            "limit must be a positive value",
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("direction", "up".into()),
            ],
            400,
            "invalid direction 'up'",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", r#"{job="sshd"}"#.into()), ("step", "-1".into())],
            400,
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("start", ns(0)),
                ("end", ns(3600)),
                ("step", "100ms".into()),
            ],
            400,
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("start", "yesterday".into()),
            ],
            400,
            "invalid start parameter: cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", r#"{job="sshd""#.into())],
            400,
            "parse error at line 1, col 12: syntax error: unexpected $end, expecting }",
        ),
        (
            "/loki/api/v1/series",
            vec![("match[]", r#"{job="sshd"} |= "x""#.into())],
            400,
            "only label matchers are supported",
        ),
        (
            "/loki/api/v1/index/volume",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("aggregateBy", "pods".into()),
            ],
            400,
            "invalid aggregation option",
        ),
        (
            "/loki/api/v1/tail",
            vec![
                ("query", r#"{job="sshd"}"#.into()),
                ("delay_for", "6".into()),
            ],
            400,
            "delay_for can't be greater than 5",
        ),
    ];
    for (path, params, status, text) in cases {
        let r = get_owned(l, path, &params, &[]);
        assert_eq!(
            (r.status, r.body.trim_end()),
            (status, text),
            "{path} {params:?}"
        );
        let ct = r.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(ct.starts_with("text/plain"), "{ct}");
    }
    let r = get(l, "/loki/api/v1/format_query", &[("query", "sum(")], &[]);
    assert_eq!(r.status, 400);
    assert_eq!(
        json_of(&Resp { status: 200, ..r })["status"],
        "invalid-query"
    );
    // The local listener has no push, delete or admin routes for anyone.
    for (method, path) in [
        ("POST", "/loki/api/v1/push"),
        ("POST", "/loki/api/v1/delete"),
        ("DELETE", "/loki/api/v1/delete"),
    ] {
        assert_eq!(
            request(l, method, path, &[], Vec::new()).status,
            404,
            "{method} {path}"
        );
    }
}

fn remote_config(dir: &Path) -> String {
    let path = dir.join("daftari.toml");
    std::fs::write(&path, "[query]\nremote_listen = \"127.0.0.1:0\"\n").unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn the_remote_listener_serves_reads_to_read_tokens_only() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = remote_config(tmp.path());
    let s = Server::start(&tmp.path().join("data"), &["--config", &cfg]);
    push_data(&s);
    let remote = s.remote.expect("remote listener");
    let reader = s.create_token("grafana", &["--read"]);
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    let (t0, t10) = (ns(0), ns(10));
    let labels = [("start", t0.as_str()), ("end", t10.as_str())];
    // A read token reads; no token, a push token or a wrong secret do not.
    // The server picks up a new token within a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let r = loop {
        let r = get(remote, "/loki/api/v1/labels", &labels, &bearer(&reader));
        if r.status != 401 || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        json_of(&r)["data"]
            .as_array()
            .unwrap()
            .contains(&json!("job"))
    );
    assert_eq!(get(remote, "/loki/api/v1/labels", &labels, &[]).status, 401);
    let r = get(remote, "/loki/api/v1/labels", &labels, &bearer(&s.token));
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "invalid or revoked read token\n")
    );
    assert_eq!(
        get(remote, "/loki/api/v1/labels", &labels, &bearer("dft_wrong")).status,
        401
    );
    // Basic auth with the secret as the password, as Grafana's data source sends it.
    let basic = base64_basic("grafana", &reader);
    assert_eq!(
        get(
            remote,
            "/loki/api/v1/labels",
            &labels,
            &[("authorization", basic)]
        )
        .status,
        200
    );
    // A read token cannot push.
    let r = s.push_json(
        &reader,
        r#"{"streams":[{"stream":{"job":"x"},"values":[["1","x"]]}]}"#,
    );
    assert_eq!(r.status, 401);
    // The remote listener has the read API only: no push, metrics or deletes.
    for (method, path) in [
        ("POST", "/loki/api/v1/push"),
        ("GET", "/metrics"),
        ("POST", "/loki/api/v1/delete"),
    ] {
        let r = request(remote, method, path, &bearer(&reader), Vec::new());
        assert!(
            r.status == 404 || r.status == 405,
            "{method} {path}: {}",
            r.status
        );
    }
    // Revocation takes effect.
    s.revoke_token("grafana");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get(remote, "/loki/api/v1/labels", &labels, &bearer(&reader)).status != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "revoked read token still accepted"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Every read was recorded, with its principal, in the reserved audit stream.
    let audit = range(r#"{__daftari__="audit"}"#, &[]);
    let mut audit = audit;
    audit[1] = ("start", "0".into());
    audit[2] = ("end", (i64::MAX / 2).to_string());
    audit.retain(|(k, _)| *k != "step");
    let v = json_of(&get_owned(s.local, "/loki/api/v1/query_range", &audit, &[]));
    let lines: Vec<String> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[1].as_str().unwrap().to_owned())
        .collect();
    let by_grafana: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("principal=grafana"))
        .collect();
    let label_reads = by_grafana
        .iter()
        .filter(|l| l.contains("endpoint=/loki/api/v1/labels"))
        .count();
    // Two reads above, and those made while the revocation was being picked up.
    assert!(label_reads >= 2, "{lines:#?}");
    assert!(by_grafana.iter().all(|l| l.contains("listener=remote")));
    // Probes of routes that do not exist are on the record too.
    assert!(
        by_grafana
            .iter()
            .any(|l| l.contains("endpoint=/metrics status=404")),
        "{by_grafana:#?}"
    );
    // Nobody can push into the reserved streams.
    let forged = r#"{"streams":[{"stream":{"__daftari__":"audit"},"values":[["1","forged"]]}]}"#;
    assert_eq!(s.push_json(&s.token, forged).status, 400);
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn local_reads_are_recorded_with_query_and_range() {
    let (_tmp, s) = start();
    let q = r#"count_over_time({job="sshd"} |= "Failed" [1m])"#;
    json_of(&get(
        s.local,
        "/loki/api/v1/query",
        &[("query", q), ("time", &ns(10))],
        &[],
    ));
    let data = s.data.clone();
    s.stop();
    let audit: Vec<String> = common::server::records(&data)
        .into_iter()
        .filter(|r| r.labels.get("__daftari__") == Some("audit"))
        .map(|r| String::from_utf8(r.line).unwrap())
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let l = &audit[0];
    assert!(l.starts_with("principal=local listener=local method=GET endpoint=/loki/api/v1/query status=200 results=2"), "{l}");
    assert!(
        l.contains(r#"query="count_over_time({job=\"sshd\"} |= \"Failed\" [1m])""#),
        "{l}"
    );
    assert!(
        l.contains("start=2025-08-05T13:20:10.000000000Z end=2025-08-05T13:20:10.000000000Z"),
        "{l}"
    );
    assert_eq!(common::verify(&data).code, 0);
}

#[test]
fn the_label_browser_hides_internal_labels_unless_asked_for() {
    let (_tmp, s) = start();
    // One read, so that the audit stream `{__daftari__="audit"}` has an entry now.
    json_of(&get(s.local, "/loki/api/v1/labels", &[], &[]));
    let values = |q: &[(&str, &str)]| -> Vec<String> {
        let v = json_of(&get(
            s.local,
            "/loki/api/v1/label/__daftari__/values",
            q,
            &[],
        ));
        serde_json::from_value(v["data"].clone()).unwrap()
    };
    let t = std::time::Instant::now();
    while !values(&[]).contains(&"audit".to_string()) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "no audit entry"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let names = |q: &[(&str, &str)]| -> Vec<String> {
        let v = json_of(&get(s.local, "/loki/api/v1/labels", q, &[]));
        serde_json::from_value(v["data"].clone()).unwrap()
    };
    let all = names(&[]);
    assert!(!all.iter().any(|n| n.starts_with("__")), "{all:?}");
    let audit = names(&[("query", r#"{__daftari__="audit"}"#)]);
    assert!(audit.contains(&"__daftari__".to_string()), "{audit:?}");
}

#[test]
fn live_tail_replays_then_streams_new_entries() {
    use futures_util::StreamExt;
    let (_tmp, s) = start();
    let url = format!(
        "ws://{}/loki/api/v1/tail?{}",
        s.local,
        enc(&[("query", r#"{job="tail"} |= "keep""#), ("start", &ns(0))])
    );
    common::server::block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let line = format!("keep me {}", std::process::id());
        let body = json!({"streams": [{"stream": {"job": "tail"}, "values": [
            [daftari::clock::now_ns().to_string(), line], [daftari::clock::now_ns().to_string(), "drop me"]]}]});
        let push = s.push;
        let token = s.token.clone();
        let text = body.to_string();
        tokio::task::spawn_blocking(move || {
            let r = request(
                push,
                "POST",
                "/loki/api/v1/push",
                &[
                    ("authorization", format!("Bearer {token}")),
                    ("content-type", "application/json".into()),
                ],
                text.into_bytes(),
            );
            assert_eq!(r.status, 204);
        })
        .await
        .unwrap();
        let (mut pings, mut got) = (0, None);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.is_none() || pings == 0 {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("tail frames");
            match msg.map(Result::unwrap) {
                Some(tokio_tungstenite::tungstenite::Message::Ping(_)) => pings += 1,
                Some(tokio_tungstenite::tungstenite::Message::Text(t)) => got = Some(t.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let v: Value = serde_json::from_str(&got.unwrap()).unwrap();
        let values = &v["streams"][0]["values"];
        assert_eq!(values.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(values[0][1], line);
        assert_eq!(v["streams"][0]["stream"]["job"], "tail");
    });
}

#[test]
fn a_query_past_its_timeout_answers_504() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("daftari.toml");
    std::fs::write(&cfg, "[query]\ntimeout = \"1ms\"\n").unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    for chunk in 0..5 {
        let values: Vec<Value> = (0..4000)
            .map(|i| json!([ns(chunk * 4000 + i), format!("line {i} of a long scan")]))
            .collect();
        let body = json!({"streams": [{"stream": {"job": "bulk"}, "values": values}]});
        assert_eq!(s.push_json(&s.token, &body.to_string()).status, 204);
    }
    let p = [
        (
            "query",
            r#"count_over_time({job="bulk"} |~ "line [0-9]+ of" [1d])"#,
        ),
        ("time", &ns(30_000)),
    ];
    let r = get(s.local, "/loki/api/v1/query", &p, &[]);
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(
        r.body,
        "request timed out, decrease the duration of the request or add more label matchers \
         (prefer exact match over regex match) to reduce the amount of data processed\n"
    );
}

#[test]
fn a_query_over_its_memory_limit_answers_400_and_smaller_ones_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("daftari.toml");
    std::fs::write(&cfg, "[query]\nmax_memory_bytes = 32768\n").unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let values: Vec<Value> = (0..200)
        .map(|i| json!([ns(i), format!("{i} {}", "z".repeat(1000))]))
        .collect();
    let body = json!({"streams": [{"stream": {"job": "big"}, "values": values}]});
    assert_eq!(s.push_json(&s.token, &body.to_string()).status, 204);
    let over = |r: &Resp| {
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("query.max_memory_bytes"), "{}", r.body);
    };
    let logs = |limit: &str| {
        let p = [
            ("query", r#"{job="big"}"#),
            ("start", &ns(0)),
            ("end", &ns(300)),
            ("limit", limit),
        ];
        get(s.local, "/loki/api/v1/query_range", &p, &[])
    };
    // 100 lines of 1 KiB do not fit in 32 KiB; 10 do, and come back whole.
    over(&logs("100"));
    let v = json_of(&logs("10"));
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        10
    );
    let metric = |q: &str| {
        let p = [("query", q), ("time", &ns(300))];
        get(s.local, "/loki/api/v1/query", &p, &[])
    };
    // One series per line is too many windows to hold; one series is not.
    over(&metric(
        r#"count_over_time({job="big"} | regexp "^(?P<n>[0-9]+) " [1h])"#,
    ));
    let v = json_of(&metric(r#"count_over_time({job="big"}[1h])"#));
    assert_eq!(v["data"]["result"][0]["value"][1], "200");
    // Patterns: 300 lines that share no word are 300 clusters, more than 32 KiB to hold; 40
    // lines of one kind are one cluster, which fits.
    let word = |i: usize, k: usize| -> String {
        (0..6)
            .map(|d| char::from(b'a' + ((i * 7 + k * 3 + d) % 26) as u8))
            .collect::<String>()
            + &"q".repeat(i % 5 + k)
    };
    let varied: Vec<Value> = (0..300)
        .map(|i| {
            let line: Vec<String> = (0..4).map(|k| word(i, k)).collect();
            json!([ns(i as i64), line.join(" ")])
        })
        .collect();
    let alike: Vec<Value> = (0..40)
        .map(|i| json!([ns(i), format!("session opened for user u{i} by uid 0")]))
        .collect();
    let body = json!({"streams": [
        {"stream": {"job": "varied"}, "values": varied},
        {"stream": {"job": "alike"}, "values": alike}
    ]});
    assert_eq!(s.push_json(&s.token, &body.to_string()).status, 204);
    let patterns = |job: &str| {
        let q = format!(r#"{{job="{job}"}}"#);
        let p = [
            ("query", q.as_str()),
            ("start", &ns(0)),
            ("end", &ns(300)),
            ("step", "60s"),
        ];
        get(s.local, "/loki/api/v1/patterns", &p, &[])
    };
    over(&patterns("varied"));
    let v = json_of(&patterns("alike"));
    assert_eq!(
        v["data"][0]["pattern"], "session opened for user <_> by uid 0",
        "{v}"
    );
    // The limit is per query: after the refusals, the next query starts from zero.
    json_of(&logs("10"));
}

#[test]
fn patterns_are_mined_from_the_range_with_counts_per_step() {
    let (_tmp, s) = start();
    // 40 failures from varying addresses in two streams, 10 of another kind (under Loki's 30
    // lines a pattern needs), and the fixed data set's own few lines.
    let failures = |host: &str, from: i64| {
        let values: Vec<Value> = (from..from + 20)
            .map(|i| {
                json!([
                    ns(100 + i * 7),
                    format!(
                        "Failed password for root from 10.1.{i}.{} port {} ssh2",
                        i * 3 % 250,
                        40_000 + i
                    )
                ])
            })
            .collect();
        json!({"stream": {"job": "sshd", "host": host}, "values": values})
    };
    let rare: Vec<Value> = (0..10)
        .map(|i| {
            json!([
                ns(100 + i),
                format!("Connection closed by 10.2.0.{i} port 22")
            ])
        })
        .collect();
    let body = json!({"streams": [
        failures("a", 0), failures("b", 20),
        {"stream": {"job": "sshd", "host": "c"}, "values": rare}
    ]});
    assert_eq!(s.push_json(&s.token, &body.to_string()).status, 204);
    let ask = |step: &str| {
        json_of(&get(
            s.local,
            "/loki/api/v1/patterns",
            &[
                ("query", r#"{job="sshd"}"#),
                ("start", &ns(0)),
                ("end", &ns(600)),
                ("step", step),
            ],
            &[],
        ))
    };
    let v = ask("60s");
    assert_eq!(v["status"], "success");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    assert_eq!(
        data[0]["pattern"],
        "Failed password for root from <_> port <_> ssh2"
    );
    assert_eq!(data[0]["level"], "unknown");
    // Steps of 60 s from the first with a line to the last.
    let samples = data[0]["samples"].as_array().unwrap();
    let total: i64 = samples.iter().map(|p| p[1].as_i64().unwrap()).sum();
    // Equal patterns of different streams are summed: host a's data-set failure for root
    // joins its 20, host b's failure for admin stays a cluster of one (a word, not a number,
    // differs where the tree branches).
    assert_eq!(total, 41, "{v}");
    let times: Vec<i64> = samples.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert!(times.iter().all(|t| t % 60 == 0), "{times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] == 60), "{times:?}");
    // A 10 s step answers the 10 s samples as they are: only those that hold lines.
    let v = ask("10s");
    let samples = v["data"][0]["samples"].as_array().unwrap();
    assert!(samples.iter().all(|p| p[1].as_i64().unwrap() > 0), "{v}");
    let total10: i64 = samples.iter().map(|p| p[1].as_i64().unwrap()).sum();
    assert_eq!(total10, total);
    // Drilldown is told the Patterns tab has data.
    let limits = json_of(&get(s.local, "/loki/api/v1/drilldown-limits", &[], &[]));
    assert_eq!(limits["pattern_ingester_enabled"], true);
    // A selector is required, as in Loki.
    let r = get(s.local, "/loki/api/v1/patterns", &[("query", "{}")], &[]);
    assert_eq!(r.status, 400, "{}", r.body);
}
