//! STIX identifiers (`type--UUID`), object classes and deterministic SCO ids (§2.9).

use serde_json::{Map, Value};
use uuid::Uuid;

/// The namespace of deterministic (UUIDv5) SCO identifiers, STIX 2.1 §2.9.
pub const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// What kind of STIX object a type name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectClass {
    /// STIX Domain Object (attack-pattern, indicator, ...).
    Sdo,
    /// STIX Relationship Object (relationship, sighting).
    Sro,
    /// STIX Cyber-observable Object (ipv4-addr, file, ...).
    Sco,
    /// marking-definition.
    MarkingDefinition,
    /// language-content.
    LanguageContent,
    /// extension-definition.
    ExtensionDefinition,
    /// bundle (a container, never stored as an object).
    Bundle,
    /// A type this specification does not define (custom, `x-...` by convention).
    Custom,
}

/// SDO type names of STIX 2.1.
pub const SDO_TYPES: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
];

/// SCO type names of STIX 2.1.
pub const SCO_TYPES: &[&str] = &[
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

impl ObjectClass {
    /// Classifies a type name.
    pub fn of(object_type: &str) -> ObjectClass {
        match object_type {
            "relationship" | "sighting" => ObjectClass::Sro,
            "marking-definition" => ObjectClass::MarkingDefinition,
            "language-content" => ObjectClass::LanguageContent,
            "extension-definition" => ObjectClass::ExtensionDefinition,
            "bundle" => ObjectClass::Bundle,
            t if SDO_TYPES.contains(&t) => ObjectClass::Sdo,
            t if SCO_TYPES.contains(&t) => ObjectClass::Sco,
            _ => ObjectClass::Custom,
        }
    }

    /// Whether objects of this class are versioned by `modified` (§3.6).
    pub fn is_versioned(self) -> bool {
        !matches!(
            self,
            ObjectClass::Sco | ObjectClass::MarkingDefinition | ObjectClass::Bundle
        )
    }
}

/// Why an identifier is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No `--` separator.
    #[error("identifier {0:?} is not of the form type--UUID")]
    Form(String),
    /// The type part is not a valid type name.
    #[error("identifier {0:?} has an invalid type part")]
    Type(String),
    /// The UUID part is not an RFC 4122 UUID.
    #[error(
        "identifier {0:?} does not end in an RFC 4122 UUID (lower-case 8-4-4-4-12 hex, version 1-5, variant 10xx)"
    )]
    Uuid(String),
}

/// Whether `name` is a valid STIX type name (§2.9/§11.1: `[a-z0-9-]`, 3–250 chars, no
/// `--`, no leading or trailing hyphen).
pub fn is_type_name(name: &str) -> bool {
    (3..=250).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.contains("--")
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Splits and checks an identifier; returns its type part and UUID.
pub fn parse_id(id: &str) -> Result<(&str, Uuid), IdError> {
    let (ty, uuid) = id
        .split_once("--")
        .ok_or_else(|| IdError::Form(id.to_owned()))?;
    if !is_type_name(ty) {
        return Err(IdError::Type(id.to_owned()));
    }
    let bad = || IdError::Uuid(id.to_owned());
    // Hyphenated form only; Uuid::parse_str would also accept braces and URNs.
    let b = uuid.as_bytes();
    if b.len() != 36
        || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-')
        || b.iter()
            .enumerate()
            .any(|(i, c)| ![8, 13, 18, 23].contains(&i) && !c.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    let u = Uuid::parse_str(uuid).map_err(|_| bad())?;
    let version_ok = (1..=5).contains(&(b[14] as char).to_digit(16).unwrap_or(0));
    let variant_ok = matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B');
    if !version_ok || !variant_ok {
        return Err(bad());
    }
    Ok((ty, u))
}

/// The id-contributing properties of each SCO type with a deterministic id (§2.4 of
/// STANDARDS.md, STIX 2.1 §6). `process` has none and always uses UUIDv4.
pub fn id_contributing_properties(sco_type: &str) -> Option<&'static [&'static str]> {
    Some(match sco_type {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "domain-name" | "email-addr" | "ipv4-addr" | "ipv6-addr" | "mac-addr" | "url" => &["value"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "extensions", "parent_directory_ref"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        _ => return None,
    })
}

/// Hash algorithms in the order §2.9 prefers one for an id.
const HASH_PREFERENCE: [&str; 4] = ["MD5", "SHA-1", "SHA-256", "SHA-512"];

/// The deterministic id of an SCO: UUIDv5 in [`SCO_NAMESPACE`] over the RFC 8785 form of
/// the id-contributing properties present. `None` when the type has no contributing
/// properties or none is present (the producer must then use UUIDv4).
pub fn deterministic_sco_id(sco_type: &str, object: &Map<String, Value>) -> Option<String> {
    let props = id_contributing_properties(sco_type)?;
    let mut name = Map::new();
    for &p in props {
        let Some(v) = object.get(p) else { continue };
        if p == "hashes" {
            // Only one hash contributes: the preferred algorithm, else the first by name.
            if let Value::Object(h) = v {
                let pick = HASH_PREFERENCE
                    .iter()
                    .find_map(|a| h.get_key_value(*a))
                    .or_else(|| h.iter().min_by(|a, b| a.0.cmp(b.0)));
                if let Some((k, hv)) = pick {
                    let mut one = Map::new();
                    one.insert(k.clone(), hv.clone());
                    name.insert(p.to_owned(), Value::Object(one));
                }
                continue;
            }
        }
        name.insert(p.to_owned(), v.clone());
    }
    if name.is_empty() {
        return None;
    }
    let canonical = crate::json::canonical(&Value::Object(name));
    Some(format!(
        "{sco_type}--{}",
        Uuid::new_v5(&SCO_NAMESPACE, canonical.as_bytes())
    ))
}

/// A fresh random (UUIDv4) identifier for an object of `object_type`.
pub fn new_id(object_type: &str) -> String {
    format!("{object_type}--{}", Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standards_vector() {
        let Value::Object(o) = json!({"type": "ipv4-addr", "value": "198.51.100.3"}) else {
            unreachable!()
        };
        assert_eq!(
            deterministic_sco_id("ipv4-addr", &o).unwrap(),
            "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4"
        );
    }

    #[test]
    fn hashes_use_one_preferred_algorithm() {
        let Value::Object(a) = json!({"hashes": {"SHA-256": "aa", "MD5": "bb"}, "name": "x"})
        else {
            unreachable!()
        };
        let Value::Object(b) = json!({"hashes": {"MD5": "bb"}, "name": "x"}) else {
            unreachable!()
        };
        assert_eq!(
            deterministic_sco_id("file", &a),
            deterministic_sco_id("file", &b)
        );
        assert_eq!(deterministic_sco_id("process", &a), None);
        assert_eq!(deterministic_sco_id("file", &Map::new()), None);
    }

    #[test]
    fn id_syntax() {
        assert!(parse_id("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f").is_ok());
        for bad in [
            "indicator-8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "Indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "indicator--8e2e2d2b17d44cbf938f98ee46b3cd3f",
            "indicator--{8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f}",
            "indicator--8e2e2d2b-17d4-0cbf-938f-98ee46b3cd3f",
            "indicator--8e2e2d2b-17d4-4cbf-c38f-98ee46b3cd3f",
            "x--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
