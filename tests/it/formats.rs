//! Segment layouts answer alike: the same entries appended to a v1 and a v2 ledger give the
//! same answer to every query, and in v2 a needle search skips the blocks whose token filter
//! lacks one of its words without ever missing a line (a false negative is a wrong answer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{self, rng::Rng};

use std::collections::BTreeMap;
use std::time::Duration;

use daftari::query::engine::{Budget, Stats};
use daftari::query::logql::{self, Expr};
use daftari::query::metric::{self, Val};
use daftari::query::{Engine, Limits};
use daftari::store::{self, Batch, NewEntry, Order, Pairs, Stream};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;
const BATCHES: usize = 60;
const PER_BATCH: usize = 50;

const WORDS: &[&str] = &[
    "Failed",
    "password",
    "for",
    "root",
    "from",
    "port",
    "ssh2",
    "sudo",
    "COMMAND=/bin/sh",
    "user_id",
    "ädmin",
    "ключ",
    "session",
    "opened",
    "closed",
    "key=\"exec\"",
    "Ban",
    "[sshd]",
];

/// One entry's line (some with bytes that are not UTF-8) and metadata.
fn line(rng: &mut Rng) -> (Vec<u8>, Vec<(String, String)>) {
    let mut line = Vec::new();
    for i in 0..3 + rng.below(8) {
        if i > 0 {
            line.push(if rng.one_in(5) { b'\t' } else { b' ' });
        }
        match rng.below(6) {
            0 => line.extend_from_slice(
                format!("203.0.113.{}:{}", rng.below(255), rng.below(65535)).as_bytes(),
            ),
            1 => {
                let n = 4 + rng.below(12);
                line.extend_from_slice(rng.hex(n).as_bytes());
            }
            2 if rng.one_in(4) => line.extend_from_slice(b"x\xff\xfey"),
            _ => line.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes()),
        }
    }
    let mut meta = Vec::new();
    if rng.one_in(3) {
        meta.push(("trace_id".to_owned(), rng.hex(16)));
    }
    if rng.one_in(2) {
        let level = ["info", "warn", "error"][rng.below(3)];
        meta.push(("detected_level".to_owned(), level.to_owned()));
    }
    (line, meta)
}

/// One entry: stream labels, ts, line, metadata.
type Entry = (
    Vec<(&'static str, &'static str)>,
    i64,
    Vec<u8>,
    Vec<(String, String)>,
);

/// The batch whose every entry has a level and a metadata name of its own: more than a
/// block's columns list, so that block is read from its records.
const CROWDED_BATCH: usize = 7;

/// The entries, in append batches.
fn entries() -> Vec<Vec<Entry>> {
    entries_with(&["a", "b"])
}

fn entries_with(hosts: &[&'static str]) -> Vec<Vec<Entry>> {
    let mut rng = Rng::new(16);
    let jobs = [("job", "sshd"), ("job", "sudo"), ("job", "auditd")];
    (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|i| {
                    let (l, mut meta) = line(&mut rng);
                    if b == CROWDED_BATCH {
                        meta.retain(|(k, _)| k != "detected_level");
                        meta.push(("detected_level".into(), format!("level{i}")));
                        meta.push((format!("attr{i}"), "x".into()));
                    }
                    let host = hosts[rng.below(hosts.len())];
                    let labels = vec![jobs[rng.below(3)], ("host", host)];
                    (labels, T0 + ((b * PER_BATCH + i) as i64) * S, l, meta)
                })
                .collect()
        })
        .collect()
}

struct Ledger {
    _tmp: tempfile::TempDir,
    _ledger: store::Ledger,
    engine: Engine,
}

fn ledger(format: u32) -> Ledger {
    ledger_with(format, entries())
}

