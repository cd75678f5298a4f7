//! Observables: what a telemetry record says it saw, in a form the index can look up
//! and the evaluator can check.
//!
//! A [`Record`] is one telemetry line: a time and a list of [`Observable`]s (kind +
//! borrowed value). For the index it yields `(object path, value)` pairs such as
//! `("ipv4-addr:value", "10.0.0.4")`; for confirmation by the full evaluator it becomes
//! one observed-data object with one SCO per observable (plus one `network-traffic`
//! joining the source and destination, and `file` objects carrying names and hashes).
//! Both views are built from the same rules ([`Record::pairs`], [`Record::to_stix`]),
//! so the index sees exactly the values the evaluator would select.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv6Addr;

use phalanx_stix::Timestamp;
use serde_json::{Map, Value, json};

/// What an observable is. Each kind maps to STIX object paths (see [`Record::to_stix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An IPv4 or IPv6 address (the family is taken from the value).
    Ip,
    /// The source address of a connection (also an [`Kind::Ip`]).
    SrcIp,
    /// The destination address of a connection (also an [`Kind::Ip`]).
    DstIp,
    /// The source port (`network-traffic:src_port`).
    SrcPort,
    /// The destination port (`network-traffic:dst_port`).
    DstPort,
    /// A transport or application protocol name (`network-traffic:protocols`).
    Protocol,
    /// A domain name (lower-cased, trailing dot removed).
    Domain,
    /// A URL.
    Url,
    /// An e-mail address.
    Email,
    /// A MAC address (lower-cased).
    Mac,
    /// A file name.
    FileName,
    /// An MD5 file hash (lower-cased hex).
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
    /// A SHA-512 file hash.
    Sha512,
}

impl Kind {
    /// Every kind, for tables.
    pub const ALL: [Kind; 15] = [
        Kind::Ip,
        Kind::SrcIp,
        Kind::DstIp,
        Kind::SrcPort,
        Kind::DstPort,
        Kind::Protocol,
        Kind::Domain,
        Kind::Url,
        Kind::Email,
        Kind::Mac,
        Kind::FileName,
        Kind::Md5,
        Kind::Sha1,
        Kind::Sha256,
        Kind::Sha512,
    ];

    /// The name used in field mappings (`source.ip=src_ip`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ip => "ip",
            Kind::SrcIp => "src_ip",
            Kind::DstIp => "dst_ip",
            Kind::SrcPort => "src_port",
            Kind::DstPort => "dst_port",
            Kind::Protocol => "protocol",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Email => "email",
            Kind::Mac => "mac",
            Kind::FileName => "file_name",
            Kind::Md5 => "md5",
            Kind::Sha1 => "sha1",
            Kind::Sha256 => "sha256",
            Kind::Sha512 => "sha512",
        }
    }

    /// The kind with this [`Kind::name`] (`ipv4` and `ipv6` are accepted for `ip`).
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "ipv4" | "ipv6" => Some(Kind::Ip),
            _ => Kind::ALL.into_iter().find(|k| k.name() == name),
        }
    }

    fn hash_key(self) -> Option<&'static str> {
        match self {
            Kind::Md5 => Some("MD5"),
            Kind::Sha1 => Some("SHA-1"),
            Kind::Sha256 => Some("SHA-256"),
            Kind::Sha512 => Some("SHA-512"),
            _ => None,
        }
    }
}

/// Object paths the telemetry observables produce, as the index names them (the
/// pattern's object type, `:`, keys joined by `.`, without quotes).
pub(crate) const KNOWN_PATHS: [&str; 13] = [
    "ipv4-addr:value",
    "ipv6-addr:value",
    "network-traffic:src_ref.value",
    "network-traffic:dst_ref.value",
    "domain-name:value",
    "url:value",
    "email-addr:value",
    "mac-addr:value",
    "file:name",
    "file:hashes.MD5",
    "file:hashes.SHA-1",
    "file:hashes.SHA-256",
    "file:hashes.SHA-512",
];

/// One observable: a kind and a value borrowed from the telemetry line where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observable<'a> {
    /// What it is.
    pub kind: Kind,
    /// The (normalised) value.
    pub value: Cow<'a, str>,
}

