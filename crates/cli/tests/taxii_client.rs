//! The Phalanx TAXII 2.1 client (`phalanx_taxii::client`, `phalanx taxii pull|push`)
//! against real servers: `phalanx serve` child processes; small HTTP(S) servers written
//! here for what Phalanx never does (no `next`, 503s, oversized or non-TAXII bodies,
//! pending statuses, client certificates); and the OASIS reference server medallion when
//! it is installed in `.venv`.

use phalanx_taxii::client::{Auth, Client, Collection, Error};
use phalanx_taxii::query::Endpoint;
use phalanx_taxii::{Filters, VersionFilter};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod common;
use common::*;

// ---------------------------------------------------------------------------------------
// Running phalanx

/// The JSON lines of a `--json` run, by their single key for the keyed ones
/// (`summary`, `pull`, `push`, `envelope` ...), and the per-object records.
fn json_lines(out: &Output) -> (BTreeMap<String, Vec<Value>>, Vec<Value>) {
    let mut keyed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut objects = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let key = ["summary", "file_summary", "pull", "push"]
            .into_iter()
            .find(|k| v.get(*k).is_some());
        match (key, v.get("envelope")) {
            (Some(k), _) => keyed.entry(k.into()).or_default().push(v[k].clone()),
            (None, Some(_)) => keyed.entry("envelope".into()).or_default().push(v),
            (None, None) => objects.push(v),
        }
    }
    (keyed, objects)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed when the test ends.
