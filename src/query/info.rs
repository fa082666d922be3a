//! The read API's answers that run no query: `status/buildinfo` and `format_query`.
//!
//! Owns: the Loki version daftari claims, and LogQL printed in Loki's canonical form.
//!
//! Must not: read the ledger.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Audit;
use super::encode::json_response;
use super::logql;
use super::params::Params;

pub(super) fn format_query(p: &Params) -> Response {
    let text = p.get("query").unwrap_or("");
    match logql::parse(text) {
        Ok(e) => json_response(
            json!({"status": "success", "data": logql::pretty(&e)}),
            Audit::default(),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"status": "invalid-query", "error": e.to_string()}).to_string(),
        )
            .into_response(),
    }
}

/// The Loki version `status/buildinfo` claims: Grafana turns features on by it. 3.6.0 is the
/// release that added the newest read endpoint daftari serves (`drilldown-limits`, with
/// `patterns` by level and `detected_*`); nothing Grafana calls was added to the read API
/// after it.
pub const BUILD_VERSION: &str = concat!("3.6.0+daftari.", env!("CARGO_PKG_VERSION"));

pub(super) fn build_info() -> Value {
    json!({
        "version": BUILD_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": ""
    })
}
