//! Recall notices: how a deletion reaches the partners that **pull** from this node.
//!
//! Push partners are told of a deletion with a TAXII `DELETE` (see the federation
//! crate); a server has no channel to a client that pulls. So every deletion also leaves,
//! in the same transaction ([`phalanx_store::Store::delete_with_notices`]), a notice in
//! the collection: a custom STIX object that pulling partners read like any other.
//!
//! ```json
//! {"type": "x-phalanx-recall", "spec_version": "2.1",
//!  "id": "x-phalanx-recall--<UUIDv5 over this node's identity, the id and version>",
//!  "created": "<when>", "modified": "<when>", "created_by_ref": "<this node's identity>",
//!  "object_ref": "<id>", "object_modified": "<version, absent for SCOs>",
//!  "object_type": "<its type>", "reason": "deleted",
//!  "object_marking_refs": [<the version's>], "labels": [<the version's>]}
//! ```
//!
//! A notice carries the recalled version's markings and labels, is decided by the
//! policy as the type it recalls, and is stored with that version's source and path: so
//! it goes exactly where the version could have gone, never back along its path, and
//! names nothing a partner could not have received. Other TAXII clients see a custom
//! object and may ignore it.
//!
//! A node receiving a notice from a partner ([`Node::honour_recalls`]) deletes the
//! versions it names **that came from that partner** (a partner can only withdraw what it
//! sent), which leaves its own tombstones and notices: the recall travels on along every
//! path, push or pull.

use crate::{Node, Result};
use phalanx_stix::{StixObject, Timestamp, ValidObject};
use phalanx_store::{Deleted, ObjectQuery, Prepared, StoredObject, VersionFilter};
use serde_json::{Value, json};

pub use phalanx_policy::provenance::RECALL as TYPE;

/// Namespace of notice ids (UUIDv5 over `identity|id|version`).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x3c9e_5a10_77d2_4f0b_8e64_1b2a_9c0d_e5f3);

/// The notice of a deleted version, made by `signer` (this node's identity) at `now_us`;
/// `None` for notices themselves and for text that is not a JSON object.
pub fn notice(deleted: &Deleted<'_>, signer: Option<&str>, now_us: i64) -> Option<Prepared> {
    notice_for(deleted, signer, now_us, "deleted")
}

/// [`notice`] with a reason: `deleted`, or `superseded` (every version of the object:
/// a later version the recipient may not receive replaced the ones it may).
fn notice_for(
    deleted: &Deleted<'_>,
    signer: Option<&str>,
    now_us: i64,
    reason: &str,
) -> Option<Prepared> {
    if deleted.object_type == TYPE {
        return None;
    }
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(deleted.raw) else {
        return None;
    };
    // The id names the node that recalls too: a partner's notice and this node's own
    // notice of the same version are different objects.
    let name = format!(
        "{}|{}|{}",
        signer.unwrap_or(""),
        deleted.id,
        deleted.version.unwrap_or("")
    );
    let when = Timestamp::from_micros(now_us).format(3);
    let mut n = json!({
        "type": TYPE,
        "spec_version": "2.1",
        "id": format!("{TYPE}--{}", uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes())),
        "created": when,
        "modified": when,
        "object_ref": deleted.id,
        "object_type": deleted.object_type,
        "reason": reason,
    });
    if let Some(v) = deleted.version {
        n["object_modified"] = v.into();
    }
    if let Some(s) = signer {
        n["created_by_ref"] = s.into();
    }
    for k in ["object_marking_refs", "labels"] {
        if let Some(v) = o.get(k) {
            n[k] = v.clone();
        }
    }
    let parsed = StixObject::parse(n.to_string().as_bytes(), 16).ok()?;
    let (valid, _) = phalanx_stix::validate(parsed).ok()?;
    let mut p = Prepared::of(&valid);
    p.facts.path = deleted.path.clone();
    p.facts.about = deleted.about.map(str::to_owned);
    Some(p)
}

/// The later versions among stored rows (id, `date_added`) that did not come from
/// `partner`: the ones whose hiding from it may need a recall ([`Node::superseded`]).
pub(crate) fn later_versions(rows: &[StoredObject], partner: &str) -> Vec<(String, i64)> {
    rows.iter()
        .filter(|o| o.facts.source.as_deref() != Some(partner))
        .filter(|o| crate::federation::is_later_version(&o.raw))
        .map(|o| (o.id.clone(), o.date_added))
        .collect()
}

