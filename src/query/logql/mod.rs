//! LogQL: Loki's query language, hand-written.
//!
//! Owns: the lexer, the syntax tree, the parser, the printer (`format_query` and the
//! canonical text of a query), and the small languages inside LogQL: Go-style templates for
//! `line_format`/`label_format`, `pattern` expressions and `ip()` ranges.
//!
//! Must not: read the ledger or know about HTTP.

pub mod ast;
pub mod ip;
mod lexer;
mod parser;
pub mod pattern;
mod print;
pub mod template;
mod units;

/// Deepest syntax tree a query may build: every parenthesis, function, unary sign, binary
/// operator and label-filter `and`/`or` is one level, so a left-leaning chain such as
/// `1+1+...+1` counts one level per operator even though it is parsed in a loop. Every later
/// walk over the tree (evaluation, printing, cloning, dropping) recurses at most this deep,
/// so the budget bounds the stack by construction. Real queries stay far below it.
pub const MAX_DEPTH: usize = 64;

pub use ast::Expr;
pub use parser::{MAX_QUERY_BYTES, anchored, parse, parse_selector};
pub use print::{format_duration, pretty};
pub use units::{MAX_DURATION_NS, parse_bytes, parse_duration};

/// A query that does not parse, worded as Loki words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct ParseError {
    text: String,
}

impl ParseError {
    /// An error at byte offset `at` of `src`: `parse error at line L, col C: msg`.
    pub fn at(src: &str, at: usize, msg: impl Into<String>) -> ParseError {
        let before = &src[..at.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError {
            text: format!("parse error at line {line}, col {col}: {}", msg.into()),
        }
    }

    /// An error without a position (Loki's `parse error : ...` and limit messages).
    pub fn plain(msg: impl Into<String>) -> ParseError {
        ParseError { text: msg.into() }
    }
}