/// One telemetry record: when, and what was seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record<'a> {
    /// When the record says it happened; `None` if it has no usable time (the caller's
    /// fallback time is used).
    pub time: Option<Timestamp>,
    /// What was seen, in line order.
    pub observables: Vec<Observable<'a>>,
    /// For STIX input ([`crate::adapter::StixObserved`]): the observed-data and SCOs
    /// themselves, matched as they are.
    pub stix: Option<Box<crate::adapter::StixRecord>>,
}

impl<'a> Record<'a> {
    /// Adds an observable after normalising it; values that cannot be what `kind` says
    /// (an address that does not parse, an empty or `-` field) are dropped.
    pub fn push(&mut self, kind: Kind, value: Cow<'a, str>) {
        if let Some(value) = normalise(kind, value) {
            self.observables.push(Observable { kind, value });
        }
    }

    /// The `(path index in KNOWN_PATHS, value)` pairs the index looks up.
    pub(crate) fn pairs<'s>(&'s self, f: &mut dyn FnMut(usize, &'s str)) {
        let mut src_seen = false;
        let mut dst_seen = false;
        for o in &self.observables {
            let v = o.value.as_ref();
            match o.kind {
                Kind::Ip | Kind::SrcIp | Kind::DstIp => {
                    f(if is_v6(v) { 1 } else { 0 }, v);
                    if o.kind == Kind::SrcIp && !src_seen {
                        src_seen = true;
                        f(2, v);
                    }
                    if o.kind == Kind::DstIp && !dst_seen {
                        dst_seen = true;
                        f(3, v);
                    }
                }
                Kind::SrcPort | Kind::DstPort | Kind::Protocol => {}
                Kind::Domain => f(4, v),
                Kind::Url => f(5, v),
                Kind::Email => f(6, v),
                Kind::Mac => f(7, v),
                Kind::FileName => f(8, v),
                Kind::Md5 => f(9, v),
                Kind::Sha1 => f(10, v),
                Kind::Sha256 => f(11, v),
                Kind::Sha512 => f(12, v),
            }
        }
    }

    /// The record as one observed-data object (`first_observed` = `last_observed` =
    /// `time`, `number_observed` 1) and the SCOs it references, for the evaluator.
    /// SCO ids are local to the record (`ipv4-addr--0`, ...): they are never stored.
    pub fn to_stix(&self, time: Timestamp) -> (Value, HashMap<String, Value>) {
        let mut scos: HashMap<String, Value> = HashMap::new();
        let mut refs = Vec::new();
        let mut add = |scos: &mut HashMap<String, Value>, ty: &str, obj: Value| {
            let id = format!("{ty}--{}", refs.len());
            let mut obj = obj;
            if let Value::Object(m) = &mut obj {
                m.insert("type".into(), json!(ty));
                m.insert("id".into(), json!(id));
            }
            scos.insert(id.clone(), obj);
            refs.push(id.clone());
            id
        };
        let mut traffic = Map::new();
        let mut files: Vec<Map<String, Value>> = Vec::new();
        for o in &self.observables {
            let v = o.value.as_ref();
            match o.kind {
                Kind::Ip | Kind::SrcIp | Kind::DstIp => {
                    let ty = if is_v6(v) { "ipv6-addr" } else { "ipv4-addr" };
                    let id = add(&mut scos, ty, json!({ "value": v }));
                    let role = match o.kind {
                        Kind::SrcIp => Some("src_ref"),
                        Kind::DstIp => Some("dst_ref"),
                        _ => None,
                    };
                    if let Some(role) = role {
                        traffic.entry(role).or_insert_with(|| json!(id));
                    }
                }
                Kind::SrcPort | Kind::DstPort => {
                    let key = if o.kind == Kind::SrcPort {
                        "src_port"
                    } else {
                        "dst_port"
                    };
                    if let Ok(p) = v.parse::<u16>() {
                        traffic.entry(key).or_insert_with(|| json!(p));
                    }
                }
                Kind::Protocol => {
                    let list = traffic.entry("protocols").or_insert_with(|| json!([]));
                    if let Value::Array(a) = list {
                        a.push(json!(v));
                    }
                }
                Kind::Domain => {
                    add(&mut scos, "domain-name", json!({ "value": v }));
                }
                Kind::Url => {
                    add(&mut scos, "url", json!({ "value": v }));
                }
                Kind::Email => {
                    add(&mut scos, "email-addr", json!({ "value": v }));
                }
                Kind::Mac => {
                    add(&mut scos, "mac-addr", json!({ "value": v }));
                }
                Kind::FileName => file_prop(&mut files, &["name"], v),
                k => {
                    if let Some(alg) = k.hash_key() {
                        file_prop(&mut files, &["hashes", alg], v);
                    }
                }
            }
        }
        if traffic.contains_key("src_ref") || traffic.contains_key("dst_ref") {
            add(&mut scos, "network-traffic", Value::Object(traffic));
        }
        for f in files {
            add(&mut scos, "file", Value::Object(f));
        }
        let t = time.format(6);
        let od = json!({
            "type": "observed-data",
            "first_observed": t,
            "last_observed": t,
            "number_observed": 1,
            "object_refs": refs,
        });
        (od, scos)
    }
}

