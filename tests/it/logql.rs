//! The LogQL corpus: every construct parses, prints and parses again to the same text; bad
//! queries fail with Loki's words and positions; and every construct evaluates over a fixed
//! data set to results computed by hand (in the comments next to each expectation).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use daftari::query::engine::Budget;
use daftari::query::logql::{self, Expr};
use daftari::query::metric::{self, Val};
use daftari::query::{Engine, Limits};
use daftari::store::{self, Batch, Order, StoreConfig, Stream};

const S: i64 = 1_000_000_000;
/// The data set's origin: every line sits at T0 + some seconds.
const T0: i64 = 1_700_000_000 * S;

/// Every construct the read plane supports, in the canonical form the printer writes.
const CORPUS: &[&str] = &[
    r#"{job="sshd"}"#,
    r#"{job="sshd", host!="b", env=~"prod|stage", team!~"x.*"}"#,
    r#"{job="sshd"} |= "Failed" != "Accepted" |~ "(?i)root" !~ "ops""#,
    r#"{job="sshd"} |= "a" or "b" |> "<_> from <ip> port <_>" !> "<_> ops <_>""#,
    r#"{job="sshd"} |= ip("10.0.0.0/8") != ip("192.168.1.1-192.168.1.9")"#,
    r#"{job="app"} | json"#,
    r#"{job="app"} | json name="user.name", first="list[0]""#,
    r#"{job="app"} | logfmt --strict --keep-empty"#,
    r#"{job="app"} | logfmt status, level="lvl""#,
    r#"{job="app"} | regexp "(?P<user>\\w+)""#,
    r#"{job="app"} | pattern "<ip> - <_>""#,
    r#"{job="app"} | unpack"#,
    r#"{job="app"} | json | level="error" | status>=500 | duration>1s500ms | size<=20MB"#,
    r#"{job="app"} | json | (level="error" or status==200) and size<5KB"#,
    r#"{job="app"} | logfmt | addr=ip("10.0.0.0/8") | __error__="""#,
    r#"{job="app"} | line_format "{{.user | ToUpper}} {{trunc 3 .ip}}""#,
    r#"{job="app"} | label_format who=user, msg="{{.a}}-{{.b}}""#,
    r#"{job="app"} | drop a, b="x", __error__ | keep c, d=~"y.*""#,
    r#"{job="app"} | decolorize"#,
    r#"count_over_time({job="sshd"} [5m])"#,
    r#"rate({job="sshd"} |= "Failed" [1m])"#,
    r#"bytes_over_time({job="sshd"} [1h])"#,
    r#"bytes_rate({job="sshd"} [30s] offset 1h)"#,
    r#"absent_over_time({job="sshd", host="a"} [15m])"#,
    r#"max_over_time({job="app"} | json | unwrap status [5m]) by (level)"#,
    r#"avg_over_time({job="app"} | logfmt | unwrap duration(took) | __error__="" [5m]) without (user)"#,
    r#"max_over_time({job="app"} | json | unwrap bytes(size) [5m])"#,
    r#"min_over_time({job="app"} | json | unwrap duration_seconds(took) [5m])"#,
    r#"first_over_time({job="app"} | json | unwrap v [5m])"#,
    r#"last_over_time({job="app"} | json | unwrap v [5m])"#,
    r#"stddev_over_time({job="app"} | json | unwrap v [5m])"#,
    r#"stdvar_over_time({job="app"} | json | unwrap v [5m])"#,
    r#"quantile_over_time(0.99, {job="app"} | json | unwrap v [5m]) by (host)"#,
    r#"rate_counter({job="app"} | logfmt | unwrap requests [5m])"#,
    r#"rate({job="app"} | logfmt | unwrap bytes(sent) [1m])"#,
    r#"sum by (host) (count_over_time({job="sshd"} [5m]))"#,
    r#"sum without (host) (count_over_time({job="sshd"} [5m]))"#,
    r#"avg(rate({job="sshd"} [1m]))"#,
    r#"topk(3, sum by (ip) (count_over_time({job="sshd"} | pattern "<_> from <ip> <_>" [1h])))"#,
    r#"bottomk by (job) (2, rate({job="sshd"} [1m]))"#,
    r#"sort_desc(sum by (host) (rate({job="sshd"} [1m])))"#,
    r#"sort(count(rate({job="sshd"} [1m])))"#,
    r#"stddev(rate({job="sshd"} [1m])) / stdvar(rate({job="sshd"} [1m]))"#,
    r#"min(rate({job="sshd"} [1m])) - max(rate({job="sshd"} [1m]))"#,
    r#"vector(1) + vector(1)"#,
    r#"sum(count_over_time({job="auth"} [15m])) or vector(0)"#,
    r#"count_over_time({job="sshd"} [5m]) > bool 10"#,
    r#"2 ^ 3 ^ 2 * 4 % 3"#,
    r#"-1 + 2"#,
    r#"(1 + 2) * 3"#,
    r#"rate({job="a"} [1m]) / on(host) group_left(team) rate({job="b"} [1m])"#,
    r#"rate({job="a"} [1m]) * ignoring(job) group_right rate({job="b"} [1m])"#,
    r#"rate({job="a"} [1m]) and rate({job="b"} [1m]) unless rate({job="c"} [1m])"#,
    r#"label_replace(rate({job="a"} [1m]), "dst", "$1", "src", "(.*)")"#,
    r#"sum by (level, detected_level) (count_over_time({job="app"} | drop __error__ [1m]))"#,
];

