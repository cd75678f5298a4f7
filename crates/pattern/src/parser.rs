//! Recursive-descent parser: tokens → [`ObservationExpr`].
//!
//! Grammar (STIX 2.1 §9 as implemented by the reference `stix2patterns` 2.1.2 parser):
//!
//! ```text
//! pattern      := followed EOF
//! followed     := or ('FOLLOWEDBY' or)*
//! or           := and ('OR' and)*
//! and          := qualified ('AND' qualified)*
//! qualified    := primary qualifier*
//! primary      := '[' cmp_or ']' | '(' followed ')'
//! qualifier    := 'WITHIN' (int|float) 'SECONDS' | 'START' ts 'STOP' ts | 'REPEATS' int 'TIMES'
//! cmp_or       := cmp_and ('OR' cmp_and)*
//! cmp_and      := cmp_primary ('AND' cmp_primary)*
//! cmp_primary  := '(' cmp_or ')' | 'NOT'? 'EXISTS' path | path 'NOT'? op operand
//! path         := type ':' (ident | string) ('.' (ident | string) | '[' (int | '*') ']')*
//! ```

use crate::Limits;
use crate::ast::*;
use crate::error::{ParseError, Span};
use crate::lexer::{Kw, Tok, Token, lex};

pub(crate) fn parse(src: &str, limits: &Limits) -> Result<ObservationExpr, ParseError> {
    if src.len() > limits.max_pattern_bytes {
        return Err(ParseError::TooLong {
            len: src.len(),
            max: limits.max_pattern_bytes,
        });
    }
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
        limits,
    };
    let e = p.followed()?;
    p.expect(|t| matches!(t, Tok::Eof), "end of input")?;
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    limits: &'a Limits,
}