struct Running {
    child: Child,
    /// `scheme://127.0.0.1:PORT`.
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `phalanx serve` on a free loopback port, once it says it is listening.
fn serve(data: &Path, extra: &[&str]) -> Running {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start phalanx serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => {
                // Keep draining stdout so the server never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                let scheme = if line.contains("https://") {
                    "https"
                } else {
                    "http"
                };
                return Running {
                    child,
                    base: format!("{scheme}://127.0.0.1:{port}"),
                };
            }
            _ => {
                // Most likely the port was taken meanwhile: try another.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("phalanx serve did not start");
}

/// A new bearer token with `grants` (`--read`, `--write` ...).
fn token(data: &Path, grants: &[&str]) -> String {
    let mut args = vec!["token", "create", "--org", "local"];
    args.extend(grants);
    let out = phalanx(data, &args);
    String::from_utf8(ok(&out).stdout.clone())
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// A valid indicator with a fresh id.
fn indicator(i: usize) -> String {
    let id = uuid::Uuid::new_v4();
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{id}","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"test {i}","pattern":"[ipv4-addr:value = '10.{}.{}.{}']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}}"#,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    )
}

fn id_of(json: &str) -> String {
    let v: Value = serde_json::from_str(json).expect("object JSON");
    v["id"].as_str().expect("id").to_owned()
}

/// Writes `n` indicators as JSON lines; returns their ids.
fn write_indicators(path: &Path, n: usize) -> Vec<String> {
    let objects: Vec<String> = (0..n).map(indicator).collect();
    std::fs::write(path, objects.join("\n") + "\n").expect("write");
    objects.iter().map(|o| id_of(o)).collect()
}

/// The objects of a local collection, exported as JSON lines.
fn exported(data: &Path, collection: &str) -> Vec<Value> {
    let out = phalanx(
        data,
        &["export", "--collection", collection, "--format", "jsonl"],
    );
    String::from_utf8_lossy(&ok(&out).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn client(auth: Auth) -> Client {
    Client::builder()
        .auth(auth)
        .retries(0)
        .build()
        .expect("client")
}

/// Every id of every page, and how many pages there were; each page is checked against
/// the limit asked for.
async fn all_ids(client: &Client, col: &Collection, limit: usize) -> (Vec<String>, usize) {
    let filters = Filters {
        limit: Some(limit),
        versions: Some(VersionFilter::all()),
        ..Filters::default()
    };
    let mut pages = client.objects(col, &filters);
    let (mut ids, mut n) = (Vec::new(), 0);
    while let Some(page) = pages.next_page().await.expect("page") {
        assert!(page.items.len() <= limit, "page of {}", page.items.len());
        ids.extend(page.items.iter().map(|o| id_of(o.get())));
        n += 1;
    }
    (ids, n)
}

fn sorted(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Against `phalanx serve`

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_small_pages_gets_every_object_exactly_once() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    let seed = dir.path().join("seed.jsonl");
    let ids = write_indicators(&seed, N);
    ok(&phalanx(
        &srv,
        &[
            "import",
            "--create",
            "--collection",
            "intel",
            seed.to_str().unwrap(),
        ],
    ));
    let tok = token(&srv, &["--read"]);
    let server = serve(&srv, &[]);

    // The CLI, given the discovery URL: the default API root, 97 objects a page.
    let local = dir.path().join("local");
    let out = phalanx_env(
        &local,
        &[
            "--json",
            "taxii",
            "pull",
            &format!("{}/taxii2/", server.base),
            "--collection",
            "mirror",
            "--from",
            "intel",
            "--create",
            "--limit",
            "97",
        ],
        &[("PHALANX_TAXII_TOKEN", &tok)],
    );
    let (keyed, records) = json_lines(ok(&out));
    let summary = &keyed["summary"][0];
    assert_eq!(summary["outcomes"]["accepted"], N as u64, "{summary}");
    assert_eq!(
        summary["objects"], N as u64,
        "no duplicates, nothing invalid"
    );
    assert_eq!(records.len(), N);
    let pull = &keyed["pull"][0];
    assert_eq!(pull["objects"], N as u64);
    assert_eq!(pull["pages"], N.div_ceil(97) as u64);
    let mirrored: Vec<String> = exported(&local, "mirror")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(mirrored.len(), N);
    assert_eq!(sorted(&mirrored), sorted(&ids));

    // The library, given the API root URL: objects page by page (Phalanx sends `next`).
    let client = client(Auth::bearer(&tok));
    let root = client
        .api_root(&format!("{}/default/", server.base))
        .await
        .unwrap();
    let col = client.find_collection(&root, "intel").await.unwrap();
    let (got, pages) = all_ids(&client, &col, 113).await;
    assert_eq!(pages, N.div_ceil(113));
    assert_eq!(got.len(), N, "every object once");
    assert_eq!(sorted(&got), sorted(&ids));

    // TAXII defines no `next` on the manifest; Phalanx sends one anyway (so next-only
    // clients terminate) and the client follows it.
    let mut pages = client.manifest(
        &col,
        &Filters {
            limit: Some(250),
            ..Filters::default()
        },
    );
    let mut records = Vec::new();
    let mut without_next = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        if page.more && page.next.is_none() {
            without_next += 1;
        }
        records.extend(page.items.into_iter().map(|r| r.id));
    }
    assert_eq!(without_next, 0, "every page with more has a next");
    assert_eq!(records.len(), N);
    assert_eq!(sorted(&records), sorted(&ids));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_counts_exact_successes_and_failures_and_a_repush_is_all_success() {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    // One object already stored: pushing a different object with its id and modified is
    // a conflict, which the server reports as a failure.
    let stored = indicator(0);
    let stored_path = dir.path().join("stored.json");
    std::fs::write(&stored_path, &stored).unwrap();
    ok(&phalanx(
        &srv,
        &[
            "import",
            "--create",
            "--collection",
            "intel",
            stored_path.to_str().unwrap(),
        ],
    ));
    let conflicting = stored.replace("test 0", "something else");
    let tok = token(&srv, &["--write"]);
    let server = serve(&srv, &[]);

    let valid = dir.path().join("valid.jsonl");
    let ids = write_indicators(&valid, 1100);
    let mut mixed = std::fs::read_to_string(&valid).unwrap();
    mixed.push_str("not JSON at all\n");
    mixed.push_str("{\"type\":\"indicator\",\"id\":\"indicator--bad\"}\n");
    mixed.push_str(&indicator(1).replace("\"pattern_type\":\"stix\",", ""));
    mixed.push('\n');
    mixed.push_str(&conflicting);
    mixed.push('\n');
    let mixed_path = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed_path, mixed).unwrap();

    let url = format!("{}/default/", server.base);
    let push = |file: &Path| {
        phalanx_env(
            &dir.path().join("unused"),
            &[
                "--json",
                "taxii",
                "push",
                &url,
                "--collection",
                "intel",
                "--envelope-size",
                "250",
                file.to_str().unwrap(),
            ],
            &[("PHALANX_TAXII_TOKEN", &tok)],
        )
    };
    let out = push(&mixed_path);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let (keyed, _) = json_lines(&out);
    let totals = &keyed["push"][0];
    assert_eq!(
        (
            &totals["sent"],
            &totals["succeeded"],
            &totals["failed"],
            &totals["invalid"],
            &totals["envelopes"]
        ),
        (&json!(1101), &json!(1100), &json!(1), &json!(3), &json!(5)),
        "{totals}"
    );
    let envelopes = &keyed["envelope"];
    assert_eq!(envelopes.len(), 5);
    assert!(
        envelopes
            .iter()
            .all(|e| e["objects"].as_u64().unwrap() <= 250)
    );
    let failures: Vec<&Value> = envelopes
        .iter()
        .filter_map(|e| e["status"]["failures"].as_array())
        .flatten()
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], id_of(&stored));

    // Everything again: the stored objects are duplicates, which TAXII counts as
    // successes.
    let out = push(&valid);
    let (keyed, _) = json_lines(ok(&out));
    let totals = &keyed["push"][0];
    assert_eq!(
        (&totals["succeeded"], &totals["failed"], &totals["invalid"]),
        (&json!(1100), &json!(0), &json!(0)),
        "{totals}"
    );

    // The server holds the first object and the 1,100 pushed ones, once each.
    let client = client(Auth::bearer(&tok));
    let root = client.api_root(&url).await.unwrap();
    let col = client.find_collection(&root, "intel").await.unwrap();
    let (got, _) = all_ids(&client, &col, 1000).await;
    let mut want = ids.clone();
    want.push(id_of(&stored));
    assert_eq!(got.len(), want.len());
    assert_eq!(sorted(&got), sorted(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_get_versions_and_delete_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    ok(&phalanx(&srv, &["collection", "create", "intel"]));
    let tok = token(&srv, &["--write"]);
    let server = serve(&srv, &[]);
    let client = client(Auth::bearer(&tok));
    let root = client
        .resolve_api_root(&format!("{}/taxii2/", server.base))
        .await
        .unwrap();
    let col = client.find_collection(&root, "intel").await.unwrap();

    let v1 = indicator(7);
    let id = id_of(&v1);
    // Same id, later version; custom spacing and key order must survive byte for byte.
    let v2 = v1
        .replace(
            "\"modified\":\"2024-01-01T00:00:00.000Z\"",
            "\"modified\":\"2024-02-01T00:00:00.000Z\"",
        )
        .replace("{\"type\"", "{ \"x_note\" : [1.50, \"é\"], \"type\"");
    let raws: Vec<Box<serde_json::value::RawValue>> = [&v1, &v2]
        .iter()
        .map(|s| serde_json::value::RawValue::from_string((*s).clone()).unwrap())
        .collect();
    let status = client
        .add_objects(&col, raws.iter().map(|r| &**r))
        .await
        .unwrap();
    assert_eq!((status.success_count, status.failure_count), (2, 0));

    let all = Filters {
        versions: Some(VersionFilter::all()),
        ..Filters::default()
    };
    let versions = client.object(&col, &id, &all).all().await.unwrap();
    let texts: Vec<&str> = versions.iter().map(|r| r.get()).collect();
    assert_eq!(texts, [v1.as_str(), v2.as_str()], "kept byte for byte");
    let listed = client
        .versions(&col, &id, &Filters::default())
        .all()
        .await
        .unwrap();
    let t = |s: &str| phalanx_stix::Timestamp::parse(s).unwrap();
    let listed: Vec<_> = listed.iter().map(|s| t(s)).collect();
    assert_eq!(
        listed,
        [t("2024-01-01T00:00:00Z"), t("2024-02-01T00:00:00Z")]
    );

    client.delete_object(&col, &id, &all).await.unwrap();
    let gone = client
        .object(&col, &id, &Filters::default())
        .all()
        .await
        .unwrap_err();
    assert_eq!(gone.http_status(), Some(404), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_a_typed_401() {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    let server = serve(&srv, &[]);
    let url = format!("{}/taxii2/", server.base);
    for auth in [Auth::bearer("not-a-token"), Auth::basic("admin", "wrong")] {
        let e = client(auth).resolve_api_root(&url).await.unwrap_err();
        let Error::Server(s) = &e else {
            panic!("not a server error: {e}");
        };
        assert_eq!(s.status, 401, "{e}");
        assert!(!s.title.is_empty() && s.error.is_some(), "{s:?}");
    }
    let out = phalanx_env(
        &dir.path().join("local"),
        &["taxii", "pull", &url, "--collection", "x", "--create"],
        &[("PHALANX_TAXII_TOKEN", "not-a-token")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{}",
        show(&out)
    );
}

// ---------------------------------------------------------------------------------------
// TLS: a test CA, `phalanx serve` over HTTPS, and client certificates

struct Pki {
    dir: tempfile::TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server: (rustls::pki_types::CertificateDer<'static>, Vec<u8>),
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files
    /// `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.distinguished_name
            .push(DnType::CommonName, "Phalanx test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, file);
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &*ca).unwrap();
            std::fs::write(dir.path().join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{file}.key")), key.serialize_pem()).unwrap();
            (cert.der().clone(), key.serialize_der())
        };
        let server = leaf(
            vec!["127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "client");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            server,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server configuration that requires a client certificate from the test CA.
    fn mutual_tls(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.server.1.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server.0.clone()], key)
            .unwrap();
        Arc::new(config)
    }
}

#[test]
fn pull_over_https_trusting_a_private_ca() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    let seed = dir.path().join("seed.jsonl");
    let ids = write_indicators(&seed, 40);
    ok(&phalanx(
        &srv,
        &[
            "import",
            "--create",
            "--collection",
            "intel",
            seed.to_str().unwrap(),
        ],
    ));
    let tok = token(&srv, &["--read"]);
    let server = serve(
        &srv,
        &[
            "--tls-cert",
            pki.path("server.pem").to_str().unwrap(),
            "--tls-key",
            pki.path("server.key").to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"));
    let url = format!("{}/taxii2/", server.base);
    let local = dir.path().join("local");
    let pull = |extra: &[&str]| {
        let mut args = vec![
            "taxii",
            "pull",
            url.as_str(),
            "--collection",
            "intel",
            "--create",
            "--retries",
            "0",
        ];
        args.extend(extra);
        phalanx_env(&local, &args, &[("PHALANX_TAXII_TOKEN", &tok)])
    };
    // Without the CA the certificate is unknown: the command fails, nothing is stored.
    let out = pull(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let ca = pki.path("ca.pem");
    ok(&pull(&["--ca", ca.to_str().unwrap()]));
    let got: Vec<String> = exported(&local, "intel")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(&got), sorted(&ids));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented_and_required() {
    let pki = Pki::new();
    let fake = Fake::start(Some(pki.mutual_tls()), |req, _| {
        assert_eq!(req.path, "/taxii2/");
        taxii(200, json!({"title": "mutual TLS"}))
    })
    .await;
    let url = format!("{}/taxii2/", fake.base);
    let with_cert = Client::builder()
        .ca(pki.path("ca.pem"))
        .client_cert(pki.path("client.pem"), pki.path("client.key"))
        .build()
        .unwrap();
    assert_eq!(with_cert.discovery(&url).await.unwrap().title, "mutual TLS");

    let without_cert = Client::builder()
        .ca(pki.path("ca.pem"))
        .retries(3)
        .build()
        .unwrap();
    let e = without_cert.discovery(&url).await.unwrap_err();
    // The refusal is not retried like a transient failure. (Under TLS 1.3 the request
    // can be sent before the server's alert arrives; on a loaded machine that first
    // attempt may then fail as a plain connection error, which is retried once before
    // the alert itself is seen: so at most one retry, never the three allowed.)
    assert!(
        matches!(e, Error::Transport { retried, .. } if retried <= 1),
        "{e:?}"
    );
    let untrusted = Client::builder()
        .client_cert(pki.path("client.pem"), pki.path("client.key"))
        .retries(3)
        .build()
        .unwrap();
    let e = untrusted.discovery(&url).await.unwrap_err();
    assert!(
        matches!(e, Error::Transport { retried: 0, .. }),
        "TLS failures are not retried: {e:?}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "only the client with a certificate got through"
    );

    let wrong_key = Client::builder()
        .client_cert(pki.path("client.pem"), pki.path("server.key"))
        .build()
        .unwrap_err();
    assert!(matches!(wrong_key, Error::Config(_)), "{wrong_key}");
}

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 server for behaviour Phalanx never shows

/// One request as received.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The TAXII filters of the query, decoded the way a server does.
    fn filters(&self) -> Filters {
        Filters::parse(&self.query, Endpoint::Objects).expect("the client's query parses")
    }
}

/// A response; without `length`, the body is delimited by closing the connection.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    length: bool,
}

fn taxii(status: u16, body: Value) -> Resp {
    Resp {
        status,
        headers: vec![(
            "Content-Type".into(),
            "application/taxii+json;version=2.1".into(),
        )],
        body: body.to_string().into_bytes(),
        length: true,
    }
}

impl Resp {
    fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Req, usize) -> Resp + Send + Sync;

struct Fake {
    base: String,
    requests: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    /// Serves `handler(request, index)` on a free loopback port, one request per
    /// connection, over TLS when `tls` is given.
    async fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Req, usize) -> Resp + Send + Sync + 'static,
    ) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (handler, seen, acceptor) = (handler.clone(), seen.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(stream) = a.accept(tcp).await {
                                exchange(stream, &*handler, &seen).await;
                            }
                        }
                        None => exchange(tcp, &*handler, &seen).await,
                    }
                });
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Fake {
            base: format!("{scheme}://127.0.0.1:{port}"),
            requests,
        }
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    handler: &Handler,
    seen: &Mutex<Vec<Req>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Req {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(req.clone());
        seen.len() - 1
    };
    let resp = handler(&req, index);
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if resp.length {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.write_all(&resp.body).await;
    let _ = s.shutdown().await;
}

const COLLECTION: &str = "/api/collections/c1/";

fn collection_resource() -> Resp {
    taxii(
        200,
        json!({"id": "c1", "title": "test", "can_read": true, "can_write": true}),
    )
}

async fn fake_collection(client: &Client, fake: &Fake) -> Collection {
    client
        .collection_at(&format!("{}{COLLECTION}", fake.base))
        .await
        .unwrap()
}

fn object(i: usize) -> Value {
    json!({"type": "x-test", "id": format!("x-test--00000000-0000-4000-8000-{i:012}")})
}

fn date_added(i: usize) -> String {
    format!("2024-01-01T00:00:{i:02}.000001Z")
}

fn quick() -> phalanx_taxii::client::ClientBuilder {
    Client::builder().backoff(Duration::from_millis(5))
}

#[tokio::test]
async fn paging_without_next_continues_with_added_after() {
    // Ten objects, three a page, `more` but never `next`.
    let fake = Fake::start(None, |req, _| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        let f = req.filters();
        let after = f.added_after.map(|t| t.to_string());
        let rest: Vec<usize> = (0..10)
            .filter(|i| after.as_ref().is_none_or(|a| date_added(*i) > *a))
            .collect();
        let page: Vec<usize> = rest.iter().copied().take(f.limit.unwrap()).collect();
        let objects: Vec<Value> = page.iter().map(|i| object(*i)).collect();
        taxii(
            200,
            json!({"more": rest.len() > page.len(), "objects": objects}),
        )
        .header("X-TAXII-Date-Added-First", &date_added(page[0]))
        .header(
            "X-TAXII-Date-Added-Last",
            &date_added(*page.last().unwrap()),
        )
    })
    .await;
    let client = quick().build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let filters = Filters {
        limit: Some(3),
        types: vec!["x-test".into()],
        ..Filters::default()
    };
    let got = client.objects(&col, &filters).all().await.unwrap();
    let want: Vec<String> = (0..10).map(|i| object(i).to_string()).collect();
    let got: Vec<String> = got.iter().map(|r| r.get().to_owned()).collect();
    assert_eq!(got, want, "every object once, in order");
    let asked: Vec<(Option<String>, Vec<String>)> = fake.requests()[1..]
        .iter()
        .map(|r| {
            let f = r.filters();
            (f.added_after.map(|t| t.to_string()), f.types)
        })
        .collect();
    let t = |i| Some(date_added(i));
    let x = || vec!["x-test".to_owned()];
    assert_eq!(
        asked,
        [(None, x()), (t(2), x()), (t(5), x()), (t(8), x())],
        "same query, added_after from the header"
    );
}

#[tokio::test]
async fn paging_stops_when_date_added_does_not_advance() {
    let fake = Fake::start(None, |req, _| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        taxii(200, json!({"more": true, "objects": [object(1)]}))
            .header("X-TAXII-Date-Added-Last", &date_added(1))
    })
    .await;
    let client = quick().build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let mut pages = client.objects(&col, &Filters::default());
    assert_eq!(pages.next_page().await.unwrap().unwrap().items.len(), 1);
    assert_eq!(pages.next_page().await.unwrap().unwrap().items.len(), 1);
    let e = pages.next_page().await.unwrap_err();
    assert!(matches!(e, Error::Paging { .. }), "{e}");
    assert!(e.to_string().contains("does not advance"), "{e}");
    assert!(pages.next_page().await.unwrap().is_none());
    assert_eq!(
        fake.requests().len(),
        3,
        "collection + two pages, then no loop"
    );
}

#[tokio::test]
async fn paging_gives_up_on_endless_empty_pages() {
    let fake = Fake::start(None, |req, i| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        taxii(200, json!({"more": true, "next": format!("n{i}")}))
    })
    .await;
    let client = quick().build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let e = client
        .objects(&col, &Filters::default())
        .all()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Paging { .. }), "{e}");
    assert!(fake.requests().len() < 20);
}

