//! The LogQL parser: tokens to [`Expr`], by recursive descent with precedence climbing for
//! binary operators.
//!
//! Owns: the grammar, compile-time checks Loki makes (a selector needs a matcher that does not
//! match the empty string; `unwrap` only where a function takes it), and compiling regular
//! expressions, patterns, IP ranges and templates so evaluation never fails on them.
//!
//! Must not: evaluate anything.

use regex::Regex;

use super::ParseError;
use super::ast::*;
use super::lexer::{Tok, Token, lex};

/// Largest query text accepted: bounds parse time and memory. Key `query.max_query_bytes`.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

pub use super::MAX_DEPTH;

/// Parses a whole query.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError::plain(format!(
            "query is {} bytes, over the {MAX_QUERY_BYTES}-byte limit",
            src.len()
        )));
    }
    let tokens = lex(src)?;
    let mut p = Grammar {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = p.expr()?;
    p.expect_eof()?;
    Ok(expr)
}

/// Parses a stream selector alone (`{...}`), as the label and series endpoints take.
pub fn parse_selector(src: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(src)? {
        Expr::Log(l) if l.pipeline.is_empty() => Ok(l.matchers),
        _ => Err(ParseError::plain("only label matchers are supported")),
    }
}

mod agg;
mod log;

struct Grammar<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Grammar<'_> {
    pub(super) fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].kind
    }

    pub(super) fn peek_at(&self, k: usize) -> &Tok {
        &self.tokens[(self.pos + k).min(self.tokens.len() - 1)].kind
    }

    pub(super) fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    pub(super) fn at(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].at
    }

    pub(super) fn unexpected(&self, expecting: &str) -> ParseError {
        let mut msg = format!("syntax error: unexpected {}", self.peek().name());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(expecting);
        }
        ParseError::at(self.src, self.at(), msg)
    }

    pub(super) fn error(&self, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, self.at(), msg)
    }

    /// Reads a string and compiles it with `f`; an error points at the string.
    pub(super) fn compiled<T>(
        &mut self,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<(String, T), ParseError> {
        let at = self.at();
        let s = self.string()?;
        let v = f(&s).map_err(|e| ParseError::at(self.src, at, e))?;
        Ok((s, v))
    }

    pub(super) fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }

    pub(super) fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        if self.eat(&t) {
            Ok(())
        } else {
            Err(self.unexpected(&t.name()))
        }
    }

    pub(super) fn expect_eof(&self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Eof => Ok(()),
            _ => Err(self.unexpected("")),
        }
    }

    pub(super) fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Ident(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected("IDENTIFIER")),
        }
    }

    pub(super) fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected("STRING")),
        }
    }

    /// One more level of the tree being built; refused past [`MAX_DEPTH`].
    pub(super) fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::plain(format!(
                "query too complex: it nests deeper than the limit of {MAX_DEPTH} levels \
                 (parentheses, functions, operators and signs each count one)"
            )));
        }
        Ok(())
    }

    /// Runs `f`, then leaves every level it entered: a chain parsed in a loop enters once
    /// per operator and leaves them all when the chain ends.
    pub(super) fn scoped<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let base = self.depth;
        let out = f(self);
        self.depth = base;
        out
    }

    // ----- expressions -------------------------------------------------------------------

    fn expr(&mut self) -> Result<Expr, ParseError> {
        if *self.peek() == Tok::LBrace {
            let log = self.log_expr()?;
            if self.bin_op().is_some() {
                return Err(self.unexpected(""));
            }
            return Ok(Expr::Log(log));
        }
        Ok(Expr::Metric(self.binary(0)?))
    }

    fn bin_op(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::CmpEq => BinOp::Eq,
            Tok::Neq => BinOp::Ne,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Ident(w) if w == "and" => BinOp::And,
            Tok::Ident(w) if w == "or" => BinOp::Or,
            Tok::Ident(w) if w == "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    fn binary(&mut self, min_prec: u8) -> Result<MetricExpr, ParseError> {
        self.scoped(|p| p.binary_chain(min_prec))
    }

    /// The operators of one precedence chain; each adds a level to the tree until the chain
    /// ends.
    fn binary_chain(&mut self, min_prec: u8) -> Result<MetricExpr, ParseError> {
        let mut lhs = self.unary()?;
        while let Some(op) = self.bin_op() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.enter()?;
            self.bump();
            let bool_mod = self.is_word("bool") && {
                self.bump();
                true
            };
            if bool_mod && !op.is_comparison() {
                return Err(self.error("bool modifier can only be used on comparison operators"));
            }
            let matching = self.vector_matching()?;
            // `^` is right-associative; every other operator left-associative.
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.binary(next)?;
            lhs = MetricExpr::Binary {
                op,
                bool_mod,
                matching,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn vector_matching(&mut self) -> Result<Option<VectorMatching>, ParseError> {
        let on = if self.is_word("on") {
            true
        } else if self.is_word("ignoring") {
            false
        } else {
            return Ok(None);
        };
        self.bump();
        let labels = self.label_list()?;
        let mut m = VectorMatching {
            on,
            labels,
            ..Default::default()
        };
        if self.is_word("group_left") || self.is_word("group_right") {
            m.group_right = Some(self.is_word("group_right"));
            self.bump();
            if *self.peek() == Tok::LParen {
                m.include = self.label_list()?;
            }
        }
        Ok(Some(m))
    }

    /// `( a, b, ... )`, possibly empty.
    pub(super) fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen)?;
        let mut out = Vec::new();
        while *self.peek() != Tok::RParen {
            out.push(self.ident()?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(Tok::RParen)?;
        Ok(out)
    }

    /// A sign binds only to a number literal, as in Loki's grammar: `-1` is a literal, and
    /// `-sum(...)`, `-(1)` or `--1` are syntax errors (write `-1 * sum(...)`).
    fn unary(&mut self) -> Result<MetricExpr, ParseError> {
        if *self.peek() == Tok::Sub || *self.peek() == Tok::Add {
            let neg = self.bump() == Tok::Sub;
            let Tok::Num(v) = *self.peek() else {
                return Err(self.unexpected("NUMBER"));
            };
            self.bump();
            return Ok(MetricExpr::Literal(if neg { -v } else { v }));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<MetricExpr, ParseError> {
        self.scoped(|p| {
            p.enter()?;
            p.primary_inner()
        })
    }

    fn primary_inner(&mut self) -> Result<MetricExpr, ParseError> {
        match self.peek().clone() {
            Tok::Num(v) => {
                self.bump();
                Ok(MetricExpr::Literal(v))
            }
            Tok::LParen => {
                self.bump();
                let e = self.binary(0)?;
                self.expect(Tok::RParen)?;
                Ok(MetricExpr::Paren(Box::new(e)))
            }
            Tok::Ident(w) if *self.peek_at(1) == Tok::LParen || self.grouping_follows() => {
                if let Some(op) = RangeOp::parse(&w) {
                    self.bump();
                    return self.range_agg(op);
                }
                if let Some(op) = VecOp::parse(&w) {
                    self.bump();
                    return self.vec_agg(op);
                }
                match w.as_str() {
                    "vector" => {
                        self.bump();
                        self.expect(Tok::LParen)?;
                        let v = self.number()?;
                        self.expect(Tok::RParen)?;
                        Ok(MetricExpr::Vector(v))
                    }
                    "label_replace" => {
                        self.bump();
                        self.label_replace()
                    }
                    _ => Err(self.unexpected("")),
                }
            }
            Tok::LBrace => Err(self.error(
                "syntax error: unexpected {, a log query cannot be combined with operators; \
                 wrap it in a range aggregation such as count_over_time",
            )),
            _ => Err(self.unexpected("")),
        }
    }

    pub(super) fn grouping_follows(&self) -> bool {
        matches!(self.peek_at(1), Tok::Ident(w) if w == "by" || w == "without")
    }

    pub(super) fn number(&mut self) -> Result<f64, ParseError> {
        let neg = self.eat(&Tok::Sub);
        match self.peek() {
            Tok::Num(v) => {
                let v = *v;
                self.bump();
                Ok(if neg { -v } else { v })
            }
            _ => Err(self.unexpected("NUMBER")),
        }
    }
}

/// A fully anchored regular expression, as label matchers use.
pub fn anchored(re: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| regex_error(&e))
}

/// Go's wording: `error parsing regexp: <what>`.
pub(super) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("invalid regular expression");
    let what = last.trim().trim_start_matches("error:").trim();
    format!("error parsing regexp: {what}")
}