fn describe(src: &str, t: &Token) -> String {
    if matches!(t.tok, Tok::Eof) {
        return "end of input".to_owned();
    }
    let text = src.get(t.span.start..t.span.end).unwrap_or("");
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("'{short}'")
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        // The token list always ends with Eof and `pos` never passes it.
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, kw: Kw) -> bool {
        matches!(self.peek(), Tok::Kw(k) if *k == kw)
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let t = &self.toks[self.pos.min(self.toks.len() - 1)];
        ParseError::Unexpected {
            expected: expected.to_owned(),
            found: describe(self.src, t),
            span: t.span,
        }
    }

    fn expect(&mut self, ok: impl Fn(&Tok) -> bool, expected: &str) -> Result<Token, ParseError> {
        if ok(self.peek()) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_kw(&mut self, kw: Kw, expected: &str) -> Result<Token, ParseError> {
        self.expect(|t| matches!(t, Tok::Kw(k) if *k == kw), expected)
    }

    fn enter(&mut self, span: Span) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(ParseError::TooDeep {
                max: self.limits.max_depth,
                span,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- observation level ----

    fn followed(&mut self) -> Result<ObservationExpr, ParseError> {
        let first = self.or()?;
        let mut items = vec![first];
        while self.is_kw(Kw::FollowedBy) {
            self.bump();
            items.push(self.or()?);
        }
        Ok(nary(items, ObservationExpr::FollowedBy))
    }

    fn or(&mut self) -> Result<ObservationExpr, ParseError> {
        let mut items = vec![self.and()?];
        while self.is_kw(Kw::Or) {
            self.bump();
            items.push(self.and()?);
        }
        Ok(nary(items, ObservationExpr::Or))
    }

    fn and(&mut self) -> Result<ObservationExpr, ParseError> {
        let mut items = vec![self.qualified()?];
        while self.is_kw(Kw::And) {
            self.bump();
            items.push(self.qualified()?);
        }
        Ok(nary(items, ObservationExpr::And))
    }

    fn qualified(&mut self) -> Result<ObservationExpr, ParseError> {
        let (mut e, bracketed) = self.primary()?;
        let mut seen: Vec<&'static str> = Vec::new();
        let depth_before = self.depth;
        let result = (|| {
            loop {
                let start = self.span();
                let q = if self.is_kw(Kw::Within) {
                    self.bump();
                    let t = self.expect(
                        |t| matches!(t, Tok::IntPos(_) | Tok::FloatPos(_)),
                        "a positive number after WITHIN",
                    )?;
                    let (Tok::IntPos(text) | Tok::FloatPos(text)) = &t.tok else {
                        return Err(self.unexpected("a positive number"));
                    };
                    let seconds: f64 = text.parse().unwrap_or(f64::INFINITY);
                    if !seconds.is_finite() {
                        return Err(ParseError::NumberRange {
                            text: text.clone(),
                            span: t.span,
                        });
                    }
                    self.expect_kw(Kw::Seconds, "'SECONDS'")?;
                    Qualifier::Within { seconds }
                } else if self.is_kw(Kw::Start) {
                    self.bump();
                    let start_ts = self.timestamp("a timestamp t'...' after START")?;
                    self.expect_kw(Kw::Stop, "'STOP'")?;
                    let stop_ts = self.timestamp("a timestamp t'...' after STOP")?;
                    Qualifier::StartStop {
                        start: start_ts,
                        stop: stop_ts,
                    }
                } else if self.is_kw(Kw::Repeats) {
                    self.bump();
                    let t = self.expect(
                        |t| matches!(t, Tok::IntPos(_)),
                        "a positive integer after REPEATS",
                    )?;
                    let Tok::IntPos(text) = &t.tok else {
                        return Err(self.unexpected("a positive integer"));
                    };
                    let times: u64 = text.parse().map_err(|_| ParseError::NumberRange {
                        text: text.clone(),
                        span: t.span,
                    })?;
                    self.expect_kw(Kw::Times, "'TIMES'")?;
                    Qualifier::Repeats { times }
                } else {
                    return Ok(e);
                };
                let span = Span::new(start.start, self.toks[self.pos - 1].span.end);
                if bracketed {
                    let kind = q.kind();
                    if seen.contains(&kind) {
                        return Err(ParseError::DuplicateQualifier { kind, span });
                    }
                    seen.push(kind);
                }
                // Each qualifier adds a level to the tree.
                self.enter(span)?;
                e = ObservationExpr::Qualified(Box::new(e), q);
            }
        })();
        self.depth = depth_before;
        result
    }

    fn timestamp(&mut self, expected: &str) -> Result<TimestampLiteral, ParseError> {
        let t = self.expect(|t| matches!(t, Tok::Timestamp(_)), expected)?;
        match t.tok {
            Tok::Timestamp(ts) => Ok(ts),
            _ => Err(self.unexpected(expected)),
        }
    }

    /// Returns the expression and whether it was a `[...]` (not a parenthesised group).
    fn primary(&mut self) -> Result<(ObservationExpr, bool), ParseError> {
        match self.peek() {
            Tok::LBrack => {
                let open = self.bump();
                self.enter(open.span)?;
                let c = self.cmp_or()?;
                self.expect(|t| matches!(t, Tok::RBrack), "']'")?;
                self.leave();
                Ok((ObservationExpr::Observation(c), true))
            }
            Tok::LParen => {
                let open = self.bump();
                self.enter(open.span)?;
                let e = self.followed()?;
                self.expect(|t| matches!(t, Tok::RParen), "')'")?;
                self.leave();
                Ok((e, false))
            }
            _ => Err(self.unexpected("'[' or '('")),
        }
    }

    // ---- comparison level ----

    fn cmp_or(&mut self) -> Result<ComparisonExpr, ParseError> {
        let mut items = vec![self.cmp_and()?];
        while self.is_kw(Kw::Or) {
            self.bump();
            items.push(self.cmp_and()?);
        }
        Ok(nary(items, ComparisonExpr::Or))
    }

    fn cmp_and(&mut self) -> Result<ComparisonExpr, ParseError> {
        let mut items = vec![self.cmp_primary()?];
        while self.is_kw(Kw::And) {
            self.bump();
            items.push(self.cmp_primary()?);
        }
        Ok(nary(items, ComparisonExpr::And))
    }

    fn cmp_primary(&mut self) -> Result<ComparisonExpr, ParseError> {
        match self.peek() {
            Tok::LParen => {
                let open = self.bump();
                self.enter(open.span)?;
                let c = self.cmp_or()?;
                self.expect(|t| matches!(t, Tok::RParen), "')'")?;
                self.leave();
                Ok(c)
            }
            Tok::Kw(Kw::Not) | Tok::Kw(Kw::Exists) => {
                let negated = self.is_kw(Kw::Not);
                if negated {
                    self.bump();
                }
                self.expect_kw(Kw::Exists, "'EXISTS'")?;
                let path = self.path()?;
                Ok(ComparisonExpr::Comparison(Comparison {
                    path,
                    negated,
                    op: Operator::Exists,
                }))
            }
            Tok::Ident { .. } => {
                let path = self.path()?;
                let negated = self.is_kw(Kw::Not);
                if negated {
                    self.bump();
                }
                let op = self.operator()?;
                Ok(ComparisonExpr::Comparison(Comparison { path, negated, op }))
            }
            _ => Err(self.unexpected("an object path, 'NOT', 'EXISTS' or '('")),
        }
    }

    fn operator(&mut self) -> Result<Operator, ParseError> {
        let expected_op =
            "a comparison operator (= != < <= > >= IN LIKE MATCHES ISSUBSET ISSUPERSET)";
        let tok = self.peek().clone();
        let op = match tok {
            Tok::Eq => {
                self.bump();
                Operator::Eq(self.literal(true)?)
            }
            Tok::Neq => {
                self.bump();
                Operator::Ne(self.literal(true)?)
            }
            Tok::Lt => {
                self.bump();
                Operator::Lt(self.literal(false)?)
            }
            Tok::Le => {
                self.bump();
                Operator::Le(self.literal(false)?)
            }
            Tok::Gt => {
                self.bump();
                Operator::Gt(self.literal(false)?)
            }
            Tok::Ge => {
                self.bump();
                Operator::Ge(self.literal(false)?)
            }
            Tok::Kw(Kw::In) => {
                self.bump();
                let open = self.expect(|t| matches!(t, Tok::LParen), "'(' after IN")?;
                let mut values = Vec::new();
                if matches!(self.peek(), Tok::RParen) {
                    self.bump();
                } else {
                    loop {
                        if values.len() == self.limits.max_in_list {
                            return Err(ParseError::TooManyValues {
                                max: self.limits.max_in_list,
                                span: Span::new(open.span.start, self.span().end),
                            });
                        }
                        values.push(self.literal(true)?);
                        let t =
                            self.expect(|t| matches!(t, Tok::Comma | Tok::RParen), "',' or ')'")?;
                        if matches!(t.tok, Tok::RParen) {
                            break;
                        }
                    }
                }
                Operator::In(values)
            }
            Tok::Kw(kw @ (Kw::Like | Kw::Matches | Kw::IsSubset | Kw::IsSuperset)) => {
                self.bump();
                let t = self.expect(|t| matches!(t, Tok::Str(_)), "a string literal")?;
                let Tok::Str(s) = t.tok else {
                    return Err(self.unexpected("a string literal"));
                };
                match kw {
                    Kw::Like => Operator::Like(s),
                    Kw::Matches => Operator::Matches(s),
                    Kw::IsSubset => Operator::IsSubset(s),
                    _ => Operator::IsSuperset(s),
                }
            }
            _ => return Err(self.unexpected(expected_op)),
        };
        Ok(op)
    }

    /// A primitive literal (`allow_bool`) or an orderable one.
    fn literal(&mut self, allow_bool: bool) -> Result<Literal, ParseError> {
        let expected = if allow_bool {
            "a literal (number, string, b'..', h'..', t'..', true, false)"
        } else {
            "an orderable literal (number, string, b'..', h'..', t'..')"
        };
        let t = self.bump();
        let lit = match t.tok {
            Tok::IntPos(text) | Tok::IntNeg(text) => {
                Literal::Int(text.parse().map_err(|_| ParseError::NumberRange {
                    text: text.clone(),
                    span: t.span,
                })?)
            }
            Tok::FloatPos(text) | Tok::FloatNeg(text) => {
                let v: f64 = text.parse().unwrap_or(f64::INFINITY);
                if !v.is_finite() {
                    return Err(ParseError::NumberRange { text, span: t.span });
                }
                Literal::Float(v)
            }
            Tok::Str(s) => Literal::Str(s),
            Tok::Binary(b) => Literal::Binary(b),
            Tok::Timestamp(ts) => Literal::Timestamp(ts),
            Tok::Bool(b) if allow_bool => Literal::Bool(b),
            _ => {
                self.pos -= 1;
                return Err(self.unexpected(expected));
            }
        };
        Ok(lit)
    }

    fn path(&mut self) -> Result<ObjectPath, ParseError> {
        let t = self.expect(|t| matches!(t, Tok::Ident { .. }), "an object type")?;
        let Tok::Ident {
            text: object_type, ..
        } = t.tok
        else {
            return Err(self.unexpected("an object type"));
        };
        self.expect(|t| matches!(t, Tok::Colon), "':' after the object type")?;
        let first = self.key("a property name or quoted key after ':'")?;
        let mut steps = vec![PathStep::Key(first)];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    steps.push(PathStep::Key(
                        self.key("a property name or quoted key after '.'")?,
                    ));
                }
                Tok::LBrack => {
                    self.bump();
                    let t = self.bump();
                    let step = match &t.tok {
                        Tok::Star => PathStep::AnyIndex,
                        Tok::IntPos(text) | Tok::IntNeg(text) => {
                            PathStep::Index(text.parse().map_err(|_| ParseError::NumberRange {
                                text: text.clone(),
                                span: t.span,
                            })?)
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.unexpected("a list index or '*'"));
                        }
                    };
                    self.expect(|t| matches!(t, Tok::RBrack), "']' after the list index")?;
                    steps.push(step);
                }
                _ => break,
            }
        }
        Ok(ObjectPath { object_type, steps })
    }

    fn key(&mut self, expected: &str) -> Result<String, ParseError> {
        match self.peek() {
            Tok::Ident { hyphen: false, .. } | Tok::Str(_) => match self.bump().tok {
                Tok::Ident { text, .. } | Tok::Str(text) => Ok(text),
                _ => Err(self.unexpected(expected)),
            },
            _ => Err(self.unexpected(expected)),
        }
    }
}

fn nary<T>(mut items: Vec<T>, make: fn(Vec<T>) -> T) -> T {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    make(items)
}
