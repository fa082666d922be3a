//! Syslog messages to the streams a push carries, in the order they came.
//!
//! Owns: the mapping, documented in README.md: stream labels `job="syslog"`, `host`
//! (HOSTNAME), `app_name` (APP-NAME or the RFC 3164 tag) and `facility` (its name), the few
//! values with few distinct values; structured metadata `severity` (its name, which
//! `detected_level` is derived from), `procid`, `msgid` and each RFC 5424 structured-data
//! parameter as `sd_<id>_<name>`; the message as the line (a message that is not UTF-8 has
//! each invalid sequence replaced by U+FFFD, so it is stored rather than refused); the header's
//! time, else the time it was received. The token's forced labels (`--label host=…`) replace a
//! sender's own `host` in `validate`, as for every push.
//!
//! Must not: frame, parse or validate.

use bytes::Bytes;

use super::parse::{self, FACILITIES, SEVERITIES};
use crate::push::otlp::label_name;
use crate::push::raw::{Decoded, RawEntry, RawLabels, RawStream};

type Labels = Vec<(String, String)>;

/// The `job` label of every syslog stream.
pub const JOB: &str = "syslog";

/// Maps `frames`, each one message, in their order: consecutive messages with the same
/// labels share a stream, so the ledger keeps the order they arrived in. `now_ns` is the
/// receive time.
pub fn to_raw(frames: &[Bytes], now_ns: i64) -> Decoded {
    let mut runs: Vec<(Labels, Vec<RawEntry>)> = Vec::new();
    let mut raw_bytes = 0;
    for f in frames {
        let m = parse::parse(f, now_ns);
        let mut labels = vec![("job".to_string(), JOB.to_string())];
        let named = [
            ("host", m.hostname),
            ("app_name", m.app_name),
            ("facility", FACILITIES.get(usize::from(m.facility)).copied()),
        ];
        labels.extend(
            named
                .into_iter()
                .filter_map(|(n, v)| Some((n.to_string(), v?.to_string()))),
        );
        let mut metadata = vec![pair("severity", SEVERITIES[usize::from(m.severity & 7)])];
        metadata.extend(m.procid.map(|v| pair("procid", v)));
        metadata.extend(m.msgid.map(|v| pair("msgid", v)));
        for (id, name, value) in &m.structured {
            if let Ok(n) = label_name(&format!("sd_{id}_{name}")) {
                metadata.push((Bytes::from(n), Bytes::from(value.clone())));
            }
        }
        let line = match std::str::from_utf8(m.msg) {
            Ok(_) => f.slice_ref(m.msg),
            Err(_) => Bytes::from(String::from_utf8_lossy(m.msg).into_owned()),
        };
        raw_bytes += f.len();
        let entry = RawEntry {
            ts_ns: Ok(m.timestamp.unwrap_or(now_ns)),
            line,
            metadata,
        };
        match runs.last_mut() {
            Some((l, entries)) if *l == labels => entries.push(entry),
            _ => runs.push((labels, vec![entry])),
        }
    }
    Decoded {
        streams: runs
            .into_iter()
            .map(|(labels, entries)| RawStream {
                labels: RawLabels::Pairs(labels),
                entries,
            })
            .collect(),
        raw_bytes,
    }
}

fn pair(name: &'static str, value: &str) -> (Bytes, Bytes) {
    (
        Bytes::from_static(name.as_bytes()),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_group_into_streams_with_their_fields() {
        let frames = [
            Bytes::from_static(b"<38>1 2026-12-04T10:00:00Z bastion-1 sshd 42 AUTH [origin ip=\"203.0.113.7\"] Failed password"),
            Bytes::from_static(b"<86>Dec  4 09:59:58 bastion-1 sshd[43]: Accepted publickey"),
            Bytes::from_static(b"<11>bad \xff byte"),
        ];
        let d = to_raw(&frames, 1_796_410_000_000_000_000);
        assert_eq!(d.streams.len(), 3);
        let failed = |s: &&RawStream| s.entries[0].line.starts_with(b"Failed");
        let sshd = d.streams.iter().find(failed).unwrap();
        let RawLabels::Pairs(first) = &sshd.labels else {
            panic!("syslog labels are pairs")
        };
        assert_eq!(
            first,
            &[
                ("job".to_string(), "syslog".to_string()),
                ("host".to_string(), "bastion-1".to_string()),
                ("app_name".to_string(), "sshd".to_string()),
                ("facility".to_string(), "auth".to_string()),
            ]
        );
        let e = &sshd.entries[0];
        assert_eq!(&e.line[..], b"Failed password");
        let meta: Vec<(&[u8], &[u8])> = e.metadata.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(
            meta,
            [
                (&b"severity"[..], &b"informational"[..]),
                (b"procid", b"42"),
                (b"msgid", b"AUTH"),
                (b"sd_origin_ip", b"203.0.113.7"),
            ]
        );
        let bad = d
            .streams
            .iter()
            .find(|s| s.entries[0].line.starts_with(b"bad"))
            .unwrap();
        assert_eq!(&bad.entries[0].line[..], "bad \u{fffd} byte".as_bytes());
    }
}
