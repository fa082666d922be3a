//! `ip("...")`: a single address, a CIDR block or an inclusive range `a-b`, v4 or v6.
//!
//! Owns: parsing the argument and matching addresses, in labels or anywhere in a line.
//!
//! Must not: allocate per line beyond the candidates it tries.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMatcher {
    Single(IpAddr),
    Cidr(IpAddr, u8),
    Range(IpAddr, IpAddr),
}

impl IpMatcher {
    pub fn parse(s: &str) -> Result<IpMatcher, String> {
        let bad = || format!("invalid ip filter {s:?}: want an address, a CIDR block or a-b");
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a.is_ipv4() != b.is_ipv4() || key(a) > key(b) {
                return Err(bad());
            }
            return Ok(IpMatcher::Range(a, b));
        }
        if let Some((a, bits)) = s.split_once('/') {
            let a: IpAddr = a.parse().map_err(|_| bad())?;
            let bits: u8 = bits.parse().map_err(|_| bad())?;
            if bits > if a.is_ipv4() { 32 } else { 128 } {
                return Err(bad());
            }
            return Ok(IpMatcher::Cidr(a, bits));
        }
        s.parse().map(IpMatcher::Single).map_err(|_| bad())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            IpMatcher::Single(a) => a == ip,
            IpMatcher::Range(a, b) => {
                a.is_ipv4() == ip.is_ipv4() && key(a) <= key(ip) && key(ip) <= key(b)
            }
            IpMatcher::Cidr(net, bits) => {
                if net.is_ipv4() != ip.is_ipv4() {
                    return false;
                }
                let width = if net.is_ipv4() { 32 } else { 128 };
                if bits == 0 {
                    return true;
                }
                let shift = width - u32::from(bits);
                (key(net) >> shift) == (key(ip) >> shift)
            }
        }
    }

    /// Words every line this matcher matches holds whole (as the token filter splits lines):
    /// the second and third octets of an IPv4 match that all its addresses share. A match is
    /// a run that parses as `a.b.c.d` (no leading zeros), so `b` and `c` stand between dots;
    /// `a` and `d` may be glued to letters (`host10.0.0.1x`), so they are never required.
    pub fn line_words(&self) -> Vec<String> {
        let (lo, hi) = match *self {
            IpMatcher::Single(IpAddr::V4(a)) => (u32::from(a), u32::from(a)),
            IpMatcher::Range(IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a), u32::from(b)),
            IpMatcher::Cidr(IpAddr::V4(net), bits) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                (u32::from(net) & mask, u32::from(net) | !mask)
            }
            _ => return Vec::new(),
        };
        let same_top = |bits: u32| (lo ^ hi) >> (32 - bits) == 0;
        let octet = |i: u32| ((lo >> (24 - 8 * i)) & 0xff).to_string();
        [(1, 16), (2, 24)]
            .into_iter()
            .filter(|&(_, bits)| same_top(bits))
            .map(|(i, _)| octet(i))
            .collect()
    }

    /// Whether a label value is a matching address.
    pub fn matches_value(&self, v: &str) -> bool {
        v.trim().parse().is_ok_and(|ip| self.contains(ip))
    }

    /// Whether any address-looking run of characters in `line` matches.
    pub fn matches_line(&self, line: &str) -> bool {
        let b = line.as_bytes();
        let is_ip_char = |c: u8| c.is_ascii_hexdigit() || c == b'.' || c == b':';
        let mut i = 0;
        while i < b.len() {
            if !is_ip_char(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && is_ip_char(b[i]) {
                i += 1;
            }
            let cand = line[start..i].trim_end_matches(['.', ':']);
            if let Ok(ip) = cand.parse::<IpAddr>()
                && self.contains(ip)
            {
                return true;
            }
            // "1.2.3.4:22" carries a port: try the part before the last colon too.
            if let Some((host, _)) = cand.rsplit_once(':')
                && let Ok(ip) = host.parse::<std::net::Ipv4Addr>()
                && self.contains(IpAddr::V4(ip))
            {
                return true;
            }
        }
        false
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_words_are_the_shared_middle_octets() {
        let words = |s: &str| IpMatcher::parse(s).unwrap().line_words();
        assert_eq!(words("203.0.113.7"), ["0", "113"]);
        assert_eq!(words("10.20.30.0/24"), ["20", "30"]);
        assert_eq!(words("10.20.30.0/20"), ["20"]);
        assert_eq!(words("10.0.0.0/8"), Vec::<String>::new());
        assert_eq!(words("0.0.0.0/0"), Vec::<String>::new());
        assert_eq!(words("192.168.0.1-192.168.0.10"), ["168", "0"]);
        assert_eq!(words("192.168.0.1-192.169.0.1"), Vec::<String>::new());
        assert_eq!(words("::1"), Vec::<String>::new());
        // Every match holds the words whole, however the address is glued into the line.
        let m = IpMatcher::parse("203.0.113.7").unwrap();
        for line in ["host203.0.113.7x", "[203.0.113.7]:22", "from 203.0.113.7."] {
            assert!(m.matches_line(line), "{line}");
            for w in m.line_words() {
                let whole = line
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|t| t == w);
                assert!(whole, "{w} in {line}");
            }
        }
    }

    #[test]
    fn cidr_range_and_single() {
        let m = IpMatcher::parse("10.0.0.0/8").unwrap();
        assert!(m.matches_line("Failed password from 10.2.3.4 port 22"));
        assert!(!m.matches_line("from 11.2.3.4"));
        let r = IpMatcher::parse("192.168.0.1-192.168.0.10").unwrap();
        assert!(r.matches_value("192.168.0.5") && !r.matches_value("192.168.0.11"));
        assert!(
            IpMatcher::parse("::1")
                .unwrap()
                .matches_line("conn [::1]:22")
        );
        assert!(IpMatcher::parse("1.2.3.4/40").is_err());
        assert!(
            IpMatcher::parse("1.2.3.4:22")
                .unwrap_err()
                .contains("invalid ip")
        );
    }
}
