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
