//! Detection on the node: the node's active indicators, matched against telemetry with
//! `phalanx-detect`, and the sightings that come of it.
//!
//! - [`Node::active_indicators`]: the latest version of every STIX-pattern indicator in
//!   the node's collections (the index itself drops revoked, expired and not yet valid
//!   ones, and reports patterns it cannot run).
//! - [`Node::detector`]: an index built from them, cached and rebuilt when the
//!   collections change (their object count or newest `date_added` moves), used by the
//!   HTTP ingest endpoint and `phalanx watch`.
//! - [`Node::record_sightings`]: sightings from a hunt, merged into what the `sightings`
//!   collection holds (one sighting per indicator and observer: counts add up,
//!   first/last seen widen, a new version each time), signed off by this node's identity
//!   and carrying the indicator's markings — so the sharing policy sends a sighting
//!   exactly where the indicator could go, back to its producer included.

use crate::{Node, NodeError, Result};
use phalanx_detect::{Index, IndexConfig};
use phalanx_stix::Timestamp;
use phalanx_store::{NewCollection, ObjectQuery, VersionFilter};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The collection sightings are stored in (created on first use).
pub const SIGHTINGS: &str = "sightings";

/// Indicators read from the store per query.
const PAGE: usize = 5000;

/// The node's index and how far it has read each collection.
pub(crate) struct DetectorState {
    index: Arc<RwLock<Index>>,
    report: phalanx_detect::BuildReport,
    /// Collection id → (last `date_added` read, last tombstone `seq` read).
    cursors: HashMap<String, (Option<i64>, Option<i64>)>,
}

/// Cached detector state of a node.
#[derive(Default)]
pub(crate) struct Detection {
    state: Mutex<Option<DetectorState>>,
}

/// What [`Node::detector`] gives: the index (read-lock it to match) and what building it
/// refused.
pub struct Detector {
    /// The index of active indicators.
    pub index: Arc<RwLock<Index>>,
    /// Indicators it could not use, with why (from the first build).
    pub refused: Vec<phalanx_detect::IndicatorError>,
}

impl Node {
    /// The latest version of every indicator with a STIX pattern, as JSON text, from
    /// `collections` (ids, aliases or titles; empty: every collection except
    /// [`SIGHTINGS`]).
    pub fn active_indicators(&self, collections: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for c in self.indicator_collections(collections)? {
            let q = ObjectQuery {
                types: vec!["indicator".into()],
                versions: last()?,
                limit: PAGE,
                ..ObjectQuery::new(&c)
            };
            self.each_page(q, &mut |o| out.push(o.raw))?;
        }
        Ok(out)
    }

    fn indicator_collections(&self, names: &[String]) -> Result<Vec<String>> {
        Ok(if names.is_empty() {
            self.store()
                .collections(None)?
                .into_iter()
                .filter(|c| c.alias.as_deref() != Some(SIGHTINGS))
                .map(|c| c.id)
                .collect()
        } else {
            names
                .iter()
                .map(|c| self.store().find_collection(c).map(|c| c.id))
                .collect::<std::result::Result<Vec<_>, _>>()?
        })
    }

    /// Every stored row a query selects, page by page (`after` moves).
    fn each_page(
        &self,
        mut q: ObjectQuery,
        f: &mut dyn FnMut(phalanx_store::StoredObject),
    ) -> Result<Option<i64>> {
        let mut last_seen = q.after;
        loop {
            let page = self.store().query(&q)?;
            let last = page.items.last().map(|o| o.date_added);
            for o in page.items {
                f(o);
            }
            if last.is_some() {
                last_seen = last;
            }
            match (page.more, last) {
                (true, Some(l)) => q.after = Some(l),
                _ => return Ok(last_seen),
            }
        }
    }

