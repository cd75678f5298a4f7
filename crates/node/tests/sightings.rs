//! Sightings of a partner's indicator report on that partner's data: they go back to it
//! (by a push feed to it, made when it is first needed) and to nobody else.

use phalanx_node::{Caller, Node, NodeConfig};
mod common;

use common::partner;
use phalanx_store::{Access, FeedDirection, NewCollection, SqliteStore};
use serde_json::json;
use std::sync::Arc;

const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const B: &str = "identity--0d4e5f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";

#[test]
fn a_sighting_of_a_partners_indicator_goes_back_to_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Node::new(Arc::new(store), NodeConfig::default()).unwrap();
    node.bootstrap(1).unwrap();
    node.add_partner(&partner("cert-b", B, None), 1).unwrap();
    node.add_partner(
        &partner(
            "cert-c",
            "identity--7d6e5f40-3a2b-4c1d-8e0f-a1b2c3d4e5f6",
            None,
        ),
        1,
    )
    .unwrap();
    // Both agreements carry AMBER, and B's lets C have what B shares.
    for (id, party, onward) in [
        ("ab", "cert-b", "onward = [\"cert-c\"]\n"),
        ("ac", "cert-c", ""),
    ] {
        node.add_agreement(
            &format!("id = \"{id}\"\ntitle = \"{id}\"\nstatus = \"active\"\nparties = [\"{party}\"]\nmax_tlp = \"AMBER\"\n{onward}valid_from = \"2020-01-01T00:00:00Z\"\n"),
            "test",
            2,
        )
        .unwrap();
    }
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    let (p, _) = node
        .create_token("b", "cert-b", Access::All, Access::All, 1)
        .unwrap();
    let now = phalanx_node::now_micros();
    let indicator = "indicator--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let body = json!({"objects": [{
        "type": "indicator", "spec_version": "2.1", "id": indicator, "created_by_ref": B,
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '203.0.113.7']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", "object_marking_refs": [AMBER],
    }]});
    let st = node
        .add_objects(
            &Caller::of(&p),
            "default",
            &c.id,
            body.to_string().as_bytes(),
            now,
        )
        .unwrap();
    assert_eq!(st.success_count, 1, "{st:?}");
    // This node pushes its intel to B and to C.
    for to in ["cert-b", "cert-c"] {
        node.add_feed(
            to,
            FeedDirection::Push,
            &format!("https://{to}.example/taxii/collections/inbox/"),
            "intel",
            None,
        )
        .unwrap();
    }

    // The sighting of the indicator on day `day` of January, `count` times.
    let sighting = |day: u32, count: u32| {
        json!({
            "type": "sighting", "spec_version": "2.1",
            "id": "sighting--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f",
            "created": "2026-01-02T00:00:00.000Z",
            "modified": format!("2026-01-{day:02}T00:00:00.000Z"),
            "sighting_of_ref": indicator, "count": count,
            "first_seen": format!("2026-01-{day:02}T00:00:00Z"),
            "last_seen": format!("2026-01-{day:02}T01:00:00Z"),
        })
    };
    let stored = node.record_sightings(vec![sighting(2, 3)], now).unwrap();
    assert_eq!(stored[0]["object_marking_refs"], json!([AMBER]));

    // A push feed of the sightings to B's inbox was made; none to C (its indicators
    // were not sighted).
    let sightings = node.store().find_collection("sightings").unwrap();
    let feeds = node.feeds().unwrap();
    let to_b = feeds
        .iter()
        .find(|f| f.partner == "cert-b" && f.local == sightings.id)
        .expect("a sightings feed to B");
    assert_eq!(
        to_b.remote,
        "https://cert-b.example/taxii/collections/inbox/"
    );
    assert!(
        !feeds
            .iter()
            .any(|f| f.partner == "cert-c" && f.local == sightings.id)
    );
    // B receives it; C, though its agreement carries AMBER and B's lets C have what B
    // shares, does not.
    let out = node.outgoing(to_b, 100, now).unwrap();
    assert_eq!(out.objects.len(), 1);
    assert_eq!(out.objects[0].facts.about.as_deref(), Some("cert-b"));
    let to_c = node
        .add_feed(
            "cert-c",
            FeedDirection::Push,
            "https://cert-c.example/taxii/collections/inbox/",
            "sightings",
            None,
        )
        .unwrap();
    assert!(node.outgoing(&to_c, 100, now).unwrap().objects.is_empty());
    let e = node
        .explain(
            "sighting--6f1f2c9e-3a7b-4c1d-9e2f-8a7b6c5d4e3f",
            "cert-c",
            phalanx_policy::Purpose::Federate,
            now,
        )
        .unwrap();
    assert!(
        e[0].steps
            .last()
            .unwrap()
            .contains("it reports on partner cert-b's data"),
        "{:?}",
        e[0].steps
    );
    // Sighting it again merges into the same sighting and makes no second feed.
    let stored = node.record_sightings(vec![sighting(3, 2)], now).unwrap();
    assert_eq!(stored[0]["count"], 5);
    let n = node
        .feeds()
        .unwrap()
        .iter()
        .filter(|f| f.partner == "cert-b" && f.local == sightings.id)
        .count();
    assert_eq!(n, 1);
}
