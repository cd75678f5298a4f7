//! Attestations on ingest: a partner's signed objects are accepted and verify; objects
//! that differ from what was signed, and attestations that do not verify with the
//! partner's registered key, are refused — both the object and its attestation.

use phalanx_node::{Node, NodeConfig, attest};
use phalanx_policy::{Partner, Sector};
use phalanx_store::{Access, NewCollection, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;

const IDENTITY: &str = "identity--0d4e5f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";

fn indicator(id: &str, modified: &str, ip: &str) -> String {
    json!({
        "type": "indicator", "spec_version": "2.1", "id": id,
        "created": "2026-01-01T00:00:00.000Z", "modified": modified,
        "pattern": format!("[ipv4-addr:value = '{ip}']"), "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
    })
    .to_string()
}

fn envelope(objects: &[&str]) -> Vec<u8> {
    let objs: Vec<Value> = objects
        .iter()
        .map(|o| serde_json::from_str(o).unwrap())
        .collect();
    json!({ "objects": objs }).to_string().into_bytes()
}

#[test]
fn signed_objects_verify_and_tampered_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Node::new(Arc::new(store), NodeConfig::default()).unwrap();
    node.bootstrap(1).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    node.add_partner(
        &Partner {
            id: "cert-a".into(),
            name: "A".into(),
            sector: Sector::Government,
            country: None,
            contact: None,
            identity: IDENTITY.into(),
            signing_key: Some(phalanx_node::auth::hex(key.verifying_key().as_bytes())),
            endpoints: vec![],
            cert_fingerprints: vec![],
            removed: false,
        },
        1,
    )
    .unwrap();
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    let (p, _) = node
        .create_token("a", "cert-a", Access::All, Access::All, 1)
        .unwrap();
    let caller = phalanx_node::Caller::of(&p);
    let now = phalanx_node::now_micros();

    // Signed as published: both stored; the object verifies.
    let id = "indicator--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f";
    let x = indicator(id, "2026-01-01T00:00:00.000Z", "203.0.113.1");
    let ax = attest::attest(&x, IDENTITY, &key).unwrap();
    let st = node
        .add_objects(&caller, "default", &c.id, &envelope(&[&x, &ax]), now)
        .unwrap();
    assert_eq!((st.success_count, st.failure_count), (2, 0), "{st:?}");
    let e = node
        .explain(id, "local", phalanx_policy::Purpose::Read, now)
        .unwrap();
    assert!(
        e[0].steps
            .iter()
            .any(|s| s == "signature: verified — produced and signed by partner cert-a"),
        "{:?}",
        e[0].steps
    );

    // A new version whose content was changed after signing: both refused.
    let signed = indicator(id, "2026-02-01T00:00:00.000Z", "203.0.113.2");
    let a2 = attest::attest(&signed, IDENTITY, &key).unwrap();
    let tampered = signed.replace("203.0.113.2", "203.0.113.99");
    let st = node
        .add_objects(&caller, "default", &c.id, &envelope(&[&tampered, &a2]), now)
        .unwrap();
    assert_eq!((st.success_count, st.failure_count), (0, 2), "{st:?}");
    for f in &st.failures {
        let m = f.message.as_deref().unwrap_or("");
        assert!(
            m.contains("signature check") && m.contains("digest mismatch"),
            "{m}"
        );
    }

    // Signed with another key than the one registered for the producer: both refused.
    let other = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    let y = indicator(id, "2026-03-01T00:00:00.000Z", "203.0.113.3");
    let ay = attest::attest(&y, IDENTITY, &other).unwrap();
    let st = node
        .add_objects(&caller, "default", &c.id, &envelope(&[&y, &ay]), now)
        .unwrap();
    assert_eq!((st.success_count, st.failure_count), (0, 2), "{st:?}");
    assert!(
        st.failures[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("does not verify"),
        "{st:?}"
    );
    // Nothing refused was stored: one object version and its attestation.
    assert_eq!(node.store().count(&c.id).unwrap(), 2);
}
