//! Partners, agreements and the policy behind [`Node::egress`].
//!
//! The node keeps one [`Policy`] built from the store's partners and the latest version of
//! every agreement, and rebuilds it when the store's policy generation moves (also when
//! another process — `phalanx agreement suspend` next to a running server — changed it).
//! Time-dependent rules (validity windows) are decided per request with the request's
//! time, so an agreement that expires stops its flows at that instant.

use crate::{Caller, Node, NodeError, Result};
use phalanx_policy::agreement::{Context, parse_document};
use phalanx_policy::{
    Agreement, AgreementDoc, AgreementStatus, Partner, Policy, Recipient, Subject, Verdict,
};
use phalanx_store::{
    Collection, ObjectQuery, Principal, StoreError, StoredAgreement, StoredObject, VersionFilter,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why objects leave the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TAXII read.
    Read,
    /// A file written by `phalanx export` (read by whoever it is exported for).
    Export,
    /// Exported to active blocking (PAP rules apply).
    Blocking,
    /// Delivered to a peer node.
    Federate,
    /// A node backup (`phalanx backup`): administrators only, everything.
    Backup,
    /// Not a release: whether the caller may act on (delete) versions it could see.
    /// A peer node may delete what it sent (federation's loop rule does not apply).
    Manage,
}

impl Purpose {
    fn policy(self) -> phalanx_policy::Purpose {
        match self {
            Purpose::Read | Purpose::Export | Purpose::Backup | Purpose::Manage => {
                phalanx_policy::Purpose::Read
            }
            Purpose::Blocking => phalanx_policy::Purpose::ExportForBlocking,
            Purpose::Federate => phalanx_policy::Purpose::Federate,
        }
    }
}

/// What the node decides with, rebuilt when the store's policy generation moves.
#[derive(Clone)]
pub(crate) struct Snapshot {
    generation: i64,
    policy: Arc<Policy>,
    /// Partner id → local collections its node may write (accept feeds).
    accepts: Arc<HashMap<String, Vec<String>>>,
    /// Tokens and collections read at this generation.
    pub(crate) catalog: Arc<Catalog>,
}

/// Principals (by token hash) and collections (by id) as the store held them at one
/// policy generation, which every change to either moves. Only what was found is kept,
/// so the maps are bounded by the store's own tables, whatever callers send.
#[derive(Default)]
pub(crate) struct Catalog {
    tokens: Mutex<HashMap<String, Principal>>,
    collections: Mutex<HashMap<String, Collection>>,
}

impl Catalog {
    /// The principal of a token hash, from the cache or `load`.
    pub(crate) fn token(
        &self,
        hash: &str,
        load: impl FnOnce() -> Result<Option<Principal>>,
    ) -> Result<Option<Principal>> {
        cached(&self.tokens, hash, load)
    }

    /// A collection by id, from the cache or `load`.
    pub(crate) fn collection(
        &self,
        id: &str,
        load: impl FnOnce() -> Result<Option<Collection>>,
    ) -> Result<Option<Collection>> {
        cached(&self.collections, id, load)
    }
}

fn cached<T: Clone>(
    map: &Mutex<HashMap<String, T>>,
    key: &str,
    load: impl FnOnce() -> Result<Option<T>>,
) -> Result<Option<T>> {
    if let Some(v) = map.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(Some(v.clone()));
    }
    let found = load()?;
    if let Some(v) = &found {
        map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), v.clone());
    }
    Ok(found)
}

/// What checking an agreement needs from the node.
struct CheckCtx<'a> {
    own: &'a str,
    partners: Vec<Partner>,
    node: &'a Node,
}

impl Context for CheckCtx<'_> {
    fn own_org(&self) -> &str {
        self.own
    }
    fn is_partner(&self, id: &str) -> bool {
        self.partners.iter().any(|p| p.id == id && !p.removed)
    }
    fn collection_id(&self, name: &str) -> Option<String> {
        self.node.store().find_collection(name).ok().map(|c| c.id)
    }
}

