//! Partners, agreements, `policy explain` and policy-filtered exports through the real
//! binary and a real data directory.

use serde_json::{Value, json};

use std::process::Output;

mod common;
use common::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
fn fails(out: Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", stdout(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const PAP_GREEN: &str = "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9";

fn indicator(n: u32, markings: &[&str], extra: Value) -> Value {
    let mut v = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": format!("indicator {n}"),
        "pattern": format!("[ipv4-addr:value = '192.0.2.{n}']"), "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    });
    if !markings.is_empty() {
        v["object_marking_refs"] = json!(markings);
    }
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

const AGREEMENT: &str = r#"
id = "mou-eu"
title = "CERT-XX and CERT-EU exchange"
status = "active"
parties = ["cert-xx", "cert-eu"]
max_tlp = "AMBER"
onward = "parties"
valid_from = 2026-01-01T00:00:00Z
retention_days = 365

[scope]
collections = ["intel"]

[pap]
default = "AMBER"

[[obligations]]
kind = "acknowledge-assistance-request"
within_hours = 4
"#;

fn exported_ids(out: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&out.stdout).expect("bundle");
    let mut ids: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn init_creates_identity_and_a_private_signing_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(phalanx(
        d,
        &[
            "--json",
            "init",
            "--org",
            "cert-xx",
            "--name",
            "CERT XX",
            "--country",
            "XX",
        ],
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["identity"]["type"], "identity");
    assert_eq!(v["identity"]["name"], "CERT XX");
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the signing key is readable by others");
    }
    // Idempotent; the organisation cannot change afterwards.
    let again: Value = serde_json::from_slice(&ok(phalanx(d, &["--json", "init"])).stdout).unwrap();
    assert_eq!(again["identity"], v["identity"]);
    assert_eq!(again["public_key"], v["public_key"]);
    assert!(fails(phalanx(d, &["init", "--org", "other"])).contains("already \"cert-xx\""));
}

#[test]
fn partners_agreements_versions_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(phalanx(d, &["init", "--org", "cert-xx"]));
    ok(phalanx(d, &["collection", "create", "intel"]));
    ok(phalanx(
        d,
        &[
            "partner",
            "add",
            "cert-eu",
            "--name",
            "CERT-EU",
            "--sector",
            "government",
            "--country",
            "BE",
            "--endpoint",
            "https://taxii.cert-eu.example/api/",
            "--cert-fingerprint",
            "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
            "--signing-key",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        ],
    ));
    ok(phalanx(
        d,
        &[
            "partner", "add", "milcert", "--name", "MilCERT", "--sector", "military",
        ],
    ));
    // Bad partner input names what is wrong.
    for (args, want) in [
        (vec!["--sector", "church"], "not a sector"),
        (
            vec!["--sector", "private", "--country", "france"],
            "country",
        ),
        (
            vec!["--sector", "private", "--signing-key", "abcd"],
            "Ed25519",
        ),
        (
            vec!["--sector", "private", "--endpoint", "ftp://x"],
            "endpoint",
        ),
        (
            vec!["--sector", "private", "--cert-fingerprint", "12"],
            "fingerprint",
        ),
    ] {
        let mut a = vec!["partner", "add", "bad", "--name", "Bad"];
        a.extend(args);
        let err = fails(phalanx(d, &a));
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(
        fails(phalanx(
            d,
            &[
                "partner", "add", "cert-eu", "--name", "x", "--sector", "private"
            ]
        ))
        .contains("exists")
    );
    let list: Value =
        serde_json::from_slice(&ok(phalanx(d, &["--json", "partner", "list"])).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list[0]["cert_fingerprints"][0],
        "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"
    );

    // An agreement, then bad documents: nothing is recorded for them.
    let out = ok(phalanx_stdin(d, &["agreement", "add", "-"], AGREEMENT));
    assert!(
        stdout(&out).contains("version 1 (active, in force)"),
        "{}",
        stdout(&out)
    );
    for (change, field) in [
        (("\"cert-eu\"]", "\"cert-eu\", \"nobody\"]"), "parties[2]"),
        (("max_tlp = \"AMBER\"", "max_tlp = \"ORANGE\""), "max_tlp"),
        (
            (
                "valid_from = 2026-01-01T00:00:00Z",
                "valid_from = \"yesterday\"",
            ),
            "valid_from",
        ),
        (
            (
                "retention_days = 365",
                "retention_days = 365\nvalid_until = \"2025-01-01T00:00:00Z\"",
            ),
            "valid_until",
        ),
        (
            ("collections = [\"intel\"]", "collections = [\"nope\"]"),
            "scope.collections[0]",
        ),
        (("onward = \"parties\"", "onward = \"everyone\""), "onward"),
        (("status = \"active\"", "status = \"paused\""), "status"),
        (("title =", "titel ="), "titel"),
        (
            ("within_hours = 4", "within_hours = 0"),
            "obligations[0].within_hours",
        ),
        (
            ("id = \"mou-eu\"", "id = \"mou-eu\"\nversion = 1"),
            "version",
        ),
    ] {
        let doc = AGREEMENT.replace(change.0, change.1);
        assert_ne!(doc, AGREEMENT, "{field}: the change did not apply");
        let err = fails(phalanx_stdin(d, &["agreement", "add", "-"], &doc));
        assert!(
            err.contains(&format!("field {field}")) || err.contains(&format!("field {field}:")),
            "{field}: {err}"
        );
    }
    let list: Value =
        serde_json::from_slice(&ok(phalanx(d, &["--json", "agreement", "list"])).stdout).unwrap();
    assert_eq!(list[0]["version"], 1);
    assert_eq!(list[0]["in_force"], true);

    // Lifecycle: every change is a new version, the history stays.
    ok(phalanx(d, &["agreement", "suspend", "mou-eu"]));
    let diff = stdout(&ok(phalanx(d, &["agreement", "diff", "mou-eu"])));
    assert!(
        diff.contains("status:\n  - \"active\"\n  + \"suspended\""),
        "{diff}"
    );
    ok(phalanx(d, &["agreement", "activate", "mou-eu"]));
    let edited = AGREEMENT.replace("max_tlp = \"AMBER\"", "max_tlp = \"GREEN\"");
    ok(phalanx_stdin(d, &["agreement", "add", "-"], &edited));
    let diff: Value = serde_json::from_slice(
        &ok(phalanx(
            d,
            &["--json", "agreement", "diff", "mou-eu", "1", "4"],
        ))
        .stdout,
    )
    .unwrap();
    let fields: Vec<&str> = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["max_tlp", "version"]);
    ok(phalanx(d, &["agreement", "terminate", "mou-eu"]));
    assert!(fails(phalanx(d, &["agreement", "activate", "mou-eu"])).contains("terminated"));
    let show: Value =
        serde_json::from_slice(&ok(phalanx(d, &["agreement", "show", "mou-eu"])).stdout).unwrap();
    assert_eq!(show["history"].as_array().unwrap().len(), 5);
    assert_eq!(show["in_force"], false);
    assert_eq!(show["document"]["status"], "terminated");

    // A removed partner stops being a recipient.
    ok(phalanx(d, &["partner", "remove", "milcert"]));
    let list = stdout(&ok(phalanx(d, &["partner", "list"])));
    assert!(
        list.lines()
            .any(|l| l.starts_with("milcert") && l.contains("removed")),
        "{list}"
    );
}

