//! Every route the server has (the `ROUTES` table, which a unit test keeps equal to the
//! router) is called with every method by a partner that may read and write every
//! collection but is party to no agreement. The node holds objects it may not see
//! (TLP:AMBER, TLP:RED, unmarked = default AMBER) whose content carries a canary; no
//! response may contain it. A TLP:CLEAR object shows the partner's requests do work.

use phalanx_node::{Node, NodeConfig};
use phalanx_policy::{Partner, Sector};
use phalanx_server::ROUTES;
use phalanx_stix::{StixObject, validate};
use phalanx_store::{Access, NewCollection, SqliteStore};
use serde_json::json;
use std::sync::Arc;

mod common;

const TAXII: &str = "application/taxii+json;version=2.1";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";

fn indicator(id: &str, text: &str, markings: &[&str]) -> phalanx_stix::ValidObject {
    let mut v = json!({
        "type": "indicator", "spec_version": "2.1", "id": id,
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z", "description": text,
    });
    if !markings.is_empty() {
        v["object_marking_refs"] = json!(markings);
    }
    validate(StixObject::parse(v.to_string().as_bytes(), 64).unwrap())
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_returns_what_the_policy_denies() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Arc::new(Node::new(Arc::new(store), NodeConfig::default()).unwrap());
    let now = phalanx_node::now_micros();
    node.bootstrap(now).unwrap();
    node.add_partner(
        &Partner {
            id: "p1".into(),
            name: "Partner One".into(),
            sector: Sector::Government,
            country: None,
            contact: None,
            identity: format!("identity--{}", uuid::Uuid::new_v4()),
            signing_key: None,
            endpoints: vec![],
            cert_fingerprints: vec![],
            removed: false,
        },
        now,
    )
    .unwrap();
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
    let hidden: Vec<String> = (0..3)
        .map(|_| format!("indicator--{}", uuid::Uuid::new_v4()))
        .collect();
    let visible = format!("indicator--{}", uuid::Uuid::new_v4());
    let objects = vec![
        indicator(&hidden[0], &canary, &[AMBER]),
        indicator(&hidden[1], &canary, &[RED]),
        indicator(&hidden[2], &canary, &[]),
        indicator(&visible, "POSITIVE-CONTROL", &[CLEAR]),
    ];
    node.store().ingest(&c.id, &objects, now).unwrap();
    // A status resource of the administrator's (its details name the hidden objects).
    let envelope = json!({"objects": [
        serde_json::from_str::<serde_json::Value>(indicator(&format!("indicator--{}", uuid::Uuid::new_v4()), &canary, &[RED]).raw()).unwrap()
    ]});
    let admin = phalanx_node::Caller::local_operator();
    let status = node
        .add_objects(
            &admin,
            "default",
            &c.id,
            envelope.to_string().as_bytes(),
            now,
        )
        .unwrap();
    let (_, token) = node
        .create_token("p1", "p1", Access::All, Access::All, now)
        .unwrap();

    let running = common::serve(node.clone(), None).await;
    let addr = running.addr;
    let http = reqwest::Client::new();

    // Each hidden object gets its own pass over the routes naming an object.
    let mut calls = 0;
    let mut saw_control = false;
    for oid in hidden.iter().chain([&visible]) {
        for (route, methods) in ROUTES {
            let path = route
                .replace("{root}", "default")
                .replace("{cid}", &c.id)
                .replace("{oid}", oid)
                .replace("{id}", &status.id);
            let queries = [
                String::new(),
                format!("?match[id]={oid}"),
                "?match[version]=all".into(),
                format!("?object={oid}&partner=p1"),
            ];
            for method in *methods {
                for q in &queries {
                    let url = format!("http://{addr}{path}{q}");
                    let req = match *method {
                        "GET" => http.get(&url),
                        "DELETE" => http.delete(&url),
                        "POST" => http.post(&url).header("content-type", TAXII).body(
                            json!({"objects": [serde_json::from_str::<serde_json::Value>(
                                    indicator(oid, "a different text", &[CLEAR]).raw()
                                ).unwrap()]})
                            .to_string(),
                        ),
                        m => panic!("route {route}: method {m} not covered by this test"),
                    };
                    let resp = req
                        .header("accept", TAXII)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    let status_code = resp.status();
                    let body = resp.text().await.unwrap();
                    calls += 1;
                    assert!(
                        !body.contains(&canary),
                        "{method} {path}{q} returned content the policy denies:\n{body}"
                    );
                    if hidden.contains(oid) {
                        assert!(
                            !(*method == "DELETE" && status_code.is_success()),
                            "DELETE {path}{q} deleted an object the partner may not see"
                        );
                        assert!(
                            !(route.contains("{oid}")
                                && *method == "GET"
                                && status_code.is_success()),
                            "GET {path}{q} answered {status_code} for a hidden object"
                        );
                    }
                    saw_control |= body.contains("POSITIVE-CONTROL");
                }
            }
        }
    }
    assert!(
        saw_control,
        "the partner never received the TLP:CLEAR object"
    );
    assert!(calls > 100, "only {calls} calls");
    // The hidden objects are all still there (the visible one the partner, holding write
    // rights, may delete — and did).
    for id in &hidden {
        let mut q = phalanx_store::ObjectQuery::new(&c.id);
        q.ids = vec![id.clone()];
        assert_eq!(
            node.store().manifest(&q).unwrap().items.len(),
            1,
            "{id} was deleted"
        );
    }
    running.stop().await;
}
