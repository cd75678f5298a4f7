//! Bad telemetry and pathological patterns: counted, skipped, rejected or bounded —
//! never a stopped stream, a panic or a hang.

use std::io::Cursor;

use phalanx_detect::{
    Aggregator, GenericJson, Hunt, HuntConfig, Index, IndexConfig, IndicatorErrorKind, Inserted,
    Kind, MatchStats, Record, StixObserved, Suricata, Zeek,
};
use phalanx_stix::Timestamp;

fn now() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap()
}

fn indicator(n: u32, pattern: &str) -> String {
    serde_json::json!({"type": "indicator", "id": format!("indicator--{n:08x}-0000-4000-8000-000000000000"),
        "pattern": pattern, "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"})
    .to_string()
}

fn ip_index() -> Index {
    let t = indicator(1, "[ipv4-addr:value = '10.0.0.1']");
    Index::build([t.as_bytes()], now(), IndexConfig::default()).0
}

#[test]
fn malformed_lines_are_counted_sampled_and_skipped() {
    let good = r#"{"timestamp":"2024-01-01T00:00:00Z","src_ip":"10.0.0.1","dest_ip":"10.0.0.2"}"#;
    let long = format!(r#"{{"src_ip":"10.0.0.1","pad":"{}"}}"#, "x".repeat(300));
    // (line, malformed?, message fragment)
    let lines: Vec<(String, bool, &str)> = vec![
        (good.into(), false, ""),
        (
            "{\"src_ip\":\"10.0.0.1\"".into(),
            true,
            "expected ',' or '}' at byte 20",
        ),
        ("".into(), false, ""),
        ("garbage".into(), true, "expected '{'"),
        ("{\"src_ip\":\"10.0.0.1\"}\r".into(), false, ""),
        ("\u{0}\u{1}\u{2}".into(), true, "expected '{'"),
        ("[1,2]".into(), true, "expected '{'"),
        (r#"{"src_ip":"\ud800"}"#.into(), false, ""),
        (long, true, "more than the limit of 200"),
        (good.into(), false, ""),
    ];
    let input: String = lines.iter().map(|(l, _, _)| format!("{l}\n")).collect();
    let index = ip_index();
    let config = HuntConfig {
        max_line_bytes: 200,
        error_sample: 3,
    };
    // Both the in-memory and the reader paths give the same counts.
    for via_reader in [false, true] {
        let mut hunt = Hunt::new(&Suricata, config.clone());
        let mut agg = Aggregator::new();
        let mut sink = |h: &[phalanx_detect::Hit]| {
            agg.add(h, "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01")
        };
        if via_reader {
            // A tiny buffer makes lines cross buffer boundaries.
            let r = std::io::BufReader::with_capacity(7, Cursor::new(input.as_bytes()));
            hunt.read(&index, r, now(), &mut sink).unwrap();
        } else {
            hunt.feed(&index, input.as_bytes(), now(), &mut sink);
        }
        let s = hunt.stats();
        assert_eq!(s.lines, 10, "reader={via_reader}");
        assert_eq!(s.blank, 1);
        assert_eq!(s.malformed + s.too_long, 5);
        assert_eq!(s.too_long, 1);
        assert_eq!(s.error_sample.len(), 3, "sample is capped");
        let bad: Vec<(u64, &str)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.1)
            .map(|(i, l)| (i as u64 + 1, l.2))
            .collect();
        for (e, (line, fragment)) in s.error_sample.iter().zip(&bad) {
            assert_eq!(e.line, *line);
            assert!(
                e.message.contains(fragment),
                "{e} should contain {fragment:?} (reader={via_reader})"
            );
        }
        // The good lines after the bad ones were still matched.
        assert_eq!(agg.summary()[0].count, 3, "reader={via_reader}");
    }
}

#[test]
fn every_adapter_refuses_garbage_without_panicking() {
    let generic = GenericJson::from_spec("a.b=ip").unwrap();
    let adapters: [&dyn phalanx_detect::Adapter; 4] =
        [&Zeek, &Suricata, &generic, &StixObserved::default()];
    let inputs: [&[u8]; 8] = [
        b"",
        b"{",
        b"{\"a\":",
        b"{\"a\":{\"b\":[[[[",
        b"\xff\xfe{}",
        b"{\"type\":\"bundle\"}",
        b"{\"type\":\"observed-data\",\"objects\":7}",
        b"{\"ts\":1e999999,\"id_orig_h\":\"::::\",\"src_ip\":\"999.1.1.1\"}",
    ];
    let deep = format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    for a in adapters {
        for input in inputs.iter().copied().chain([deep.as_bytes()]) {
            // Either a record or an error; no panic. Bogus addresses never become
            // observables.
            if let Ok(r) = a.parse(input) {
                assert!(
                    r.observables
                        .iter()
                        .all(|o| o.kind != Kind::Ip && o.kind != Kind::SrcIp),
                    "{}",
                    a.name()
                );
            }
        }
    }
}

#[test]
fn pathological_patterns_are_rejected_or_bounded() {
    let huge_in = format!(
        "[ipv4-addr:value IN ({})]",
        (0..20_000)
            .map(|i| format!("'10.{}.{}.1'", i / 256, i % 256))
            .collect::<Vec<_>>()
            .join(",")
    );
    let big_in = format!(
        "[ipv4-addr:value IN ({})]",
        (0..9_000)
            .map(|i| format!("'10.{}.{}.1'", i / 256, i % 256))
            .collect::<Vec<_>>()
            .join(",")
    );
    let deep_parens = format!(
        "{}[ipv4-addr:value = '1.1.1.1']{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let deep_cmp = format!(
        "[{}ipv4-addr:value = '1.1.1.1'{}]",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let long_text = format!("[url:value = '{}']", "a".repeat(300_000));
    // (pattern, expected: Ok(outcome) or Err(error kind name))
    let cases: Vec<(String, Result<Inserted, &str>)> = vec![
        (huge_in, Err("Parse")),
        (big_in, Ok(Inserted::Simple)),
        (deep_parens, Err("Parse")),
        (deep_cmp, Err("Parse")),
        (long_text, Err("Parse")),
        // Catastrophic for backtracking engines; linear here.
        (
            "[url:value MATCHES '(a+)+$']".into(),
            Ok(Inserted::Confirmed),
        ),
        (
            "[url:value MATCHES '(a|aa)*b']".into(),
            Ok(Inserted::Confirmed),
        ),
        // Needs back-references / look-around: reported, not dropped.
        ("[url:value MATCHES '(a)\\\\1']".into(), Err("Compile")),
        ("[url:value MATCHES 'a(?=b)']".into(), Err("Compile")),
        // Compiled size over the limit.
        (
            "[url:value MATCHES '\\\\w{1000}\\\\w{1000}\\\\w{1000}']".into(),
            Err("Compile"),
        ),
        (
            "[url:value LIKE '%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%a%']".into(),
            Ok(Inserted::Confirmed),
        ),
        (
            "([ipv4-addr:value = '1.1.1.1'] REPEATS 100000 TIMES)".into(),
            Err("Compile"),
        ),
    ];
    let mut index = Index::default();
    for (i, (pattern, want)) in cases.iter().enumerate() {
        let got = index.insert_json(indicator(i as u32 + 1, pattern).as_bytes(), now());
        let got = got.map_err(|e| {
            let kind = match e.kind {
                IndicatorErrorKind::Parse(_) => "Parse",
                IndicatorErrorKind::Compile(_) => "Compile",
                _ => "other",
            };
            assert!(
                e.to_string()
                    .starts_with(&format!("indicator indicator--{:08x}", i + 1)),
                "{e}"
            );
            kind
        });
        assert_eq!(&got, want, "pattern #{i} ({} bytes)", pattern.len());
    }
    // Matching a hostile value against the catastrophic regexes and the big IN list
    // finishes (linear-time engine) and gives the evaluator's answer.
    let long_a = format!("http://x/{}", "a".repeat(50_000));
    let mut rec = Record::default();
    rec.push(Kind::Url, long_a.as_str().into());
    rec.push(Kind::Ip, "10.20.30.1".into());
    let mut hits = Vec::new();
    let mut stats = MatchStats::default();
    index.match_record(&rec, now(), &mut hits, &mut stats);
    let mut got: Vec<String> = hits.iter().map(|h| h.indicator.id()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "indicator--00000002-0000-4000-8000-000000000000", // 10.20.30.1 is in the list
            "indicator--00000006-0000-4000-8000-000000000000", // (a+)+$ matches
            "indicator--0000000b-0000-4000-8000-000000000000", // LIKE %a%
        ]
    );
}

#[test]
fn unusable_indicators_are_reported_with_their_id() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "indicator (no id): not JSON"),
        (r#"{"type":"malware","id":"malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}"#.into(), "not an indicator"),
        (r#"{"type":"indicator","id":"indicator--nope","pattern":"[a:b = 1]","pattern_type":"stix"}"#.into(), "id is missing"),
        (indicator(7, "[ipv4-addr:value = ]"), "indicator indicator--00000007-0000-4000-8000-000000000000: pattern does not parse"),
        (indicator(8, "[ipv4-addr:value = '1.1.1.1'").replace("2020-01-01T00:00:00Z", "yesterday"), "valid_from"),
    ];
    let (index, report) = Index::build(
        cases.iter().map(|(t, _)| t.as_bytes()),
        now(),
        IndexConfig::default(),
    );
    assert_eq!(index.stats().live, 0);
    assert_eq!(report.errors.len(), cases.len());
    for (e, (_, fragment)) in report.errors.iter().zip(&cases) {
        assert!(
            e.to_string().contains(fragment),
            "{e} should contain {fragment:?}"
        );
    }
}

