//! Property tests: canonical JSON is stable and idempotent; parse → serialise → parse is
//! the identity; the streaming splitter gives the same objects however input is chunked.

use phalanx_stix::json::{canonical, parse_strict};
use phalanx_stix::stream::{Item, SplitLimits, Splitter};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        // RFC 8785 treats numbers as IEEE doubles: integers beyond 2^53 canonicalise to
        // their nearest double, so the round-trip property holds within that range.
        (-(1i64 << 53)..(1i64 << 53)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_is_idempotent_and_stable(v in json_value()) {
        let c1 = canonical(&v);
        let reparsed = parse_strict(c1.as_bytes(), 64).unwrap();
        // (Values may differ only in number spelling: -0.0 becomes 0, 1.0 becomes 1.)
        prop_assert_eq!(canonical(&reparsed), c1.clone());
        // Pretty printing (other whitespace, same order) changes nothing canonical.
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert_eq!(canonical(&parse_strict(pretty.as_bytes(), 64).unwrap()), c1);
    }

    #[test]
    fn parse_serialise_parse_is_identity(v in json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        let once = parse_strict(text.as_bytes(), 64).unwrap();
        let twice = parse_strict(serde_json::to_string(&once).unwrap().as_bytes(), 64).unwrap();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(once, v);
    }

    #[test]
    fn splitting_is_independent_of_chunking(
        objs in prop::collection::vec(prop::collection::btree_map("[a-z_]{1,6}", json_value(), 1..4), 0..6),
        chunk in 1usize..64,
        pretty in any::<bool>(),
    ) {
        let objs: Vec<Value> = objs.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect();
        let bundle = serde_json::json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objs});
        let text = if pretty { serde_json::to_string_pretty(&bundle) } else { serde_json::to_string(&bundle) }.unwrap();
        let mut s = Splitter::new(SplitLimits::default());
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        let got: Vec<Value> = out.into_iter().map(|i| match i {
            Item::Object { bytes, .. } => parse_strict(&bytes, 64).unwrap(),
            Item::Error { message, pos } => panic!("{pos}: {message}"),
        }).collect();
        prop_assert_eq!(got, objs);
    }
}
