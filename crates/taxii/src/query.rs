//! The filters of the objects, object, manifest and versions endpoints (TAXII 2.1
//! §3.4–3.5): `added_after`, `limit`, `next` and `match[...]`, parsed from a raw query
//! string. Every malformed parameter is a [`QueryError`] naming it (a 400 at the server).

use phalanx_stix::Timestamp;
use phalanx_stix::id::{is_type_name, parse_id};

/// A malformed query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {param}: {message}")]
pub struct QueryError {
    /// The parameter as written (`limit`, `match[version]`, ...).
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(param: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        param: param.to_owned(),
        message: message.into(),
    }
}

/// Which versions of each object to return (`match[version]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFilter {
    /// `all`: every version.
    pub all: bool,
    /// `first`: the earliest version.
    pub first: bool,
    /// `last`: the latest version (the default).
    pub last: bool,
    /// Exact versions (`modified` timestamps).
    pub exact: Vec<Timestamp>,
}

impl Default for VersionFilter {
    fn default() -> Self {
        VersionFilter {
            all: false,
            first: false,
            last: true,
            exact: Vec::new(),
        }
    }
}

impl VersionFilter {
    /// Every version.
    pub fn all() -> Self {
        VersionFilter {
            all: true,
            first: false,
            last: false,
            exact: Vec::new(),
        }
    }

    /// Parses a `match[version]` value: `first`, `last`, `all` (alone) or timestamps,
    /// comma-separated.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        let param = "match[version]";
        let mut f = VersionFilter {
            all: false,
            first: false,
            last: false,
            exact: Vec::new(),
        };
        for part in s.split(',') {
            match part {
                "all" => f.all = true,
                "first" => f.first = true,
                "last" => f.last = true,
                t => f.exact.push(Timestamp::parse(t).map_err(|e| {
                    err(
                        param,
                        format!("{t:?} is not first, last, all or a timestamp ({e})"),
                    )
                })?),
            }
        }
        if f.all && (f.first || f.last || !f.exact.is_empty()) {
            return Err(err(param, "\"all\" must be used alone"));
        }
        Ok(f)
    }
}

/// The endpoint a query is for: it decides which `match[...]` fields are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET .../objects/` and `.../manifest/`: every filter.
    Objects,
    /// `GET .../objects/{id}/`: `added_after`, `limit`, `next`, `match[version]`,
    /// `match[spec_version]`.
    Object,
    /// `DELETE .../objects/{id}/`: `match[version]`, `match[spec_version]`.
    Delete,
    /// `GET .../objects/{id}/versions/`: `added_after`, `limit`, `next`,
    /// `match[spec_version]`.
    Versions,
}

