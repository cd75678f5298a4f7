//! Detection from the command line, on the real Zeek logs of the shared data: `phalanx
//! hunt` (table, `--json`, stored and merged sightings, malformed lines), `phalanx
//! watch` following a growing and truncated file, and `phalanx export --format
//! suricata|zeek-intel|blocklist` under PAP.

mod common;
use common::*;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ZEEK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/telemetry/zeek-apt29-day1.jsonl"
);
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const PAP_GREEN: &str = "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9";

fn indicator(n: u32, pattern: &str, markings: &[&str]) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "name": format!("test {n}"), "pattern": pattern, "pattern_type": "stix",
        "valid_from": "2020-01-01T00:00:00Z", "object_marking_refs": markings,
    })
}

fn id(n: u32) -> String {
    format!("indicator--00000000-0000-4000-8000-{n:012}")
}

/// A node with collection `intel` holding `objects`.
fn node_with(dir: &Path, objects: &[Value]) -> std::path::PathBuf {
    let data = dir.join("node");
    ok(phalanx(&data, &["collection", "create", "intel"]));
    let bundle = json!({"type": "bundle", "id": "bundle--6b2c0c55-8f5e-4d0b-9d8e-2f3a4b5c6d7e", "objects": objects});
    ok(phalanx_stdin(
        &data,
        &["import", "-c", "intel", "-"],
        &bundle.to_string(),
    ));
    data
}

/// Sighting count per indicator in the `sightings` collection (latest versions).
fn stored(data: &Path) -> Vec<(String, u64)> {
    let out = phalanx(
        data,
        &[
            "export",
            "-c",
            "sightings",
            "--format",
            "jsonl",
            "--version",
            "last",
        ],
    );
    if !out.status.success() {
        return Vec::new();
    }
    let mut v: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let s: Value = serde_json::from_str(l).unwrap();
            (
                s["sighting_of_ref"].as_str().unwrap().to_owned(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn hunt_finds_the_expected_sightings_in_real_zeek_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Counts checked by hand: `grep -c '"10.0.0.4"'` counts lines, and every line with
    // the address matches once; azureedge.net names are in 6 dns/ssl/http lines.
    let data = node_with(
        dir.path(),
        &[
            indicator(1, "[ipv4-addr:value = '10.0.0.4']", &[GREEN]),
            indicator(2, "[domain-name:value LIKE '%.azureedge.net']", &[GREEN]),
            indicator(3, "[ipv4-addr:value = '203.0.113.250']", &[GREEN]),
            indicator(4, "[ipv4-addr:value ISSUBSET '10.0.1.0/24']", &[GREEN]),
        ],
    );
    let out = ok(phalanx(&data, &["hunt", "--input", ZEEK]));
    let table = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2140 lines, 0 malformed"), "{err}");
    assert!(err.contains("index: 4 indicators"), "{err}");
    let rows: Vec<(u64, String)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[3].to_owned())
        })
        .collect();
    assert_eq!(rows, [(1752, id(4)), (345, id(1)), (6, id(2))], "{table}");
    let want = vec![(id(1), 345), (id(2), 6), (id(4), 1752)];
    assert_eq!(stored(&data), want);
    // The same indicator's first and last seen are the Zeek `ts` of its first and last
    // line.
    let out = ok(phalanx(
        &data,
        &["--json", "hunt", "--input", ZEEK, "--no-store"],
    ));
    let sightings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let azure = sightings
        .iter()
        .find(|s| s["sighting_of_ref"] == id(2).as_str())
        .unwrap();
    assert_eq!(azure["count"], 6);
    assert_eq!(azure["first_seen"], "2020-04-30T00:28:04.258622Z");
    assert_eq!(azure["last_seen"], "2020-04-30T00:32:04.009560Z");
    let summary: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["hits"], 2103);
    assert_eq!(summary["summary"]["stored"], false);
    // --no-store stored nothing; a second stored hunt adds up.
    assert_eq!(stored(&data), want);
    ok(phalanx(&data, &["hunt", "--input", ZEEK]));
    assert_eq!(
        stored(&data),
        vec![(id(1), 690), (id(2), 12), (id(4), 3504)]
    );
}

