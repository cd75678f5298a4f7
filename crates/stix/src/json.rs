//! Strict JSON: the parser every untrusted byte goes through, and RFC 8785 canonical form.
//!
//! `serde_json` silently keeps the last of duplicate keys; two consumers of the same
//! bytes may then disagree about what an object says (one of the classic smuggling
//! tricks against sharing filters). [`parse_strict`] refuses duplicate keys, invalid
//! UTF-8 and nesting deeper than a limit, and reports the byte offset of the fault.

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct JsonError {
    /// What was wrong.
    pub message: String,
    /// 1-based line within the parsed text.
    pub line: usize,
    /// 1-based column within the parsed text.
    pub column: usize,
}

/// Default maximum nesting depth of objects and arrays in one STIX object.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Parses one JSON value, refusing duplicate object keys, invalid UTF-8, trailing
/// content and nesting deeper than `max_depth`.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| utf8_error(bytes, &e))?;
    parse_strict_str(text, max_depth)
}

/// The error for bytes that are not UTF-8, with the position of the first bad byte.
pub fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> JsonError {
    let offset = e.valid_up_to();
    let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - bytes[..offset]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    JsonError {
        message: format!("invalid UTF-8 at byte {offset}"),
        line,
        column,
    }
}

/// As [`parse_strict`], for text already known to be UTF-8.
pub fn parse_strict_str(text: &str, max_depth: usize) -> Result<Value, JsonError> {
    let bytes = text.as_bytes();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let to_err = |e: serde_json::Error| JsonError {
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
    };
    let value = StrictSeed {
        depth_left: max_depth,
    }
    .deserialize(&mut de)
    .map_err(to_err)?;
    de.end().map_err(to_err)?;
    Ok(value)
}

/// serde_json appends " at line X column Y"; we carry those as fields instead.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

struct StrictSeed {
    depth_left: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor {
            depth_left: self.depth_left,
        })
    }
}

struct StrictVisitor {
    depth_left: usize,
}

impl StrictVisitor {
    fn nested<E: serde::de::Error>(&self) -> Result<StrictSeed, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(StrictSeed { depth_left }),
            None => Err(E::custom("JSON nested too deeply")),
        }
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.nested()?)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let v = map.next_value_seed(self.nested()?)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// RFC 8785 (JSON Canonicalization Scheme) form of a value: sorted keys (by UTF-16 code
/// units), no whitespace, ECMAScript number formatting. Signatures and content digests are
/// computed over this form.
pub fn canonical(value: &Value) -> String {
    if let Value::Object(m) = value {
        return canonical_object(m);
    }
    // Serialising a `serde_json::Value` cannot fail: every key is a string and every
    // number is finite.
    serde_json_canonicalizer::to_string(value).unwrap_or_default()
}

/// [`canonical`] of an object given as its map (no copy into a [`Value`]).
///
/// A direct writer handles what STIX objects hold — strings, integers, booleans, nulls,
/// arrays, objects whose keys sort the same in UTF-8 and UTF-16 — without the general
/// canonicaliser's intermediate steps (measured: the digest of every signed or verified
/// object was ~20% of a federation hop's CPU). Anything else (floats, keys with
/// characters from U+E000 up) goes through `serde_json_canonicalizer`; a test checks
/// both agree on real data.
pub fn canonical_object(object: &serde_json::Map<String, Value>) -> String {
    let mut out = String::with_capacity(1024);
    if write_fast(&mut out, object) {
        out
    } else {
        serde_json_canonicalizer::to_string(object).unwrap_or_default()
    }
}