/// Lines for the batching equivalence test: hits, misses, malformed, blank, too long
/// (over a limit of 120 bytes), `\r` endings, a STIX-free time field.
fn hunt_line() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::sample::select(vec![
        r#"{"src_ip":"10.0.0.1","dest_ip":"10.0.0.9"}"#.to_owned(),
        r#"{"timestamp":"2024-01-01T00:00:01.000000+0000","src_ip":"10.0.0.9","dest_ip":"10.0.0.2"}"#.to_owned(),
        r#"{"src_ip":"10.0.0.3","dns":{"rrname":"evil.test"}}"#.to_owned(),
        r#"{"src_ip":"10.0.0.4"}"#.to_owned(),
        "{\"src_ip\":\"10.0.0.1\"}\r".to_owned(),
        "{\"src_ip\":\"10.0.0.1\"".to_owned(),
        "garbage".to_owned(),
        String::new(),
        "  \t".to_owned(),
        "\r".to_owned(),
        format!(r#"{{"src_ip":"10.0.0.1","pad":"{}"}}"#, "x".repeat(150)),
        format!("{}\r", "y".repeat(120)),
    ])
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// `feed` and `read` (which match lines in batches) give exactly what `line` gives
    /// line by line: the same hits per line, in order, and the same counters and error
    /// samples, whatever the reader's buffer size.
    #[test]
    fn batched_hunts_equal_line_by_line(
        lines in proptest::collection::vec(hunt_line(), 0..90),
        trailing_newline in proptest::prelude::any::<bool>(),
        capacity in 1usize..300,
    ) {
        let index = {
            let texts = [
                indicator(1, "[ipv4-addr:value = '10.0.0.1']"),
                indicator(2, "[domain-name:value = 'evil.test']"),
                indicator(3, "[network-traffic:dst_ref.value = '10.0.0.2']"),
            ];
            Index::build(texts.iter().map(|t| t.as_bytes()), now(), IndexConfig::default()).0
        };
        let config = HuntConfig { max_line_bytes: 120, error_sample: 4 };
        let mut input = lines.join("\n");
        if trailing_newline && !input.is_empty() {
            input.push('\n');
        }
        // Line by line.
        let mut one = Hunt::new(&Suricata, config.clone());
        let mut want: Vec<Vec<String>> = Vec::new();
        let mut rest = input.as_bytes();
        while !rest.is_empty() {
            let (line, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let hits = one.line(&index, line, now());
            if !hits.is_empty() {
                want.push(hits.iter().map(|h| format!("{:?}", h)).collect());
            }
        }
        // In batches, from memory and from a reader.
        for via_reader in [false, true] {
            let mut hunt = Hunt::new(&Suricata, config.clone());
            let mut got: Vec<Vec<String>> = Vec::new();
            let mut sink = |h: &[phalanx_detect::Hit]| {
                got.push(h.iter().map(|h| format!("{:?}", h)).collect());
            };
            if via_reader {
                let r = std::io::BufReader::with_capacity(capacity, Cursor::new(input.as_bytes()));
                hunt.read(&index, r, now(), &mut sink).unwrap();
            } else {
                hunt.feed(&index, input.as_bytes(), now(), &mut sink);
            }
            proptest::prop_assert_eq!(&got, &want, "reader={}", via_reader);
            // The reader does not hold an over-long line, so its message gives no length.
            let same = |s: &phalanx_detect::LineStats| {
                let mut s = s.clone();
                for e in &mut s.error_sample {
                    if e.message.contains("the limit of") {
                        e.message = "too long".into();
                    }
                }
                s
            };
            proptest::prop_assert_eq!(same(hunt.stats()), same(one.stats()), "reader={}", via_reader);
        }
    }
}