fn ledger_with(format: u32, entries: Vec<Vec<Entry>>) -> Ledger {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(tmp.path(), 64 * 1024);
    cfg.segment_format = format;
    let (ledger, appender, reader) = store::open(cfg).unwrap();
    for batch in entries {
        let mut streams: BTreeMap<Vec<(&str, &str)>, Vec<NewEntry>> = BTreeMap::new();
        for (labels, ts, line, meta) in batch {
            streams.entry(labels).or_default().push(NewEntry {
                ts_ns: ts,
                metadata: Pairs::new(meta).unwrap(),
                line,
            });
        }
        let streams = streams
            .into_iter()
            .map(|(labels, entries)| Stream {
                labels: common::labels(&labels),
                entries,
            })
            .collect();
        let batch = Batch {
            source: "formats".into(),
            tenant: String::new(),
            streams,
        };
        appender.append_blocking(batch).unwrap();
    }
    Ledger {
        _tmp: tmp,
        _ledger: ledger,
        engine: Engine::new(reader, Limits::default()),
    }
}

fn budget() -> Budget {
    Budget::new(
        Duration::from_secs(30),
        daftari::query::engine::DEFAULT_MAX_MEMORY_BYTES,
    )
}

const END: i64 = T0 + (BATCHES * PER_BATCH) as i64 * S;

/// A query's whole answer as text, and what the scan read.
fn answer(l: &Ledger, q: &str) -> (String, Stats) {
    match logql::parse(q).unwrap() {
        Expr::Log(e) => {
            let (entries, stats) = l
                .engine
                .logs(&e, (T0, END), 100_000, Order::Backward, budget())
                .unwrap();
            let lines: Vec<String> = entries
                .iter()
                .map(|e| format!("{} {} {:?}", e.ts_ns, e.line, e.labels.flat()))
                .collect();
            (lines.join("\n"), stats)
        }
        Expr::Metric(m) => {
            let times: Vec<i64> = (1..=10).map(|k| T0 + k * 300 * S).collect();
            let (v, stats) = metric::eval(&l.engine, &m, &times, budget()).unwrap();
            let text = match v {
                Val::Scalar(s) => format!("{s:?}"),
                // As a client sees it: each step's series in label order (which series a
                // scan met first is not part of the answer).
                Val::Vector(m) => {
                    let steps: Vec<Vec<(String, f64)>> = m
                        .points
                        .iter()
                        .map(|p| {
                            let mut v: Vec<(String, f64)> = p
                                .iter()
                                .map(|(i, x)| (format!("{:?}", m.series[*i]), *x))
                                .collect();
                            v.sort_by(|a, b| a.0.cmp(&b.0));
                            v
                        })
                        .collect();
                    format!("{steps:?}")
                }
            };
            (text, stats)
        }
    }
}

