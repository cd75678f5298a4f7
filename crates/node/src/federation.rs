//! The node's side of federation: feeds (pull from, push to, accept from a partner's
//! node), what a pulled page does to the store, and what a push sends.
//!
//! The workers that talk to peers live in `phalanx-federation`; everything they store or
//! send goes through here, so pulled objects are validated and recorded with their source
//! like any other ingest, and pushed objects pass [`Node::egress`] with purpose
//! `federate` for the receiving partner.

use crate::{Caller, Node, NodeError, Purpose, Result, check_all};
use phalanx_store::{
    Access, Feed, FeedDirection, NewFeed, ObjectQuery, StoredObject, Tombstone, VersionFilter,
};
use phalanx_taxii::taxii_time;
use serde_json::value::RawValue;

/// What storing a pulled page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PulledPage {
    /// New object versions stored.
    pub added: usize,
    /// Already held (identical).
    pub duplicates: usize,
    /// Different content under a stored (id, version): kept as it was.
    pub conflicts: usize,
    /// Not valid STIX 2.1: refused.
    pub invalid: usize,
    /// Stored versions deleted because the partner's recall notices named them.
    pub recalled: usize,
}

/// What the next push of a feed sends.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The objects the partner may receive, in `date_added` order.
    pub objects: Vec<StoredObject>,
    /// The local `date_added` to move the cursor to once they are acknowledged (the
    /// last row considered, sent or not); `None`: nothing new.
    pub cursor: Option<i64>,
    /// Stored rows considered (a full page means more may follow).
    pub scanned: usize,
    /// Objects to recall from the partner (every version): a new version it may not
    /// receive (a marking upgrade, GREEN → RED) of an object whose earlier versions it
    /// may — and so holds.
    pub recalls: Vec<String>,
}

/// How far a push feed's recall for a terminated agreement has come (kept in the
/// store's settings, per feed and agreement version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallProgress {
    key: String,
    value: String,
}

