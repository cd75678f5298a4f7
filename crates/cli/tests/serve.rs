//! `phalanx serve`, `token` and `user` as real processes: the scriptable forms, first
//! start on a fresh data directory, the loopback rule, and graceful shutdown with a
//! request in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const TAXII: &str = "application/taxii+json;version=2.1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `phalanx serve` and the lines it printed before "press Ctrl-C".
struct Serve {
    child: Child,
    addr: SocketAddr,
    banner: Vec<String>,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_phalanx"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("press Ctrl-C");
            banner.push(line);
            if done {
                break;
            }
        }
        assert!(
            banner.iter().any(|l| l.starts_with("press Ctrl-C")),
            "serve did not start: {banner:?}"
        );
        Serve {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            banner,
        }
    }

    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (st, err);
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    response(s)
}

fn response(mut s: TcpStream) -> (u16, String) {
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn basic(user: &str, password: &str) -> String {
    // Minimal base64 for the test (RFC 4648 alphabet, with padding).
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn indicators(n: usize) -> String {
    let objects: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{}","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","pattern":"[ipv4-addr:value = '10.0.{}.{}']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}}"#,
                uuid::Uuid::new_v4(),
                i / 256 % 256,
                i % 256
            )
        })
        .collect();
    format!("{{\"objects\":[{}]}}", objects.join(","))
}

#[test]
fn fresh_node_serves_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::start(&data);
    let banner = serve.banner.join("\n");
    assert!(
        banner.contains(&format!("http://{}/taxii2/", serve.addr)),
        "{banner}"
    );
    assert!(
        banner.contains("created the default collection"),
        "{banner}"
    );
    // The one-time administrator credential works over HTTP Basic.
    let password = serve
        .banner
        .iter()
        .find_map(|l| l.split("with password ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("admin password in the banner")
        .to_owned();
    let (status, body) = request(
        serve.addr,
        "GET",
        "/default/collections/",
        &basic("admin", &password),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"alias\":\"default\""), "{body}");
    let (status, _) = request(serve.addr, "GET", "/taxii2/", &basic("admin", "wrong"), "");
    assert_eq!(status, 401);
    serve.interrupt();
    let (st, _) = serve.wait();
    assert!(st.success());
    // A second start creates nothing new and shows no credential again.
    let again = Serve::start(&data);
    assert!(
        !again.banner.join("\n").contains("password"),
        "{:?}",
        again.banner
    );
    again.interrupt();
    assert!(again.wait().0.success());
}