/// Writes the RFC 8785 form of an object when no float and no key outside the range
/// where UTF-8 and UTF-16 orders agree occurs; `false` otherwise (`out` then holds junk).
fn write_fast(out: &mut String, object: &serde_json::Map<String, Value>) -> bool {
    fn string(out: &mut String, s: &str) {
        // serde_json escapes exactly as RFC 8785 asks: `"`, `\\`, control characters
        // (\b \t \n \f \r or \u00xx with lower-case hex), nothing else.
        if let Ok(text) = serde_json::to_string(s) {
            out.push_str(&text);
        }
    }
    fn value(out: &mut String, v: &Value) -> bool {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                // RFC 8785 numbers are IEEE doubles: integers print as themselves only
                // up to 2^53.
                match n.as_i64() {
                    Some(i) if i.unsigned_abs() <= 1 << 53 => {
                        out.push_str(itoa::Buffer::new().format(i));
                    }
                    _ => return false,
                }
            }
            Value::String(s) => string(out, s),
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if !value(out, x) {
                        return false;
                    }
                }
                out.push(']');
            }
            Value::Object(m) => return object_into(out, m),
        }
        true
    }
    fn object_into(out: &mut String, m: &serde_json::Map<String, Value>) -> bool {
        // serde_json's map iterates in UTF-8 byte order, which is UTF-16 order unless a
        // key holds a character from U+E000 up.
        if m.keys().any(|k| k.chars().any(|c| u32::from(c) >= 0xE000)) {
            return false;
        }
        out.push('{');
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, k);
            out.push(':');
            if !value(out, v) {
                return false;
            }
        }
        out.push('}');
        true
    }
    object_into(out, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_canonical_form_equals_the_general_one() {
        let cases = [
            r#"{"b":1,"a":"x\u0001y\"\\/é","c":[true,null,-5,{"z":{},"y":[]}],"id":18446744073709551615}"#,
            r#"{"f":1.5,"e":1e30}"#,
            r#"{"\ue000":1,"\ud83d\ude00":2,"a":3}"#,
            r#"{"\u2028":"\u007f\u001f\t"}"#,
        ];
        for c in cases {
            let Value::Object(m) = serde_json::from_str::<Value>(c).unwrap() else {
                unreachable!()
            };
            assert_eq!(
                canonical_object(&m),
                serde_json_canonicalizer::to_string(&m).unwrap(),
                "{c}"
            );
        }
        // Every object of the real ATT&CK for ICS bundle.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/stix/ics-attack.json"
        );
        let bundle: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let objects = bundle["objects"].as_array().unwrap();
        assert!(objects.len() > 1000);
        for o in objects {
            let m = o.as_object().unwrap();
            assert_eq!(
                canonical_object(m),
                serde_json_canonicalizer::to_string(m).unwrap()
            );
        }
    }

    #[test]
    fn duplicate_keys_are_refused_with_position() {
        let e = parse_strict(br#"{"a":1,"b":{"c":1,"c":2}}"#, 8).unwrap_err();
        assert!(e.message.contains("duplicate key \"c\""), "{e}");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn depth_limit() {
        let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
        assert!(parse_strict(deep.as_bytes(), 30).is_ok());
        let e = parse_strict(deep.as_bytes(), 10).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn invalid_utf8_and_trailing() {
        let e = parse_strict(b"{\"a\":\"\xff\"}", 8).unwrap_err();
        assert!(e.message.contains("invalid UTF-8 at byte 6"), "{e}");
        assert!(parse_strict(b"{} {}", 8).is_err());
        assert!(parse_strict(br#"{"a":"\ud800"}"#, 8).is_err());
    }

    /// RFC 8785 §3.2.2 / Appendix B examples.
    #[test]
    fn rfc8785_vectors() {
        let v = parse_strict(
            br#"{
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
            8,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        // Keys sort by UTF-16 code units (RFC 8785 §3.2.3 example).
        let v = parse_strict(
            "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\",\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}".as_bytes(),
            8,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.1", "0.1"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740992", "9007199254740992"),
            ("-1.5e-7", "-1.5e-7"),
            ("123456789012345680000", "123456789012345680000"),
        ] {
            let v = parse_strict(input.as_bytes(), 8).unwrap();
            assert_eq!(canonical(&v), want, "number {input}");
        }
    }
}
