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
use super::template::Template;

/// Largest query text accepted: bounds parse time and memory. Key `query.max_query_bytes`.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

/// Deepest nesting of parentheses and functions: bounds recursion.
const MAX_DEPTH: usize = 64;

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

struct Grammar<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Grammar<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].kind
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.tokens[(self.pos + k).min(self.tokens.len() - 1)].kind
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn at(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].at
    }

    fn unexpected(&self, expecting: &str) -> ParseError {
        let mut msg = format!("syntax error: unexpected {}", self.peek().name());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(expecting);
        }
        ParseError::at(self.src, self.at(), msg)
    }

    fn error(&self, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, self.at(), msg)
    }

    /// Reads a string and compiles it with `f`; an error points at the string.
    fn compiled<T>(
        &mut self,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<(String, T), ParseError> {
        let at = self.at();
        let s = self.string()?;
        let v = f(&s).map_err(|e| ParseError::at(self.src, at, e))?;
        Ok((s, v))
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        if self.eat(&t) {
            Ok(())
        } else {
            Err(self.unexpected(&t.name()))
        }
    }

    fn expect_eof(&self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Eof => Ok(()),
            _ => Err(self.unexpected("")),
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Ident(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected("IDENTIFIER")),
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected("STRING")),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
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
        let mut lhs = self.unary()?;
        while let Some(op) = self.bin_op() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
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
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
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

    fn unary(&mut self) -> Result<MetricExpr, ParseError> {
        if *self.peek() == Tok::Sub || *self.peek() == Tok::Add {
            let neg = self.bump() == Tok::Sub;
            let inner = self.unary()?;
            return Ok(match inner {
                MetricExpr::Literal(v) => MetricExpr::Literal(if neg { -v } else { v }),
                e if neg => MetricExpr::Binary {
                    op: BinOp::Mul,
                    bool_mod: false,
                    matching: None,
                    lhs: Box::new(MetricExpr::Literal(-1.0)),
                    rhs: Box::new(e),
                },
                e => e,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<MetricExpr, ParseError> {
        self.enter()?;
        let out = self.primary_inner();
        self.depth -= 1;
        out
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

    fn grouping_follows(&self) -> bool {
        matches!(self.peek_at(1), Tok::Ident(w) if w == "by" || w == "without")
    }

    fn number(&mut self) -> Result<f64, ParseError> {
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

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = if self.is_word("by") {
            false
        } else if self.is_word("without") {
            true
        } else {
            return Ok(None);
        };
        self.bump();
        Ok(Some(Grouping {
            without,
            labels: self.label_list()?,
        }))
    }

    fn vec_agg(&mut self, op: VecOp) -> Result<MetricExpr, ParseError> {
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen)?;
        let param = if matches!(op, VecOp::Topk | VecOp::Bottomk) {
            let k = self.number()?;
            self.expect(Tok::Comma)?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(self.error(format!(
                    "parse error : invalid parameter ({op}(k, ...)): k must be a positive integer",
                    op = op.as_str()
                )));
            }
            Some(k)
        } else {
            None
        };
        let inner = self.binary(0)?;
        self.expect(Tok::RParen)?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        } else if self.is_word("by") || self.is_word("without") {
            return Err(self.unexpected(""));
        }
        if grouping.is_some() && matches!(op, VecOp::Sort | VecOp::SortDesc) {
            return Err(self.error(format!("{} does not take by or without", op.as_str())));
        }
        Ok(MetricExpr::Agg(VecAgg {
            op,
            param,
            grouping,
            inner: Box::new(inner),
        }))
    }

    fn label_replace(&mut self) -> Result<MetricExpr, ParseError> {
        self.expect(Tok::LParen)?;
        let inner = self.binary(0)?;
        let mut args = Vec::new();
        for _ in 0..4 {
            self.expect(Tok::Comma)?;
            args.push(self.string()?);
        }
        self.expect(Tok::RParen)?;
        let [dst, replacement, src, regex] = <[String; 4]>::try_from(args)
            .map_err(|_| self.error("label_replace takes five arguments"))?;
        let re = anchored(&regex).map_err(|e| self.error(e))?;
        Ok(MetricExpr::LabelReplace {
            inner: Box::new(inner),
            dst,
            replacement,
            src,
            regex,
            re,
        })
    }

    fn range_agg(&mut self, op: RangeOp) -> Result<MetricExpr, ParseError> {
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen)?;
        let param = if op == RangeOp::Quantile {
            let q = self.number()?;
            self.expect(Tok::Comma)?;
            Some(q)
        } else {
            None
        };
        let paren = self.eat(&Tok::LParen);
        let mut log = self.log_selector()?;
        let mut range_ns = None;
        if let Tok::Range(ns) = self.peek() {
            range_ns = Some(*ns);
            self.bump();
        }
        log.pipeline = self.pipeline()?;
        let (unwrap, post_unwrap) = self.unwrap_part()?;
        if paren {
            self.expect(Tok::RParen)?;
        }
        if range_ns.is_none() {
            match self.peek() {
                Tok::Range(ns) => {
                    range_ns = Some(*ns);
                    self.bump();
                }
                _ => return Err(self.unexpected("RANGE")),
            }
        }
        let offset_ns = if self.is_word("offset") {
            self.bump();
            match self.bump() {
                Tok::Duration(ns) => ns,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("DURATION"));
                }
            }
        } else {
            0
        };
        self.expect(Tok::RParen)?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        if op.needs_unwrap() && unwrap.is_none() {
            return Err(ParseError::plain(format!(
                "parse error : invalid aggregation {} without unwrap",
                op.as_str()
            )));
        }
        if unwrap.is_some() && !op.allows_unwrap() {
            return Err(ParseError::plain(format!(
                "parse error : invalid aggregation {} with unwrap",
                op.as_str()
            )));
        }
        if grouping.is_some() && unwrap.is_none() {
            return Err(ParseError::plain(format!(
                "parse error : grouping not allowed for {} aggregation",
                op.as_str()
            )));
        }
        Ok(MetricExpr::Range(RangeAgg {
            op,
            param,
            log,
            unwrap,
            post_unwrap,
            range_ns: range_ns.unwrap_or(0),
            offset_ns,
            grouping,
        }))
    }

    fn unwrap_part(&mut self) -> Result<(Option<Unwrap>, Vec<LabelPred>), ParseError> {
        if !(*self.peek() == Tok::Pipe && matches!(self.peek_at(1), Tok::Ident(w) if w == "unwrap"))
        {
            return Ok((None, Vec::new()));
        }
        self.bump();
        self.bump();
        let name = self.ident()?;
        let conv = match name.as_str() {
            "bytes" | "duration" | "duration_seconds" if *self.peek() == Tok::LParen => {
                self.bump();
                let conv = match name.as_str() {
                    "bytes" => UnwrapConv::Bytes,
                    "duration" => UnwrapConv::Duration,
                    _ => UnwrapConv::DurationSeconds,
                };
                let label = self.ident()?;
                self.expect(Tok::RParen)?;
                (conv, label)
            }
            _ => (UnwrapConv::None, name),
        };
        let mut post = Vec::new();
        while *self.peek() == Tok::Pipe {
            self.bump();
            post.push(self.label_pred()?);
        }
        Ok((
            Some(Unwrap {
                label: conv.1,
                conv: conv.0,
            }),
            post,
        ))
    }

    // ----- log queries -------------------------------------------------------------------

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let mut log = self.log_selector()?;
        log.pipeline = self.pipeline()?;
        if *self.peek() == Tok::Pipe {
            return Err(self
                .error("parse error : unwrap is only allowed in range aggregations that take it"));
        }
        Ok(log)
    }

    fn log_selector(&mut self) -> Result<LogExpr, ParseError> {
        self.expect(Tok::LBrace)?;
        let mut matchers = Vec::new();
        loop {
            if *self.peek() == Tok::RBrace && !matchers.is_empty() {
                break;
            }
            let name = self.ident()?;
            let op = match self.bump() {
                Tok::Eq => MatchOp::Eq,
                Tok::Neq => MatchOp::Ne,
                Tok::Re => MatchOp::Re,
                Tok::Nre => MatchOp::Nre,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("= or != or =~ or !~"));
                }
            };
            let value = self.string()?;
            matchers.push(self.matcher(name, op, value)?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(Tok::RBrace)?;
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err(ParseError::plain(
                "parse error : queries require at least one regexp or equality matcher that \
                 does not have an empty-compatible value. For instance, app=~\".*\" does not \
                 meet this requirement, but app=~\".+\" will",
            ));
        }
        Ok(LogExpr {
            matchers,
            pipeline: Vec::new(),
        })
    }

    fn matcher(&self, name: String, op: MatchOp, value: String) -> Result<Matcher, ParseError> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(anchored(&value).map_err(|e| self.error(e))?),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    fn pipeline(&mut self) -> Result<Vec<Stage>, ParseError> {
        let mut out = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::PipeExact => LineOp::Contains,
                Tok::Neq => LineOp::NotContains,
                Tok::PipeMatch => LineOp::Match,
                Tok::Nre => LineOp::NotMatch,
                Tok::PipePattern => LineOp::Pattern,
                Tok::NotPattern => LineOp::NotPattern,
                Tok::Pipe => {
                    if matches!(self.peek_at(1), Tok::Ident(w) if w == "unwrap") {
                        return Ok(out);
                    }
                    self.bump();
                    out.push(self.stage()?);
                    continue;
                }
                _ => return Ok(out),
            };
            self.bump();
            out.push(Stage::Line(self.line_filter(op)?));
        }
    }

    fn line_filter(&mut self, op: LineOp) -> Result<LineFilter, ParseError> {
        let mut args = vec![self.filter_arg(op)?];
        while self.is_word("or") && matches!(self.peek_at(1), Tok::Str(_) | Tok::Ident(_)) {
            if let Tok::Ident(w) = self.peek_at(1)
                && w != "ip"
            {
                break;
            }
            self.bump();
            args.push(self.filter_arg(op)?);
        }
        Ok(LineFilter { op, args })
    }

    fn filter_arg(&mut self, op: LineOp) -> Result<FilterArg, ParseError> {
        if self.is_word("ip") {
            self.bump();
            if matches!(
                op,
                LineOp::Match | LineOp::NotMatch | LineOp::Pattern | LineOp::NotPattern
            ) {
                return Err(self.error("ip() can only be used with |= and !="));
            }
            self.expect(Tok::LParen)?;
            let text = self.string()?;
            self.expect(Tok::RParen)?;
            let ip = super::ip::IpMatcher::parse(&text).map_err(|e| self.error(e))?;
            return Ok(FilterArg::Ip(text, ip));
        }
        Ok(match op {
            LineOp::Match | LineOp::NotMatch => {
                let (s, re) = self.compiled(|s| Regex::new(s).map_err(|e| regex_error(&e)))?;
                FilterArg::Regex(s, re)
            }
            LineOp::Pattern | LineOp::NotPattern => {
                let (s, p) = self.compiled(super::pattern::Pattern::parse)?;
                FilterArg::Pattern(s, p)
            }
            _ => FilterArg::Text(self.string()?),
        })
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let word = match self.peek() {
            Tok::Ident(w) => w.clone(),
            Tok::LParen => return Ok(Stage::Label(self.label_pred()?)),
            _ => return Err(self.unexpected("IDENTIFIER")),
        };
        // A keyword followed by a comparison is a label of that name (`| json="x"` aside).
        let is_label = matches!(
            self.peek_at(1),
            Tok::Eq
                | Tok::Neq
                | Tok::Re
                | Tok::Nre
                | Tok::CmpEq
                | Tok::Gt
                | Tok::Ge
                | Tok::Lt
                | Tok::Le
        );
        if is_label {
            return Ok(Stage::Label(self.label_pred()?));
        }
        self.bump();
        Ok(match word.as_str() {
            "json" => Stage::Parse(Parser::Json(self.extractions()?)),
            "logfmt" => self.logfmt()?,
            "regexp" => {
                let (s, re) = self.compiled(|s| Regex::new(s).map_err(|e| regex_error(&e)))?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(
                        self.error("invalid regexp: at least one named capture group is required")
                    );
                }
                Stage::Parse(Parser::Regexp(s, re))
            }
            "pattern" => {
                let (s, p) = self.compiled(super::pattern::Pattern::parse)?;
                if p.names().next().is_none() {
                    return Err(
                        self.error("invalid pattern: at least one named capture is required")
                    );
                }
                Stage::Parse(Parser::Pattern(s, p))
            }
            "unpack" => Stage::Parse(Parser::Unpack),
            "decolorize" => Stage::Decolorize,
            "line_format" => Stage::LineFormat(self.compiled(Template::parse)?.1),
            "label_format" => Stage::LabelFormat(self.label_formats()?),
            "drop" => Stage::Drop(self.label_sels()?),
            "keep" => Stage::Keep(self.label_sels()?),
            _ => {
                self.pos -= 1;
                Stage::Label(self.label_pred()?)
            }
        })
    }

    /// `a="path", b` after `json` or `logfmt`; empty when none follow.
    fn extractions(&mut self) -> Result<Vec<(String, String)>, ParseError> {
        let mut out = Vec::new();
        while let Tok::Ident(name) = self.peek().clone() {
            if matches!(name.as_str(), "or" | "and") {
                break;
            }
            self.bump();
            let path = if self.eat(&Tok::Eq) {
                self.string()?
            } else {
                name.clone()
            };
            out.push((name, path));
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Ok(out)
    }

    fn logfmt(&mut self) -> Result<Stage, ParseError> {
        let (mut strict, mut keep_empty) = (false, false);
        while *self.peek() == Tok::Sub && *self.peek_at(1) == Tok::Sub {
            self.bump();
            self.bump();
            let flag = self.ident()?;
            match flag.as_str() {
                "strict" => strict = true,
                "keep" if *self.peek() == Tok::Sub => {
                    self.bump();
                    if self.ident()? != "empty" {
                        return Err(self.error("unknown logfmt flag"));
                    }
                    keep_empty = true;
                }
                _ => return Err(self.error(format!("unknown logfmt flag --{flag}"))),
            }
        }
        Ok(Stage::Parse(Parser::Logfmt {
            strict,
            keep_empty,
            fields: self.extractions()?,
        }))
    }

    fn label_formats(&mut self) -> Result<Vec<LabelFmt>, ParseError> {
        let mut out = Vec::new();
        loop {
            let dst = self.ident()?;
            self.expect(Tok::Eq)?;
            out.push(match self.peek().clone() {
                Tok::Str(_) => LabelFmt::Template {
                    dst,
                    tmpl: self.compiled(Template::parse)?.1,
                },
                _ => LabelFmt::Rename {
                    dst,
                    src: self.ident()?,
                },
            });
            if !self.eat(&Tok::Comma) {
                return Ok(out);
            }
        }
    }

    fn label_sels(&mut self) -> Result<Vec<LabelSel>, ParseError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            let op = match self.peek() {
                Tok::Eq => Some(MatchOp::Eq),
                Tok::Neq => Some(MatchOp::Ne),
                Tok::Re => Some(MatchOp::Re),
                Tok::Nre => Some(MatchOp::Nre),
                _ => None,
            };
            let matcher = match op {
                Some(op) => {
                    self.bump();
                    let v = self.string()?;
                    Some(self.matcher(name.clone(), op, v)?)
                }
                None => None,
            };
            out.push(LabelSel { name, matcher });
            if !self.eat(&Tok::Comma) {
                return Ok(out);
            }
        }
    }

    // ----- label filters -----------------------------------------------------------------

    fn label_pred(&mut self) -> Result<LabelPred, ParseError> {
        self.enter()?;
        let mut lhs = self.label_and()?;
        while self.is_word("or") {
            self.bump();
            let rhs = self.label_and()?;
            lhs = LabelPred::Or(Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn label_and(&mut self) -> Result<LabelPred, ParseError> {
        let mut lhs = self.label_atom()?;
        loop {
            let explicit = self.is_word("and") || *self.peek() == Tok::Comma;
            let implicit = *self.peek() == Tok::LParen
                || matches!(self.peek(), Tok::Ident(w) if w != "or" && w != "and" && w != "offset");
            if explicit {
                self.bump();
            } else if !implicit {
                return Ok(lhs);
            }
            let rhs = self.label_atom()?;
            lhs = LabelPred::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_atom(&mut self) -> Result<LabelPred, ParseError> {
        if self.eat(&Tok::LParen) {
            let p = self.label_pred()?;
            self.expect(Tok::RParen)?;
            return Ok(p);
        }
        let name = self.ident()?;
        let tok = self.bump();
        let str_op = match tok {
            Tok::Eq => Some(MatchOp::Eq),
            Tok::Neq => Some(MatchOp::Ne),
            Tok::Re => Some(MatchOp::Re),
            Tok::Nre => Some(MatchOp::Nre),
            _ => None,
        };
        if let Some(op) = str_op {
            if let Tok::Str(s) = self.peek().clone() {
                self.bump();
                return Ok(LabelPred::Str(self.matcher(name, op, s)?));
            }
            if self.is_word("ip") && matches!(op, MatchOp::Eq | MatchOp::Ne) {
                self.bump();
                self.expect(Tok::LParen)?;
                let text = self.string()?;
                self.expect(Tok::RParen)?;
                let ip = super::ip::IpMatcher::parse(&text).map_err(|e| self.error(e))?;
                return Ok(LabelPred::Ip {
                    name,
                    negate: op == MatchOp::Ne,
                    text,
                    ip,
                });
            }
        }
        let op = match tok {
            Tok::Eq | Tok::CmpEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Ne,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("= or != or =~ or !~ or == or > or >= or < or <="));
            }
        };
        let neg = self.eat(&Tok::Sub);
        let sign = if neg { -1.0 } else { 1.0 };
        let lit = match self.bump() {
            Tok::Num(v) => NumLit::Number(sign * v),
            Tok::Duration(ns) => NumLit::Duration(if neg { -ns } else { ns }),
            Tok::Bytes(b) if !neg => NumLit::Bytes(b),
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("STRING or NUMBER or DURATION or BYTES"));
            }
        };
        Ok(LabelPred::Num { name, op, lit })
    }
}

/// A fully anchored regular expression, as label matchers use.
pub fn anchored(re: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| regex_error(&e))
}

/// Go's wording: `error parsing regexp: <what>`.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("invalid regular expression");
    let what = last.trim().trim_start_matches("error:").trim();
    format!("error parsing regexp: {what}")
}
