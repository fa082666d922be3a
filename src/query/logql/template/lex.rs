//! Tokens inside one template action: fields, words, strings, numbers, `|` and parentheses.
//!
//! Must not: know what a function does.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum T {
    Field(String),
    /// `.name` right after `)` or another chained name: a field of the value before it.
    Chain(String),
    Word(String),
    Str(String),
    Num(f64),
    Pipe,
    Open,
    Close,
}

pub(super) struct Toks {
    pub(super) toks: Vec<T>,
    pub(super) pos: usize,
}

impl Toks {
    pub(super) fn new(s: &str) -> Result<Toks, String> {
        let b = s.as_bytes();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let word_end = |mut j: usize| {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                j
            };
            match c {
                b' ' | b'\t' | b'\n' => i += 1,
                b'|' => {
                    toks.push(T::Pipe);
                    i += 1;
                }
                b'(' => {
                    toks.push(T::Open);
                    i += 1;
                }
                b')' => {
                    toks.push(T::Close);
                    i += 1;
                }
                b'.' => {
                    let end = word_end(i + 1);
                    let name = s[i + 1..end].to_owned();
                    let chained = matches!(toks.last(), Some(T::Close | T::Chain(_)))
                        && i > 0
                        && !b[i - 1].is_ascii_whitespace();
                    toks.push(if chained {
                        T::Chain(name)
                    } else {
                        T::Field(name)
                    });
                    i = end;
                }
                b'"' => {
                    let (lit, len) = go_string(&s[i..])?;
                    toks.push(T::Str(lit));
                    i += len;
                }
                b'`' => {
                    let close = s[i + 1..]
                        .find('`')
                        .ok_or("template: unterminated raw string")?;
                    toks.push(T::Str(s[i + 1..i + 1 + close].to_owned()));
                    i += close + 2;
                }
                c if c.is_ascii_digit() || c == b'-' => {
                    let mut j = i + 1;
                    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                        j += 1;
                    }
                    let n = s[i..j]
                        .parse()
                        .map_err(|_| format!("template: bad number {:?}", &s[i..j]))?;
                    toks.push(T::Num(n));
                    i = j;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let end = word_end(i);
                    toks.push(T::Word(s[i..end].to_owned()));
                    i = end;
                }
                _ => return Err(format!("template: unexpected {:?}", c as char)),
            }
        }
        Ok(Toks { toks, pos: 0 })
    }

    pub(super) fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos)
    }
}

/// A Go double-quoted string at the start of `s`: its value and its length in `s`.
fn go_string(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("template: unterminated string".into())
}
