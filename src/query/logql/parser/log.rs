//! The log-query half of the grammar: stream selectors, pipelines (line filters, parsers,
//! formatting, `drop`/`keep`) and label filters with `and`, `or` and parentheses.
//!
//! Must not: parse metric expressions (the parent does, and calls in here for the log part).

use regex::Regex;

use super::super::ParseError;
use super::super::ast::*;
use super::super::lexer::Tok;
use super::super::template::Template;
use super::{Grammar, anchored, regex_error};

impl Grammar<'_> {
    // ----- log queries -------------------------------------------------------------------

    pub(super) fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let mut log = self.log_selector()?;
        log.pipeline = self.pipeline()?;
        if *self.peek() == Tok::Pipe {
            return Err(self
                .error("parse error : unwrap is only allowed in range aggregations that take it"));
        }
        Ok(log)
    }

    pub(super) fn log_selector(&mut self) -> Result<LogExpr, ParseError> {
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

    pub(super) fn matcher(
        &self,
        name: String,
        op: MatchOp,
        value: String,
    ) -> Result<Matcher, ParseError> {
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

    pub(super) fn pipeline(&mut self) -> Result<Vec<Stage>, ParseError> {
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
            let ip = super::super::ip::IpMatcher::parse(&text).map_err(|e| self.error(e))?;
            return Ok(FilterArg::Ip(text, ip));
        }
        Ok(match op {
            LineOp::Match | LineOp::NotMatch => {
                let (s, re) = self.compiled(|s| Regex::new(s).map_err(|e| regex_error(&e)))?;
                FilterArg::Regex(s, re)
            }
            LineOp::Pattern | LineOp::NotPattern => {
                let (s, p) = self.compiled(super::super::pattern::Pattern::parse)?;
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
                let (s, p) = self.compiled(super::super::pattern::Pattern::parse)?;
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

    pub(super) fn label_pred(&mut self) -> Result<LabelPred, ParseError> {
        self.scoped(|p| {
            p.enter()?;
            p.label_or()
        })
    }

    /// `a or b or ...`: each `or` is a level of the tree.
    fn label_or(&mut self) -> Result<LabelPred, ParseError> {
        let mut lhs = self.label_and()?;
        while self.is_word("or") {
            self.enter()?;
            self.bump();
            let rhs = self.label_and()?;
            lhs = LabelPred::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// `a and b`, `a, b` or `a b`: each is a level of the tree.
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
            self.enter()?;
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
                let ip = super::super::ip::IpMatcher::parse(&text).map_err(|e| self.error(e))?;
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
