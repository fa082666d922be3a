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

    /// The captures of `line`, as Loki's `pattern` parser takes them: `None` when the line is
    /// empty or does not start with the leading literal; otherwise the named captures up to
    /// the first literal that is not found, the last of them running to the end of the line
    /// (a partial match keeps what it could capture). Text after the last literal is ignored.
    pub fn captures<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let mut parts = self.parts.as_slice();
        let mut rest = line;
        if line.is_empty() {
            return None;
        }
        if let Some((Part::Lit(l), tail)) = parts.split_first() {
            rest = rest.strip_prefix(l.as_str())?;
            parts = tail;
        }
        let mut out = Vec::new();
        while let Some((Part::Cap(name), tail)) = parts.split_first() {
            let Some((Part::Lit(next), after)) = tail.split_first() else {
                if let Some(n) = name {
                    out.push((n.as_str(), rest));
                }
                break;
            };
            let Some(i) = rest.find(next.as_str()) else {
                if let Some(n) = name {
                    out.push((n.as_str(), rest));
                }
                break;
            };
            if let Some(n) = name {
                out.push((n.as_str(), &rest[..i]));
            }
            rest = &rest[i + next.len()..];
            parts = after;
        }
        Some(out)
    }

    /// Whether `line` matches as a `|>` / `!>` line filter, by Loki's rule: every literal is
    /// found in order, none right after the previous one (an empty capture), and the line
    /// ends with the last literal if the pattern does, or goes on past it if it ends on a
    /// capture.
    pub fn test(&self, line: &str) -> bool {
        if line.is_empty() {
            return false;
        }
        let mut off = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let Part::Lit(l) = part else { continue };
            match line[off..].find(l.as_str()) {
                Some(0) if i != 0 => return false,
                Some(j) => off += j + l.len(),
                None => return false,
            }
        }
        let ends_on_capture = matches!(self.parts.last(), Some(Part::Cap(_)));
        ends_on_capture == (off != line.len())
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
        assert_eq!(p.captures("something else").unwrap(), []);
        assert!(Pattern::parse("x <a>").unwrap().captures("y z").is_none());
        // A partial match keeps what it captured; the capture before the missing literal runs
        // to the end of the line.
        assert_eq!(
            p.captures("Nov 23 sshd[811]: Failed password for root")
                .unwrap(),
            [("pid", "811"), ("user", "root")]
        );
        assert_eq!(
            p.captures("Nov 23 sshd[811]: Accepted").unwrap(),
            [("pid", "811]: Accepted")]
        );
        assert!(p.captures("").is_none());
        assert!(Pattern::parse("<a><b>").is_err());
        // The line filter's rule.
        let f = |p: &str, l: &str| Pattern::parse(p).unwrap().test(l);
        assert!(!f("<_> bar", "foo bar baz"));
        assert!(f("<_> baz", "foo bar baz"));
        assert!(f("foo <_>", "foo bar baz"));
        assert!(!f("<_> bar <_>", " bar "));
        assert!(f("<_>bar<_>", " bar "));
        assert!(Pattern::parse("no captures").is_err());
    }
}
