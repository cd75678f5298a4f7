//! Attestations on ingest: a partner's signed objects are accepted and verify; objects
//! that differ from what was signed, objects whose attestation does not verify with the
//! partner's registered key, unsigned objects from a partner that signs, and the node's
//! own objects coming back are refused.

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

fn partner(key: &ed25519_dalek::SigningKey) -> Partner {
    Partner {
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
    }
}

#[test]
fn signed_objects_verify_and_tampered_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Node::new(Arc::new(store), NodeConfig::default()).unwrap();
    node.bootstrap(1).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    node.add_partner(&partner(&key), 1).unwrap();
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    let (p, _) = node
        .create_token("a", "cert-a", Access::All, Access::All, 1)
        .unwrap();
    let caller = phalanx_node::Caller::of(&p);
    let now = phalanx_node::now_micros();
    let post = |objects: &[&str]| {
        node.add_objects(&caller, "default", &c.id, &envelope(objects), now)
            .unwrap()
    };

    // Signed as published (the attestation first): all stored; the objects verify.
    let id = "indicator--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f";
    let id2 = "indicator--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let x = indicator(id, "2026-01-01T00:00:00.000Z", "203.0.113.1");
    let x2 = indicator(id2, "2026-01-01T00:00:00.000Z", "203.0.113.9");
    let ax = attest::attest(&[&x, &x2], IDENTITY, &key).unwrap();
    let st = post(&[&ax, &x, &x2]);
    assert_eq!((st.success_count, st.failure_count), (3, 0), "{st:?}");
    for object in [id, id2] {
        let e = node
            .explain(object, "local", phalanx_policy::Purpose::Read, now)
            .unwrap();
        assert!(
            e[0].steps
                .iter()
                .any(|s| s == "signature: verified — produced and signed by partner cert-a"),
            "{:?}",
            e[0].steps
        );
    }

    // A new version whose content was changed after signing: the object is refused, the
    // (valid) attestation kept.
    let signed = indicator(id, "2026-02-01T00:00:00.000Z", "203.0.113.2");
    let a2 = attest::attest(&[&signed], IDENTITY, &key).unwrap();
    let tampered = signed.replace("203.0.113.2", "203.0.113.99");
    let st = post(&[&a2, &tampered]);
    assert_eq!((st.success_count, st.failure_count), (1, 1), "{st:?}");
    let m = st.failures[0].message.as_deref().unwrap_or("");
    assert!(
        m.contains("signature check") && m.contains("digest mismatch"),
        "{m}"
    );

    // Signed with another key than the one registered for the producer: both refused.
    let other = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    let y = indicator(id, "2026-03-01T00:00:00.000Z", "203.0.113.3");
    let ay = attest::attest(&[&y], IDENTITY, &other).unwrap();
    let st = post(&[&ay, &y]);
    assert_eq!((st.success_count, st.failure_count), (0, 2), "{st:?}");
    for f in &st.failures {
        assert!(
            f.message
                .as_deref()
                .unwrap_or("")
                .contains("does not verify"),
            "{st:?}"
        );
    }

    // Unsigned from a partner that signs: refused.
    let z = indicator(id, "2026-04-01T00:00:00.000Z", "203.0.113.4");
    let st = post(&[&z]);
    assert_eq!((st.success_count, st.failure_count), (0, 1), "{st:?}");
    assert!(
        st.failures[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("unsigned: partner cert-a signs what it shares"),
        "{st:?}"
    );

    // A group split over two envelopes: the second finds the stored attestation, and a
    // tampered member of the group is still caught.
    let (u1, u2, u3) = (
        indicator(id, "2026-05-01T00:00:00.000Z", "203.0.113.5"),
        indicator(id, "2026-05-02T00:00:00.000Z", "203.0.113.6"),
        indicator(id, "2026-05-03T00:00:00.000Z", "203.0.113.7"),
    );
    let au = attest::attest(&[&u1, &u2, &u3], IDENTITY, &key).unwrap();
    let st = post(&[&au, &u1]);
    assert_eq!((st.success_count, st.failure_count), (2, 0), "{st:?}");
    let st = post(&[&u2, &u3.replace("203.0.113.7", "203.0.113.77")]);
    assert_eq!((st.success_count, st.failure_count), (1, 1), "{st:?}");
    assert!(
        st.failures[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("digest mismatch"),
        "{st:?}"
    );

    // This node's own objects do not come back.
    let own = "identity--11111111-2222-4333-8444-555555555555";
    node.store()
        .init_setting("node.identity", &json!({"id": own}).to_string())
        .unwrap();
    let mine: Value = serde_json::from_str(&indicator(
        "indicator--99999999-aaaa-4bbb-8ccc-dddddddddddd",
        "2026-01-01T00:00:00.000Z",
        "203.0.113.8",
    ))
    .unwrap();
    let mut mine = mine;
    mine["created_by_ref"] = own.into();
    let st = post(&[&mine.to_string()]);
    assert_eq!((st.success_count, st.failure_count), (0, 1), "{st:?}");
    assert!(
        st.failures[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("its own data is not taken back"),
        "{st:?}"
    );

    // Stored: x, x2 and their attestation; a2; au, u1, u2.
    assert_eq!(node.store().count(&c.id).unwrap(), 7);
}

#[test]
fn a_node_may_accept_unsigned_data_when_configured_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let cfg = NodeConfig {
        sharing: phalanx_policy::Defaults {
            unsigned: phalanx_policy::Unsigned::Accept,
            ..Default::default()
        },
        ..NodeConfig::default()
    };
    let node = Node::new(Arc::new(store), cfg).unwrap();
    let c = node.bootstrap(1).unwrap().collection.unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    node.add_partner(&partner(&key), 1).unwrap();
    let (p, _) = node
        .create_token("a", "cert-a", Access::All, Access::All, 1)
        .unwrap();
    let caller = phalanx_node::Caller::of(&p);
    let x = indicator(
        "indicator--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f",
        "2026-01-01T00:00:00.000Z",
        "203.0.113.1",
    );
    let st = node
        .add_objects(&caller, "default", &c.id, &envelope(&[&x]), 1)
        .unwrap();
    assert_eq!((st.success_count, st.failure_count), (1, 0), "{st:?}");
    let e = node
        .explain(
            "indicator--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f",
            "local",
            phalanx_policy::Purpose::Read,
            1,
        )
        .unwrap();
    assert!(
        e[0].steps
            .iter()
            .any(|s| s == "signature: none (received unsigned from cert-a)"),
        "{:?}",
        e[0].steps
    );
}
