//! # phalanx-stix
//!
//! The STIX 2.1 wire model of Phalanx: parsing, validation, canonical JSON, identifiers,
//! versions and data markings. It does no IO and knows nothing about HTTP, storage or
//! policy; every untrusted STIX byte in Phalanx becomes a typed value here.
//!
//! Main types:
//! - [`StixObject`]: one object, its original JSON text kept verbatim (so custom
//!   properties, custom types and extensions survive), with typed access to the common
//!   properties ([`StixObject::id`], [`StixObject::version`], ...).
//! - [`stream::Splitter`]: a sans-IO streaming splitter for bundles, TAXII envelopes and
//!   JSON lines of any size.
//! - [`validate()`] → [`ValidObject`] or a [`Report`] of [`Issue`]s with object id, JSON
//!   path and code.
//! - [`json::canonical`]: RFC 8785 canonical JSON; [`id::deterministic_sco_id`];
//!   [`markings`]: TLP 1.0/2.0, PAP, effective markings; [`Timestamp`].
//!
//! ```
//! use phalanx_stix::{StixObject, validate};
//!
//! let text = br#"{"type":"indicator","spec_version":"2.1",
//!   "id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
//!   "created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z",
//!   "pattern":"[ipv4-addr:value = '198.51.100.3']","pattern_type":"stix",
//!   "valid_from":"2016-01-01T00:00:00Z","x_source":"sensor-7"}"#;
//! let object = StixObject::parse(text, 64).unwrap();
//! let (valid, warnings) = validate(object).unwrap();
//! assert_eq!(valid.raw().as_bytes(), text); // nothing lost
//! assert_eq!(warnings[0].code, "custom-property");
//! ```

pub mod id;
pub mod json;
pub mod markings;
mod object;
pub mod stream;
mod time;
mod validate;

pub use id::ObjectClass;
pub use object::{ParseError, StixObject};
pub use time::{Timestamp, TimestampError};
pub use validate::{Issue, Report, Severity, ValidObject, check, resolve_selector, validate};

/// The media type of STIX 2.1 content.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
