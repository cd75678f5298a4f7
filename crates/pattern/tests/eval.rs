//! Evaluator: semantics tables over a fixed set of observations, errors, hostile input.

use std::collections::HashMap;
use std::time::Instant;

use phalanx_pattern::{CompileError, Limits, MatchError, Pattern};
use proptest::prelude::*;
use serde_json::{Value, json};

fn od(first: &str, last: &str, n: u64, refs: &[&str]) -> Value {
    json!({"type": "observed-data", "id": format!("observed-data--{first}"),
           "first_observed": first, "last_observed": last, "number_observed": n,
           "object_refs": refs})
}

/// Observations 0..=4 and the SCOs they reference.
fn fixture() -> (Vec<Value>, HashMap<String, Value>) {
    let ods = vec![
        od(
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            1,
            &["ipv4-addr--1", "network-traffic--1"],
        ),
        od(
            "2024-01-01T00:00:30Z",
            "2024-01-01T00:00:30Z",
            1,
            &["domain-name--1", "ipv6-addr--1"],
        ),
        od(
            "2024-01-01T00:01:00Z",
            "2024-01-01T00:02:00Z",
            3,
            &["file--1", "artifact--1"],
        ),
        // STIX 2.0 style: embedded objects, references by key.
        json!({"type": "observed-data", "first_observed": "2024-01-01T00:05:00Z",
               "last_observed": "2024-01-01T00:05:00Z", "number_observed": 1,
               "objects": {"0": {"type": "process", "name": "child", "parent_ref": "1"},
                           "1": {"type": "process", "name": "parent"}}}),
        od(
            "2024-01-01T00:06:00Z",
            "2024-01-01T00:06:00Z",
            1,
            &["identity--1", "user-account--1"],
        ),
    ];
    let scos = [
        json!({"type": "ipv4-addr", "id": "ipv4-addr--1", "value": "198.51.100.7"}),
        json!({"type": "network-traffic", "id": "network-traffic--1", "dst_ref": "ipv4-addr--1",
               "src_port": 443, "protocols": ["tcp", "http"], "is_active": true}),
        json!({"type": "domain-name", "id": "domain-name--1", "value": "evil.example",
               "resolves_to_refs": ["ipv6-addr--1", "ipv4-addr--1"]}),
        json!({"type": "ipv6-addr", "id": "ipv6-addr--1", "value": "2001:db8::1"}),
        json!({"type": "file", "id": "file--1", "name": "a.exe", "size": 100,
               "hashes": {"SHA-256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"},
               "magic_number_hex": "ffd8", "parent_directory_ref": "directory--1",
               "x_note": "line1\nline2", "ctime": "2023-05-01T10:00:00.5Z",
               "x_composed": "\u{e9}t\u{e9}"}),
        // Resolvable, but not in any object_refs: must not be dereferenced.
        json!({"type": "directory", "id": "directory--1", "path": "C:\\"}),
        json!({"type": "artifact", "id": "artifact--1", "payload_bin": "/9g=",
               "mime_type": "image/jpeg"}),
        json!({"type": "identity", "id": "identity--1", "name": "not an SCO"}),
        json!({"type": "user-account", "id": "user-account--1", "user_id": "1007",
               "account_login": null}),
    ];
    let map = scos
        .into_iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s))
        .collect();
    (ods, map)
}

