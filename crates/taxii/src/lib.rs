//! # phalanx-taxii
//!
//! TAXII 2.1 on the wire: the resources ([`Discovery`], [`ApiRootInfo`],
//! [`CollectionInfo`], [`Manifest`], [`Versions`], [`Status`], [`TaxiiError`]), media
//! types and content negotiation ([`media`]), and the request filters of the
//! objects/manifest/versions endpoints ([`query`]). With the cargo feature `client`,
//! [`client`] is an async TAXII 2.1 client for any TAXII 2.1 server.
//!
//! Rules kept here for every user of the crate (STANDARDS.md §1):
//! - empty lists are never emitted: the key is omitted instead (`{}` is an empty page);
//! - TAXII timestamps (`date_added`, `request_timestamp`, the `X-TAXII-Date-Added-*`
//!   headers) carry exactly six fraction digits ([`taxii_time`]), and are parsed leniently;
//! - `http_status` in an error body is a string.

#[cfg(feature = "client")]
pub mod client;
pub mod media;
pub mod query;

pub use query::{Filters, QueryError, VersionFilter};

use phalanx_stix::Timestamp;
use serde::{Deserialize, Serialize};

/// Formats microseconds since the epoch as a TAXII timestamp (six fraction digits).
pub fn taxii_time(us: i64) -> String {
    Timestamp::from_micros(us).format(6)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The server's discovery resource (`GET /taxii2/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_roots: Vec<String>,
}

/// An API root resource (`GET {api-root}/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRootInfo {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub versions: Vec<String>,
    pub max_content_length: u64,
}

/// A collection resource, as seen by the caller (`can_read`/`can_write` are the
/// caller's rights).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub can_read: bool,
    pub can_write: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_types: Vec<String>,
}

/// The collections resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collections {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionInfo>,
}

/// One manifest record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub id: String,
    pub date_added: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// The manifest resource. TAXII 2.1 defines no `next` here although the endpoint takes
/// one; Phalanx sends it whenever `more` is true, because clients that page by `next`
/// (taxii2-client's `as_pages`) would otherwise request the first page forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ManifestRecord>,
}

/// The versions resource (with `next` when `more`, as [`Manifest`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// An envelope as received: the objects stay raw JSON (they are parsed and validated
/// one by one, so one bad object does not hide the others).
#[derive(Debug, Deserialize)]
pub struct EnvelopeIn<'a> {
    #[serde(default)]
    pub more: Option<bool>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default, borrow)]
    pub objects: Option<Vec<&'a serde_json::value::RawValue>>,
    /// Present on a STIX bundle, never on an envelope: used to say "send an envelope".
    #[serde(default, rename = "type")]
    pub stix_type: Option<&'a serde_json::value::RawValue>,
}

/// How a list of objects is cut into envelopes: a run that fits, or a single object too
/// large for any envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// The next `n` objects go in one envelope.
    Envelope(usize),
    /// The next object alone exceeds the byte limit.
    Oversize,
}

/// Bytes of `{"objects":[o1,o2,...]}` for `n` objects of `total` bytes.
pub fn envelope_bytes(n: usize, total: usize) -> u64 {
    (13 + total + n) as u64
}

/// How many of the first objects (of byte sizes `sizes`) fill the next envelope of at
/// most `max_objects` objects and `max_bytes` bytes (an API root's `max_content_length`).
pub fn next_cut(sizes: &[usize], max_objects: usize, max_bytes: u64) -> Cut {
    let mut total = 0;
    let mut n = 0;
    for &s in sizes.iter().take(max_objects) {
        if envelope_bytes(n + 1, total + s) > max_bytes {
            break;
        }
        total += s;
        n += 1;
    }
    if n == 0 && !sizes.is_empty() {
        Cut::Oversize
    } else {
        Cut::Envelope(n)
    }
}

/// Writes an envelope from already-serialised objects without re-encoding them (the
/// original JSON of each object goes out byte for byte).
pub fn write_envelope<'a>(
    out: &mut String,
    more: bool,
    next: Option<&str>,
    objects: impl IntoIterator<Item = &'a str>,
) {
    out.push('{');
    let mut first = true;
    if more {
        out.push_str("\"more\":true");
        first = false;
    }
    if let Some(n) = next {
        if !first {
            out.push(',');
        }
        out.push_str("\"next\":");
        out.push_str(&serde_json::Value::from(n).to_string());
        first = false;
    }
    let mut objects = objects.into_iter().peekable();
    if objects.peek().is_some() {
        if !first {
            out.push(',');
        }
        out.push_str("\"objects\":[");
        for (i, o) in objects.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(o);
        }
        out.push(']');
    }
    out.push('}');
}

