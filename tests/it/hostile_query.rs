//! Hostile queries against the real server: deep and long LogQL and templates, on the local
//! listener and on the remote read listener with a read token. Each must get a 400 that
//! names the limit (or a normal answer), never take the process down, and leave the push
//! plane serving. A seeded generator adds deep nesting of every construct and token soup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::net::SocketAddr;

use common::rng::{Rng, seed_and_cases};
use common::server::{Resp, Server, request};

const TS: i64 = 1_754_400_000_000_000_000;

/// A server with the remote read listener and `extra` lines of its `[query]` section.
fn remote_server(extra: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let config = format!("[query]\nremote_listen = \"127.0.0.1:0\"\n{extra}");
    common::server::start_with_config(&config, env)
}

fn start_remote() -> (tempfile::TempDir, Server, String) {
    let (tmp, s) = remote_server("", &[]);
    let reader = s.create_token("grafana", &["--read"]);
    let lines: Vec<String> = (0..20)
        .map(|i| format!(r#"["{}","level=info a=1 msg=\"line {i}\""]"#, TS + i))
        .collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"x"}},"values":[{}]}}]}}"#,
        lines.join(",")
    );
    assert_eq!(s.push_json(&s.token, &body).status, 204);
    (tmp, s, reader)
}

/// POSTs `query` as a form, as Grafana does for long queries.
fn query(addr: SocketAddr, path: &str, q: &str, auth: Option<&str>) -> Resp {
    let form = serde_urlencoded::to_string([
        ("query", q),
        ("start", &(TS - 1_000_000_000).to_string()),
        ("end", &(TS + 60_000_000_000).to_string()),
        ("step", "10"),
        ("limit", "10"),
    ])
    .unwrap();
    let mut headers = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(t) = auth {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    request(addr, "POST", path, &headers, form.into_bytes())
}

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// The reproductions of the stack overflows, each with the text its 400 must contain.
fn deep_queries() -> Vec<(&'static str, String, &'static str)> {
    let sel = r#"count_over_time({job="x"}[1m])"#;
    vec![
        // Loki's grammar binds a sign to a number only, so a chain of signs is refused at
        // its second sign, before it can nest.
        (
            "unary minus chain",
            format!("{}1", "-".repeat(3000)),
            "unexpected -, expecting NUMBER",
        ),
        ("binary chain", vec!["1"; 3000].join("+"), "limit of 64"),
        (
            "set operator chain",
            vec![sel; 2000].join(" or "),
            "limit of 64",
        ),
        (
            "nested aggregations",
            nest("sum(", sel, ")", 3000),
            "limit of 64",
        ),
        (
            "nested parentheses",
            nest("(", "1", ")", 3000),
            "limit of 64",
        ),
        (
            "label filter chain",
            format!(r#"{{job="x"}} | {}"#, vec![r#"a="1""#; 3000].join(" or ")),
            "limit of 64",
        ),
        (
            "nested label filters",
            format!(r#"{{job="x"}} | {}"#, nest("(", r#"a="1""#, ")", 3000)),
            "limit of 64",
        ),
        (
            "template parentheses",
            format!(
                r#"{{job="x"}} | line_format "{{{{{}}}}}""#,
                nest("(", ".a", ")", 10_000)
            ),
            "template too complex",
        ),
        (
            "nested template ifs",
            format!(
                r#"{{job="x"}} | line_format `{}`"#,
                nest("{{if .a}}", "x", "{{end}}", 7000)
            ),
            "template too complex",
        ),
        (
            "nested label_format ifs",
            format!(
                r#"{{job="x"}} | label_format b=`{}`"#,
                nest("{{if .a}}", "x", "{{end}}", 7000)
            ),
            "template too complex",
        ),
    ]
}

const PATHS: [&str; 3] = [
    "/loki/api/v1/query_range",
    "/loki/api/v1/query",
    "/loki/api/v1/format_query",
];

fn assert_still_serving(s: &mut Server) {
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"after"}},"values":[["{TS}","still here"]]}}]}}"#
    );
    let r = s.push_json(&s.token, &body);
    assert_eq!(r.status, 204, "push after the attack: {}", r.body);
    let r = query(s.local, PATHS[0], r#"{job="x"}"#, None);
    assert_eq!(r.status, 200, "query after the attack: {}", r.body);
    assert!(s.child_alive(), "the server process is gone");
}