impl Node {
    /// Of the `later` versions ([`later_versions`]) that egress kept from a partner's
    /// node (those not among `going`, what it let through), those whose object has an
    /// earlier version the partner may receive — and so may hold: each with the earliest
    /// such version. The push feed recalls these objects with `DELETE`; a pull page
    /// carries a `superseded` notice in their place.
    pub(crate) fn superseded(
        &self,
        peer: &crate::Caller,
        c: &phalanx_store::Collection,
        later: Vec<(String, i64)>,
        going: &[StoredObject],
        now_us: i64,
    ) -> Result<Vec<(String, i64, StoredObject)>> {
        if later.is_empty() {
            return Ok(Vec::new());
        }
        let going: std::collections::HashSet<(&str, i64)> = going
            .iter()
            .map(|o| (o.id.as_str(), o.date_added))
            .collect();
        let hidden = later
            .iter()
            .filter(|(id, d)| !going.contains(&(id.as_str(), *d)));
        let mut out: Vec<(String, i64, StoredObject)> = Vec::new();
        for (id, date_added) in hidden {
            if out.iter().any(|(seen, _, _)| seen == id) {
                continue;
            }
            let q = ObjectQuery {
                ids: vec![id.clone()],
                versions: VersionFilter::all(),
                limit: self.config().max_page,
                ..ObjectQuery::new(&c.id)
            };
            let earlier: Vec<StoredObject> = self
                .store()
                .query(&q)?
                .items
                .into_iter()
                .filter(|o| o.date_added < *date_added)
                .collect();
            if let Some(first) = self
                .egress(peer, c, crate::Purpose::Federate, earlier, now_us)?
                .into_iter()
                .next()
            {
                out.push((id.clone(), *date_added, first));
            }
        }
        Ok(out)
    }

    /// The `superseded` notice a pull page carries in place of the hidden later version
    /// (`date_added` of that version, which also dates the notice, so pulling the same
    /// page again gives the same notice).
    pub(crate) fn superseded_notice(
        &self,
        earlier: &StoredObject,
        date_added: i64,
    ) -> Result<Option<StoredObject>> {
        let d = Deleted {
            id: &earlier.id,
            object_type: &earlier.object_type,
            version: None,
            raw: &earlier.raw,
            source: None,
            path: Vec::new(),
            about: earlier.facts.about.as_deref(),
        };
        let signer = self.own_identity()?;
        let Some(p) = notice_for(&d, signer.as_deref(), date_added, "superseded") else {
            return Ok(None);
        };
        let Some(Ok(version)) = p.version.as_deref().map(Timestamp::parse) else {
            return Ok(None);
        };
        Ok(Some(StoredObject {
            id: p.id,
            object_type: p.object_type,
            spec_version: p.spec_version,
            version,
            date_added,
            raw: p.raw.into(),
            facts: p.facts,
        }))
    }

    /// The notice builder for deletions made now by this node.
    pub(crate) fn notices(&self, now_us: i64) -> Result<impl Fn(&Deleted<'_>) -> Option<Prepared>> {
        let signer = self.own_identity()?;
        Ok(move |d: &Deleted<'_>| notice(d, signer.as_deref(), now_us))
    }

    /// Acts on the recall notices among `objects`, received from partner `source` into
    /// `collection`: deletes each named version that came from that partner (with
    /// tombstones and this node's own notices). A notice is a node's statement about its
    /// own deletion and is never passed on, so one that names another registered
    /// partner as its maker (`created_by_ref`) is not acted on (the partner's own
    /// registered identity, an identity no partner is registered with, or none, are).
    /// Returns the versions deleted, and marks
    /// in `drop` the objects of the batch that a later notice of it recalls (they are
    /// not stored: a page can carry a version and, after it, its recall).
    pub(crate) fn honour_recalls(
        &self,
        collection: &str,
        source: &str,
        objects: &[ValidObject],
        drop: &mut [bool],
        now_us: i64,
    ) -> Result<usize> {
        if !objects.iter().any(|o| o.object_type() == TYPE) {
            return Ok(0);
        }
        let policy = self.policy()?;
        let Some(identity) = policy.partner(source).map(|p| p.identity.clone()) else {
            return Ok(0);
        };
        let made_by_sender = |o: &ValidObject| {
            o.str_prop("created_by_ref")
                .is_none_or(|m| m == identity || policy.partner_by_identity(m).is_none())
        };
        let mut deleted = 0;
        let notices = self.notices(now_us)?;
        for (k, o) in objects.iter().enumerate() {
            if o.object_type() != TYPE || !made_by_sender(o) {
                continue;
            }
            let Some(id) = o.str_prop("object_ref") else {
                continue;
            };
            let version = o.str_prop("object_modified");
            for (j, earlier) in objects[..k].iter().enumerate() {
                let named = earlier.id() == id
                    && version.is_none_or(|v| earlier.str_prop("modified") == Some(v));
                if named && let Some(d) = drop.get_mut(j) {
                    *d = true;
                }
            }
            let q = ObjectQuery {
                ids: vec![id.to_owned()],
                versions: VersionFilter::all(),
                limit: self.config().max_page,
                ..ObjectQuery::new(collection)
            };
            for stored in self.store().manifest(&q)?.items {
                let theirs = stored.facts.source.as_deref() == Some(source);
                let named = match version {
                    Some(v) => Timestamp::parse(v).is_ok_and(|t| t == stored.version),
                    None => true,
                };
                if !(theirs && named) {
                    continue;
                }
                // Unversioned objects (SCOs) are recalled whole.
                let only = match version {
                    Some(_) => VersionFilter {
                        all: false,
                        first: false,
                        last: false,
                        exact: vec![stored.version],
                    },
                    None => VersionFilter::all(),
                };
                deleted += self.store().delete_with_notices(
                    collection,
                    id,
                    &only,
                    &[],
                    &notices,
                    now_us,
                )?;
            }
        }
        if deleted > 0 {
            self.changed();
        }
        Ok(deleted)
    }
}
