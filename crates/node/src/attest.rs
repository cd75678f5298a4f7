//! Attestations: how a producing node's Ed25519 signature on an object version travels
//! over plain TAXII without changing the object.
//!
//! An attestation is a STIX custom object, sent right after the object it covers:
//!
//! ```json
//! {"type": "x-phalanx-attestation", "spec_version": "2.1",
//!  "id": "x-phalanx-attestation--<UUIDv5 over (object id, version)>",
//!  "created": "<the object's version>", "modified": "<the object's version>",
//!  "created_by_ref": "<the producer's identity>",
//!  "object_ref": "<object id>", "object_type": "<its type>", "object_modified": "<its version>",
//!  "digest": "sha256:<hex of the RFC 8785 form of the object>",
//!  "object_marking_refs": [<the object's>], "labels": [<the object's>],
//!  "signature": "<base64 Ed25519 over the RFC 8785 form of this object without signature>"}
//! ```
//!
//! Everything is deterministic (Ed25519 signatures are), so signing the same version twice
//! gives the same bytes and ingest stays idempotent. The attestation carries the object's
//! markings and labels, so the sharing policy sends it where the object goes.

use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use serde_json::{Map, Value, json};
use sha2::Digest;

/// The STIX type of attestations.
pub const TYPE: &str = "x-phalanx-attestation";

/// Namespace of attestation ids (UUIDv5 over `object id|version`).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7a4c_61e2_3b0f_4d8e_9a51_c2f0_83d4_6b19);

/// `sha256:` and the hex SHA-256 of the RFC 8785 form of an object.
pub fn digest(object: &Map<String, Value>) -> String {
    let canonical = phalanx_stix::json::canonical(&Value::Object(object.clone()));
    let h = sha2::Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", crate::auth::hex(&h))
}

/// The id of the attestation of an object version.
pub fn id_for(object_id: &str, version: &str) -> String {
    format!(
        "{TYPE}--{}",
        uuid::Uuid::new_v5(&NAMESPACE, format!("{object_id}|{version}").as_bytes())
    )
}

/// The version of an object as TAXII and attestations name it: `modified`, else `created`.
fn version_of(o: &Map<String, Value>) -> Option<&str> {
    o.get("modified")
        .or_else(|| o.get("created"))
        .and_then(Value::as_str)
}

/// Signs an object version (its JSON text) as `signer` (an identity id) with `key`.
/// Unversioned objects (SCOs) are not attested: `None`.
pub fn attest(raw: &str, signer: &str, key: &ed25519_dalek::SigningKey) -> Option<String> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
        return None;
    };
    let version = version_of(&o)?;
    let id = o.get("id")?.as_str()?;
    let mut a = json!({
        "type": TYPE,
        "spec_version": "2.1",
        "id": id_for(id, version),
        "created": version,
        "modified": version,
        "created_by_ref": signer,
        "object_ref": id,
        "object_type": o.get("type")?,
        "object_modified": version,
        "digest": digest(&o),
    });
    for k in ["object_marking_refs", "labels"] {
        if let Some(v) = o.get(k) {
            a[k] = v.clone();
        }
    }
    let sig = key.sign(phalanx_stix::json::canonical(&a).as_bytes());
    a["signature"] = base64::engine::general_purpose::STANDARD
        .encode(sig.to_bytes())
        .into();
    Some(a.to_string())
}

/// What a valid attestation covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// The signer's identity id.
    pub signer: String,
    /// The object id.
    pub object: String,
    /// Its version.
    pub version: String,
    /// Its digest.
    pub digest: String,
}

/// Checks an attestation's signature with the signer's public key (32 bytes) and returns
/// what it covers; the caller then compares the digest with the object.
pub fn verify(att: &Map<String, Value>, public_key: &[u8; 32]) -> Result<Covered, String> {
    let field = |k: &str| {
        att.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("attestation without {k}"))
    };
    let sig_b64 = field("signature")?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&sig_b64)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or("attestation signature is not 64 bytes of base64")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
        .map_err(|_| "the signer's registered key is not a valid Ed25519 key")?;
    let mut unsigned = att.clone();
    unsigned.remove("signature");
    let message = phalanx_stix::json::canonical(&Value::Object(unsigned));
    key.verify(
        message.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| "the signature does not verify with the signer's registered key".to_owned())?;
    let covered = Covered {
        signer: field("created_by_ref")?,
        object: field("object_ref")?,
        version: field("object_modified")?,
        digest: field("digest")?,
    };
    if att.get("id").and_then(Value::as_str) != Some(&id_for(&covered.object, &covered.version)) {
        return Err("attestation id does not match what it covers".into());
    }
    Ok(covered)
}

