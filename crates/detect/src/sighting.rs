//! Sighting aggregation: hits per (indicator, observer) become STIX 2.1 `sighting`
//! objects.
//!
//! A sighting's id is a UUIDv5 over the indicator id and the observer identity id
//! ([`sighting_id`]), so running the same hunt again produces the same id: a store
//! keeps one sighting per (indicator, observer) and the newer `modified` supersedes.

use std::collections::HashMap;

use phalanx_stix::Timestamp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::index::{Hit, IndicatorRef};

/// Namespace of the deterministic sighting ids (a fixed, random UUID).
pub const SIGHTING_NAMESPACE: Uuid = Uuid::from_u128(0x5f3c_9a1e_7b42_4d0e_9c61_2a8f_d4e7_b310);

/// STIX caps `count` at 999,999,999.
const MAX_COUNT: u64 = 999_999_999;

/// The deterministic id of the sighting of `indicator_id` by `observer_id`.
pub fn sighting_id(indicator_id: &str, observer_id: &str) -> String {
    let name = format!("{indicator_id}\n{observer_id}");
    format!(
        "sighting--{}",
        Uuid::new_v5(&SIGHTING_NAMESPACE, name.as_bytes())
    )
}

/// One aggregated row: what a summary table or a sighting shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The indicator.
    pub indicator: IndicatorRef,
    /// The observer identity id.
    pub observer: String,
    /// Earliest hit.
    pub first_seen: Timestamp,
    /// Latest hit.
    pub last_seen: Timestamp,
    /// Number of hits (observations).
    pub count: u64,
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    first: Timestamp,
    last: Timestamp,
    count: u64,
}

/// Aggregates hits per (indicator, observer).
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    observers: Vec<String>,
    rows: HashMap<(IndicatorRef, u32), Agg>,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    fn observer_index(&mut self, observer: &str) -> u32 {
        match self.observers.iter().position(|o| o == observer) {
            Some(i) => i as u32,
            None => {
                self.observers.push(observer.to_owned());
                (self.observers.len() - 1) as u32
            }
        }
    }

    /// Adds hits seen by `observer` (an identity id, e.g. this organisation's).
    pub fn add(&mut self, hits: &[Hit], observer: &str) {
        if hits.is_empty() {
            return;
        }
        let o = self.observer_index(observer);
        for h in hits {
            let e = self.rows.entry((h.indicator, o)).or_insert(Agg {
                first: h.time,
                last: h.time,
                count: 0,
            });
            e.first = e.first.min(h.time);
            e.last = e.last.max(h.time);
            e.count = e.count.saturating_add(h.count);
        }
    }

    /// Whether nothing was aggregated.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, most hits first (then by indicator id and observer).
    pub fn summary(&self) -> Vec<Summary> {
        let mut v: Vec<Summary> = self
            .rows
            .iter()
            .map(|(&(indicator, o), a)| Summary {
                indicator,
                observer: self.observers[o as usize].clone(),
                first_seen: a.first,
                last_seen: a.last,
                count: a.count,
            })
            .collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.indicator.cmp(&b.indicator))
                .then(a.observer.cmp(&b.observer))
        });
        v
    }

    /// The STIX 2.1 sightings, in [`Aggregator::summary`] order. `modified` is `now`;
    /// `created` is the first hit (or `now` if that is later), so it stays the same when
    /// a hunt over the same data runs again.
    pub fn sightings(&self, now: Timestamp) -> Vec<Value> {
        self.summary().iter().map(|s| sighting(s, now)).collect()
    }
}

/// The STIX sighting for one aggregated row.
pub fn sighting(s: &Summary, now: Timestamp) -> Value {
    let ind = s.indicator.id();
    let created = s.first_seen.min(now);
    json!({
        "type": "sighting",
        "spec_version": "2.1",
        "id": sighting_id(&ind, &s.observer),
        "created": created.format(3),
        "modified": now.format(3),
        "created_by_ref": s.observer,
        "sighting_of_ref": ind,
        "first_seen": s.first_seen.format(6),
        "last_seen": s.last_seen.format(6),
        "count": s.count.min(MAX_COUNT),
        "where_sighted_refs": [s.observer],
    })
}
