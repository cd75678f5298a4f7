//! Recall on termination: a push feed owes its partner the recall of what it passed under
//! an agreement that was terminated — due `retention_days` after the termination, and
//! only for what the agreement let go and the policy no longer does.

mod common;

use phalanx_node::{Node, NodeConfig};
use phalanx_policy::AgreementStatus;
use phalanx_store::{FeedDirection, NewCollection, SqliteStore};
use serde_json::json;
use std::sync::Arc;

const DAY: i64 = 86_400_000_000;
/// 2026-01-01T00:00:00Z in µs: the agreements below are valid from 2020.
const T0: i64 = 1_767_225_600_000_000;
const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";

fn indicator(n: u32, marking: &str) -> phalanx_stix::ValidObject {
    let v = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '203.0.113.{n}']"), "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", "object_marking_refs": [marking],
    });
    phalanx_stix::validate(phalanx_stix::StixObject::parse(v.to_string().as_bytes(), 64).unwrap())
        .unwrap()
        .0
}

/// A node with partner cert-b and a collection `intel`.
fn setup() -> (tempfile::TempDir, Node, phalanx_store::Collection) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    let node = Node::new(Arc::new(store), NodeConfig::default()).unwrap();
    node.bootstrap(1).unwrap();
    node.add_partner(
        &common::partner(
            "cert-b",
            "identity--0d4e5f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a",
            None,
        ),
        1,
    )
    .unwrap();
    let c = node
        .store()
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    (dir, node, c)
}

#[test]
fn a_terminated_agreement_recalls_what_it_carried_once_retention_ends() {
    let (_dir, node, c) = setup();
    node.add_agreement(
        "id = \"ab\"\ntitle = \"A-B\"\nstatus = \"active\"\nparties = [\"cert-b\"]\nmax_tlp = \"AMBER\"\nretention_days = 2\nvalid_from = \"2020-01-01T00:00:00Z\"\n",
        "test",
        T0 + 2,
    )
    .unwrap();
    // 1-3 CLEAR, 4-6 GREEN, 7-9 AMBER, all passed by the feed; 10 (AMBER) not yet.
    let objects: Vec<_> = (1..=10)
        .map(|n| indicator(n, [CLEAR, GREEN, AMBER][((n as usize - 1) / 3).min(2)]))
        .collect();
    node.store().ingest(&c.id, &objects[..9], 10).unwrap();
    let feed = node
        .add_feed(
            "cert-b",
            FeedDirection::Push,
            "https://b.example/api/collections/x/",
            "intel",
            None,
        )
        .unwrap();
    let passed = node
        .store()
        .query(&phalanx_store::ObjectQuery {
            limit: 100,
            ..phalanx_store::ObjectQuery::new(&c.id)
        })
        .unwrap()
        .items
        .last()
        .unwrap()
        .date_added;
    node.store().feed_progress(feed.id, passed, 9, 20).unwrap();
    node.store().ingest(&c.id, &objects[9..], 30).unwrap();
    let feed = || node.feeds().unwrap().into_iter().next().unwrap();

    // In force: nothing owed.
    assert_eq!(
        node.termination_recalls(&feed(), 100, T0 + 40).unwrap(),
        None
    );
    let terminated_at = T0 + 50;
    node.set_agreement_status("ab", AgreementStatus::Terminated, "test", terminated_at)
        .unwrap();
    // Within the retention period: not due yet.
    assert_eq!(
        node.termination_recalls(&feed(), 100, terminated_at + DAY)
            .unwrap(),
        None
    );
    // After it: the GREEN and AMBER ones the feed passed (not CLEAR, which needs no
    // agreement, nor the AMBER one it never passed).
    let (ids, progress) = node
        .termination_recalls(&feed(), 100, terminated_at + 3 * DAY)
        .unwrap()
        .expect("recalls due");
    let want: Vec<String> = (4..=9)
        .map(|n| format!("indicator--00000000-0000-4000-8000-{n:012}"))
        .collect();
    assert_eq!(ids, want);
    node.termination_recalled(&progress).unwrap();
    // Recalled once.
    assert_eq!(
        node.termination_recalls(&feed(), 100, terminated_at + 4 * DAY)
            .unwrap(),
        None
    );
}