/// Loading a stored (already checked) version: names are ids already, and a partner
/// removed since still counts (the version stays as it was agreed).
struct LoadCtx<'a>(&'a str);

impl Context for LoadCtx<'_> {
    fn own_org(&self) -> &str {
        self.0
    }
    fn is_partner(&self, _: &str) -> bool {
        true
    }
    fn collection_id(&self, name: &str) -> Option<String> {
        Some(name.to_owned())
    }
}

/// One agreement version as stored, typed.
#[derive(Debug, Clone)]
pub struct AgreementVersion {
    /// The checked agreement.
    pub agreement: Agreement,
    /// When it was recorded (µs).
    pub created_us: i64,
    /// Who recorded it.
    pub author: String,
}

/// The decision for one stored version of an object, with its rule chain.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The collection holding it.
    pub collection: Collection,
    /// The object version (`modified`).
    pub version: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The rule chain, the decision last.
    pub steps: Vec<String>,
}

impl Explanation {
    /// The JSON form (CLI `--json` and the REST endpoint).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "collection": self.collection.id,
            "version": self.version,
            "decision": match &self.verdict {
                Verdict::Allow => "allow",
                Verdict::Redact(_) => "redact",
                Verdict::Deny => "deny",
            },
            "redact": match &self.verdict { Verdict::Redact(s) => s.clone(), _ => Vec::new() },
            "steps": self.steps,
        })
    }
}

fn load(own: &str, s: &StoredAgreement) -> Result<AgreementVersion> {
    let corrupt =
        |m: String| NodeError::Internal(format!("stored agreement {} v{}: {m}", s.id, s.version));
    let doc: AgreementDoc = serde_json::from_str(&s.doc).map_err(|e| corrupt(e.to_string()))?;
    let agreement = doc
        .check(&LoadCtx(own), s.version)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(AgreementVersion {
        agreement,
        created_us: s.created_us,
        author: s.author.clone(),
    })
}

impl Node {
    /// The sharing policy in force (rebuilt when partners or agreements changed).
    pub fn policy(&self) -> Result<Arc<Policy>> {
        Ok(self.snapshot()?.policy)
    }

    /// The policy and the write grants of partners' nodes, as of the store's current
    /// policy generation (partners, agreements and feeds all move it).
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let generation = self.store().policy_generation()?;
        let mut cache = self.policy_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &*cache
            && s.generation == generation
        {
            return Ok(s.clone());
        }
        let agreements = self
            .store()
            .agreements()?
            .iter()
            .map(|s| load(&self.own_org, s).map(|v| v.agreement))
            .collect::<Result<Vec<_>>>()?;
        let policy = Arc::new(Policy::new(
            &self.own_org,
            self.config().sharing,
            self.store().partners()?,
            agreements,
        ));
        let mut accepts: HashMap<String, Vec<String>> = HashMap::new();
        for f in self.store().feeds()? {
            if f.direction == phalanx_store::FeedDirection::Accept {
                accepts.entry(f.partner).or_default().push(f.local);
            }
        }
        let snapshot = Snapshot {
            generation,
            policy,
            accepts: Arc::new(accepts),
            catalog: Arc::default(),
        };
        *cache = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// The node's own organisation id.
    pub fn own_org(&self) -> &str {
        &self.own_org
    }

