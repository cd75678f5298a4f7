//! Media types and content negotiation (TAXII 2.1 §1.6.8, STANDARDS.md §1.3).

/// The TAXII 2.1 media type, as every response's `Content-Type`.
pub const TAXII: &str = "application/taxii+json;version=2.1";
/// The STIX 2.1 media type (collection `media_types`, manifest `media_type`).
pub const STIX: &str = "application/stix+json;version=2.1";

/// One media range of an `Accept` or `Content-Type` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    version: Option<&'a str>,
    q_zero: bool,
}

fn parse_range(s: &str) -> Option<Range<'_>> {
    let mut parts = s.split(';');
    let essence = parts.next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    let (kind, subtype) = (kind.trim(), subtype.trim());
    if kind.is_empty() || subtype.is_empty() {
        return None;
    }
    let mut r = Range {
        kind,
        subtype,
        version: None,
        q_zero: false,
    };
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "version" => r.version = Some(v),
            "q" => r.q_zero = v.parse::<f32>().is_ok_and(|q| q <= 0.0),
            _ => {}
        }
    }
    Some(r)
}

fn is_taxii_essence(kind: &str, subtype: &str) -> bool {
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("taxii+json")
            || subtype.eq_ignore_ascii_case("vnd.oasis.taxii+json"))
}

/// Whether an `Accept` header lets the server answer with TAXII 2.1 JSON.
///
/// Accepted: `application/taxii+json` without a version or with `version=2.1`, its
/// deprecated alias `application/vnd.oasis.taxii+json`, and the wildcards `*/*` and
/// `application/*` (so `curl` works). A range with `q=0` refuses. A missing header is
/// refused: TAXII requires clients to ask for TAXII.
pub fn accepts_taxii(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    accept.split(',').filter_map(parse_range).any(|r| {
        if r.q_zero {
            return false;
        }
        let wildcard =
            r.subtype == "*" && (r.kind == "*" || r.kind.eq_ignore_ascii_case("application"));
        wildcard || is_taxii_essence(r.kind, r.subtype) && matches!(r.version, None | Some("2.1"))
    })
}

/// Whether a request `Content-Type` is TAXII 2.1 JSON (without a version or with
/// `version=2.1`).
pub fn is_taxii_content(content_type: Option<&str>) -> bool {
    content_type.and_then(parse_range).is_some_and(|r| {
        is_taxii_essence(r.kind, r.subtype) && matches!(r.version, None | Some("2.1"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        for ok in [
            "application/taxii+json;version=2.1",
            "application/taxii+json",
            "application/taxii+json; version=2.1",
            "APPLICATION/TAXII+JSON;version=\"2.1\"",
            "application/vnd.oasis.taxii+json; version=2.1",
            "text/html, application/taxii+json;version=2.1;q=0.9",
            "*/*",
            "application/*",
        ] {
            assert!(accepts_taxii(Some(ok)), "{ok}");
        }
        for bad in [
            "application/json",
            "application/taxii+json;version=2.0",
            "application/stix+json;version=2.1",
            "application/taxii+json;version=2.1;q=0",
            "text/*",
            "garbage",
            "",
        ] {
            assert!(!accepts_taxii(Some(bad)), "{bad}");
        }
        assert!(!accepts_taxii(None));
    }

    #[test]
    fn content_type_check() {
        assert!(is_taxii_content(Some("application/taxii+json;version=2.1")));
        assert!(is_taxii_content(Some("application/taxii+json")));
        assert!(!is_taxii_content(Some("application/json")));
        assert!(!is_taxii_content(Some(
            "application/taxii+json;version=2.0"
        )));
        assert!(!is_taxii_content(Some("*/*")));
        assert!(!is_taxii_content(None));
    }
}
