//! Errors: what was wrong and where (indicator id, line number, byte offset).

use phalanx_pattern::{CompileError, ParseError};

/// Why an indicator could not be indexed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("indicator {}: {kind}", id.as_deref().unwrap_or("(no id)"))]
pub struct IndicatorError {
    /// The indicator's `id`, when it has one.
    pub id: Option<String>,
    /// What is wrong.
    pub kind: IndicatorErrorKind,
}

/// What is wrong with an indicator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorErrorKind {
    /// The text is not JSON (or nests too deeply).
    #[error("not JSON: {0}")]
    Json(String),
    /// `type` is not `indicator`.
    #[error("not an indicator (type is not \"indicator\")")]
    NotIndicator,
    /// `id` is missing or not `indicator--<uuid>`.
    #[error("id is missing or not of the form indicator--<uuid>")]
    BadId,
    /// A timestamp property is not a STIX timestamp.
    #[error("{property}: {reason}")]
    Timestamp {
        /// The property.
        property: String,
        /// What is wrong.
        reason: String,
    },
    /// `pattern` is missing or not a string.
    #[error("pattern is missing or not a string")]
    NoPattern,
    /// The pattern does not parse.
    #[error("pattern does not parse: {0}")]
    Parse(ParseError),
    /// The pattern parses but cannot be evaluated (a regex the engine cannot run, ...).
    #[error("pattern cannot be compiled: {0}")]
    Compile(CompileError),
}