/// Whether an object's JSON matches what an attestation covers (id, version, digest).
pub fn matches(object: &Map<String, Value>, covered: &Covered) -> bool {
    object.get("id").and_then(Value::as_str) == Some(&covered.object)
        && version_of(object) == Some(&covered.version)
        && digest(object) == covered.digest
}

/// What checking the signatures in a batch found: indexes of objects to refuse, with why.
/// An attestation whose signer is a partner with a registered key must verify, and the
/// object it covers — when in the same batch — must match its digest; otherwise both are
/// refused. Attestations of unknown signers are kept unverified (ordinary objects).
pub fn check_batch(
    policy: &phalanx_policy::Policy,
    objects: &[phalanx_stix::ValidObject],
) -> Vec<(usize, String)> {
    use std::collections::HashMap;
    let mut refused: Vec<(usize, String)> = Vec::new();
    // (object id, version) → (attestation index, result)
    let mut covers: HashMap<(String, String), (usize, Result<Covered, String>)> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        if o.object_type() != TYPE {
            continue;
        }
        let att = o.json();
        let Some(signer) = att.get("created_by_ref").and_then(Value::as_str) else {
            continue;
        };
        let Some(partner) = policy.partner_by_identity(signer) else {
            continue;
        };
        let Some(key) = partner.signing_key.as_deref().and_then(key_bytes) else {
            continue;
        };
        let target = (
            att.get("object_ref")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            att.get("object_modified")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        );
        let r = verify(att, &key).map_err(|e| format!("{e} (signer {})", partner.id));
        if let Err(e) = &r {
            refused.push((i, format!("attestation refused: {e}")));
        }
        covers.insert(target, (i, r));
    }
    for (i, o) in objects.iter().enumerate() {
        if o.object_type() == TYPE {
            continue;
        }
        let Some(version) = version_of(o.json()) else {
            continue;
        };
        let Some((ai, r)) = covers.get(&(o.id().to_owned(), version.to_owned())) else {
            continue;
        };
        match r {
            Err(e) => refused.push((i, format!("its signature is refused: {e}"))),
            Ok(c) if !matches(o.json(), c) => {
                let why = "the content differs from what its producer signed (digest mismatch)";
                refused.push((i, why.to_owned()));
                refused.push((*ai, format!("attestation refused: {why}")));
            }
            Ok(_) => {}
        }
    }
    refused.sort();
    refused.dedup_by_key(|(i, _)| *i);
    refused
}

/// A registered public key (64 hex digits) as bytes.
pub fn key_bytes(hex: &str) -> Option<[u8; 32]> {
    crate::auth::from_hex(hex)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> String {
        r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-02T00:00:00.000Z","pattern":"[ipv4-addr:value = '198.51.100.3']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","labels":["apt"],"object_marking_refs":["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]}"#.to_owned()
    }

    fn map(s: &str) -> Map<String, Value> {
        match serde_json::from_str(s).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn sign_verify_tamper() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = key.verifying_key().to_bytes();
        let signer = "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1";
        let a = attest(&obj(), signer, &key).unwrap();
        // Deterministic: the same version signs to the same bytes.
        assert_eq!(a, attest(&obj(), signer, &key).unwrap());
        let att = map(&a);
        assert_eq!(
            att["object_marking_refs"],
            map(&obj())["object_marking_refs"]
        );
        let covered = verify(&att, &pk).unwrap();
        assert_eq!(covered.signer, signer);
        // Key order and whitespace do not matter (RFC 8785); content does.
        let pretty = serde_json::to_string_pretty(&map(&obj())).unwrap();
        assert!(matches(&map(&pretty), &covered));
        let tampered = obj().replace("198.51.100.3", "198.51.100.4");
        assert!(!matches(&map(&tampered), &covered));
        // Another key, or an edited attestation, fails.
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32])
            .verifying_key()
            .to_bytes();
        assert!(verify(&att, &other).is_err());
        let mut edited = att.clone();
        edited.insert("digest".into(), "sha256:00".into());
        assert!(verify(&edited, &pk).is_err());
        // SCOs (unversioned) are not attested.
        let sco = r#"{"type":"ipv4-addr","id":"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4","value":"198.51.100.3"}"#;
        assert!(attest(sco, signer, &key).is_none());
    }
}
