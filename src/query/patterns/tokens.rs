//! How a line becomes Drain tokens and a cluster's tokens become a pattern again, for the
//! three formats Loki's pattern ingester tells apart (JSON, logfmt, anything else).
//!
//! Owns: Loki's tokenizers, step for step: the punctuation tokenizer (a token ends at a space,
//! `=` or punctuation, which is a token of its own; `_ - . : /` stay inside words), the logfmt
//! tokenizer (key, value, key, value..., with time and trace fields as `<_>`), the JSON
//! tokenizer (the first string of `log message msg msg_ _msg content`, punctuation-tokenized
//! and shown between `<_>`), the stream's format guessed from its first line, and the
//! folding of repeated `<_>` in a pattern.
//!
//! Must not: cluster or count; it only cuts and joins text.

use std::sync::OnceLock;

use regex::Regex;

/// What a varying token shows as.
pub const PARAM: &str = "<_>";
/// Longer lines (or JSON messages) are not clustered: Loki's `MaxAllowedLineLength`.
pub const MAX_LINE_BYTES: usize = 3000;
/// Tokens the punctuation tokenizer cuts before it keeps the rest of the line as one.
const MAX_TOKENS: usize = 127;
/// JSON fields whose string is the message: Loki's `pattern_ingester_tokenizable_json_fields`.
const JSON_FIELDS: &[&str] = &["log", "message", "msg", "msg_", "_msg", "content"];

/// A stream's format, guessed from its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Logfmt,
    Unknown,
}

/// A line's tokens, and after which tokens a space followed (punctuation and JSON formats;
/// `-1` for a leading space, which Loki records and never rejoins).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub words: Vec<String>,
    pub spaces: Vec<i64>,
}

impl Format {
    /// Loki's guess: `{...}` is JSON; `k=v k2="v 2"` throughout is logfmt.
    pub fn detect(line: &str) -> Format {
        static LOGFMT: OnceLock<Option<Regex>> = OnceLock::new();
        // Go's `\w` and `\S` are ASCII classes.
        let re = LOGFMT.get_or_init(|| {
            let pair = r#"[0-9A-Za-z_]+?=([^"][^\t\n\f\r ]*?|".+?")"#;
            Regex::new(&format!("^({pair} )*?({pair})+$")).ok()
        });
        let b = line.as_bytes();
        if b.len() < 2 {
            Format::Unknown
        } else if b[0] == b'{' && b[b.len() - 1] == b'}' {
            Format::Json
        } else if re.as_ref().is_some_and(|re| re.is_match(line)) {
            Format::Logfmt
        } else {
            Format::Unknown
        }
    }

    /// The line's tokens, or `None` when the line is not clustered (too long, malformed
    /// logfmt, JSON without a message field).
    pub fn tokenize(self, line: &str) -> Option<Tokens> {
        match self {
            Format::Unknown => punctuation(line),
            Format::Logfmt => logfmt(line),
            Format::Json => {
                let msg = JSON_FIELDS.iter().find_map(|k| top_level_string(line, k))?;
                punctuation(msg)
            }
        }
    }

    /// The pattern a cluster's tokens show as (`""` when they cannot be shown).
    pub fn join(self, t: &Tokens) -> String {
        let joined = match self {
            Format::Unknown => join_spaced(t),
            Format::Json => format!("{PARAM}{}{PARAM}", join_spaced(t)),
            Format::Logfmt => join_logfmt(&t.words),
        };
        fold_params(&joined)
    }
}

fn punctuation(line: &str) -> Option<Tokens> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    let mut t = Tokens::default();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if t.words.len() >= MAX_TOKENS {
            break;
        }
        if c.is_alphabetic() || c.is_numeric() || matches!(c, '_' | '-' | '.' | ':' | '/') {
            continue;
        }
        if c == ' ' || c == '=' || is_punct(c) {
            if i > start {
                t.words.push(line[start..i].to_owned());
            }
            let end = i + c.len_utf8();
            if c == ' ' {
                t.spaces.push(t.words.len() as i64 - 1);
            } else {
                // Loki cuts one byte here; a multi-byte mark is kept whole, so that the
                // pattern stays valid UTF-8.
                t.words.push(line[i..end].to_owned());
            }
            start = end;
        }
    }
    if start < line.len() {
        t.words.push(line[start..].to_owned());
    }
    Some(t)
}

