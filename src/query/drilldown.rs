//! `drilldown-limits`: the limits Grafana's Logs Drilldown reads before it builds its pages,
//! with the keys Loki answers (values are daftari's own).
//!
//! Owns: the answer's shape and the truth of its values: what daftari detects at ingestion
//! (`discover_service_name`, `log_level_fields`), what a query may ask for, and which Loki
//! features exist here (`pattern_ingester_enabled`: yes, so Drilldown shows its Patterns tab).
//!
//! Must not: read the ledger.

use serde_json::{Value, json};

use super::engine::Limits;
use crate::push::enrich::{LEVEL_FIELDS, SERVICE_NAME_SOURCES};

/// Series an `index/volume` answer lists at most.
pub const VOLUME_MAX_SERIES: usize = 1000;

/// The answer to `GET /loki/api/v1/drilldown-limits`.
pub fn limits(l: &Limits) -> Value {
    let secs = |d: std::time::Duration| match d.as_secs() {
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    json!({
        "limits": {
            "discover_log_levels": true,
            "discover_service_name": SERVICE_NAME_SOURCES,
            "log_level_fields": LEVEL_FIELDS,
            "max_entries_limit_per_query": l.max_entries,
            "max_line_size_truncate": false,
            "max_query_bytes_read": "0B",
            "max_query_length": "0s",
            "max_query_lookback": "0s",
            "max_query_range": "0s",
            "max_query_series": l.max_series,
            "metric_aggregation_enabled": false,
            // No OTLP ingestion maps resource attributes to labels here.
            "otlp_config": {"resource_attributes": {"attributes_config": []}},
            "pattern_persistence_enabled": false,
            "query_timeout": secs(l.timeout),
            // Retention removes whole segments, outside the query path; nothing is hidden
            // from a query by age.
            "retention_period": "0s",
            "volume_enabled": true,
            "volume_max_series": VOLUME_MAX_SERIES,
        },
        // Patterns are mined at query time (`patterns`), so the Patterns tab has data.
        "pattern_ingester_enabled": true,
        "version": super::info::BUILD_VERSION,
    })
}
