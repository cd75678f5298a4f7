//! Federation between real `phalanx serve` processes on loopback over mutual TLS (a test
//! PKI made with `phalanx pki`): pull and push feeds, the policy on what flows, agreement
//! suspension, restart with durable cursors, and a failing peer.

mod common;
use common::*;

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node: its data directory, certificate, port and (when running) process.
struct Node {
    data: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn new(root: &Path, org: &str, ca: &Path) -> Node {
        let data = root.join(org);
        ok(phalanx(&data, &["init", "--org", org]));
        let prefix = root.join(format!("{org}-cert"));
        ok(phalanx(
            &data,
            &[
                "pki",
                "issue",
                "--ca",
                &ca.to_string_lossy(),
                org,
                "--out",
                &prefix.to_string_lossy(),
            ],
        ));
        Node {
            data,
            cert: prefix.with_extension("pem"),
            key: prefix.with_extension("key"),
            ca: ca.join("ca.pem"),
            port: free_port(),
            child: None,
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        ok(phalanx(&self.data, args))
    }

    fn start(&mut self) {
        let child = Command::new(BIN)
            .arg("--data")
            .arg(&self.data)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .arg("--federation-ca")
            .arg(&self.ca)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data.join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not start: {}",
                std::fs::read_to_string(self.data.join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn collection_id(&self, alias: &str) -> String {
        let v: Value =
            serde_json::from_slice(&self.cli(&["--json", "collection", "list"]).stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["alias"] == alias)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn url(&self, alias: &str) -> String {
        format!(
            "https://127.0.0.1:{}/default/collections/{}/",
            self.port,
            self.collection_id(alias)
        )
    }

    /// Sorted ids of a collection's objects.
    fn ids(&self, alias: &str) -> Vec<String> {
        let out = self.cli(&["export", "-c", alias]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<String> = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    fn import(&self, alias: &str, objects: &[Value]) {
        let bundle = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects});
        ok(phalanx_stdin(
            &self.data,
            &["import", "-c", alias, "-"],
            &bundle.to_string(),
        ));
    }

    fn feeds(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_slice(&self.cli(&["--json", "peer", "status"]).stdout).unwrap();
        v.as_array().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn indicator(marking: &str) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{}", uuid::Uuid::new_v4()),
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '192.0.2.1']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", "object_marking_refs": [marking],
    })
}

fn sorted_ids(objects: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Waits until `f` holds (up to 20 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const AGREEMENT: &str = r#"
id = "ab"
title = "A and B"
status = "active"
parties = ["cert-a", "cert-b"]
max_tlp = "AMBER"
valid_from = "2020-01-01T00:00:00Z"
"#;

/// Two nodes, each registered at the other by its certificate, under one agreement.
fn pair(root: &Path) -> (Node, Node) {
    let ca = root.join("ca");
    ok(phalanx(
        &root.join("x"),
        &["pki", "ca", &ca.to_string_lossy()],
    ));
    let a = Node::new(root, "cert-a", &ca);
    let b = Node::new(root, "cert-b", &ca);
    for (n, other, name) in [(&a, &b, "B"), (&b, &a, "A")] {
        let org = if name == "A" { "cert-a" } else { "cert-b" };
        n.cli(&[
            "partner",
            "add",
            org,
            "--name",
            name,
            "--sector",
            "government",
            "--cert",
            &other.cert.to_string_lossy(),
        ]);
        ok(phalanx_stdin(
            &n.data,
            &["agreement", "add", "-"],
            AGREEMENT,
        ));
    }
    a.cli(&["collection", "create", "intel"]);
    b.cli(&["collection", "create", "from-a"]);
    b.cli(&["collection", "create", "inbox"]);
    (a, b)
}

#[test]
fn two_nodes_pull_and_push_what_the_agreement_allows() {
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(root.path());
    let amber: Vec<Value> = (0..8).map(|_| indicator(AMBER)).collect();
    let red: Vec<Value> = (0..2).map(|_| indicator(RED)).collect();
    a.import("intel", &[amber.clone(), red.clone()].concat());
    a.start();
    b.start();
    // B pulls A's intel; A pushes intel into B's inbox, which B accepts from A.
    b.cli(&[
        "peer",
        "pull",
        "cert-a",
        &a.url("intel"),
        "--into",
        "from-a",
    ]);
    b.cli(&["peer", "accept", "cert-a", "--into", "inbox"]);
    a.cli(&["peer", "push", "cert-b", &b.url("inbox"), "--from", "intel"]);
    let want = sorted_ids(&amber);
    eventually("the pull", || b.ids("from-a") == want);
    eventually("the push", || b.ids("inbox") == want);
    // A new object flows at once (push) and on the next poll (pull); RED never.
    let more = vec![indicator(AMBER), indicator(RED)];
    a.import("intel", &more);
    let want = sorted_ids(&[amber.clone(), vec![more[0].clone()]].concat());
    eventually("the new object", || {
        b.ids("inbox") == want && b.ids("from-a") == want
    });
    // Provenance: what B stored came from cert-a; B's own pull never loops back.
    let exported: Value = serde_json::from_slice(
        &b.cli(&[
            "policy",
            "explain",
            "--json",
            "--object",
            more[0]["id"].as_str().unwrap(),
            "--partner",
            "cert-a",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        exported
            .to_string()
            .contains("received from partner cert-a"),
        "{exported}"
    );
    let feeds = a.feeds();
    assert_eq!(feeds[0]["direction"], "push");
    assert_eq!(feeds[0]["moved"], 9);
    assert_eq!(feeds[0]["failures"], 0);
    // Suspending the agreement on A stops A's push and what B's pull gets from A.
    a.cli(&["agreement", "suspend", "ab"]);
    let late = vec![indicator(AMBER)];
    a.import("intel", &late);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.ids("inbox"), want);
    assert_eq!(b.ids("from-a"), want);
    // B restarts: the pull resumes from its cursor once the agreement is active again;
    // nothing is lost or duplicated.
    b.stop();
    a.cli(&["agreement", "activate", "ab"]);
    let after_restart = vec![indicator(AMBER), indicator(AMBER)];
    a.import("intel", &after_restart);
    b.start();
    let want = sorted_ids(&[amber, vec![more[0].clone()], late, after_restart].concat());
    eventually("the resumed pull and push", || {
        b.ids("from-a") == want && b.ids("inbox") == want
    });
    let count: Value =
        serde_json::from_slice(&b.cli(&["--json", "collection", "list"]).stdout).unwrap();
    let n = |alias: &str| {
        count
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["alias"] == alias)
            .unwrap()["objects"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (n("from-a"), n("inbox")),
        (12, 12),
        "every version exactly once"
    );
    a.stop();
    b.stop();
}

#[test]
fn a_failing_peer_is_recorded_retried_and_isolated() {
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(root.path());
    // A "peer" that answers garbage, and one that accepts and never answers.
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in garbage.incoming().flatten() {
            use std::io::Write;
            let mut s = s;
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 9\r\n\r\n<garbage>",
            );
        }
    });
    let amber: Vec<Value> = (0..3).map(|_| indicator(AMBER)).collect();
    a.import("intel", &amber);
    a.start();
    b.start();
    b.cli(&[
        "peer", "pull", "cert-a",
        &format!("http://127.0.0.1:{garbage_port}/default/collections/6bbd1c8d-1b59-4f12-a1c0-1d2e9c3b9c59/"),
        "--into", "from-a",
    ]);
    b.cli(&["peer", "pull", "cert-a", &a.url("intel"), "--into", "inbox"]);
    // The good feed works; the bad one records why it fails, and B keeps serving.
    eventually("the good feed", || b.ids("inbox") == sorted_ids(&amber));
    eventually("the bad feed's error", || {
        let f = b.feeds();
        f[0]["failures"].as_i64().unwrap_or(0) >= 1 && f[0]["last_error"].is_string()
    });
    let f = b.feeds();
    assert!(
        f[0]["last_error"].as_str().unwrap().contains("collection"),
        "{}",
        f[0]
    );
    assert_eq!(f[1]["failures"], 0);
    assert!(b.ids("from-a").is_empty());
    a.stop();
    b.stop();
}
