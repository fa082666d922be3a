//! One syslog message, RFC 5424 or RFC 3164, into its fields, without copying the message.
//!
//! Owns: PRI (facility and severity; a message without one is `user.notice`, as RFC 3164
//! tells a relay to assume), the RFC 5424 header (VERSION, TIMESTAMP, HOSTNAME, APP-NAME,
//! PROCID, MSGID, STRUCTURED-DATA, each `-` for none) and the RFC 3164 one (`Mmm dd
//! hh:mm:ss HOSTNAME TAG[PID]: `, the year taken to be the one that puts the time nearest to
//! now, UTC), and what is left as the message. A header that does not parse leaves the
//! whole text after PRI as the message: nothing a sender writes is dropped for its form.
//!
//! Must not: decide labels or metadata (that is `map`), or allocate for the message.

/// RFC 5424's facility names, by code.
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity names, by code, as Loki's syslog receivers write them.
pub const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// A parsed message; text fields borrow the frame.
#[derive(Debug, Default, PartialEq)]
pub struct Message<'a> {
    pub facility: u8,
    pub severity: u8,
    /// Unix ns from the header, if it had a usable one.
    pub timestamp: Option<i64>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data: (SD-ID, PARAM-NAME, PARAM-VALUE unescaped).
    pub structured: Vec<(&'a str, &'a str, String)>,
    pub msg: &'a [u8],
}

/// Parses `frame`; `now_ns` places an RFC 3164 date, which has no year.
pub fn parse(frame: &[u8], now_ns: i64) -> Message<'_> {
    let (pri, rest) = pri(frame).unwrap_or((13, frame));
    let bare = || Message {
        facility: pri / 8,
        severity: pri % 8,
        msg: rest,
        ..Message::default()
    };
    let mut m = bare();
    let parsed = match rest.strip_prefix(b"1 ") {
        Some(r) => rfc5424(r, &mut m),
        None => rfc3164(rest, now_ns, &mut m),
    };
    match parsed {
        Some(msg) => {
            m.msg = msg;
            m
        }
        // Half a header is no header: the fields read before the fault are dropped.
        None => bare(),
    }
}

fn pri(b: &[u8]) -> Option<(u8, &[u8])> {
    let rest = b.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&c| c == b'>')?;
    let digits = &rest[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (v <= 191).then_some((v as u8, &rest[end + 1..]))
}

/// The next space-separated field, `None` for `-`.
fn field<'a>(b: &mut &'a [u8]) -> Option<Option<&'a str>> {
    let end = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
    let f = std::str::from_utf8(&b[..end]).ok()?;
    *b = b.get(end + 1..).unwrap_or(&[]);
    if f.is_empty() {
        return None;
    }
    Some((f != "-").then_some(f))
}

/// The RFC 5424 header after `VERSION SP`; the message on success.
fn rfc5424<'a>(mut b: &'a [u8], m: &mut Message<'a>) -> Option<&'a [u8]> {
    let ts = field(&mut b)?;
    m.timestamp = ts.and_then(crate::clock::parse_rfc3339);
    m.hostname = field(&mut b)?;
    m.app_name = field(&mut b)?;
    m.procid = field(&mut b)?;
    m.msgid = field(&mut b)?;
    if let Some(r) = b.strip_prefix(b"-") {
        b = r;
    } else {
        b = structured(b, &mut m.structured)?;
    }
    let msg = b.strip_prefix(b" ").unwrap_or(b);
    // A UTF-8 message may begin with a byte order mark.
    Some(msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg))
}

/// One or more `[SD-ID PARAM="VALUE" ...]` elements; the bytes after them.
fn structured<'a>(mut b: &'a [u8], out: &mut Vec<(&'a str, &'a str, String)>) -> Option<&'a [u8]> {
    while let Some(r) = b.strip_prefix(b"[") {
        b = r;
        let id_end = b.iter().position(|&c| c == b' ' || c == b']')?;
        let id = std::str::from_utf8(&b[..id_end]).ok()?;
        b = &b[id_end..];
        loop {
            if let Some(r) = b.strip_prefix(b"]") {
                b = r;
                break;
            }
            b = b.strip_prefix(b" ")?;
            let eq = b.iter().position(|&c| c == b'=')?;
            let name = std::str::from_utf8(&b[..eq]).ok()?;
            b = b[eq..].strip_prefix(b"=\"")?;
            let (value, rest) = quoted(b)?;
            out.push((id, name, value));
            b = rest;
        }
    }
    Some(b)
}

