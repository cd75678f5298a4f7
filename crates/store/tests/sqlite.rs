//! The SQLite store against a real database file.

use phalanx_stix::{StixObject, Timestamp, ValidObject, validate};
use phalanx_store::{
    IngestOutcome, NewCollection, ObjectQuery, SqliteStore, Store, StoreError, VersionFilter,
};
use serde_json::json;

fn obj(id: &str, modified: &str, name: &str) -> ValidObject {
    let v = json!({"type": "malware", "spec_version": "2.1", "id": id,
        "created": "2020-01-01T00:00:00.000Z", "modified": modified, "name": name, "is_family": true});
    validate(StixObject::from_value(v).unwrap()).unwrap().0
}

fn indicator(i: u32) -> ValidObject {
    let v = json!({"type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{:08x}-0000-4000-8000-000000000000", i),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '10.0.{}.{}']", i / 256 % 256, i % 256),
        "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"});
    validate(StixObject::from_value(v).unwrap()).unwrap().0
}

const M: &str = "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b";

fn setup() -> (tempfile::TempDir, SqliteStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    store.ensure_api_root("default", "Default").unwrap();
    let c = store
        .create_collection("default", &NewCollection::named("intel"))
        .unwrap();
    (dir, store, c.id)
}

#[test]
fn ingest_is_idempotent_and_conflicts_are_reported() {
    let (_d, s, c) = setup();
    let v1 = obj(M, "2020-01-01T00:00:00.000Z", "a");
    let out = s.ingest(&c, std::slice::from_ref(&v1), 100).unwrap();
    assert_eq!(out, vec![IngestOutcome::Added { date_added: 100 }]);
    // The same content re-serialised differently (key order, whitespace) is a duplicate.
    let pretty =
        serde_json::to_string_pretty(&serde_json::Value::Object(v1.json().clone())).unwrap();
    let again = validate(StixObject::parse(pretty.as_bytes(), 64).unwrap())
        .unwrap()
        .0;
    assert_eq!(
        s.ingest(&c, &[again], 200).unwrap(),
        vec![IngestOutcome::Duplicate]
    );
    // Different content under the same (id, modified) — also with another precision of
    // the same instant — is a conflict, and the stored text is untouched.
    let other = obj(M, "2020-01-01T00:00:00.000000Z", "b");
    assert_eq!(
        s.ingest(&c, &[other], 300).unwrap(),
        vec![IngestOutcome::Conflict {
            existing_date_added: 100
        }]
    );
    let page = s.query(&ObjectQuery::new(&c)).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].raw, v1.raw());
}