/// `status` of a status resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Complete,
}

/// One entry of a status resource's successes/failures/pendings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub id: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The status resource of an add-objects request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: StatusState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timestamp: Option<String>,
    pub total_count: u64,
    pub success_count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successes: Vec<StatusDetail>,
    pub failure_count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<StatusDetail>,
    pub pending_count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pendings: Vec<StatusDetail>,
}

impl Status {
    /// Whether the counts agree with each other and with the detail lists (what the
    /// reference client checks before trusting a status).
    pub fn is_consistent(&self) -> bool {
        let lists_match = |n: u64, l: &[StatusDetail]| l.is_empty() || l.len() as u64 == n;
        self.success_count + self.failure_count + self.pending_count == self.total_count
            && lists_match(self.success_count, &self.successes)
            && lists_match(self.failure_count, &self.failures)
            && lists_match(self.pending_count, &self.pendings)
    }
}

/// A TAXII error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxiiError {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The HTTP status code, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TaxiiError {
    /// An error with a title, a description and the HTTP status it travels with.
    pub fn new(status: u16, title: &str, description: impl Into<String>) -> TaxiiError {
        TaxiiError {
            title: title.to_owned(),
            description: Some(description.into()),
            error_id: None,
            error_code: None,
            http_status: Some(status.to_string()),
            external_details: None,
            details: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_respect_count_and_bytes() {
        // (sizes, max objects, max bytes) -> cut
        for (sizes, max_n, max_b, want) in [
            (vec![10, 10, 10], 2, 1000, Cut::Envelope(2)),
            (vec![10, 10, 10], 5, 1000, Cut::Envelope(3)),
            // {"objects":[ + 10 + ]} = 24 bytes; two objects: 35
            (vec![10, 10], 5, 24, Cut::Envelope(1)),
            (vec![10, 10], 5, 35, Cut::Envelope(2)),
            (vec![10, 10], 5, 34, Cut::Envelope(1)),
            (vec![10], 5, 23, Cut::Oversize),
            (vec![100, 1], 5, 50, Cut::Oversize),
            (vec![], 5, 50, Cut::Envelope(0)),
        ] {
            assert_eq!(
                next_cut(&sizes, max_n, max_b),
                want,
                "{sizes:?} {max_n} {max_b}"
            );
        }
        let mut s = String::new();
        write_envelope(&mut s, false, None, ["0123456789", "0123456789"]);
        assert_eq!(envelope_bytes(2, 20), s.len() as u64);
    }

    #[test]
    fn empty_lists_are_omitted() {
        assert_eq!(serde_json::to_string(&Manifest::default()).unwrap(), "{}");
        assert_eq!(serde_json::to_string(&Versions::default()).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&Collections::default()).unwrap(),
            "{}"
        );
        let mut s = String::new();
        write_envelope(&mut s, false, None, []);
        assert_eq!(s, "{}");
    }

    #[test]
    fn envelope_keeps_object_bytes() {
        let mut s = String::new();
        write_envelope(&mut s, true, Some("a\"b"), ["{\"b\":1, \"a\":2}", "{}"]);
        assert_eq!(
            s,
            r#"{"more":true,"next":"a\"b","objects":[{"b":1, "a":2},{}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["objects"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn times_have_six_digits() {
        assert_eq!(
            taxii_time(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(taxii_time(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn error_status_is_a_string() {
        let v = serde_json::to_value(TaxiiError::new(404, "Not found", "x")).unwrap();
        assert_eq!(v["http_status"], "404");
    }

    #[test]
    fn status_consistency() {
        let d = |id: &str| StatusDetail {
            id: id.into(),
            version: "2020-01-01T00:00:00.000Z".into(),
            message: None,
        };
        let mut s = Status {
            id: "x".into(),
            status: StatusState::Complete,
            request_timestamp: None,
            total_count: 2,
            success_count: 1,
            successes: vec![d("a")],
            failure_count: 1,
            failures: vec![d("b")],
            pending_count: 0,
            pendings: vec![],
        };
        assert!(s.is_consistent());
        s.success_count = 2;
        assert!(!s.is_consistent());
    }
}
