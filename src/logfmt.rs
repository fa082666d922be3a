//! The logfmt scanner: `key=value key2="quoted \"v\"" flag`, pair by pair, for the query
//! plane's `| logfmt` and the push plane's level detection alike.
//!
//! Owns: the byte-level rules Loki's logfmt decoder applies (what ends a key or a value,
//! which bytes are errors, where scanning resumes after one, and the `pos` its errors name),
//! so that lenient parsing keeps the same pairs and `--strict` reports the same error.
//!
//! Must not: know labels or stages; callers decide what a pair becomes. A pure function of
//! the text, so that both planes can use it without reaching each other.

/// One scanned pair: a key, and its value unless it had none (`flag`, `key=`, `key=""`).
pub type Pair = (String, Option<String>);

/// Scans `line`. Lenient: every pair that scans, skipping each malformed one to the next
/// space. Strict: the pairs before the first error, and that error.
pub fn pairs(line: &str, strict: bool) -> (Vec<Pair>, Option<String>) {
    let mut s = Scanner {
        line: line.as_bytes(),
        text: line,
        pos: 0,
        err: None,
    };
    let mut out = Vec::new();
    while s.pos < s.line.len() {
        match s.next() {
            Some(pair) => out.push(pair),
            None if strict && s.err.is_some() => break,
            None => {}
        }
    }
    (out, s.err)
}

struct Scanner<'a> {
    line: &'a [u8],
    text: &'a str,
    pos: usize,
    err: Option<String>,
}

impl Scanner<'_> {
    /// The next pair, or `None` at the end or after an error (then `pos` is past it).
    fn next(&mut self) -> Option<Pair> {
        let b = self.line;
        match b[self.pos..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = b.len();
                return None;
            }
        }
        let start = self.pos;
        while self.pos < b.len() {
            match b[self.pos] {
                b'=' if self.pos > start => {
                    let key = self.text[start..self.pos].to_owned();
                    self.pos += 1;
                    return self.value(key);
                }
                c @ (b'=' | b'"') => return self.unexpected(c),
                c if c <= b' ' => break,
                _ => self.pos += 1,
            }
        }
        Some((self.text[start..self.pos].to_owned(), None))
    }

    /// The value after `key=`.
    fn value(&mut self, key: String) -> Option<Pair> {
        let b = self.line;
        match b.get(self.pos) {
            None => return Some((key, None)),
            Some(&c) if c <= b' ' => return Some((key, None)),
            Some(b'"') => return self.quoted(key),
            Some(_) => {}
        }
        let start = self.pos;
        while self.pos < b.len() {
            match b[self.pos] {
                c @ (b'=' | b'"') => return self.unexpected(c),
                c if c <= b' ' => break,
                _ => self.pos += 1,
            }
        }
        Some((key, Some(self.text[start..self.pos].to_owned())))
    }

    /// A quoted value, `pos` on its opening quote.
    fn quoted(&mut self, key: String) -> Option<Pair> {
        let b = self.line;
        let start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        while i < b.len() {
            match b[i] {
                _ if std::mem::take(&mut escaped) => {}
                b'\\' => escaped = true,
                b'"' => {
                    self.pos = i + 1;
                    let Some(v) = unescape(&self.text[start + 1..i]) else {
                        self.error("invalid quoted value");
                        return None;
                    };
                    return Some((key, (!v.is_empty()).then_some(v)));
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = b.len();
        self.error("unterminated quoted value");
        None
    }

    /// An unexpected byte at `pos`: the error, and the rest of the word skipped.
    fn unexpected(&mut self, c: u8) -> Option<Pair> {
        self.error(&format!("unexpected '{}'", c as char));
        let b = self.line;
        self.pos += b[self.pos..]
            .iter()
            .position(|&c| c <= b' ')
            .unwrap_or(b.len() - self.pos);
        None
    }

    fn error(&mut self, msg: &str) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {msg}",
            self.pos + 1
        ));
    }
}

/// The text of a quoted value between its quotes: `\"`, `\\`, `\n`, `\t`, `\r`, `\/`, `\b`,
/// `\f` and `\uXXXX`; any other escape is invalid.
fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            c @ ('"' | '\\' | '/') => c,
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: Option<&str>) -> Pair {
        (k.to_owned(), v.map(str::to_owned))
    }

    #[test]
    fn pairs_flags_and_quoted_values() {
        let (got, err) = pairs(r#"a=1 flag b="x \"y\"" c= d="""#, true);
        assert_eq!(
            got,
            [
                p("a", Some("1")),
                p("flag", None),
                p("b", Some(r#"x "y""#)),
                p("c", None),
                p("d", None)
            ]
        );
        assert_eq!(err, None);
    }

    #[test]
    fn strict_stops_at_the_first_error_and_names_its_position() {
        let line = r#"a=1 b="open"#;
        let (got, err) = pairs(line, true);
        assert_eq!(got, [p("a", Some("1"))]);
        // The position is one past the end of the line, as Loki reports it.
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 12 : unterminated quoted value")
        );
        let (got, err) = pairs("a=1 =x c=3", true);
        assert_eq!(got, [p("a", Some("1"))]);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 5 : unexpected '='")
        );
    }

    #[test]
    fn lenient_skips_a_malformed_word_and_goes_on() {
        let (got, _) = pairs(r#"a=1 b=x"y c=3 "d e=5"#, false);
        assert_eq!(
            got,
            [p("a", Some("1")), p("c", Some("3")), p("e", Some("5"))]
        );
    }
}