#[tokio::test]
async fn retries_503_with_retry_after_then_succeeds() {
    let fake = Fake::start(None, |req, i| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        match i {
            1 => taxii(503, json!({"title": "Busy", "http_status": "503"}))
                .header("Retry-After", "1"),
            2 => taxii(429, json!({"title": "Slow down"})).header("Retry-After", "0"),
            3 => Resp {
                status: 502,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: b"<h1>bad gateway</h1>".to_vec(),
                length: true,
            },
            _ => taxii(200, json!({"objects": [object(1)]})),
        }
    })
    .await;
    let client = quick().retries(3).build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let start = Instant::now();
    let got = client
        .objects(&col, &Filters::default())
        .all()
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn retries_end_with_the_last_error() {
    let fake = Fake::start(None, |req, _| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        taxii(
            503,
            json!({"title": "Down for maintenance", "description": "back at 6"}),
        )
    })
    .await;
    let client = quick().retries(2).build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let e = client
        .objects(&col, &Filters::default())
        .all()
        .await
        .unwrap_err();
    let Error::Server(s) = &e else { panic!("{e}") };
    assert_eq!(
        (s.status, s.title.as_str(), s.description.as_deref()),
        (503, "Down for maintenance", Some("back at 6"))
    );
    assert_eq!(
        fake.requests().len(),
        1 + 3,
        "first attempt and two retries"
    );
}

