//! Conformance against the OASIS reference tools' own test cases.
//!
//! The cases are extracted at test time from the installed PyPI packages by
//! `tests/pattern-conformance/extract.py` (nothing of theirs is copied into this
//! repository):
//! - `stix2-patterns` 2.1.2, `stix2patterns/test/v21/`: patterns the parser must accept
//!   or refuse (accepted = [`Pattern::parse`] succeeds and [`Pattern::lint`] is empty,
//!   since the reference validator also checks hash values);
//! - `stix2-matcher` 3.0.0, `stix2matcher/test/v21/`: pattern + observations with the
//!   expected match / no match / error / parse error.
//!
//! The Python is `$PHALANX_VENV_PYTHON`, by default `<workspace>/.venv/bin/python`. When it
//! or the packages are missing the tests FAIL with the setup command.
//!
//! Cases where the reference contradicts the STIX 2.1 specification are listed in
//! [`EXCEPTIONS`] with the reason; an exception that starts agreeing fails the test, so
//! the list stays exact.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use phalanx_pattern::Pattern;
use serde_json::Value;

/// (case id, why Phalanx deliberately disagrees with the reference).
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "test_complex::test_combinatorial_explosion_match[2]",
        "STIX 2.0 syntax: the test calls match() without stix_version, so the reference \
         parses it as 2.0, where START/STOP take plain strings. STIX 2.1 \u{a7}9.5 requires \
         timestamp literals (START t'...' STOP t'...'), so a 2.1 parser must refuse it.",
    ),
    (
        "test_complex::test_combinatorial_explosion_match[6]",
        DUPLICATE_REPEATS,
    ),
    (
        "test_complex::test_combinatorial_explosion_match[7]",
        DUPLICATE_REPEATS,
    ),
    ("test_complex::test_complex_match[1]", DUPLICATE_REPEATS),
    ("test_complex::test_complex_nomatch[1]", DUPLICATE_REPEATS),
];

/// The two reference packages disagree; the parser oracle wins.
const DUPLICATE_REPEATS: &str = "`[x] REPEATS 2 TIMES REPEATS 2 TIMES`: stix2-matcher builds \
    the pattern without the validator and accepts it, but the parser oracle stix2-patterns \
    2.1.2 refuses two qualifiers of one kind on one observation expression (its own case \
    test_validator::test_fail_patterns[15]; STANDARDS.md \u{a7}2.7: at most one qualifier of each \
    kind). The valid spelling `([x] REPEATS 2 TIMES) REPEATS 2 TIMES` is evaluated the same \
    way and covered by tests/eval.rs.";

const SETUP: &str = "set up the reference packages: \
    `python3 -m venv .venv && .venv/bin/pip install 'stix2-patterns==2.1.2' \
    'stix2-matcher==3.0.0' pytest` in the workspace root, or point PHALANX_VENV_PYTHON \
    at a Python that has them";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn extract(suite: &str) -> Vec<Value> {
    let python = std::env::var_os("PHALANX_VENV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "conformance: no Python at {} — {SETUP}",
        python.display()
    );
    let script = workspace().join("tests/pattern-conformance/extract.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(suite)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "conformance: cannot run {}: {e} — {SETUP}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "conformance: extract.py {suite} failed ({}):\n{}\n{SETUP}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("extract.py prints UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("extract.py prints JSON lines"))
        .collect();
    let meta = &lines[0]["meta"];
    println!("{suite}: reference versions {}", meta["versions"]);
    lines[1..].to_vec()
}