#[test]
fn malformed_telemetry_is_counted_and_sampled_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let data = node_with(
        dir.path(),
        &[indicator(1, "[ipv4-addr:value = '10.0.0.4']", &[GREEN])],
    );
    let zeek = std::fs::read_to_string(ZEEK).unwrap();
    let mut lines: Vec<&str> = zeek.lines().take(100).collect();
    lines.insert(3, "{not json");
    lines.insert(50, "\u{0}\u{1} binary junk");
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = ok(phalanx(
        &data,
        &[
            "hunt",
            "--input",
            &input.to_string_lossy(),
            "--format",
            "zeek",
        ],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("102 lines, 2 malformed"), "{err}");
    assert!(err.contains("line 4:") && err.contains("line 51:"), "{err}");
    // An unknown format says what to do.
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"a\": 1}\n").unwrap();
    let out = phalanx(&data, &["hunt", "--input", &junk.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --format"));
}

#[test]
fn watch_follows_a_growing_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = node_with(
        dir.path(),
        &[indicator(1, "[ipv4-addr:value = '10.0.0.4']", &[GREEN])],
    );
    let zeek = std::fs::read_to_string(ZEEK).unwrap();
    let lines: Vec<&str> = zeek.lines().collect();
    let with_4 = |from: usize, n: usize| -> Vec<&str> {
        lines[from..]
            .iter()
            .filter(|l| l.contains("\"10.0.0.4\""))
            .take(n)
            .copied()
            .collect()
    };
    let log = dir.path().join("conn.log");
    std::fs::write(&log, format!("{}\n", with_4(0, 3).join("\n"))).unwrap();
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args([
            "watch",
            "--input",
            &log.to_string_lossy(),
            "--flush-seconds",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while stored(&data).first().map(|s| s.1) != Some(want) {
            assert!(
                Instant::now() < deadline,
                "waiting for count {want}: {:?}",
                stored(&data)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Started at the end: the three lines already there are not counted. Appended
    // lines are, including one written in two parts.
    std::thread::sleep(Duration::from_millis(700));
    let more = with_4(10, 4);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    use std::io::Write;
    writeln!(f, "{}\n{}", more[0], more[1]).unwrap();
    let (a, b) = more[2].split_at(20);
    write!(f, "{a}").unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    writeln!(f, "{b}").unwrap();
    wait_for(3);
    // Truncated (log rotation by copy-truncate): read again from the start.
    std::fs::write(&log, format!("{}\n", more[3])).unwrap();
    wait_for(4);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn blocking_exports_follow_pap_and_skip_what_a_list_cannot_say() {
    let dir = tempfile::tempdir().unwrap();
    let data = node_with(
        dir.path(),
        &[
            indicator(1, "[ipv4-addr:value = '198.51.100.7']", &[GREEN, PAP_GREEN]),
            indicator(
                2,
                "[domain-name:value = 'evil.example'] OR [url:value = 'http://evil.example/x']",
                &[GREEN, PAP_GREEN],
            ),
            indicator(
                3,
                "[file:hashes.'SHA-256' = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']",
                &[GREEN, PAP_GREEN],
            ),
            indicator(
                4,
                "[ipv4-addr:value = '1.2.3.4' AND ipv4-addr:value = '1.2.3.5']",
                &[GREEN, PAP_GREEN],
            ),
            // No PAP marking: the node default (AMBER) keeps it from active use.
            indicator(5, "[ipv4-addr:value = '203.0.113.9']", &[GREEN]),
        ],
    );
    let export = |format: &str| {
        let out = ok(phalanx(
            &data,
            &["export", "-c", "intel", "--format", format],
        ));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (list, err) = export("blocklist");
    let values: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        values,
        [
            "198.51.100.7",
            "evil.example",
            "http://evil.example/x",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ]
    );
    assert!(
        err.contains("skipped 1: several conditions on one object (AND)"),
        "{err}"
    );
    let (zeek, _) = export("zeek-intel");
    assert!(zeek.starts_with("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"));
    assert!(
        zeek.contains("198.51.100.7\tIntel::ADDR\tphalanx\t"),
        "{zeek}"
    );
    assert!(zeek.contains("evil.example/x\tIntel::URL\t"), "{zeek}");
    assert!(!zeek.contains("203.0.113.9"), "PAP kept it out: {zeek}");
    let (rules, err) = export("suricata");
    let rules: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert!(rules[0].starts_with("alert ip any any <> [198.51.100.7] any ("));
    assert!(
        rules
            .iter()
            .all(|r| r.contains("sid:39000") && r.ends_with("rev:1;)"))
    );
    assert!(err.contains("file hashes"), "{err}");
}