/// Unicode's punctuation category (Go's `unicode.IsPunct`): in ASCII, these; `$ + < = > ^ \`
/// | ~` are symbols, not punctuation.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            '!' | '"'
                | '#'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | '-'
                | '.'
                | '/'
                | ':'
                | ';'
                | '?'
                | '@'
                | '['
                | '\\'
                | ']'
                | '_'
                | '{'
                | '}'
        );
    }
    static PUNCT: OnceLock<Option<Regex>> = OnceLock::new();
    let re = PUNCT.get_or_init(|| Regex::new(r"^\p{P}$").ok());
    re.as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4])))
}

fn join_spaced(t: &Tokens) -> String {
    let mut out = String::new();
    let mut next = 0;
    for (i, w) in t.words.iter().enumerate() {
        out.push_str(w);
        while next < t.spaces.len() && t.spaces[next] == i as i64 {
            out.push(' ');
            next += 1;
        }
    }
    out
}

fn logfmt(line: &str) -> Option<Tokens> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    let (pairs, err) = crate::logfmt::pairs(line, true);
    if err.is_some() {
        return None;
    }
    let mut t = Tokens::default();
    for (k, v) in pairs {
        let varies = ["ts", "traceID", "time", "timestamp"]
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
            || k == "t";
        let v = if varies {
            PARAM.to_owned()
        } else {
            v.unwrap_or_default()
        };
        t.words.push(k);
        t.words.push(v);
    }
    Some(t)
}

/// Pairs written back as logfmt, as Go's logfmt encoder writes them; a key that is nothing
/// once its spaces, `=` and quotes are removed makes the whole pattern `""`.
fn join_logfmt(words: &[String]) -> String {
    let mut out = String::new();
    for (i, pair) in words.chunks(2).enumerate() {
        let key: String = pair[0].chars().filter(|&c| !needs_quotes(c)).collect();
        if key.is_empty() {
            return String::new();
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&key);
        out.push('=');
        let value = pair.get(1).map_or("", String::as_str);
        if value.chars().any(needs_quotes) {
            quote(value, &mut out);
        } else {
            out.push_str(value);
        }
    }
    out
}

fn needs_quotes(c: char) -> bool {
    c <= ' ' || c == '=' || c == '"' || c == '\u{7f}' || c == char::REPLACEMENT_CHARACTER
}