    /// The index of the node's active indicators: built on first use, then kept up to
    /// date incrementally — indicator versions added since (a newer version replaces,
    /// a revoked one removes), deletions (tombstones), expiry as of `now`.
    pub fn detector(&self, now: Timestamp) -> Result<Detector> {
        let mut state = self
            .detection
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let collections = self.indicator_collections(&[])?;
        if state.is_none() {
            // Updates start after the newest row (any type) and tombstone of today; read
            // them before the indicators, so nothing falls between.
            let mut cursors = HashMap::new();
            for c in &collections {
                let newest = self.store().last_added(c)?;
                let tomb = self.store().last_tombstone(c)?;
                cursors.insert(c.clone(), (newest, tomb));
            }
            let texts = self.active_indicators(&collections)?;
            let (index, report) = Index::build(texts, now, IndexConfig::default());
            let built = DetectorState {
                index: Arc::new(RwLock::new(index)),
                report,
                cursors,
            };
            let out = Detector {
                index: built.index.clone(),
                refused: built.report.errors.clone(),
            };
            *state = Some(built);
            return Ok(out);
        }
        let s = state.as_mut().expect("checked above");
        let mut index = s.index.write().unwrap_or_else(|e| e.into_inner());
        for c in &collections {
            let (after, tomb) = s.cursors.get(c).copied().unwrap_or((None, None));
            let q = ObjectQuery {
                after,
                types: vec!["indicator".into()],
                versions: VersionFilter::all(),
                limit: PAGE,
                ..ObjectQuery::new(c)
            };
            let newest = self.each_page(q, &mut |o| {
                // Refusals were reported when the index was built; a later unusable
                // version simply does not enter it.
                let _ = index.insert_json(o.raw.as_bytes(), now);
            })?;
            let tombs = self.store().tombstones(c, tomb, usize::MAX)?;
            let tomb = tombs.last().map(|t| t.seq).or(tomb);
            for t in tombs.iter().filter(|t| t.object_type == "indicator") {
                index.remove(&t.id);
            }
            s.cursors.insert(c.clone(), (newest, tomb));
        }
        index.expire(now);
        drop(index);
        Ok(Detector {
            index: s.index.clone(),
            refused: s.report.errors.clone(),
        })
    }