/// Puts `value` at `path` in the first file object that does not have it yet.
fn file_prop(files: &mut Vec<Map<String, Value>>, path: &[&str], value: &str) {
    let has = |f: &Map<String, Value>| match path {
        [k] => f.contains_key(*k),
        [k, sub] => f.get(*k).and_then(|h| h.get(*sub)).is_some(),
        _ => true,
    };
    let i = match files.iter().position(|f| !has(f)) {
        Some(i) => i,
        None => {
            files.push(Map::new());
            files.len() - 1
        }
    };
    let f = &mut files[i];
    match path {
        [k] => {
            f.insert((*k).to_owned(), json!(value));
        }
        [k, sub] => {
            let h = f.entry(*k).or_insert_with(|| json!({}));
            if let Value::Object(h) = h {
                h.insert((*sub).to_owned(), json!(value));
            }
        }
        _ => {}
    }
}

pub(crate) fn is_v6(v: &str) -> bool {
    v.contains(':')
}

/// Whether `v` is an IPv4 or IPv6 address, exactly as `v.parse::<IpAddr>().is_ok()`.
///
/// IPv4 goes through [`parse_ipv4`]: most telemetry addresses are IPv4 and std's
/// general parser (IPv4, then IPv6 on failure) was ~3% of the eve benchmark's samples,
/// for an address parsed up to three times per observable (here, in the adapter's
/// address-or-name choice, and for the index's CIDR lookup). An IPv6 address always
/// contains a `:`, so the std parser runs only for those.
#[inline]
pub(crate) fn is_ip(v: &str) -> bool {
    parse_ipv4(v.as_bytes()).is_some() || (is_v6(v) && v.parse::<Ipv6Addr>().is_ok())
}

/// A dotted-quad IPv4 address as a `u32`, accepting exactly what
/// `std::net::Ipv4Addr::from_str` accepts (four decimal octets of one to three digits,
/// at most 255, no leading zero unless the octet is `0`), without its generic number
/// reader. A property test checks the agreement on random input.
#[inline]
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let mut addr = 0u32;
    let mut i = 0;
    for part in 0..4 {
        if part > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut n = 0u32;
        while let Some(&c) = s.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if i - start == 3 {
                return None;
            }
            n = n * 10 + u32::from(d);
            i += 1;
        }
        let len = i - start;
        if len == 0 || n > 255 || (len > 1 && s.get(start) == Some(&b'0')) {
            return None;
        }
        addr = (addr << 8) | n;
    }
    (i == s.len()).then_some(addr)
}

/// Whether `v` is a `u16`, exactly as `v.parse::<u16>().is_ok()` (optional `+`, decimal
/// digits, leading zeros allowed, at most 65535), without std's generic number reader:
/// every eve line has two ports.
#[inline]
fn is_port(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return false;
    }
    let mut n = 0u32;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return false;
        }
        n = n * 10 + u32::from(d);
        if n > u32::from(u16::MAX) {
            return false;
        }
    }
    true
}

fn lower<'a>(v: Cow<'a, str>) -> Cow<'a, str> {
    // A fold without early exit, which LLVM vectorises (16 bytes a step): hashes and
    // names are 20 to 64 bytes, almost never with an upper-case letter, and the byte
    // loop with an exit was ~300 instructions per eve line.
    if v.bytes().fold(false, |up, b| up | b.is_ascii_uppercase()) {
        Cow::Owned(v.to_ascii_lowercase())
    } else {
        v
    }
}

