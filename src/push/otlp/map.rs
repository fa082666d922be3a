//! OTLP log records to the streams a Loki push carries, as Loki's OTLP ingestion maps them.
//!
//! Owns: which resource attributes become stream labels ([`INDEX_ATTRIBUTES`], Loki's
//! default list), `service_name` when none is sent, and the structured metadata of each
//! entry: its own attributes, then `observed_timestamp`, `severity_number`, `severity_text`,
//! `dropped_attributes_count`, `flags`, `trace_id`, `span_id`, then the resource's other
//! attributes, then the scope's (`scope_name`, `scope_version` and its attributes). A name
//! met twice keeps its first value. The body becomes the line (`value::text`). The copies of
//! resource and scope metadata in every entry are charged to the push budget before they are
//! made, and so is every name and value the mapping builds (`value::Meter`).
//!
//! Must not: validate or enforce limits on entries; that is `validate`, for both formats.

use bytes::Bytes;

use super::proto::{ExportLogsServiceRequest, InstrumentationScope, KeyValue, LogRecord, Value};
use super::value::{self, Meter};
use crate::push::enrich::{SERVICE_NAME, SERVICE_NAME_SOURCES, SEVERITY_NUMBER};
use crate::push::error::PushError;
use crate::push::memory::{Charge, PAIR_OVERHEAD};
use crate::push::raw::{Decoded, RawEntry, RawLabels, RawStream};

/// Resource attributes that become stream labels: Loki's
/// `default_resource_attributes_as_index_labels`. Every other attribute is structured
/// metadata, so a sender cannot grow the number of streams with them.
pub const INDEX_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

const UNKNOWN_SERVICE: &str = "unknown_service";

/// Maps a decoded request; `now_ns` stamps records that carry no time at all.
pub fn to_raw(
    req: ExportLogsServiceRequest,
    charge: &mut Charge<'_>,
    now_ns: i64,
) -> Result<Decoded, PushError> {
    let mut meter = Meter::new(charge);
    let mut streams = Vec::with_capacity(req.resource_logs.len());
    let mut bytes = 0usize;
    for rl in req.resource_logs {
        let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let (labels, resource_meta) = resource(&attrs, &mut meter)?;
        let mut entries = Vec::new();
        for sl in rl.scope_logs {
            let mut shared = scope(sl.scope.as_ref(), &mut meter)?;
            shared.splice(0..0, resource_meta.iter().cloned());
            let shared_cost: usize = shared
                .iter()
                .map(|(n, v)| n.len() + v.len() + PAIR_OVERHEAD)
                .sum();
            entries.reserve(sl.log_records.len());
            for r in sl.log_records {
                meter.add(shared_cost)?;
                let e = entry(r, &shared, now_ns, &mut meter)?;
                bytes += e.line.len()
                    + e.metadata
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>();
                entries.push(e);
            }
        }
        streams.push(RawStream {
            labels: RawLabels::Pairs(labels),
            entries,
        });
    }
    meter.finish()?;
    Ok(Decoded {
        streams,
        raw_bytes: bytes,
    })
}

type Pairs = Vec<(String, String)>;

/// The stream labels and the other attributes of one resource.
fn resource(attrs: &[KeyValue], meter: &mut Meter<'_, '_>) -> Result<(Pairs, Pairs), PushError> {
    let (mut labels, mut meta) = (Pairs::new(), Pairs::new());
    for kv in attrs {
        let into = if INDEX_ATTRIBUTES.contains(&kv.key.as_str()) {
            &mut labels
        } else {
            &mut meta
        };
        value::flatten(kv, into, meter)?;
    }
    // A repeated label keeps its last value, as a map does.
    let mut seen = std::collections::BTreeMap::new();
    for (n, v) in labels {
        seen.insert(n, v);
    }
    let mut labels: Pairs = seen.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if !labels.iter().any(|(n, _)| n == SERVICE_NAME) {
        let found = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|s| labels.iter().find(|(n, _)| n == s).map(|(_, v)| v.clone()));
        labels.push((
            SERVICE_NAME.into(),
            found.unwrap_or_else(|| UNKNOWN_SERVICE.into()),
        ));
    }
    Ok((labels, meta))
}

/// The scope's metadata: its attributes, then its name, version and dropped count.
fn scope(
    scope: Option<&InstrumentationScope>,
    meter: &mut Meter<'_, '_>,
) -> Result<Pairs, PushError> {
    let mut out = Pairs::new();
    let Some(s) = scope else {
        return Ok(out);
    };
    for kv in &s.attributes {
        value::flatten(kv, &mut out, meter)?;
    }
    let fields = [
        ("scope_name", s.name.clone()),
        ("scope_version", s.version.clone()),
        (
            "scope_dropped_attributes_count",
            nonzero(s.dropped_attributes_count),
        ),
    ];
    out.extend(
        fields
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_string(), v)),
    );
    Ok(out)
}

fn nonzero(n: impl Into<i64>) -> String {
    let n = n.into();
    if n == 0 { String::new() } else { n.to_string() }
}

/// An id as Loki writes it: hex, absent when empty or all zeros.
fn id(b: &[u8]) -> String {
    if b.iter().all(|&x| x == 0) {
        String::new()
    } else {
        hex::encode(b)
    }
}

fn entry(
    r: LogRecord,
    shared: &Pairs,
    now_ns: i64,
    meter: &mut Meter<'_, '_>,
) -> Result<RawEntry, PushError> {
    let mut meta = Pairs::with_capacity(r.attributes.len() + 8 + shared.len());
    for kv in &r.attributes {
        value::flatten(kv, &mut meta, meter)?;
    }
    let observed = if r.time_unix_nano != 0 && r.observed_time_unix_nano != 0 {
        r.observed_time_unix_nano.to_string()
    } else {
        String::new()
    };
    let fields = [
        ("observed_timestamp", observed),
        (SEVERITY_NUMBER, nonzero(r.severity_number)),
        ("severity_text", r.severity_text),
        (
            "dropped_attributes_count",
            nonzero(r.dropped_attributes_count),
        ),
        ("flags", nonzero(r.flags)),
        ("trace_id", id(&r.trace_id)),
        ("span_id", id(&r.span_id)),
    ];
    meta.extend(
        fields
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_string(), v)),
    );
    meta.extend(shared.iter().cloned());
    let mut seen = std::collections::HashSet::with_capacity(meta.len());
    meta.retain(|(n, _)| seen.insert(n.clone()));
    let ts = [r.time_unix_nano, r.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0)
        .map_or(Ok(now_ns), |t| {
            i64::try_from(t).map_err(|_| "timestamp out of range")
        });
    let line = match r.body.and_then(|b| b.value) {
        Some(Value::StringValue(s)) => s,
        other => {
            meter.add(value::text_bound(other.as_ref()))?;
            value::text(other.as_ref())
        }
    };
    Ok(RawEntry {
        ts_ns: ts,
        line: Bytes::from(line),
        metadata: meta
            .into_iter()
            .map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
            .collect(),
    })
}
