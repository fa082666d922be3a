//! `daftari serve` and `daftari token` as an operator runs them: configuration errors that
//! name the key, the loopback rule, the first start's bootstrap token and its curl line, and
//! the token listing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::BIN;
use common::server::{Server, pushed};

fn serve_fails(args: &[&str]) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_the_key_at_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("[limits]\nmax_line_size = 0\n", "limits.max_line_size"),
        ("[push]\nlisten = \"nowhere\"\n", "push.listen"),
        ("[push]\nheader_timeout = \"soon\"\n", "push.header_timeout"),
        ("[push]\ntls_cert = \"/x.pem\"\n", "push.tls_key"),
        ("[limtis]\n", "limtis"),
    ];
    for (text, key) in cases {
        let path = tmp.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (code, err) = serve_fails(&["--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(key), "{text}: expected {key:?} in {err}");
    }
}

#[test]
fn the_local_listener_must_be_loopback() {
    for addr in ["0.0.0.0:0", "192.0.2.1:3101", "[::]:0"] {
        let (code, err) = serve_fails(&["--local-listen", addr, "--push-listen", "127.0.0.1:0"]);
        assert_eq!(code, 2, "{addr}: {err}");
        assert!(
            err.contains("local.listen") && err.contains("not a loopback address"),
            "{err}"
        );
    }
}

#[test]
fn the_first_start_makes_a_bootstrap_token_and_a_curl_line_that_works() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]);
    let token_file = data.join("bootstrap-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let curl = s
        .stderr
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("curl "))
        .cloned()
        .expect("a curl line on stderr");
    assert!(
        !curl.contains(&s.token),
        "the secret itself must not be printed"
    );
    let out = Command::new("bash").arg("-c").arg(&curl).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "204",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.stop().success());
    let got = pushed(&data);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, b"hello from curl");
    assert_eq!(got[0].source, "bootstrap");

    // A second start keeps the token and prints no new one.
    let s = Server::start(&data, &[]);
    assert!(
        !s.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("curl "))
    );
    assert!(s.stop().success());
}

#[test]
fn a_stop_signal_sent_as_soon_as_a_listener_is_announced_is_a_clean_stop() {
    // Supervisors and scripts stop the sink as soon as it says it listens; the signal
    // must already be handled then (drain, close, exit 0), never the default fatal action.
    use std::io::{BufRead, BufReader, Read};
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(tmp.path().join(format!("data{i}")))
            .args([
                "--push-listen",
                "127.0.0.1:0",
                "--local-listen",
                "127.0.0.1:0",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("push listener on") {
            line.clear();
            assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no listener line");
        }
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "start {i}: {status:?}\n{rest}");
    }
}

#[test]
fn token_list_shows_kind_labels_creation_and_last_use_but_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]);
    let secret = s.create_token("web-1", &["--label", "host=web-1"]);
    assert!(secret.starts_with("dft_") && secret.len() > 40);
    std::thread::sleep(Duration::from_millis(600));
    let body = r#"{"streams":[{"stream":{"job":"a"},"values":[["1754400000000000000","x"]]}]}"#;
    assert_eq!(s.push_json(&secret, body).status, 204);
    assert!(s.stop().success());
    let list = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["token", "list"])
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = list(&[]);
    assert!(!text.contains(&secret));
    let web = text.lines().find(|l| l.starts_with("web-1\t")).unwrap();
    let cols: Vec<&str> = web.split('\t').collect();
    assert_eq!(&cols[..3], ["web-1", "push", "host=web-1"]);
    assert!(
        cols[4].starts_with("20"),
        "last use recorded at shutdown: {web}"
    );
    let out = Command::new(BIN)
        .args(["token", "revoke", "web-1", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!list(&[]).contains("web-1"));
    let all = list(&["--all", "--json"]);
    let revoked: serde_json::Value =
        serde_json::from_str(all.lines().find(|l| l.contains("web-1")).unwrap()).unwrap();
    assert!(revoked["revoked_ns"].as_i64().is_some());
    let again = Command::new(BIN)
        .args(["token", "revoke", "web-1", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live token named \"web-1\""));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &["--log-format", "json"]);
    let r = s.push_json("dft_wrong", "{}");
    assert_eq!(r.status, 401);
    let lines = s.stderr.clone();
    assert!(s.stop().success());
    let lines = lines.lock().unwrap();
    let logs: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("daftari: ") && !l.starts_with("curl "))
        .collect();
    assert!(logs.len() >= 2, "{lines:#?}");
    for l in logs {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}