#[test]
fn recalls_owed_are_walked_page_by_page() {
    let (_dir, node, c) = setup();
    node.add_agreement(
        "id = \"ab\"\ntitle = \"A-B\"\nstatus = \"active\"\nparties = [\"cert-b\"]\nmax_tlp = \"AMBER\"\nvalid_from = \"2020-01-01T00:00:00Z\"\n",
        "test",
        T0 + 2,
    )
    .unwrap();
    let objects: Vec<_> = (1..=7).map(|n| indicator(n, AMBER)).collect();
    node.store().ingest(&c.id, &objects, 10).unwrap();
    let f = node
        .add_feed(
            "cert-b",
            FeedDirection::Push,
            "https://b.example/api/collections/x/",
            "intel",
            None,
        )
        .unwrap();
    node.store().feed_progress(f.id, i64::MAX, 7, 20).unwrap();
    node.set_agreement_status("ab", AgreementStatus::Terminated, "test", T0 + 50)
        .unwrap();
    let feed = node.feeds().unwrap().into_iter().next().unwrap();
    // Pages of 3: 3 + 3 + 1, then done.
    let mut seen = Vec::new();
    while let Some((ids, progress)) = node.termination_recalls(&feed, 3, T0 + 60).unwrap() {
        assert!(ids.len() <= 3);
        seen.extend(ids);
        node.termination_recalled(&progress).unwrap();
    }
    assert_eq!(seen.len(), 7);
}

