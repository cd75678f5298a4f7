//! What an attestation claims to cover, read without checking it.
//!
//! A producing node signs the object versions it shares with **attestations**: custom
//! STIX objects of type [`ATTESTATION`] that travel beside the objects over plain TAXII
//! (other TAXII clients ignore them). One attestation covers a group of versions that share
//! their type, markings and labels, so the policy decides it exactly as each of them:
//!
//! ```json
//! {"type": "x-phalanx-attestation", "spec_version": "2.1",
//!  "id": "x-phalanx-attestation--<UUIDv5 over the covered (id, version) list>",
//!  "created": "<latest covered version>", "modified": "<the same>",
//!  "created_by_ref": "<the producer's identity>",
//!  "object_type": "<the covered objects' type>",
//!  "covers": [{"object_ref": "<id>", "object_modified": "<version>",
//!              "digest": "sha256:<hex of the RFC 8785 form of the version>"}, ...],
//!  "object_marking_refs": [<theirs>], "labels": [<theirs>],
//!  "signature": "<base64 Ed25519 over the RFC 8785 form of this object without signature>"}
//! ```
//!
//! Signing and verifying happen in `phalanx-node` (`attest`); this module only reads the
//! claims, so the store can index them and the policy can decide an attestation with the
//! type of what it covers.

use serde_json::{Map, Value};

/// The STIX type of attestations.
pub const ATTESTATION: &str = "x-phalanx-attestation";

/// The STIX type of recall notices (a deleted version, for partners that pull; see
/// `phalanx_node::recall`). Like an attestation, the policy decides a notice as the type
/// it names in `object_type`.
pub const RECALL: &str = "x-phalanx-recall";

/// The (object id, version) pairs an attestation claims to cover; malformed entries are
/// skipped (the signature check rejects such an attestation anyway).
pub fn covered(att: &Map<String, Value>) -> Vec<(&str, &str)> {
    match att.get("covers") {
        Some(Value::Array(entries)) => entries
            .iter()
            .filter_map(|e| {
                Some((
                    e.get("object_ref")?.as_str()?,
                    e.get("object_modified")?.as_str()?,
                ))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The type of the objects an attestation covers: the type the policy decides it as
/// (an agreement whose scope names types carries the attestation with its objects).
pub fn subject_type(att: &Map<String, Value>) -> Option<&str> {
    att.get("object_type").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_and_malformed_entries_skipped() {
        let v: Value = serde_json::json!({
            "type": ATTESTATION,
            "object_type": "indicator",
            "covers": [
                {"object_ref": "indicator--1", "object_modified": "2026-01-01T00:00:00.000Z", "digest": "sha256:00"},
                {"object_ref": "indicator--2"},
                {"object_ref": 7, "object_modified": "x"},
                {"object_ref": "indicator--3", "object_modified": "2026-01-02T00:00:00.000Z"}
            ]
        });
        let m = v.as_object().unwrap();
        assert_eq!(
            covered(m),
            [
                ("indicator--1", "2026-01-01T00:00:00.000Z"),
                ("indicator--3", "2026-01-02T00:00:00.000Z")
            ]
        );
        assert_eq!(subject_type(m), Some("indicator"));
        assert!(covered(&Map::new()).is_empty());
    }
}