#[tokio::test]
async fn posts_are_retried_only_when_surely_not_processed() {
    // A 502 after a POST may hide a stored envelope: not repeated. A 503 is.
    for (status, attempts) in [(502, 1), (503, 3)] {
        let fake = Fake::start(None, move |req, _| match req.method.as_str() {
            "GET" => collection_resource(),
            _ => taxii(status, json!({"title": "no"})),
        })
        .await;
        let client = quick().retries(2).build().unwrap();
        let col = fake_collection(&client, &fake).await;
        let obj = serde_json::value::RawValue::from_string(object(1).to_string()).unwrap();
        let e = client.add_objects(&col, [&*obj]).await.unwrap_err();
        assert_eq!(e.http_status(), Some(status), "{e}");
        let posts = fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count();
        assert_eq!(posts, attempts, "status {status}");
    }
}

#[tokio::test]
async fn add_objects_posts_an_envelope_and_polls_the_status() {
    let fake = Fake::start(None, |req, _| {
        let status = |state: &str, done: u64| {
            json!({"id": "s1", "status": state, "total_count": 2, "success_count": done,
                   "failure_count": 0, "pending_count": 2 - done})
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", COLLECTION) => collection_resource(),
            ("POST", "/api/collections/c1/objects/") => {
                assert_eq!(
                    req.header("content-type"),
                    Some("application/taxii+json;version=2.1")
                );
                assert_eq!(
                    req.header("accept"),
                    Some("application/taxii+json;version=2.1")
                );
                let body = String::from_utf8(req.body.clone()).unwrap();
                assert_eq!(
                    body, r#"{"objects":[{"id": 1 },{"id":2}]}"#,
                    "raw bytes kept"
                );
                taxii(202, status("pending", 0))
            }
            ("GET", "/api/status/s1/") => taxii(200, status("pending", 1)),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    let client = quick()
        .status_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let col = fake_collection(&client, &fake).await;
    let objects: Vec<Box<serde_json::value::RawValue>> = [r#"{"id": 1 }"#, r#"{"id":2}"#]
        .iter()
        .map(|s| serde_json::value::RawValue::from_string((*s).to_owned()).unwrap())
        .collect();
    let e = client
        .add_objects(&col, objects.iter().map(|o| &**o))
        .await
        .unwrap_err();
    let Error::StatusTimeout { status, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((status.success_count, status.pending_count), (1, 1));
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/status/s1/")
        .count();
    assert!(polls >= 1, "the status was polled");
}

#[tokio::test]
async fn a_pending_status_that_completes_is_returned() {
    let fake = Fake::start(None, |req, i| {
        let status = |state: &str, done: u64| {
            json!({"id": "s2", "status": state, "total_count": 1, "success_count": done,
                   "failure_count": 0, "pending_count": 1 - done})
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", COLLECTION) => collection_resource(),
            ("POST", _) => taxii(202, status("pending", 0)),
            _ if i < 3 => taxii(200, status("pending", 0)),
            _ => taxii(200, status("complete", 1)),
        }
    })
    .await;
    let client = quick().build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let obj = serde_json::value::RawValue::from_string(object(1).to_string()).unwrap();
    let status = client.add_objects(&col, [&*obj]).await.unwrap();
    assert_eq!(status.success_count, 1);
    assert_eq!(fake.requests().len(), 4, "collection, post, two polls");
}

#[tokio::test]
async fn responses_over_the_size_limit_are_refused() {
    // 2 MB of objects, with and without a Content-Length.
    const N: usize = 40_000;
    let big = json!({"objects": (0..N).map(object).collect::<Vec<_>>()}).to_string();
    assert!(big.len() > 2_000_000);
    for length in [true, false] {
        let body = big.clone().into_bytes();
        let fake = Fake::start(None, move |req, _| {
            if req.path == COLLECTION {
                return collection_resource();
            }
            let mut r = taxii(200, json!({}));
            r.body = body.clone();
            r.length = length;
            r
        })
        .await;
        let small = quick().max_response_bytes(1_000_000).build().unwrap();
        let col = fake_collection(&small, &fake).await;
        let e = small
            .objects(&col, &Filters::default())
            .all()
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooLarge {
                    limit: 1_000_000,
                    ..
                }
            ),
            "{e}"
        );
        let large = quick().max_response_bytes(4_000_000).build().unwrap();
        let got = large
            .objects(&col, &Filters::default())
            .all()
            .await
            .unwrap();
        assert_eq!(got.len(), N, "length {length}");
    }
}

#[tokio::test]
async fn non_taxii_responses_are_refused() {
    let fake = Fake::start(None, |req, _| {
        if req.path == COLLECTION {
            return collection_resource();
        }
        let mut r = taxii(200, json!({"objects": [object(1)]}));
        r.headers = vec![("Content-Type".into(), "application/json".into())];
        r
    })
    .await;
    let client = quick().build().unwrap();
    let col = fake_collection(&client, &fake).await;
    let e = client
        .objects(&col, &Filters::default())
        .all()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ContentType { .. }), "{e}");
}

#[tokio::test]
async fn discovery_leads_only_to_same_origin_api_roots() {
    let fake = Fake::start(None, |req, _| match req.path.as_str() {
        "/taxii2/" if req.query.is_empty() => taxii(
            200,
            json!({"title": "t", "default": "https://elsewhere.example/api/",
                   "api_roots": ["https://elsewhere.example/api/", "/api/"]}),
        ),
        other => panic!("unexpected {other}"),
    })
    .await;
    let client = quick().build().unwrap();
    let e = client
        .resolve_api_root(&format!("{}/taxii2/", fake.base))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Discovery { .. }), "{e}");
    assert_eq!(fake.requests().len(), 1, "no request went elsewhere");
}

