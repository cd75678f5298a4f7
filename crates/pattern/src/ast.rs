//! The abstract syntax tree of a STIX 2.1 pattern (§9).
//!
//! The tree is what the parser produces and what the printer ([`std::fmt::Display`]) and the
//! compiler ([`crate::Pattern::compile`]) consume. It keeps no source positions, so two
//! patterns that differ only in spacing, comments, redundant parentheses or operator
//! spelling (`==` / `=`) have equal trees.
//!
//! Invariants the parser guarantees (and [`crate::Pattern::compile`] re-checks for trees
//! built by hand):
//! - `And`, `Or` and `FollowedBy` have at least two operands. A chain `a AND b AND c` is
//!   one node with three operands; a parenthesised operand of the same kind stays nested
//!   (`a AND (b AND c)`), so printing and re-parsing gives the same tree.
//! - `FollowedBy` is left-associative: `a FOLLOWEDBY b FOLLOWEDBY c` means
//!   `(a FOLLOWEDBY b) FOLLOWEDBY c`.
//! - An [`ObjectPath`] has at least one step and its first step is a [`PathStep::Key`].

/// A whole pattern: observation expressions joined by `AND`, `OR`, `FOLLOWEDBY`, with
/// qualifiers.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationExpr {
    /// `[ comparison-expression ]`: one observation whose SCO satisfies the comparisons.
    Observation(ComparisonExpr),
    /// `a AND b AND ...`: all operands, each on a distinct observation.
    And(Vec<ObservationExpr>),
    /// `a OR b OR ...`: any operand.
    Or(Vec<ObservationExpr>),
    /// `a FOLLOWEDBY b FOLLOWEDBY ...` (left-associative): each operand's observations
    /// are no earlier than the previous operands'.
    FollowedBy(Vec<ObservationExpr>),
    /// An expression with one qualifier: `expr WITHIN 5 SECONDS`, `expr REPEATS 3 TIMES`,
    /// `expr START t'..' STOP t'..'`.
    Qualified(Box<ObservationExpr>, Qualifier),
}

/// A qualifier on an observation expression (§9.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// `WITHIN n SECONDS`: all observations fit in a window of `seconds`.
    Within {
        /// The window length; the parser gives a finite, non-negative number.
        seconds: f64,
    },
    /// `START t'..' STOP t'..'`: every observation is at or after `start` and before `stop`.
    StartStop {
        /// Inclusive lower bound.
        start: TimestampLiteral,
        /// Exclusive upper bound.
        stop: TimestampLiteral,
    },
    /// `REPEATS n TIMES`: the expression matches `n` times on distinct observations.
    Repeats {
        /// The repetition count.
        times: u64,
    },
}

impl Qualifier {
    /// The qualifier's keyword (`WITHIN`, `START`/`STOP` as `STARTSTOP`, `REPEATS`).
    pub fn kind(&self) -> &'static str {
        match self {
            Qualifier::Within { .. } => "WITHIN",
            Qualifier::StartStop { .. } => "START/STOP",
            Qualifier::Repeats { .. } => "REPEATS",
        }
    }
}

/// The inside of `[...]`: comparisons joined by `AND` / `OR` with parentheses.
#[derive(Debug, Clone, PartialEq)]
pub enum ComparisonExpr {
    /// All operands hold for the same SCO.
    And(Vec<ComparisonExpr>),
    /// Any operand holds.
    Or(Vec<ComparisonExpr>),
    /// One comparison.
    Comparison(Comparison),
}

/// One comparison: `path [NOT] op operand`, or `[NOT] EXISTS path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The object path on the left.
    pub path: ObjectPath,
    /// `NOT` prefix on the operator: inverts the result of a comparison that could be
    /// evaluated (a missing property still gives false, except for `NOT EXISTS`).
    pub negated: bool,
    /// The operator and its right-hand side.
    pub op: Operator,
}