/// `Some(observations)` = must match with exactly that first binding; `None` = no match.
const MATCHES: &[(&str, Option<&[usize]>)] = &[
    ("[ipv4-addr:value = '198.51.100.7']", Some(&[0])),
    // `=` compares strings: a CIDR literal does not equal the address (STANDARDS §2.7).
    ("[ipv4-addr:value = '198.51.100.7/32']", None),
    ("[ipv4-addr:value ISSUBSET '198.51.100.0/24']", Some(&[0])),
    ("[ipv4-addr:value NOT ISSUBSET '10.0.0.0/8']", Some(&[0])),
    ("[ipv6-addr:value ISSUBSET '2001:db8::/32']", Some(&[1])),
    ("[ipv6-addr:value ISSUBSET '198.51.100.0/24']", None),
    (
        "[network-traffic:dst_ref.value = '198.51.100.7']",
        Some(&[0]),
    ),
    ("[network-traffic:protocols[1] = 'http']", Some(&[0])),
    ("[network-traffic:protocols[2] = 'http']", None),
    ("[network-traffic:protocols[-1] = 'http']", None),
    ("[network-traffic:protocols[*] = 'http']", Some(&[0])),
    ("[network-traffic:src_port IN (80, 443.0)]", Some(&[0])),
    (
        "[network-traffic:src_port > 442.5 AND network-traffic:src_port <= 443]",
        Some(&[0]),
    ),
    ("[network-traffic:is_active = true]", Some(&[0])),
    ("[network-traffic:is_active = 1]", None),
    ("[network-traffic:is_active < 2]", None),
    ("[network-traffic:is_active NOT < 2]", None),
    // `*_refs` dereferences only to SCOs of the same observed-data.
    (
        "[domain-name:resolves_to_refs[*].value = '2001:db8::1']",
        Some(&[1]),
    ),
    (
        "[domain-name:resolves_to_refs[*].value = '198.51.100.7']",
        None,
    ),
    (
        "[domain-name:resolves_to_refs[0].value = '2001:db8::1']",
        Some(&[1]),
    ),
    ("[file:parent_directory_ref.path = 'C:\\\\']", None),
    // All comparisons of one [...] on the same SCO.
    (
        "[file:name = 'a.exe' AND ipv4-addr:value = '198.51.100.7']",
        None,
    ),
    (
        "[file:name = 'a.exe' OR ipv4-addr:value = '0.0.0.0']",
        Some(&[2]),
    ),
    (
        "[file:name = 'a.exe' AND (file:size = 1 OR file:size = 100)]",
        Some(&[2]),
    ),
    // Type mismatch: false, except != which is true; a missing property is false.
    ("[file:size = '100']", None),
    ("[file:size != '100']", Some(&[2])),
    ("[file:missing != 1]", None),
    ("[file:missing NOT = 1]", None),
    ("[EXISTS file:hashes.'SHA-256']", Some(&[2])),
    ("[NOT EXISTS file:hashes.MD5]", Some(&[2])),
    ("[NOT EXISTS file:hashes.'SHA-256']", None),
    ("[user-account:account_login = 'x']", None),
    ("[user-account:account_login != 'x']", Some(&[4])),
    // Binary: *_hex / *_bin properties compare as octets.
    ("[file:magic_number_hex = h'FFD8']", Some(&[2])),
    ("[file:magic_number_hex = b'/9g=']", Some(&[2])),
    ("[artifact:payload_bin = h'ffd8']", Some(&[2])),
    ("[artifact:payload_bin > h'ff']", Some(&[2])),
    (r"[artifact:payload_bin MATCHES '^\\xff\\xd8$']", Some(&[2])),
    ("[artifact:payload_bin = '\u{ff}\u{d8}']", Some(&[2])),
    ("[artifact:payload_bin = '\u{1ff}\u{d8}']", None),
    // Strings by code point; LIKE / MATCHES on NFC, `.`/`%` cross newlines.
    ("[file:name > 'A']", Some(&[2])),
    ("[file:name LIKE 'A%']", None),
    ("[file:name LIKE '_.exe']", Some(&[2])),
    ("[file:name LIKE 'a.ex']", None),
    ("[file:x_note LIKE 'line1%2']", Some(&[2])),
    ("[file:x_note MATCHES '1.line']", Some(&[2])),
    (r"[file:name MATCHES '^a\\.exe$']", Some(&[2])),
    ("[file:name MATCHES 'EXE']", None),
    ("[file:name MATCHES '(?i)EXE']", Some(&[2])),
    ("[file:x_composed LIKE 'e\u{301}t%']", Some(&[2])),
    ("[file:x_composed = 'e\u{301}t\u{e9}']", None),
    // Timestamps: t'..' against JSON strings.
    ("[file:ctime = t'2023-05-01T10:00:00.500Z']", Some(&[2])),
    ("[file:ctime < t'2023-05-01T10:00:01Z']", Some(&[2])),
    // SDOs referenced by observed-data are not pattern roots.
    ("[identity:name = 'not an SCO']", None),
    ("[observed-data:number_observed = 1]", None),
    // 2.0-style embedded objects and references by key.
    ("[process:parent_ref.name = 'parent']", Some(&[3])),
    (
        "[process:name = 'child'] AND [process:name = 'parent']",
        None,
    ),
    // number_observed: 3 counts as three observations.
    ("[file:size = 100] REPEATS 3 TIMES", Some(&[2])),
    ("[file:size = 100] REPEATS 4 TIMES", None),
    ("([file:size = 100] REPEATS 2 TIMES) REPEATS 2 TIMES", None),
    (
        "([file:size = 100] REPEATS 1 TIMES) REPEATS 3 TIMES",
        Some(&[2]),
    ),
    (
        "[file:size = 100] AND [file:size = 100] AND [file:size = 100]",
        Some(&[2]),
    ),
    (
        "[ipv4-addr:value = '198.51.100.7'] AND [ipv4-addr:value = '198.51.100.7']",
        None,
    ),
    // Observation operators need distinct observations and FOLLOWEDBY orders by time.
    (
        "[ipv4-addr:value = '198.51.100.7'] OR [process:name = 'nope']",
        Some(&[0]),
    ),
    (
        "[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [domain-name:value = 'evil.example']",
        Some(&[0, 1]),
    ),
    (
        "[domain-name:value = 'evil.example'] FOLLOWEDBY [ipv4-addr:value = '198.51.100.7']",
        None,
    ),
    (
        "[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [domain-name:value = 'evil.example'] FOLLOWEDBY [file:size = 100]",
        Some(&[0, 1, 2]),
    ),
    ("[file:size = 100] FOLLOWEDBY [file:size = 100]", Some(&[2])),
    // Qualifiers: non-greedy binding, WITHIN windows, START inclusive / STOP exclusive.
    (
        "([ipv4-addr:value = '198.51.100.7'] AND [domain-name:value = 'evil.example']) WITHIN 30 SECONDS",
        Some(&[0, 1]),
    ),
    (
        "([ipv4-addr:value = '198.51.100.7'] AND [domain-name:value = 'evil.example']) WITHIN 29.5 SECONDS",
        None,
    ),
    (
        "[ipv4-addr:value = '198.51.100.7'] AND [domain-name:value = 'evil.example'] WITHIN 1 SECONDS",
        Some(&[0, 1]),
    ),
    (
        "([ipv4-addr:value = '198.51.100.7'] AND [file:size = 100]) WITHIN 60 SECONDS",
        Some(&[0, 2]),
    ),
    (
        "([ipv4-addr:value = '198.51.100.7'] AND [file:size = 100]) WITHIN 59 SECONDS",
        None,
    ),
    (
        "[domain-name:value = 'evil.example'] START t'2024-01-01T00:00:30Z' STOP t'2024-01-01T00:00:31Z'",
        Some(&[1]),
    ),
    (
        "[domain-name:value = 'evil.example'] START t'2024-01-01T00:00:00Z' STOP t'2024-01-01T00:00:30Z'",
        None,
    ),
    (
        "[file:size = 100] START t'2024-01-01T00:02:00Z' STOP t'2024-01-01T00:03:00Z'",
        Some(&[2]),
    ),
    (
        "[file:size = 100] START t'2024-01-01T00:03:00Z' STOP t'2024-01-01T00:02:00Z'",
        None,
    ),
    (
        "[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [file:size = 100] REPEATS 3 TIMES",
        Some(&[0, 2]),
    ),
    (
        "([ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [file:size = 100]) REPEATS 2 TIMES",
        None,
    ),
];