/// Tallies outcomes and fails on unexplained disagreements or stale exceptions.
struct Tally {
    suite: &'static str,
    agree: usize,
    excepted: Vec<String>,
    skipped: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn new(suite: &'static str) -> Self {
        Tally {
            suite,
            agree: 0,
            excepted: Vec::new(),
            skipped: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn record(&mut self, id: &str, ok: bool, detail: String) {
        let exception = EXCEPTIONS.iter().find(|(e, _)| *e == id);
        match (ok, exception) {
            (true, None) => self.agree += 1,
            (false, Some((_, why))) => self.excepted.push(format!("{id}: {why}")),
            (true, Some(_)) => self.failures.push(format!(
                "{id}: listed in EXCEPTIONS but now agrees; remove it"
            )),
            (false, None) => self.failures.push(format!("{id}: {detail}")),
        }
    }

    fn finish(self) {
        let total = self.agree + self.excepted.len() + self.failures.len();
        println!(
            "{}: {}/{} cases agree, {} documented exceptions, {} disagreements, {} skipped",
            self.suite,
            self.agree,
            total,
            self.excepted.len(),
            self.failures.len(),
            self.skipped.len()
        );
        for e in &self.excepted {
            println!("  exception {e}");
        }
        for s in &self.skipped {
            println!("  skipped {s}");
        }
        assert!(total > 0, "{}: no cases extracted", self.suite);
        assert!(
            self.failures.is_empty(),
            "{}: {} disagreements:\n{}",
            self.suite,
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

#[test]
fn stix2_patterns_v21_cases() {
    let mut tally = Tally::new("parser");
    for case in extract("parser") {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        if let Some(why) = case["skip"].as_str() {
            tally.skipped.push(format!("{id}: {why}"));
            continue;
        }
        let pattern = case["pattern"].as_str().expect("pattern");
        let want_valid = case["expect"] == "valid";
        let result = Pattern::parse(pattern);
        let (valid, detail) = match &result {
            Ok(p) => {
                let lints = p.lint();
                (
                    lints.is_empty(),
                    format!("parsed as `{p}`, lints {lints:?}"),
                )
            }
            Err(e) => (false, format!("refused: {e}")),
        };
        // Every accepted pattern also round-trips through the printer.
        if let Ok(p) = &result {
            let again = Pattern::parse(&p.to_string());
            assert_eq!(
                again.as_ref().ok(),
                Some(p),
                "{id}: print/parse round trip of {pattern:?}"
            );
        }
        tally.record(
            &id,
            valid == want_valid,
            format!("{pattern:?}: expected {}, {detail}", case["expect"]),
        );
    }
    tally.finish();
}

/// The reference's input (a list of bundles in 2.1, of observed-data in 2.0) as
/// observed-data objects plus an id → SCO map.
fn observations(case: &Value) -> (Vec<Value>, HashMap<String, Value>) {
    let list = case["observations"].as_array().cloned().unwrap_or_default();
    if case["stix_version"] != "2.1" {
        return (list, HashMap::new());
    }
    let mut ods = Vec::new();
    let mut scos = HashMap::new();
    for bundle in list {
        for obj in bundle["objects"].as_array().cloned().unwrap_or_default() {
            if obj["type"] == "observed-data" {
                ods.push(obj);
            } else if let Some(id) = obj["id"].as_str() {
                scos.insert(id.to_owned(), obj.clone());
            }
        }
    }
    (ods, scos)
}

#[test]
fn stix2_matcher_v21_cases() {
    let mut tally = Tally::new("matcher");
    for case in extract("matcher") {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        if let Some(why) = case["skip"].as_str() {
            tally.skipped.push(format!("{id}: {why}"));
            continue;
        }
        let pattern = case["pattern"].as_str().expect("pattern");
        let expect = case["expect"].as_str().expect("expect");
        let (ods, scos) = observations(&case);
        let outcome = match Pattern::parse(pattern) {
            Err(e) => ("parse_error", format!("parse error: {e}")),
            Ok(p) => match p.compile() {
                Err(e) => ("error", format!("compile error: {e}")),
                Ok(m) => match m.find(&ods, &scos) {
                    Err(e) => ("error", format!("match error: {e}")),
                    Ok(Some(b)) => ("match", format!("matched observations {b:?}")),
                    Ok(None) => ("nomatch", "no match".to_owned()),
                },
            },
        };
        tally.record(
            &id,
            outcome.0 == expect,
            format!("{pattern:?}: expected {expect}, got {}", outcome.1),
        );
    }
    tally.finish();
}
