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
const ATTESTATION: &str = "x-phalanx-attestation";
const RECALL: &str = "x-phalanx-recall";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node: its data directory, certificate, port and (when running) process.
struct Node {
    /// The node's STIX identity id and public signing key (hex), from `init`.
    identity: String,
    public_key: String,
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
        let init: Value =
            serde_json::from_slice(&ok(phalanx(&data, &["--json", "init", "--org", org])).stdout)
                .unwrap();
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
            identity: init["identity"]["id"].as_str().unwrap().to_owned(),
            public_key: init["public_key"].as_str().unwrap().to_owned(),
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

    /// Sorted ids of a collection's object versions, without the attestations that
    /// travel with signed objects.
    fn ids(&self, alias: &str) -> Vec<String> {
        let out = self.cli(&["export", "-c", alias]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<String> = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["type"] != ATTESTATION && o["type"] != RECALL)
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Rows a collection holds (object versions and attestations).
    fn count_rows(&self, alias: &str) -> u64 {
        let v: Value =
            serde_json::from_slice(&self.cli(&["--json", "collection", "list"]).stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["alias"] == alias)
            .unwrap()["objects"]
            .as_u64()
            .unwrap()
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
    // B takes requests of at most 1,500 bytes: A's push cuts its envelopes to fit.
    std::fs::write(
        b.data.join("phalanx.toml"),
        "[taxii]\nmax_content_length = 1500\n",
    )
    .unwrap();
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
    assert_eq!(feeds[0]["lag_us"], 0, "the push is up to date");
    assert_eq!(feeds[0]["federates"], true);
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
    let want = sorted_ids(&[amber.clone(), vec![more[0].clone()], late, after_restart].concat());
    eventually("the resumed pull and push", || {
        b.ids("from-a") == want && b.ids("inbox") == want
    });
    assert_eq!(
        (b.ids("from-a").len(), b.ids("inbox").len()),
        (12, 12),
        "every version exactly once"
    );
    // A deletion on A reaches B both ways: a DELETE to the inbox A pushes to, and a
    // recall notice that B's pull reads and acts on (B deletes what it pulled from A).
    let gone = want[0].clone();
    taxii_delete(&a, "cert-a", "intel", &gone);
    eventually("the deletion on B, pushed and pulled", || {
        !b.ids("inbox").contains(&gone) && !b.ids("from-a").contains(&gone)
    });
    let want: Vec<String> = want.into_iter().filter(|id| *id != gone).collect();
    assert_eq!(b.ids("from-a"), want);
    assert_eq!(b.ids("inbox"), want);
    // A marking upgrade (AMBER re-marked RED in a new version) reaches B both ways too:
    // the push recalls the object with a DELETE, and B's pull finds, in place of the RED
    // version it may not receive, a `superseded` notice, so B drops the AMBER version.
    let mut upgraded = amber
        .iter()
        .find(|o| want.iter().any(|id| o["id"].as_str() == Some(id.as_str())))
        .unwrap()
        .clone();
    let raised = upgraded["id"].as_str().unwrap().to_owned();
    upgraded["modified"] = json!("2026-07-01T00:00:00.000Z");
    upgraded["object_marking_refs"] = json!([RED]);
    a.import("intel", &[upgraded]);
    eventually("the upgrade's recall on B, pushed and pulled", || {
        !b.ids("inbox").contains(&raised) && !b.ids("from-a").contains(&raised)
    });
    let want: Vec<String> = want.into_iter().filter(|id| *id != raised).collect();
    assert_eq!(b.ids("from-a"), want);
    // Terminating the agreement on A recalls from B's inbox what A pushed under it; a
    // CLEAR indicator, which needs no agreement, stays. (What B pulled under it is not
    // recalled on termination.)
    let clear = vec![indicator(CLEAR)];
    a.import("intel", &clear);
    eventually("the CLEAR indicator", || {
        b.ids("inbox").contains(&sorted_ids(&clear)[0])
    });
    a.cli(&["agreement", "terminate", "ab"]);
    eventually("the termination recall", || {
        b.ids("inbox") == sorted_ids(&clear)
    });
    let pulled = b.ids("from-a");
    assert!(want.iter().all(|id| pulled.contains(id)), "{pulled:?}");
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
    // One that accepts and never answers, and one that sends an endless body.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming().flatten() {
            held.push(s);
        }
    });
    let huge = TcpListener::bind("127.0.0.1:0").unwrap();
    let huge_port = huge.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in huge.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = s;
                // Read the request first, so the client is waiting for the answer.
                let _ = s.read(&mut [0u8; 4096]);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/taxii+json;version=2.1\r\ncontent-length: 1073741824\r\n\r\n{\"title\":\"");
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..1024 {
                    if s.write_all(&chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let amber: Vec<Value> = (0..3).map(|_| indicator(AMBER)).collect();
    a.import("intel", &amber);
    std::fs::write(
        b.data.join("phalanx.toml"),
        "[federation]\ntimeout_seconds = 2\n",
    )
    .unwrap();
    a.start();
    b.start();
    b.cli(&[
        "peer", "pull", "cert-a",
        &format!("http://127.0.0.1:{garbage_port}/default/collections/6bbd1c8d-1b59-4f12-a1c0-1d2e9c3b9c59/"),
        "--into", "from-a",
    ]);
    b.cli(&["peer", "pull", "cert-a", &a.url("intel"), "--into", "inbox"]);
    for port in [hang_port, huge_port] {
        b.cli(&[
            "peer",
            "pull",
            "cert-a",
            &format!(
                "http://127.0.0.1:{port}/default/collections/6bbd1c8d-1b59-4f12-a1c0-1d2e9c3b9c59/"
            ),
            "--into",
            "from-a",
        ]);
    }
    // The good feed works; the bad one records why it fails, and B keeps serving.
    eventually("the good feed", || b.ids("inbox") == sorted_ids(&amber));
    eventually("the bad feed's error", || {
        let f = b.feeds();
        f[0]["failures"].as_i64().unwrap_or(0) >= 1 && f[0]["last_error"].is_string()
    });
    eventually("the hanging and the endless peer's errors", || {
        let f = b.feeds();
        f[2]["failures"].as_i64().unwrap_or(0) >= 1 && f[3]["failures"].as_i64().unwrap_or(0) >= 1
    });
    let f = b.feeds();
    assert!(
        f[0]["last_error"].as_str().unwrap().contains("collection"),
        "{}",
        f[0]
    );
    assert_eq!(f[1]["failures"], 0);
    eprintln!(
        "recorded errors:\n{}\n{}\n{}",
        f[0]["last_error"], f[2]["last_error"], f[3]["last_error"]
    );
    assert!(
        f[2]["last_error"].as_str().unwrap().contains("timed out"),
        "{}",
        f[2]
    );
    // The endless body is cut at the 100 MiB limit, or by the timeout on a loaded machine.
    let endless = f[3]["last_error"].as_str().unwrap();
    assert!(
        endless.contains("larger than the limit") || endless.contains("timed out"),
        "{}",
        f[3]
    );
    assert!(b.ids("from-a").is_empty());
    // B still serves.
    assert!(std::net::TcpStream::connect(("127.0.0.1", b.port)).is_ok());
    a.stop();
    b.stop();
}

const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";

/// Object versions (id, modified) held by a collection, sorted.
/// `DELETE …/objects/{id}/` on a node's collection, as a user of organisation `org`.
fn taxii_delete(n: &Node, org: &str, alias: &str, id: &str) {
    let token = String::from_utf8(
        n.cli(&["token", "create", "--org", org, "--write", alias])
            .stdout,
    )
    .unwrap();
    let url = format!("{}objects/{id}/", n.url(alias));
    let ca_pem = std::fs::read(&n.ca).unwrap();
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem).unwrap()])
            .build()
            .unwrap()
            .delete(&url)
            .header("accept", "application/taxii+json;version=2.1")
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "DELETE {id}: {status}");
}