/// Needles cut from real lines at random places (so they start and end inside words as often
/// as not), and words no line holds.
fn needles() -> Vec<String> {
    let mut rng = Rng::new(99);
    let all: Vec<String> = entries()
        .into_iter()
        .flatten()
        .map(|e| String::from_utf8_lossy(&e.2).into_owned())
        .collect();
    let mut out: Vec<String> = (0..120)
        .map(|_| {
            let l: Vec<char> = all[rng.below(all.len())].chars().collect();
            let a = rng.below(l.len());
            let b = (a + 1 + rng.below(24)).min(l.len());
            l[a..b].iter().collect()
        })
        .collect();
    out.extend(["nowhere-at-all", " zzqx ", "root qqq", "\u{fffd}y"].map(String::from));
    out
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn every_query_answers_the_same_on_v1_and_v2_and_needles_never_miss() {
    let (v1, v2) = (ledger(1), ledger(2));
    // Filters see a line that is not UTF-8 as empty, on either layout.
    let all: Vec<String> = entries()
        .into_iter()
        .flatten()
        .filter_map(|e| String::from_utf8(e.2).ok())
        .collect();
    let mut skipped = 0;
    for needle in needles() {
        let q = format!(r#"{{job=~".+"}} |= {}"#, quoted(&needle));
        let (a, _) = answer(&v1, &q);
        let (b, stats) = answer(&v2, &q);
        assert_eq!(a, b, "{q}");
        let expected = all.iter().filter(|l| l.contains(&needle)).count();
        let got = if b.is_empty() { 0 } else { b.lines().count() };
        assert_eq!(got, expected, "{q}: a line holding the needle was missed");
        skipped += stats.scan.blocks_skipped;
        let counted = format!(
            r#"sum(count_over_time({{job=~".+"}} |= {} [5m]))"#,
            quoted(&needle)
        );
        assert_eq!(
            answer(&v1, &counted).0,
            answer(&v2, &counted).0,
            "{counted}"
        );
    }
    assert!(skipped > 0, "absent words must skip blocks");
    // Structured metadata: a trace id is found in its block, whatever else the filter asks.
    let traces: Vec<String> = entries()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.3.into_iter()
                .find(|(k, _)| k == "trace_id")
                .map(|(_, v)| v)
        })
        .step_by(17)
        .chain(["0123456789abcdef".to_owned()])
        .collect();
    let mut skipped = 0;
    for id in traces {
        let expected = entries()
            .into_iter()
            .flatten()
            .filter(|e| e.3.iter().any(|(k, v)| k == "trace_id" && *v == id))
            .count();
        for q in [
            format!(r#"{{job=~".+"}} | trace_id="{id}""#),
            format!(r#"{{job=~".+"}} | detected_level=~".*" and trace_id="{id}" | keep trace_id"#),
        ] {
            let (a, _) = answer(&v1, &q);
            let (b, stats) = answer(&v2, &q);
            assert_eq!(a, b, "{q}");
            let got = if b.is_empty() { 0 } else { b.lines().count() };
            assert_eq!(got, expected, "{q}: an entry with the trace id was missed");
            skipped += stats.scan.blocks_skipped;
        }
    }
    assert!(skipped > 0, "a trace id skips the blocks without it");
    for q in [
        r#"{job="sshd"}"#,
        r#"{job="sudo", host="a"} != "root" |~ "pass(word)?""#,
        r#"{job=~".+"} | detected_level="error""#,
        r#"{job=~".+"} | trace_id=~"a.*" | line_format "{{.trace_id}}""#,
        r#"{job=~".+"} | job="sshd" | host="a""#,
        r#"{job=~".+"} | json | trace_id="0123456789abcdef""#,
        r#"{job=~".+"} |= "root" | line_format "{{__line__}} root""#,
        r#"sum by (detected_level) (count_over_time({job=~".+"} [5m]))"#,
        r#"sum by (job) (bytes_over_time({job=~".+"} [5m]))"#,
        r#"sum by (host) (rate({job="sshd"} |= "Failed" [5m]))"#,
        r#"absent_over_time({job="sshd"} |= "nowhere-at-all" [5m])"#,
        r#"count_over_time({job="auditd"} |= "ключ" [10m])"#,
    ] {
        assert_eq!(answer(&v1, q).0, answer(&v2, q).0, "{q}");
    }
}

#[test]
fn aggregations_read_columns_where_they_answer_and_records_elsewhere_alike() {
    let (v1, v2) = (ledger(1), ledger(2));
    // (query, whether every block but the crowded one is answered from its columns)
    let cases = [
        (
            r#"sum by (detected_level) (count_over_time({job=~".+"} [5m]))"#,
            true,
        ),
        (
            r#"sum by (level, detected_level) (count_over_time({job=~".+"} | drop __error__ [5m]))"#,
            true,
        ),
        (
            r#"sum by (job, host) (bytes_over_time({job=~".+"} [5m]))"#,
            true,
        ),
        (r#"sum(bytes_rate({host="a"} [10m]))"#, true),
        (r#"sum by (job) (rate({job=~".+"} [1m]))"#, true),
        (r#"absent_over_time({job="sshd"} [5m])"#, true),
        (
            r#"sum without (trace_id) (count_over_time({job=~".+"} [5m]))"#,
            true,
        ),
        // trace_id is shown: blocks holding one are read from their records.
        (r#"count_over_time({job="sshd"} [5m])"#, false),
        (
            r#"sum by (trace_id) (count_over_time({job="sshd", host="a"} [5m]))"#,
            false,
        ),
        // A filter or a parser needs the lines.
        (r#"sum(count_over_time({job=~".+"} |= "root" [5m]))"#, false),
        (
            r#"sum by (detected_level) (count_over_time({job=~".+"} | logfmt [5m]))"#,
            false,
        ),
    ];
    for (q, columns) in cases {
        let (a, s1) = answer(&v1, q);
        let (b, s2) = answer(&v2, q);
        assert_eq!(a, b, "{q}");
        assert_eq!(s1.scan.blocks_from_columns, 0, "{q}: v1 has no columns");
        if columns {
            assert!(s2.scan.blocks_from_columns > 0, "{q}: {s2:?}");
            // Blocks inside one window bucket are summed from their groups; the ones a window
            // edge cuts (every sixth batch starts on one) are read row by row.
            assert!(s2.scan.blocks_from_summary > 0, "{q}: {s2:?}");
            assert!(
                s2.scan.blocks_from_summary < s2.scan.blocks_from_columns,
                "{q}: {s2:?}"
            );
            assert!(
                s2.scan.records_decoded <= PER_BATCH as u64 * 2,
                "{q}: only the crowded block is decoded: {s2:?}"
            );
        } else {
            assert!(
                s2.scan.records_decoded > PER_BATCH as u64 * 2,
                "{q}: {s2:?}"
            );
        }
    }
    let crowded = r#"sum by (detected_level, attr3) (count_over_time({job=~".+"} [5m]))"#;
    let (a, _) = answer(&v1, crowded);
    assert!(a.contains("level3") && a.contains("attr3"), "{a}");
    assert_eq!(a, answer(&v2, crowded).0);
    let sel = logql::parse(r#"{job=~"s.*"}"#).unwrap();
    let Expr::Log(sel) = sel else { unreachable!() };
    let stats = |l: &Ledger, (from, to)| {
        let s = l
            .engine
            .index_stats(&sel.matchers, from, to, budget())
            .unwrap();
        (s.streams, s.entries, s.bytes)
    };
    // The whole ledger (every block summed), and a range that cuts blocks at both ends.
    for range in [(T0, END), (T0 + 1_234 * S, END - 777 * S)] {
        assert_eq!(stats(&v1, range), stats(&v2, range), "{range:?}");
    }
    assert_ne!(
        stats(&v2, (T0 + 1_234 * S, END - 777 * S)).1,
        stats(&v2, (T0, END)).1
    );
}

#[test]
fn queries_walk_blocks_or_plan_them_through_block_streams_alike() {
    // 72 streams: a query of one is planned through block_streams, a query of many walks
    // every block and keeps those whose summary holds one of its streams.
    let hosts: Vec<&'static str> = (0..24)
        .map(|i| &*Box::leak(format!("h{i:02}").into_boxed_str()))
        .collect();
    let (v1, v2) = (
        ledger_with(1, entries_with(&hosts)),
        ledger_with(2, entries_with(&hosts)),
    );
    for q in [
        r#"sum by (detected_level) (count_over_time({job="sshd", host="h07"} [5m]))"#,
        r#"sum(bytes_over_time({host="h11"} [1m]))"#,
        r#"sum by (host) (count_over_time({job=~".+"} [5m]))"#,
        r#"sum by (job) (count_over_time({host=~"h0.*"} |= "root" [5m]))"#,
        r#"{job="sshd", host="h07"}"#,
        r#"{host=~"h0.*"} |= "root""#,
        r#"{job=~".+"} |= "password""#,
    ] {
        let (a, _) = answer(&v1, q);
        let (b, stats) = answer(&v2, q);
        assert!(a.len() > 10, "{q}: {a}");
        assert_eq!(a, b, "{q}: {stats:?}");
    }
}

#[test]
fn a_word_no_line_holds_reads_almost_no_block() {
    let v2 = ledger(2);
    let (_, everything) = answer(&v2, r#"{job=~".+"}"#);
    // Only the blocks whose filter answers "maybe" (about 1%) are read.
    let (_, needle) = answer(&v2, r#"{job=~".+"} |= " no-such-token-here ""#);
    assert!(
        everything.scan.blocks_read >= BATCHES as u64,
        "{everything:?}"
    );
    assert!(
        needle.scan.blocks_read * 10 <= everything.scan.blocks_read,
        "{needle:?} of {everything:?}"
    );
}
