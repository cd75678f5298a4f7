//! Parser and printer: tables, hostile inputs, and property tests.

use std::time::Instant;

use phalanx_pattern::ast::*;
use phalanx_pattern::{Limits, ParseError, Pattern, Span};
use proptest::prelude::*;

/// (input, canonical print). Includes STIX 2.1 §9 examples.
const CANONICAL: &[(&str, &str)] = &[
    ("[file:size = 1280]", "[file:size = 1280]"),
    ("[file:size==1280]", "[file:size = 1280]"),
    ("[file:size <> 1280]", "[file:size != 1280]"),
    (
        "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
        "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    ),
    (
        "[email-message:from_ref.value MATCHES '.+\\\\@example\\\\.com$' AND email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
        "[email-message:from_ref.value MATCHES '.+\\\\@example\\\\.com$' AND email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
    ),
    (
        "([file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4'] FOLLOWEDBY [windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\foo\\\\bar']) WITHIN 300 SECONDS",
        "([file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4'] FOLLOWEDBY [windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\foo\\\\bar']) WITHIN 300 SECONDS",
    ),
    (
        "[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'example.com'] REPEATS 5 TIMES WITHIN 1800 SECONDS",
        "[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'example.com'] REPEATS 5 TIMES WITHIN 1800 SECONDS",
    ),
    (
        "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
        "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
    ),
    (
        "[file:mime_type = 'image/bmp' AND file:magic_number_hex = h'FFD8']",
        "[file:mime_type = 'image/bmp' AND file:magic_number_hex = h'ffd8']",
    ),
    (
        "[artifact:payload_bin = b'AQIDBA==']",
        "[artifact:payload_bin = h'01020304']",
    ),
    (
        "[(file:name = 'pdf.exe' OR file:size = '371712') AND file:created = t'2014-01-13T07:03:17Z']",
        "[(file:name = 'pdf.exe' OR file:size = '371712') AND file:created = t'2014-01-13T07:03:17Z']",
    ),
    (
        "([file:name = 'foo.dll'] AND [windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\foo\\\\bar']) OR [process:name = 'fooproc' OR process:name = 'procfoo']",
        "[file:name = 'foo.dll'] AND [windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\foo\\\\bar'] OR [process:name = 'fooproc' OR process:name = 'procfoo']",
    ),
    (
        "[a:b = 1] FOLLOWEDBY ([c:d = 2] FOLLOWEDBY [e:f = 3])",
        "[a:b = 1] FOLLOWEDBY ([c:d = 2] FOLLOWEDBY [e:f = 3])",
    ),
    (
        "([a:b = 1] FOLLOWEDBY [c:d = 2]) FOLLOWEDBY [e:f = 3]",
        "([a:b = 1] FOLLOWEDBY [c:d = 2]) FOLLOWEDBY [e:f = 3]",
    ),
    (
        "[a:b = 1] FOLLOWEDBY [c:d = 2] FOLLOWEDBY [e:f = 3]",
        "[a:b = 1] FOLLOWEDBY [c:d = 2] FOLLOWEDBY [e:f = 3]",
    ),
    // Qualifiers bind to the nearest observation expression (non-greedy).
    (
        "[a:b = 1] FOLLOWEDBY [c:d = 2] REPEATS 5 TIMES",
        "[a:b = 1] FOLLOWEDBY [c:d = 2] REPEATS 5 TIMES",
    ),
    (
        "([a:b = 1]) WITHIN 5 SECONDS WITHIN 6 SECONDS",
        "([a:b = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS",
    ),
    ("[NOT EXISTS a:b]", "[NOT EXISTS a:b]"),
    ("[a:b NOT IN ()]", "[a:b NOT IN ()]"),
    (
        "[a:b IN (1, -2, +3, 0.5, .5, -.5, 'x', true, t'2016-12-31T23:59:60Z')]",
        "[a:b IN (1, -2, 3, 0.5, 0.5, -0.5, 'x', true, t'2016-12-31T23:59:60Z')]",
    ),
    (
        "[a:'b c'.'d'[0][-1][+2] = 'it\\'s'] ",
        "[a:'b c'.d[0][-1][2] = 'it\\'s']",
    ),
    ("[a:b.'AND'.'true' = 1]", "[a:b.'AND'.'true' = 1]"),
    ("/* note */ [a:b = 1] // trailing", "[a:b = 1]"),
    ("[a:b\u{3000}=\u{a0}1]", "[a:b = 1]"),
    (
        "[a:b = 1]AND[c:d = 2] REPEATS 2TIMES",
        "[a:b = 1] AND [c:d = 2] REPEATS 2 TIMES",
    ),
    (
        "[a:b = 1] WITHIN .25 SECONDS",
        "[a:b = 1] WITHIN 0.25 SECONDS",
    ),
];

#[test]
fn canonical_printing() {
    for (input, want) in CANONICAL {
        let p = Pattern::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(p.to_string(), *want, "{input:?}");
        assert_eq!(
            Pattern::parse(want).unwrap(),
            p,
            "{want:?} re-parses to the same tree"
        );
    }
}

/// (input, error message). Messages carry byte spans.
const ERRORS: &[(&str, &str)] = &[
    (
        "file:size = 1280",
        "expected '[' or '(' at 0..4, found 'file'",
    ),
    (
        "[file:size = ]",
        "expected a literal (number, string, b'..', h'..', t'..', true, false) at 13..14, found ']'",
    ),
    (
        "[file:size = 1 AND]",
        "expected an object path, 'NOT', 'EXISTS' or '(' at 18..19, found ']'",
    ),
    (
        "[a:b = 1] AND",
        "expected '[' or '(' at 13..13, found end of input",
    ),
    ("[a:b = 1", "expected ']' at 8..8, found end of input"),
    (
        "[file.size = 1280]",
        "expected ':' after the object type at 5..6, found '.'",
    ),
    (
        "[a:b = 1] within 2 seconds",
        "expected end of input at 10..16, found 'within'",
    ),
    (
        "[a:b = 1] WITHIN 5 HOURS",
        "expected 'SECONDS' at 19..24, found 'HOURS'",
    ),
    (
        "[a:b = 1] WITHIN -5 SECONDS",
        "expected a positive number after WITHIN at 17..19, found '-5'",
    ),
    (
        "[a:b = 1] REPEATS 1.5 TIMES",
        "expected a positive integer after REPEATS at 18..21, found '1.5'",
    ),
    ("[a:b =? 1]", "invalid character '?' at 6..7"),
    (
        "[a:b = 'x\\n']",
        "invalid escape in string (only \\' and \\\\ are allowed) at 9..11",
    ),
    ("[a:b = 'x]", "unterminated string at 7..10"),
    (
        "[a:b = b'====']",
        "invalid binary literal (padded base64) at 7..14",
    ),
    (
        "[a:b = h'abc']",
        "invalid hex literal (an even number of hex digits) at 7..13",
    ),
    (
        "[a:b = t'2457-73-22T32:81:84.1Z']",
        "invalid timestamp literal (YYYY-MM-DDTHH:MM:SS[.s+]Z) at 7..32",
    ),
    (
        "[a:b > true]",
        "expected an orderable literal (number, string, b'..', h'..', t'..') at 7..11, found 'true'",
    ),
    (
        "[a:b-c = 1]",
        "expected a property name or quoted key after ':' at 3..6, found 'b-c'",
    ),
    (
        "[a:b LIKE 1]",
        "expected a string literal at 10..11, found '1'",
    ),
    (
        "[a:b = 99999999999999999999]",
        "number 99999999999999999999 at 7..27 is out of range",
    ),
    (
        "[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS",
        "duplicate WITHIN qualifier at 27..43 on the same observation expression",
    ),
    ("[a:b = 1] /* open", "unterminated comment at 10..17"),
    ("[NOT a:b = 1]", "expected 'EXISTS' at 5..6, found 'a'"),
];

#[test]
fn error_messages_say_what_and_where() {
    for (input, want) in ERRORS {
        let err = Pattern::parse(input).expect_err(input);
        assert_eq!(err.to_string(), *want, "{input:?}");
        if let Some(Span { start, end }) = err.span() {
            assert!(
                start <= end && end <= input.len(),
                "{input:?}: span {start}..{end}"
            );
        }
    }
}

/// Behaviour of the reference parser (stix2-patterns 2.1.2, `Pattern()` / `validate()`),
/// probed case by case: (pattern, accepted).
const REFERENCE_GRAMMAR: &[(&str, bool)] = &[
    ("[a:b[-1] = 1]", true),
    ("[a:b[01] = 1]", false),
    ("[a:b = 01]", false),
    ("[a:b = +1]", true),
    ("[a:b = 1.]", false),
    ("[a:b = 1e5]", false),
    ("[a:b = b'YQ==']", true),
    ("[a:b = b'YQ=']", false),
    ("[a:b = b'YR==']", true),
    ("[a:b = b'']", false),
    ("[a:b = h'']", true),
    ("[a:b = h'aB']", true),
    ("[a:b = True]", false),
    ("[a:b = 'a\\b']", false),
    ("[a:b = t'2016-12-31T23:59:59.Z']", false),
    ("[a:b = t'2016-02-30T00:00:00Z']", true),
    ("[a:b = t'2016-12-31T23:59:60Z']", true),
    ("[a:b = t'2016-12-31 23:59:59Z']", false),
    ("[a:b IN (1,)]", false),
    ("[a:b NOT EXISTS]", false),
    ("[a:b NOT NOT = 1]", false),
    ("[a:b = 1] REPEATS 0 TIMES", true),
    ("[a:b = 1] WITHIN 0 SECONDS", true),
    ("[a:b = 1] REPEATS 01 TIMES", false),
    ("[a:b = 1] WITHIN +1 SECONDS", true),
    ("[a:b = 1] LAST 5 SECONDS", false),
    ("[a:AND = 1]", false),
    ("[AND:b = 1]", false),
    ("[true:b = 1]", false),
    ("[1a:b = 1]", false),
    ("[a:_b = 1]", true),
    ("[a-:b = 1]", true),
    ("[a:'' = 1]", true),
    ("[a:b = 1] ([c:d=1])", false),
    ("([a:b = 1]", false),
    ("[a:b = 1])", false),
    ("[]", false),
    ("(([a:b = 1]))", true),
    ("[((a:b = 1))]", true),
    ("[a:b = 'x' 'y']", false),
    ("[a:b=1]ANDX[c:d=1]", false),
    ("[é:b = 1]", false),
    ("[a:b = 'é\n']", true),
    ("[a:b = 1]\u{85}", true),
    (
        "[a:b = 1] WITHIN 5 SECONDS REPEATS 2 TIMES WITHIN 5 SECONDS",
        false,
    ),
    (
        "[a:b = 1] AND [c:d = 2] WITHIN 5 SECONDS WITHIN 5 SECONDS",
        false,
    ),
    (
        "([a:b = 1] AND [c:d = 2]) WITHIN 5 SECONDS WITHIN 5 SECONDS",
        true,
    ),
    (
        "[a:b = 1] START t'2016-12-31T23:59:59Z' STOP t'2017-12-31T23:59:59Z' START t'2016-12-31T23:59:59Z' STOP t'2017-12-31T23:59:59Z'",
        false,
    ),
];

#[test]
fn agrees_with_probed_reference_grammar() {
    for (input, accepted) in REFERENCE_GRAMMAR {
        let got = Pattern::parse(input);
        assert_eq!(got.is_ok(), *accepted, "{input:?}: {got:?}");
    }
}

#[test]
fn tree_shape() {
    let p = Pattern::parse("[a:b = 1 OR a:c = 2 AND NOT EXISTS a:d] AND [x:y[*] NOT LIKE 'a%']")
        .unwrap();
    let ObservationExpr::And(items) = &p.expr else {
        panic!("{:?}", p.expr)
    };
    assert_eq!(items.len(), 2);
    let ObservationExpr::Observation(ComparisonExpr::Or(or)) = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert!(matches!(&or[1], ComparisonExpr::And(and) if and.len() == 2));
    let ObservationExpr::Observation(ComparisonExpr::Comparison(c)) = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert_eq!(c.path.object_type, "x");
    assert_eq!(
        c.path.steps,
        vec![PathStep::Key("y".into()), PathStep::AnyIndex]
    );
    assert!(c.negated);
    assert_eq!(c.op, Operator::Like("a%".into()));
}

#[test]
fn lint_reports_bad_hashes() {
    let p = Pattern::parse(
        "[file:hashes.'SHA-256' = 'f00' OR file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f']",
    )
    .unwrap();
    let lints = p.lint();
    assert_eq!(lints.len(), 1);
    assert_eq!(lints[0].message, "'f00' is not a valid SHA-256 hash");
    assert_eq!(lints[0].comparison, "file:hashes.'SHA-256' = 'f00'");
}

// ------------------------------------------------------------------ hostile input

#[test]
fn ten_thousand_parentheses_are_refused_quickly() {
    let started = Instant::now();
    let deep = format!("{}[a:b = 1]{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = Pattern::parse(&deep).unwrap_err();
    assert_eq!(
        err,
        ParseError::TooDeep {
            max: 64,
            // The 65th '(' crosses the limit of 64 levels.
            span: Span::new(64, 65)
        }
    );
    let inner = format!("[{}a:b = 1{}]", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(
        Pattern::parse(&inner),
        Err(ParseError::TooDeep { .. })
    ));
    let quals = format!("([a:b = 1]){}", " REPEATS 2 TIMES".repeat(10_000));
    assert!(matches!(
        Pattern::parse(&quals),
        Err(ParseError::TooDeep { .. })
    ));
    // Sanity bound only (not a benchmark): a debug build takes milliseconds.
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn limits_are_named_and_enforced() {
    let limits = Limits {
        max_pattern_bytes: 100,
        max_in_list: 3,
        max_depth: 2,
        ..Limits::default()
    };
    let long = format!("[a:b = '{}']", "x".repeat(200));
    assert_eq!(
        Pattern::parse_with(&long, &limits),
        Err(ParseError::TooLong { len: 210, max: 100 })
    );
    assert!(matches!(
        Pattern::parse_with("[a:b IN (1, 2, 3, 4)]", &limits),
        Err(ParseError::TooManyValues { max: 3, .. })
    ));
    assert!(Pattern::parse_with("[a:b IN (1, 2, 3)]", &limits).is_ok());
    assert!(Pattern::parse_with("([a:b = 1])", &limits).is_ok());
    assert!(Pattern::parse_with("(([a:b = 1]))", &limits).is_err());
}

#[test]
fn huge_in_list_is_refused_and_large_one_accepted() {
    let values = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let huge = format!("[a:b IN ({})]", values(20_000));
    assert!(matches!(
        Pattern::parse(&huge),
        Err(ParseError::TooManyValues { max: 10_000, .. })
    ));
    let large = format!("[a:b IN ({})]", values(10_000));
    let p = Pattern::parse(&large).unwrap();
    assert!(p.compile().is_ok());
}

#[test]
fn long_flat_chains_are_not_nesting() {
    // Thousands of ORed indicators are common; chains are flat, not deep.
    let ors = (0..5_000)
        .map(|i| format!("file:name = 'f{i}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let p = Pattern::parse(&format!("[{ors}]")).unwrap();
    let ObservationExpr::Observation(ComparisonExpr::Or(items)) = &p.expr else {
        panic!("flat OR expected")
    };
    assert_eq!(items.len(), 5_000);
    assert_eq!(Pattern::parse(&p.to_string()).unwrap(), p);
}

// ------------------------------------------------------------------ properties

const TOKENS: &[&str] = &[
    "[",
    "]",
    "(",
    ")",
    "a:b",
    "file:hashes.'SHA-256'",
    "x:y[*].z_ref.w",
    "=",
    "!=",
    "<",
    ">=",
    "'x'",
    "'it\\'s'",
    "AND",
    "OR",
    "FOLLOWEDBY",
    "WITHIN",
    "5",
    "-1",
    "1.5",
    ".5",
    "SECONDS",
    "REPEATS",
    "TIMES",
    "START",
    "STOP",
    "t'2016-01-01T00:00:00Z'",
    "NOT",
    "EXISTS",
    "IN",
    "(1,2)",
    "h'ab'",
    "b'YQ=='",
    ",",
    ".",
    "[*]",
    "[0]",
    "LIKE",
    "MATCHES",
    "ISSUBSET",
    "ISSUPERSET",
    "'",
    "\\",
    "/*",
    "*/",
    "//",
    "true",
    "\u{a0}",
    "é",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..40).prop_map(|v| {
        v.into_iter()
            .map(|(t, space)| if space { format!("{t} ") } else { t.to_owned() })
            .collect()
    })
}

fn check_no_panic(s: &str) {
    if let Ok(p) = Pattern::parse(s) {
        let printed = p.to_string();
        let again = Pattern::parse(&printed)
            .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?} fails: {e}"));
        assert_eq!(again, p, "{s:?} -> {printed:?}");
        let _ = p.lint();
        let _ = p.compile();
    }
}

proptest! {
    #[test]
    fn random_strings_never_panic(s in any::<String>()) {
        check_no_panic(&s);
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        check_no_panic(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn token_soup_never_panics(s in token_soup()) {
        check_no_panic(&s);
    }

    #[test]
    fn print_then_parse_is_identity(e in observation_expr()) {
        let printed = e.to_string();
        let parsed = Pattern::parse(&printed)
            .unwrap_or_else(|err| panic!("{printed:?}: {err}"));
        prop_assert_eq!(&parsed.expr, &e, "{}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }
}

// ------------------------------------------------------------------ AST generator

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,6}"
}

fn object_type() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_-]{0,8}".prop_filter("reserved words are not identifiers", |s| {
        !matches!(s.as_str(), "true" | "false")
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        ident(),
        any::<String>(),
        Just("AND".to_owned()),
        Just("a-b".to_owned())
    ]
}

fn path() -> impl Strategy<Value = ObjectPath> {
    let step = prop_oneof![
        key().prop_map(PathStep::Key),
        any::<i64>().prop_map(PathStep::Index),
        Just(PathStep::AnyIndex),
    ];
    (object_type(), key(), prop::collection::vec(step, 0..3)).prop_map(|(t, first, rest)| {
        let mut steps = vec![PathStep::Key(first)];
        steps.extend(rest);
        ObjectPath {
            object_type: t,
            steps,
        }
    })
}

fn timestamp() -> impl Strategy<Value = TimestampLiteral> {
    (
        0u32..10_000,
        1u32..=12,
        1u32..=31,
        0u32..24,
        0u32..60,
        0u32..=60,
        prop::option::of("[0-9]{1,12}"),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z");
            TimestampLiteral::new(&text).expect("generated timestamps are valid")
        })
}

fn literal(allow_bool: bool) -> BoxedStrategy<Literal> {
    let mut options = vec![
        any::<i64>().prop_map(Literal::Int).boxed(),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Literal::Float)
            .boxed(),
        any::<String>().prop_map(Literal::Str).boxed(),
        prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(Literal::Binary)
            .boxed(),
        timestamp().prop_map(Literal::Timestamp).boxed(),
    ];
    if allow_bool {
        options.push(any::<bool>().prop_map(Literal::Bool).boxed());
    }
    prop::strategy::Union::new(options).boxed()
}

