//! Attestations on ingest: a partner's signed objects are accepted and verify; objects
//! that differ from what was signed, objects whose attestation does not verify with the
//! partner's registered key, unsigned objects from a partner that signs, and the node's
//! own objects coming back are refused.

mod common;

use phalanx_node::{Node, NodeConfig, attest};
use phalanx_policy::Partner;
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

/// Partner cert-a, the producer, with its signing key.
fn partner(key: &ed25519_dalek::SigningKey) -> Partner {
    common::partner(
        "cert-a",
        IDENTITY,
        Some(phalanx_node::auth::hex(key.verifying_key().as_bytes())),
    )
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
    let ax = attest::attest(&[&x, &x2], &[], IDENTITY, &key).unwrap();
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
    let a2 = attest::attest(&[&signed], &[], IDENTITY, &key).unwrap();
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
    let ay = attest::attest(&[&y], &[], IDENTITY, &other).unwrap();
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
    let au = attest::attest(&[&u1, &u2, &u3], &[], IDENTITY, &key).unwrap();
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

#[test]
fn a_transit_signature_records_the_path_and_cannot_cover_an_altered_copy() {
    const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
    const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
    const B: &str = "identity--4c3b2a19-0817-4f6e-9d5c-4b3a29180716";
    const D: &str = "identity--9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Node::new(Arc::new(store), NodeConfig::default()).unwrap();
    node.bootstrap(1).unwrap();
    // This node (C) knows A, the producer, B, the partner it receives from, and D.
    let key_a = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let key_b = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    node.add_partner(&partner(&key_a), 1).unwrap();
    let mut b = partner(&key_b);
    (b.id, b.name, b.identity) = ("cert-b".into(), "B".into(), B.into());
    node.add_partner(&b, 1).unwrap();
    let mut d = partner(&key_b);
    (d.id, d.name, d.identity, d.signing_key) = ("cert-d".into(), "D".into(), D.into(), None);
    node.add_partner(&d, 1).unwrap();
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    let (p, _) = node
        .create_token("b", "cert-b", Access::All, Access::All, 1)
        .unwrap();
    let from_b = phalanx_node::Caller::of(&p);
    let now = phalanx_node::now_micros();
    let post = |objects: &[&str]| {
        node.add_objects(&from_b, "default", &c.id, &envelope(objects), now)
            .unwrap()
    };

    // A's indicator as B passes it on: A's origin attestation, B's transit attestation
    // naming A, the object.
    let id = "indicator--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let x = indicator(id, "2026-01-01T00:00:00.000Z", "203.0.113.7").replace(GREEN, CLEAR);
    let by_a = attest::attest(&[&x], &[], IDENTITY, &key_a).unwrap();
    let by_b = attest::attest(&[&x], &[IDENTITY.to_owned()], B, &key_b).unwrap();
    let st = post(&[&by_a, &by_b, &x]);
    assert_eq!((st.success_count, st.failure_count), (3, 0), "{st:?}");
    let e = node
        .explain(id, "local", phalanx_policy::Purpose::Read, now)
        .unwrap();
    let steps = &e[0].steps;
    assert!(
        steps.iter().any(|s| s
            == "signature: verified — produced and signed by partner cert-a; passed on by partner cert-b (transit signature verified)"),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s == &format!("path: cert-a ({IDENTITY}) → cert-b ({B}) → this node")),
        "{steps:?}"
    );

    // Federation sends it on to D, never back to a node on its path (A and B).
    for (to, goes) in [("cert-a", false), ("cert-b", false), ("cert-d", true)] {
        let feed = node
            .add_feed(
                to,
                phalanx_store::FeedDirection::Push,
                "https://peer.example/taxii/c/",
                "intel",
                None,
            )
            .unwrap();
        let out = node.outgoing(&feed, 100, now).unwrap();
        let ids: Vec<&str> = out.objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids.contains(&id), goes, "to {to}: {ids:?}");
    }

    // B alters A's next version and covers the altered copy with its own transit
    // attestation: A's signature still decides, so it is refused.
    let signed = indicator(id, "2026-02-01T00:00:00.000Z", "203.0.113.8").replace(GREEN, CLEAR);
    let altered = signed.replace("203.0.113.8", "203.0.113.66");
    let by_a = attest::attest(&[&signed], &[], IDENTITY, &key_a).unwrap();
    let by_b = attest::attest(&[&altered], &[IDENTITY.to_owned()], B, &key_b).unwrap();
    let st = post(&[&by_a, &by_b, &altered]);
    assert_eq!((st.success_count, st.failure_count), (2, 1), "{st:?}");
    let m = st.failures[0].message.as_deref().unwrap_or("");
    assert!(m.contains("digest mismatch"), "{m}");
    // The same, leaving A's attestation out: the transit path names A, who signs, so
    // A's own attestation must cover the version.
    let signed = indicator(id, "2026-03-01T00:00:00.000Z", "203.0.113.9").replace(GREEN, CLEAR);
    let altered = signed.replace("203.0.113.9", "203.0.113.67");
    let by_b = attest::attest(&[&altered], &[IDENTITY.to_owned()], B, &key_b).unwrap();
    let st = post(&[&by_b, &altered]);
    assert_eq!((st.success_count, st.failure_count), (1, 1), "{st:?}");
    let m = st.failures[0].message.as_deref().unwrap_or("");
    assert!(
        m.contains("its producer") && m.contains("no attestation of it covers"),
        "{m}"
    );

    // A path that names this node is a loop: refused.
    let own = "identity--5e6f7081-92a3-44b5-86c7-d8e9f0a1b2c3".to_owned();
    node.store()
        .put_setting(
            "node.identity",
            &json!({"type": "identity", "id": own}).to_string(),
        )
        .unwrap();
    let looped = indicator(
        "indicator--3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b",
        "2026-01-01T00:00:00.000Z",
        "198.51.100.30",
    );
    let by_a = attest::attest(&[&looped], &[], IDENTITY, &key_a).unwrap();
    let by_b = attest::attest(&[&looped], &[IDENTITY.to_owned(), own], B, &key_b).unwrap();
    let st = post(&[&by_a, &by_b, &looped]);
    assert_eq!((st.success_count, st.failure_count), (2, 1), "{st:?}");
    let m = st.failures[0].message.as_deref().unwrap_or("");
    assert!(m.contains("a loop"), "{m}");

    // B's own object, signed by B alone: its path is B.
    let own = indicator(
        "indicator--2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901",
        "2026-01-01T00:00:00.000Z",
        "198.51.100.20",
    );
    let st = post(&[&attest::attest(&[&own], &[], B, &key_b).unwrap(), &own]);
    assert_eq!((st.success_count, st.failure_count), (2, 0), "{st:?}");
    let e = node
        .explain(
            "indicator--2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901",
            "local",
            phalanx_policy::Purpose::Read,
            now,
        )
        .unwrap();
    assert!(
        e[0].steps
            .iter()
            .any(|s| s == &format!("path: cert-b ({B}) → this node")),
        "{:?}",
        e[0].steps
    );
}