fn normalise(kind: Kind, value: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if value.is_empty() || value == "-" {
        return None;
    }
    match kind {
        Kind::Ip | Kind::SrcIp | Kind::DstIp => {
            // Only real addresses: the family decides the SCO type.
            is_ip(&value).then_some(value)
        }
        Kind::SrcPort | Kind::DstPort => is_port(&value).then_some(value),
        Kind::Domain => {
            let v = lower(value);
            match v {
                Cow::Borrowed(s) => {
                    let s = s.strip_suffix('.').unwrap_or(s);
                    (!s.is_empty()).then_some(Cow::Borrowed(s))
                }
                Cow::Owned(mut s) => {
                    if s.ends_with('.') {
                        s.pop();
                    }
                    (!s.is_empty()).then_some(Cow::Owned(s))
                }
            }
        }
        Kind::Protocol => Some(match value.as_ref() {
            "TCP" => Cow::Borrowed("tcp"),
            "UDP" => Cow::Borrowed("udp"),
            "ICMP" => Cow::Borrowed("icmp"),
            _ => lower(value),
        }),
        Kind::Mac | Kind::Md5 | Kind::Sha1 | Kind::Sha256 | Kind::Sha512 => Some(lower(value)),
        Kind::Url | Kind::Email | Kind::FileName => Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            (Kind::Ip, "10.0.0.1", Some("10.0.0.1")),
            (Kind::Ip, "not-an-ip", None),
            (Kind::SrcIp, "-", None),
            (Kind::DstIp, "2001:db8::1", Some("2001:db8::1")),
            (Kind::Domain, "NewYork.Example.", Some("newyork.example")),
            (Kind::Domain, ".", None),
            (Kind::Md5, "ABCDEF", Some("abcdef")),
            (Kind::SrcPort, "70000", None),
            (Kind::Url, "http://A/b", Some("http://A/b")),
        ];
        for (kind, input, want) in cases {
            let mut r = Record::default();
            r.push(kind, Cow::Borrowed(input));
            let got = r.observables.first().map(|o| o.value.as_ref());
            assert_eq!(got, want, "{kind:?} {input:?}");
        }
    }

    #[test]
    fn parse_ipv4_table() {
        let cases = [
            ("10.0.0.1", Some(0x0A00_0001)),
            ("255.255.255.255", Some(u32::MAX)),
            ("0.0.0.0", Some(0)),
            ("256.0.0.1", None),
            ("01.2.3.4", None),
            ("1.2.3.00", None),
            ("1.2.3", None),
            ("1.2.3.4.", None),
            ("1.2.3.4.5", None),
            ("1234.2.3.4", None),
            ("1..3.4", None),
            (" 1.2.3.4", None),
            ("1.2.3.4/8", None),
            ("::ffff:1.2.3.4", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ipv4(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn is_port_table() {
        for (input, want) in [
            ("0", true),
            ("80", true),
            ("65535", true),
            ("65536", false),
            ("0000065535", true),
            ("+443", true),
            ("+", false),
            ("", false),
            ("-1", false),
            ("-0", false),
            ("4 43", false),
            ("99999999999999999999", false),
        ] {
            assert_eq!(is_port(input), want, "{input:?}");
            assert_eq!(input.parse::<u16>().is_ok(), want, "std on {input:?}");
        }
    }

    /// Addresses and near-addresses: digits, dots, colons, a few other bytes.
    fn addressish() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("[0-9.:a-f/ x]{0,20}|[0-9]{1,4}(\\.[0-9]{1,4}){0,4}")
            .expect("valid regex")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4000, ..Default::default() })]

        /// The port check accepts exactly what std's `u16` parser accepts.
        #[test]
        fn is_port_agrees_with_std(s in "[+-]?[0-9]{0,7}|[0-9+ a-]{0,6}") {
            proptest::prop_assert_eq!(is_port(&s), s.parse::<u16>().is_ok(), "{}", s);
        }

        /// The fast parsers accept exactly what std accepts, with the same value.
        #[test]
        fn address_parsers_agree_with_std(s in addressish()) {
            let std4 = s.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
            proptest::prop_assert_eq!(parse_ipv4(s.as_bytes()), std4);
            proptest::prop_assert_eq!(is_ip(&s), s.parse::<std::net::IpAddr>().is_ok());
        }
    }
}