/// A PARAM-VALUE up to its closing quote, with `\"`, `\\` and `\]` unescaped.
fn quoted(b: &[u8]) -> Option<(String, &[u8])> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if matches!(b.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                v.push(b[i + 1]);
                i += 2;
            }
            b'"' => return Some((String::from_utf8(v).ok()?, &b[i + 1..])),
            c => {
                v.push(c);
                i += 1;
            }
        }
    }
    None
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The RFC 3164 header: `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: `; the message on success.
fn rfc3164<'a>(b: &'a [u8], now_ns: i64, m: &mut Message<'a>) -> Option<&'a [u8]> {
    let month = MONTHS.iter().position(|mo| b.starts_with(*mo))? as i8 + 1;
    let text = std::str::from_utf8(b.get(..15)?).ok()?;
    let day: i8 = text.get(4..6)?.trim_start().parse().ok()?;
    let (h, mi, s) = (
        text.get(7..9)?.parse().ok()?,
        text.get(10..12)?.parse().ok()?,
        text.get(13..15)?.parse().ok()?,
    );
    if text.as_bytes().get(3) != Some(&b' ') || text.as_bytes().get(6) != Some(&b' ') {
        return None;
    }
    m.timestamp = nearest_year(month, day, h, mi, s, now_ns);
    let mut rest = b.get(16..).unwrap_or(&[]);
    m.hostname = field(&mut rest).flatten();
    // TAG: up to `[`, `:` or a space; PID in brackets.
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    if end > 0 && end <= 48 {
        m.app_name = std::str::from_utf8(&rest[..end]).ok();
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(b"[") {
            let close = r.iter().position(|&c| c == b']')?;
            m.procid = std::str::from_utf8(&r[..close]).ok();
            rest = &r[close + 1..];
        }
        rest = rest.strip_prefix(b":").unwrap_or(rest);
    }
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// The instant of a yearless UTC date: in the year that puts it nearest to now.
fn nearest_year(month: i8, day: i8, h: i8, mi: i8, s: i8, now_ns: i64) -> Option<i64> {
    let now = jiff::Timestamp::from_nanosecond(i128::from(now_ns)).ok()?;
    let utc = jiff::tz::TimeZone::UTC;
    let year = utc.to_datetime(now).year();
    let at = |y: i16| -> Option<i64> {
        let dt = jiff::civil::DateTime::new(y, month, day, h, mi, s, 0).ok()?;
        let ts = utc.to_timestamp(dt).ok()?;
        i64::try_from(ts.as_nanosecond()).ok()
    };
    [year - 1, year, year + 1]
        .into_iter()
        .filter_map(at)
        .min_by_key(|t| (t - now_ns).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_410_000_000_000_000; // 2026-12-04

    #[test]
    fn rfc5424_fields_and_structured_data() {
        let m = parse(
            b"<38>1 2026-12-04T10:00:00.5Z bastion-1 sshd 4242 AUTH [origin ip=\"203.0.113.7\" x=\"a\\\"b\\]\"][meta seq=\"7\"] \xEF\xBB\xBFFailed password",
            NOW,
        );
        assert_eq!((m.facility, m.severity), (4, 6));
        assert_eq!(
            m.timestamp,
            crate::clock::parse_rfc3339("2026-12-04T10:00:00.5Z")
        );
        assert_eq!(m.hostname, Some("bastion-1"));
        assert_eq!(m.app_name, Some("sshd"));
        assert_eq!(m.procid, Some("4242"));
        assert_eq!(m.msgid, Some("AUTH"));
        assert_eq!(
            m.structured,
            [
                ("origin", "ip", "203.0.113.7".to_string()),
                ("origin", "x", "a\"b]".to_string()),
                ("meta", "seq", "7".to_string())
            ]
        );
        assert_eq!(m.msg, b"Failed password");
        let m = parse(b"<13>1 - - - - - -", NOW);
        assert_eq!((m.hostname, m.timestamp, m.msg), (None, None, &b""[..]));
    }

    #[test]
    fn rfc3164_fields_and_the_nearest_year() {
        let m = parse(
            b"<86>Dec  4 09:59:58 bastion-1 sudo[991]: ops : TTY=pts/0 ; COMMAND=/bin/sh",
            NOW,
        );
        assert_eq!((m.facility, m.severity), (10, 6));
        assert_eq!(
            m.timestamp,
            crate::clock::parse_rfc3339("2026-12-04T09:59:58Z")
        );
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("bastion-1"), Some("sudo"), Some("991"))
        );
        assert_eq!(m.msg, b"ops : TTY=pts/0 ; COMMAND=/bin/sh");
        // Early January seen from December is next year; December seen from January, last.
        let m = parse(b"<13>Jan  1 00:00:01 h app: x", NOW);
        assert_eq!(
            m.timestamp,
            crate::clock::parse_rfc3339("2027-01-01T00:00:01Z")
        );
    }

    #[test]
    fn what_does_not_parse_is_kept_as_the_message() {
        let m = parse(b"no pri at all", NOW);
        assert_eq!(
            (m.facility, m.severity, m.msg),
            (1, 5, &b"no pri at all"[..])
        );
        let m = parse(b"<999>x", NOW);
        assert_eq!(m.msg, b"<999>x");
        let m = parse(
            b"<14>1 2026-12-04T10:00:00Z h a p m [unterminated x=\"y",
            NOW,
        );
        assert_eq!(m.msg, b"1 2026-12-04T10:00:00Z h a p m [unterminated x=\"y");
        assert_eq!((m.severity, m.hostname), (6, None));
        let m = parse(b"<14>Suricata: {\"event_type\":\"alert\"}", NOW);
        assert_eq!(m.msg, b"Suricata: {\"event_type\":\"alert\"}");
    }
}