#[test]
fn exports_and_explain_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(phalanx(d, &["init", "--org", "cert-xx"]));
    ok(phalanx(d, &["collection", "create", "intel"]));
    for (id, sector) in [
        ("cert-eu", "government"),
        ("acme", "private"),
        ("milcert", "military"),
    ] {
        ok(phalanx(
            d,
            &["partner", "add", id, "--name", id, "--sector", sector],
        ));
    }
    ok(phalanx_stdin(d, &["agreement", "add", "-"], AGREEMENT));
    // milcert: a GREEN-only agreement (community member).
    let green = AGREEMENT
        .replace("mou-eu", "mou-mil")
        .replace("\"cert-eu\"]", "\"milcert\"]")
        .replace("max_tlp = \"AMBER\"", "max_tlp = \"GREEN\"");
    ok(phalanx_stdin(d, &["agreement", "add", "-"], &green));
    let objects = [
        // 1: AMBER with a RED description: cert-eu gets it without the description.
        indicator(
            1,
            &[AMBER],
            json!({
                "description": "source: a human asset",
                "granular_markings": [{"selectors": ["description"], "marking_ref": RED}],
            }),
        ),
        indicator(2, &[RED], json!({})),
        indicator(3, &[GREEN, PAP_GREEN], json!({})),
        indicator(4, &[], json!({})),
    ];
    let bundle = json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects});
    ok(phalanx_stdin(
        d,
        &["import", "-c", "intel", "-"],
        &bundle.to_string(),
    ));
    // 5: GREEN, received from milcert: goes on only as mou-mil allows (parties: milcert).
    let from_mil = json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001",
        "objects": [indicator(5, &[GREEN], json!({}))]});
    ok(phalanx_stdin(
        d,
        &["import", "-c", "intel", "--from-partner", "milcert", "-"],
        &from_mil.to_string(),
    ));
    let id = |n: u32| format!("indicator--00000000-0000-4000-8000-{n:012}");

    let export = |who: &[&str]| {
        let mut a = vec!["export", "-c", "intel"];
        a.extend(who);
        ok(phalanx(d, &a))
    };
    assert_eq!(exported_ids(&export(&[])).len(), 5);
    assert_eq!(
        exported_ids(&export(&["--for", "cert-eu"])),
        vec![id(1), id(3), id(4)]
    );
    assert_eq!(
        exported_ids(&export(&["--for", "milcert"])),
        vec![id(3), id(5)]
    );
    assert_eq!(
        exported_ids(&export(&["--for", "acme"])),
        Vec::<String>::new()
    );
    assert_eq!(
        exported_ids(&export(&["--for", "stranger"])),
        Vec::<String>::new()
    );
    // Redaction: the RED description does not reach cert-eu; the rest does, unchanged.
    let eu: Value = serde_json::from_slice(&export(&["--for", "cert-eu"]).stdout).unwrap();
    let one = eu["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id(1).as_str())
        .unwrap();
    assert!(
        one.get("description").is_none() && one.get("granular_markings").is_none(),
        "{one}"
    );
    assert_eq!(one["pattern"], objects[0]["pattern"]);
    // Blocking needs PAP:GREEN or CLEAR (unmarked: the node default AMBER).
    assert_eq!(exported_ids(&export(&["--for-blocking"])), vec![id(3)]);

    // Explain: decision and rule chain, human and JSON.
    let text = stdout(&ok(phalanx(
        d,
        &[
            "policy",
            "explain",
            "--object",
            &id(1),
            "--partner",
            "cert-eu",
        ],
    )));
    assert!(text.contains("agreement mou-eu v1 covers it"), "{text}");
    assert!(
        text.contains("decision: allow with redaction of description"),
        "{text}"
    );
    let v: Value = serde_json::from_slice(
        &ok(phalanx(
            d,
            &[
                "--json",
                "policy",
                "explain",
                "--object",
                &id(5),
                "--partner",
                "cert-eu",
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["decision"], "deny");
    let steps = v[0]["steps"].to_string();
    assert!(steps.contains("received from partner milcert"), "{steps}");
    // At a time before the agreement was valid, cert-eu gets nothing AMBER.
    let v: Value = serde_json::from_slice(
        &ok(phalanx(
            d,
            &[
                "--json",
                "policy",
                "explain",
                "--object",
                &id(1),
                "--partner",
                "cert-eu",
                "--at",
                "2025-06-01T00:00:00Z",
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["decision"], "deny");
    assert!(
        v[0]["steps"].to_string().contains("not valid before"),
        "{}",
        v[0]["steps"]
    );
    let err = fails(phalanx(
        d,
        &[
            "policy",
            "explain",
            "--object",
            &id(9),
            "--partner",
            "cert-eu",
        ],
    ));
    assert!(err.contains("not found"), "{err}");
    // Suspending stops the flow at once: cert-eu has no agreement in force any more, so
    // not even TLP:GREEN (community) goes to it; TLP:CLEAR still would.
    ok(phalanx(d, &["agreement", "suspend", "mou-eu"]));
    assert_eq!(
        exported_ids(&export(&["--for", "cert-eu"])),
        Vec::<String>::new()
    );
    assert_eq!(
        exported_ids(&export(&["--for", "milcert"])),
        vec![id(3), id(5)]
    );
}
