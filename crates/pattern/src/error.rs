//! Error types: every error says what was wrong and where.

use std::fmt;

/// A byte range `start..end` in the pattern text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Why a pattern text was refused by [`crate::Pattern::parse`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The text is longer than [`crate::Limits::max_pattern_bytes`].
    #[error("pattern is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length of the text.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character that starts no token.
    #[error("invalid character {ch:?} at {span}")]
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Where.
        span: Span,
    },
    /// A malformed token (unterminated string, bad escape, ...).
    #[error("{what} at {span}")]
    Lex {
        /// What is wrong.
        what: &'static str,
        /// Where.
        span: Span,
    },
    /// A prefixed literal whose body is malformed (`h'abc'`, `b'==='`, `t'2016'`).
    #[error("invalid {what} at {span}")]
    Literal {
        /// The kind of literal expected.
        what: &'static str,
        /// Where.
        span: Span,
    },
    /// A number that does not fit (`i64` for integers, finite `f64` for floats).
    #[error("number {text} at {span} is out of range")]
    NumberRange {
        /// The number as written.
        text: String,
        /// Where.
        span: Span,
    },
    /// The grammar wanted something else here.
    #[error("expected {expected} at {span}, found {found}")]
    Unexpected {
        /// What would have been accepted.
        expected: String,
        /// What was there (quoted source text, or "end of input").
        found: String,
        /// Where.
        span: Span,
    },
    /// Parentheses, brackets or qualifier chains nested deeper than
    /// [`crate::Limits::max_depth`].
    #[error("expression nested deeper than the limit of {max} at {span}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the limit was crossed.
        span: Span,
    },
    /// An `IN (...)` list longer than [`crate::Limits::max_in_list`].
    #[error("IN list at {span} has more than {max} values")]
    TooManyValues {
        /// The limit.
        max: usize,
        /// Where.
        span: Span,
    },
    /// Two qualifiers of one kind applied directly to one `[...]` (put the qualified
    /// expression in parentheses to qualify it again).
    #[error("duplicate {kind} qualifier at {span} on the same observation expression")]
    DuplicateQualifier {
        /// `WITHIN`, `START/STOP` or `REPEATS`.
        kind: &'static str,
        /// The second qualifier.
        span: Span,
    },
}

impl ParseError {
    /// The byte range the error points at, if any.
    pub fn span(&self) -> Option<Span> {
        match self {
            ParseError::TooLong { .. } => None,
            ParseError::InvalidCharacter { span, .. }
            | ParseError::Lex { span, .. }
            | ParseError::Literal { span, .. }
            | ParseError::NumberRange { span, .. }
            | ParseError::Unexpected { span, .. }
            | ParseError::TooDeep { span, .. }
            | ParseError::TooManyValues { span, .. }
            | ParseError::DuplicateQualifier { span, .. } => Some(*span),
        }
    }
}

/// Why a parsed pattern cannot be evaluated ([`crate::Pattern::compile`]). `comparison`
/// fields hold the offending comparison in canonical form, to say where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A `MATCHES` regex the engine cannot run (syntax it lacks, such as look-around or
    /// back-references, or a compiled size over [`crate::Limits::max_regex_bytes`]).
    #[error("regular expression in `{comparison}` cannot be used: {reason}")]
    Regex {
        /// The comparison.
        comparison: String,
        /// The engine's message.
        reason: String,
    },
    /// A `t'..'` literal for a date that does not exist (30 February, a leap second).
    #[error("timestamp {text:?} does not exist: {reason}")]
    Timestamp {
        /// The literal text.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// An `ISSUBSET` / `ISSUPERSET` operand that is not an IP address / CIDR block.
    #[error("`{comparison}`: {text:?} is not {expected}")]
    Network {
        /// The comparison.
        comparison: String,
        /// The operand.
        text: String,
        /// What it should be.
        expected: &'static str,
    },
    /// An `IN` list mixing types (numbers may mix ints and floats).
    #[error("`{comparison}`: IN list mixes value types")]
    MixedSet {
        /// The comparison.
        comparison: String,
    },
    /// A literal type the operator cannot use (a hand-built tree, e.g. `< true`).
    #[error("`{comparison}`: operand type not allowed for this operator")]
    OperandType {
        /// The comparison.
        comparison: String,
    },
    /// `REPEATS 0 TIMES`, `WITHIN 0 SECONDS` (or negative / not finite).
    #[error("qualifier `{qualifier}` is invalid: {reason}")]
    Qualifier {
        /// The qualifier as printed.
        qualifier: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// One match would need more observations than [`crate::Limits::max_binding_size`].
    #[error("a match needs {needed} observations, more than the limit of {max}")]
    BindingTooLarge {
        /// Observations one match binds (REPEATS multiplied out).
        needed: u64,
        /// The limit.
        max: usize,
    },
    /// A hand-built tree breaking an invariant of [`crate::ast`].
    #[error("malformed pattern tree: {0}")]
    Malformed(&'static str),
}

/// Why evaluating a compiled pattern against observations failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatchError {
    /// An observed-data object lacks or has a bad `first_observed`, `last_observed` or
    /// `number_observed`.
    #[error("observed-data #{index}: {reason}")]
    Observation {
        /// Index in the observation slice.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A string compared with a `t'..'` literal is not a STIX timestamp (the reference
    /// matcher reports this instead of silently not matching).
    #[error("observed-data #{index}: value {value:?} compared with a timestamp is not a timestamp")]
    BadTimestamp {
        /// Index in the observation slice.
        index: usize,
        /// The value.
        value: String,
    },
    /// The search for a binding took more than [`crate::Limits::max_match_steps`] steps.
    #[error("match search gave up after {steps} steps (limit)")]
    Budget {
        /// Steps taken.
        steps: u64,
    },
}