/// A comparison operator with its operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// `=` (also spelled `==`).
    Eq(Literal),
    /// `!=` (also spelled `<>`).
    Ne(Literal),
    /// `<`
    Lt(Literal),
    /// `<=`
    Le(Literal),
    /// `>`
    Gt(Literal),
    /// `>=`
    Ge(Literal),
    /// `IN (v, ...)`; the list may be empty.
    In(Vec<Literal>),
    /// `LIKE 'pattern'` with `%` and `_` wildcards.
    Like(String),
    /// `MATCHES 'regex'`.
    Matches(String),
    /// `ISSUBSET 'cidr'`: the value (an address or CIDR) lies in the given CIDR.
    IsSubset(String),
    /// `ISSUPERSET 'address-or-cidr'`: the value (a CIDR) contains the given one.
    IsSuperset(String),
    /// `EXISTS path` (the path is [`Comparison::path`]).
    Exists,
}

impl Operator {
    /// The operator's canonical spelling.
    pub fn symbol(&self) -> &'static str {
        match self {
            Operator::Eq(_) => "=",
            Operator::Ne(_) => "!=",
            Operator::Lt(_) => "<",
            Operator::Le(_) => "<=",
            Operator::Gt(_) => ">",
            Operator::Ge(_) => ">=",
            Operator::In(_) => "IN",
            Operator::Like(_) => "LIKE",
            Operator::Matches(_) => "MATCHES",
            Operator::IsSubset(_) => "ISSUBSET",
            Operator::IsSuperset(_) => "ISSUPERSET",
            Operator::Exists => "EXISTS",
        }
    }
}

/// A literal value on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer (`5`, `-3`, `+7`). Integers outside `i64` are refused by the parser.
    Int(i64),
    /// A float without exponent (`1.5`, `.5`, `-0.25`); always finite.
    Float(f64),
    /// A string `'...'` (escapes `\'` and `\\` resolved).
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// Binary data, written `b'base64'` or `h'hex'` (printed as `h'..'`).
    Binary(Vec<u8>),
    /// A timestamp `t'...'`.
    Timestamp(TimestampLiteral),
}

/// The text of a `t'...'` literal: syntactically `YYYY-MM-DDTHH:MM:SS[.s+]Z` with months
/// 01-12, days 01-31, hours 00-23, minutes 00-59, seconds 00-60, as the reference grammar
/// accepts. Whether the date exists (30 February, a leap second) is checked when the
/// pattern is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimestampLiteral(String);

impl TimestampLiteral {
    /// Checks the syntax; `None` when `text` is not a pattern timestamp.
    pub fn new(text: &str) -> Option<Self> {
        timestamp_syntax_ok(text).then(|| TimestampLiteral(text.to_owned()))
    }

    /// The timestamp text (without `t'` and `'`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn timestamp_syntax_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if b.len() < 20 || !(0..4).all(d) || !at(4, b'-') || !at(7, b'-') || !at(10, b'T') {
        return false;
    }
    if !at(13, b':') || !at(16, b':') || !(d(5) && d(6) && d(8) && d(9) && d(11) && d(12)) {
        return false;
    }
    if !(d(14) && d(15) && d(17) && d(18)) {
        return false;
    }
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (month, day, hour, min, sec) = (two(5), two(8), two(11), two(14), two(17));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 {
        return false;
    }
    if sec > 60 {
        return false;
    }
    let rest = &b[19..];
    match rest {
        [b'Z'] => true,
        [b'.', frac @ .., b'Z'] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// An object path: `type:step.step[0][*]...`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPath {
    /// The SCO type before `:`, e.g. `file` or `x-usb-device`.
    pub object_type: String,
    /// The steps after `:`; the first is always a key.
    pub steps: Vec<PathStep>,
}

/// One step of an [`ObjectPath`].
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    /// A property key (`.name`, `.'SHA-256'`). A key ending in `_ref` / `_refs`
    /// dereferences to the referenced SCO(s).
    Key(String),
    /// A list index `[n]`; out of range (including negative) selects nothing.
    Index(i64),
    /// `[*]`: every element of a list.
    AnyIndex,
}
