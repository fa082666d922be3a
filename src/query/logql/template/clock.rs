//! Go time layouts (`"2006-01-02 15:04:05"`) for the template functions `date`, `toDate` and
//! the printing of a time value, in UTC, as a Loki server running in UTC prints them.
//!
//! Owns: the layout elements Loki users write (years, months, days, hours, minutes, seconds,
//! fractions, weekdays, AM/PM, zones) and the civil calendar.
//!
//! Must not: consult a time-zone database; every time is UTC.

const NS: i64 = 1_000_000_000;
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The layout elements, longest first where one begins another.
const ELEMENTS: &[&str] = &[
    "January", "Jan", "Monday", "Mon", "MST", "2006", "-07:00", "-0700", "-07", "Z07:00", "Z0700",
    "Z07", "002", "01", "02", "03", "04", "05", "06", "15", "_2", "PM", "pm", "1", "2", "3", "4",
    "5",
];

/// A broken-down UTC time.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    yday: i64,
    wday: usize,
    hour: i64,
    min: i64,
    sec: i64,
    nanos: i64,
}

fn civil(ns: i64) -> Civil {
    let secs = ns.div_euclid(NS);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let yday = days - days_from_civil(year, 1, 1) + 1;
    Civil {
        year,
        month: month as usize,
        day,
        yday,
        wday: (days + 4).rem_euclid(7) as usize,
        hour: rem / 3600,
        min: rem % 3600 / 60,
        sec: rem % 60,
        nanos: ns.rem_euclid(NS),
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The element (or fraction `.000`, `.999`, `,000`) at the start of `s`.
fn element(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && (b[1] == b'0' || b[1] == b'9') {
        let n = b[1..].iter().take_while(|&&c| c == b[1]).count();
        // A fraction only when no digit follows it.
        if !b.get(1 + n).is_some_and(u8::is_ascii_digit) {
            return Some(&s[..1 + n]);
        }
    }
    ELEMENTS.iter().find(|e| s.starts_with(*e)).copied()
}

/// `ns` printed with a Go layout.
pub(super) fn format(ns: i64, layout: &str) -> String {
    let c = civil(ns);
    let mut out = String::new();
    let mut rest = layout;
    while let Some(ch) = rest.chars().next() {
        let Some(e) = element(rest) else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            continue;
        };
        rest = &rest[e.len()..];
        let hour12 = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
        match e {
            "January" => out.push_str(MONTHS[c.month - 1]),
            "Jan" => out.push_str(&MONTHS[c.month - 1][..3]),
            "Monday" => out.push_str(DAYS[c.wday]),
            "Mon" => out.push_str(&DAYS[c.wday][..3]),
            "MST" => out.push_str("UTC"),
            "2006" => out.push_str(&format!("{:04}", c.year)),
            "06" => out.push_str(&format!("{:02}", c.year.rem_euclid(100))),
            "01" => out.push_str(&format!("{:02}", c.month)),
            "1" => out.push_str(&c.month.to_string()),
            "02" => out.push_str(&format!("{:02}", c.day)),
            "_2" => out.push_str(&format!("{:>2}", c.day)),
            "2" => out.push_str(&c.day.to_string()),
            "002" => out.push_str(&format!("{:03}", c.yday)),
            "15" => out.push_str(&format!("{:02}", c.hour)),
            "03" => out.push_str(&format!("{hour12:02}")),
            "3" => out.push_str(&hour12.to_string()),
            "04" => out.push_str(&format!("{:02}", c.min)),
            "4" => out.push_str(&c.min.to_string()),
            "05" => out.push_str(&format!("{:02}", c.sec)),
            "5" => out.push_str(&c.sec.to_string()),
            "PM" => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            "pm" => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            "Z07:00" | "Z0700" | "Z07" => out.push('Z'),
            "-07:00" => out.push_str("+00:00"),
            "-0700" => out.push_str("+0000"),
            "-07" => out.push_str("+00"),
            frac => {
                let digits = frac.len() - 1;
                let all = format!("{:09}", c.nanos);
                let mut f = all[..digits.min(9)].to_owned();
                if frac.as_bytes()[1] == b'9' {
                    f = f.trim_end_matches('0').to_owned();
                    if f.is_empty() {
                        continue;
                    }
                }
                out.push(frac.as_bytes()[0] as char);
                out.push_str(&f);
            }
        }
    }
    out
}

/// A time value printed as Go prints a `time.Time`: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(super) fn display(ns: i64) -> String {
    format(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// `s` read with a Go layout, as Unix nanoseconds; `None` where it does not fit. A time
/// without an offset in the text is UTC.
pub(super) fn parse(layout: &str, s: &str) -> Option<i64> {
    let (local, offset) = parse_local(layout, s)?;
    local.checked_sub(offset.unwrap_or(0).checked_mul(NS)?)
}

/// `s` read with a Go layout in the IANA time zone `zone` (UTC if the zone is unknown, as
/// Go's `time.LoadLocation` fails over in Loki's `toDateInZone`); an offset in the text wins.
pub(super) fn parse_in_zone(layout: &str, zone: &str, s: &str) -> Option<i64> {
    let (local, offset) = parse_local(layout, s)?;
    if let Some(o) = offset {
        return local.checked_sub(o.checked_mul(NS)?);
    }
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let as_utc = jiff::Timestamp::from_nanosecond(i128::from(local)).ok()?;
    let civil = jiff::tz::TimeZone::UTC.to_datetime(as_utc);
    let t = tz.to_ambiguous_timestamp(civil).compatible().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

/// The wall-clock time `s` shows under a Go layout, as nanoseconds since 1970 as if it were
/// UTC, and the offset (seconds east) the text gives, if any.
fn parse_local(layout: &str, s: &str) -> Option<(i64, Option<i64>)> {
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
        (1i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
    let mut offset = None;
    let mut pm = None;
    let (mut rest, mut text) = (layout, s);
    let num = |text: &mut &str, min: usize, max: usize| -> Option<i64> {
        let n = text
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        let v = text[..n].parse().ok()?;
        *text = &text[n..];
        Some(v)
    };
    while let Some(ch) = rest.chars().next() {
        let Some(e) = element(rest) else {
            text = text.strip_prefix(ch)?;
            rest = &rest[ch.len_utf8()..];
            continue;
        };
        rest = &rest[e.len()..];
        match e {
            "January" | "Jan" => {
                let i = MONTHS.iter().position(|m| {
                    let m = if e == "Jan" { &m[..3] } else { m };
                    text.len() >= m.len() && text[..m.len()].eq_ignore_ascii_case(m)
                })?;
                let len = if e == "Jan" { 3 } else { MONTHS[i].len() };
                text = &text[len..];
                month = i as i64 + 1;
            }
            "Monday" | "Mon" => {
                let d = DAYS.iter().find(|d| {
                    let d = if e == "Mon" { &d[..3] } else { d };
                    text.len() >= d.len() && text[..d.len()].eq_ignore_ascii_case(d)
                })?;
                text = &text[if e == "Mon" { 3 } else { d.len() }..];
            }
            "MST" => {
                let n = text.bytes().take_while(u8::is_ascii_uppercase).count();
                text = &text[n..];
            }
            "2006" => year = num(&mut text, 4, 4)?,
            "06" => year = 2000 + num(&mut text, 2, 2)?,
            "01" => month = num(&mut text, 2, 2)?,
            "1" => month = num(&mut text, 1, 2)?,
            "02" => day = num(&mut text, 2, 2)?,
            "_2" => {
                text = text.strip_prefix(' ').unwrap_or(text);
                day = num(&mut text, 1, 2)?;
            }
            "2" => day = num(&mut text, 1, 2)?,
            "002" => {
                num(&mut text, 3, 3)?;
            }
            "15" => hour = num(&mut text, 1, 2)?,
            "03" | "3" => hour = num(&mut text, 1, 2)?,
            "04" | "4" => min = num(&mut text, 1, 2)?,
            "05" | "5" => {
                sec = num(&mut text, 1, 2)?;
                // Go accepts a fraction after the seconds even where the layout has none.
                if rest.is_empty() || !rest.starts_with(['.', ',']) {
                    nanos = fraction(&mut text).unwrap_or(0);
                }
            }
            "PM" | "pm" => {
                let t = text.get(..2)?.to_ascii_uppercase();
                pm = Some(match t.as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return None,
                });
                text = &text[2..];
            }
            zone @ ("Z07:00" | "Z0700" | "Z07" | "-07:00" | "-0700" | "-07") => {
                if zone.starts_with('Z') && text.starts_with('Z') {
                    text = &text[1..];
                    offset = Some(0);
                } else {
                    let sign = match text.as_bytes().first()? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    text = &text[1..];
                    let h = num(&mut text, 2, 2)?;
                    text = text.strip_prefix(':').unwrap_or(text);
                    let m = num(&mut text, 0, 2).unwrap_or(0);
                    offset = Some(sign * (h * 3600 + m * 60));
                }
            }
            _ => nanos = fraction(&mut text)?,
        }
    }
    if !text.is_empty() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec;
    Some((secs.checked_mul(NS)?.checked_add(nanos)?, offset))
}

/// A `.123` or `,123` fraction of a second at the start of `text`, in nanoseconds.
fn fraction(text: &mut &str) -> Option<i64> {
    let t = text.strip_prefix(['.', ','])?;
    let n = t.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let digits = &t[..n.min(9)];
    let v: i64 = digits.parse().ok()?;
    *text = &t[n..];
    Some(v * 10i64.pow(9 - digits.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-01T17:06:05.250Z
    const T: i64 = 1_796_144_765_250_000_000;

    #[test]
    fn layouts_print_as_go_prints_them() {
        assert_eq!(format(T, "15:04:05"), "17:06:05");
        assert_eq!(
            format(T, "2006-01-02T15:04:05.000Z07:00"),
            "2026-12-01T17:06:05.250Z"
        );
        assert_eq!(format(T, "Mon Jan _2 3:04PM"), "Tue Dec  1 5:06PM");
        assert_eq!(format(T, "January 2, 06 .999"), "December 1, 26 .25");
        assert_eq!(display(T), "2026-12-01 17:06:05.25 +0000 UTC");
        assert_eq!(display(0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn layouts_read_back_what_they_print() {
        for layout in [
            "2006-01-02T15:04:05.000Z07:00",
            "Jan _2 2006 03:04:05.999 PM",
            "2006-01-02 15:04:05.999999999 -0700 MST",
        ] {
            assert_eq!(parse(layout, &format(T, layout)), Some(T), "{layout}");
        }
        assert_eq!(
            parse("2006-01-02 15:04 -07:00", "2026-12-01 19:06 +02:00"),
            Some(T - 5_250_000_000)
        );
        assert_eq!(parse("2006-01-02", "2026-13-01"), None);
        assert_eq!(parse("2006-01-02", "2026-12-01x"), None);
    }
}