#[test]
fn versions_first_last_all_exact_and_delete() {
    let (_d, s, c) = setup();
    // Versions arrive out of order.
    let mid = obj(M, "2021-01-01T00:00:00.000Z", "mid");
    let last = obj(M, "2022-01-01T00:00:00.000Z", "last");
    let first = obj(M, "2020-01-01T00:00:00.000Z", "first");
    s.ingest(&c, &[mid, last], 10).unwrap();
    s.ingest(&c, &[first], 20).unwrap();
    let names = |f: VersionFilter| {
        let mut q = ObjectQuery::new(&c);
        q.versions = f;
        s.query(&q)
            .unwrap()
            .items
            .iter()
            .map(|o| {
                StixObject::parse(o.raw.as_bytes(), 8)
                    .unwrap()
                    .str_prop("name")
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(names(VersionFilter::default()), ["last"]);
    assert_eq!(names(VersionFilter::parse("first").unwrap()), ["first"]);
    assert_eq!(
        names(VersionFilter::parse("first,last").unwrap()),
        ["last", "first"]
    );
    assert_eq!(names(VersionFilter::all()), ["mid", "last", "first"]);
    assert_eq!(
        names(VersionFilter::parse("2021-01-01T00:00:00Z").unwrap()),
        ["mid"]
    );
    assert!(VersionFilter::parse("all,last").is_err());
    assert!(VersionFilter::parse("latest").is_err());
    // Delete the last version: the mid one becomes last.
    let n = s
        .delete(&c, M, &VersionFilter::parse("last").unwrap(), &[])
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(names(VersionFilter::default()), ["mid"]);
    assert_eq!(s.delete(&c, M, &VersionFilter::all(), &[]).unwrap(), 2);
    assert_eq!(s.count(&c).unwrap(), 0);
}

#[test]
fn date_added_strictly_increases_and_keyset_pages_are_exact() {
    let (_d, s, c) = setup();
    // All with the same clock reading: date_added still strictly increases.
    let batch: Vec<ValidObject> = (0..1000).map(indicator).collect();
    s.ingest(&c, &batch[..600], 5).unwrap();
    s.ingest(&c, &batch[600..], 5).unwrap();
    let mut seen = Vec::new();
    let mut q = ObjectQuery::new(&c);
    q.limit = 7;
    loop {
        let page = s.manifest(&q).unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|o| (o.date_added, o.id.clone())));
        if !page.more {
            break;
        }
        q.after = page.items.last().map(|o| o.date_added);
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    let ids: Vec<String> = batch.iter().map(|o| o.id().to_owned()).collect();
    assert_eq!(seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(), ids);
    // added_after is exclusive.
    let mut q = ObjectQuery::new(&c);
    q.added_after = Some(seen[499].0);
    q.limit = 10_000;
    assert_eq!(s.manifest(&q).unwrap().items.len(), 500);
}

#[test]
fn filters_by_id_type_and_spec_version() {
    let (_d, s, c) = setup();
    s.ingest(
        &c,
        &[
            indicator(1),
            indicator(2),
            obj(M, "2020-01-01T00:00:00.000Z", "m"),
        ],
        1,
    )
    .unwrap();
    let mut q = ObjectQuery::new(&c);
    q.types = vec!["malware".into()];
    assert_eq!(s.query(&q).unwrap().items.len(), 1);
    q.types = vec!["malware".into(), "indicator".into()];
    assert_eq!(s.query(&q).unwrap().items.len(), 3);
    q.ids = vec![indicator(2).id().to_owned()];
    assert_eq!(s.query(&q).unwrap().items.len(), 1);
    q.spec_versions = vec!["2.0".into()];
    assert_eq!(s.query(&q).unwrap().items.len(), 0);
}

#[test]
fn data_survives_reopen_and_collections_are_checked() {
    let (dir, s, c) = setup();
    s.ingest(&c, &[indicator(7)], 1).unwrap();
    drop(s);
    let s = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
    assert_eq!(s.count(&c).unwrap(), 1);
    assert_eq!(s.find_collection("intel").unwrap().id, c);
    assert!(matches!(
        s.create_collection("default", &NewCollection::named("intel")),
        Err(StoreError::Exists(_))
    ));
    assert!(matches!(
        s.create_collection("default", &NewCollection::named("bad alias!")),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_collection("nope", &NewCollection::named("x")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.ingest("no-such", &[indicator(1)], 1),
        Err(StoreError::NotFound(_))
    ));
    // SCOs are unversioned: their TAXII version is their date_added.
    let sco = validate(StixObject::from_value(json!({"type": "ipv4-addr", "id": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", "value": "198.51.100.3"})).unwrap()).unwrap().0;
    let out = s.ingest(&c, &[sco], 1_700_000_000_000_000).unwrap();
    let IngestOutcome::Added { date_added } = out[0] else {
        panic!()
    };
    let mut q = ObjectQuery::new(&c);
    q.types = vec!["ipv4-addr".into()];
    let rec = &s.manifest(&q).unwrap().items[0];
    assert_eq!(rec.version, Timestamp::from_micros(date_added));
}

fn marked() -> ValidObject {
    let v = json!({"type": "malware", "spec_version": "2.1", "id": M,
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "name": "x", "is_family": true, "labels": ["ransomware", "apt"], "description": "d",
        "object_marking_refs": ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
            "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9"],
        "granular_markings": [{"selectors": ["description"],
            "marking_ref": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"}]});
    validate(StixObject::from_value(v).unwrap()).unwrap().0
}

#[test]
fn sharing_facts_are_kept_beside_each_version() {
    use phalanx_policy::{Granular, Level};
    use phalanx_stix::markings::{Pap, Tlp};
    let (_d, s, c) = setup();
    s.ingest_from(&c, &[marked()], Some("cert-eu"), 10).unwrap();
    s.ingest(&c, &[indicator(1)], 20).unwrap();
    let page = s.query(&ObjectQuery::new(&c)).unwrap();
    let f = &page.items[0].facts;
    assert_eq!((f.tlp, f.pap), (Some(Tlp::Amber), Some(Pap::Green)));
    assert_eq!(f.labels, vec!["ransomware", "apt"]);
    assert_eq!(
        f.granular,
        vec![Granular {
            selector: "description".into(),
            level: Level::Tlp(Tlp::Red)
        }]
    );
    assert_eq!(f.source.as_deref(), Some("cert-eu"));
    // Manifest records carry the same facts (the policy decides on them too).
    assert_eq!(
        s.manifest(&ObjectQuery::new(&c)).unwrap().items[0].facts,
        *f
    );
    assert_eq!(page.items[1].facts, phalanx_policy::Facts::default());
}

#[test]
fn paths_are_kept_beside_each_version_and_its_tombstone() {
    let (_d, s, c) = setup();
    let path = vec![
        "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1".to_owned(),
        "identity--0b0c0d0e-1f20-4a2b-8c3d-4e5f60718293".to_owned(),
    ];
    let mut v = phalanx_store::Prepared::of(&marked());
    v.facts.path = path.clone();
    s.ingest_prepared(&c, &[v], Some("cert-eu"), 10).unwrap();
    let page = s.query(&ObjectQuery::new(&c)).unwrap();
    assert_eq!(page.items[0].facts.path, path);
    assert_eq!(
        s.manifest(&ObjectQuery::new(&c)).unwrap().items[0]
            .facts
            .path,
        path
    );
    s.delete(&c, M, &VersionFilter::all(), &[]).unwrap();
    assert_eq!(s.tombstones(&c, None, 10).unwrap()[0].facts.path, path);
}

#[test]
fn schema_2_stores_migrate_and_their_facts_are_computed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phalanx.db");
    let c = {
        let s = SqliteStore::open(&path).unwrap();
        s.ensure_api_root("default", "Default").unwrap();
        let c = s
            .create_collection("default", &NewCollection::named("intel"))
            .unwrap();
        s.ingest(&c.id, &[marked(), indicator(2)], 10).unwrap();
        c.id
    };
    // Turn the file back into a schema 2 store.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE objects DROP COLUMN tlp; ALTER TABLE objects DROP COLUMN pap;
             ALTER TABLE objects DROP COLUMN labels; ALTER TABLE objects DROP COLUMN granular;
             ALTER TABLE objects DROP COLUMN source; DROP TABLE partners; DROP TABLE agreements;
             DELETE FROM settings WHERE key = 'policy.generation';
             DROP TABLE feeds; DROP TABLE tombstones; DROP TABLE attested;
             ALTER TABLE objects DROP COLUMN producer; ALTER TABLE objects DROP COLUMN path;
             ALTER TABLE objects DROP COLUMN about;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let items = s.query(&ObjectQuery::new(&c)).unwrap().items;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].facts.tlp, Some(phalanx_stix::markings::Tlp::Amber));
    assert_eq!(items[0].facts.labels.len(), 2);
    assert_eq!(items[1].facts.tlp, None);
    assert_eq!(s.agreements().unwrap(), vec![]);
    // The later schemas' tables came too (each step from 2 up to the current one).
    assert_eq!(s.feeds().unwrap(), vec![]);
    assert_eq!(s.tombstones(&c, None, 10).unwrap(), vec![]);
    assert_eq!(
        s.attestations_of(&c, "x", "y").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn attestations_are_indexed_by_what_they_claim_to_cover() {
    let (_d, s, c) = setup();
    let att = serde_json::json!({
        "type": "x-phalanx-attestation", "spec_version": "2.1",
        "id": "x-phalanx-attestation--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "created_by_ref": "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1",
        "object_type": "indicator",
        "covers": [
            {"object_ref": "indicator--1", "object_modified": "2026-01-01T00:00:00.000Z", "digest": "sha256:00"},
            {"object_ref": "indicator--2", "object_modified": "2026-01-01T00:00:00.000Z", "digest": "sha256:11"}
        ],
        "signature": "AA=="
    });
    let v = phalanx_stix::validate(
        phalanx_stix::StixObject::parse(att.to_string().as_bytes(), 64).unwrap(),
    )
    .unwrap()
    .0;
    s.ingest(&c, &[v], 10).unwrap();
    let found = s
        .attestations_of(&c, "indicator--2", "2026-01-01T00:00:00.000Z")
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("sha256:11"));
    assert!(
        s.attestations_of(&c, "indicator--2", "2026-02-01T00:00:00.000Z")
            .unwrap()
            .is_empty()
    );
    // The facts record the producer.
    let stored = s.query(&ObjectQuery::new(&c)).unwrap().items;
    assert_eq!(
        stored[0].facts.producer.as_deref(),
        Some("identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1")
    );
}

#[test]
fn partners_and_agreement_versions_persist_and_move_the_generation() {
    use phalanx_store::StoredAgreement;
    let (_d, s, _c) = setup();
    let g0 = s.policy_generation().unwrap();
    let p = phalanx_policy::Partner {
        id: "cert-eu".into(),
        name: "CERT-EU".into(),
        sector: phalanx_policy::Sector::Government,
        country: Some("BE".into()),
        contact: None,
        identity: "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1".into(),
        signing_key: None,
        endpoints: vec!["https://taxii.example/api/".into()],
        cert_fingerprints: vec![],
        removed: false,
    };
    s.put_partner(&p, 1).unwrap();
    assert_eq!(s.partners().unwrap(), vec![p.clone()]);
    let v = |version, doc: &str| StoredAgreement {
        id: "mou".into(),
        version,
        doc: doc.into(),
        created_us: i64::from(version),
        author: "test".into(),
    };
    s.add_agreement(&v(1, "{\"a\":1}")).unwrap();
    s.add_agreement(&v(2, "{\"a\":2}")).unwrap();
    assert!(matches!(
        s.add_agreement(&v(2, "{\"a\":3}")),
        Err(StoreError::Exists(_))
    ));
    let h = s.agreement_history("mou").unwrap();
    assert_eq!(h.iter().map(|a| a.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.agreements().unwrap(), vec![v(2, "{\"a\":2}")]);
    assert_eq!(s.policy_generation().unwrap(), g0 + 3);
}
