//! The LogQL lexer: query text to tokens with their byte offsets.
//!
//! Owns: token kinds and their names as Loki's grammar spells them (so errors read like
//! Loki's), Go string escapes, raw strings, numbers, durations, byte sizes and `[range]`.
//!
//! Must not: know the grammar beyond one token.

use super::ParseError;
use super::units::{parse_bytes, parse_duration};

/// A token and where it starts (byte offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    /// A duration literal such as `5m` or `1h30m`, in nanoseconds.
    Duration(i64),
    /// A byte-size literal such as `20MB`.
    Bytes(u64),
    /// `[5m]`, in nanoseconds.
    Range(i64),
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    PipeExact,
    PipeMatch,
    PipePattern,
    Neq,
    Nre,
    NotPattern,
    Eq,
    Re,
    CmpEq,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eof,
}

impl Tok {
    /// The token's name in Loki's error messages.
    pub fn name(&self) -> String {
        match self {
            Tok::Ident(s) => keyword_name(s).unwrap_or_else(|| "IDENTIFIER".into()),
            Tok::Str(_) => "STRING".into(),
            Tok::Num(_) => "NUMBER".into(),
            Tok::Duration(_) => "DURATION".into(),
            Tok::Bytes(_) => "BYTES".into(),
            Tok::Range(_) => "RANGE".into(),
            Tok::LBrace => "{".into(),
            Tok::RBrace => "}".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Pipe => "|".into(),
            Tok::PipeExact => "|=".into(),
            Tok::PipeMatch => "|~".into(),
            Tok::PipePattern => "|>".into(),
            Tok::Neq => "!=".into(),
            Tok::Nre => "!~".into(),
            Tok::NotPattern => "!>".into(),
            Tok::Eq => "=".into(),
            Tok::Re => "=~".into(),
            Tok::CmpEq => "==".into(),
            Tok::Gt => ">".into(),
            Tok::Ge => ">=".into(),
            Tok::Lt => "<".into(),
            Tok::Le => "<=".into(),
            Tok::Add => "+".into(),
            Tok::Sub => "-".into(),
            Tok::Mul => "*".into(),
            Tok::Div => "/".into(),
            Tok::Mod => "%".into(),
            Tok::Pow => "^".into(),
            Tok::Eof => "$end".into(),
        }
    }
}

/// Words Loki's lexer turns into their own tokens.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "or",
    "and",
    "unless",
    "json",
    "logfmt",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "unwrap",
    "ip",
    "vector",
    "label_replace",
];

