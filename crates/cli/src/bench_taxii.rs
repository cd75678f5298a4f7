//! `phalanx bench taxii`: the TAXII load benchmark of issue #4, against a `phalanx serve`
//! it starts itself (a child process on a fresh data directory) or against any TAXII
//! 2.1 server (`--url`), e.g. the OASIS reference server medallion.
//!
//! Workload, the same for every server:
//! 1. **write**: N generated indicators posted in envelopes of `--envelope` (500), one
//!    request at a time, each status checked (every object a success);
//! 2. **read**: every object read back with `limit=--page` (1,000), following `next` (or
//!    `added_after` from `X-TAXII-Date-Added-Last` when a server gives no `next`), and
//!    checked to be all N;
//! 3. **get**: `--gets` (200) single-object GETs of random ids, from `--clients` (32)
//!    concurrent clients, each with its own connection, warmed up first; p50/p99 latency.

use crate::bench::{Rng, indicator, median};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TAXII: &str = "application/taxii+json;version=2.1";

#[derive(Args, Debug)]
pub struct BenchTaxiiArgs {
    /// Objects to write and read back
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Objects per posted envelope
    #[arg(long, default_value_t = 500)]
    envelope: usize,
    /// Page size (limit) when reading back
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Single-object GETs
    #[arg(long, default_value_t = 200)]
    gets: usize,
    /// Concurrent clients for the single-object GETs
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Runs (each against a fresh server when phalanx is started here); medians are reported
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Benchmark this collection URL of another TAXII 2.1 server instead of starting
    /// phalanx (…/{api-root}/collections/{id}/)
    #[arg(long, value_name = "COLLECTION_URL")]
    url: Option<String>,
    /// HTTP Basic user for --url
    #[arg(long, requires = "url")]
    user: Option<String>,
    /// Environment variable holding the password for --user
    #[arg(long, requires = "user", value_name = "VAR")]
    password_env: Option<String>,
    /// Name to print for the server
    #[arg(long)]
    label: Option<String>,
}

/// An envelope as read back.
#[derive(serde::Deserialize)]
struct PageIn<'a> {
    more: Option<bool>,
    next: Option<Value>,
    #[serde(borrow)]
    objects: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    write: f64,
    read: f64,
    p50_ms: f64,
    p99_ms: f64,
    gets_per_sec: f64,
    get_errors: f64,
}

/// Where to send requests, and how to authenticate.
#[derive(Clone)]
struct Target {
    collection_url: String,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
}

impl Target {
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let r = client.request(method, url).header("Accept", TAXII);
        match &self.auth {
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
        }
    }
}

