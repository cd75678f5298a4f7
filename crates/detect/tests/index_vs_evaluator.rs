//! Property tests: the index's answer equals the plain evaluator's, on random patterns
//! and random records, for telemetry records and for STIX observed-data input, with
//! incremental inserts and removals.

use std::borrow::Cow;
use std::collections::BTreeSet;

use phalanx_detect::{Hit, Index, IndexConfig, Inserted, Kind, MatchStats, Record};
use phalanx_pattern::Pattern;
use phalanx_stix::Timestamp;
use proptest::prelude::*;

const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "192.168.1.7",
    "2001:db8::1",
    "2001:db8:1::9",
];
const DOMAINS: &[&str] = &[
    "a.example",
    "b.a.example",
    "evil.test",
    "x.evil.test",
    "caf\u{e9}.test",
];
const URLS: &[&str] = &[
    "http://a.example/x",
    "http://evil.test/p?q=1",
    "http://evil.test/",
];
const HASHES: &[&str] = &["aa11", "bb22", "cc33"];
const NAMES: &[&str] = &["a.exe", "b.dll", "evil.exe"];
const EMAILS: &[&str] = &["x@a.example", "y@evil.test"];
const MACS: &[&str] = &["00:0d:3a:13:e3:69", "ff:ff:ff:ff:ff:ff"];
const PORTS: &[&str] = &["53", "80", "443"];

fn pool(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Ip | Kind::SrcIp | Kind::DstIp => IPS,
        Kind::Domain => DOMAINS,
        Kind::Url => URLS,
        Kind::Md5 | Kind::Sha1 | Kind::Sha256 | Kind::Sha512 => HASHES,
        Kind::FileName => NAMES,
        Kind::Email => EMAILS,
        Kind::Mac => MACS,
        Kind::SrcPort | Kind::DstPort => PORTS,
        Kind::Protocol => &["tcp", "udp"],
    }
}

fn observable() -> impl Strategy<Value = (Kind, &'static str)> {
    (0..Kind::ALL.len(), 0usize..8).prop_map(|(k, i)| {
        let kind = Kind::ALL[k];
        let p = pool(kind);
        (kind, p[i % p.len()])
    })
}

/// (path, pool of string values) the generated comparisons use.
const PATHS: &[(&str, &[&str])] = &[
    ("ipv4-addr:value", IPS),
    ("ipv6-addr:value", IPS),
    ("network-traffic:src_ref.value", IPS),
    ("network-traffic:dst_ref.value", IPS),
    ("domain-name:value", DOMAINS),
    ("url:value", URLS),
    ("email-addr:value", EMAILS),
    ("mac-addr:value", MACS),
    ("file:name", NAMES),
    ("file:hashes.MD5", HASHES),
    ("file:hashes.'SHA-256'", HASHES),
    ("network-traffic:dst_port", PORTS),
    ("network-traffic:protocols[*]", &["tcp", "udp"]),
    ("process:name", NAMES),
];

const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.2/32",
    "192.168.0.0/16",
    "2001:db8::/32",
    "0.0.0.0/0",
];
const REGEXES: &[&str] = &[
    "^10\\.",
    "evil",
    "\\.exe$",
    "^http://[a-z.]+/$",
    "caf\u{e9}",
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn comparison() -> impl Strategy<Value = String> {
    (
        0..PATHS.len(),
        0usize..10,
        0usize..16,
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(p, op, i, not, n)| {
            let (path, values) = PATHS[p];
            let v = values[i % values.len()];
            let neg = if not { "NOT " } else { "" };
            match op {
                0..=2 => format!("{path} {neg}= {}", quote(v)),
                3 => format!("{path} != {}", quote(v)),
                4 => {
                    let list: Vec<String> = (0..=n)
                        .map(|k| quote(values[(i + k * 3) % values.len()]))
                        .collect();
                    format!("{path} {neg}IN ({})", list.join(", "))
                }
                5 => {
                    let like = match i % 4 {
                        0 => format!("%{}", &v[v.len() / 2..]),
                        1 => format!("{}%", &v[..v.len() / 2]),
                        2 => format!("%.{}", v.split_once('.').map_or(v, |x| x.1)),
                        _ => format!("{}_{}", &v[..1], &v[2..]),
                    };
                    format!("{path} {neg}LIKE {}", quote(&like))
                }
                6 => format!("{path} {neg}MATCHES {}", quote(REGEXES[i % REGEXES.len()])),
                7 => format!("{path} {neg}ISSUBSET {}", quote(CIDRS[i % CIDRS.len()])),
                8 => format!("{path} > {}", quote(v)),
                _ => format!("{neg}EXISTS {path}"),
            }
        })
}

fn comparison_expr() -> impl Strategy<Value = String> {
    let leaf = comparison();
    leaf.prop_recursive(2, 6, 3, |inner| {
        (prop::collection::vec(inner, 2..4), any::<bool>())
            .prop_map(|(v, and)| format!("({})", v.join(if and { " AND " } else { " OR " })))
    })
}

fn pattern() -> impl Strategy<Value = String> {
    let obs = comparison_expr().prop_map(|c| format!("[{c}]"));
    obs.prop_recursive(2, 4, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            inner.prop_map(|a| format!("({a}) WITHIN 10 SECONDS")),
        ]
    })
}