fn keyword_name(s: &str) -> Option<String> {
    let known = KEYWORDS.contains(&s)
        || super::ast::RangeOp::parse(s).is_some()
        || super::ast::VecOp::parse(s).is_some();
    known.then(|| s.to_ascii_uppercase())
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut l = Lexer {
        src,
        b: src.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        l.skip_space();
        let at = l.pos;
        let kind = l.next()?;
        let end = kind == Tok::Eof;
        out.push(Token { kind, at });
        if end {
            return Ok(out);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> u8 {
        self.b.get(self.pos + k).copied().unwrap_or(0)
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, at, msg)
    }

    fn skip_space(&mut self) {
        loop {
            match self.peek(0) {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'#' => {
                    while !matches!(self.peek(0), b'\n' | 0) {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn next(&mut self) -> Result<Tok, ParseError> {
        let c = self.peek(0);
        let two = |l: &mut Self, t: Tok| {
            l.pos += 2;
            Ok(t)
        };
        let one = |l: &mut Self, t: Tok| {
            l.pos += 1;
            Ok(t)
        };
        match (c, self.peek(1)) {
            (0, _) if self.pos >= self.b.len() => Ok(Tok::Eof),
            (b'|', b'=') => two(self, Tok::PipeExact),
            (b'|', b'~') => two(self, Tok::PipeMatch),
            (b'|', b'>') => two(self, Tok::PipePattern),
            (b'|', _) => one(self, Tok::Pipe),
            (b'!', b'=') => two(self, Tok::Neq),
            (b'!', b'~') => two(self, Tok::Nre),
            (b'!', b'>') => two(self, Tok::NotPattern),
            (b'=', b'~') => two(self, Tok::Re),
            (b'=', b'=') => two(self, Tok::CmpEq),
            (b'=', _) => one(self, Tok::Eq),
            (b'>', b'=') => two(self, Tok::Ge),
            (b'>', _) => one(self, Tok::Gt),
            (b'<', b'=') => two(self, Tok::Le),
            (b'<', _) => one(self, Tok::Lt),
            (b'{', _) => one(self, Tok::LBrace),
            (b'}', _) => one(self, Tok::RBrace),
            (b'(', _) => one(self, Tok::LParen),
            (b')', _) => one(self, Tok::RParen),
            (b',', _) => one(self, Tok::Comma),
            (b'+', _) => one(self, Tok::Add),
            (b'-', _) => one(self, Tok::Sub),
            (b'*', _) => one(self, Tok::Mul),
            (b'/', _) => one(self, Tok::Div),
            (b'%', _) => one(self, Tok::Mod),
            (b'^', _) => one(self, Tok::Pow),
            (b'"', _) => self.string(),
            (b'`', _) => self.raw_string(),
            (b'[', _) => self.range(),
            (c, _) if c.is_ascii_digit() || (c == b'.' && self.peek(1).is_ascii_digit()) => {
                self.number()
            }
            (c, _) if c.is_ascii_alphabetic() || c == b'_' => Ok(Tok::Ident(self.word())),
            _ => {
                let ch = self.src[self.pos..].chars().next().unwrap_or('?');
                Err(self.err(
                    self.pos,
                    format!("syntax error: unexpected character {ch:?}"),
                ))
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'_' {
            self.pos += 1;
        }
        self.src[start..self.pos].to_owned()
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        while self.peek(0).is_ascii_digit() || self.peek(0) == b'.' {
            self.pos += 1;
        }
        if matches!(self.peek(0), b'e' | b'E')
            && (self.peek(1).is_ascii_digit()
                || (matches!(self.peek(1), b'+' | b'-') && self.peek(2).is_ascii_digit()))
        {
            self.pos += 2;
            while self.peek(0).is_ascii_digit() {
                self.pos += 1;
            }
        }
        if self.peek(0).is_ascii_alphabetic() {
            // A unit follows: a duration (`1h30m`) or a byte size (`20MB`).
            while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'.' {
                self.pos += 1;
            }
            let text = &self.src[start..self.pos];
            if let Some(ns) = parse_duration(text) {
                return Ok(Tok::Duration(ns));
            }
            if let Some(b) = parse_bytes(text) {
                return Ok(Tok::Bytes(b));
            }
            return Err(self.err(start, format!("syntax error: invalid literal {text:?}")));
        }
        let text = &self.src[start..self.pos];
        text.parse::<f64>()
            .map(Tok::Num)
            .map_err(|_| self.err(start, format!("syntax error: invalid number {text:?}")))
    }

    fn range(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let Some(close) = self.src[start..].find(']') else {
            return Err(self.err(start, "syntax error: unexpected [, missing ]"));
        };
        let inner = self.src[start + 1..start + close].trim();
        self.pos = start + close + 1;
        if inner.contains(':') {
            return Err(self.err(start, "subqueries are not supported"));
        }
        match parse_duration(inner) {
            Some(ns) if ns > 0 => Ok(Tok::Range(ns)),
            _ => Err(self.err(
                start,
                format!("syntax error: invalid duration {inner:?} in range"),
            )),
        }
    }

    fn raw_string(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let Some(len) = self.src[start + 1..].find('`') else {
            return Err(self.err(start, "syntax error: unterminated raw string"));
        };
        self.pos = start + 1 + len + 1;
        Ok(Tok::Str(self.src[start + 1..start + 1 + len].to_owned()))
    }

    fn string(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(ch) = self.src[self.pos..].chars().next() else {
                return Err(self.err(start, "syntax error: unterminated string"));
            };
            self.pos += ch.len_utf8();
            match ch {
                '"' => return Ok(Tok::Str(out)),
                '\\' => self.escape(start, &mut out)?,
                '\n' => return Err(self.err(start, "syntax error: newline in string")),
                c => out.push(c),
            }
        }
    }

    /// One Go escape sequence after a backslash.
    fn escape(&mut self, start: usize, out: &mut String) -> Result<(), ParseError> {
        let bad = |l: &Self| l.err(start, "syntax error: invalid escape sequence in string");
        let c = self.peek(0);
        self.pos += 1;
        let simple = match c {
            b'n' => Some('\n'),
            b't' => Some('\t'),
            b'r' => Some('\r'),
            b'a' => Some('\x07'),
            b'b' => Some('\x08'),
            b'f' => Some('\x0c'),
            b'v' => Some('\x0b'),
            b'\\' => Some('\\'),
            b'"' => Some('"'),
            b'\'' => Some('\''),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            return Ok(());
        }
        let (digits, radix) = match c {
            b'x' => (2, 16),
            b'u' => (4, 16),
            b'U' => (8, 16),
            b'0'..=b'7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(bad(self)),
        };
        let text = self
            .src
            .get(self.pos..self.pos + digits)
            .ok_or_else(|| bad(self))?;
        let v = u32::from_str_radix(text, radix).map_err(|_| bad(self))?;
        self.pos += digits;
        out.push(char::from_u32(v).ok_or_else(|| bad(self))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_filters_ranges_and_literals() {
        assert_eq!(
            kinds(r#"{a=~"x\"y"} |= `r\aw` != "q" [5m] > 1.5 20MB 1h30m"#),
            [
                Tok::LBrace,
                Tok::Ident("a".into()),
                Tok::Re,
                Tok::Str("x\"y".into()),
                Tok::RBrace,
                Tok::PipeExact,
                Tok::Str("r\\aw".into()),
                Tok::Neq,
                Tok::Str("q".into()),
                Tok::Range(300_000_000_000),
                Tok::Gt,
                Tok::Num(1.5),
                Tok::Bytes(20_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn durations_and_bytes() {
        assert_eq!(parse_duration("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("5minutes"), None);
        assert_eq!(parse_bytes("1KiB"), Some(1024));
        assert_eq!(parse_bytes("3kb"), Some(3000));
    }

    #[test]
    fn errors_name_the_position() {
        let e = lex("{a=\"b}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 4: syntax error: unterminated string"
        );
    }
}
