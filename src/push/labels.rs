//! The label string of a pushed stream: `{name="value", ...}` as Prometheus parses it.
//!
//! Owns: parsing (Go-style escapes in double- and single-quoted values, raw backtick values,
//! optional trailing comma), dropping empty values, and rendering a canonical string for
//! messages (sorted, values quoted as Go's `strconv.Quote` does).
//!
//! Must not: validate limits or reserved names (that is `validate`'s job).

use std::fmt::Write;

/// Why a label string could not be parsed. The text says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't parse labels: parse error at col {col}: {what}")]
pub struct LabelError {
    pub col: usize,
    pub what: String,
}

/// Parses a label string into (name, value) pairs in the order given, empty values dropped.
/// More than `max_pairs` pairs is an error as soon as the next one is met, so a label string
/// of millions of pairs is never built: each would cost two strings.
pub fn parse(text: &[u8], max_pairs: usize) -> Result<Vec<(String, String)>, LabelError> {
    let mut p = Parser { s: text, i: 0 };
    p.ws();
    p.expect(b'{')?;
    let mut out = Vec::new();
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let name = p.name()?;
        p.ws();
        p.expect(b'=')?;
        p.ws();
        let value = p.value()?;
        if !value.is_empty() {
            if out.len() == max_pairs {
                return Err(p.err(format!("more than {max_pairs} label names")));
            }
            out.push((name, value));
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.ws();
        p.expect(b'}')?;
        break;
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected characters after '}'"));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: impl Into<String>) -> LabelError {
        LabelError {
            col: self.i + 1,
            what: what.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), LabelError> {
        if self.eat(c) {
            Ok(())
        } else {
            let found = match self.peek() {
                Some(b) => format!("{:?}", b as char),
                None => "end of input".into(),
            };
            Err(self.err(format!("expected {:?}, found {found}", c as char)))
        }
    }

    fn name(&mut self) -> Result<String, LabelError> {
        let start = self.i;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => self.i += 1,
            Some(b'"') => return Err(self.err("quoted label names are not supported")),
            _ => return Err(self.err("expected a label name")),
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self) -> Result<String, LabelError> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'' | b'`')) => q,
            _ => return Err(self.err("expected a quoted label value")),
        };
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.err("unterminated quoted string"));
            };
            self.i += 1;
            match b {
                _ if b == quote => break,
                b'\\' if quote != b'`' => self.escape(quote, &mut out)?,
                b'\n' if quote != b'`' => return Err(self.err("newline in quoted string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("label value is not valid UTF-8"))
    }

    /// Decodes one escape after a backslash, as Go's `strconv.Unquote` does.
    fn escape(&mut self, quote: u8, out: &mut Vec<u8>) -> Result<(), LabelError> {
        let Some(c) = self.peek() else {
            return Err(self.err("unterminated escape"));
        };
        self.i += 1;
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            _ if c == quote => Some(c),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        match c {
            b'x' => {
                let v = self.hex(2)?;
                out.push(v as u8);
            }
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.i += 1;
                        }
                        _ => return Err(self.err("octal escape needs three digits")),
                    }
                }
                let byte = u8::try_from(v).map_err(|_| self.err("octal escape above \\377"))?;
                out.push(byte);
            }
            b'u' | b'U' => {
                let v = self.hex(if c == b'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v).ok_or_else(|| self.err("escape is not a character"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(self.err(format!("unknown escape sequence \\{}", c as char))),
        }
        Ok(())
    }

    fn hex(&mut self, digits: usize) -> Result<u32, LabelError> {
        let mut v = 0u32;
        for _ in 0..digits {
            let d = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.err("bad hex digit in escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }
}

/// Renders sorted pairs as Loki prints a stream: `{a="x", b="y"}`.
pub fn render<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (n, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(n);
        out.push('=');
        quote_into(&mut out, v);
    }
    out.push('}');
    out
}

/// Quotes `v` as Go's `strconv.Quote`: printable characters raw, the rest escaped.
pub fn quote_into(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<(String, String)> {
        parse(s.as_bytes(), 64).unwrap()
    }

    #[test]
    fn a_label_string_of_many_pairs_stops_at_the_first_one_over() {
        let many = format!("{{{}}}", "a=\"b\",".repeat(1_000_000));
        let e = parse(many.as_bytes(), 17).unwrap_err();
        assert!(e.what.contains("more than 17"), "{e}");
        assert!(e.col < 200, "stopped at col {}", e.col);
        let empties = format!("{{{}a=\"b\"}}", "e=\"\",".repeat(100));
        assert_eq!(parse(empties.as_bytes(), 1).unwrap().len(), 1);
    }

    #[test]
    fn parses_what_alloy_renders() {
        assert_eq!(
            p(r#"{host="bastion-1", job="sshd"}"#),
            vec![
                ("host".into(), "bastion-1".into()),
                ("job".into(), "sshd".into())
            ]
        );
    }

    #[test]
    fn decodes_go_escapes_and_other_quotes() {
        let got = p(r#"{a="q\"\\\n\t\x41\101\u00e9\U0001F600", b='it\'s', c=`raw\n`,}"#);
        assert_eq!(got[0].1, "q\"\\\n\tAAé😀");
        assert_eq!(got[1].1, "it's");
        assert_eq!(got[2].1, "raw\\n");
    }

    #[test]
    fn drops_empty_values_and_allows_whitespace() {
        assert_eq!(
            p(" { a = \"\" , b=\"1\" } "),
            vec![("b".into(), "1".into())]
        );
        assert!(p("{}").is_empty());
    }

    #[test]
    fn rejects_malformed_strings_with_a_column() {
        for bad in [
            "",
            "job=\"x\"",
            "{job}",
            "{job=x}",
            "{job=\"x\"",
            "{job=\"x\"} trailing",
            "{job=~\"x\"}",
            "{1a=\"x\"}",
            "{\"service.name\"=\"x\"}",
            "{a=\"\\q\"}",
            "{a=\"\\xff\"}",
        ] {
            let e = parse(bad.as_bytes(), 64).unwrap_err();
            assert!(e.col >= 1, "{bad}: {e}");
        }
    }

    #[test]
    fn renders_like_strconv_quote() {
        let s = render([("a", "x\"y"), ("b", "é\n\u{1}")]);
        assert_eq!(s, r#"{a="x\"y", b="é\n\x01"}"#);
        assert_eq!(p(&s)[1].1, "é\n\u{1}");
    }
}