#[test]
fn semantics_table() {
    let (ods, scos) = fixture();
    for (pattern, want) in MATCHES {
        let m = Pattern::parse(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .compile()
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let got = m
            .find(&ods, &scos)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(got.as_deref(), *want, "{pattern}");
        assert_eq!(m.matches(&ods, &scos).unwrap(), want.is_some(), "{pattern}");
    }
}

/// (pattern, expected error kind, text the message contains).
type CompileCase = (&'static str, fn(&CompileError) -> bool, &'static str);

#[test]
fn compile_errors_say_what_and_where() {
    let cases: &[CompileCase] = &[
        (
            "[a:b MATCHES '(?<=a)b']",
            |e| matches!(e, CompileError::Regex { .. }),
            "regular expression in `a:b MATCHES '(?<=a)b'` cannot be used",
        ),
        (
            "[a:b MATCHES '(a)\\\\1']",
            |e| matches!(e, CompileError::Regex { .. }),
            "cannot be used",
        ),
        (
            "[a:b = 1] REPEATS 0 TIMES",
            |e| matches!(e, CompileError::Qualifier { .. }),
            "qualifier `REPEATS 0 TIMES` is invalid: REPEATS needs at least 1",
        ),
        (
            "[a:b = 1] WITHIN 0 SECONDS",
            |e| matches!(e, CompileError::Qualifier { .. }),
            "WITHIN needs a positive number of seconds",
        ),
        (
            "[a:b IN (1, 'x')]",
            |e| matches!(e, CompileError::MixedSet { .. }),
            "`a:b IN (1, 'x')`: IN list mixes value types",
        ),
        (
            "[a:b = t'2016-02-30T00:00:00Z']",
            |e| matches!(e, CompileError::Timestamp { .. }),
            "timestamp \"2016-02-30T00:00:00Z\" does not exist",
        ),
        (
            "[a:b ISSUBSET 'nope']",
            |e| matches!(e, CompileError::Network { .. }),
            "\"nope\" is not an IP address or CIDR block",
        ),
        (
            "[a:b = 1] REPEATS 1000 TIMES",
            |e| matches!(e, CompileError::BindingTooLarge { needed: 1000, .. }),
            "a match needs 1000 observations, more than the limit of 256",
        ),
        (
            "[a:b MATCHES '\\\\w{1000}{1000}']",
            |e| matches!(e, CompileError::Regex { .. }),
            "cannot be used",
        ),
    ];
    for (pattern, kind, text) in cases {
        let err = Pattern::parse(pattern).unwrap().compile().unwrap_err();
        assert!(kind(&err), "{pattern}: {err:?}");
        assert!(err.to_string().contains(text), "{pattern}: {err}");
    }
}

#[test]
fn bad_observations_are_errors() {
    let (_, scos) = fixture();
    let m = Pattern::parse("[file:size = 100]")
        .unwrap()
        .compile()
        .unwrap();
    let cases = [
        (
            json!({"type": "observed-data", "last_observed": "2024-01-01T00:00:00Z", "number_observed": 1}),
            "observed-data #0: missing or non-string first_observed",
        ),
        (
            od("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", 0, &[]),
            "observed-data #0: number_observed must be an integer >= 1",
        ),
        (
            od("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", 1, &[]),
            "observed-data #0: first_observed is after last_observed",
        ),
        (
            od("2024-01-01T00:00:00", "2024-01-01T00:00:00Z", 1, &[]),
            "observed-data #0: first_observed: not a STIX timestamp",
        ),
    ];
    for (o, want) in cases {
        let err = m.matches(&[o], &scos).unwrap_err();
        assert!(err.to_string().starts_with(want), "{err}");
    }
    // A string compared with a timestamp literal must be a timestamp (reference behaviour).
    let (ods, scos) = fixture();
    let m = Pattern::parse("[file:name = t'2024-01-01T00:00:00Z']")
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(
        m.matches(&ods, &scos),
        Err(MatchError::BadTimestamp {
            index: 2,
            value: "a.exe".into()
        })
    );
}

#[test]
fn catastrophic_regex_is_linear() {
    let started = Instant::now();
    let long = format!("{}b", "a".repeat(100_000));
    let ods = vec![od(
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z",
        1,
        &["x--1"],
    )];
    let scos = HashMap::from([(
        "x--1".to_owned(),
        json!({"type": "x", "id": "x--1", "v": long}),
    )]);
    for (pattern, want) in [
        ("[x:v MATCHES '(a+)+$']", false),
        ("[x:v MATCHES '^(a|aa)+b$']", true),
        ("[x:v LIKE '%a%a%a%a%a%c']", false),
    ] {
        let m = Pattern::parse(pattern).unwrap().compile().unwrap();
        assert_eq!(m.matches(&ods, &scos).unwrap(), want, "{pattern}");
    }
    // Sanity bound only (not a benchmark): backtracking engines take years here.
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn search_budget_stops_combinatorial_explosion() {
    let ods: Vec<Value> = (0..40)
        .map(|i| {
            let t = format!("2024-01-01T00:{:02}:00Z", i);
            od(&t, &t, 1, &["x--1"])
        })
        .collect();
    let scos = HashMap::from([(
        "x--1".to_owned(),
        json!({"type": "x", "id": "x--1", "v": 1}),
    )]);
    let limits = Limits {
        max_match_steps: 50_000,
        ..Limits::default()
    };
    // Ten distinct observations within one second: impossible, and C(40,10) bindings.
    let p = Pattern::parse_with("([x:v = 1] REPEATS 10 TIMES) WITHIN 1 SECONDS", &limits).unwrap();
    assert_eq!(
        p.compile().unwrap().matches(&ods, &scos),
        Err(MatchError::Budget { steps: 50_001 })
    );
    // Possible ones are found at once.
    let p = Pattern::parse_with("[x:v = 1] REPEATS 40 TIMES", &limits).unwrap();
    assert_eq!(p.compile().unwrap().matches(&ods, &scos), Ok(true));
    let ands = vec!["[x:v = 1]"; 30].join(" AND ");
    let p = Pattern::parse_with(&ands, &limits).unwrap();
    assert_eq!(p.compile().unwrap().matches(&ods, &scos), Ok(true));
    // The reference's 20-observation explosion cases finish within the default budget.
    let p = Pattern::parse("([x:v = 1] REPEATS 10 TIMES) WITHIN 8 SECONDS").unwrap();
    let twenty: Vec<Value> = (0..20)
        .map(|i| {
            let t = format!("2024-01-01T00:00:{:02}Z", i);
            od(&t, &t, 1, &["x--1"])
        })
        .collect();
    assert_eq!(p.compile().unwrap().matches(&twenty, &scos), Ok(false));
}

#[test]
fn huge_number_observed_is_capped() {
    let ods = vec![od(
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z",
        u64::MAX,
        &["x--1"],
    )];
    let scos = HashMap::from([(
        "x--1".to_owned(),
        json!({"type": "x", "id": "x--1", "v": 1}),
    )]);
    let m = Pattern::parse("[x:v = 1] REPEATS 200 TIMES")
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(m.find(&ods, &scos), Ok(Some(vec![0])));
}

proptest! {
    /// Whatever parses, compiles and evaluates without panicking.
    #[test]
    fn evaluation_never_panics(s in "[\\[\\]() a-z:=!<>'.*0-9%_-]{0,60}", extra in 0usize..3) {
        let (ods, scos) = fixture();
        let text = format!("[{s}]{}", " AND [file:size > 1]".repeat(extra));
        if let Ok(p) = Pattern::parse(&text)
            && let Ok(m) = p.compile()
        {
            let _ = m.matches(&ods, &scos);
        }
    }
}
