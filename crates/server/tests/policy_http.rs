//! The sharing policy end to end, over real HTTP on loopback, against the reference
//! oracle of the policy crate's property test (`crates/policy/tests/model/mod.rs`).
//!
//! Each generated world becomes a fresh node: its partners, its agreements (the TOML the
//! model writes, with validity windows around the real current time), the collections
//! the agreements name, and its objects — valid STIX objects of the model's types
//! carrying the generated TLP/PAP markings, labels and granular markings on
//! `description`/`name`, ingested with their source. The node is served on loopback, and
//! every recipient (our own organisation, each partner, an outsider, the unregistered
//! organisation some objects came from) reads through every TAXII read endpoint — GET
//! objects (small pages, `next` followed), GET object, GET versions, GET manifest — and
//! through the export path (`Node::scan`, as `phalanx export --for ORG` and
//! `--for-blocking`). What each recipient receives must be exactly what the oracle says:
//! the visible objects and no other, redacted ones without the redacted properties and
//! otherwise unchanged, a 404 for an object it may not see.

#[allow(dead_code)]
#[path = "../../policy/tests/model/mod.rs"]
mod model;

use model::{COLLECTIONS, GHOST, HOUR, OUTSIDER, OWN, Obj, Out, To, World};
use phalanx_node::{Caller, Node, NodeConfig, Purpose as NodePurpose};
use phalanx_policy::{Defaults, Level, Purpose};
use phalanx_stix::markings::{MarkingKind, Pap, STANDARD_MARKINGS, Tlp};
use phalanx_stix::{StixObject, Timestamp};
use phalanx_store::{Access, NewCollection, ObjectQuery, SqliteStore, Store};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

const TAXII: &str = "application/taxii+json;version=2.1";
const ROOT: &str = phalanx_node::DEFAULT_API_ROOT;
const SECOND: i64 = 1_000_000;

// ---------------------------------------------------------------------------------------
// A node served on loopback.
// ---------------------------------------------------------------------------------------

mod common;

struct Server {
    addr: SocketAddr,
    node: Arc<Node>,
    running: common::Running,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A fresh node (SQLite in a temporary directory) of organisation [`OWN`] with the
    /// default API root and no collection yet.
    fn node(defaults: Defaults) -> (Arc<Node>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
        store.init_setting("node.org", OWN).unwrap();
        store.ensure_api_root(ROOT, "Default API root").unwrap();
        let cfg = NodeConfig {
            sharing: defaults,
            ..NodeConfig::default()
        };
        let node = Arc::new(Node::new(Arc::new(store), cfg).unwrap());
        assert_eq!(node.own_org(), OWN);
        (node, dir)
    }