    /// What a caller is to the policy: administrators and the node's own organisation
    /// are local; a registered partner is that partner; anyone else an outsider.
    pub fn recipient<'a>(&self, policy: &Policy, caller: &'a Caller) -> Recipient<'a> {
        if caller.admin {
            Recipient::Local
        } else {
            policy.recipient(&caller.org)
        }
    }

    /// Applies the policy to objects going to `caller`: drops denied ones, redacts where
    /// the decision says so, and drops the object when redaction would leave it invalid
    /// (also for manifest records, whose text is fetched for that check).
    pub(crate) fn apply_policy(
        &self,
        caller: &Caller,
        collection: &Collection,
        purpose: Purpose,
        items: Vec<StoredObject>,
        now_us: i64,
    ) -> Result<Vec<StoredObject>> {
        if purpose == Purpose::Backup {
            return Ok(if caller.admin { items } else { Vec::new() });
        }
        // Recall notices are for partners' nodes (federation); people and ordinary
        // TAXII clients do not see them. Only this node's own notices leave it: a
        // partner's notice speaks of that partner's deletion and is never passed on.
        let items = if items.iter().any(|o| o.object_type == crate::recall::TYPE) {
            let own = if caller.is_peer() || purpose == Purpose::Federate {
                Some(self.own_identity()?)
            } else {
                None
            };
            items
                .into_iter()
                .filter(|o| {
                    o.object_type != crate::recall::TYPE
                        || own.as_ref().is_some_and(|me| o.facts.producer == *me)
                })
                .collect()
        } else {
            items
        };
        let policy = self.policy()?;
        let to = self.recipient(&policy, caller);
        if to == Recipient::Local && purpose != Purpose::Blocking {
            return Ok(items);
        }
        // A peer node's reads are federation; and federation never sends an object back
        // to the partner it came from, to the partner that produced it, nor to any node
        // on the path it travelled (no loops).
        let purpose = if caller.is_peer() && purpose == Purpose::Read {
            Purpose::Federate
        } else {
            purpose
        };
        let items = if purpose == Purpose::Federate {
            let identity = policy.partner(&caller.org).map(|p| p.identity.as_str());
            items
                .into_iter()
                .filter(|o| {
                    o.facts.source.as_deref() != Some(caller.org.as_str())
                        && identity.is_none_or(|me| {
                            o.facts.producer.as_deref() != Some(me)
                                && !o.facts.path.iter().any(|hop| hop == me)
                        })
                })
                .collect()
        } else {
            items
        };
        let mut out = Vec::with_capacity(items.len());
        for mut o in items {
            // An attestation goes where the objects it covers go: decided as their type.
            let subject_type =
                if o.object_type == crate::attest::TYPE || o.object_type == crate::recall::TYPE {
                    self.attestation_subject(&collection.id, &o)?
                } else {
                    None
                };
            let subject = Subject {
                object_type: subject_type.as_deref().unwrap_or(&o.object_type),
                collection: &collection.id,
                facts: &o.facts,
            };
            match policy.decide(to, subject, purpose.policy(), now_us).verdict {
                Verdict::Allow => out.push(o),
                Verdict::Deny => {}
                Verdict::Redact(selectors) => {
                    // A manifest record has no text: fetch it, because whether the
                    // redacted object is still valid decides whether the record shows.
                    let listed = o.raw.is_empty();
                    let raw = if listed {
                        // Deleted meanwhile: nothing to show.
                        match self.stored_text(&collection.id, &o)? {
                            Some(raw) => raw,
                            None => continue,
                        }
                    } else {
                        std::mem::take(&mut o.raw)
                    };
                    if let Ok(text) =
                        phalanx_policy::redact(&raw, &selectors, self.config().max_depth)
                    {
                        if !listed {
                            o.raw = text;
                        }
                        out.push(o);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The caller a TLS client certificate authenticates as: the partner's node, reading
    /// every collection (the policy decides per object, purpose federate) and writing
    /// the collections it has an `accept` feed for.
    pub fn authenticate_certificate(&self, fingerprint: &str) -> Result<Caller> {
        let snapshot = self.snapshot()?;
        let p = snapshot
            .policy
            .partner_by_fingerprint(fingerprint)
            .ok_or_else(|| {
                NodeError::Unauthenticated(
                    "the client certificate is not registered to a partner; send credentials"
                        .into(),
                )
            })?;
        // It may write into the collections it has an `accept` feed for.
        let accepts = snapshot.accepts.get(&p.id).cloned().unwrap_or_default();
        Ok(Caller {
            id: format!("cert:{}", &fingerprint[..fingerprint.len().min(16)]),
            name: p.id.clone(),
            org: p.id.clone(),
            read: phalanx_store::Access::All,
            write: if accepts.is_empty() {
                phalanx_store::Access::None
            } else {
                phalanx_store::Access::Collections(accepts)
            },
            admin: false,
        })
    }

    /// Whether a stored object version carries a valid signature of its producer: the
    /// attestations stored in the same collection that claim to cover it, checked
    /// against the partner registry.
    pub fn signature_status(
        &self,
        policy: &phalanx_policy::Policy,
        collection: &str,
        o: &StoredObject,
    ) -> Result<String> {
        use crate::attest;
        let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(&o.raw) else {
            return Ok("signature: (object text unavailable)".into());
        };
        let Some(version) = obj
            .get("modified")
            .or_else(|| obj.get("created"))
            .and_then(serde_json::Value::as_str)
        else {
            return Ok("signature: none (unversioned object)".into());
        };
        let mut unverified = None;
        let mut failure = None;
        let mut origin = None;
        let mut transit: Vec<String> = Vec::new();
        for raw in self.store().attestations_of(collection, &o.id, version)? {
            let Ok(serde_json::Value::Object(att)) = serde_json::from_str(&raw) else {
                continue;
            };
            match attest::verify_registered(policy, &att) {
                Ok(Some((partner, c))) => match c.matches(&obj) {
                    Some(true) if c.path.is_empty() => origin = Some(partner),
                    Some(true) => transit.push(partner),
                    Some(false) => {
                        failure = Some(format!(
                            "signature: FAILS — the content differs from what {partner} signed"
                        ));
                    }
                    None => {}
                },
                Ok(None) => {
                    let signer = att
                        .get("created_by_ref")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("");
                    unverified = Some(match policy.partner_by_identity(signer) {
                        Some(p) => format!(
                            "signature: by partner {}, who has no registered key: unverified",
                            p.id
                        ),
                        None => {
                            format!("signature: by {signer}, not a registered partner: unverified")
                        }
                    });
                }
                Err(e) => failure = Some(format!("signature: FAILS — {e}")),
            }
        }
        if let Some(s) = failure {
            return Ok(s);
        }
        let passed = if transit.is_empty() {
            String::new()
        } else {
            format!(
                "; passed on by partner {} (transit signature verified)",
                transit.join(", partner ")
            )
        };
        if let Some(partner) = origin {
            return Ok(format!(
                "signature: verified — produced and signed by partner {partner}{passed}"
            ));
        }
        if let Some(s) = unverified {
            return Ok(format!("{s}{passed}"));
        }
        if !passed.is_empty() {
            return Ok(format!(
                "signature: no verified signature of the node that shared it first{passed}"
            ));
        }
        Ok(match &o.facts.source {
            Some(src) => format!("signature: none (received unsigned from {src})"),
            None => {
                "signature: none stored (this node signs what it produced when it pushes it)".into()
            }
        })
    }

    /// This node's STIX identity id (`None` before `phalanx init` or the first `serve`).
    pub fn own_identity(&self) -> Result<Option<String>> {
        Ok(self
            .store()
            .setting("node.identity")?
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["id"].as_str().map(str::to_owned)))
    }

    /// Checks the signatures of a batch about to be stored in `collection` (see
    /// [`crate::attest::check_batch`]).
    pub(crate) fn check_signatures(
        &self,
        policy: &phalanx_policy::Policy,
        collection: &str,
        source: Option<&str>,
        objects: &[phalanx_stix::ValidObject],
    ) -> Result<crate::attest::Checked> {
        let own = self.own_identity()?;
        let stored = |id: &str, version: &str| {
            self.store()
                .attestations_of(collection, id, version)
                .map_err(|e| format!("cannot read the stored attestations: {e}"))
        };
        Ok(crate::attest::check_batch(
            policy,
            objects,
            &crate::attest::BatchContext {
                source,
                own_identity: own.as_deref(),
                stored: &stored,
            },
        ))
    }

    /// The type of the objects an attestation covers (its text is fetched for a manifest
    /// record).
    fn attestation_subject(&self, collection: &str, o: &StoredObject) -> Result<Option<String>> {
        let fetched;
        let raw = if o.raw.is_empty() {
            match self.stored_text(collection, o)? {
                Some(t) => {
                    fetched = t;
                    &fetched
                }
                None => return Ok(None),
            }
        } else {
            &o.raw
        };
        Ok(match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(m)) => {
                phalanx_policy::provenance::subject_type(&m).map(str::to_owned)
            }
            _ => None,
        })
    }

    /// The stored JSON text of a manifest record's object version.
    fn stored_text(&self, collection: &str, o: &StoredObject) -> Result<Option<String>> {
        let q = ObjectQuery {
            ids: vec![o.id.clone()],
            versions: VersionFilter::all(),
            limit: self.config().max_page,
            ..ObjectQuery::new(collection)
        };
        Ok(self
            .store()
            .query(&q)?
            .items
            .into_iter()
            .find(|v| v.date_added == o.date_added)
            .map(|v| v.raw))
    }

    /// Registers a new partner.
    pub fn add_partner(&self, p: &Partner, now_us: i64) -> Result<()> {
        p.check().map_err(NodeError::BadRequest)?;
        if p.id == self.own_org {
            return Err(NodeError::BadRequest(format!(
                "partner id {:?} is this node's own organisation",
                p.id
            )));
        }
        let existing = self.store().partners()?;
        if existing.iter().any(|e| e.id == p.id && !e.removed) {
            return Err(NodeError::BadRequest(format!("partner {:?} exists", p.id)));
        }
        for f in &p.cert_fingerprints {
            if let Some(o) = existing
                .iter()
                .find(|e| !e.removed && e.cert_fingerprints.contains(f))
            {
                return Err(NodeError::BadRequest(format!(
                    "certificate fingerprint {f} belongs to partner {}",
                    o.id
                )));
            }
        }
        Ok(self.store().put_partner(p, now_us)?)
    }

    /// Every partner (removed ones included).
    pub fn partners(&self) -> Result<Vec<Partner>> {
        Ok(self.store().partners()?)
    }

    /// Marks a partner removed: it is no longer a recipient; its history stays.
    pub fn remove_partner(&self, id: &str, now_us: i64) -> Result<Partner> {
        let mut p = self
            .store()
            .partners()?
            .into_iter()
            .find(|p| p.id == id && !p.removed)
            .ok_or_else(|| NodeError::NotFound(format!("partner {id:?}")))?;
        p.removed = true;
        self.store().put_partner(&p, now_us)?;
        Ok(p)
    }

    /// Checks an agreement document (TOML or JSON) and records it as the next version of
    /// its agreement. Nothing is recorded if any field is wrong.
    pub fn add_agreement(&self, text: &str, author: &str, now_us: i64) -> Result<AgreementVersion> {
        let doc = parse_document(text).map_err(|e| NodeError::BadRequest(e.to_string()))?;
        self.record_agreement(doc, author, now_us)
    }

    fn record_agreement(
        &self,
        doc: AgreementDoc,
        author: &str,
        now_us: i64,
    ) -> Result<AgreementVersion> {
        let history = self.store().agreement_history(&doc.id)?;
        let latest = history.last().map_or(0, |a| a.version);
        let version = match doc.version {
            Some(v) if v <= latest => {
                return Err(NodeError::BadRequest(format!(
                    "agreement field version: {} version {v} exists (latest is {latest}); a change is a new version",
                    doc.id
                )));
            }
            Some(v) if v != latest + 1 => {
                return Err(NodeError::BadRequest(format!(
                    "agreement field version: {v} skips versions (next is {})",
                    latest + 1
                )));
            }
            _ => latest + 1,
        };
        let ctx = CheckCtx {
            own: &self.own_org,
            partners: self.store().partners()?,
            node: self,
        };
        let agreement = doc
            .check(&ctx, version)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        if let Some(prev) = history.last() {
            let prev = load(&self.own_org, prev)?;
            if prev.agreement.status == AgreementStatus::Terminated {
                return Err(NodeError::BadRequest(format!(
                    "agreement {} is terminated; a terminated agreement is not changed (start a new one)",
                    doc.id
                )));
            }
        }
        let stored = StoredAgreement {
            id: agreement.id.clone(),
            version,
            doc: serde_json::to_string(&agreement.doc)
                .map_err(|e| NodeError::Internal(e.to_string()))?,
            created_us: now_us,
            author: author.to_owned(),
        };
        self.store().add_agreement(&stored).map_err(|e| match e {
            StoreError::Exists(m) => NodeError::BadRequest(format!("{m} was recorded meanwhile")),
            e => e.into(),
        })?;
        Ok(AgreementVersion {
            agreement,
            created_us: now_us,
            author: author.to_owned(),
        })
    }

    /// Records a new version of an agreement with another status (suspend, resume,
    /// terminate).
    pub fn set_agreement_status(
        &self,
        id: &str,
        status: AgreementStatus,
        author: &str,
        now_us: i64,
    ) -> Result<AgreementVersion> {
        let latest = self
            .agreement_history(id)?
            .pop()
            .ok_or_else(|| NodeError::NotFound(format!("agreement {id:?}")))?;
        if latest.agreement.status == status {
            return Err(NodeError::BadRequest(format!(
                "agreement {id} is already {}",
                status.as_str()
            )));
        }
        let mut doc = latest.agreement.doc;
        doc.status = status;
        doc.version = None;
        self.record_agreement(doc, author, now_us)
    }

    /// Every version of an agreement, oldest first.
    pub fn agreement_history(&self, id: &str) -> Result<Vec<AgreementVersion>> {
        self.store()
            .agreement_history(id)?
            .iter()
            .map(|s| load(&self.own_org, s))
            .collect()
    }

    /// The latest version of every agreement.
    pub fn agreements(&self) -> Result<Vec<AgreementVersion>> {
        self.store()
            .agreements()?
            .iter()
            .map(|s| load(&self.own_org, s))
            .collect()
    }

    /// The decision, with its rule chain, for the latest version of an object in every
    /// collection holding it, going to organisation `org` (a partner id, this node's
    /// organisation, or anyone else) for `purpose`.
    pub fn explain(
        &self,
        object_id: &str,
        org: &str,
        purpose: phalanx_policy::Purpose,
        now_us: i64,
    ) -> Result<Vec<Explanation>> {
        phalanx_stix::id::parse_id(object_id)
            .map_err(|e| NodeError::BadRequest(format!("object id: {e}")))?;
        let policy = self.policy()?;
        let to = policy.recipient(org);
        let mut out = Vec::new();
        for c in self.store().collections(None)? {
            let mut q = ObjectQuery::new(&c.id);
            q.ids = vec![object_id.to_owned()];
            q.versions = VersionFilter::default();
            for o in self.store().query(&q)?.items {
                let subject = Subject {
                    object_type: &o.object_type,
                    collection: &c.id,
                    facts: &o.facts,
                };
                let (d, mut steps) = policy.explain(to, subject, purpose, now_us);
                steps.insert(2, self.signature_status(&policy, &c.id, &o)?);
                steps.insert(3, path_text(&policy, &o.facts));
                out.push(Explanation {
                    collection: c.clone(),
                    version: o.version.to_string(),
                    verdict: d.verdict,
                    steps,
                });
            }
        }
        if out.is_empty() {
            return Err(NodeError::NotFound(format!("object {object_id}")));
        }
        Ok(out)
    }
}

/// The path a version travelled, as `policy explain` shows it: each hop's identity with
/// the partner registered for it.
fn path_text(policy: &Policy, facts: &phalanx_policy::Facts) -> String {
    if facts.path.is_empty() {
        return match &facts.source {
            Some(src) => format!("path: not recorded (received from partner {src})"),
            None => "path: none (produced or imported here)".into(),
        };
    }
    let hops: Vec<String> = facts
        .path
        .iter()
        .map(|hop| match policy.partner_by_identity(hop) {
            Some(p) => format!("{} ({hop})", p.id),
            None => format!("{hop} (not a registered partner)"),
        })
        .collect();
    format!("path: {} → this node", hops.join(" → "))
}
