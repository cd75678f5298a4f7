//! The real Zeek logs of the APT29 evaluation day 1 (2,140 lines, every log stream),
//! read from `shared/data/telemetry` at test time. Indicators for addresses and domains
//! that occur in them (and some that do not) must give exactly the expected sightings.
//! Expectations come from a naive scan of every string in every line (serde_json), and
//! a few are hard-coded from counts checked by hand with grep and jq.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use phalanx_detect::{Aggregator, Hunt, HuntConfig, Index, IndexConfig, Zeek};
use phalanx_stix::{StixObject, Timestamp, validate};
use serde_json::Value;

const OBSERVER: &str = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01";

fn log_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/telemetry/zeek-apt29-day1.jsonl")
}

fn now() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap()
}

/// How a naive scan decides that one string of a line is a hit.
enum Naive {
    Eq(&'static str),
    Suffix(&'static str),
    InNet(Ipv4Addr, u8),
    /// `id_resp_h` equals the address and `id_resp_p` the port.
    DstAndPort(&'static str, u64),
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn naive_hit(rule: &Naive, line: &Value) -> bool {
    let mut all = Vec::new();
    strings(line, &mut all);
    match rule {
        Naive::Eq(want) => all.iter().any(|s| s.to_ascii_lowercase() == *want),
        Naive::Suffix(sfx) => all.iter().any(|s| s.to_ascii_lowercase().ends_with(sfx)),
        Naive::InNet(net, len) => all.iter().any(|s| {
            s.parse::<Ipv4Addr>().is_ok_and(|a| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(*net) & mask
            })
        }),
        Naive::DstAndPort(ip, port) => {
            line.get("id_resp_h").and_then(Value::as_str) == Some(ip)
                && line.get("id_resp_p").and_then(Value::as_u64) == Some(*port)
        }
    }
}

fn micros(line: &Value) -> i64 {
    (line["ts"].as_f64().unwrap() * 1e6).round() as i64
}

#[test]
fn zeek_apt29_day1_sightings() {
    let bytes = std::fs::read(log_path()).unwrap_or_else(|e| {
        panic!(
            "the Zeek test data must be at {}: {e}",
            log_path().display()
        )
    });
    // (indicator id suffix, pattern, naive rule)
    let cases: Vec<(u32, &str, Naive)> = vec![
        (
            1,
            "[ipv4-addr:value = '192.168.0.5']",
            Naive::Eq("192.168.0.5"),
        ),
        (
            2,
            "[ipv4-addr:value = '10.0.1.255']",
            Naive::Eq("10.0.1.255"),
        ),
        (
            3,
            "[domain-name:value = 'wpad.dmevals.local']",
            Naive::Eq("wpad.dmevals.local"),
        ),
        (
            4,
            "[domain-name:value LIKE '%.azureedge.net']",
            Naive::Suffix(".azureedge.net"),
        ),
        (
            5,
            "[ipv4-addr:value ISSUBSET '192.168.0.0/24']",
            Naive::InNet(Ipv4Addr::new(192, 168, 0, 0), 24),
        ),
        (6, "[domain-name:value = 'scranton']", Naive::Eq("scranton")),
        (
            7,
            "[ipv4-addr:value = '72.21.81.200']",
            Naive::Eq("72.21.81.200"),
        ),
        (
            8,
            "[file:hashes.MD5 = '118a489422be0c5ca0cecf3bb7903c7e']",
            Naive::Eq("118a489422be0c5ca0cecf3bb7903c7e"),
        ),
        (
            9,
            "[network-traffic:dst_ref.value = '192.168.0.4' AND network-traffic:dst_port = 8443]",
            Naive::DstAndPort("192.168.0.4", 8443),
        ),
        // Absent from the logs.
        (
            10,
            "[ipv4-addr:value = '203.0.113.77']",
            Naive::Eq("203.0.113.77"),
        ),
        (
            11,
            "[domain-name:value = 'evil.example']",
            Naive::Eq("evil.example"),
        ),
        (
            12,
            "[ipv4-addr:value ISSUBSET '172.16.0.0/12']",
            Naive::InNet(Ipv4Addr::new(172, 16, 0, 0), 12),
        ),
    ];
    let id = |n: u32| format!("indicator--{n:08x}-aaaa-4bbb-8ccc-000000000000");
    let texts: Vec<String> = cases
        .iter()
        .map(|(n, p, _)| {
            serde_json::json!({"type": "indicator", "spec_version": "2.1", "id": id(*n),
                "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
                "pattern": p, "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"})
            .to_string()
        })
        .collect();
    let (index, report) = Index::build(
        texts.iter().map(|t| t.as_bytes()),
        now(),
        IndexConfig::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(index.stats().live, cases.len());
    assert_eq!(index.stats().always_evaluate, 0);

    let mut hunt = Hunt::new(&Zeek, HuntConfig::default());
    let mut agg = Aggregator::new();
    hunt.feed(&index, &bytes, now(), &mut |hits| agg.add(hits, OBSERVER));
    let stats = hunt.stats();
    assert_eq!(stats.lines, 2140);
    assert_eq!(stats.malformed, 0, "{:?}", stats.error_sample);
    assert_eq!(stats.matching.eval_errors, 0);

    // Naive expectations: (count, first, last) per indicator id.
    let lines: Vec<Value> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2140);
    let mut want: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    for (n, _, rule) in &cases {
        for line in &lines {
            if naive_hit(rule, line) {
                let t = micros(line);
                let e = want.entry(id(*n)).or_insert((0, t, t));
                e.0 += 1;
                e.1 = e.1.min(t);
                e.2 = e.2.max(t);
            }
        }
    }
    let got: BTreeMap<String, (u64, i64, i64)> = agg
        .summary()
        .into_iter()
        .map(|s| {
            assert_eq!(s.observer, OBSERVER);
            (
                s.indicator.id(),
                (s.count, s.first_seen.as_micros(), s.last_seen.as_micros()),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Counted by hand (grep -c / jq), independent of both scans above.
    // (indicator, count, first_seen, last_seen; "" = not checked by hand)
    let hand: [(u32, u64, &str, &str); 7] = [
        (
            1,
            8,
            "2020-04-30T00:08:02.361653Z",
            "2020-04-30T00:15:18.757732Z",
        ),
        (2, 16, "", ""),
        (
            3,
            8,
            "2020-04-30T00:07:59.132979Z",
            "2020-04-30T00:38:00.205604Z",
        ),
        (4, 6, "", ""),
        (7, 3, "", ""),
        (8, 29, "", ""),
        (9, 753, "", ""),
    ];
    for (n, count, first, last) in hand {
        let g = got
            .get(&id(n))
            .unwrap_or_else(|| panic!("no sighting for #{n}"));
        assert_eq!(g.0, count, "count of #{n}");
        if !first.is_empty() {
            assert_eq!(
                Timestamp::from_micros(g.1).format(6),
                first,
                "first_seen of #{n}"
            );
            assert_eq!(
                Timestamp::from_micros(g.2).format(6),
                last,
                "last_seen of #{n}"
            );
        }
    }
    for absent in [10, 11, 12] {
        assert!(
            !got.contains_key(&id(absent)),
            "#{absent} must not be sighted"
        );
    }

    // The sightings are valid STIX 2.1 and deterministic.
    let sightings = agg.sightings(now());
    assert_eq!(sightings.len(), want.len());
    for s in &sightings {
        let obj = StixObject::from_value(s.clone()).unwrap();
        if let Err((_, report)) = validate(obj) {
            panic!("invalid sighting {s}: {report:?}");
        }
    }
    assert_eq!(agg.sightings(now()), sightings);
}