// ---------------------------------------------------------------------------------------
// Against medallion, the OASIS reference server (when installed)

fn medallion() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/medallion");
    bin.exists().then_some(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_and_pull_from_medallion() {
    let Some(bin) = medallion() else {
        eprintln!("skipped: .venv/bin/medallion is not installed (scripts/test installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("medallion-data.json");
    std::fs::write(
        &data,
        json!({
            "/discovery": {"title": "medallion", "default": format!("{base}/api1/"),
                           "api_roots": [format!("{base}/api1/")]},
            "api1": {
                "information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": 10_485_760},
                "status": [],
                "collections": [{
                    "id": "365fed99-08fa-fdcd-a1b3-fb247eb41d01", "title": "writable", "alias": "rw",
                    "can_read": true, "can_write": true,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [], "manifest": []
                }]
            }
        })
        .to_string(),
    )
    .unwrap();
    let config = dir.path().join("medallion.json");
    std::fs::write(
        &config,
        json!({
            "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                        "filename": data},
            "users": {"phalanx": "s3cret"},
            "taxii": {"max_page_size": 20}
        })
        .to_string(),
    )
    .unwrap();
    let _medallion = Running {
        child: Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start medallion"),
        base: base.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "medallion did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let file = dir.path().join("objects.jsonl");
    let ids = write_indicators(&file, 45);
    let env = [("MEDALLION_PASSWORD", "s3cret")];
    let auth = ["--user", "phalanx", "--password-env", "MEDALLION_PASSWORD"];
    let discovery = format!("{base}/taxii2/");
    let mut args = vec!["--json", "taxii", "push", &discovery, "--collection", "rw"];
    args.extend(auth);
    args.extend(["--envelope-size", "20", file.to_str().unwrap()]);
    let out = phalanx_env(&dir.path().join("unused"), &args, &env);
    let (keyed, _) = json_lines(ok(&out));
    let totals = &keyed["push"][0];
    assert_eq!(
        (&totals["succeeded"], &totals["failed"]),
        (&json!(45), &json!(0)),
        "{totals}"
    );

    // Pull through the CLI (medallion pages by `next`, 7 at a time) ...
    let local = dir.path().join("local");
    let mut args = vec![
        "--json",
        "taxii",
        "pull",
        &discovery,
        "--collection",
        "rw",
        "--create",
    ];
    args.extend(auth);
    args.extend(["--limit", "7"]);
    let (keyed, _) = json_lines(ok(&phalanx_env(&local, &args, &env)));
    assert_eq!(keyed["summary"][0]["outcomes"]["accepted"], 45);
    assert_eq!(keyed["pull"][0]["pages"], 7);
    // ... and every object is the one pushed (medallion re-serialises: compare content).
    let sent: BTreeMap<String, Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| (id_of(l), serde_json::from_str(l).unwrap()))
        .collect();
    let back: BTreeMap<String, Value> = exported(&local, "rw")
        .into_iter()
        .map(|o| (o["id"].as_str().unwrap().to_owned(), o))
        .collect();
    assert_eq!(back, sent);

    // The library: resolve through discovery, page with the server's maximum.
    let client = client(Auth::basic("phalanx", "s3cret"));
    let root = client.resolve_api_root(&discovery).await.unwrap();
    let col = client.find_collection(&root, "rw").await.unwrap();
    let (got, pages) = all_ids(&client, &col, 100).await;
    assert_eq!(pages, 3, "medallion caps pages at 20");
    assert_eq!(sorted(&got), sorted(&ids));
    assert_eq!(got.len(), ids.len());
}
