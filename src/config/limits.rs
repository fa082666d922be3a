//! The `[limits]` section: the push plane's per-request, per-entry and per-token bounds.
//!
//! Owns: its keys, defaults (named in `push`) and validation.
//!
//! Must not: open listeners or read anything but its input.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, bad, dur};
use crate::push::Limits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    max_body_bytes: Option<usize>,
    max_decompressed_bytes: Option<usize>,
    max_entries_per_request: Option<usize>,
    max_streams_per_request: Option<usize>,
    max_inflight_pushes: Option<usize>,
    max_inflight_bytes: Option<usize>,
    token_max_inflight_bytes: Option<usize>,
    token_max_inflight_pushes: Option<usize>,
    min_body_bytes_per_second: Option<u64>,
    max_line_size: Option<usize>,
    max_label_names_per_series: Option<usize>,
    max_label_name_length: Option<usize>,
    max_label_value_length: Option<usize>,
    max_structured_metadata_size: Option<usize>,
    max_structured_metadata_entries_count: Option<usize>,
    creation_grace_period: Option<String>,
    token_entries_per_second: Option<u64>,
    token_bytes_per_second: Option<u64>,
    token_burst_seconds: Option<u64>,
    auth_failures_per_minute: Option<u32>,
}

pub(super) fn build(l: &LimitsFile, body_timeout: Duration) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let out = Limits {
        max_body_bytes: l.max_body_bytes.unwrap_or(d.max_body_bytes),
        max_decompressed_bytes: l.max_decompressed_bytes.unwrap_or(d.max_decompressed_bytes),
        max_entries_per_request: l
            .max_entries_per_request
            .unwrap_or(d.max_entries_per_request),
        max_streams_per_request: l
            .max_streams_per_request
            .unwrap_or(d.max_streams_per_request),
        max_inflight_pushes: l.max_inflight_pushes.unwrap_or(d.max_inflight_pushes),
        max_inflight_bytes: l.max_inflight_bytes.unwrap_or(d.max_inflight_bytes),
        token_max_inflight_bytes: l
            .token_max_inflight_bytes
            .or(l
                .max_inflight_bytes
                .map(|b| b.min(d.token_max_inflight_bytes)))
            .unwrap_or(d.token_max_inflight_bytes),
        token_max_inflight_pushes: l
            .token_max_inflight_pushes
            .or(l
                .max_inflight_pushes
                .map(|n| n.min(d.token_max_inflight_pushes)))
            .unwrap_or(d.token_max_inflight_pushes),
        min_body_bytes_per_second: l
            .min_body_bytes_per_second
            .unwrap_or(d.min_body_bytes_per_second),
        max_line_size: l.max_line_size.unwrap_or(d.max_line_size),
        max_label_names_per_series: l
            .max_label_names_per_series
            .unwrap_or(d.max_label_names_per_series),
        max_label_name_length: l.max_label_name_length.unwrap_or(d.max_label_name_length),
        max_label_value_length: l.max_label_value_length.unwrap_or(d.max_label_value_length),
        max_metadata_bytes: l
            .max_structured_metadata_size
            .unwrap_or(d.max_metadata_bytes),
        max_metadata_entries: l
            .max_structured_metadata_entries_count
            .unwrap_or(d.max_metadata_entries),
        creation_grace: dur(
            "limits.creation_grace_period",
            &l.creation_grace_period,
            d.creation_grace,
        )?,
        token_entries_per_second: l
            .token_entries_per_second
            .unwrap_or(d.token_entries_per_second),
        token_bytes_per_second: l.token_bytes_per_second.unwrap_or(d.token_bytes_per_second),
        token_burst_seconds: l.token_burst_seconds.unwrap_or(d.token_burst_seconds),
        auth_failures_per_minute: l
            .auth_failures_per_minute
            .unwrap_or(d.auth_failures_per_minute),
        body_timeout,
    };
    let positive = [
        ("limits.max_body_bytes", out.max_body_bytes),
        ("limits.max_decompressed_bytes", out.max_decompressed_bytes),
        (
            "limits.max_entries_per_request",
            out.max_entries_per_request,
        ),
        (
            "limits.max_streams_per_request",
            out.max_streams_per_request,
        ),
        ("limits.max_inflight_pushes", out.max_inflight_pushes),
        (
            "limits.token_max_inflight_pushes",
            out.token_max_inflight_pushes,
        ),
        ("limits.max_line_size", out.max_line_size),
        (
            "limits.max_label_names_per_series",
            out.max_label_names_per_series,
        ),
        ("limits.max_label_name_length", out.max_label_name_length),
        ("limits.max_label_value_length", out.max_label_value_length),
    ];
    for (key, v) in positive {
        if v == 0 {
            return Err(bad(key, "must be at least 1"));
        }
    }
    if out.max_line_size >= crate::store::chain::MAX_BSTR {
        return Err(bad(
            "limits.max_line_size",
            format!("must be below {} bytes", crate::store::chain::MAX_BSTR),
        ));
    }
    check_budget(&out)?;
    if out.token_burst_seconds == 0 {
        return Err(bad("limits.token_burst_seconds", "must be at least 1"));
    }
    Ok(out)
}

/// The push budget and each token's share must hold the largest request the other limits
/// allow: otherwise that request could never pass and agents would retry it forever.
fn check_budget(out: &Limits) -> Result<(), ConfigError> {
    use crate::push::memory::{ENTRY_OVERHEAD, STREAM_OVERHEAD, largest_request};
    let largest = largest_request(out);
    let why = format!(
        "must be at least {largest} bytes, what the largest request the other limits allow \
         can hold (max_body_bytes + 4 x max_decompressed_bytes + {ENTRY_OVERHEAD} bytes per \
         entry of max_entries_per_request + {STREAM_OVERHEAD} bytes per stream of \
         max_streams_per_request); otherwise that request could never pass"
    );
    if out.max_inflight_bytes < largest {
        return Err(bad("limits.max_inflight_bytes", why));
    }
    if out.token_max_inflight_bytes < largest {
        return Err(bad("limits.token_max_inflight_bytes", why));
    }
    if out.token_max_inflight_bytes > out.max_inflight_bytes {
        return Err(bad(
            "limits.token_max_inflight_bytes",
            "must be at most limits.max_inflight_bytes",
        ));
    }
    if out.token_max_inflight_pushes > out.max_inflight_pushes {
        return Err(bad(
            "limits.token_max_inflight_pushes",
            "must be at most limits.max_inflight_pushes",
        ));
    }
    Ok(())
}
