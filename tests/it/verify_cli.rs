//! `daftari verify` as an operator runs it: exit codes, the text report and the JSON report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::BIN).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn a_directory_without_a_ledger_cannot_be_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let (code, _, err) = run(&["verify", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no ledger at") && err.contains("Try:"),
        "{err}"
    );

    std::fs::create_dir_all(tmp.path().join("empty/segments")).unwrap();
    let (code, _, err) = run(&[
        "verify",
        "--data-dir",
        tmp.path().join("empty").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no segment files"), "{err}");
}

#[test]
fn bad_arguments_exit_2() {
    let (code, _, err) = run(&["verify", "--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn the_text_report_ends_with_the_summary_line() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_ledger(tmp.path(), 1 << 20, 3, 30);
    let (code, out, err) = run(&["verify", "--data-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("intact: 1 segments, 90 entries, "),
        "{last}"
    );
    assert!(last.ends_with(" entries/s"), "{last}");
    assert!(out.contains("head after seq 89: "), "{out}");
}

#[test]
fn the_text_report_names_the_first_break() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_ledger(tmp.path(), 1 << 20, 3, 30);
    let seg = common::segment_files(tmp.path()).remove(0);
    common::open_rw(&seg)
        .execute(
            "UPDATE blocks SET recv_ns = recv_ns + 1 WHERE first_seq = 30",
            [],
        )
        .unwrap();
    let (code, out, _) = run(&["verify", "--data-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with(
            "FIRST BREAK: modified: seg-000000000000.sqlite seq 30: blocks.recv_ns: expected "
        ),
        "{first}"
    );
    assert!(out.lines().last().unwrap().starts_with("broken: "), "{out}");
}
