//! # phalanx-pattern
//!
//! STIX 2.1 Patterning (STIX 2.1 §9): a parser with byte-span errors, a public AST, a
//! canonical printer and an evaluator over observed-data. Pure: no IO, no async, no clock
//! (observation times come from the observed-data objects).
//!
//! Main types:
//! - [`Pattern`]: a parsed pattern ([`Pattern::parse`], [`Pattern::parse_with`]); its
//!   tree is [`ast::ObservationExpr`]; `Display` prints the canonical text, and parsing
//!   that text gives an equal tree.
//! - [`Limits`]: hard limits against hostile input (pattern bytes, nesting depth, `IN`
//!   list size, regex size, search steps, observations per match).
//! - [`Matcher`]: a compiled pattern ([`Pattern::compile`]): regexes compiled once,
//!   literals converted once; [`Matcher::matches`] / [`Matcher::find`] evaluate it
//!   against a slice of observed-data objects and an [`ScoResolver`] for the SCOs they
//!   reference by id.
//! - Errors: [`ParseError`] (with [`Span`]), [`CompileError`], [`MatchError`].
//!
//! ```
//! use std::collections::HashMap;
//! use phalanx_pattern::Pattern;
//! use serde_json::json;
//!
//! let p = Pattern::parse("[ipv4-addr:value ISSUBSET '198.51.100.0/24'] FOLLOWEDBY \
//!                         [domain-name:value = 'evil.example'] WITHIN 60 SECONDS")?;
//! // The printer gives back the canonical text.
//! assert_eq!(Pattern::parse(&p.to_string())?, p);
//! let m = p.compile()?;
//!
//! let observed = [
//!     json!({"type": "observed-data", "first_observed": "2024-01-01T00:00:00Z",
//!            "last_observed": "2024-01-01T00:00:00Z", "number_observed": 1,
//!            "object_refs": ["ipv4-addr--1"]}),
//!     json!({"type": "observed-data", "first_observed": "2024-01-01T00:00:30Z",
//!            "last_observed": "2024-01-01T00:00:30Z", "number_observed": 1,
//!            "object_refs": ["domain-name--1"]}),
//! ];
//! let scos: HashMap<String, serde_json::Value> = HashMap::from([
//!     ("ipv4-addr--1".to_owned(), json!({"type": "ipv4-addr", "id": "ipv4-addr--1",
//!                                        "value": "198.51.100.7"})),
//!     ("domain-name--1".to_owned(), json!({"type": "domain-name", "id": "domain-name--1",
//!                                          "value": "evil.example"})),
//! ]);
//! assert!(m.matches(&observed, &scos)?);
//! // The observed-data that made up the match:
//! assert_eq!(m.find(&observed, &scos)?, Some(vec![0, 1]));
//!
//! // Errors say what and where.
//! let err = Pattern::parse("[file:size = 1 AND]").unwrap_err();
//! assert_eq!(err.to_string(),
//!            "expected an object path, 'NOT', 'EXISTS' or '(' at 18..19, found ']'");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Decisions where the reference tools and the specification leave room
//!
//! - `==` and `<>` are accepted (the reference grammar has them) and printed as `=` / `!=`.
//! - Comments `/* .. */` and `// ..` are skipped, as by the reference lexer.
//! - Integers must fit in `i64` (the reference accepts any size); floats must be finite.
//! - Two qualifiers of one kind directly on one `[...]` are refused, on a parenthesised
//!   group they are allowed (reference validator behaviour).
//! - `REPEATS 0 TIMES`, `WITHIN 0 SECONDS`, mixed-type `IN` lists and `t'..'` literals
//!   for dates that do not exist parse, but [`Pattern::compile`] refuses them.
//! - `MATCHES` uses the Rust `regex` engine (linear time; no look-around or
//!   back-references: such patterns are a [`CompileError::Regex`]), with `.` matching
//!   newlines (PCRE `DOTALL`, as the specification asks).
//! - `ISSUBSET` / `ISSUPERSET` work for IPv4 and IPv6; a value that is not an address
//!   is a non-match (not an error).
//! - See [`Matcher`] for evaluation semantics.

pub mod ast;
mod codec;
mod error;
mod eval;
mod lexer;
mod lint;
pub mod net;
mod parser;
mod print;

pub use error::{CompileError, MatchError, ParseError, Span};
pub use eval::{Matcher, ScoResolver};
pub use lint::Lint;

use ast::ObservationExpr;

/// Hard limits, applied while parsing, compiling and matching. Every field is a bound
/// against hostile or broken input; the defaults suit indicator patterns seen in practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest pattern text, in bytes.
    pub max_pattern_bytes: usize,
    /// Deepest nesting of `(`, `[` and qualifier chains.
    pub max_depth: usize,
    /// Most values in one `IN (...)` list.
    pub max_in_list: usize,
    /// Compiled size limit of one `MATCHES` / `LIKE` regex, in bytes.
    pub max_regex_bytes: usize,
    /// Most observations one match may bind (`REPEATS` multiplied out).
    pub max_binding_size: usize,
    /// Most steps the binding search may take for one [`Matcher::find`].
    pub max_match_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pattern_bytes: 256 * 1024,
            max_depth: 64,
            max_in_list: 10_000,
            max_regex_bytes: 1 << 20,
            max_binding_size: 256,
            max_match_steps: 2_000_000,
        }
    }
}

/// A parsed STIX pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The syntax tree.
    pub expr: ObservationExpr,
    limits: Limits,
}

impl Pattern {
    /// Parses `text` with [`Limits::default`].
    pub fn parse(text: &str) -> Result<Pattern, ParseError> {
        Pattern::parse_with(text, &Limits::default())
    }

    /// Parses `text` under `limits` (kept for [`Pattern::compile`]).
    pub fn parse_with(text: &str, limits: &Limits) -> Result<Pattern, ParseError> {
        Ok(Pattern {
            expr: parser::parse(text, limits)?,
            limits: limits.clone(),
        })
    }

    /// Wraps a tree built by hand; [`Pattern::compile`] checks its invariants.
    pub fn from_expr(expr: ObservationExpr, limits: Limits) -> Pattern {
        Pattern { expr, limits }
    }

    /// Compiles the pattern for matching: converts literals, compiles regexes and
    /// checks what the grammar lets through but evaluation cannot use.
    pub fn compile(&self) -> Result<Matcher, CompileError> {
        eval::compile(&self.expr, &self.limits)
    }

    /// Content checks beyond the grammar, as the reference validator makes them: hash
    /// values that do not fit their algorithm (`file:hashes.'SHA-256' = 'f00'`).
    pub fn lint(&self) -> Vec<Lint> {
        lint::lint(&self.expr)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}