/// What Loki's grammar refuses, with the text its error names.
const REFUSED: &[(&str, &str)] = &[
    (r#"-sum(rate({job="a"} [1m]))"#, "unexpected"),
    ("--1", "unexpected"),
    ("-(1)", "unexpected"),
    (
        r#"sum_over_time({job="a"} | logfmt | unwrap v [1m]) by (host)"#,
        "grouping not allowed for sum_over_time",
    ),
    (
        r#"rate({job="a"} | logfmt | unwrap v [1m]) by (host)"#,
        "grouping not allowed for rate",
    ),
    (
        r#"count_over_time({job="a"} [1m]) by (host)"#,
        "grouping not allowed for count_over_time",
    ),
];

#[test]
fn what_lokis_grammar_refuses_is_refused() {
    for (q, want) in REFUSED {
        let e = logql::parse(q).expect_err(q).to_string();
        assert!(e.contains(want), "{q}: {e}");
    }
    // The forms Loki accepts instead.
    for q in [
        r#"-1 * sum(rate({job="a"} [1m]))"#,
        r#"sum by (host) (sum_over_time({job="a"} | logfmt | unwrap v [1m]))"#,
        r#"max_over_time({job="a"} | logfmt | unwrap v [1m]) by (host)"#,
    ] {
        logql::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

#[test]
fn every_construct_prints_and_parses_back_to_the_same_text() {
    for q in CORPUS {
        let first = logql::parse(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .to_string();
        assert_eq!(&first, q, "canonical text");
        let again = logql::parse(&first).unwrap().to_string();
        assert_eq!(again, first);
        let pretty = logql::pretty(&logql::parse(&first).unwrap());
        let from_pretty = logql::parse(&pretty).unwrap().to_string();
        assert_eq!(
            from_pretty, first,
            "pretty form of {q} parses back:\n{pretty}"
        );
    }
}

#[test]
fn queries_in_other_spellings_parse_to_the_canonical_text() {
    let cases = [
        (
            r#"count_over_time({job="sshd"}[5m])"#,
            r#"count_over_time({job="sshd"} [5m])"#,
        ),
        (
            r#"rate({job="sshd"}[1m] |= "x")"#,
            r#"rate({job="sshd"} |= "x" [1m])"#,
        ),
        (
            r#"sum(rate({a="b"}[1m])) by (x)"#,
            r#"sum by (x) (rate({a="b"} [1m]))"#,
        ),
        ("{a=`raw\\d`}", r#"{a="raw\\d"}"#),
        (
            r#"{a="b"} | json | x="1", y="2""#,
            r#"{a="b"} | json | x="1" and y="2""#,
        ),
        (
            r#"{a="b"} | json | x="1" y="2""#,
            r#"{a="b"} | json | x="1" and y="2""#,
        ),
        (
            "sum by (level, detected_level) (count_over_time({a=\"b\"} | drop __error__[1m]))",
            r#"sum by (level, detected_level) (count_over_time({a="b"} | drop __error__ [1m]))"#,
        ),
        (
            "count_over_time({a=\"b\"}[90s])",
            r#"count_over_time({a="b"} [1m30s])"#,
        ),
        (
            "count_over_time({a=\"b\"}[24h])",
            r#"count_over_time({a="b"} [1d])"#,
        ),
    ];
    for (input, canonical) in cases {
        assert_eq!(
            logql::parse(input).unwrap().to_string(),
            canonical,
            "{input}"
        );
    }
}

#[test]
fn bad_queries_fail_with_lokis_words_and_positions() {
    let cases = [
        (
            r#"{job=~".*"}"#,
            "parse error : queries require at least one regexp or equality matcher that does \
             not have an empty-compatible value. For instance, app=~\".*\" does not meet this \
             requirement, but app=~\".+\" will",
        ),
        (
            r#"{job="x""#,
            "parse error at line 1, col 9: syntax error: unexpected $end, expecting }",
        ),
        (
            r#"{job="x"} |= foo"#,
            "parse error at line 1, col 14: syntax error: unexpected IDENTIFIER, expecting STRING",
        ),
        (
            r#"rate({job="x"}[5minutes])"#,
            "parse error at line 1, col 15: syntax error: invalid duration \"5minutes\" in range",
        ),
        (
            r#"sum_over_time({job="x"}[5m])"#,
            "parse error : invalid aggregation sum_over_time without unwrap",
        ),
        (
            r#"count_over_time({job="x"} | unwrap v [5m])"#,
            "parse error : invalid aggregation count_over_time with unwrap",
        ),
        (
            "vector(1) +",
            "parse error at line 1, col 12: syntax error: unexpected $end",
        ),
        (
            "nosuch(1)",
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
        ),
        (
            "{job=\"x\"}\n  | line_format \"{{.a\"",
            "parse error at line 2, col 17: template: \"{{.a\": unclosed action",
        ),
        (
            r#"count_over_time({job="x"})"#,
            "parse error at line 1, col 26: syntax error: unexpected ), expecting RANGE",
        ),
        (
            r#"{job="x"} | regexp "(unnamed)""#,
            "at least one named capture group",
        ),
    ];
    for (q, want) in cases {
        let e = logql::parse(q).expect_err(q).to_string();
        assert!(e.contains(want), "{q}\n got: {e}\nwant: {want}");
    }
}

// ---- evaluation over a fixed data set --------------------------------------------------

struct Data {
    _tmp: tempfile::TempDir,
    _ledger: store::Ledger,
    engine: Engine,
}

fn line(sec: i64, text: &str) -> (i64, String) {
    (T0 + sec * S, text.to_owned())
}

/// The data set. Seconds after T0, per stream.
fn data() -> Data {
    let tmp = tempfile::tempdir().unwrap();
    let (ledger, appender, reader) = store::open(StoreConfig::new(tmp.path())).unwrap();
    let streams: Vec<(Vec<(&str, &str)>, Vec<(i64, String)>)> = vec![
        (
            vec![("job", "sshd"), ("host", "a")],
            vec![
                line(10, "Failed password for root from 10.0.0.1 port 22 ssh2"),
                line(20, "Failed password for admin from 10.0.0.2 port 22 ssh2"),
                line(
                    30,
                    "Accepted publickey for ops from 192.168.1.5 port 22 ssh2",
                ),
                line(70, "Failed password for root from 10.0.0.1 port 22 ssh2"),
            ],
        ),
        (
            vec![("job", "sshd"), ("host", "b")],
            vec![line(
                15,
                "Failed password for root from 203.0.113.9 port 22 ssh2",
            )],
        ),
        (
            vec![("job", "app"), ("host", "a")],
            vec![
                line(
                    5,
                    r#"{"level":"info","msg":"ok","duration":"150ms","size":"2KB","status":200,"user":{"name":"alice"}}"#,
                ),
                line(
                    25,
                    r#"{"level":"error","msg":"boom","duration":"1.5s","size":"10KB","status":500,"user":{"name":"bob"}}"#,
                ),
                line(
                    45,
                    r#"level=warn msg="slow request" duration=500ms status=404 user=carol"#,
                ),
                line(
                    50,
                    r#"{"level":"info","msg":"ok","duration":"50ms","size":"1KB","status":200,"user":{"name":"alice"}}"#,
                ),
            ],
        ),
        (
            vec![("job", "counter")],
            vec![
                line(10, "requests=10"),
                line(20, "requests=20"),
                line(30, "requests=5"),
                line(40, "requests=15"),
            ],
        ),
        (
            vec![("job", "color")],
            vec![line(12, "\x1b[31mERROR\x1b[0m disk full")],
        ),
        (
            vec![("job", "packed")],
            vec![line(14, r#"{"_entry":"inner line","pod":"p1"}"#)],
        ),
    ];
    for (labels, lines) in streams {
        let batch = Batch {
            source: "corpus".into(),
            tenant: String::new(),
            streams: vec![Stream {
                labels: common::labels(&labels),
                entries: lines.iter().map(|(ts, l)| common::entry(l, *ts)).collect(),
            }],
        };
        appender.append_blocking(batch).unwrap();
    }
    Data {
        _tmp: tmp,
        _ledger: ledger,
        engine: Engine::new(reader, Limits::default()),
    }
}

type Samples = Vec<(BTreeMap<String, String>, f64)>;

fn budget() -> Budget {
    Budget::new(
        Duration::from_secs(30),
        daftari::query::engine::DEFAULT_MAX_MEMORY_BYTES,
    )
}

/// An instant query at T0 + `sec`, as (labels, value) sorted by labels (or in the order
/// the query gives, for `sort`).
fn at(d: &Data, q: &str, sec: i64) -> Result<Samples, String> {
    let Expr::Metric(m) = logql::parse(q).map_err(|e| e.to_string())? else {
        return Err("not a metric query".into());
    };
    let t = T0 + sec * S;
    let (v, _) = metric::eval(&d.engine, &m, &[t], budget()).map_err(|e| e.to_string())?;
    Ok(match v {
        Val::Scalar(s) => vec![(BTreeMap::new(), s[0])],
        Val::Vector(m) => {
            let mut out: Samples = m.points[0]
                .iter()
                .map(|&(sid, v)| (m.series[sid].clone(), v))
                .collect();
            match m.sort {
                Some(desc) => out.sort_by(|a, b| {
                    let o = a.1.total_cmp(&b.1);
                    if desc { o.reverse() } else { o }
                }),
                None => out.sort_by(|a, b| a.0.cmp(&b.0)),
            }
            out
        }
    })
}

fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
fn expect(d: &Data, q: &str, sec: i64, want: &[(&[(&str, &str)], f64)]) {
    let got = at(d, q, sec).unwrap_or_else(|e| panic!("{q}: {e}"));
    let want: Samples = want.iter().map(|(p, v)| (l(p), *v)).collect();
    assert_eq!(got.len(), want.len(), "{q}\n got {got:?}\nwant {want:?}");
    for ((gl, gv), (wl, wv)) in got.iter().zip(&want) {
        assert_eq!(gl, wl, "{q}");
        assert!((gv - wv).abs() < 1e-9, "{q}: {gl:?} = {gv}, want {wv}");
    }
}

const A: &[(&str, &str)] = &[("host", "a"), ("job", "sshd")];
const B: &[(&str, &str)] = &[("host", "b"), ("job", "sshd")];

#[test]
fn range_aggregations_use_left_open_windows_and_never_invent_zeros() {
    let d = data();
    // (T0, T0+60]: a has +10 +20 +30, b has +15.
    expect(
        &d,
        r#"count_over_time({job="sshd"}[1m])"#,
        60,
        &[(A, 3.0), (B, 1.0)],
    );
    expect(
        &d,
        r#"count_over_time({job="sshd"} |= "Failed" [1m])"#,
        60,
        &[(A, 2.0), (B, 1.0)],
    );
    expect(
        &d,
        r#"rate({job="sshd"}[1m])"#,
        60,
        &[(A, 3.0 / 60.0), (B, 1.0 / 60.0)],
    );
    // (T0+10, T0+30]: +10 itself is outside.
    expect(
        &d,
        r#"count_over_time({job="sshd",host="a"}[20s])"#,
        30,
        &[(A, 2.0)],
    );
    // (T0+50, T0+60]: nothing, so no sample at all.
    expect(
        &d,
        r#"count_over_time({job="sshd",host="b"}[10s])"#,
        60,
        &[],
    );
    // offset 1m at T0+130: (T0+10, T0+70] → a: +20 +30 +70, b: +15.
    expect(
        &d,
        r#"count_over_time({job="sshd"}[1m] offset 1m)"#,
        130,
        &[(A, 3.0), (B, 1.0)],
    );
    let b_line = "Failed password for root from 203.0.113.9 port 22 ssh2".len() as f64;
    expect(
        &d,
        r#"bytes_over_time({job="sshd",host="b"}[1m])"#,
        60,
        &[(B, b_line)],
    );
    expect(
        &d,
        r#"bytes_rate({job="sshd",host="b"}[1m])"#,
        60,
        &[(B, b_line / 60.0)],
    );
    // Silence: labels from the equality matchers; nothing when lines exist.
    expect(
        &d,
        r#"absent_over_time({job="sshd",host="c",env=~"p.*"}[1m])"#,
        60,
        &[(&[("host", "c"), ("job", "sshd")], 1.0)],
    );
    expect(&d, r#"absent_over_time({job="sshd"}[1m])"#, 60, &[]);
}

#[test]
fn unwrapped_aggregations_match_hand_computed_values() {
    let d = data();
    let app = &[("job", "app")][..];
    // JSON lines at +5 (200), +25 (500), +50 (200); the logfmt line at +45 fails to parse.
    let sel = r#"{job="app"} | json | __error__="" | unwrap status [1m]"#;
    let q = |f: &str| format!("{f}({sel}) by (job)");
    // Loki allows no grouping on sum_over_time: the sum is grouped outside.
    let sum = format!("sum by (job) (sum_over_time({sel}))");
    expect(&d, &sum, 60, &[(app, 900.0)]);
    expect(&d, &q("avg_over_time"), 60, &[(app, 300.0)]);
    expect(&d, &q("min_over_time"), 60, &[(app, 200.0)]);
    expect(&d, &q("max_over_time"), 60, &[(app, 500.0)]);
    expect(&d, &q("first_over_time"), 60, &[(app, 200.0)]);
    expect(&d, &q("last_over_time"), 60, &[(app, 200.0)]);
    // mean 300, squared deviations 10000 + 40000 + 10000 over 3.
    expect(&d, &q("stdvar_over_time"), 60, &[(app, 20000.0)]);
    expect(&d, &q("stddev_over_time"), 60, &[(app, 20000f64.sqrt())]);
    // sorted 200 200 500: rank 0.75 * 2 = 1.5 → halfway between 200 and 500.
    expect(
        &d,
        &format!("quantile_over_time(0.75, {sel}) by (job)"),
        60,
        &[(app, 350.0)],
    );
    expect(
        &d,
        &format!("sum by (job) (rate({sel}))"),
        60,
        &[(app, 900.0 / 60.0)],
    );
    let by_level = format!("sum by (level) (sum_over_time({sel}))");
    expect(
        &d,
        &by_level,
        60,
        &[
            (&[("level", "error")], 500.0),
            (&[("level", "info")], 400.0),
        ],
    );
    // Durations in seconds, byte sizes in bytes.
    let dur = r#"sum by (job) (sum_over_time({job="app"} | json | __error__="" | unwrap duration(duration) [1m]))"#;
    expect(&d, dur, 60, &[(app, 0.15 + 1.5 + 0.05)]);
    let bytes = r#"sum by (job) (sum_over_time({job="app"} | json | __error__="" | unwrap bytes(size) [1m]))"#;
    expect(&d, bytes, 60, &[(app, 13000.0)]);
    // Counter 10, 20, reset to 5, 15 at +10..+40, window (T0, T0+60]: increase 25 over 30 s
    // of samples, extrapolated by 10 s at the start and 5 s (half the spacing) at the end:
    // 25 * 45 / 30 = 37.5, per second of the 60 s range: 0.625.
    let counter = r#"rate_counter({job="counter"} | logfmt | unwrap requests [1m])"#;
    expect(&d, counter, 60, &[(&[("job", "counter")], 0.625)]);
}

#[test]
fn a_parse_error_fails_a_metric_query_unless_filtered() {
    let d = data();
    let e = at(&d, r#"sum(count_over_time({job="app"} | json [1m]))"#, 60).unwrap_err();
    assert!(
        e.starts_with("pipeline error: 'JSONParserErr' for series:"),
        "{e}"
    );
    let q = r#"sum(count_over_time({job="app"} | json | drop __error__, __error_details__ [1m]))"#;
    expect(&d, q, 60, &[(&[], 4.0)]);
    let e = at(
        &d,
        r#"sum(sum_over_time({job="app"} | json | unwrap msg [1m]))"#,
        60,
    )
    .unwrap_err();
    assert!(
        e.contains("JSONParserErr") || e.contains("SampleExtractionErr"),
        "{e}"
    );
}

#[test]
fn vector_aggregations_and_ordering() {
    let d = data();
    let inner = r#"count_over_time({job="sshd"}[1m])"#;
    let agg = |op: &str| format!("{op}({inner})");
    expect(&d, &agg("sum"), 60, &[(&[], 4.0)]);
    expect(&d, &agg("avg"), 60, &[(&[], 2.0)]);
    expect(&d, &agg("min"), 60, &[(&[], 1.0)]);
    expect(&d, &agg("max"), 60, &[(&[], 3.0)]);
    expect(&d, &agg("count"), 60, &[(&[], 2.0)]);
    expect(&d, &agg("stddev"), 60, &[(&[], 1.0)]);
    expect(&d, &agg("stdvar"), 60, &[(&[], 1.0)]);
    expect(
        &d,
        &format!("sum by (host) ({inner})"),
        60,
        &[(&[("host", "a")], 3.0), (&[("host", "b")], 1.0)],
    );
    expect(
        &d,
        &format!("sum without (host) ({inner})"),
        60,
        &[(&[("job", "sshd")], 4.0)],
    );
    expect(&d, &format!("topk(1, {inner})"), 60, &[(A, 3.0)]);
    expect(&d, &format!("bottomk(1, {inner})"), 60, &[(B, 1.0)]);
    expect(
        &d,
        &format!("sort_desc({inner})"),
        60,
        &[(A, 3.0), (B, 1.0)],
    );
    expect(&d, &format!("sort({inner})"), 60, &[(B, 1.0), (A, 3.0)]);
}

#[test]
fn binary_operations_between_vectors_and_scalars() {
    let d = data();
    let c = r#"count_over_time({job="sshd"}[1m])"#;
    let failed = r#"count_over_time({job="sshd"} |= "Failed" [1m])"#;
    let accepted = r#"count_over_time({job="sshd"} |= "Accepted" [1m])"#;
    expect(&d, "vector(1)+vector(1)", 60, &[(&[], 2.0)]);
    expect(&d, "2 ^ 3 ^ 2", 60, &[(&[], 512.0)]);
    expect(&d, "10 % 3 + 1", 60, &[(&[], 2.0)]);
    expect(&d, "1 > bool 2", 60, &[(&[], 0.0)]);
    assert!(at(&d, "1 > 2", 60).unwrap_err().contains("BOOL modifier"));
    expect(&d, &format!("sum({c}) * 2"), 60, &[(&[], 8.0)]);
    expect(&d, &format!("{c} > 1"), 60, &[(A, 3.0)]);
    expect(&d, &format!("{c} > bool 1"), 60, &[(A, 1.0), (B, 0.0)]);
    expect(&d, &format!("{c} / {failed}"), 60, &[(A, 1.5), (B, 1.0)]);
    expect(
        &d,
        &format!("sum by (host) ({c}) / on(host) sum by (host) ({failed})"),
        60,
        &[(&[("host", "a")], 1.5), (&[("host", "b")], 1.0)],
    );
    expect(&d, &format!("{c} and {accepted}"), 60, &[(A, 3.0)]);
    expect(&d, &format!("{c} unless {accepted}"), 60, &[(B, 1.0)]);
    expect(
        &d,
        r#"sum(count_over_time({job="nope"}[1m])) or vector(0)"#,
        60,
        &[(&[], 0.0)],
    );
    expect(
        &d,
        &format!("{c} / ignoring(host) group_left sum by (job) ({c})"),
        60,
        &[(A, 0.75), (B, 0.25)],
    );
    expect(
        &d,
        &format!("sum by (job) ({c}) / ignoring(host) group_right {c}"),
        60,
        &[(A, 4.0 / 3.0), (B, 4.0)],
    );
    assert!(
        at(&d, &format!("{c} / ignoring(host) {c}"), 60)
            .unwrap_err()
            .contains("duplicate series")
    );
    expect(
        &d,
        r#"label_replace(count_over_time({job="sshd",host="a"}[1m]), "machine", "m-$1", "host", "(.*)")"#,
        60,
        &[(&[("host", "a"), ("job", "sshd"), ("machine", "m-a")], 3.0)],
    );
}

#[test]
fn parsers_and_filters_inside_metric_queries() {
    let d = data();
    let one = |q: &str, want: f64| {
        expect(
            &d,
            &format!("sum(count_over_time({q} [1m]))"),
            60,
            &[(&[], want)],
        )
    };
    one(r#"{job="sshd"} != "Failed""#, 1.0);
    one(r#"{job="sshd"} |~ "for (root|ops)""#, 3.0);
    one(r#"{job="sshd"} !~ "root""#, 2.0);
    one(r#"{job="sshd"} |= "admin" or "ops""#, 2.0);
    one(r#"{job="sshd"} |> "Accepted <_>""#, 1.0);
    one(r#"{job="sshd"} |= ip("192.168.0.0/16")"#, 1.0);
    one(
        r#"{job="sshd"} | pattern "<_> from <ip> port <_>" | ip=ip("10.0.0.0/8")"#,
        2.0,
    );
    one(r#"{job="app"} |= "slow" | logfmt | status >= 400"#, 1.0);
    one(
        r#"{job="app"} | json | __error__="" | duration > 100ms"#,
        2.0,
    );
    one(r#"{job="app"} | json | __error__="" | size >= 2KB"#, 2.0);
    // +5 (info, 200, 2KB) and +50 (info, 200, 1KB) pass; +25 is 10KB.
    one(
        r#"{job="app"} | json | __error__="" | (level="error" or status==200) and size < 5KB"#,
        2.0,
    );
    expect(
        &d,
        r#"sum by (user) (count_over_time({job="sshd"} |= "Failed" | regexp "for (?P<user>\\w+) from" [1m]))"#,
        60,
        &[(&[("user", "admin")], 1.0), (&[("user", "root")], 2.0)],
    );
    expect(
        &d,
        r#"sum by (name) (count_over_time({job="app"} | json name="user.name" | __error__="" [1m]))"#,
        60,
        &[(&[("name", "alice")], 2.0), (&[("name", "bob")], 1.0)],
    );
    let users = r#"{job="sshd",host="a"} |= "Accepted" | pattern "<_> for <user> from <ip> <_>""#;
    expect(
        &d,
        &format!("sum by (user, ip) (count_over_time({users} | drop ip [1m]))"),
        60,
        &[(&[("user", "ops")], 1.0)],
    );
    expect(
        &d,
        &format!("count_over_time({users} | keep user [1m])"),
        60,
        &[(&[("user", "ops")], 1.0)],
    );
}

/// (timestamp offset in seconds, line) of a log query over [T0, T0+100).
fn logs(
    d: &Data,
    q: &str,
    limit: usize,
    order: Order,
) -> Vec<(i64, String, BTreeMap<String, String>)> {
    let Expr::Log(l) = logql::parse(q).unwrap() else {
        panic!("not a log query")
    };
    let (entries, _) = d
        .engine
        .logs(&l, (T0, T0 + 100 * S), limit, order, budget())
        .unwrap();
    entries
        .into_iter()
        .map(|e| ((e.ts_ns - T0) / S, e.line, e.labels.flat()))
        .collect()
}

#[test]
fn log_queries_keep_the_newest_or_oldest_lines_and_format_them() {
    let d = data();
    let secs = |v: Vec<(i64, String, BTreeMap<String, String>)>| {
        v.into_iter().map(|e| e.0).collect::<Vec<_>>()
    };
    assert_eq!(
        secs(logs(&d, r#"{job="sshd"}"#, 2, Order::Backward)),
        [70, 30]
    );
    assert_eq!(
        secs(logs(&d, r#"{job="sshd"}"#, 2, Order::Forward)),
        [10, 15]
    );
    assert_eq!(
        secs(logs(&d, r#"{job="sshd"}"#, 100, Order::Forward)),
        [10, 15, 20, 30, 70]
    );
    let out = logs(
        &d,
        r#"{job="sshd", host="a"} |= "Accepted" | pattern "<_> for <user> from <ip> <_>" | line_format "{{.user | ToUpper}}@{{.ip}}" | label_format who=user"#,
        10,
        Order::Backward,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, "OPS@192.168.1.5");
    assert_eq!(out[0].2.get("who").map(String::as_str), Some("ops"));
    assert!(!out[0].2.contains_key("user"));
    assert_eq!(
        logs(&d, r#"{job="color"} | decolorize"#, 10, Order::Forward)[0].1,
        "ERROR disk full"
    );
    let packed = logs(&d, r#"{job="packed"} | unpack"#, 10, Order::Forward);
    assert_eq!(packed[0].1, "inner line");
    assert_eq!(packed[0].2.get("pod").map(String::as_str), Some("p1"));
    let json = logs(
        &d,
        r#"{job="app"} | json | level="error""#,
        10,
        Order::Forward,
    );
    assert_eq!(json.len(), 1);
    assert_eq!(json[0].2.get("user_name").map(String::as_str), Some("bob"));
}

#[test]
fn a_range_query_has_points_only_where_windows_hold_lines() {
    let d = data();
    let Expr::Metric(m) = logql::parse(r#"count_over_time({job="sshd",host="a"}[30s])"#).unwrap()
    else {
        panic!()
    };
    // Steps +30, +60, +90: (0,30] has 3 lines, (30,60] none, (60,90] one.
    let times = [T0 + 30 * S, T0 + 60 * S, T0 + 90 * S];
    let (Val::Vector(v), _) = metric::eval(&d.engine, &m, &times, budget()).unwrap() else {
        panic!()
    };
    assert_eq!(v.series.len(), 1);
    let points: Vec<Vec<f64>> = v
        .points
        .iter()
        .map(|p| p.iter().map(|x| x.1).collect())
        .collect();
    assert_eq!(points, [vec![3.0], vec![], vec![1.0]]);
}

#[test]
fn series_limits_are_enforced_with_lokis_message() {
    let d = data();
    let mut engine = d.engine.clone();
    engine.limits.max_series = 1;
    let Expr::Metric(m) = logql::parse(r#"count_over_time({job="sshd"}[1m])"#).unwrap() else {
        panic!()
    };
    let e = metric::eval(&engine, &m, &[T0 + 60 * S], budget())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("maximum number of series (1) reached for a single query"),
        "{e}"
    );
}

#[test]
fn a_query_opens_only_the_segments_holding_its_streams_in_range() {
    let tmp = tempfile::tempdir().unwrap();
    // 64 KiB segments: each batch below fills one.
    let (ledger, appender, reader) =
        store::open(common::small_config(tmp.path(), 64 * 1024)).unwrap();
    let mut rng = common::rng::Rng::new(7);
    for k in 0..4i64 {
        let entries = (0..400)
            .map(|i| {
                let filler = rng.hex(200);
                common::entry(&format!("{k} {i} {filler}"), T0 + (k * 1000 + i) * S)
            })
            .collect();
        let batch = Batch {
            source: "t".into(),
            tenant: String::new(),
            streams: vec![Stream {
                labels: common::labels(&[("job", "seg")]),
                entries,
            }],
        };
        appender.append_blocking(batch).unwrap();
    }
    assert!(
        reader.segments().unwrap().len() >= 4,
        "one segment per batch"
    );
    let engine = Engine::new(reader, Limits::default());
    let Expr::Log(l) = logql::parse(r#"{job="seg"}"#).unwrap() else {
        panic!()
    };
    let range = (T0 + 2000 * S, T0 + 2100 * S);
    let (entries, stats) = engine
        .logs(&l, range, 1000, Order::Forward, budget())
        .unwrap();
    assert_eq!(entries.len(), 100);
    assert!(entries.iter().all(|e| e.line.starts_with("2 ")));
    assert_eq!(stats.scan.segments_opened, 1);
    // A stream that does not match opens nothing at all.
    let Expr::Log(none) = logql::parse(r#"{job="other"}"#).unwrap() else {
        panic!()
    };
    let (_, stats) = engine
        .logs(&none, range, 1000, Order::Forward, budget())
        .unwrap();
    assert_eq!(stats.scan.segments_opened, 0);
    ledger.close().unwrap();
}

#[test]
fn truncated_and_damaged_queries_fail_cleanly() {
    // Every prefix of every corpus query, and every query with one character removed or
    // doubled, either parses or returns an error: never a panic, never a hang.
    for q in CORPUS {
        let chars: Vec<char> = q.chars().collect();
        for i in 0..chars.len() {
            let prefix: String = chars[..i].iter().collect();
            let dropped: String = chars
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c)
                .collect();
            let doubled: String = chars[..=i].iter().chain(chars[i..].iter()).collect();
            for text in [prefix, dropped, doubled] {
                if let Ok(e) = logql::parse(&text) {
                    // Whatever parses prints to text that parses to the same print.
                    let printed = e.to_string();
                    let again = logql::parse(&printed)
                        .unwrap_or_else(|err| panic!("{text:?} printed as {printed:?}: {err}"));
                    assert_eq!(again.to_string(), printed, "{text:?}");
                }
            }
        }
    }
}

#[test]
fn a_sum_over_an_additive_range_aggregation_holds_only_its_groups() {
    let d = data();
    let mut engine = d.engine.clone();
    // The three JSON lines of {job="app"} are three label sets once parsed, in two levels.
    engine.limits.max_range_series = 2;
    let eval = |q: &str| {
        let Expr::Metric(m) = logql::parse(q).unwrap() else {
            panic!()
        };
        metric::eval(&engine, &m, &[T0 + 60 * S], budget()).map(|(v, _)| v)
    };
    let inner = r#"({job="app"} | json | __error__="" [1m])"#;
    for q in [
        format!("sum by (level) (count_over_time{inner})"),
        format!("sum by (level) ((rate{inner}))"),
        format!(
            "sum without (msg, duration, size, status, user_name, job, host) (bytes_over_time{inner})"
        ),
    ] {
        let Ok(Val::Vector(m)) = eval(&q) else {
            panic!("{q}: {:?}", eval(&q).err())
        };
        let mut levels: Vec<&str> = m.series.iter().map(|s| s["level"].as_str()).collect();
        levels.sort_unstable();
        assert_eq!(levels, ["error", "info"], "{q}");
    }
    let counts = at(&d, &format!("sum by (level) (count_over_time{inner})"), 60).unwrap();
    let counts: Vec<(&str, f64)> = counts
        .iter()
        .map(|(l, v)| (l["level"].as_str(), *v))
        .collect();
    assert_eq!(counts, [("error", 1.0), ("info", 2.0)]);
    // Not additive, or grouped by itself: every label set is held, and the limit applies.
    for q in [
        format!("max by (level) (count_over_time{inner})"),
        r#"sum by (level) (max_over_time({job="app"} | json | __error__="" | unwrap status [1m]))"#
            .to_owned(),
    ] {
        let e = eval(&q).unwrap_err().to_string();
        assert!(
            e.starts_with("maximum number of series (2) reached"),
            "{q}: {e}"
        );
    }
}

#[test]
fn a_pattern_that_matches_part_of_a_line_keeps_what_it_captured() {
    let d = data();
    // The logfmt line of {job="app"} has no `trace=`: `level` is captured, and `msg` runs to
    // the end of the line, as in Loki. The JSON lines do not start with `level=`: nothing.
    let out = logs(
        &d,
        r#"{job="app"} | pattern "level=<level> msg=<msg> trace=<trace>""#,
        10,
        Order::Forward,
    );
    assert_eq!(out.len(), 4, "the pattern parser filters nothing");
    let warn: Vec<_> = out.iter().filter(|e| e.0 == 45).collect();
    assert_eq!(warn[0].2.get("level").map(String::as_str), Some("warn"));
    assert_eq!(
        warn[0].2.get("msg").map(String::as_str),
        Some(r#""slow request" duration=500ms status=404 user=carol"#)
    );
    assert!(!warn[0].2.contains_key("trace"));
    assert!(
        out.iter()
            .filter(|e| e.0 != 45)
            .all(|e| !e.2.contains_key("msg"))
    );
    // As a line filter the same pattern does not match: `|>` needs every literal.
    let filtered = logs(
        &d,
        r#"{job="app"} |> "level=<_> msg=<_> trace=<_>""#,
        10,
        Order::Forward,
    );
    assert!(filtered.is_empty());
    let filtered = logs(
        &d,
        r#"{job="app"} |> "level=<_> msg=<_>""#,
        10,
        Order::Forward,
    );
    assert_eq!(filtered.len(), 1);
}