fn operator() -> impl Strategy<Value = Operator> {
    prop_oneof![
        literal(true).prop_map(Operator::Eq),
        literal(true).prop_map(Operator::Ne),
        literal(false).prop_map(Operator::Lt),
        literal(false).prop_map(Operator::Le),
        literal(false).prop_map(Operator::Gt),
        literal(false).prop_map(Operator::Ge),
        prop::collection::vec(literal(true), 0..4).prop_map(Operator::In),
        any::<String>().prop_map(Operator::Like),
        any::<String>().prop_map(Operator::Matches),
        any::<String>().prop_map(Operator::IsSubset),
        any::<String>().prop_map(Operator::IsSuperset),
        Just(Operator::Exists),
    ]
}

fn comparison_expr() -> impl Strategy<Value = ComparisonExpr> {
    let leaf = (path(), any::<bool>(), operator()).prop_map(|(path, negated, op)| {
        ComparisonExpr::Comparison(Comparison { path, negated, op })
    });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(ComparisonExpr::And),
            prop::collection::vec(inner, 2..4).prop_map(ComparisonExpr::Or),
        ]
    })
}

fn qualifier() -> impl Strategy<Value = Qualifier> {
    prop_oneof![
        (0.0f64..1e12).prop_map(|seconds| Qualifier::Within { seconds }),
        (0u32..100_000).prop_map(|s| Qualifier::Within {
            seconds: f64::from(s)
        }),
        (timestamp(), timestamp()).prop_map(|(start, stop)| Qualifier::StartStop { start, stop }),
        any::<u64>().prop_map(|times| Qualifier::Repeats { times }),
    ]
}

fn observation_expr() -> impl Strategy<Value = ObservationExpr> {
    let leaf = comparison_expr().prop_map(ObservationExpr::Observation);
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::Or),
            prop::collection::vec(inner.clone(), 2..4).prop_map(ObservationExpr::FollowedBy),
            (inner, qualifier()).prop_map(|(e, q)| ObservationExpr::Qualified(Box::new(e), q)),
        ]
    })
}