fn quote(v: &str, out: &mut String) {
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            char::REPLACEMENT_CHARACTER => out.push_str("\\ufffd"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Folds runs of `<_>` into one, as Loki does (including its way of stepping past a run).
fn fold_params(line: &str) -> String {
    let Some(first) = line.find("<_><_>") else {
        return line.to_owned();
    };
    let (b, p) = (line.as_bytes(), PARAM.as_bytes());
    let mut out = Vec::with_capacity(b.len());
    let (mut low, mut i) = (0, first);
    while i + 5 < b.len() {
        if &b[i..i + 3] == p {
            let mut high = i + 3;
            while high + 2 < b.len() && &b[high..high + 3] == p {
                high += 3;
            }
            out.extend_from_slice(&b[low..i + 3]);
            low = high;
            i = high;
        }
        i += 1;
    }
    out.extend_from_slice(&b[low..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// The raw text (escapes kept) of the string value of top-level `key` in a JSON object, or
/// `None` if it is absent, not a string, or the object is malformed before it.
fn top_level_string<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) == Some(&b'}') {
            return None;
        }
        let (k, next) = string_at(b, i)?;
        i = skip_ws(b, next);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if b.get(i) == Some(&b'"') {
            let (v, next) = string_at(b, i)?;
            if &line[k.0..k.1] == key {
                return Some(&line[v.0..v.1]);
            }
            i = next;
        } else {
            if &line[k.0..k.1] == key {
                return None;
            }
            i = skip_value(b, i)?;
        }
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The content span of the string starting at `b[i] == '"'`, and the index after it.
fn string_at(b: &[u8], i: usize) -> Option<((usize, usize), usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(((i + 1, j), j + 1)),
            _ => j += 1,
        }
    }
    None
}

/// The index after a non-string value (number, literal, object or array), without
/// recursion: nesting is counted, strings inside are stepped over.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => i = string_at(b, i)?.1,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b',' | b'}' | b']' if depth == 0 => return Some(i),
            _ => i += 1,
        }
    }
    (depth == 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(f: Format, line: &str) -> Vec<String> {
        f.tokenize(line).unwrap().words
    }

    #[test]
    fn punctuation_cuts_at_spaces_equals_and_marks_but_not_inside_words() {
        assert_eq!(
            words(
                Format::Unknown,
                "Failed password for root from 10.0.0.1 port 22 ssh2"
            ),
            [
                "Failed", "password", "for", "root", "from", "10.0.0.1", "port", "22", "ssh2"
            ]
        );
        assert_eq!(
            words(Format::Unknown, "fail2ban.filter [811]: INFO [sshd] a=b+c"),
            [
                "fail2ban.filter",
                "[",
                "811",
                "]",
                ":",
                "INFO",
                "[",
                "sshd",
                "]",
                "a",
                "=",
                "b+c"
            ]
        );
        let t = Format::Unknown
            .tokenize("fail2ban.filter [811]: INFO")
            .unwrap();
        assert_eq!(Format::Unknown.join(&t), "fail2ban.filter [811]: INFO");
    }

    #[test]
    fn a_leading_space_is_recorded_as_loki_records_it_and_loses_the_spaces() {
        let t = Format::Unknown.tokenize(" a b").unwrap();
        assert_eq!(t.spaces, [-1, 0]);
        assert_eq!(Format::Unknown.join(&t), "ab");
    }

    #[test]
    fn logfmt_is_pairs_with_time_fields_varying_and_is_written_back_quoted() {
        let t = Format::Logfmt
            .tokenize(r#"ts=2024 level=info msg="a b" flag"#)
            .unwrap();
        assert_eq!(
            t.words,
            ["ts", "<_>", "level", "info", "msg", "a b", "flag", ""]
        );
        assert_eq!(
            Format::Logfmt.join(&t),
            r#"ts=<_> level=info msg="a b" flag="#
        );
        assert!(Format::Logfmt.tokenize("msg='op=login x").is_none());
    }

    #[test]
    fn json_takes_the_first_message_field_raw_between_params() {
        let line = r#"{"n":{"msg":"no"},"x":[1,"]"],"message":"user \"bob\" in","msg":"later"}"#;
        let t = Format::Json.tokenize(line).unwrap();
        assert_eq!(Format::Json.join(&t), r#"<_>user \"bob\" in<_>"#);
        assert!(Format::Json.tokenize(r#"{"event":"alert"}"#).is_none());
    }

    #[test]
    fn the_format_is_guessed_as_loki_guesses_it() {
        assert_eq!(Format::detect(r#"{"a":1}"#), Format::Json);
        assert_eq!(
            Format::detect("requests_total=728 temp=21.21"),
            Format::Logfmt
        );
        assert_eq!(Format::detect(r#"a=1 b="x y""#), Format::Logfmt);
        assert_eq!(
            Format::detect(r#"a=1 broken="unterminated"#),
            Format::Unknown
        );
        assert_eq!(Format::detect("alice : TTY=pts/1"), Format::Unknown);
    }

    #[test]
    fn runs_of_params_fold_into_one() {
        assert_eq!(fold_params("a <_><_><_> b"), "a <_> b");
        assert_eq!(fold_params("<_><_>"), "<_>");
        assert_eq!(fold_params("x<_><_>y"), "x<_>y");
    }
}
