//! The TAXII server over real HTTP (and HTTPS) on loopback: negotiation, authentication,
//! permissions on every route, pagination, limits, status resources, deletion, metrics.

use phalanx_node::{Node, NodeConfig};
use phalanx_store::{Access, Collection, NewCollection, SqliteStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

mod common;

const TAXII: &str = "application/taxii+json;version=2.1";

struct Server {
    addr: SocketAddr,
    node: Arc<Node>,
    running: common::Running,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(
        cfg: NodeConfig,
        tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("phalanx.db")).unwrap();
        let node = Arc::new(Node::new(Arc::new(store), cfg).unwrap());
        node.bootstrap(phalanx_node::now_micros()).unwrap();
        let running = common::serve(node.clone(), tls).await;
        Server {
            addr: running.addr,
            node,
            running,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn collection(&self, name: &str, writable: bool) -> Collection {
        let mut c = NewCollection::named(name);
        c.can_write = writable;
        self.node.store().create_collection("default", &c).unwrap()
    }

    /// A token of this node's own organisation (the sharing policy lets it read
    /// everything its grants allow), labelled `label`.
    fn token(&self, label: &str, read: Access, write: Access) -> String {
        self.node
            .create_token(
                label,
                phalanx_node::DEFAULT_ORG,
                read,
                write,
                phalanx_node::now_micros(),
            )
            .unwrap()
            .1
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

fn indicator(n: usize) -> Value {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{}", uuid::Uuid::new_v4()),
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '198.51.{}.{}']", n / 256 % 256, n % 256),
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z"
    })
}

/// Sends bytes as written and returns the whole response.
async fn raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(url: &str, token: &str) -> reqwest::Response {
    http()
        .get(url)
        .header("Accept", TAXII)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn post(url: &str, token: &str, body: &Value) -> reqwest::Response {
    http()
        .post(url)
        .header("Accept", TAXII)
        .header("Content-Type", TAXII)
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Checks a TAXII error response and returns its body.
async fn taxii_error(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], TAXII);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["http_status"], status.as_u16().to_string());
    assert!(v["title"].is_string());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_and_authentication() {
    let s = Server::start(NodeConfig::default(), None).await;
    let c = s.collection("intel", true);
    let token = s.token("acme", Access::All, Access::All);
    let disc = s.url("/taxii2/");

    // Accept: wrong type, wrong version → 406 with a TAXII error body; `*/*` (curl,
    // reqwest's default) is served.
    let r = http().get(&disc).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let missing = raw(
        s.addr,
        &format!("GET /taxii2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        missing.starts_with("HTTP/1.1 406"),
        "no Accept header: {missing}"
    );
    for bad in [
        "application/json",
        "application/taxii+json;version=2.0",
        "text/html",
    ] {
        let r = http()
            .get(&disc)
            .header("Accept", bad)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        taxii_error(r, StatusCode::NOT_ACCEPTABLE).await;
    }
    // No credentials, bad token, bad password → 401 with both challenges.
    let r = http()
        .get(&disc)
        .header("Accept", TAXII)
        .send()
        .await
        .unwrap();
    let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 2);
    taxii_error(r, StatusCode::UNAUTHORIZED).await;
    taxii_error(get(&disc, "phx_nope").await, StatusCode::UNAUTHORIZED).await;
    let r = http()
        .get(&disc)
        .header("Accept", TAXII)
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    taxii_error(r, StatusCode::UNAUTHORIZED).await;
    // HTTP Basic with a real user.
    s.node
        .add_user(
            "alice",
            "acme",
            "s3cret-pass",
            Access::All,
            Access::None,
            false,
            0,
        )
        .unwrap();
    let r = http()
        .get(&disc)
        .header("Accept", "application/taxii+json")
        .basic_auth("alice", Some("s3cret-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], TAXII);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["default"], "/default/");
    assert_eq!(d["api_roots"], json!(["/default/"]));

    // A revoked token stops working at once.
    let (p, t2) = s
        .node
        .create_token(
            "tmp",
            phalanx_node::DEFAULT_ORG,
            Access::All,
            Access::None,
            0,
        )
        .unwrap();
    assert_eq!(get(&disc, &t2).await.status(), StatusCode::OK);
    s.node.store().revoke_principal(&p.id, 1).unwrap();
    taxii_error(get(&disc, &t2).await, StatusCode::UNAUTHORIZED).await;

    // API root resource.
    let root: Value = get(&s.url("/default/"), &token).await.json().await.unwrap();
    assert_eq!(root["versions"], json!([TAXII]));
    assert!(root["max_content_length"].as_u64().unwrap() > 0);

    // POST with a wrong Content-Type → 415.
    let objects = s.url(&format!("/default/collections/{}/objects/", c.id));
    let r = http()
        .post(&objects)
        .header("Accept", TAXII)
        .header("Content-Type", "application/json")
        .bearer_auth(&token)
        .body(json!({"objects": [indicator(1)]}).to_string())
        .send()
        .await
        .unwrap();
    taxii_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Unknown endpoints and paths without the trailing slash get TAXII 404s.
    taxii_error(get(&s.url("/taxii2"), &token).await, StatusCode::NOT_FOUND).await;
    taxii_error(get(&s.url("/nope/"), &token).await, StatusCode::NOT_FOUND).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_hold_on_every_route() {
    let s = Server::start(NodeConfig::default(), None).await;
    let a = s.collection("a", true);
    let b = s.collection("b", true);
    let ro = s.collection("feed", false);
    let admin = s.token("admin-org", Access::All, Access::All);
    let only_a = s.token(
        "acme",
        Access::Collections(vec![a.id.clone()]),
        Access::None,
    );
    let obj = indicator(7);
    let id = obj["id"].as_str().unwrap().to_owned();
    for c in [&a, &b] {
        let r = post(
            &s.url(&format!("/default/collections/{}/objects/", c.id)),
            &admin,
            &json!({"objects": [obj]}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // The reader of A sees A only: B is not listed and every B route is a 404,
    // so the caller does not even learn that B exists.
    let cols: Value = get(&s.url("/default/collections/"), &only_a)
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<_> = cols["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&a.id));
    let base_b = format!("/default/collections/{}", b.id);
    for path in [
        format!("{base_b}/"),
        format!("{base_b}/objects/"),
        format!("{base_b}/manifest/"),
        format!("{base_b}/objects/{id}/"),
        format!("{base_b}/objects/{id}/versions/"),
    ] {
        let r = get(&s.url(&path), &only_a).await;
        let body = taxii_error(r, StatusCode::NOT_FOUND).await;
        assert!(
            !body.to_string().contains(&id),
            "{path} leaked the object id"
        );
    }
    let r = post(
        &s.url(&format!("{base_b}/objects/")),
        &only_a,
        &json!({"objects": [indicator(8)]}),
    )
    .await;
    taxii_error(r, StatusCode::NOT_FOUND).await;
    // On A: reading works, writing and deleting are forbidden.
    let base_a = format!("/default/collections/{}", a.id);
    let page: Value = get(&s.url(&format!("{base_a}/objects/")), &only_a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["objects"][0]["id"], id.as_str());
    let info: Value = get(&s.url(&format!("{base_a}/")), &only_a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (info["can_read"].as_bool(), info["can_write"].as_bool()),
        (Some(true), Some(false))
    );
    let r = post(
        &s.url(&format!("{base_a}/objects/")),
        &only_a,
        &json!({"objects": [indicator(9)]}),
    )
    .await;
    taxii_error(r, StatusCode::FORBIDDEN).await;
    let r = http()
        .delete(s.url(&format!("{base_a}/objects/{id}/")))
        .header("Accept", TAXII)
        .bearer_auth(&only_a)
        .send()
        .await
        .unwrap();
    taxii_error(r, StatusCode::FORBIDDEN).await;
    // A read-only collection refuses writes even from the administrator.
    let r = post(
        &s.url(&format!("/default/collections/{}/objects/", ro.id)),
        &admin,
        &json!({"objects": [indicator(10)]}),
    )
    .await;
    taxii_error(r, StatusCode::FORBIDDEN).await;
    // Status resources belong to whoever posted.
    let r = post(
        &s.url(&format!("{base_a}/objects/")),
        &admin,
        &json!({"objects": [indicator(11)]}),
    )
    .await;
    let st: Value = r.json().await.unwrap();
    let status_url = s.url(&format!("/default/status/{}/", st["id"].as_str().unwrap()));
    assert_eq!(get(&status_url, &admin).await.status(), StatusCode::OK);
    taxii_error(get(&status_url, &only_a).await, StatusCode::NOT_FOUND).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_exact_and_next_is_bound_to_query_and_caller() {
    let s = Server::start(NodeConfig::default(), None).await;
    let c = s.collection("intel", true);
    let token = s.token("acme", Access::All, Access::All);
    let other = s.token("other", Access::All, Access::None);
    let objects_url = s.url(&format!("/default/collections/{}/objects/", c.id));
    let all: Vec<Value> = (0..53).map(indicator).collect();
    for chunk in all.chunks(20) {
        assert_eq!(
            post(&objects_url, &token, &json!({"objects": chunk}))
                .await
                .status(),
            StatusCode::ACCEPTED
        );
    }
    for limit in [1usize, 7, 53, 100] {
        let mut seen = Vec::new();
        let mut url = format!("{objects_url}?limit={limit}");
        let mut last_added = String::new();
        loop {
            let r = get(&url, &token).await;
            assert_eq!(r.status(), StatusCode::OK);
            let first = r.headers()["x-taxii-date-added-first"]
                .to_str()
                .unwrap()
                .to_owned();
            let last = r.headers()["x-taxii-date-added-last"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                first.len(),
                "2024-01-01T00:00:00.000000Z".len(),
                "microseconds"
            );
            assert!(first > last_added && last >= first, "ascending date_added");
            last_added = last;
            let page: Value = r.json().await.unwrap();
            let objs = page["objects"].as_array().unwrap();
            assert!(objs.len() <= limit);
            seen.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            if page["more"] != json!(true) {
                assert!(page.get("next").is_none());
                break;
            }
            let next = page["next"].as_str().expect("next whenever more is true");
            url = format!("{objects_url}?limit={limit}&next={next}");
        }
        let want: Vec<_> = all
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, want, "limit {limit}: every object once, in order");
    }
    // added_after is exclusive and uses date_added.
    let r = get(&format!("{objects_url}?limit=10"), &token).await;
    let last = r.headers()["x-taxii-date-added-last"]
        .to_str()
        .unwrap()
        .to_owned();
    let rest: Value = get(
        &format!("{objects_url}?added_after={last}&limit=100"),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rest["objects"].as_array().unwrap().len(), 43);

    let page: Value = get(&format!("{objects_url}?limit=5"), &token)
        .await
        .json()
        .await
        .unwrap();
    let next = page["next"].as_str().unwrap().to_owned();
    // Same query, same caller: fine. Tampered, other query, other caller: 400.
    assert_eq!(
        get(&format!("{objects_url}?limit=5&next={next}"), &token)
            .await
            .status(),
        StatusCode::OK
    );
    let (after, mac) = next.split_once('.').unwrap();
    let forged = format!("{}.{mac}", after.parse::<i64>().unwrap() - 1);
    for url in [
        format!("{objects_url}?limit=5&next={forged}"),
        format!("{objects_url}?limit=6&next={next}"),
        format!("{objects_url}?limit=5&match[type]=malware&next={next}"),
        format!("{objects_url}?limit=5&next=garbage"),
    ] {
        taxii_error(get(&url, &token).await, StatusCode::BAD_REQUEST).await;
    }
    taxii_error(
        get(&format!("{objects_url}?limit=5&next={next}"), &other).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Malformed filters are 400s that name the parameter.
    for (q, param) in [
        ("limit=0", "limit"),
        ("added_after=yesterday", "added_after"),
        ("match[version]=newest", "match[version]"),
    ] {
        let e = taxii_error(
            get(&format!("{objects_url}?{q}"), &token).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(e["description"].as_str().unwrap().contains(param), "{e}");
    }
    // An empty result is {} (TAXII forbids empty lists).
    let empty: Value = get(&format!("{objects_url}?match[type]=malware"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_objects_status_versions_and_delete() {
    let s = Server::start(NodeConfig::default(), None).await;
    let c = s.collection("intel", true);
    let token = s.token("acme", Access::All, Access::All);
    let base = format!("/default/collections/{}", c.id);
    let objects_url = s.url(&format!("{base}/objects/"));
    let mut v1 = indicator(1);
    let id = v1["id"].as_str().unwrap().to_owned();
    let mut v2 = v1.clone();
    v2["modified"] = json!("2024-02-01T00:00:00.000Z");
    let mut v3 = v1.clone();
    v3["modified"] = json!("2024-03-01T00:00:00.000Z");
    let invalid = json!({"type": "indicator", "spec_version": "2.1", "id": format!("indicator--{}", uuid::Uuid::new_v4()), "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z"});
    let r = post(
        &objects_url,
        &token,
        &json!({"objects": [v1, v2, invalid, v3]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let st: Value = r.json().await.unwrap();
    assert_eq!(st["status"], "complete");
    assert_eq!(
        (
            st["total_count"].as_u64(),
            st["success_count"].as_u64(),
            st["failure_count"].as_u64(),
            st["pending_count"].as_u64()
        ),
        (Some(4), Some(3), Some(1), Some(0))
    );
    assert_eq!(st["failures"][0]["id"], invalid["id"]);
    assert!(
        st["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pattern")
    );
    assert_eq!(st["successes"][1]["version"], "2024-02-01T00:00:00.000Z");
    // The status is kept and readable.
    let kept: Value = get(
        &s.url(&format!("/default/status/{}/", st["id"].as_str().unwrap())),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(kept, st);
    // Re-posting identical objects is a success; changed content under the same version
    // is a failure that says why.
    let r = post(&objects_url, &token, &json!({"objects": [v1]})).await;
    let st: Value = r.json().await.unwrap();
    assert_eq!(st["success_count"], 1);
    v1["pattern"] = json!("[ipv4-addr:value = '203.0.113.1']");
    let st: Value = post(&objects_url, &token, &json!({"objects": [v1]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(st["failure_count"], 1);
    assert!(
        st["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("immutable")
    );

    // Versions, and match[version] on the object endpoint.
    let versions: Value = get(&s.url(&format!("{base}/objects/{id}/versions/")), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions["versions"],
        json!([
            "2024-01-01T00:00:00.000Z",
            "2024-02-01T00:00:00.000Z",
            "2024-03-01T00:00:00.000Z"
        ])
    );
    let modified = |v: Value| -> Vec<String> {
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["modified"].as_str().unwrap().to_owned())
            .collect()
    };
    let last = get(&s.url(&format!("{base}/objects/{id}/")), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(modified(last), ["2024-03-01T00:00:00.000Z"]);
    let first = get(
        &s.url(&format!("{base}/objects/{id}/?match[version]=first")),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(modified(first), ["2024-01-01T00:00:00.000Z"]);
    let all = get(
        &s.url(&format!("{base}/objects/{id}/?match[version]=all")),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(modified(all).len(), 3);
    let manifest: Value = get(
        &s.url(&format!("{base}/manifest/?match[version]=all")),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(manifest["objects"].as_array().unwrap().len(), 3);
    assert_eq!(
        manifest["objects"][0]["media_type"],
        "application/stix+json;version=2.1"
    );

    // Delete one version, then the rest; the object then 404s and leaves the manifest.
    let del = |q: &str| {
        http()
            .delete(s.url(&format!("{base}/objects/{id}/{q}")))
            .header("Accept", TAXII)
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        del("?match[version]=first").await.unwrap().status(),
        StatusCode::OK
    );
    let versions: Value = get(&s.url(&format!("{base}/objects/{id}/versions/")), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(del("").await.unwrap().status(), StatusCode::OK);
    taxii_error(
        get(&s.url(&format!("{base}/objects/{id}/")), &token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    taxii_error(del("").await.unwrap(), StatusCode::NOT_FOUND).await;
    let manifest: Value = get(&s.url(&format!("{base}/manifest/")), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(manifest, json!({}));

    // Unprocessable bodies: a bundle, an empty envelope; malformed JSON is a 400.
    let bundle = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": [indicator(2)]});
    taxii_error(
        post(&objects_url, &token, &bundle).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    taxii_error(
        post(&objects_url, &token, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let r = http()
        .post(&objects_url)
        .header("Accept", TAXII)
        .header("Content-Type", TAXII)
        .bearer_auth(&token)
        .body("{\"objects\": [")
        .send()
        .await
        .unwrap();
    taxii_error(r, StatusCode::BAD_REQUEST).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_content_length_is_exact() {
    let cfg = NodeConfig {
        max_content_length: Some(4096),
        ..NodeConfig::default()
    };
    let s = Server::start(cfg, None).await;
    let c = s.collection("intel", true);
    let token = s.token("acme", Access::All, Access::All);
    let url = s.url(&format!("/default/collections/{}/objects/", c.id));
    let root: Value = get(&s.url("/default/"), &token).await.json().await.unwrap();
    assert_eq!(root["max_content_length"], 4096);
    // Pad an envelope to an exact size with an x_ property.
    let sized = |n: usize| {
        let mut o = indicator(1);
        o["x_pad"] = json!("");
        let base = json!({"objects": [o.clone()]}).to_string().len();
        o["x_pad"] = json!("a".repeat(n - base));
        let body = json!({"objects": [o]}).to_string();
        assert_eq!(body.len(), n);
        body
    };
    let send = |body: String| {
        http()
            .post(&url)
            .header("Accept", TAXII)
            .header("Content-Type", TAXII)
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    assert_eq!(
        send(sized(4096)).await.unwrap().status(),
        StatusCode::ACCEPTED,
        "at the limit: accepted"
    );
    taxii_error(
        send(sized(4097)).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // A chunked body (no Content-Length) over the limit is cut off too.
    let body = sized(5000);
    let request = format!(
        "POST /default/collections/{}/objects/ HTTP/1.1\r\nHost: x\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        c.id,
        body.len()
    );
    let response = raw(s.addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_health_metrics_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let s = Server::start(NodeConfig::default(), Some((cert, key))).await;
    let c = s.collection("intel", true);
    let token = s.token("acme", Access::All, Access::All);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", s.addr)
        .build()
        .unwrap();
    let https = |p: &str| format!("https://localhost:{}{p}", s.addr.port());
    let r = client
        .post(https(&format!("/default/collections/{}/objects/", c.id)))
        .header("Accept", TAXII)
        .header("Content-Type", TAXII)
        .bearer_auth(&token)
        .body(json!({"objects": [indicator(1), indicator(2)]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Plain HTTP to the TLS port gets no TAXII answer.
    assert!(http().get(s.url("/healthz")).send().await.is_err());
    let health = client.get(https("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = client
        .get(https("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("phalanx_objects_stored 2"), "{metrics}");
    assert!(
        metrics.contains("phalanx_taxii_objects_added_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"phalanx_http_requests_total{method="POST",route="/{root}/collections/{cid}/objects/",status="202"} 1"#), "{metrics}");
    assert!(
        metrics.contains("phalanx_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    // Graceful stop: serve returns once asked, and the data is there after.
    let node = s.node.clone();
    s.stop().await;
    assert_eq!(node.store().count(&c.id).unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_maps_a_client_certificate_to_its_partner() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let server_ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, server_ck.cert.pem()).unwrap();
    std::fs::write(&key, server_ck.signing_key.serialize_pem()).unwrap();
    let s = Server::start(NodeConfig::default(), Some((cert, key))).await;
    let c = s.collection("intel", true);
    let now = phalanx_node::now_micros();
    // The partner's certificate, registered by fingerprint; and a stranger's.
    let partner_ck =
        rcgen::generate_simple_self_signed(vec!["cert.partner.example".into()]).unwrap();
    let stranger_ck = rcgen::generate_simple_self_signed(vec!["stranger.example".into()]).unwrap();
    let fp = phalanx_node::auth::hex(&sha2::Sha256::digest(partner_ck.cert.der()));
    s.node
        .add_partner(
            &phalanx_policy::Partner {
                id: "p1".into(),
                name: "Partner One".into(),
                sector: phalanx_policy::Sector::Military,
                country: Some("NL".into()),
                contact: None,
                identity: format!("identity--{}", uuid::Uuid::new_v4()),
                signing_key: None,
                endpoints: vec![],
                cert_fingerprints: vec![fp],
                removed: false,
            },
            now,
        )
        .unwrap();
    s.node
        .add_agreement(
            r#"id = "mou-1"
title = "test"
status = "active"
parties = ["p1"]
max_tlp = "AMBER"
valid_from = "2020-01-01T00:00:00Z""#,
            "test",
            now,
        )
        .unwrap();
    let mut amber = indicator(1);
    amber["object_marking_refs"] =
        json!(["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]);
    let mut red = indicator(2);
    red["object_marking_refs"] =
        json!(["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]);
    let admin = phalanx_node::Caller::local_operator();
    s.node
        .add_objects(
            &admin,
            "default",
            &c.id,
            json!({"objects": [amber, red]}).to_string().as_bytes(),
            now,
        )
        .unwrap();
    let client = |identity: Option<&rcgen::CertifiedKey<rcgen::KeyPair>>| {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(server_ck.cert.pem().as_bytes()).unwrap(),
            ])
            .resolve("localhost", s.addr);
        if let Some(ck) = identity {
            let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let url = format!(
        "https://localhost:{}/default/collections/{}/objects/",
        s.addr.port(),
        c.id
    );
    let get = |cl: reqwest::Client| {
        let url = url.clone();
        async move { cl.get(&url).header("Accept", TAXII).send().await.unwrap() }
    };
    // The partner's certificate alone authenticates it; the policy gives it AMBER, not RED.
    let r = get(client(Some(&partner_ck))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let ids: Vec<&str> = body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![amber["id"].as_str().unwrap()]);
    // No certificate, or one registered to nobody: 401.
    assert_eq!(get(client(None)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(client(Some(&stranger_ck))).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A certificate grants reading only.
    let r = client(Some(&partner_ck))
        .post(&url)
        .header("Accept", TAXII)
        .header("Content-Type", TAXII)
        .body(json!({"objects": [indicator(3)]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_get_policy_explanations_over_rest() {
    let s = Server::start(NodeConfig::default(), None).await;
    let c = s.collection("intel", true);
    let now = phalanx_node::now_micros();
    s.node
        .add_user(
            "root",
            phalanx_node::DEFAULT_ORG,
            "pw-root-1",
            Access::All,
            Access::All,
            true,
            now,
        )
        .unwrap();
    let mut red = indicator(1);
    red["object_marking_refs"] =
        json!(["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]);
    let admin = phalanx_node::Caller::local_operator();
    s.node
        .add_objects(
            &admin,
            "default",
            &c.id,
            json!({"objects": [red]}).to_string().as_bytes(),
            now,
        )
        .unwrap();
    let id = red["id"].as_str().unwrap();
    let url = |q: &str| s.url(&format!("/admin/policy/explain?{q}"));
    let r = http()
        .get(url(&format!(
            "object={id}&partner=cert-eu&purpose=federate"
        )))
        .basic_auth("root", Some("pw-root-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["decision"], "deny");
    assert_eq!(v[0]["collection"], c.id.as_str());
    let steps = v[0]["steps"].to_string();
    assert!(steps.contains("not a registered partner"), "{steps}");
    // Bad parameters name themselves; non-administrators are refused.
    for (q, want) in [
        ("partner=x".to_owned(), "object"),
        (format!("object={id}"), "partner"),
        (format!("object={id}&partner=x&purpose=sell"), "purpose"),
        (format!("object={id}&partner=x&at=yesterday"), "at"),
        (format!("object={id}&partner=x&colour=red"), "colour"),
    ] {
        let r = http()
            .get(url(&q))
            .basic_auth("root", Some("pw-root-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert!(r.text().await.unwrap().contains(want), "{q}");
    }
    let token = s.token("reader", Access::All, Access::None);
    let r = http()
        .get(url(&format!("object={id}&partner=x")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}