/// Parsed filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `added_after` (exclusive, on the server's `date_added`).
    pub added_after: Option<Timestamp>,
    /// `limit` (> 0).
    pub limit: Option<usize>,
    /// `next`, opaque.
    pub next: Option<String>,
    /// `match[id]`.
    pub ids: Vec<String>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]` (None: the default, `last`).
    pub versions: Option<VersionFilter>,
    /// `match[spec_version]`.
    pub spec_versions: Vec<String>,
}

impl Filters {
    /// Parses a raw (percent-encoded) query string for `endpoint`.
    ///
    /// Each parameter may appear once; comma-separated values of a `match` field are
    /// ORed. Unknown `match[...]` fields and unknown parameters are ignored, as TAXII
    /// allows; known fields that the endpoint does not take are an error.
    pub fn parse(query: &str, endpoint: Endpoint) -> Result<Filters, QueryError> {
        let mut f = Filters::default();
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k).map_err(|m| err(k, m))?;
            let v = decode(v).map_err(|m| err(&k, m))?;
            if seen.contains(&k) {
                return Err(err(&k, "given more than once"));
            }
            seen.push(k.clone());
            let allowed = match k.as_str() {
                "added_after" | "limit" | "next" => endpoint != Endpoint::Delete,
                "match[id]" | "match[type]" => endpoint == Endpoint::Objects,
                "match[version]" => endpoint != Endpoint::Versions,
                "match[spec_version]" => true,
                _ => continue,
            };
            if !allowed {
                return Err(err(&k, "not a filter of this endpoint"));
            }
            if v.is_empty() {
                return Err(err(&k, "empty value"));
            }
            match k.as_str() {
                "added_after" => {
                    f.added_after = Some(
                        Timestamp::parse(&v)
                            .map_err(|e| err(&k, format!("{v:?} is not a timestamp ({e})")))?,
                    );
                }
                "limit" => {
                    let n: usize = v
                        .parse()
                        .map_err(|_| err(&k, format!("{v:?} is not a positive integer")))?;
                    if n == 0 {
                        return Err(err(&k, "must be greater than 0"));
                    }
                    f.limit = Some(n);
                }
                "next" => f.next = Some(v),
                "match[id]" => {
                    f.ids = list(&k, &v, |s| {
                        parse_id(s).map(|_| ()).map_err(|e| e.to_string())
                    })?;
                }
                "match[type]" => {
                    f.types = list(&k, &v, |s| {
                        if is_type_name(s) {
                            Ok(())
                        } else {
                            Err(format!("{s:?} is not a STIX type name"))
                        }
                    })?;
                }
                "match[version]" => f.versions = Some(VersionFilter::parse(&v)?),
                _ => {
                    f.spec_versions = list(&k, &v, |s| {
                        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                            Ok(())
                        } else {
                            Err(format!("{s:?} is not a spec version such as 2.1"))
                        }
                    })?;
                }
            }
        }
        Ok(f)
    }

    /// The query in a canonical form without `next` (what a `next` token is bound to).
    pub fn fingerprint(&self) -> String {
        let v = self.versions.as_ref().map(|v| {
            let mut parts: Vec<String> = v.exact.iter().map(|t| t.format(9)).collect();
            parts.sort();
            format!("{}{}{}{}", v.all, v.first, v.last, parts.join(","))
        });
        let sorted = |l: &[String]| {
            let mut l = l.to_vec();
            l.sort();
            l.join(",")
        };
        format!(
            "a={:?};l={:?};id={};t={};v={:?};s={}",
            self.added_after.map(|t| t.format(9)),
            self.limit,
            sorted(&self.ids),
            sorted(&self.types),
            v,
            sorted(&self.spec_versions)
        )
    }
}

fn list(
    param: &str,
    v: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, QueryError> {
    v.split(',')
        .map(|s| {
            check(s).map_err(|m| err(param, m))?;
            Ok(s.to_owned())
        })
        .collect()
}

/// Percent-decodes a query component (`+` is a space, as in HTML forms).
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 after percent-decoding".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";

    #[test]
    fn parses_every_filter() {
        let q = format!(
            "added_after=2020-01-01T00%3A00%3A00.123456Z&limit=10&next=abc&match%5Bid%5D={ID}&match[type]=indicator,malware&match[version]=first,last&match[spec_version]=2.1"
        );
        let f = Filters::parse(&q, Endpoint::Objects).unwrap();
        assert_eq!(f.added_after.unwrap().as_micros() % 1_000_000, 123_456);
        assert_eq!(f.limit, Some(10));
        assert_eq!(f.next.as_deref(), Some("abc"));
        assert_eq!(f.ids, [ID]);
        assert_eq!(f.types, ["indicator", "malware"]);
        let v = f.versions.unwrap();
        assert!(v.first && v.last && !v.all);
        assert_eq!(f.spec_versions, ["2.1"]);
    }

    #[test]
    fn rejects_malformed_parameters() {
        for (q, param) in [
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=", "limit"),
            ("added_after=yesterday", "added_after"),
            ("limit=1&limit=2", "limit"),
            ("match[id]=not-an-id", "match[id]"),
            ("match[type]=Bad_Type", "match[type]"),
            ("match[version]=all,last", "match[version]"),
            ("match[version]=latest", "match[version]"),
            ("match[spec_version]=two", "match[spec_version]"),
            ("next=%ZZ", "next"),
        ] {
            let e = Filters::parse(q, Endpoint::Objects).unwrap_err();
            assert_eq!(e.param, param, "{q}");
        }
    }

    #[test]
    fn endpoint_specific_fields() {
        assert!(Filters::parse("match[type]=indicator", Endpoint::Object).is_err());
        assert!(Filters::parse("match[version]=all", Endpoint::Object).is_ok());
        assert!(Filters::parse("match[version]=all", Endpoint::Versions).is_err());
        assert!(Filters::parse("limit=5", Endpoint::Delete).is_err());
        assert!(Filters::parse("match[spec_version]=2.1", Endpoint::Delete).is_ok());
        // Unknown fields are ignored.
        assert_eq!(
            Filters::parse("match[x_custom]=1&foo=bar", Endpoint::Objects).unwrap(),
            Filters::default()
        );
    }

    #[test]
    fn fingerprint_ignores_next_and_order() {
        let a = Filters::parse("match[type]=a-b,c-d&next=1", Endpoint::Objects).unwrap();
        let b = Filters::parse("match[type]=c-d,a-b&next=2", Endpoint::Objects).unwrap();
        let c = Filters::parse("match[type]=a-b", Endpoint::Objects).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