#[test]
fn deletions_leave_notices_and_a_partner_recalls_only_what_it_sent() {
    let (_dir, node, c) = setup();
    let (p, _) = node
        .create_token(
            "b",
            "cert-b",
            phalanx_store::Access::All,
            phalanx_store::Access::All,
            1,
        )
        .unwrap();
    let from_b = phalanx_node::Caller::of(&p);
    let operator = phalanx_node::Caller::local_operator();
    let now = phalanx_node::now_micros();
    let post = |objects: &[&str]| {
        let body = format!("{{\"objects\":[{}]}}", objects.join(","));
        let st = node
            .add_objects(&from_b, "default", &c.id, body.as_bytes(), now)
            .unwrap();
        assert_eq!(st.failure_count, 0, "{st:?}");
    };
    let (x, y, z) = (
        indicator(1, CLEAR),
        indicator(2, GREEN),
        indicator(3, CLEAR),
    );
    post(&[x.raw(), y.raw()]);
    node.store()
        .ingest(&c.id, std::slice::from_ref(&z), now)
        .unwrap();
    let rows = |ty: &str| -> Vec<phalanx_store::StoredObject> {
        node.store()
            .query(&phalanx_store::ObjectQuery {
                limit: 100,
                versions: phalanx_store::VersionFilter::all(),
                types: vec![ty.to_owned()],
                ..phalanx_store::ObjectQuery::new(&c.id)
            })
            .unwrap()
            .items
    };

    // Deleting x leaves a notice with x's markings, stored as coming from where x came.
    node.delete_object(&operator, "default", &c.id, x.id(), "")
        .unwrap();
    let notices = rows(phalanx_node::recall::TYPE);
    assert_eq!(notices.len(), 1);
    let n: serde_json::Value = serde_json::from_str(&notices[0].raw).unwrap();
    assert_eq!(n["object_ref"], x.id());
    assert_eq!(n["object_modified"], "2026-01-01T00:00:00.000Z");
    assert_eq!(n["reason"], "deleted");
    assert_eq!(n["object_marking_refs"], json!([CLEAR]));
    assert_eq!(notices[0].facts.source.as_deref(), Some("cert-b"));
    assert_eq!(
        notices[0].facts.tlp,
        Some(phalanx_stix::markings::Tlp::Clear)
    );
    // Only partners' nodes (federation) see notices; a TAXII read does not.
    let all = || {
        node.store()
            .query(&phalanx_store::ObjectQuery {
                limit: 100,
                ..phalanx_store::ObjectQuery::new(&c.id)
            })
            .unwrap()
            .items
    };
    let seen = |purpose| {
        node.egress(&operator, &c, purpose, all(), now)
            .unwrap()
            .iter()
            .filter(|o| o.object_type == phalanx_node::recall::TYPE)
            .count()
    };
    assert_eq!(seen(phalanx_node::Purpose::Read), 0);
    assert_eq!(seen(phalanx_node::Purpose::Federate), 1);

    // B recalls y (which it sent) and z (which it did not): only y goes, and its
    // deletion leaves this node's own notice.
    let notice_of = |o: &phalanx_stix::ValidObject| {
        let d = phalanx_store::Deleted {
            id: o.id(),
            object_type: o.object_type(),
            version: Some("2026-01-01T00:00:00.000Z"),
            raw: o.raw(),
            source: None,
            path: vec![],
            about: None,
        };
        phalanx_node::recall::notice(
            &d,
            Some("identity--0d4e5f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a"),
            now,
        )
        .unwrap()
        .raw
        .to_string()
    };
    post(&[&notice_of(&y), &notice_of(&z)]);
    let left: Vec<String> = rows("indicator").into_iter().map(|o| o.id).collect();
    assert_eq!(left, [z.id().to_owned()]);
    let recalled: Vec<String> = rows(phalanx_node::recall::TYPE)
        .iter()
        .map(|o| {
            serde_json::from_str::<serde_json::Value>(&o.raw).unwrap()["object_ref"].to_string()
        })
        .collect();
    // x's notice, B's two notices as received, and this node's notice of y.
    assert_eq!(recalled.len(), 4, "{recalled:?}");
    // Posting the same notices again changes nothing.
    post(&[&notice_of(&y), &notice_of(&z)]);
    assert_eq!(rows("indicator").len(), 1);
    // Federation passes on this node's own notices (x's and y's), never B's.
    assert_eq!(seen(phalanx_node::Purpose::Federate), 2);

    // A notice B passes on but another registered partner made (that partner's
    // deletion) is not acted on.
    let w = indicator(4, CLEAR);
    post(&[w.raw()]);
    let d = phalanx_store::Deleted {
        id: w.id(),
        object_type: w.object_type(),
        version: Some("2026-01-01T00:00:00.000Z"),
        raw: w.raw(),
        source: None,
        path: vec![],
        about: None,
    };
    node.add_partner(
        &common::partner(
            "cert-c",
            "identity--7d6e5f40-3a2b-4c1d-8e0f-a1b2c3d4e5f6",
            None,
        ),
        1,
    )
    .unwrap();
    let foreign = phalanx_node::recall::notice(
        &d,
        Some("identity--7d6e5f40-3a2b-4c1d-8e0f-a1b2c3d4e5f6"),
        now,
    )
    .unwrap();
    post(&[&foreign.raw]);
    assert!(rows("indicator").iter().any(|o| o.id == w.id()));

    // Users post no notices: this node makes its own when it deletes.
    let body = format!("{{\"objects\":[{}]}}", notice_of(&w));
    let st = node
        .add_objects(&operator, "default", &c.id, body.as_bytes(), now)
        .unwrap();
    assert_eq!(st.failure_count, 1, "{st:?}");
    assert!(
        st.failures[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("use DELETE")
    );

    // B's node, by its certificate, deletes only what it sent: z (this node's own)
    // stays; w (B's) goes.
    let peer = phalanx_node::Caller {
        id: "cert:0123456789abcdef".into(),
        name: "cert-b".into(),
        org: "cert-b".into(),
        read: phalanx_store::Access::All,
        write: phalanx_store::Access::All,
        admin: false,
    };
    assert!(matches!(
        node.delete_object(&peer, "default", &c.id, z.id(), ""),
        Err(phalanx_node::NodeError::NotFound(_))
    ));
    assert_eq!(
        node.delete_object(&peer, "default", &c.id, w.id(), "")
            .unwrap(),
        1
    );
    let left: Vec<String> = rows("indicator").into_iter().map(|o| o.id).collect();
    assert_eq!(left, [z.id().to_owned()]);
}

#[test]
fn a_pulled_page_does_not_keep_a_version_its_own_recall_follows() {
    let (_dir, node, c) = setup();
    let feed = node
        .add_feed(
            "cert-b",
            FeedDirection::Pull,
            "https://b.example/api/collections/x/",
            "intel",
            None,
        )
        .unwrap();
    let now = phalanx_node::now_micros();
    let (v, keep) = (indicator(1, AMBER), indicator(2, AMBER));
    // Between two polls B added v, then re-marked it: the page has v and, in place of
    // the version this node may not receive, B's `superseded` notice (no version).
    let d = phalanx_store::Deleted {
        id: v.id(),
        object_type: v.object_type(),
        version: None,
        raw: v.raw(),
        source: None,
        path: vec![],
        about: None,
    };
    let mut notice: serde_json::Value = serde_json::from_str(
        &phalanx_node::recall::notice(
            &d,
            Some("identity--0d4e5f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a"),
            now,
        )
        .unwrap()
        .raw,
    )
    .unwrap();
    notice["reason"] = "superseded".into();
    let notice = notice.to_string();
    let raws: Vec<Box<serde_json::value::RawValue>> = [v.raw(), notice.as_str(), keep.raw()]
        .iter()
        .map(|t| serde_json::value::RawValue::from_string((*t).to_owned()).unwrap())
        .collect();
    let refs: Vec<&serde_json::value::RawValue> = raws.iter().map(AsRef::as_ref).collect();
    let page = node.store_pulled(&feed, &refs, 1, None, now).unwrap();
    assert_eq!((page.added, page.invalid), (2, 0), "{page:?}");
    let ids: Vec<String> = node
        .store()
        .query(&phalanx_store::ObjectQuery {
            limit: 10,
            types: vec!["indicator".into()],
            ..phalanx_store::ObjectQuery::new(&c.id)
        })
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, [keep.id().to_owned()]);
}

