//! The aggregation half of the grammar: `by`/`without`, vector aggregations, range
//! aggregations with `unwrap`, `offset` and Loki's checks on them, and `label_replace`.
//!
//! Must not: parse pipelines (the log half does).

use super::super::ParseError;
use super::super::ast::*;
use super::super::lexer::Tok;
use super::{Grammar, anchored};

impl Grammar<'_> {
    pub(super) fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
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

    pub(super) fn vec_agg(&mut self, op: VecOp) -> Result<MetricExpr, ParseError> {
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

    pub(super) fn label_replace(&mut self) -> Result<MetricExpr, ParseError> {
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

    pub(super) fn range_agg(&mut self, op: RangeOp) -> Result<MetricExpr, ParseError> {
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
        if grouping.is_some() && !op.allows_grouping() {
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

    pub(super) fn unwrap_part(&mut self) -> Result<(Option<Unwrap>, Vec<LabelPred>), ParseError> {
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
}
