//! Pattern expressions (`<ip> - - <_> "<method> <uri>"`): literals and named captures.
//!
//! Owns: parsing a pattern and matching it against a line.
//!
//! Must not: use regular expressions; a pattern is a plain left-to-right scan.

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// `None` for `<_>`.
    Cap(Option<String>),
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>');
            let name = close.map(|c| &after[..c]);
            let valid = name.is_some_and(|n| {
                !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.starts_with(|c: char| c.is_ascii_digit())
            });
            let (Some(close), Some(name), true) = (close, name, valid) else {
                lit.push_str(&rest[..=open]);
                rest = after;
                continue;
            };
            lit.push_str(&rest[..open]);
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            if matches!(parts.last(), Some(Part::Cap(_))) {
                return Err(format!(
                    "invalid pattern {s:?}: two captures must be separated by a literal"
                ));
            }
            parts.push(Part::Cap((name != "_").then(|| name.to_owned())));
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.iter().any(|p| matches!(p, Part::Cap(_))) {
            return Err(format!(
                "invalid pattern {s:?}: at least one capture is required"
            ));
        }
        Ok(Pattern { parts })
    }

    /// Names of the named captures.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Cap(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The captures of `line`, or `None` when it does not match.
    pub fn captures<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while i < self.parts.len() {
            match &self.parts[i] {
                Part::Lit(l) => {
                    if !line[pos..].starts_with(l.as_str()) {
                        return None;
                    }
                    pos += l.len();
                }
                Part::Cap(name) => {
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Lit(next)) => pos + line[pos..].find(next.as_str())?,
                        _ => line.len(),
                    };
                    if let Some(n) = name {
                        out.push((n.as_str(), &line[pos..end]));
                    }
                    pos = end;
                }
            }
            i += 1;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_between_literals() {
        let p = Pattern::parse("<_> sshd[<pid>]: Failed password for <user> from <ip> port <_>")
            .unwrap();
        let line = "Nov 23 sshd[811]: Failed password for root from 203.0.113.9 port 52144 ssh2";
        assert_eq!(
            p.captures(line).unwrap(),
            [("pid", "811"), ("user", "root"), ("ip", "203.0.113.9")]
        );
        assert!(p.captures("something else").is_none());
        assert!(Pattern::parse("<a><b>").is_err());
        assert!(Pattern::parse("no captures").is_err());
    }
}