#[test]
fn recall_notices_are_kept_for_their_retention_then_forgotten() {
    let (_dir, node, c) = setup();
    let now = phalanx_node::now_micros();
    let (x, y) = (indicator(1, CLEAR), indicator(2, CLEAR));
    node.store().ingest(&c.id, &[x.clone(), y], now).unwrap();
    node.delete_object(
        &phalanx_node::Caller::local_operator(),
        "default",
        &c.id,
        x.id(),
        "",
    )
    .unwrap();
    let count = |ty: &str| {
        node.store()
            .query(&phalanx_store::ObjectQuery {
                limit: 10,
                types: vec![ty.to_owned()],
                ..phalanx_store::ObjectQuery::new(&c.id)
            })
            .unwrap()
            .items
            .len()
    };
    assert_eq!(count(phalanx_node::recall::TYPE), 1);
    // Within the retention (90 days by default): kept.
    assert_eq!(node.purge_notices(now + 89 * DAY).unwrap(), 0);
    assert_eq!(count(phalanx_node::recall::TYPE), 1);
    // After it: forgotten, and nothing else with it (no tombstone, no new notice).
    assert_eq!(node.purge_notices(now + 91 * DAY).unwrap(), 1);
    assert_eq!(count(phalanx_node::recall::TYPE), 0);
    assert_eq!(count("indicator"), 1);
    assert_eq!(node.store().tombstones(&c.id, None, 10).unwrap().len(), 1);
}
