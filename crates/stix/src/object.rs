//! [`StixObject`]: one STIX object, its original JSON text and typed access to the
//! common properties.

use crate::id::ObjectClass;
use crate::json::{JsonError, canonical, parse_strict_str, utf8_error};
use crate::time::Timestamp;
use serde_json::{Map, Value};

/// One STIX object as received. The original text is kept verbatim ([`StixObject::raw`]),
/// so custom properties, custom types, extensions and unknown properties all survive a
/// round trip; the parsed form serves typed access and validation.
///
/// Constructing one guarantees only that the text is a strict JSON object with string
/// `type` and `id` properties; [`crate::validate`] checks everything else.
#[derive(Debug, Clone, PartialEq)]
pub struct StixObject {
    raw: Box<str>,
    json: Map<String, Value>,
}

/// Why bytes are not a STIX object at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid JSON (or duplicate keys, invalid UTF-8, too deep).
    #[error("invalid JSON: {0}")]
    Json(#[from] JsonError),
    /// Valid JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A required structural property is missing or not a string.
    #[error("property {0:?} is missing or not a string")]
    Missing(&'static str),
}

impl StixObject {
    /// Parses one object from its JSON text (strictly: see [`crate::json::parse_strict`]).
    pub fn parse(bytes: &[u8], max_depth: usize) -> Result<StixObject, ParseError> {
        StixObject::parse_owned(bytes.to_vec(), max_depth)
    }

    /// As [`StixObject::parse`], taking ownership of the bytes (no copy of the text).
    pub fn parse_owned(bytes: Vec<u8>, max_depth: usize) -> Result<StixObject, ParseError> {
        let raw = match String::from_utf8(bytes) {
            Ok(raw) => raw,
            Err(e) => return Err(utf8_error(e.as_bytes(), &e.utf8_error()).into()),
        };
        let value = parse_strict_str(&raw, max_depth)?;
        StixObject::from_parts(raw, value)
    }

    /// Builds an object from a JSON value (e.g. one this node creates); the text is the
    /// value's compact serialisation.
    pub fn from_value(value: Value) -> Result<StixObject, ParseError> {
        let raw = value.to_string();
        StixObject::from_parts(raw, value)
    }

    fn from_parts(raw: String, value: Value) -> Result<StixObject, ParseError> {
        let Value::Object(json) = value else {
            return Err(ParseError::NotAnObject);
        };
        for key in ["type", "id"] {
            if !json.get(key).is_some_and(Value::is_string) {
                return Err(ParseError::Missing(key));
            }
        }
        Ok(StixObject {
            raw: raw.into_boxed_str(),
            json,
        })
    }

    /// The original JSON text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The parsed properties.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// A top-level string property.
    pub fn str_prop(&self, name: &str) -> Option<&str> {
        self.json.get(name).and_then(Value::as_str)
    }

    /// `id`.
    pub fn id(&self) -> &str {
        self.str_prop("id").unwrap_or_default()
    }

    /// `type`.
    pub fn object_type(&self) -> &str {
        self.str_prop("type").unwrap_or_default()
    }

    /// The class of the object's type.
    pub fn class(&self) -> ObjectClass {
        ObjectClass::of(self.object_type())
    }

    /// `spec_version`; SCOs default to `2.1` when it is absent (§3.1).
    pub fn spec_version(&self) -> Option<&str> {
        match self.str_prop("spec_version") {
            Some(v) => Some(v),
            None if self.class() == ObjectClass::Sco => Some("2.1"),
            None => None,
        }
    }

    /// `created`, when present and well-formed.
    pub fn created(&self) -> Option<Timestamp> {
        self.str_prop("created")
            .and_then(|s| Timestamp::parse(s).ok())
    }

    /// `modified`, when present and well-formed.
    pub fn modified(&self) -> Option<Timestamp> {
        self.str_prop("modified")
            .and_then(|s| Timestamp::parse(s).ok())
    }

    /// The version key of §3.6: `modified`, else `created` (marking definitions are never
    /// versioned), else `None` (SCOs are unversioned).
    pub fn version(&self) -> Option<Timestamp> {
        self.modified().or_else(|| self.created())
    }

    /// `revoked: true`.
    pub fn is_revoked(&self) -> bool {
        self.json.get("revoked") == Some(&Value::Bool(true))
    }

    /// RFC 8785 canonical JSON of the object.
    pub fn canonical(&self) -> String {
        canonical(&Value::Object(self.json.clone()))
    }

    /// Whether two objects have the same content (equal canonical JSON), regardless of
    /// key order and whitespace.
    pub fn same_content(&self, other: &StixObject) -> bool {
        self.json == other.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_and_exposes_common_properties() {
        let text = br#"{ "type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-07T20:03:48.000Z","x_custom": {"n": 1.50} }"#;
        let o = StixObject::parse(text, 16).unwrap();
        assert_eq!(o.raw().as_bytes(), text);
        assert_eq!(o.object_type(), "indicator");
        assert_eq!(o.class(), ObjectClass::Sdo);
        assert_eq!(o.version().unwrap().to_string(), "2016-04-07T20:03:48.000Z");
        assert!(o.canonical().contains(r#""x_custom":{"n":1.5}"#));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(StixObject::parse(b"[]", 4), Err(ParseError::NotAnObject));
        assert_eq!(
            StixObject::parse(br#"{"type":"x"}"#, 4),
            Err(ParseError::Missing("id"))
        );
        assert_eq!(
            StixObject::parse(br#"{"type":1,"id":"a"}"#, 4),
            Err(ParseError::Missing("type"))
        );
        assert!(matches!(
            StixObject::parse(br#"{"type":"a","type":"b","id":"c"}"#, 4),
            Err(ParseError::Json(_))
        ));
    }
}
