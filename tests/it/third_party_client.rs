//! A third-party Loki client, installed from PyPI (python-logging-loki, JSON push with Basic
//! auth, the secret as the password), logs to the real server; what it sent is in the ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::server::{Server, pushed};

#[test]
fn python_logging_loki_pushes_into_the_ledger() {
    let python = common::python_venv(
        "pyclient-venv",
        "python-logging-loki==0.3.1",
        "logging_loki",
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec/python_loki_client.py");
    let url = format!("http://{}/loki/api/v1/push", s.push);
    let out = Command::new(python)
        .arg(script)
        .arg(&url)
        .arg(&s.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