    /// Stores sightings (as `phalanx_detect::Aggregator::sightings` makes them) in the
    /// [`SIGHTINGS`] collection, merged with the stored version of each; returns the
    /// stored sightings.
    pub fn record_sightings(&self, sightings: Vec<Value>, now_us: i64) -> Result<Vec<Value>> {
        if sightings.is_empty() {
            return Ok(Vec::new());
        }
        let c = match self.store().find_collection(SIGHTINGS) {
            Ok(c) => c,
            Err(_) => {
                let mut n = NewCollection::named(SIGHTINGS);
                n.title = "Sightings".into();
                n.description =
                    Some("What this node's telemetry matched: one sighting per indicator".into());
                self.store()
                    .create_collection(crate::DEFAULT_API_ROOT, &n)?
            }
        };
        let own = self.own_identity()?;
        let policy = self.policy()?;
        let mut merged = Vec::with_capacity(sightings.len());
        let mut about: Vec<Option<String>> = Vec::with_capacity(sightings.len());
        for mut s in sightings {
            let Some(id) = s["id"].as_str().map(str::to_owned) else {
                continue;
            };
            if let Some(me) = &own {
                s["created_by_ref"] = me.clone().into();
                s["where_sighted_refs"] = serde_json::json!([me]);
            }
            let indicator = s["sighting_of_ref"].as_str().unwrap_or_default().to_owned();
            let (markings, facts) = self.indicator_facts(&indicator)?;
            if let Some(m) = markings {
                s["object_marking_refs"] = m;
            }
            // A partner's indicator: the sighting reports on its data and goes back to
            // it alone — to the partner that produced it, else the one it came from.
            let producer = facts
                .as_ref()
                .and_then(|f| f.producer.as_deref())
                .filter(|p| own.as_deref() != Some(*p))
                .and_then(|p| policy.partner_by_identity(p))
                .map(|p| p.id.clone());
            about.push(producer.or_else(|| facts.and_then(|f| f.source)));
            let q = ObjectQuery {
                ids: vec![id],
                versions: last()?,
                ..ObjectQuery::new(&c.id)
            };
            if let Some(old) = self.store().query(&q)?.items.into_iter().next()
                && let Ok(old) = serde_json::from_str::<Value>(&old.raw)
            {
                merge(&mut s, &old);
            }
            merged.push(s);
        }
        let valid = merged
            .iter()
            .map(|s| {
                let o = phalanx_stix::StixObject::parse(s.to_string().as_bytes(), 64)
                    .map_err(|e| NodeError::Internal(format!("sighting: {e}")))?;
                phalanx_stix::validate(o)
                    .map(|(v, _)| v)
                    .map_err(|(_, r)| NodeError::Internal(format!("sighting: {r:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let versions: Vec<phalanx_store::Prepared> = valid
            .iter()
            .zip(&about)
            .map(|(v, about)| {
                let mut p = phalanx_store::Prepared::of(v);
                p.facts.about = about.clone();
                p
            })
            .collect();
        self.store()
            .ingest_prepared(&c.id, &versions, None, now_us)?;
        self.changed();
        let mut partners: Vec<String> = about.into_iter().flatten().collect();
        partners.sort();
        partners.dedup();
        self.sightings_feeds(&c.id, &partners)?;
        Ok(merged)
    }

    /// Sightings go back to the partner whose indicator they report on, by federation
    /// when it is there: a partner this node pushes to gets a push feed of the sightings
    /// collection to the same remote collection (once; `peer remove` ends it). The
    /// policy sends it only the sightings about its own indicators, as its agreements
    /// allow.
    fn sightings_feeds(&self, sightings: &str, partners: &[String]) -> Result<()> {
        if partners.is_empty() {
            return Ok(());
        }
        let feeds = self.store().feeds()?;
        for p in partners {
            let push = |f: &&phalanx_store::Feed| {
                f.partner == *p && f.direction == phalanx_store::FeedDirection::Push
            };
            if feeds.iter().filter(push).any(|f| f.local == sightings) {
                continue;
            }
            let Some(remote) = feeds.iter().find(push).map(|f| f.remote.clone()) else {
                continue;
            };
            match self.add_feed(
                p,
                phalanx_store::FeedDirection::Push,
                &remote,
                sightings,
                None,
            ) {
                Ok(_) | Err(NodeError::BadRequest(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The markings (`object_marking_refs`) and sharing facts of an indicator's latest
    /// stored version (any collection).
    fn indicator_facts(
        &self,
        indicator: &str,
    ) -> Result<(Option<Value>, Option<phalanx_policy::Facts>)> {
        for c in self.store().collections(None)? {
            let q = ObjectQuery {
                ids: vec![indicator.to_owned()],
                versions: last()?,
                ..ObjectQuery::new(&c.id)
            };
            if let Some(o) = self.store().query(&q)?.items.into_iter().next() {
                let v: Value = serde_json::from_str(&o.raw).unwrap_or_default();
                return Ok((v.get("object_marking_refs").cloned(), Some(o.facts)));
            }
        }
        Ok((None, None))
    }
}

/// A new sighting merged with the stored one: counts add up, seen times widen, the
/// creation stays, and `modified` moves past the stored version.
fn merge(new: &mut Value, old: &Value) {
    let count = new["count"].as_u64().unwrap_or(0) + old["count"].as_u64().unwrap_or(0);
    new["count"] = count.min(999_999_999).into();
    let time = |v: &Value, k: &str| v[k].as_str().and_then(|t| Timestamp::parse(t).ok());
    if let (Some(a), Some(b)) = (time(new, "first_seen"), time(old, "first_seen")) {
        new["first_seen"] = a.min(b).format(6).into();
    }
    if let (Some(a), Some(b)) = (time(new, "last_seen"), time(old, "last_seen")) {
        new["last_seen"] = a.max(b).format(6).into();
    }
    if let Some(c) = old.get("created") {
        new["created"] = c.clone();
    }
    if let (Some(m), Some(o)) = (time(new, "modified"), time(old, "modified"))
        && m <= o
    {
        new["modified"] = Timestamp::from_micros(o.as_micros() + 1000)
            .format(3)
            .into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merging_adds_counts_and_widens_times() {
        let old = json!({"count": 3, "first_seen": "2026-01-02T00:00:00.000000Z",
            "last_seen": "2026-01-03T00:00:00.000000Z", "created": "2026-01-02T00:00:00.000Z",
            "modified": "2026-01-05T00:00:00.000Z"});
        let mut new = json!({"count": 2, "first_seen": "2026-01-01T00:00:00.000000Z",
            "last_seen": "2026-01-02T12:00:00.000000Z", "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-04T00:00:00.000Z"});
        merge(&mut new, &old);
        assert_eq!(new["count"], 5);
        assert_eq!(new["first_seen"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(new["last_seen"], "2026-01-03T00:00:00.000000Z");
        assert_eq!(new["created"], "2026-01-02T00:00:00.000Z");
        assert_eq!(new["modified"], "2026-01-05T00:00:00.001Z");
    }
}

fn last() -> Result<VersionFilter> {
    VersionFilter::parse("last").map_err(|e| NodeError::Internal(e.to_string()))
}

/// A telemetry format the node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryFormat {
    /// Zeek JSON logs (any log type).
    Zeek,
    /// Suricata eve.json.
    Suricata,
    /// STIX observed-data (bundles or objects, one per line).
    Stix,
    /// Generic JSON lines with a declared field mapping.
    Json,
}

impl TelemetryFormat {
    /// Parses `zeek`, `suricata`, `stix` or `json`.
    pub fn parse(s: &str) -> Option<TelemetryFormat> {
        Some(match s {
            "zeek" => TelemetryFormat::Zeek,
            "suricata" | "eve" => TelemetryFormat::Suricata,
            "stix" => TelemetryFormat::Stix,
            "json" => TelemetryFormat::Json,
            _ => return None,
        })
    }

    /// The format of telemetry whose first line is `line`, when it tells: Zeek
    /// (`_path`/`@stream`, `id.orig_h`/`id_orig_h`), Suricata (`event_type`), STIX
    /// (`observed-data` or a bundle).
    pub fn sniff(line: &[u8]) -> Option<TelemetryFormat> {
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        if has(b"\"event_type\"") {
            Some(TelemetryFormat::Suricata)
        } else if has(b"\"@stream\"")
            || has(b"\"_path\"")
            || has(b"\"id.orig_h\"")
            || has(b"\"id_orig_h\"")
        {
            Some(TelemetryFormat::Zeek)
        } else if has(b"\"observed-data\"") || has(b"\"bundle\"") {
            Some(TelemetryFormat::Stix)
        } else {
            None
        }
    }

    /// The adapter for this format; `map` is the field mapping of `json`
    /// (`path=kind,...`, see `phalanx_detect::GenericJson`).
    pub fn adapter(
        self,
        map: Option<&str>,
    ) -> std::result::Result<Box<dyn phalanx_detect::Adapter>, String> {
        Ok(match (self, map) {
            (TelemetryFormat::Zeek, None) => Box::new(phalanx_detect::Zeek),
            (TelemetryFormat::Suricata, None) => Box::new(phalanx_detect::Suricata),
            (TelemetryFormat::Stix, None) => {
                Box::new(phalanx_detect::StixObserved { max_depth: 64 })
            }
            (TelemetryFormat::Json, Some(m)) => Box::new(
                phalanx_detect::GenericJson::from_spec(m)
                    .map_err(|e| format!("field mapping: {e}"))?,
            ),
            (TelemetryFormat::Json, None) => {
                return Err("format json needs a field mapping (path=kind,...)".into());
            }
            (_, Some(_)) => return Err("a field mapping goes with format json only".into()),
        })
    }
}

/// What matching a batch of telemetry lines found.
#[derive(Debug, Clone)]
pub struct LinesReport {
    /// Line counters and a sample of malformed lines.
    pub stats: phalanx_detect::LineStats,
    /// The sightings stored (merged with earlier ones).
    pub sightings: Vec<Value>,
}

impl Node {
    /// Matches telemetry lines against the node's active indicators and stores the
    /// sightings (the HTTP ingest endpoint). Only the node's own users may: what the
    /// telemetry shows is this organisation's.
    pub fn detect_lines(
        &self,
        caller: &crate::Caller,
        format: TelemetryFormat,
        map: Option<&str>,
        body: &[u8],
        now_us: i64,
    ) -> Result<LinesReport> {
        let policy = self.policy()?;
        if self.recipient(&policy, caller) != phalanx_policy::Recipient::Local {
            return Err(NodeError::Forbidden(
                "telemetry is matched for the node's own organisation only".into(),
            ));
        }
        let adapter = format.adapter(map).map_err(NodeError::BadRequest)?;
        let now = Timestamp::from_micros(now_us);
        let detector = self.detector(now)?;
        let observer = self
            .own_identity()?
            .ok_or_else(|| NodeError::Internal("the node has no STIX identity yet".into()))?;
        let mut hunt = phalanx_detect::Hunt::new(&*adapter, phalanx_detect::HuntConfig::default());
        let mut agg = phalanx_detect::Aggregator::new();
        {
            let index = detector.index.read().unwrap_or_else(|e| e.into_inner());
            hunt.feed(&index, body, now, &mut |hits| agg.add(hits, &observer));
        }
        let sightings = self.record_sightings(agg.sightings(now), now_us)?;
        Ok(LinesReport {
            stats: hunt.stats().clone(),
            sightings,
        })
    }
}