/// A `phalanx serve` child on a fresh data directory, stopped on drop.
struct Served {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_phalanx() -> anyhow::Result<(Served, Target)> {
    let exe = std::env::current_exe().context("cannot find the phalanx binary")?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&exe)
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "phalanx {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let collection: Value =
        serde_json::from_str(&run(&["--json", "collection", "create", "bench"])?)?;
    let token = run(&["token", "create", "--org", "bench", "--write", "bench"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(&exe)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait()? {
            bail!("phalanx serve exited: {st}");
        }
        anyhow::ensure!(Instant::now() < deadline, "phalanx serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = collection["id"].as_str().context("collection id")?;
    Ok((
        Served { child, _dir: dir },
        Target {
            collection_url: format!("http://127.0.0.1:{port}/default/collections/{id}/"),
            auth: Auth::Bearer(token),
        },
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn one_run(a: &BenchTaxiiArgs, t: &Target, seed: u64) -> anyhow::Result<Run> {
    let client = reqwest::Client::new();
    let mut rng = Rng(seed);
    let producer = rng.uuid();
    let objects_url = format!("{}objects/", t.collection_url);
    // The envelopes are built before timing: the benchmark measures the server.
    let mut ids = Vec::with_capacity(a.count as usize);
    let mut bodies = Vec::new();
    let mut batch = Vec::with_capacity(a.envelope);
    for i in 0..a.count {
        let o = indicator(&mut rng, i, &producer);
        ids.push(o["id"].as_str().unwrap_or_default().to_owned());
        batch.push(o);
        if batch.len() == a.envelope || i + 1 == a.count {
            bodies.push((
                batch.len(),
                serde_json::json!({ "objects": std::mem::take(&mut batch) }).to_string(),
            ));
        }
    }

    let t0 = Instant::now();
    for (n, body) in bodies {
        let r = t
            .request(&client, reqwest::Method::POST, &objects_url)
            .header("Content-Type", TAXII)
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let st: Value = r
            .json()
            .await
            .with_context(|| format!("POST answered {status}"))?;
        anyhow::ensure!(status.as_u16() == 202, "POST answered {status}: {st}");
        // A server may process asynchronously: poll until complete.
        let mut st = st;
        while st["status"] != "complete" {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let url = status_url(&t.collection_url, st["id"].as_str().unwrap_or_default());
            st = t
                .request(&client, reqwest::Method::GET, &url)
                .send()
                .await?
                .json()
                .await?;
        }
        anyhow::ensure!(
            st["success_count"].as_u64() == Some(n as u64),
            "not every object stored: {st}"
        );
    }
    let write = a.count as f64 / t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut got = 0u64;
    let mut query = format!("limit={}", a.page);
    loop {
        let r = t
            .request(
                &client,
                reqwest::Method::GET,
                &format!("{objects_url}?{query}"),
            )
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "GET objects answered {}",
            r.status()
        );
        let last = r
            .headers()
            .get("x-taxii-date-added-last")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Objects stay raw (counted, not decoded): the client's cost should not hide
        // the server's.
        let bytes = r.bytes().await?;
        let page: PageIn<'_> = serde_json::from_slice(&bytes).context("page is not an envelope")?;
        got += page.objects.map_or(0, |o| o.len()) as u64;
        if page.more != Some(true) {
            break;
        }
        query = match (page.next, last) {
            (Some(Value::String(n)), _) => format!("limit={}&next={}", a.page, encode(&n)),
            (Some(Value::Number(n)), _) => format!("limit={}&next={n}", a.page),
            (_, Some(l)) => format!("limit={}&added_after={}", a.page, encode(&l)),
            _ => bail!("more is true but there is neither next nor X-TAXII-Date-Added-Last"),
        };
    }
    let read = got as f64 / t0.elapsed().as_secs_f64();
    anyhow::ensure!(got == a.count, "read back {got} objects, wrote {}", a.count);

    // Single GETs: each client its own connection, warmed up with one request.
    let clients: Vec<reqwest::Client> = (0..a.clients)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build())
        .collect::<Result<_, _>>()?;
    let ids = Arc::new(ids);
    for c in &clients {
        t.request(
            c,
            reqwest::Method::GET,
            &format!("{objects_url}{}/", ids[0]),
        )
        .send()
        .await?
        .bytes()
        .await?;
    }
    let picks: Vec<String> = (0..a.gets)
        .map(|_| ids[(rng.next() % ids.len() as u64) as usize].clone())
        .collect();
    let per_client = a.gets.div_ceil(a.clients.max(1));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, chunk) in clients.into_iter().zip(picks.chunks(per_client.max(1))) {
        let (t, chunk, base) = (t.clone(), chunk.to_vec(), objects_url.clone());
        tasks.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            for id in chunk {
                let s = Instant::now();
                let url = format!("{base}{id}/");
                let ok = match t.request(&c, reqwest::Method::GET, &url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                // A failed GET is counted, not timed (medallion answers some concurrent
                // GETs with 500).
                if ok {
                    lat.push(s.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        });
    }
    let (mut lat, mut get_errors) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r??;
        lat.extend(l);
        get_errors += e;
    }
    let gets_per_sec = lat.len() as f64 / t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Run {
        write,
        read,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        gets_per_sec,
        get_errors: get_errors as f64,
    })
}

fn status_url(collection_url: &str, id: &str) -> String {
    let root = collection_url
        .trim_end_matches('/')
        .rsplitn(3, '/')
        .nth(2)
        .unwrap_or(collection_url);
    format!("{root}/status/{id}/")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(a: &BenchTaxiiArgs, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for i in 0..a.runs.max(1) {
        let (_served, target) = match &a.url {
            Some(url) => {
                let url = if url.ends_with('/') {
                    url.clone()
                } else {
                    format!("{url}/")
                };
                let auth =
                    match (&a.user, &a.password_env) {
                        (Some(u), Some(var)) => Auth::Basic(
                            u.clone(),
                            std::env::var(var).with_context(|| format!("${var} is not set"))?,
                        ),
                        _ => Auth::Bearer(std::env::var("PHALANX_TAXII_TOKEN").context(
                            "give --user and --password-env, or set PHALANX_TAXII_TOKEN",
                        )?),
                    };
                (
                    None,
                    Target {
                        collection_url: url,
                        auth,
                    },
                )
            }
            None => {
                let (s, t) = start_phalanx()?;
                (Some(s), t)
            }
        };
        let r = runtime.block_on(one_run(a, &target, 0x9E37_79B9_7F4A_7C15 ^ i as u64))?;
        eprintln!(
            "run {}: write {:.0} obj/s, read {:.0} obj/s, GET p50 {:.2} ms, p99 {:.2} ms ({:.0} GETs/s, {} failed)",
            i + 1,
            r.write,
            r.read,
            r.p50_ms,
            r.p99_ms,
            r.gets_per_sec,
            r.get_errors
        );
        runs.push(r);
    }
    let m = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    let label = a.label.clone().unwrap_or_else(|| {
        if a.url.is_some() {
            "server".into()
        } else {
            "phalanx".into()
        }
    });
    let (write, read, p50, p99, gps) = (
        m(|r| r.write),
        m(|r| r.read),
        m(|r| r.p50_ms),
        m(|r| r.p99_ms),
        m(|r| r.gets_per_sec),
    );
    let errors = m(|r| r.get_errors);
    if json {
        crate::report::print_json(&serde_json::json!({
            "server": label, "count": a.count, "envelope": a.envelope, "page": a.page,
            "gets": a.gets, "clients": a.clients, "runs": runs.len(),
            "write_objects_per_sec": write.round(), "read_objects_per_sec": read.round(),
            "get_p50_ms": (p50 * 100.0).round() / 100.0, "get_p99_ms": (p99 * 100.0).round() / 100.0,
            "gets_per_sec": gps.round(), "get_errors": errors,
        }));
    } else {
        println!(
            "{label}: N={} envelopes of {}, pages of {}, {} GETs from {} clients, median of {} run(s)",
            a.count,
            a.envelope,
            a.page,
            a.gets,
            a.clients,
            runs.len()
        );
        println!("write          {write:.0} obj/s");
        println!("read           {read:.0} obj/s");
        println!(
            "single GET     p50 {p50:.2} ms, p99 {p99:.2} ms ({gps:.0} GETs/s, {errors} failed)"
        );
    }
    Ok(())
}
