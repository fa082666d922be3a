//! The files of `deploy/` checked with the tools that can check them: the systemd unit with
//! `systemd-analyze verify` and its `security` score (where systemd's tools are installed);
//! the alert rules and the Grafana data source parsed as YAML; the dashboard as JSON, its
//! LogQL parsed by daftari's own parser; every daftari metric the rules and the dashboard use
//! present in a real server's `/metrics`; the Alloy config checked for balanced blocks and
//! defined components (no Alloy binary is installable here). The annotated config is parsed
//! by a unit test of `config`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Command;

use common::inproc::InProc;
use common::server::request;
use yaml_rust2::{Yaml, YamlLoader};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// The highest exposure `systemd-analyze security` may give the unit (it scored 1.2).
const MAX_EXPOSURE: f64 = 2.0;

/// The unit with its ExecStart pointing at the binary under test.
fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{DEPLOY}/daftari.service")).unwrap();
    let unit = dir.join("daftari.service");
    std::fs::write(&unit, text.replace("/usr/bin/daftari", common::BIN)).unwrap();
    unit
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("systemd-analyze is not installed: the unit is not checked here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for daftari.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    assert!(score <= MAX_EXPOSURE, "exposure {score}:\n{text}");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "User=daftari",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(unit_text.contains(line), "{line:?} missing");
    }
}

/// `/metrics` of a real server that has taken a push and sealed an epoch.
fn live_metrics() -> String {
    let tmp = tempfile::tempdir().unwrap();
    let s = InProc::start(
        &tmp.path().join("data"),
        "",
        std::time::Duration::from_secs(1),
        None,
    );
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"x"}},"values":[["{}","x"]]}}]}}"#,
        daftari::clock::now_ns()
    );
    assert_eq!(s.push_json(&s.token, &body).status, 204);
    let q = "/loki/api/v1/query_range?query=%7Bjob%3D%22x%22%7D&since=1h";
    assert_eq!(request(s.local, "GET", q, &[], Vec::new()).status, 200);
    s.end_epoch();
    request(s.local, "GET", "/metrics", &[], Vec::new()).body
}

/// Every daftari metric `expr` names is declared in `metrics`.
fn assert_metrics_exist(expr: &str, metrics: &str) {
    let used: Vec<&str> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("daftari_"))
        .collect();
    assert!(!used.is_empty(), "{expr}");
    for m in used {
        let base = m.trim_end_matches("_bucket");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {m} "))
                    || l.starts_with(&format!("# TYPE {base} histogram"))),
            "{m} (in {expr}) is not in /metrics"
        );
    }
}

#[test]
fn the_dashboard_is_valid_and_its_queries_parse_and_exist() {
    let text =
        std::fs::read_to_string(format!("{DEPLOY}/grafana/dashboards/daftari.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let ids: std::collections::BTreeSet<u64> =
        panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let metrics = live_metrics();
    let (mut logql, mut promql) = (0, 0);
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            match t["datasource"]["type"].as_str().unwrap() {
                "loki" => {
                    daftari::query::logql::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
                    logql += 1;
                }
                "prometheus" => {
                    assert_metrics_exist(expr, &metrics);
                    promql += 1;
                }
                other => panic!("data source {other}"),
            }
        }
    }
    assert!(logql >= 3 && promql >= 10, "{logql} LogQL, {promql} PromQL");
}

#[test]
fn the_alert_rules_parse_and_use_only_metrics_daftari_exports() {
    let text = std::fs::read_to_string(format!("{DEPLOY}/prometheus/daftari-alerts.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let rules: Vec<&Yaml> = docs[0]["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap())
        .collect();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "DaftariHostSilent",
            "DaftariSealStale",
            "DaftariCheckpointExportFailing",
            "DaftariDiskNearlyFull",
            "DaftariPushesRefusedLowSpace",
            "DaftariAuthFailureBurst"
        ]
    );
    let metrics = live_metrics();
    for r in rules {
        let expr = r["expr"].as_str().unwrap();
        assert!(r["for"].as_str().is_some() && r["labels"]["severity"].as_str().is_some());
        assert!(r["annotations"]["summary"].as_str().is_some());
        assert_metrics_exist(expr, &metrics);
    }
}

/// An Alloy config without its comments, checked for balanced blocks and for every
/// component it references being defined in it.
fn alloy_code(file: &str) -> String {
    let text = std::fs::read_to_string(format!("{DEPLOY}/alloy/{file}")).unwrap();
    // Comments run from a `//` at the start or after white space (a URL's `://` is not one).
    let comment = regex::Regex::new(r"(^|\s)//.*$").unwrap();
    let code: String = text
        .lines()
        .map(|l| comment.replace(l, "").into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    // Balanced blocks.
    let mut depth = 0i32;
    for c in code.chars() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        assert!(depth >= 0, "a block closes twice");
    }
    assert_eq!(depth, 0, "a block is left open");
    // Every component referenced (`a.b.c.receiver`, `a.b.c.rules`, `a.b.c.targets`) is defined.
    let re = regex::Regex::new(
        r#"\b([a-z_]+\.[a-z_]+(?:\.[a-z_]+)?)\.([a-z_]+)\.(receiver|rules|targets|input|handler|content)\b"#,
    )
    .unwrap();
    for cap in re.captures_iter(&code) {
        let block = format!("{} \"{}\" {{", &cap[1], &cap[2]);
        assert!(code.contains(&block), "{} is used but not defined", &cap[0]);
    }
    code
}

#[test]
fn the_alloy_config_is_well_formed_and_sends_with_a_push_token_over_tls() {
    let code = alloy_code("config.alloy");
    let daftari = code.split("loki.write \"daftari\"").nth(1).unwrap();
    assert!(daftari.contains("https://") && daftari.contains("bearer_token_file"));
    assert!(daftari.contains("ca_file"));
    for job in ["auditd", "fail2ban", "aide"] {
        assert!(code.contains(&format!("job = \"{job}\"")), "{job}");
    }
}

#[test]
fn the_alloy_otlp_pipeline_sends_to_the_otlp_path_with_a_push_token_over_tls() {
    let code = alloy_code("otlp.alloy");
    let daftari = code
        .split("otelcol.exporter.otlphttp \"daftari\"")
        .nth(1)
        .unwrap();
    assert!(daftari.contains("endpoint    = \"https://") && daftari.contains("/otlp\""));
    assert!(daftari.contains("otelcol.auth.bearer.daftari.handler"));
    assert!(daftari.contains("ca_file"));
    assert!(code.contains("filename  = \"/etc/alloy/daftari-token\""));
}

#[test]
fn the_grafana_data_source_uses_the_read_listener_with_a_read_token() {
    let path = format!("{DEPLOY}/grafana/provisioning/datasources/daftari.yaml");
    let docs = YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ds = &docs[0]["datasources"][0];
    assert_eq!(ds["type"].as_str(), Some("loki"));
    assert!(ds["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(
        ds["jsonData"]["httpHeaderName1"].as_str(),
        Some("Authorization")
    );
    assert!(
        ds["secureJsonData"]["httpHeaderValue1"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ")
    );
}
