//! End-to-end tests of the `phalanx` binary: real processes, real SQLite files.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::*;

const ICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/stix/ics-attack.json"
);

/// The JSON lines of a `--json` run: (per-object records, summary).
fn records(out: &Output) -> (Vec<Value>, Value) {
    let mut objects = Vec::new();
    let mut summary = Value::Null;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        if let Some(s) = v.get("summary") {
            summary = s.clone();
        } else if v.get("file_summary").is_none() {
            objects.push(v);
        }
    }
    (objects, summary)
}

fn outcome_count(summary: &Value, outcome: &str) -> u64 {
    summary["outcomes"][outcome].as_u64().unwrap_or(0)
}

/// id → canonical JSON of every object in a bundle file.
fn canonical_by_id(bundle: &[u8]) -> BTreeMap<String, String> {
    let v: Value = serde_json::from_slice(bundle).expect("bundle JSON");
    v["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            let id = o["id"].as_str().expect("id").to_owned();
            (id, phalanx_stix::json::canonical(o))
        })
        .collect()
}

fn collection_count(data: &Path, name: &str) -> u64 {
    let out = phalanx(data, &["--json", "collection", "list"]);
    let v: Value = serde_json::from_slice(&ok(&out).stdout).expect("list JSON");
    v.as_array()
        .expect("array")
        .iter()
        .find(|c| c["alias"] == name)
        .and_then(|c| c["objects"].as_u64())
        .expect("collection listed")
}

#[test]
fn attack_ics_imports_without_errors_and_exports_identical_objects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&phalanx(&data, &["collection", "create", "ics"]));
    let out = phalanx(&data, &["--json", "import", "--collection", "ics", ICS]);
    let (objects, summary) = records(ok(&out));
    assert_eq!(objects.len(), 1826);
    assert_eq!(outcome_count(&summary, "accepted"), 1826, "{summary}");
    assert_eq!(summary["rejected"], 0);

    let exported = dir.path().join("out.json");
    ok(&phalanx(
        &data,
        &[
            "export",
            "--collection",
            "ics",
            "-o",
            exported.to_str().unwrap(),
        ],
    ));
    let input = canonical_by_id(&std::fs::read(ICS).unwrap());
    let output = canonical_by_id(&std::fs::read(&exported).unwrap());
    assert_eq!(input.len(), 1826);
    assert_eq!(input, output, "every object exports canonically identical");

    // JSON lines: one object per line, same content.
    let out = phalanx(
        &data,
        &["export", "--collection", "ics", "--format", "jsonl"],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&ok(&out).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1826);

    // Filters.
    let out = phalanx(
        &data,
        &[
            "export",
            "--collection",
            "ics",
            "--type",
            "malware,tool",
            "--format",
            "jsonl",
        ],
    );
    let n = String::from_utf8_lossy(&ok(&out).stdout).lines().count();
    let expected = input
        .keys()
        .filter(|id| id.starts_with("malware--") || id.starts_with("tool--"))
        .count();
    assert_eq!(n, expected);

    // A second import changes nothing and reports duplicates.
    let out = phalanx(&data, &["--json", "import", "--collection", "ics", ICS]);
    let (_, summary) = records(ok(&out));
    assert_eq!(outcome_count(&summary, "duplicate"), 1826);
    assert_eq!(collection_count(&data, "ics"), 1826);
}

#[test]
fn data_option_is_global_and_env_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["collection", "create", "x", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    ok(&out);
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["--json", "collection", "list"])
        .env("PHALANX_DATA", &data)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&ok(&out).stdout).unwrap();
    assert_eq!(v[0]["alias"], "x");
    // Unknown collection: a clear error and exit 3.
    let out = phalanx(&data, &["import", "--collection", "nope", ICS]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("collection create nope"));
}

/// A valid indicator with a given index.
fn indicator(i: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{}","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","pattern":"[ipv4-addr:value = '10.0.{}.{}']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"}}"#,
        uuid::Uuid::new_v4(),
        i / 256 % 256,
        i % 256
    )
}