fn versions(n: &Node, alias: &str) -> Vec<(String, String)> {
    let out = n.cli(&["export", "-c", alias]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all: Vec<(String, String)> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] != ATTESTATION && o["type"] != RECALL)
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["modified"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Pushes objects to `to`'s intel collection as `from` (its client certificate) with
/// `phalanx taxii push`; returns what it reported.
fn push_as(from: &Node, to: &Node, objects: &[Value]) -> String {
    let file = from
        .data
        .join(format!("push-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, json!({"objects": objects}).to_string()).unwrap();
    let out = phalanx(
        &from.data,
        &[
            "taxii",
            "push",
            &format!("https://127.0.0.1:{}/default/", to.port),
            "--collection",
            &to.url("intel"),
            "--cert",
            &from.cert.to_string_lossy(),
            "--key",
            &from.key.to_string_lossy(),
            "--ca",
            &from.ca.to_string_lossy(),
            &file.to_string_lossy(),
        ],
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn three_nodes_share_onward_exactly_as_the_agreements_allow() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    ok(phalanx(
        &root.path().join("x"),
        &["pki", "ca", &ca.to_string_lossy()],
    ));
    let mut nodes: Vec<Node> = ["cert-a", "cert-b", "cert-c"]
        .iter()
        .map(|o| Node::new(root.path(), o, &ca))
        .collect();
    // A–B: AMBER, onward to C. B–C: GREEN. Every node knows every other by certificate
    // and holds both agreements (the same documents on every node).
    let ab = "id = \"ab\"\ntitle = \"A-B\"\nstatus = \"active\"\nparties = [\"cert-a\", \"cert-b\"]\nmax_tlp = \"AMBER\"\nonward = [\"cert-c\"]\nvalid_from = \"2020-01-01T00:00:00Z\"\n";
    let bc = "id = \"bc\"\ntitle = \"B-C\"\nstatus = \"active\"\nparties = [\"cert-b\", \"cert-c\"]\nmax_tlp = \"GREEN\"\nvalid_from = \"2020-01-01T00:00:00Z\"\n";
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                let org = ["cert-a", "cert-b", "cert-c"][j];
                let cert = nodes[j].cert.to_string_lossy().into_owned();
                let (identity, key) = (nodes[j].identity.clone(), nodes[j].public_key.clone());
                nodes[i].cli(&[
                    "partner",
                    "add",
                    org,
                    "--name",
                    org,
                    "--sector",
                    "military",
                    "--cert",
                    &cert,
                    "--identity",
                    &identity,
                    "--signing-key",
                    &key,
                ]);
            }
        }
        ok(phalanx_stdin(
            &nodes[i].data,
            &["agreement", "add", "-"],
            ab,
        ));
        ok(phalanx_stdin(
            &nodes[i].data,
            &["agreement", "add", "-"],
            bc,
        ));
        nodes[i].cli(&["collection", "create", "intel"]);
    }
    let by_tlp: Vec<Value> = [CLEAR, GREEN, AMBER, AMBER_STRICT, RED]
        .iter()
        .map(|m| indicator(m))
        .collect();
    nodes[0].import("intel", &by_tlp);
    // B looks at its store on its own only once an hour: everything it passes on to C
    // goes because receiving it (A's POSTs and DELETEs) woke its push feed.
    std::fs::write(
        nodes[1].data.join("phalanx.toml"),
        "[federation]\npush_interval_ms = 3600000\n",
    )
    .unwrap();
    for n in nodes.iter_mut() {
        n.start();
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    b.cli(&["peer", "accept", "cert-a", "--into", "intel"]);
    c.cli(&["peer", "accept", "cert-b", "--into", "intel"]);
    a.cli(&["peer", "push", "cert-b", &b.url("intel"), "--from", "intel"]);
    b.cli(&["peer", "push", "cert-c", &c.url("intel"), "--from", "intel"]);
    // B: CLEAR, GREEN, AMBER (A–B carries up to AMBER). C: CLEAR and GREEN (B–C carries
    // GREEN, A–B lets it go on to C); AMBER+STRICT and RED stop at A.
    let to_b = sorted_ids(&by_tlp[..3]);
    let to_c = sorted_ids(&by_tlp[..2]);
    eventually("B's share", || b.ids("intel") == to_b);
    eventually("C's share", || c.ids("intel") == to_c);
    // A revocation on A (a new version, revoked) reaches C through B.
    let mut revoked = by_tlp[1].clone();
    revoked["modified"] = json!("2026-06-01T00:00:00.000Z");
    revoked["revoked"] = json!(true);
    a.import("intel", &[revoked.clone()]);
    let id = revoked["id"].as_str().unwrap().to_owned();
    eventually("the revocation on C", || {
        versions(c, "intel").contains(&(id.clone(), "2026-06-01T00:00:00.000Z".to_owned()))
    });
    // C never received AMBER, AMBER+STRICT or RED; B holds nothing above AMBER (ids
    // listed once per version: the revoked object has two).
    std::thread::sleep(Duration::from_millis(600));
    let distinct = |n: &Node| {
        let mut ids = n.ids("intel");
        ids.dedup();
        ids
    };
    assert_eq!(distinct(b), to_b);
    assert_eq!(distinct(c), to_c);
    assert_eq!(versions(c, "intel").len(), 3);
    // C verifies A's signature on what it received through B.
    let green = by_tlp[1]["id"].as_str().unwrap();
    let explained = String::from_utf8(
        c.cli(&[
            "policy",
            "explain",
            "--object",
            green,
            "--partner",
            "cert-b",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        explained.contains("signature: verified — produced and signed by partner cert-a"),
        "{explained}"
    );
    // B signed what it passed on with a transit attestation: C records the path A → B
    // and verifies B's part too.
    assert!(
        explained.contains("passed on by partner cert-b (transit signature verified)"),
        "{explained}"
    );
    assert!(
        explained.contains(&format!(
            "path: cert-a ({}) → cert-b ({}) → this node",
            a.identity, b.identity
        )),
        "{explained}"
    );
    // B, by its certificate, posts to C what a compromised or buggy intermediary could:
    // A's AMBER indicator changed after A signed it (under A's genuine attestation), an
    // object under a copy of that attestation re-pointed at it (the signature no longer
    // verifies), and an object nobody signed. C refuses each object, says why, and keeps
    // the genuine attestation (it vouches for nothing C holds).
    let amber = &by_tlp[2];
    let all_b: Value = serde_json::from_slice(&b.cli(&["export", "-c", "intel"]).stdout).unwrap();
    let att = all_b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == ATTESTATION && o["covers"][0]["object_ref"] == amber["id"])
        .expect("A's attestation of its AMBER indicator, on B")
        .clone();
    let mut tampered = amber.clone();
    tampered["pattern"] = json!("[ipv4-addr:value = '192.0.2.66']");
    let out = push_as(b, c, &[att.clone(), tampered]);
    assert!(out.contains("1 succeeded, 1 failed"), "{out}");
    assert!(out.contains("digest mismatch"), "{out}");
    let other = indicator(AMBER);
    let mut forged = att.clone();
    forged["covers"][0]["object_ref"] = other["id"].clone();
    let out = push_as(b, c, &[forged, other]);
    assert!(out.contains("0 succeeded, 2 failed"), "{out}");
    assert!(out.contains("does not verify"), "{out}");
    let out = push_as(b, c, &[indicator(GREEN)]);
    assert!(
        out.contains("unsigned: partner cert-b signs what it shares"),
        "{out}"
    );
    assert_eq!(distinct(c), to_c);
    // Deleting on A (TAXII DELETE) recalls the object from B and, through B, from C.
    let clear_id = by_tlp[0]["id"].as_str().unwrap().to_owned();
    taxii_delete(a, "cert-a", "intel", &clear_id);
    eventually("the recall on B and C", || {
        !b.ids("intel").contains(&clear_id) && !c.ids("intel").contains(&clear_id)
    });
    assert_eq!(distinct(b).len(), 2);
    assert_eq!(distinct(c).len(), 1);
    // A marking upgrade: a GREEN indicator that reached C is re-marked RED on A (a new
    // version). A recalls it from B, and B's deletion recalls it from C.
    let green2 = indicator(GREEN);
    a.import("intel", std::slice::from_ref(&green2));
    let g2 = green2["id"].as_str().unwrap().to_owned();
    eventually("the new GREEN indicator on C", || {
        c.ids("intel").contains(&g2)
    });
    let mut red2 = green2.clone();
    red2["modified"] = json!("2026-07-01T00:00:00.000Z");
    red2["object_marking_refs"] = json!([RED]);
    a.import("intel", &[red2]);
    eventually("the upgrade's recall on B and C", || {
        !b.ids("intel").contains(&g2) && !c.ids("intel").contains(&g2)
    });
    for n in nodes.iter_mut() {
        n.stop();
    }
}

#[test]
fn killing_the_receiver_during_a_push_loses_and_duplicates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(root.path());
    let objects: Vec<Value> = (0..10_000).map(|_| indicator(AMBER)).collect();
    a.import("intel", &objects);
    // Envelopes of 200: the push takes long enough to be caught in the middle.
    std::fs::write(a.data.join("phalanx.toml"), "[federation]\npage = 200\n").unwrap();
    a.start();
    b.start();
    b.cli(&["peer", "accept", "cert-a", "--into", "inbox"]);
    a.cli(&["peer", "push", "cert-b", &b.url("inbox"), "--from", "intel"]);
    // kill -9 B once the push is under way.
    eventually("the push to start", || b.count_rows("inbox") > 0);
    if let Some(mut c) = b.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    // Each page of 200 objects (one type, one marking) travels under one attestation of
    // A: 10,050 rows when complete.
    let partial = b.count_rows("inbox");
    assert!(partial < 10_050, "B was killed after the push ended");
    b.start();
    eventually("every object on B", || b.count_rows("inbox") == 10_050);
    assert_eq!(
        b.ids("inbox"),
        sorted_ids(&objects),
        "nothing lost, nothing twice"
    );
    let feed = &a.feeds()[0];
    eventually("A's cursor at the end", || {
        let f = &a.feeds()[0];
        f["moved"].as_i64().unwrap_or(0) >= 10_000 && f["failures"] == 0
    });
    eprintln!("B held {partial} of 10,050 rows when killed; feed before the end: {feed}");
    a.stop();
    b.stop();
}
