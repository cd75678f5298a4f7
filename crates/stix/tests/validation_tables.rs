//! Validation tables: for every object type a valid example, and that example with each
//! required property removed; then targeted negative cases with the expected code and path.

use phalanx_stix::{StixObject, check};
use serde_json::{Value, json};

const T: &str = "2020-01-01T00:00:00.000Z";
const IDENTITY: &str = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5";
const IPV4: &str = "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4";
const MALWARE: &str = "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b";

fn sdo(ty: &str, extra: Value) -> Value {
    let mut v = json!({
        "type": ty, "spec_version": "2.1", "id": format!("{ty}--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
        "created": T, "modified": T,
    });
    merge(&mut v, extra);
    v
}

fn sco(ty: &str, extra: Value) -> Value {
    let mut v = json!({"type": ty, "id": format!("{ty}--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")});
    merge(&mut v, extra);
    v
}

fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (v, extra) {
        a.extend(b);
    }
}

/// (valid example, required properties).
fn table() -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            sdo("attack-pattern", json!({"name": "Spearphishing"})),
            vec!["name", "created", "modified", "spec_version"],
        ),
        (
            sdo(
                "campaign",
                json!({"name": "Op X", "first_seen": T, "last_seen": T}),
            ),
            vec!["name"],
        ),
        (
            sdo("course-of-action", json!({"name": "Patch"})),
            vec!["name"],
        ),
        (
            sdo(
                "grouping",
                json!({"context": "suspicious-activity", "object_refs": [MALWARE]}),
            ),
            vec!["context", "object_refs"],
        ),
        (
            sdo(
                "identity",
                json!({"name": "CERT-X", "identity_class": "organization"}),
            ),
            vec!["name"],
        ),
        (sdo("incident", json!({"name": "Breach"})), vec!["name"]),
        (
            sdo(
                "indicator",
                json!({"pattern": "[ipv4-addr:value = '198.51.100.3']", "pattern_type": "stix", "valid_from": T}),
            ),
            vec!["pattern", "pattern_type", "valid_from"],
        ),
        (sdo("infrastructure", json!({"name": "C2"})), vec!["name"]),
        (sdo("intrusion-set", json!({"name": "APT0"})), vec!["name"]),
        (sdo("location", json!({"country": "FR"})), vec![]),
        (
            sdo("malware", json!({"is_family": false})),
            vec!["is_family"],
        ),
        (
            sdo(
                "malware-analysis",
                json!({"product": "sandbox", "result": "malicious"}),
            ),
            vec!["product"],
        ),
        (
            sdo("note", json!({"content": "see", "object_refs": [MALWARE]})),
            vec!["content", "object_refs"],
        ),
        (
            sdo(
                "observed-data",
                json!({"first_observed": T, "last_observed": T, "number_observed": 1, "object_refs": [IPV4]}),
            ),
            vec!["first_observed", "last_observed", "number_observed"],
        ),
        (
            sdo(
                "opinion",
                json!({"opinion": "agree", "object_refs": [MALWARE]}),
            ),
            vec!["opinion", "object_refs"],
        ),
        (
            sdo(
                "report",
                json!({"name": "R", "published": T, "object_refs": [MALWARE]}),
            ),
            vec!["name", "published", "object_refs"],
        ),
        (sdo("threat-actor", json!({"name": "TA"})), vec!["name"]),
        (sdo("tool", json!({"name": "nmap"})), vec!["name"]),
        (
            sdo("vulnerability", json!({"name": "CVE-2021-44228"})),
            vec!["name"],
        ),
        (
            sdo(
                "relationship",
                json!({"relationship_type": "uses", "source_ref": MALWARE, "target_ref": IPV4}),
            ),
            vec!["relationship_type", "source_ref", "target_ref"],
        ),
        (
            sdo(
                "sighting",
                json!({"sighting_of_ref": MALWARE, "count": 3, "where_sighted_refs": [IDENTITY]}),
            ),
            vec!["sighting_of_ref"],
        ),
        (
            sdo(
                "language-content",
                json!({"object_ref": MALWARE, "contents": {"de": {"name": "Schadsoftware"}}}),
            ),
            vec!["object_ref", "contents"],
        ),
        (
            sdo(
                "extension-definition",
                json!({"created_by_ref": IDENTITY, "name": "ext", "schema": "https://example.org/s", "version": "1.0", "extension_types": ["property-extension"]}),
            ),
            vec![
                "created_by_ref",
                "name",
                "schema",
                "version",
                "extension_types",
            ],
        ),
        (
            json!({"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168", "created": T, "definition_type": "statement", "definition": {"statement": "Copyright"}}),
            vec!["created", "definition_type", "definition", "spec_version"],
        ),
        (sco("artifact", json!({"payload_bin": "aGk="})), vec![]),
        (
            sco("autonomous-system", json!({"number": 15139})),
            vec!["number"],
        ),
        (
            sco("directory", json!({"path": "C:\\Windows"})),
            vec!["path"],
        ),
        (
            sco("domain-name", json!({"value": "example.com"})),
            vec!["value"],
        ),
        (
            sco("email-addr", json!({"value": "a@example.com"})),
            vec!["value"],
        ),
        (
            sco(
                "email-message",
                json!({"is_multipart": false, "body": "hi"}),
            ),
            vec!["is_multipart"],
        ),
        (
            sco(
                "file",
                json!({"name": "a.exe", "hashes": {"SHA-256": "a".repeat(64)}}),
            ),
            vec![],
        ),
        (
            sco("ipv4-addr", json!({"value": "198.51.100.3"})),
            vec!["value"],
        ),
        (
            sco("ipv6-addr", json!({"value": "2001:db8::1"})),
            vec!["value"],
        ),
        (
            sco("mac-addr", json!({"value": "d2:fb:49:24:37:18"})),
            vec!["value"],
        ),
        (
            sco("mutex", json!({"name": "__CLEANSWEEP__"})),
            vec!["name"],
        ),
        (
            sco(
                "network-traffic",
                json!({"protocols": ["tcp"], "dst_ref": IPV4, "dst_port": 443}),
            ),
            vec!["protocols"],
        ),
        (sco("process", json!({"pid": 1234})), vec![]),
        (sco("software", json!({"name": "Word"})), vec!["name"]),
        (
            sco("url", json!({"value": "https://example.com/"})),
            vec!["value"],
        ),
        (sco("user-account", json!({"user_id": "1001"})), vec![]),
        (
            sco(
                "windows-registry-key",
                json!({"key": "HKEY_LOCAL_MACHINE\\System"}),
            ),
            vec![],
        ),
        (
            sco(
                "x509-certificate",
                json!({"serial_number": "36:f7:d4:32:f4:ab:70:ea:d3:ce:98:6e:ea:99:93:49:32:0a:b7:06"}),
            ),
            vec![],
        ),
    ]
}