    async fn start(node: Arc<Node>, dir: tempfile::TempDir) -> Server {
        let running = common::serve(node.clone(), None).await;
        Server {
            addr: running.addr,
            node,
            running,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A read-everything token of organisation `org`.
    fn token(&self, org: &str) -> String {
        self.node
            .create_token(
                org,
                org,
                Access::All,
                Access::None,
                phalanx_node::now_micros(),
            )
            .unwrap()
            .1
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

/// The caller `phalanx export --for ORG` acts as (crates/cli/src/export.rs `audience()`).
fn export_caller(org: &str) -> Caller {
    Caller {
        id: format!("export:{org}"),
        name: org.to_owned(),
        org: org.to_owned(),
        read: Access::All,
        write: Access::None,
        admin: false,
    }
}

/// A GET with the TAXII Accept header: status, headers, body (JSON, or `Null`).
async fn get(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = http
        .get(url)
        .header("Accept", TAXII)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

// ---------------------------------------------------------------------------------------
// The world's objects as STIX.
// ---------------------------------------------------------------------------------------

/// The standard marking definitions of a TLP level (TLP 2.0, and TLP 1.0 where it has one).
fn tlp_ids(t: Tlp) -> Vec<&'static str> {
    STANDARD_MARKINGS
        .iter()
        .filter(|m| matches!(m.kind, MarkingKind::Tlp1(x, _) | MarkingKind::Tlp2(x, _) if x == t))
        .map(|m| m.id)
        .collect()
}

fn pap_id(p: Pap) -> &'static str {
    STANDARD_MARKINGS
        .iter()
        .find(|m| matches!(m.kind, MarkingKind::Pap(x, _) if x == p))
        .map(|m| m.id)
        .unwrap()
}

fn level_id(l: Level, k: usize) -> &'static str {
    match l {
        Level::Tlp(t) => {
            let ids = tlp_ids(t);
            ids[k % ids.len()]
        }
        Level::Pap(p) => pap_id(p),
    }
}

/// A valid STIX object of the model object's type with its markings, labels and granular
/// markings; `k` varies the details (TLP 1.0 or 2.0 definitions, an extra less
/// restrictive TLP marking, malware family or not).
fn stix(o: &Obj, k: usize, modified: &str) -> Value {
    let id = format!("{}--{}", o.ty, uuid::Uuid::new_v4());
    let mut v = json!({
        "type": o.ty,
        "spec_version": "2.1",
        "id": id,
        "created": modified,
        "modified": modified,
        "name": format!("object {k}"),
        "description": format!("the description of object {k}"),
    });
    match o.ty {
        "indicator" => {
            v["pattern"] = json!(format!("[ipv4-addr:value = '203.0.113.{}']", k % 256));
            v["pattern_type"] = json!("stix");
            v["valid_from"] = json!("2024-01-01T00:00:00Z");
        }
        "malware" => v["is_family"] = json!(k.is_multiple_of(2)),
        "report" => {
            v["published"] = json!("2024-01-01T00:00:00Z");
            v["object_refs"] = json!([format!("indicator--{}", uuid::Uuid::new_v4())]);
        }
        other => panic!("no STIX for type {other}"),
    }
    let mut refs: Vec<&str> = Vec::new();
    if let Some(t) = o.facts.tlp {
        refs.push(level_id(Level::Tlp(t), k));
        if k % 3 == 2 && t > Tlp::Clear {
            // A less restrictive TLP beside it: the most restrictive one counts.
            refs.insert(0, level_id(Level::Tlp(Tlp::Clear), k / 3));
        }
    }
    if let Some(p) = o.facts.pap {
        refs.push(pap_id(p));
    }
    if !refs.is_empty() {
        v["object_marking_refs"] = json!(refs);
    }
    if !o.facts.labels.is_empty() {
        v["labels"] = json!(o.facts.labels);
    }
    if !o.facts.granular.is_empty() {
        v["granular_markings"] = o
            .facts
            .granular
            .iter()
            .map(|g| json!({"marking_ref": level_id(g.level, k), "selectors": [g.selector]}))
            .collect();
    }
    v
}

/// Whether the STIX object cannot do without a property (redacting it must drop the
/// object): a report's `name`, a malware family's `name` (STIX 2.1 §4.11, §4.13).
fn required(v: &Value, prop: &str) -> bool {
    match (v["type"].as_str().unwrap(), prop) {
        ("report", "name") => true,
        ("malware", "name") => v["is_family"] == json!(true),
        _ => false,
    }
}

/// What a recipient must receive of an object, by the oracle's verdict: nothing, the object
/// unchanged, or the object without the redacted properties (and the granular markings
/// that pointed into them) — nothing when one of them is required.
fn expected(v: &Value, out: &Out) -> Option<Value> {
    match out {
        Out::Deny => None,
        Out::Allow => Some(v.clone()),
        Out::Redact(hidden) => {
            if hidden.iter().any(|p| required(v, p)) {
                return None;
            }
            let mut r = v.as_object().unwrap().clone();
            for p in hidden {
                r.remove(p);
            }
            if let Some(Value::Array(gms)) = r.get_mut("granular_markings") {
                for gm in gms.iter_mut() {
                    if let Some(Value::Array(sels)) = gm.get_mut("selectors") {
                        sels.retain(|s| !hidden.contains(s.as_str().unwrap()));
                    }
                }
                gms.retain(|gm| !gm["selectors"].as_array().unwrap().is_empty());
                if gms.is_empty() {
                    r.remove("granular_markings");
                }
            }
            Some(Value::Object(r))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The property.
// ---------------------------------------------------------------------------------------

/// One object of the world as stored.
struct Stored<'w> {
    model: &'w Obj,
    json: Value,
    id: String,
    collection: String,
    modified: i64,
    date_added: i64,
}

#[derive(Debug, Default)]
struct Stats {
    worlds: usize,
    /// (object, recipient, endpoint) verdicts compared with the oracle.
    decisions: usize,
    /// (object, recipient) pairs by the oracle's verdict for reading: sent unchanged,
    /// sent redacted, denied because redaction would remove a required property, denied.
    visible: usize,
    redacted: usize,
    dropped: usize,
    hidden: usize,
    requests: usize,
}

/// What one endpoint gave one recipient: object id → JSON (manifest and versions: the
/// version as JSON).
type Got = BTreeMap<String, Value>;

/// Compares what a recipient received from one endpoint with what it must receive;
/// records a line per difference.
#[allow(clippy::too_many_arguments)]
fn compare(
    stats: &mut Stats,
    errors: &mut Vec<String>,
    who: &str,
    endpoint: &str,
    objects: &[&Stored<'_>],
    want: &dyn Fn(&Stored<'_>) -> Option<Value>,
    got: &Got,
) {
    let mut known = BTreeSet::new();
    for o in objects {
        known.insert(o.id.as_str());
        let w = want(o);
        let g = got.get(&o.id);
        stats.decisions += 1;
        if w.as_ref() != g {
            errors.push(format!(
                "{who} via {endpoint}: object {} ({:?} in {}, {:?})\n  expected: {}\n  got:      {}",
                o.id,
                o.model.ty,
                o.model.coll,
                o.model.facts,
                w.map_or("nothing".to_owned(), |v| v.to_string()),
                g.map_or("nothing".to_owned(), |v| v.to_string()),
            ));
        }
    }
    for (id, v) in got {
        if !known.contains(id.as_str()) {
            errors.push(format!("{who} via {endpoint}: unknown object {id}: {v}"));
        }
    }
}

/// Reads a whole listing (`objects/` or `manifest/`) page by page, following `next`, and
/// checks the paging: full pages while `more`, no empty page after the first, the
/// date-added headers naming the first and last item of the page.
#[allow(clippy::too_many_arguments)]
async fn listing(
    http: &reqwest::Client,
    s: &Server,
    token: &str,
    collection: &str,
    what: &str,
    limit: usize,
    date_added: &BTreeMap<String, i64>,
    stats: &mut Stats,
    errors: &mut Vec<String>,
    who: &str,
) -> Got {
    let base = s.url(&format!(
        "/{ROOT}/collections/{collection}/{what}/?limit={limit}"
    ));
    let mut out = Got::new();
    let mut url = base.clone();
    for page in 0.. {
        if page > 200 {
            errors.push(format!("{who} via {what}: more than 200 pages"));
            break;
        }
        let (status, headers, body) = get(http, &url, token).await;
        stats.requests += 1;
        if status != StatusCode::OK {
            errors.push(format!("{who} via {what} {url}: {status} {body}"));
            break;
        }
        let items = body["objects"].as_array().cloned().unwrap_or_default();
        let more = body["more"].as_bool().unwrap_or(false);
        if page > 0 && items.is_empty() {
            errors.push(format!(
                "{who} via {what}: page {page} is empty after more: true"
            ));
        }
        if more && items.len() != limit {
            errors.push(format!(
                "{who} via {what}: page {page} has {} items of {limit} with more: true",
                items.len()
            ));
        }
        let mut dates = Vec::new();
        for item in items {
            let id = item["id"].as_str().unwrap_or_default().to_owned();
            let added = match what {
                "manifest" => item["date_added"]
                    .as_str()
                    .map(|d| Timestamp::parse(d).unwrap().as_micros()),
                _ => date_added.get(&id).copied(),
            };
            dates.push(added);
            let v = match what {
                "manifest" => {
                    if added != date_added.get(&id).copied() {
                        errors.push(format!(
                            "{who} via manifest: {id} date_added {:?}, stored {:?}",
                            item["date_added"],
                            date_added.get(&id)
                        ));
                    }
                    json!(
                        item["version"]
                            .as_str()
                            .map(|t| Timestamp::parse(t).unwrap().as_micros())
                    )
                }
                _ => item,
            };
            if out.insert(id.clone(), v).is_some() {
                errors.push(format!("{who} via {what}: {id} listed twice"));
            }
        }
        let header = |name: &str| {
            headers
                .get(name)
                .map(|h| Timestamp::parse(h.to_str().unwrap()).unwrap().as_micros())
        };
        let (first, last) = (
            header("x-taxii-date-added-first"),
            header("x-taxii-date-added-last"),
        );
        let want = (
            dates.first().copied().flatten(),
            dates.last().copied().flatten(),
        );
        if (first, last) != want {
            errors.push(format!(
                "{who} via {what}: page {page} date-added headers {first:?}..{last:?}, items {want:?}"
            ));
        }
        match (more, body["next"].as_str()) {
            (true, Some(next)) => url = format!("{base}&next={next}"),
            (true, None) => {
                errors.push(format!("{who} via {what}: more without next"));
                break;
            }
            (false, _) => break,
        }
    }
    out
}

/// Every object a scan (export) gives a caller from a collection.
fn export(
    node: &Node,
    caller: &Caller,
    purpose: NodePurpose,
    collection: &str,
    limit: usize,
) -> Got {
    let mut q = ObjectQuery::new(collection);
    q.limit = limit;
    let mut out = Got::new();
    node.scan(caller, purpose, q, |o| {
        out.insert(o.id.clone(), serde_json::from_str(&o.raw).unwrap());
        Ok::<_, phalanx_node::NodeError>(())
    })
    .unwrap();
    out
}

/// Builds the world's node, serves it, and checks every recipient through every endpoint.
async fn check_world(w: &World, limit: usize, stats: &mut Stats) -> Result<(), TestCaseError> {
    // Validity windows are whole hours from `base`, 30 s in the past: every boundary is at
    // least 30 s away from the requests, and the oracle's verdicts are the same at any
    // instant of (base, base + 1 h).
    let base = (phalanx_node::now_micros() / SECOND - 30) * SECOND;
    let (partners, agrs, objects) = model::resolve_at(w, base);
    let (node, dir) = Server::node(Defaults {
        tlp: w.default_tlp,
        pap: w.default_pap,
        ..Defaults::default()
    });
    let now = phalanx_node::now_micros();
    let mut coll_ids = BTreeMap::new();
    for c in COLLECTIONS {
        let c = node
            .store()
            .create_collection(ROOT, &NewCollection::named(c))
            .unwrap();
        coll_ids.insert(c.alias.clone().unwrap(), c.id);
    }
    for p in &partners {
        node.add_partner(&model::partner(p), now).unwrap();
    }
    for (i, a) in agrs.iter().enumerate() {
        let text = model::toml(a, i);
        node.add_agreement(&text, "policy_http", now)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    let mut stored = Vec::new();
    for (k, o) in objects.iter().enumerate() {
        let modified = Timestamp::from_micros(
            Timestamp::parse("2025-01-01T00:00:00Z")
                .unwrap()
                .as_micros()
                + k as i64 * 1000,
        );
        let v = stix(o, k, &modified.format(3));
        let parsed = StixObject::parse(v.to_string().as_bytes(), 64).unwrap();
        let valid = match phalanx_stix::validate(parsed) {
            Ok((valid, _)) => valid,
            Err((_, report)) => panic!("invalid test object {v}: {report:?}"),
        };
        let collection = coll_ids[o.coll].clone();
        let outcome = node
            .store()
            .ingest_from(&collection, &[valid], o.facts.source.as_deref(), now)
            .unwrap();
        let phalanx_store::IngestOutcome::Added { date_added } = outcome[0] else {
            panic!("not added: {outcome:?}");
        };
        let id = v["id"].as_str().unwrap().to_owned();
        // The node keeps the facts the model decides on.
        let mut q = ObjectQuery::new(&collection);
        q.ids = vec![id.clone()];
        let facts = &node.store().manifest(&q).unwrap().items[0].facts;
        let set = |f: &phalanx_policy::Facts| {
            (
                f.tlp,
                f.pap,
                f.labels.iter().cloned().collect::<BTreeSet<_>>(),
                f.granular
                    .iter()
                    .map(|g| format!("{g:?}"))
                    .collect::<BTreeSet<_>>(),
                f.source.clone(),
            )
        };
        assert_eq!(set(facts), set(&o.facts), "stored facts of {v}");
        stored.push(Stored {
            model: o,
            json: v,
            id,
            collection,
            modified: modified.as_micros(),
            date_added,
        });
    }
    let date_added: BTreeMap<String, i64> = stored
        .iter()
        .map(|o| (o.id.clone(), o.date_added))
        .collect();

    let s = Server::start(node.clone(), dir).await;
    let http = reqwest::Client::new();
    // (who, the oracle's recipient, organisation).
    let mut recipients: Vec<(String, To<'_>, &str)> =
        vec![("our organisation".into(), To::Local, OWN)];
    for p in &partners {
        recipients.push((format!("partner {p}"), To::Partner(p), p));
    }
    recipients.push(("outsider".into(), To::Outsider, OUTSIDER));
    recipients.push((format!("unregistered source {GHOST}"), To::Outsider, GHOST));

    let mut errors = Vec::new();
    for (who, to, org) in &recipients {
        let token = s.token(org);
        let now = phalanx_node::now_micros();
        assert!(
            now > base && now < base + HOUR - 60 * SECOND,
            "the world took too long"
        );
        let verdict =
            |o: &Stored<'_>, purpose: Purpose| model::oracle(w, &agrs, o.model, *to, purpose, now);
        let want = |o: &Stored<'_>| expected(&o.json, &verdict(o, Purpose::Read));
        for o in &stored {
            match (verdict(o, Purpose::Read), want(o)) {
                (Out::Allow, _) => stats.visible += 1,
                (Out::Redact(_), Some(_)) => stats.redacted += 1,
                (Out::Redact(_), None) => stats.dropped += 1,
                (Out::Deny, _) => stats.hidden += 1,
            }
        }
        for (alias, cid) in &coll_ids {
            let here: Vec<&Stored<'_>> = stored.iter().filter(|o| o.model.coll == alias).collect();
            // GET objects, all pages.
            let got = listing(
                &http,
                &s,
                &token,
                cid,
                "objects",
                limit,
                &date_added,
                stats,
                &mut errors,
                who,
            )
            .await;
            compare(stats, &mut errors, who, "GET objects", &here, &want, &got);
            // GET manifest, all pages: exactly the visible ids, with their versions.
            let got = listing(
                &http,
                &s,
                &token,
                cid,
                "manifest",
                limit,
                &date_added,
                stats,
                &mut errors,
                who,
            )
            .await;
            let want_version = |o: &Stored<'_>| want(o).map(|_| json!(o.modified));
            compare(
                stats,
                &mut errors,
                who,
                "GET manifest",
                &here,
                &want_version,
                &got,
            );
            // Exports.
            let callers = if *to == To::Local {
                vec![export_caller(org), Caller::local_operator()]
            } else {
                vec![export_caller(org)]
            };
            for caller in &callers {
                let got = export(&s.node, caller, NodePurpose::Export, cid, limit);
                let what = format!("export (caller {})", caller.id);
                compare(stats, &mut errors, who, &what, &here, &want, &got);
                let got = export(&s.node, caller, NodePurpose::Blocking, cid, limit);
                let what = format!("export for blocking (caller {})", caller.id);
                let want_blocking =
                    |o: &Stored<'_>| expected(&o.json, &verdict(o, Purpose::ExportForBlocking));
                compare(stats, &mut errors, who, &what, &here, &want_blocking, &got);
            }
        }
        // GET object and GET versions, for every object of the world.
        for o in &stored {
            let path = format!("/{ROOT}/collections/{}/objects/{}/", o.collection, o.id);
            let (status, _, body) = get(&http, &s.url(&path), &token).await;
            stats.requests += 1;
            let mut got = Got::new();
            match status {
                StatusCode::OK => {
                    let items = body["objects"].as_array().cloned().unwrap_or_default();
                    if items.len() != 1 || body["more"] == json!(true) {
                        errors.push(format!("{who} via GET object {}: {body}", o.id));
                    }
                    for item in items {
                        got.insert(item["id"].as_str().unwrap_or_default().to_owned(), item);
                    }
                }
                StatusCode::NOT_FOUND => {}
                other => errors.push(format!("{who} via GET object {}: {other} {body}", o.id)),
            }
            compare(stats, &mut errors, who, "GET object", &[o], &want, &got);

            let (status, _, body) = get(&http, &s.url(&format!("{path}versions/")), &token).await;
            stats.requests += 1;
            let mut got = Got::new();
            match status {
                StatusCode::OK => {
                    let versions = body["versions"].as_array().cloned().unwrap_or_default();
                    if versions.len() != 1 || body["more"] == json!(true) {
                        errors.push(format!("{who} via GET versions {}: {body}", o.id));
                    }
                    for v in versions {
                        got.insert(
                            o.id.clone(),
                            json!(Timestamp::parse(v.as_str().unwrap()).unwrap().as_micros()),
                        );
                    }
                }
                StatusCode::NOT_FOUND => {}
                other => errors.push(format!("{who} via GET versions {}: {other} {body}", o.id)),
            }
            let want_version = |o: &Stored<'_>| want(o).map(|_| json!(o.modified));
            compare(
                stats,
                &mut errors,
                who,
                "GET versions",
                &[o],
                &want_version,
                &got,
            );
        }
    }
    s.stop().await;
    stats.worlds += 1;
    if errors.is_empty() {
        return Ok(());
    }
    Err(TestCaseError::fail(format!(
        "{} mismatches with the oracle:\n{}\n\nnode defaults: {:?} / {:?}\nagreements (valid_from/valid_until relative to base = {}):\n{}",
        errors.len(),
        errors.join("\n"),
        w.default_tlp,
        w.default_pap,
        Timestamp::from_micros(base),
        agrs.iter()
            .enumerate()
            .map(|(i, a)| model::toml(a, i))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

const CASES: u32 = 32;

/// Every recipient, through every read endpoint and the export path, receives exactly what
/// the oracle allows.
///
/// Known failure (a leak): an object whose redaction fails — e.g. a report (whose `name`
/// is required) marked TLP:CLEAR with a granular TLP:GREEN on `name`, read by a partner
/// without an agreement in force — is denied by GET objects and GET object (404), as
/// rule 7 says, but GET manifest and GET versions still list it with its version and
/// `date_added`: `Node::apply_policy` keeps manifest records (no JSON text) of
/// `Verdict::Redact` objects without checking that the redacted object would be valid.
/// See also `an_object_dropped_by_redaction_is_not_in_the_manifest_or_versions`.
#[test]

fn every_endpoint_serves_what_the_oracle_allows() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let stats = std::cell::RefCell::new(Stats::default());
    let started = std::time::Instant::now();
    let result = runner.run(&(model::world_with(4..=10), 1usize..=3), |(w, limit)| {
        rt.block_on(check_world(&w, limit, &mut stats.borrow_mut()))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let s = stats.into_inner();
    eprintln!(
        "{CASES} worlds in {:.1} s: {} decisions checked ({s:?})",
        started.elapsed().as_secs_f64(),
        s.decisions
    );
    assert!(s.decisions >= 2000, "{s:?}");
    for (what, n) in [
        ("visible", s.visible),
        ("redacted", s.redacted),
        ("dropped", s.dropped),
        ("hidden", s.hidden),
    ] {
        assert!(n > 0, "no {what} object: {s:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Time.
// ---------------------------------------------------------------------------------------

/// An agreement that expires while the server runs stops the flow at that instant: no
/// restart, no reload, no cache to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreement_expiry_stops_the_flow_without_restart() {
    let (node, dir) = Server::node(Defaults::default());
    let start = phalanx_node::now_micros();
    let c = node
        .store()
        .create_collection(ROOT, &NewCollection::named("coll-a"))
        .unwrap();
    node.add_partner(&model::partner("org-0"), start).unwrap();
    let until = (start / SECOND + 4) * SECOND;
    let agreement = model::Agr {
        id: "agr-expiring".into(),
        parties: vec!["org-0".into()],
        own_listed: false,
        status: model::Status::Active,
        from: (start / SECOND - 3600) * SECOND,
        until: Some(until),
        collections: vec![],
        types: vec![],
        labels: vec![],
        max_tlp: Tlp::Amber,
        onward: model::Onward::Nobody,
        onward_absent: true,
        pap_default: None,
    };
    node.add_agreement(&model::toml(&agreement, 0), "policy_http", start)
        .unwrap();
    let amber = model::Obj {
        ty: "indicator",
        coll: "coll-a",
        facts: phalanx_policy::Facts {
            tlp: Some(Tlp::Amber),
            ..Default::default()
        },
    };
    let v = stix(&amber, 0, "2025-01-01T00:00:00.000Z");
    let valid = phalanx_stix::validate(StixObject::parse(v.to_string().as_bytes(), 64).unwrap())
        .unwrap()
        .0;
    node.store().ingest(&c.id, &[valid], start).unwrap();
    let id = v["id"].as_str().unwrap();

    let s = Server::start(node.clone(), dir).await;
    let http = reqwest::Client::new();
    let partner = s.token("org-0");
    let local = s.token(OWN);
    let objects = s.url(&format!("/{ROOT}/collections/{}/objects/", c.id));
    let object = s.url(&format!("/{ROOT}/collections/{}/objects/{id}/", c.id));
    let manifest = s.url(&format!("/{ROOT}/collections/{}/manifest/", c.id));
    let generation = node.store().policy_generation().unwrap();

    // In force: the partner reads it everywhere.
    let (status, _, body) = get(&http, &objects, &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["objects"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["objects"][0], v);
    let (status, _, body) = get(&http, &object, &partner).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, body) = get(&http, &manifest, &partner).await;
    assert_eq!(body["objects"][0]["id"], json!(id), "{body}");
    assert!(
        phalanx_node::now_micros() < until,
        "the requests before valid_until took too long"
    );

    // Past valid_until: the same running server, nothing changed.
    let wait = until - phalanx_node::now_micros() + 300_000;
    tokio::time::sleep(std::time::Duration::from_micros(wait.max(0) as u64)).await;
    assert!(phalanx_node::now_micros() > until);
    let (status, _, body) = get(&http, &objects, &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("objects").is_none(), "after expiry: {body}");
    let (status, _, body) = get(&http, &object, &partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "after expiry: {body}");
    let (status, _, body) = get(&http, &format!("{object}versions/"), &partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "after expiry: {body}");
    let (status, _, body) = get(&http, &manifest, &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("objects").is_none(), "after expiry: {body}");
    let export = export(
        &node,
        &export_caller("org-0"),
        NodePurpose::Export,
        &c.id,
        10,
    );
    assert!(export.is_empty(), "export after expiry: {export:?}");
    // The object is still there, and nothing reloaded the policy.
    let (_, _, body) = get(&http, &objects, &local).await;
    assert_eq!(body["objects"][0], v);
    assert_eq!(node.store().policy_generation().unwrap(), generation);
    s.stop().await;
}

// ---------------------------------------------------------------------------------------
// Found by the property.
// ---------------------------------------------------------------------------------------

/// Rule 7: when redaction would remove a required property, the whole object is denied —
/// on every endpoint. A report (`name` is required) marked TLP:CLEAR with a granular
/// TLP:GREEN on `name`, read by a partner with no agreement in force (so not in the GREEN
/// community): the decision is "redact name", redacting fails, so the object must not be
/// seen at all. GET objects and GET object get this right; GET manifest and GET versions
/// still list it (with its version and `date_added`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_object_dropped_by_redaction_is_not_in_the_manifest_or_versions() {
    let (node, dir) = Server::node(Defaults::default());
    let now = phalanx_node::now_micros();
    let c = node
        .store()
        .create_collection(ROOT, &NewCollection::named("coll-a"))
        .unwrap();
    node.add_partner(&model::partner("org-0"), now).unwrap();
    let report = model::Obj {
        ty: "report",
        coll: "coll-a",
        facts: phalanx_policy::Facts {
            tlp: Some(Tlp::Clear),
            granular: vec![phalanx_policy::Granular {
                selector: "name".into(),
                level: Level::Tlp(Tlp::Green),
            }],
            ..Default::default()
        },
    };
    let v = stix(&report, 0, "2025-01-01T00:00:00.000Z");
    let valid = phalanx_stix::validate(StixObject::parse(v.to_string().as_bytes(), 64).unwrap())
        .unwrap()
        .0;
    node.store().ingest(&c.id, &[valid], now).unwrap();
    let id = v["id"].as_str().unwrap();
    let s = Server::start(node.clone(), dir).await;
    let http = reqwest::Client::new();
    let partner = s.token("org-0");
    let coll = format!("/{ROOT}/collections/{}", c.id);

    let (status, _, body) = get(&http, &s.url(&format!("{coll}/objects/")), &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("objects").is_none(), "GET objects: {body}");
    let (status, _, body) = get(&http, &s.url(&format!("{coll}/objects/{id}/")), &partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "GET object: {body}");
    let export = export(
        &node,
        &export_caller("org-0"),
        NodePurpose::Export,
        &c.id,
        10,
    );
    assert!(export.is_empty(), "export: {export:?}");
    // The leak.
    let (status, headers, body) = get(&http, &s.url(&format!("{coll}/manifest/")), &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.get("objects").is_none() && headers.get("x-taxii-date-added-first").is_none(),
        "GET manifest lists an object the partner may not see: {body}"
    );
    let (status, _, body) = get(
        &http,
        &s.url(&format!("{coll}/objects/{id}/versions/")),
        &partner,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "GET versions of an object the partner may not see: {body}"
    );
    s.stop().await;
}