impl Node {
    /// Adds a feed. `remote` must be an http(s) collection URL for pull and push and is
    /// ignored for accept; `local` names a collection (id, alias or title).
    pub fn add_feed(
        &self,
        partner: &str,
        direction: FeedDirection,
        remote: &str,
        local: &str,
        cursor: Option<i64>,
    ) -> Result<Feed> {
        let policy = self.policy()?;
        if policy.partner(partner).is_none() {
            return Err(NodeError::BadRequest(format!(
                "no partner {partner:?} (see `phalanx partner list`)"
            )));
        }
        let c = self
            .store()
            .find_collection(local)
            .map_err(|e| NodeError::BadRequest(format!("local collection: {e}")))?;
        let remote = match direction {
            FeedDirection::Accept => String::new(),
            _ => {
                let ok = (remote.starts_with("https://") || remote.starts_with("http://"))
                    && remote.len() > 8
                    && !remote.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(NodeError::BadRequest(format!(
                        "remote {remote:?}: expected the http(s):// URL of a TAXII collection"
                    )));
                }
                if remote.ends_with('/') {
                    remote.to_owned()
                } else {
                    format!("{remote}/")
                }
            }
        };
        self.store()
            .add_feed(&NewFeed {
                partner: partner.to_owned(),
                direction,
                remote,
                local: c.id,
                cursor,
            })
            .map_err(|e| match e {
                phalanx_store::StoreError::Exists(m) => {
                    NodeError::BadRequest(format!("{m} exists"))
                }
                e => e.into(),
            })
    }

    /// Every feed with its health.
    pub fn feeds(&self) -> Result<Vec<Feed>> {
        Ok(self.store().feeds()?)
    }

    /// Whether any agreement with the partner is in force now: federation with a partner
    /// runs only then (what flows is decided per object by the policy).
    pub fn federates_with(&self, partner: &str, now_us: i64) -> Result<bool> {
        let policy = self.policy()?;
        Ok(policy.partner(partner).is_some()
            && policy
                .agreements()
                .iter()
                .any(|a| a.has_party(partner) && a.in_force(now_us)))
    }

    /// Validates and stores a page pulled for `feed`, recording the partner as the source,
    /// and moves the feed's cursor to `cursor` in the same transaction. Invalid objects
    /// are refused one by one (counted); objects this node produced are not re-ingested.
    pub fn store_pulled(
        &self,
        feed: &Feed,
        raws: &[&RawValue],
        cursor: i64,
        own_identity: Option<&str>,
        now_us: i64,
    ) -> Result<PulledPage> {
        let mut out = PulledPage::default();
        let mut valid = Vec::with_capacity(raws.len());
        for r in check_all(raws, self.config().max_depth, &taxii_time(now_us)) {
            match r {
                Ok(v) => {
                    if own_identity.is_some() && v.str_prop("created_by_ref") == own_identity {
                        continue;
                    }
                    valid.push(v);
                }
                Err(_) => out.invalid += 1,
            }
        }
        // Signatures that do not verify, or objects that differ from what was signed.
        let checked =
            self.check_signatures(&*self.policy()?, &feed.local, Some(&feed.partner), &valid)?;
        out.invalid += checked.refused.len();
        let drop: std::collections::HashSet<usize> =
            checked.refused.into_iter().map(|(i, _)| i).collect();
        let (valid, paths): (Vec<_>, Vec<_>) = valid
            .into_iter()
            .zip(checked.paths)
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, vp)| vp)
            .unzip();
        // Recalls first: if the page is not stored (a crash), it is pulled again and the
        // recalls, already done, change nothing. Versions the page carries before their
        // own recall are not stored.
        let mut recalled = vec![false; valid.len()];
        out.recalled =
            self.honour_recalls(&feed.local, &feed.partner, &valid, &mut recalled, now_us)?;
        let (valid, paths): (Vec<_>, Vec<_>) = valid
            .into_iter()
            .zip(paths)
            .zip(recalled)
            .filter(|(_, gone)| !gone)
            .map(|(vp, _)| vp)
            .unzip();
        let versions = crate::prepare_with_paths(&valid, paths);
        let outcomes = self.store().ingest_feed_page(
            &feed.local,
            &versions,
            Some(&feed.partner),
            now_us,
            feed.id,
            cursor,
        )?;
        self.changed();
        for o in outcomes {
            match o {
                phalanx_store::IngestOutcome::Added { .. } => out.added += 1,
                phalanx_store::IngestOutcome::Duplicate => out.duplicates += 1,
                phalanx_store::IngestOutcome::Conflict { .. } => out.conflicts += 1,
            }
        }
        Ok(out)
    }

    /// The next objects a push feed sends: up to `limit` stored versions after the
    /// feed's cursor, through egress with purpose `federate` for the partner (objects it
    /// may not receive, and objects that came from it, are skipped but the cursor passes
    /// them).
    pub fn outgoing(&self, feed: &Feed, limit: usize, now_us: i64) -> Result<Outgoing> {
        let c = self.store().find_collection(&feed.local)?;
        let q = ObjectQuery {
            after: feed.cursor,
            limit,
            versions: VersionFilter::all(),
            ..ObjectQuery::new(&c.id)
        };
        let page = self.store().query(&q)?;
        let cursor = page.items.last().map(|o| o.date_added);
        let scanned = page.items.len();
        let peer = Caller {
            id: format!("peer:{}", feed.partner),
            name: feed.partner.clone(),
            org: feed.partner.clone(),
            read: Access::All,
            write: Access::None,
            admin: false,
        };
        // Versions the partner may not receive, of objects that had earlier versions.
        let later = crate::recall::later_versions(&page.items, &feed.partner);
        let objects = self.egress(&peer, &c, Purpose::Federate, page.items, now_us)?;
        let recalls: Vec<String> = self
            .superseded(&peer, &c, later, &objects, now_us)?
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        Ok(Outgoing {
            objects,
            cursor,
            scanned,
            recalls,
        })
    }

    /// The next deletions a push feed recalls from its partner: tombstones after the
    /// feed's recall cursor whose version the policy would let go to the partner (so a
    /// recall never names an object the partner could not have received) and that did not
    /// come from it. Returns them and the `seq` to move the cursor to once done.
    pub fn outgoing_recalls(
        &self,
        feed: &Feed,
        limit: usize,
        now_us: i64,
    ) -> Result<(Vec<Tombstone>, Option<i64>)> {
        let all = self
            .store()
            .tombstones(&feed.local, feed.recalled_up_to, limit)?;
        let last = all.last().map(|t| t.seq);
        let policy = self.policy()?;
        let to = policy.recipient(&feed.partner);
        let recalls = all
            .into_iter()
            .filter(|t| t.facts.source.as_deref() != Some(feed.partner.as_str()))
            .filter(|t| {
                let subject = phalanx_policy::Subject {
                    object_type: &t.object_type,
                    collection: &feed.local,
                    facts: &t.facts,
                };
                policy
                    .decide(to, subject, phalanx_policy::Purpose::Federate, now_us)
                    .allows()
            })
            .collect();
        Ok((recalls, last))
    }

    /// The next recalls a push feed owes for agreements with its partner that were
    /// terminated: every object version it passed (up to its cursor) that the agreement,
    /// as it stood before termination, let go to the partner and that the policy no
    /// longer lets go. Due `retention_days` after the termination (none: at once).
    /// Returns `None` when nothing is due; else the object ids (each recalled with every
    /// version) and the progress to record with [`Node::termination_recalled`] once
    /// they are recalled.
    pub fn termination_recalls(
        &self,
        feed: &Feed,
        limit: usize,
        now_us: i64,
    ) -> Result<Option<(Vec<String>, RecallProgress)>> {
        let Some(pushed_up_to) = feed.cursor else {
            return Ok(None);
        };
        let policy = self.policy()?;
        for a in policy.agreements() {
            if a.status != phalanx_policy::AgreementStatus::Terminated
                || !a.has_party(&feed.partner)
            {
                continue;
            }
            let key = format!("recall.{}.{}.v{}", feed.id, a.id, a.version);
            let done_up_to: i64 = match self.store().setting(&key)? {
                Some(v) if v == "done" => continue,
                Some(v) => v.parse().unwrap_or(0),
                None => 0,
            };
            let history = self.agreement_history(&a.id)?;
            let Some(terminated) = history.iter().find(|v| v.agreement.version == a.version) else {
                continue;
            };
            let retention = i64::from(a.retention_days.unwrap_or(0)) * 86_400_000_000;
            if now_us < terminated.created_us + retention {
                continue;
            }
            // The agreement as it last stood in force, and the moment before it ended.
            let Some(before) = history
                .iter()
                .rev()
                .find(|v| v.agreement.status == phalanx_policy::AgreementStatus::Active)
            else {
                self.store().put_setting(&key, "done")?;
                continue;
            };
            let at = terminated.created_us - 1;
            let agreements: Vec<phalanx_policy::Agreement> = policy
                .agreements()
                .iter()
                .map(|x| {
                    if x.id == a.id {
                        before.agreement.clone()
                    } else {
                        x.clone()
                    }
                })
                .collect();
            let then = phalanx_policy::Policy::new(
                &self.own_org,
                policy.defaults(),
                self.store().partners()?,
                agreements,
            );
            let q = ObjectQuery {
                after: Some(done_up_to),
                limit,
                versions: VersionFilter::all(),
                ..ObjectQuery::new(&feed.local)
            };
            let page = self.store().manifest(&q)?;
            let rows: Vec<&StoredObject> = page
                .items
                .iter()
                .filter(|o| o.date_added <= pushed_up_to)
                .collect();
            let to_then = then.recipient(&feed.partner);
            let to_now = policy.recipient(&feed.partner);
            let mut ids: Vec<String> = Vec::new();
            for o in &rows {
                if o.facts.source.as_deref() == Some(feed.partner.as_str()) {
                    continue;
                }
                let subject = phalanx_policy::Subject {
                    object_type: &o.object_type,
                    collection: &feed.local,
                    facts: &o.facts,
                };
                let fed = phalanx_policy::Purpose::Federate;
                if then.decide(to_then, subject, fed, at).allows()
                    && !policy.decide(to_now, subject, fed, now_us).allows()
                    && !ids.contains(&o.id)
                {
                    ids.push(o.id.clone());
                }
            }
            let finished = !page.more || rows.len() < page.items.len();
            let progress = RecallProgress {
                key,
                value: if finished {
                    "done".to_owned()
                } else {
                    rows.last().map_or(done_up_to, |o| o.date_added).to_string()
                },
            };
            return Ok(Some((ids, progress)));
        }
        Ok(None)
    }

    /// Records that the recalls [`Node::termination_recalls`] returned were sent.
    pub fn termination_recalled(&self, progress: &RecallProgress) -> Result<()> {
        Ok(self.store().put_setting(&progress.key, &progress.value)?)
    }

    /// How far a feed is behind, in µs: for a push feed, the age of the oldest stored
    /// version it has not passed yet (0 when up to date); for a pull feed, the time since
    /// its last successful poll (what it has not seen can be at most that old); `None`
    /// before the first success.
    pub fn feed_lag(&self, feed: &Feed, now_us: i64) -> Result<Option<i64>> {
        match feed.direction {
            FeedDirection::Push => {
                let q = ObjectQuery {
                    after: feed.cursor,
                    limit: 1,
                    versions: VersionFilter::all(),
                    ..ObjectQuery::new(&feed.local)
                };
                Ok(Some(
                    self.store()
                        .manifest(&q)?
                        .items
                        .first()
                        .map_or(0, |o| (now_us - o.date_added).max(0)),
                ))
            }
            FeedDirection::Pull => Ok(feed.last_ok_us.map(|t| (now_us - t).max(0))),
            FeedDirection::Accept => Ok(None),
        }
    }
}

/// Whether an object's JSON is a later version (`modified` after `created`): only those
/// can have earlier versions a partner holds.
pub(crate) fn is_later_version(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Times<'a> {
        #[serde(borrow)]
        created: Option<&'a str>,
        #[serde(borrow)]
        modified: Option<&'a str>,
    }
    match serde_json::from_str::<Times<'_>>(raw) {
        Ok(Times {
            created: Some(c),
            modified: Some(m),
        }) => c != m,
        _ => false,
    }
}