fn indicator(i: usize, pattern: &str) -> String {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{i:08x}-0000-4000-8000-000000000000"),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "pattern": pattern, "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z",
    })
    .to_string()
}

fn id_of(i: usize) -> String {
    format!("indicator--{i:08x}-0000-4000-8000-000000000000")
}

fn ids(hits: &[Hit]) -> BTreeSet<String> {
    hits.iter().map(|h| h.indicator.id()).collect()
}

fn now() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap()
}

/// The evaluator's answer: patterns (by index in `patterns`, skipping `removed`) that
/// match the record seen as one observed-data.
fn evaluator(
    patterns: &[String],
    removed: &BTreeSet<usize>,
    record: &Record<'_>,
) -> BTreeSet<String> {
    let (od, scos) = record.to_stix(now());
    let mut out = BTreeSet::new();
    for (i, p) in patterns.iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        // Patterns that do not compile are refused by the index too.
        let Some(m) = Pattern::parse(p).ok().and_then(|p| p.compile().ok()) else {
            continue;
        };
        if m.matches(std::slice::from_ref(&od), &scos) == Ok(true) {
            out.insert(id_of(i));
        }
    }
    out
}

fn record(obs: &[(Kind, &'static str)]) -> Record<'static> {
    let mut r = Record::default();
    for &(k, v) in obs {
        r.push(k, Cow::Borrowed(v));
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_evaluator(
        patterns in prop::collection::vec(pattern(), 1..12),
        records in prop::collection::vec(prop::collection::vec(observable(), 0..8), 1..6),
        removals in prop::collection::vec(0usize..12, 0..3),
        incremental in any::<bool>(),
    ) {
        let texts: Vec<String> = patterns.iter().enumerate().map(|(i, p)| indicator(i, p)).collect();
        let config = IndexConfig { rebuild_after: 2, ..IndexConfig::default() };
        let mut index = if incremental {
            let mut idx = Index::new(config);
            for t in &texts {
                let _ = idx.insert_json(t.as_bytes(), now());
            }
            idx
        } else {
            Index::build(texts.iter().map(|t| t.as_bytes()), now(), config).0
        };
        let mut removed = BTreeSet::new();
        for r in removals {
            if r < patterns.len() {
                prop_assert!(index.remove(&id_of(r)) || removed.contains(&r));
                removed.insert(r);
            }
        }
        for obs in &records {
            let rec = record(obs);
            let want = evaluator(&patterns, &removed, &rec);
            let mut hits = Vec::new();
            let mut stats = MatchStats::default();
            index.match_record(&rec, now(), &mut hits, &mut stats);
            prop_assert_eq!(&ids(&hits), &want, "record {:?}", obs);
            // The same record as STIX observed-data gives the same answer.
            let (od, scos) = rec.to_stix(now());
            let mut hits2 = Vec::new();
            index.match_observed(&od, &scos, now(), &mut hits2, &mut stats);
            prop_assert_eq!(&ids(&hits2), &want, "observed-data {:?}", obs);
        }
        // Matching in groups (several batches of eight, a partial one, records with
        // and without a time) gives the hits and counters of one record at a time,
        // in the same order.
        let mut all: Vec<Record<'static>> = Vec::new();
        for round in 0..4 {
            for (i, obs) in records.iter().enumerate() {
                let mut rec = record(obs);
                if (i + round) % 3 == 0 {
                    rec.time = Some(Timestamp::from_micros(1_000_000 * (i as i64 + 1)));
                }
                all.push(rec);
            }
        }
        let (mut one, mut one_stats) = (Vec::new(), MatchStats::default());
        for rec in &all {
            index.match_record(rec, now(), &mut one, &mut one_stats);
        }
        let (mut grouped, mut grouped_stats) = (Vec::new(), MatchStats::default());
        index.match_records(&all, now(), &mut grouped, &mut grouped_stats);
        prop_assert_eq!(&grouped, &one);
        prop_assert_eq!(&grouped_stats, &one_stats);
    }
}

/// Replacing, revoking and expiring indicators while the index is in use.
#[test]
fn incremental_updates_table() {
    let rec = record(&[(Kind::Domain, "evil.test"), (Kind::DstIp, "10.0.0.1")]);
    let hits_of = |idx: &Index| {
        let mut hits = Vec::new();
        idx.match_record(&rec, now(), &mut hits, &mut MatchStats::default());
        ids(&hits)
    };
    let mk = |modified: &str, pattern: &str, extra: &str| {
        format!(
            r#"{{"type":"indicator","id":"{}","created":"2020-01-01T00:00:00.000Z","modified":"{modified}","pattern":{},"pattern_type":"stix","valid_from":"2020-01-01T00:00:00Z"{extra}}}"#,
            id_of(1),
            serde_json::to_string(pattern).unwrap()
        )
    };
    let dom = "[domain-name:value = 'evil.test']";
    let ip = "[ipv4-addr:value = '10.9.9.9']";
    let one: BTreeSet<String> = [id_of(1)].into();
    let none = BTreeSet::new();
    // (indicator text, expected outcome, expected hits afterwards)
    let steps: Vec<(String, Inserted, &BTreeSet<String>)> = vec![
        (
            mk("2020-01-01T00:00:00.000Z", dom, ""),
            Inserted::Simple,
            &one,
        ),
        (
            mk("2020-01-01T00:00:00.000Z", ip, ""),
            Inserted::Stale,
            &one,
        ),
        (
            mk("2021-01-01T00:00:00.000Z", ip, ""),
            Inserted::Simple,
            &none,
        ),
        (
            mk("2022-01-01T00:00:00.000Z", dom, r#","revoked":true"#),
            Inserted::Revoked,
            &none,
        ),
        (
            mk(
                "2023-01-01T00:00:00.000Z",
                dom,
                r#","valid_until":"2023-06-01T00:00:00Z""#,
            ),
            Inserted::Expired,
            &none,
        ),
        (
            mk(
                "2023-02-01T00:00:00.000Z",
                dom,
                r#","valid_until":"2030-01-01T00:00:00Z""#,
            ),
            Inserted::Simple,
            &one,
        ),
    ];
    let mut idx = Index::default();
    for (text, outcome, want) in steps {
        assert_eq!(
            idx.insert_json(text.as_bytes(), now()).unwrap(),
            outcome,
            "{text}"
        );
        assert_eq!(&hits_of(&idx), want, "{text}");
    }
    let later = Timestamp::parse("2031-01-01T00:00:00Z").unwrap();
    assert_eq!(idx.expire(later).expired, 1);
    assert_eq!(hits_of(&idx), none);

    // Pending until valid_from, then activated by expire().
    let mut idx = Index::default();
    let future = mk("2020-01-01T00:00:00.000Z", dom, "").replace(
        r#""valid_from":"2020-01-01T00:00:00Z""#,
        r#""valid_from":"2025-01-01T00:00:00Z""#,
    );
    assert_eq!(
        idx.insert_json(future.as_bytes(), now()).unwrap(),
        Inserted::Pending
    );
    assert_eq!(hits_of(&idx), none);
    let report = idx.expire(Timestamp::parse("2025-01-01T00:00:00Z").unwrap());
    assert_eq!(report.activated, 1);
    assert_eq!(hits_of(&idx), one);
    assert!(idx.remove(&id_of(1)));
    assert!(!idx.remove(&id_of(1)));
    assert_eq!(hits_of(&idx), none);
}

/// Many removals trigger a sweep; answers stay right across it.
#[test]
fn sweep_keeps_answers() {
    let mut idx = Index::default();
    for i in 0..10_000 {
        let p = format!("[ipv4-addr:value = '10.0.{}.{}']", i / 256, i % 256);
        idx.insert_json(indicator(i, &p).as_bytes(), now()).unwrap();
    }
    for i in 0..9_000 {
        assert!(idx.remove(&id_of(i)));
    }
    assert_eq!(idx.stats().live, 1_000);
    for (ip, want) in [("10.0.0.5", 0usize), ("10.0.39.10", 1)] {
        let rec = record(&[(Kind::Ip, ip)]);
        let mut hits = Vec::new();
        idx.match_record(&rec, now(), &mut hits, &mut MatchStats::default());
        assert_eq!(hits.len(), want, "{ip}");
    }
}