fn errors(v: &Value) -> Vec<(String, &'static str, String)> {
    let o = StixObject::from_value(v.clone()).expect("structurally an object");
    check(&o)
        .errors
        .into_iter()
        .map(|i| (i.path, i.code, i.message))
        .collect()
}

#[test]
fn every_type_valid_example_and_each_required_property_missing() {
    let table = table();
    assert_eq!(
        table.len(),
        19 + 2 + 3 + 18,
        "every STIX 2.1 type is covered"
    );
    for (valid, required) in table {
        let ty = valid["type"].as_str().unwrap().to_owned();
        assert_eq!(errors(&valid), vec![], "valid {ty} example");
        for prop in required {
            let mut broken = valid.clone();
            broken.as_object_mut().unwrap().remove(prop);
            let errs = errors(&broken);
            assert!(
                errs.iter()
                    .any(|(path, code, _)| *code == "required" && path == &format!("$.{prop}")),
                "{ty} without {prop}: {errs:?}"
            );
        }
    }
}

/// (description, object, expected code, expected path).
#[test]
fn targeted_negative_cases() {
    let with = |base: Value, extra: Value| {
        let mut b = base;
        merge(&mut b, extra);
        b
    };
    let ind = sdo(
        "indicator",
        json!({"pattern": "[ipv4-addr:value = '198.51.100.3']", "pattern_type": "stix", "valid_from": T}),
    );
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "id of another type",
            with(
                ind.clone(),
                json!({"id": "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}),
            ),
            "id-type",
            "$.id",
        ),
        (
            "id not a UUID",
            with(ind.clone(), json!({"id": "indicator--1234"})),
            "id-syntax",
            "$.id",
        ),
        (
            "spec_version 2.0",
            with(ind.clone(), json!({"spec_version": "2.0"})),
            "spec-version",
            "$.spec_version",
        ),
        (
            "created without millis",
            with(
                ind.clone(),
                json!({"created": "2020-01-01T00:00:00Z", "modified": "2020-01-01T00:00:00Z"}),
            ),
            "timestamp-precision",
            "$.created",
        ),
        (
            "decimal point without fraction",
            with(ind.clone(), json!({"valid_from": "2020-01-01T00:00:00.Z"})),
            "timestamp",
            "$.valid_from",
        ),
        (
            "timestamp with offset",
            with(
                ind.clone(),
                json!({"valid_from": "2020-01-01T00:00:00+01:00"}),
            ),
            "timestamp",
            "$.valid_from",
        ),
        (
            "modified before created",
            with(ind.clone(), json!({"modified": "2019-01-01T00:00:00.000Z"})),
            "modified-before-created",
            "$.modified",
        ),
        (
            "valid_until not after valid_from",
            with(ind.clone(), json!({"valid_until": T, "valid_from": T})),
            "time-order",
            "$.valid_until",
        ),
        (
            "confidence 101",
            with(ind.clone(), json!({"confidence": 101})),
            "range",
            "$.confidence",
        ),
        (
            "confidence not integer",
            with(ind.clone(), json!({"confidence": "high"})),
            "type",
            "$.confidence",
        ),
        (
            "created_by_ref to malware",
            with(ind.clone(), json!({"created_by_ref": MALWARE})),
            "ref-type",
            "$.created_by_ref",
        ),
        (
            "object_marking_refs malformed",
            with(ind.clone(), json!({"object_marking_refs": ["tlp:red"]})),
            "ref-syntax",
            "$.object_marking_refs[0]",
        ),
        (
            "granular selector to nothing",
            with(
                ind.clone(),
                json!({"granular_markings": [{"selectors": ["description"], "marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}]}),
            ),
            "selector",
            "$.granular_markings[0].selectors[0]",
        ),
        (
            "granular selector index past end",
            with(
                ind.clone(),
                json!({"labels": ["a"], "granular_markings": [{"selectors": ["labels.[1]"], "marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}]}),
            ),
            "selector",
            "$.granular_markings[0].selectors[0]",
        ),
        (
            "granular with both marking_ref and lang",
            with(
                ind.clone(),
                json!({"granular_markings": [{"selectors": ["pattern"], "lang": "en", "marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}]}),
            ),
            "granular-marking",
            "$.granular_markings[0]",
        ),
        (
            "external reference without locator",
            with(
                ind.clone(),
                json!({"external_references": [{"source_name": "x"}]}),
            ),
            "external-reference",
            "$.external_references[0]",
        ),
        (
            "bad MD5",
            with(
                ind.clone(),
                json!({"external_references": [{"source_name": "x", "url": "u", "hashes": {"MD5": "abc"}}]}),
            ),
            "hash",
            "$.external_references[0].hashes.MD5",
        ),
        (
            "bad property name",
            with(ind.clone(), json!({"X-Bad": 1})),
            "property-name",
            "$.X-Bad",
        ),
        (
            "observed-data with both",
            sdo(
                "observed-data",
                json!({"first_observed": T, "last_observed": T, "number_observed": 1, "object_refs": [IPV4], "objects": {"0": {"type": "ipv4-addr", "value": "1.2.3.4"}}}),
            ),
            "observed-data",
            "$",
        ),
        (
            "observed-data with neither",
            sdo(
                "observed-data",
                json!({"first_observed": T, "last_observed": T, "number_observed": 1}),
            ),
            "observed-data",
            "$",
        ),
        (
            "number_observed 0",
            sdo(
                "observed-data",
                json!({"first_observed": T, "last_observed": T, "number_observed": 0, "object_refs": [IPV4]}),
            ),
            "range",
            "$.number_observed",
        ),
        (
            "observed-data refs an SDO",
            sdo(
                "observed-data",
                json!({"first_observed": T, "last_observed": T, "number_observed": 1, "object_refs": [MALWARE]}),
            ),
            "ref-type",
            "$.object_refs[0]",
        ),
        (
            "sighting count too large",
            sdo(
                "sighting",
                json!({"sighting_of_ref": MALWARE, "count": 1_000_000_000}),
            ),
            "range",
            "$.count",
        ),
        (
            "sighting where_sighted to malware",
            sdo(
                "sighting",
                json!({"sighting_of_ref": MALWARE, "where_sighted_refs": [MALWARE]}),
            ),
            "ref-type",
            "$.where_sighted_refs[0]",
        ),
        (
            "sighting of an SCO",
            sdo("sighting", json!({"sighting_of_ref": IPV4})),
            "ref-type",
            "$.sighting_of_ref",
        ),
        (
            "relationship type with capitals",
            sdo(
                "relationship",
                json!({"relationship_type": "Uses", "source_ref": MALWARE, "target_ref": IPV4}),
            ),
            "relationship-type",
            "$.relationship_type",
        ),
        (
            "relationship to a marking",
            sdo(
                "relationship",
                json!({"relationship_type": "uses", "source_ref": MALWARE, "target_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}),
            ),
            "ref-type",
            "$.target_ref",
        ),
        (
            "campaign last_seen before first_seen (ATT&CK quirk)",
            sdo(
                "campaign",
                json!({"name": "c", "first_seen": "2021-01-01T00:00:00Z", "last_seen": "2020-01-01T00:00:00Z"}),
            ),
            "time-order",
            "$.last_seen",
        ),
        (
            "malware family without name",
            sdo("malware", json!({"is_family": true})),
            "required",
            "$.name",
        ),
        (
            "location with only latitude",
            sdo("location", json!({"latitude": 10.0})),
            "location",
            "$",
        ),
        (
            "latitude out of range",
            sdo("location", json!({"latitude": 91.0, "longitude": 0.0})),
            "range",
            "$.latitude",
        ),
        (
            "opinion outside enum",
            sdo(
                "opinion",
                json!({"opinion": "maybe", "object_refs": [MALWARE]}),
            ),
            "enum",
            "$.opinion",
        ),
        (
            "empty object_refs",
            sdo(
                "report",
                json!({"name": "R", "published": T, "object_refs": []}),
            ),
            "empty-list",
            "$.object_refs",
        ),
        (
            "malware-analysis without result",
            sdo("malware-analysis", json!({"product": "p"})),
            "required",
            "$",
        ),
        (
            "extension_properties without toplevel",
            sdo(
                "extension-definition",
                json!({"created_by_ref": IDENTITY, "name": "e", "schema": "s", "version": "1", "extension_types": ["new-sdo"], "extension_properties": ["x"]}),
            ),
            "extension",
            "$.extension_properties",
        ),
        (
            "extension without extension_type",
            with(
                ind.clone(),
                json!({"extensions": {"extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e": {"rank": 5}}}),
            ),
            "required",
            "$.extensions.extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e.extension_type",
        ),
        (
            "defanged on an SDO",
            with(ind.clone(), json!({"defanged": true})),
            "sco-only",
            "$.defanged",
        ),
        (
            "nested bundle",
            json!({"type": "bundle", "id": "bundle--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}),
            "nested-bundle",
            "$.type",
        ),
        (
            "network-traffic without ends",
            sco("network-traffic", json!({"protocols": ["tcp"]})),
            "network-traffic",
            "$",
        ),
        (
            "port out of range",
            sco(
                "network-traffic",
                json!({"protocols": ["tcp"], "src_ref": IPV4, "src_port": 70000}),
            ),
            "range",
            "$.src_port",
        ),
        (
            "file without name or hashes",
            sco("file", json!({"size": 3})),
            "file",
            "$",
        ),
        (
            "artifact with url and no hashes",
            sco("artifact", json!({"url": "https://example.com/a"})),
            "artifact",
            "$.hashes",
        ),
        (
            "multipart email with body",
            sco("email-message", json!({"is_multipart": true, "body": "x"})),
            "email-message",
            "$.body",
        ),
        (
            "SCO spec_version 2.0",
            sco(
                "ipv4-addr",
                json!({"value": "1.2.3.4", "spec_version": "2.0"}),
            ),
            "spec-version",
            "$.spec_version",
        ),
        (
            "fake TLP 1.0 marking",
            json!({"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "created": T, "definition_type": "tlp", "definition": {"tlp": "green"}}),
            "tlp",
            "$.id",
        ),
        (
            "TLP 2.0 id with wrong level",
            json!({"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "created": "2022-10-01T00:00:00.000Z", "name": "TLP:RED", "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {"extension_type": "property-extension", "tlp_2_0": "green"}}}),
            "standard-marking",
            "$.extensions.extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.tlp_2_0",
        ),
        (
            "statement marking without statement",
            json!({"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "created": T, "definition_type": "statement", "definition": {}}),
            "required",
            "$.definition.statement",
        ),
    ];
    for (what, obj, code, path) in cases {
        let errs = errors(&obj);
        assert!(
            errs.iter().any(|(p, c, _)| *c == code && p == path),
            "{what}: expected {code} at {path}, got {errs:?}"
        );
    }
}

#[test]
fn warnings_for_custom_and_deprecated_content() {
    let o = StixObject::from_value(sdo(
        "observed-data",
        json!({"first_observed": T, "last_observed": T, "number_observed": 1,
               "objects": {"0": {"type": "ipv4-addr", "value": "1.2.3.4"}}, "x_acme": 1}),
    ))
    .unwrap();
    let r = check(&o);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let codes: Vec<&str> = r.warnings.iter().map(|w| w.code).collect();
    assert!(
        codes.contains(&"deprecated") && codes.contains(&"custom-property"),
        "{codes:?}"
    );
    // A SCO whose id is not its deterministic id.
    let o = StixObject::from_value(sco("ipv4-addr", json!({"value": "198.51.100.3"}))).unwrap();
    let r = check(&o);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.code == "sco-id" && w.message.contains("28bb3599"))
    );
    // The standard TLP 2.0 and PAP marking definitions validate cleanly.
    for m in phalanx_stix::markings::STANDARD_MARKINGS {
        let o = StixObject::from_value(phalanx_stix::markings::standard_marking_json(m)).unwrap();
        let r = check(&o);
        assert!(r.errors.is_empty(), "{}: {:?}", m.name, r.errors);
    }
}
