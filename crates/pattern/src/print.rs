//! The canonical printer: `Display` for the AST.
//!
//! Canonical form: single spaces around binary operators, `=` and `!=` spelled so,
//! binary literals as `h'..'` (lower-case hex), keys quoted only when they are not plain
//! identifiers, and parentheses only where the tree needs them (an operand of lower or
//! equal precedence, a qualified `AND`/`OR`/`FOLLOWEDBY`, or a qualifier chain on one
//! `[...]` that repeats a kind). Parsing the output gives back an equal tree.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;
use crate::codec::hex_encode;
use crate::lexer::is_reserved;

fn prec(e: &ObservationExpr) -> u8 {
    match e {
        ObservationExpr::FollowedBy(_) => 1,
        ObservationExpr::Or(_) => 2,
        ObservationExpr::And(_) => 3,
        ObservationExpr::Qualified(..) => 4,
        ObservationExpr::Observation(_) => 5,
    }
}

fn write_nary(f: &mut Formatter<'_>, items: &[ObservationExpr], op: &str, p: u8) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        if prec(item) <= p {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

/// Whether printing the qualifier chain ending at `e` without parentheses would put two
/// qualifiers of one kind directly on a `[...]` (which the grammar refuses).
fn chain_has_duplicate(e: &ObservationExpr) -> bool {
    let mut kinds = Vec::new();
    let mut cur = e;
    while let ObservationExpr::Qualified(inner, q) = cur {
        kinds.push(q.kind());
        cur = inner;
    }
    if !matches!(cur, ObservationExpr::Observation(_)) {
        return false;
    }
    let mut seen = Vec::new();
    for k in kinds {
        if seen.contains(&k) {
            return true;
        }
        seen.push(k);
    }
    false
}

impl Display for ObservationExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ObservationExpr::Observation(c) => write!(f, "[{c}]"),
            ObservationExpr::And(items) => write_nary(f, items, "AND", 3),
            ObservationExpr::Or(items) => write_nary(f, items, "OR", 2),
            ObservationExpr::FollowedBy(items) => write_nary(f, items, "FOLLOWEDBY", 1),
            ObservationExpr::Qualified(inner, q) => {
                let wrap = prec(inner) < 4 || chain_has_duplicate(self);
                if wrap {
                    write!(f, "({inner}) {q}")
                } else {
                    write!(f, "{inner} {q}")
                }
            }
        }
    }
}

impl Display for Qualifier {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Within { seconds } => write!(f, "WITHIN {seconds} SECONDS"),
            Qualifier::StartStop { start, stop } => {
                write!(f, "START {} STOP {}", Literal::Timestamp(start.clone()), {
                    Literal::Timestamp(stop.clone())
                })
            }
            Qualifier::Repeats { times } => write!(f, "REPEATS {times} TIMES"),
        }
    }
}

impl Display for ComparisonExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (items, op, p) = match self {
            ComparisonExpr::Comparison(c) => return write!(f, "{c}"),
            ComparisonExpr::And(items) => (items, "AND", 2),
            ComparisonExpr::Or(items) => (items, "OR", 1),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                write!(f, " {op} ")?;
            }
            let ip = match item {
                ComparisonExpr::Comparison(_) => 3,
                ComparisonExpr::And(_) => 2,
                ComparisonExpr::Or(_) => 1,
            };
            if ip <= p {
                write!(f, "({item})")?;
            } else {
                write!(f, "{item}")?;
            }
        }
        Ok(())
    }
}

impl Display for Comparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let not = if self.negated { "NOT " } else { "" };
        let path = &self.path;
        match &self.op {
            Operator::Exists => write!(f, "{not}EXISTS {path}"),
            Operator::Eq(v)
            | Operator::Ne(v)
            | Operator::Lt(v)
            | Operator::Le(v)
            | Operator::Gt(v)
            | Operator::Ge(v) => write!(f, "{path} {not}{} {v}", self.op.symbol()),
            Operator::In(values) => {
                write!(f, "{path} {not}IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_char(')')
            }
            Operator::Like(s)
            | Operator::Matches(s)
            | Operator::IsSubset(s)
            | Operator::IsSuperset(s) => {
                write!(f, "{path} {not}{} ", self.op.symbol())?;
                write_str_lit(f, s)
            }
        }
    }
}

pub(crate) fn write_str_lit(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('\'')
}

fn plain_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !is_reserved(s)
}

fn write_key(f: &mut Formatter<'_>, k: &str) -> fmt::Result {
    if plain_ident(k) {
        f.write_str(k)
    } else {
        write_str_lit(f, k)
    }
}

impl Display for ObjectPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.object_type)?;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Key(k) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    write_key(f, k)?;
                }
                PathStep::Index(n) => write!(f, "[{n}]")?,
                PathStep::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => {
                let s = x.to_string();
                if s.contains('.') {
                    f.write_str(&s)
                } else {
                    write!(f, "{s}.0")
                }
            }
            Literal::Str(s) => write_str_lit(f, s),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Binary(bytes) => write!(f, "h'{}'", hex_encode(bytes)),
            Literal::Timestamp(ts) => write!(f, "t'{}'", ts.as_str()),
        }
    }
}

impl Display for TimestampLiteral {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