#[test]
fn deep_queries_get_400_naming_the_limit_and_the_server_stays_up() {
    // Regression: each of these overflowed the stack and aborted the whole process, push
    // listener included, from the local listener and from a read token alike.
    let (_tmp, mut s, reader) = start_remote();
    let remote = s.remote.unwrap();
    for (what, q, needle) in deep_queries() {
        for path in PATHS {
            for (addr, auth) in [(s.local, None), (remote, Some(reader.as_str()))] {
                let r = query(addr, path, &q, auth);
                assert_eq!(r.status, 400, "{what} on {path}: {}", r.body);
                assert!(r.body.contains(needle), "{what} on {path}: {}", r.body);
                assert!(r.headers.get("retry-after").is_none(), "{what}: final");
            }
        }
        assert!(s.child_alive(), "{what} took the server down");
    }
    assert_still_serving(&mut s);
    let status = s.stop_mut();
    assert!(status.success(), "{status:?}");
}

#[test]
fn queries_within_the_depth_budget_still_run() {
    let (_tmp, s, _reader) = start_remote();
    let sel = r#"count_over_time({job="x"}[1m])"#;
    for (what, q) in [
        ("a 30-term chain", vec!["1"; 30].join("+")),
        ("20 nested sums", nest("sum(", sel, ")", 20)),
        ("30 set operators", vec![sel; 30].join(" or ")),
        (
            "a long line-filter chain (a list, not a tree)",
            format!(r#"{{job="x"}} |= "line" {}"#, "or \"x\" ".repeat(3000)),
        ),
        (
            "a 20-deep template",
            format!(
                r#"{{job="x"}} | logfmt | line_format `{}`"#,
                nest("{{if .a}}", "{{.msg}}", "{{end}}", 20)
            ),
        ),
    ] {
        let r = query(s.local, PATHS[0], &q, None);
        assert_eq!(r.status, 200, "{what}: {}", r.body);
    }
}

/// Constructs that nest, as `open` + inner + `close`.
const NESTERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("sum(", ")"),
    ("sum by (job) (", ")"),
    ("-", ""),
    ("+", ""),
    ("1 + ", ""),
    ("", " * 2"),
    ("abs(", ")"),
    ("topk(2, ", ")"),
    ("label_replace(", r#", "a", "$1", "job", "(.*)")"#),
    ("", r#" or count_over_time({job="x"}[1m])"#),
    ("", " > bool 1"),
];

const TEMPLATE_NESTERS: &[(&str, &str)] =
    &[("{{if .a}}", "{{end}}"), ("{{if .a}}x{{else}}", "{{end}}")];

const SOUP: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[1m]",
    "[5m]",
    "sum",
    "rate",
    "count_over_time",
    "by",
    "without",
    "(job)",
    "job",
    "=",
    "!=",
    "=~",
    "!~",
    r#""x""#,
    r#""a.*""#,
    "|",
    "|=",
    "!=",
    "|~",
    "json",
    "logfmt",
    "line_format",
    r#""{{.a}}""#,
    "label_format",
    "a=`{{if .b}}x{{end}}`",
    "unwrap",
    "bytes",
    "duration",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "==",
    ">",
    "<",
    "or",
    "and",
    "unless",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "1",
    "0.5",
    "1e308",
    "-1",
    "offset",
    "1h",
    "quantile_over_time",
    "0.99,",
    ",",
    "topk",
    "__error__",
    "__line__",
    "`",
    "\"",
    "{{",
    "}}",
    "ip(\"10.0.0.0/8\")",
    "pattern",
    r#""<_> <a>""#,
    "decolorize",
    "drop",
    "keep",
    "vector(1)",
];

fn random_query(rng: &mut Rng) -> String {
    let base = r#"count_over_time({job="x"}[1m])"#;
    match rng.below(4) {
        0 => {
            let (open, close) = *rng.pick(NESTERS);
            let n = [10, 63, 65, 200, 2000][rng.below(5)];
            nest(open, base, close, n)
        }
        1 => {
            let (open, close) = *rng.pick(TEMPLATE_NESTERS);
            let n = [10, 65, 1000][rng.below(3)];
            format!(
                r#"{{job="x"}} | line_format `{}`"#,
                nest(open, "{{.a}}", close, n)
            )
        }
        2 => {
            // A mix of nesters, each a few levels deep.
            let mut q = base.to_string();
            for _ in 0..rng.below(120) {
                let (open, close) = *rng.pick(NESTERS);
                q = format!("{open}{q}{close}");
            }
            q
        }
        _ => (0..rng.below(200))
            .map(|_| *rng.pick(SOUP))
            .collect::<Vec<_>>()
            .join(if rng.one_in(2) { " " } else { "" }),
    }
}

#[test]
fn generated_hostile_queries_never_take_the_server_down() {
    let (seed, cases) = seed_and_cases(400);
    let (_tmp, mut s, reader) = start_remote();
    let remote = s.remote.unwrap();
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let q = random_query(&mut rng);
        let path = *rng.pick(&PATHS);
        let (addr, auth) = if rng.one_in(2) {
            (s.local, None)
        } else {
            (remote, Some(reader.as_str()))
        };
        let r = query(addr, path, &q, auth);
        let short: String = q.chars().take(200).collect();
        assert!(
            matches!(r.status, 200 | 400),
            "seed {seed} case {case}: {} for {short:?}: {}",
            r.status,
            r.body
        );
        if case % 50 == 0 {
            assert!(s.child_alive(), "seed {seed} case {case}: server gone");
        }
    }
    assert_still_serving(&mut s);
    let status = s.stop_mut();
    assert!(status.success(), "{status:?}");
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "holds its slots with a pause point that only debug builds have"
)]
fn one_read_token_cannot_take_every_query_slot() {
    // Every query holds its slot for 2 s (a debug-only pause point), so slots stay taken.
    // With 4 slots, a greedy token's 6 concurrent queries would take all 4 and another
    // token would wait for one to end; with 2 slots a token, the other token runs at once.
    let (_tmp, s) = remote_server(
        "max_concurrent = 4\nmax_concurrent_per_token = 2\n",
        &[
            ("DAFTARI_FAILPOINT", "query-in-slot"),
            ("DAFTARI_FAILPOINT_PAUSE_MS", "2000"),
        ],
    );
    let remote = s.remote.unwrap();
    let greedy = s.create_token("greedy", &["--read"]);
    let other = s.create_token("alerting", &["--read"]);
    let q = r#"count_over_time({job="x"}[1m])"#;
    let started = std::time::Instant::now();
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let t = greedy.clone();
            std::thread::spawn(move || {
                let r = query(remote, PATHS[0], q, Some(&t));
                (r.status, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    let r = query(remote, PATHS[0], q, Some(&other));
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    eprintln!("another read token's query under the flood: {took:?}");
    assert!(
        took < std::time::Duration::from_millis(3500),
        "the other token waited {took:?} behind the greedy one"
    );
    let mut done: Vec<_> = flood.into_iter().map(|h| h.join().unwrap()).collect();
    done.sort_by_key(|d| d.1);
    assert!(done.iter().all(|d| d.0 == 200), "{done:?}");
    // The greedy token ran two at a time: its last queries ended in the third round.
    assert!(
        done[5].1 >= std::time::Duration::from_millis(5500),
        "the greedy token ran more than its share at once: {done:?}"
    );
}

#[test]
fn one_read_token_cannot_take_every_live_tail() {
    let (_tmp, s) = remote_server(
        "max_concurrent_tails = 4\nmax_concurrent_tails_per_token = 2\n",
        &[],
    );
    let remote = s.remote.unwrap();
    let greedy = s.create_token("greedy", &["--read"]);
    let other = s.create_token("alerting", &["--read"]);
    let third = s.create_token("oncall", &["--read"]);
    let open = |token: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let q = serde_urlencoded::to_string([("query", r#"{job="x"}"#)]).unwrap();
        let mut req = format!("ws://{remote}/loki/api/v1/tail?{q}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        req
    };
    common::server::block_on(async {
        let mut held = Vec::new();
        for _ in 0..2 {
            let (ws, _) = tokio_tungstenite::connect_async(open(&greedy))
                .await
                .unwrap();
            held.push(ws);
        }
        // The greedy token's third tail is refused; the other token's tail opens.
        match tokio_tungstenite::connect_async(open(&greedy)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 429);
            }
            other => panic!("a third tail for one token: {other:?}"),
        }
        let (ws, _) = tokio_tungstenite::connect_async(open(&other))
            .await
            .unwrap();
        held.push(ws);
        // A tail that ends gives its slot back.
        drop(held.remove(0));
        let t = std::time::Instant::now();
        loop {
            match tokio_tungstenite::connect_async(open(&greedy)).await {
                Ok((ws, _)) => {
                    held.push(ws);
                    break;
                }
                Err(e) => assert!(
                    t.elapsed() < std::time::Duration::from_secs(10),
                    "the slot never came back: {e}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Four tails are open in all (2 + 1 + 1 after the other token's second): a third
        // token within its own share finds every slot taken, a momentary 429 that says when
        // to retry.
        let (ws, _) = tokio_tungstenite::connect_async(open(&other))
            .await
            .unwrap();
        held.push(ws);
        match tokio_tungstenite::connect_async(open(&third)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 429);
                assert_eq!(r.headers()["retry-after"], "1");
            }
            other => panic!("a fifth tail: {other:?}"),
        }
    });
}
