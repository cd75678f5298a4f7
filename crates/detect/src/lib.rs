//! # phalanx-detect
//!
//! The detection engine: partners' STIX indicators are compiled into an [`Index`];
//! telemetry lines (Suricata eve.json, Zeek JSON, generic JSON lines, STIX
//! observed-data) are turned into observables by an [`Adapter`]; the index finds
//! candidate indicators and the full STIX pattern evaluator (`phalanx-pattern`) confirms
//! them; hits aggregate per (indicator, observer) into STIX `sighting` objects
//! ([`Aggregator`]). No async and no clock: times are arguments; the only IO is
//! [`Hunt::read`] over a `BufRead` the caller opens.
//!
//! Main types:
//! - [`Index`] ([`Index::build`], [`Index::insert_json`], [`Index::remove`],
//!   [`Index::expire`], [`Index::match_record`]) with [`IndexStats`], [`BuildReport`]
//!   and [`IndicatorError`]; the index module documents its structures and how to
//!   share it between a matcher and an updater.
//! - Adapters: [`Zeek`], [`Suricata`], [`GenericJson`] (declared field mapping),
//!   [`StixObserved`]; all produce a [`Record`] of [`Observable`]s.
//! - [`Hunt`]: lines in, hits out, malformed lines counted with a sample
//!   ([`LineStats`]).
//! - [`Aggregator`] → [`Summary`] rows and STIX sightings ([`sighting_id`] is
//!   deterministic).
//! - [`mod@bench`]: the throughput benchmark (`phalanx bench detect`, or
//!   `cargo run --release -p phalanx-detect --example bench`).
//!
//! ```
//! use phalanx_detect::{Aggregator, Hunt, HuntConfig, Index, IndexConfig, Zeek};
//! use phalanx_stix::Timestamp;
//!
//! let now = Timestamp::parse("2024-01-01T00:00:00Z")?;
//! let indicators: [&[u8]; 2] = [
//!     br#"{"type":"indicator","spec_version":"2.1",
//!          "id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
//!          "created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z",
//!          "pattern":"[ipv4-addr:value ISSUBSET '192.168.0.0/16']","pattern_type":"stix",
//!          "valid_from":"2020-01-01T00:00:00Z"}"#,
//!     br#"{"type":"indicator","id":"indicator--0c1b2a3d-17d4-4cbf-938f-98ee46b3cd3f",
//!          "pattern":"[domain-name:value = 'evil.example' AND domain-name:value LIKE 'e%']",
//!          "pattern_type":"stix","valid_from":"2020-01-01T00:00:00Z"}"#,
//! ];
//! let (index, report) = Index::build(indicators, now, IndexConfig::default());
//! assert!(report.errors.is_empty());
//! assert_eq!((index.stats().simple, index.stats().confirmed), (1, 1));
//!
//! let log = concat!(
//!     r#"{"ts":1588207244.7,"id_orig_h":"10.0.1.6","id_resp_h":"192.168.0.4","query":"EVIL.example"}"#, "\n",
//!     "not json\n",
//!     r#"{"ts":1588207245.7,"id_orig_h":"10.0.1.6","id_resp_h":"10.0.0.4"}"#, "\n",
//! );
//! let mut hunt = Hunt::new(&Zeek, HuntConfig::default());
//! let mut agg = Aggregator::new();
//! let me = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01";
//! hunt.feed(&index, log.as_bytes(), now, &mut |hits| agg.add(hits, me));
//! assert_eq!(hunt.stats().malformed, 1); // counted, skipped, sampled
//! assert_eq!(hunt.stats().error_sample[0].line, 2);
//! let sightings = agg.sightings(now);
//! assert_eq!(sightings.len(), 2);
//! assert_eq!(sightings[0]["count"], 1);
//! assert_eq!(sightings[0]["where_sighted_refs"][0], me);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//!
//! A record matches an indicator exactly when the STIX evaluator says its pattern
//! matches the record seen as one observed-data object ([`Record::to_stix`]); the index
//! only makes this fast. Consequences, deliberately kept:
//! - comparisons are exact, as in STIX: `[domain-name:value = 'evil.example']` does not
//!   match `www.evil.example` (write `LIKE '%.evil.example'`, which the index answers
//!   with a parent-domain lookup); adapters normalise what they observe (domain names
//!   and hashes lower-cased, URLs built as `http://host/path` with a lower-case host),
//!   never the indicators;
//! - patterns over several observations (`AND`, `FOLLOWEDBY`, `REPEATS` between `[..]`)
//!   cannot match one record and are not correlated across records here.

#![warn(missing_docs)]

pub mod adapter;
pub mod bench;
mod emit;
mod error;
mod hunt;
pub mod index;
mod observable;
mod plan;
pub mod scan;
mod sighting;

pub use adapter::{
    Adapter, AdapterError, GenericJson, MappingError, StixObserved, StixRecord, Suricata, Zeek,
};
pub use error::{IndicatorError, IndicatorErrorKind};
pub use hunt::{Hunt, HuntConfig, LineError, LineStats};
pub use index::{
    BuildReport, ExpireReport, Hit, Index, IndexConfig, IndexStats, IndicatorRef, Inserted,
    MatchStats,
};
pub use observable::{Kind, Observable, Record};
pub use sighting::{Aggregator, SIGHTING_NAMESPACE, Summary, sighting, sighting_id};
