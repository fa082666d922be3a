//! Which read endpoint a request path reaches, under any path prefix (Grafana and reverse
//! proxies put the API below their own paths).
//!
//! Owns: the table of Loki's read paths and the fixed endpoint names metrics use.
//!
//! Must not: read parameters or answer; it only names.

/// The endpoints of the read API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Query,
    QueryRange,
    Labels,
    LabelValues(String),
    Series,
    IndexStats,
    Volume,
    VolumeRange,
    BuildInfo,
    DrilldownLimits,
    DetectedLabels,
    DetectedFields,
    DetectedFieldValues(String),
    Patterns,
    FormatQuery,
    Tail,
    /// The ruler's YAML endpoints: no rule groups.
    NoRules,
    PromRules,
    PromAlerts,
    Ready,
}

pub(super) fn endpoint(path: &str) -> Option<Endpoint> {
    if let Some(i) = path.find("/loki/api/v1/") {
        let rest = &path[i + "/loki/api/v1/".len()..];
        return Some(match rest {
            "query" => Endpoint::Query,
            "query_range" => Endpoint::QueryRange,
            "labels" | "label" => Endpoint::Labels,
            "series" => Endpoint::Series,
            "index/stats" => Endpoint::IndexStats,
            "index/volume" => Endpoint::Volume,
            "index/volume_range" => Endpoint::VolumeRange,
            "status/buildinfo" => Endpoint::BuildInfo,
            "format_query" => Endpoint::FormatQuery,
            "tail" => Endpoint::Tail,
            "drilldown-limits" => Endpoint::DrilldownLimits,
            "detected_labels" => Endpoint::DetectedLabels,
            "detected_fields" => Endpoint::DetectedFields,
            "patterns" => Endpoint::Patterns,
            r if r.starts_with("detected_field/") => {
                let name = r.strip_prefix("detected_field/")?.strip_suffix("/values")?;
                Endpoint::DetectedFieldValues(percent_decode(name)?)
            }
            "rules" => Endpoint::NoRules,
            r if r.starts_with("rules/") => Endpoint::NoRules,
            r => {
                let name = r.strip_prefix("label/")?.strip_suffix("/values")?;
                Endpoint::LabelValues(percent_decode(name)?)
            }
        });
    }
    if path.ends_with("/prometheus/api/v1/rules") {
        return Some(Endpoint::PromRules);
    }
    if path.ends_with("/prometheus/api/v1/alerts") {
        return Some(Endpoint::PromAlerts);
    }
    if path.ends_with("/api/v1/status/buildinfo") {
        return Some(Endpoint::BuildInfo);
    }
    if path.ends_with("/api/prom/rules") || path.contains("/api/prom/rules/") {
        return Some(Endpoint::NoRules);
    }
    if path == "/ready" || path.ends_with("/ready") {
        return Some(Endpoint::Ready);
    }
    None
}

/// The fixed name of the endpoint `path` reaches, for metrics (never the path itself, whose
/// prefix and label names come from the client).
pub fn endpoint_name(path: &str) -> &'static str {
    match endpoint(path) {
        Some(Endpoint::Query) => "query",
        Some(Endpoint::QueryRange) => "query_range",
        Some(Endpoint::Labels) => "labels",
        Some(Endpoint::LabelValues(_)) => "label_values",
        Some(Endpoint::Series) => "series",
        Some(Endpoint::IndexStats) => "index_stats",
        Some(Endpoint::Volume) => "index_volume",
        Some(Endpoint::VolumeRange) => "index_volume_range",
        Some(Endpoint::BuildInfo) => "buildinfo",
        Some(Endpoint::DrilldownLimits) => "drilldown_limits",
        Some(Endpoint::DetectedLabels) => "detected_labels",
        Some(Endpoint::DetectedFields) => "detected_fields",
        Some(Endpoint::DetectedFieldValues(_)) => "detected_field_values",
        Some(Endpoint::Patterns) => "patterns",
        Some(Endpoint::FormatQuery) => "format_query",
        Some(Endpoint::Tail) => "tail",
        Some(Endpoint::NoRules | Endpoint::PromRules | Endpoint::PromAlerts) => "rules",
        Some(Endpoint::Ready) => "ready",
        None => "unknown",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_under_any_prefix() {
        assert_eq!(endpoint("/loki/api/v1/query"), Some(Endpoint::Query));
        assert_eq!(
            endpoint("/daftari/loki/api/v1/query_range"),
            Some(Endpoint::QueryRange)
        );
        assert_eq!(
            endpoint("/loki/api/v1/label/service%5Fname/values"),
            Some(Endpoint::LabelValues("service_name".into()))
        );
        assert_eq!(
            endpoint("/grafana/loki/api/v1/detected_labels"),
            Some(Endpoint::DetectedLabels)
        );
        assert_eq!(
            endpoint("/loki/api/v1/detected_field/status%5Fcode/values"),
            Some(Endpoint::DetectedFieldValues("status_code".into()))
        );
        assert_eq!(endpoint("/loki/api/v1/patterns"), Some(Endpoint::Patterns));
        assert_eq!(endpoint("/loki/api/v1/push"), None);
        assert_eq!(endpoint("/loki/api/v1/delete"), None);
        assert_eq!(
            endpoint("/x/prometheus/api/v1/rules"),
            Some(Endpoint::PromRules)
        );
    }
}