#[test]
fn bad_input_gets_precise_errors_and_valid_objects_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&phalanx(&data, &["collection", "create", "c"]));

    // A bundle of 1,000 where object 500 is invalid (confidence out of range).
    let mut objs: Vec<String> = (0..1000).map(indicator).collect();
    objs[500] = objs[500].replace(r#""pattern_type""#, r#""confidence":101,"pattern_type""#);
    let bundle = format!(
        r#"{{"type":"bundle","id":"bundle--{}","objects":[{}]}}"#,
        uuid::Uuid::new_v4(),
        objs.join(",\n")
    );
    let f = dir.path().join("one-bad.json");
    std::fs::write(&f, bundle).unwrap();
    let out = phalanx(
        &data,
        &["--json", "import", "--collection", "c", f.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "rejections give exit 1");
    let (recs, summary) = records(&out);
    assert_eq!(outcome_count(&summary, "accepted"), 999);
    assert_eq!(outcome_count(&summary, "invalid"), 1);
    let bad = recs.iter().find(|r| r["outcome"] == "invalid").unwrap();
    assert_eq!(bad["index"], 500);
    assert_eq!(bad["errors"][0]["path"], "$.confidence");
    assert_eq!(collection_count(&data, "c"), 999);

    // JSON lines mixing every kind of fault with valid objects between them.
    let deep = format!(
        r#"{{"type":"x-deep","id":"x-deep--{}","v":{}{}}}"#,
        uuid::Uuid::new_v4(),
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let huge = format!(
        r#"{{"type":"note","id":"note--{}","content":"{}"}}"#,
        uuid::Uuid::new_v4(),
        "A".repeat(100 * 1024 * 1024)
    );
    let mut file: Vec<u8> = Vec::new();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (indicator(1).into_bytes(), "accepted"),
        (
            indicator(2)
                .replace(r#""created":"2026-01-01T00:00:00.000Z""#, r#""created":5"#)
                .into_bytes(),
            "invalid",
        ),
        (
            indicator(3)
                .replace(
                    r#""pattern_type":"stix""#,
                    r#""pattern_type":"stix","pattern_type":"stix""#,
                )
                .into_bytes(),
            "invalid",
        ),
        (deep.into_bytes(), "invalid"),
        (indicator(4).into_bytes(), "accepted"),
        (huge.into_bytes(), "invalid"),
        (
            [&b"{\"type\":\"note\",\"name\":\"\xff\xfe\"}"[..]].concat(),
            "invalid",
        ),
        (indicator(5).into_bytes(), "accepted"),
    ];
    for (bytes, _) in &cases {
        file.extend_from_slice(bytes);
        file.push(b'\n');
    }
    // Truncated at the end.
    let truncated = indicator(6);
    file.extend_from_slice(&truncated.as_bytes()[..truncated.len() / 2]);
    let f = dir.path().join("faults.jsonl");
    std::fs::write(&f, &file).unwrap();
    drop(file);
    let out = phalanx(
        &data,
        &["--json", "import", "--collection", "c", f.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let (recs, summary) = records(&out);
    let got: Vec<&str> = recs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = cases.iter().map(|(_, o)| *o).collect();
    want.push("invalid");
    assert_eq!(got, want, "{recs:#?}");
    assert_eq!(outcome_count(&summary, "accepted"), 3);
    let reasons: Vec<String> = recs
        .iter()
        .filter(|r| r["outcome"] == "invalid")
        .map(|r| {
            r.get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| r["errors"][0]["message"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let expect = [
        "timestamp",
        "duplicate key",
        "deeper",
        "size limit",
        "UTF-8",
        "truncated",
    ];
    for (reason, word) in reasons.iter().zip(expect) {
        assert!(
            reason.contains(word),
            "{reason:?} should mention {word:?}: {reasons:?}"
        );
    }
    assert_eq!(collection_count(&data, "c"), 1002);

    // The human report names file, line, id and path like a compiler.
    let out = phalanx(&data, &["validate", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("faults.jsonl:2: error["), "{stderr}");
    assert!(stderr.contains("$.created"), "{stderr}");
}

#[test]
fn killed_import_keeps_complete_batches_and_reimport_completes_it() {
    const N: usize = 100_000;
    const BATCH: usize = 1024; // = the reader's chunk size, so every batch is exactly this
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&phalanx(&data, &["collection", "create", "c"]));
    let f = dir.path().join("big.jsonl");
    let text: String = (0..N).map(|i| indicator(i) + "\n").collect();
    std::fs::write(&f, text).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .arg("--data")
        .arg(&data)
        .args([
            "import",
            "--quiet",
            "--batch",
            &BATCH.to_string(),
            "--collection",
            "c",
        ])
        .arg(&f)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some batches are committed, then SIGKILL.
    let wal = data.join("phalanx.db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 4 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "import made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let stored = collection_count(&data, "c") as usize;
    assert!(stored > 0 && stored < N, "killed mid-way: {stored} stored");
    assert_eq!(stored % BATCH, 0, "only complete batches survive");

    let out = phalanx(
        &data,
        &["--json", "import", "--collection", "c", f.to_str().unwrap()],
    );
    let (_, summary) = records(ok(&out));
    assert_eq!(outcome_count(&summary, "duplicate") as usize, stored);
    assert_eq!(outcome_count(&summary, "accepted") as usize, N - stored);
    assert_eq!(outcome_count(&summary, "conflict"), 0);
    assert_eq!(collection_count(&data, "c") as usize, N);
}

fn backup_lines(data: &Path, file: &PathBuf) -> Vec<String> {
    ok(&phalanx(data, &["backup", file.to_str().unwrap()]));
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().skip(1).map(str::to_owned).collect() // skip the dated header
}

#[test]
fn backup_and_restore_reproduce_the_same_view() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a");
    ok(&phalanx(&data, &["collection", "create", "ics"]));
    ok(&phalanx(
        &data,
        &["collection", "create", "versions", "--read-only"],
    ));
    ok(&phalanx(&data, &["import", "--collection", "ics", ICS]));
    // Three versions of one object, pretty-printed (line breaks in the original text).
    let id = format!("indicator--{}", uuid::Uuid::new_v4());
    let versions: Vec<String> = ["2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"]
        .iter()
        .map(|m| {
            format!(
                "{{\n  \"type\": \"indicator\", \"spec_version\": \"2.1\", \"id\": \"{id}\",\n  \"created\": \"2026-01-01T00:00:00.000Z\", \"modified\": \"{m}\",\n  \"pattern\": \"[url:value = 'http://a.example/']\", \"pattern_type\": \"stix\", \"valid_from\": \"2026-01-01T00:00:00Z\"\n}}"
            )
        })
        .collect();
    let f = dir.path().join("v.json");
    std::fs::write(&f, versions.join("\n")).unwrap();
    ok(&phalanx(
        &data,
        &["import", "--collection", "versions", f.to_str().unwrap()],
    ));

    let b1 = dir.path().join("b1.jsonl");
    let original = backup_lines(&data, &b1);
    assert_eq!(
        original.last().unwrap(),
        r#"{"end":{"api_roots":1,"collections":2,"objects":1829}}"#
    );

    let restored = dir.path().join("b");
    ok(&phalanx(&restored, &["restore", b1.to_str().unwrap()]));
    let b2 = dir.path().join("b2.jsonl");
    assert_eq!(
        backup_lines(&restored, &b2),
        original,
        "same ids, versions, date_added, order"
    );

    // Restoring again changes nothing; a truncated backup is refused with a reason.
    ok(&phalanx(&restored, &["restore", b1.to_str().unwrap()]));
    let text = std::fs::read_to_string(&b1).unwrap();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() - 60]).unwrap();
    let out = phalanx(&dir.path().join("c"), &["restore", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unreadable record") || err.contains("truncated"),
        "{err}"
    );

    // Exported versions keep the original text (first/last filters work on the store).
    let out = phalanx(
        &restored,
        &["export", "--collection", "versions", "--version", "last"],
    );
    let bundle: Value = serde_json::from_slice(&ok(&out).stdout).unwrap();
    assert_eq!(bundle["objects"].as_array().unwrap().len(), 1);
    assert_eq!(bundle["objects"][0]["modified"], "2026-03-01T00:00:00.000Z");
}

#[test]
fn pattern_check_and_match_answer_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    // (pattern, exit code, what stdout or stderr says)
    let checks: &[(&str, i32, &str)] = &[
        (
            "[domain-name:value=='evil.example']",
            0,
            "[domain-name:value = 'evil.example']",
        ),
        (
            "[ipv4-addr:value = '198.51.100.7' AND ]",
            1,
            "expected an object path, 'NOT', 'EXISTS' or '(' at 38..39, found ']'",
        ),
        ("[x:y = 1] REPEATS 0 TIMES", 1, "REPEATS needs at least 1"),
        (
            "[file:hashes.'SHA-256' = 'f00']",
            0,
            "'f00' is not a valid SHA-256 hash",
        ),
    ];
    for (pattern, code, says) in checks {
        let out = phalanx(&data, &["pattern", "check", pattern]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(*code), "{pattern}: {text}");
        assert!(text.contains(says), "{pattern}: {text}");
    }
    let observed = dir.path().join("observed.json");
    std::fs::write(
        &observed,
        serde_json::json!({"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", "objects": [
            {"type": "observed-data", "spec_version": "2.1", "id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
             "created": "2016-04-06T19:58:16.000Z", "modified": "2016-04-06T19:58:16.000Z",
             "first_observed": "2015-12-21T19:00:00Z", "last_observed": "2015-12-21T19:00:00Z",
             "number_observed": 1, "object_refs": ["ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"]},
            {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
             "value": "198.51.100.7"}
        ]})
        .to_string(),
    )
    .unwrap();
    let obs = observed.to_string_lossy();
    let run = |pattern: &str| {
        phalanx(
            &data,
            &["--json", "pattern", "match", pattern, "--observed", &obs],
        )
    };
    let hit = run("[ipv4-addr:value ISSUBSET '198.51.100.0/24']");
    assert_eq!(hit.status.code(), Some(0), "{}", show(&hit));
    let v: Value = serde_json::from_slice(&hit.stdout).unwrap();
    assert_eq!(v["match"], true);
    assert_eq!(
        v["observed_data_refs"][0],
        "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf"
    );
    let miss = run("[ipv4-addr:value = '10.0.0.1']");
    assert_eq!(miss.status.code(), Some(1), "{}", show(&miss));
    assert_eq!(
        serde_json::from_slice::<Value>(&miss.stdout).unwrap()["match"],
        false
    );
    // A pattern that does not parse cannot be evaluated: exit 3 with the reason.
    let bad = run("[ipv4-addr:value = ]");
    assert_eq!(bad.status.code(), Some(3), "{}", show(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid pattern"));
}