#[test]
fn token_create_prints_the_token_alone_and_grants_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(
        phalanx(data, &["collection", "create", "a"])
            .status
            .success()
    );
    assert!(
        phalanx(data, &["collection", "create", "b"])
            .status
            .success()
    );
    let out = phalanx(
        data,
        &[
            "token", "create", "--org", "acme", "--read", "a", "--write", "b",
        ],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert!(!token.contains('\n'), "one line: {stdout:?}");
    assert!(token.starts_with("phx_") && token.len() == 68, "{token}");
    let all = phalanx(data, &["token", "create", "--org", "acme", "--read"]);
    let reader = String::from_utf8(all.stdout).unwrap().trim().to_owned();
    // An unknown collection in a grant is an error, not a silent no-op.
    let bad = phalanx(
        data,
        &["token", "create", "--org", "acme", "--read", "nope"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));

    let serve = Serve::start(data);
    let bearer = format!("Bearer {token}");
    let (_, cols) = request(serve.addr, "GET", "/default/collections/", &bearer, "");
    let cols: serde_json::Value = serde_json::from_str(&cols).unwrap();
    let rights: Vec<(String, bool, bool)> = cols["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["alias"].as_str().unwrap().to_owned(),
                c["can_read"].as_bool().unwrap(),
                c["can_write"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rights,
        [("a".to_owned(), true, false), ("b".to_owned(), true, true)],
        "read a; write b, which implies reading it"
    );
    let (_, cols) = request(
        serve.addr,
        "GET",
        "/default/collections/",
        &format!("Bearer {reader}"),
        "",
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&cols).unwrap()["collections"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a bare --read is every collection"
    );

    // list shows ids, never secrets; revoke takes effect on the next request.
    let list = String::from_utf8(phalanx(data, &["--json", "token", "list"]).stdout).unwrap();
    assert!(!list.contains(token));
    let listed: serde_json::Value = serde_json::from_str(&list).unwrap();
    let first = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(phalanx(data, &["token", "revoke", &first]).status.success());
    let (status, _) = request(serve.addr, "GET", "/taxii2/", &bearer, "");
    assert_eq!(status, 401);
    serve.interrupt();
    assert!(serve.wait().0.success());
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = phalanx(dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-http") && err.contains("--tls-cert"),
        "{err}"
    );
}

#[test]
fn ctrl_c_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(
        phalanx(data, &["collection", "create", "intel"])
            .status
            .success()
    );
    let token =
        String::from_utf8(phalanx(data, &["token", "create", "--org", "acme", "--write"]).stdout)
            .unwrap();
    let list = String::from_utf8(phalanx(data, &["--json", "collection", "list"]).stdout).unwrap();
    let id = serde_json::from_str::<serde_json::Value>(&list).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let serve = Serve::start(data);
    // Send the headers and half the body, interrupt the server, then send the rest:
    // the request is in flight when the signal arrives.
    let body = indicators(2000);
    let (head, tail) = body.split_at(body.len() / 2);
    let mut s = TcpStream::connect(serve.addr).unwrap();
    write!(
        s,
        "POST /default/collections/{id}/objects/ HTTP/1.1\r\nHost: x\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        token.trim(),
        body.len()
    )
    .unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    serve.interrupt();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(tail.as_bytes()).unwrap();
    let (status, reply) = response(s);
    assert_eq!(status, 202, "{reply}");
    assert!(reply.contains("\"success_count\":2000"), "{reply}");
    let (st, err) = serve.wait();
    assert!(st.success(), "{err}");
    // What was acknowledged is stored.
    let list = String::from_utf8(phalanx(data, &["--json", "collection", "list"]).stdout).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).unwrap()[0]["objects"],
        2000
    );
}

#[test]
fn telemetry_posted_to_the_node_becomes_sightings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(phalanx(data, &["collection", "create", "intel"]));
    let bundle = serde_json::json!({"type": "bundle", "id": "bundle--6b2c0c55-8f5e-4d0b-9d8e-2f3a4b5c6d7e", "objects": [{
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--00000000-0000-4000-8000-000000000001",
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '10.0.0.4']", "pattern_type": "stix",
        "valid_from": "2020-01-01T00:00:00Z"}]});
    ok(phalanx_stdin(
        data,
        &["import", "-c", "intel", "-"],
        &bundle.to_string(),
    ));
    let token = |org: &str| {
        String::from_utf8(ok(phalanx(data, &["token", "create", "--org", org, "--read"])).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let (own, outsider) = (token("local"), token("acme"));
    let zeek = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/telemetry/zeek-apt29-day1.jsonl"
    ))
    .unwrap();
    let mut lines: Vec<&str> = zeek
        .lines()
        .filter(|l| l.contains("\"10.0.0.4\""))
        .take(3)
        .collect();
    lines.push("{broken");
    let body = lines.join("\n");
    let serve = Serve::start(data);
    let post = |query: &str, token: &str| {
        request(
            serve.addr,
            "POST",
            &format!("/detect/lines?{query}"),
            &format!("Bearer {token}"),
            &body,
        )
    };
    let (status, answer) = post("format=zeek", &own);
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (
            v["lines"].as_u64(),
            v["malformed"].as_u64(),
            v["hits"].as_u64()
        ),
        (Some(4), Some(1), Some(3)),
        "{v}"
    );
    assert_eq!(v["errors"][0]["line"], 4);
    assert_eq!(v["sightings"][0]["count"], 3);
    assert_eq!(
        v["sightings"][0]["sighting_of_ref"],
        "indicator--00000000-0000-4000-8000-000000000001"
    );
    // The next batch adds to the same sighting.
    let (_, answer) = post("format=zeek", &own);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["sightings"][0]["count"], 6);
    // Only the node's own organisation; a bad format is named.
    let (status, answer) = post("format=zeek", &outsider);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post("format=pcap", &own);
    assert_eq!(status, 400);
    assert!(answer.contains("pcap"), "{answer}");
    serve.interrupt();
    assert!(serve.wait().0.success());
}
