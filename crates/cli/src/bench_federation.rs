//! `phalanx bench federation`: propagation A → B → C between three `phalanx serve`
//! processes on loopback over mutual TLS (a fresh test PKI), the workload of issue #6.
//!
//! A pushes its collection to B (B accepts from A); B pushes what it received to C (B
//! accepts AMBER from A with onward sharing to C; B and C share up to AMBER). The
//! generated indicators are TLP:GREEN and TLP:AMBER in turn, so every object passes the
//! policy on both hops.
//!
//! Every node registers the others with their identity and signing key: A signs what it
//! pushes, B and C verify every object (and would refuse unsigned ones).
//!
//! 1. **throughput**: N indicators are imported into A (`phalanx import`); the clock runs
//!    from the start of the import until C holds all N. The import alone is timed too
//!    (the reference: propagation cannot beat the ingest on A).
//! 2. **latency**: `--samples` single objects POSTed to A over TAXII, each timed from A's
//!    acknowledgement until a GET of it on C succeeds (C polled every 10 ms); p50/p95.

use crate::bench::{Rng, indicator, median, percentile};
use anyhow::{Context, bail};
use clap::Args;
use phalanx_taxii::Filters;
use phalanx_taxii::client::{Auth, Client};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchFederationArgs {
    /// Objects to propagate
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Single-object latency samples
    #[arg(long, default_value_t = 40)]
    samples: usize,
    /// Runs (each on three fresh nodes); medians are reported
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Objects per pushed envelope ([federation] page of each node)
    #[arg(long, default_value_t = phalanx_federation::Config::default().page)]
    page: usize,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

struct BNode {
    data: PathBuf,
    org: String,
    cert: PathBuf,
    key: PathBuf,
    port: u16,
    /// STIX identity and public signing key (hex), from `init`.
    identity: String,
    public_key: String,
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the phalanx binary")
}

fn cli(data: &Path, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(exe()?)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(input.unwrap_or("").as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "phalanx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

impl BNode {
    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        cli(&self.data, args, None)
    }

    fn collection_id(&self, alias: &str) -> anyhow::Result<String> {
        let v: Value = serde_json::from_str(&self.cli(&["--json", "collection", "list"])?)?;
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["alias"] == alias))
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned)
            .context("collection id")
    }

    fn count(&self, alias: &str) -> anyhow::Result<u64> {
        let v: Value = serde_json::from_str(&self.cli(&["--json", "collection", "list"])?)?;
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["alias"] == alias))
            .and_then(|c| c["objects"].as_u64())
            .context("collection count")
    }

    fn url(&self, alias: &str) -> anyhow::Result<String> {
        Ok(format!(
            "https://127.0.0.1:{}/default/collections/{}/",
            self.port,
            self.collection_id(alias)?
        ))
    }

    fn serve(&self, ca: &Path) -> anyhow::Result<Proc> {
        let child = Command::new(exe()?)
            .arg("--data")
            .arg(&self.data)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .arg("--federation-ca")
            .arg(ca)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data.join("serve.log"))?)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "{} did not start", self.org);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Proc(child))
    }
}

fn agreement(id: &str, parties: &[&str], onward: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"{id}\"\nstatus = \"active\"\nparties = [{}]\nmax_tlp = \"AMBER\"\nonward = {onward}\nvalid_from = \"2020-01-01T00:00:00Z\"\n",
        parties
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Three nodes A, B, C wired A → B → C; returns them and the CA file.
fn setup(root: &Path, page: usize) -> anyhow::Result<(Vec<BNode>, PathBuf)> {
    let ca = root.join("pki");
    cli(
        &root.join("scratch"),
        &["pki", "ca", &ca.to_string_lossy()],
        None,
    )?;
    let mut nodes = Vec::new();
    for org in ["cert-a", "cert-b", "cert-c"] {
        let data = root.join(org);
        let init: Value =
            serde_json::from_str(&cli(&data, &["--json", "init", "--org", org], None)?)
                .context("init --json")?;
        std::fs::write(
            data.join("phalanx.toml"),
            format!("[federation]\npage = {page}\n"),
        )?;
        let prefix = root.join(format!("{org}-tls"));
        cli(
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
            None,
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        nodes.push(BNode {
            data,
            org: org.to_owned(),
            cert: prefix.with_extension("pem"),
            key: prefix.with_extension("key"),
            port,
            identity: init["identity"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            public_key: init["public_key"].as_str().unwrap_or_default().to_owned(),
        });
    }
    for n in &nodes {
        for other in &nodes {
            if other.org != n.org {
                n.cli(&[
                    "partner",
                    "add",
                    &other.org,
                    "--name",
                    &other.org,
                    "--sector",
                    "government",
                    "--cert",
                    &other.cert.to_string_lossy(),
                    // Registered keys: every hop verifies, and refuses what is unsigned.
                    "--identity",
                    &other.identity,
                    "--signing-key",
                    &other.public_key,
                ])?;
            }
        }
        cli(
            &n.data,
            &["agreement", "add", "-"],
            Some(&agreement("ab", &["cert-a", "cert-b"], "[\"cert-c\"]")),
        )?;
        cli(
            &n.data,
            &["agreement", "add", "-"],
            Some(&agreement("bc", &["cert-b", "cert-c"], "\"nobody\"")),
        )?;
        n.cli(&["collection", "create", "intel"])?;
    }
    Ok((nodes, ca.join("ca.pem")))
}

struct RunResult {
    import_rate: f64,
    propagation_rate: f64,
    p50_ms: f64,
    p95_ms: f64,
}

fn one_run(a: &BenchFederationArgs) -> anyhow::Result<RunResult> {
    let root = tempfile::tempdir()?;
    let (nodes, ca) = setup(root.path(), a.page)?;
    let (na, nb, nc) = (&nodes[0], &nodes[1], &nodes[2]);
    // The import-only reference, into a node that federates with nobody.
    let file = root.path().join("objects.json");
    crate::bench::generate(&file, a.count, crate::Format::Bundle)?;
    let reference = root.path().join("reference");
    cli(&reference, &["collection", "create", "intel"], None)?;
    let t0 = Instant::now();
    cli(
        &reference,
        &["import", "-c", "intel", "--quiet", &file.to_string_lossy()],
        None,
    )?;
    let import_rate = a.count as f64 / t0.elapsed().as_secs_f64();

    let _procs = [na.serve(&ca)?, nb.serve(&ca)?, nc.serve(&ca)?];
    nb.cli(&["peer", "accept", "cert-a", "--into", "intel"])?;
    nc.cli(&["peer", "accept", "cert-b", "--into", "intel"])?;
    na.cli(&[
        "peer",
        "push",
        "cert-b",
        &nb.url("intel")?,
        "--from",
        "intel",
    ])?;
    nb.cli(&[
        "peer",
        "push",
        "cert-c",
        &nc.url("intel")?,
        "--from",
        "intel",
    ])?;
    // The workers pick feeds up within a second.
    std::thread::sleep(Duration::from_millis(1500));

    let t0 = Instant::now();
    cli(
        &na.data,
        &["import", "-c", "intel", "--quiet", &file.to_string_lossy()],
        None,
    )?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let n = nc.count("intel")?;
        if n >= a.count {
            break;
        }
        if Instant::now() > deadline {
            bail!("C holds {n} of {} objects after 30 minutes", a.count);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let propagation_rate = a.count as f64 / t0.elapsed().as_secs_f64();

    // Latency of single objects A → C.
    let ta = na.cli(&["token", "create", "--org", "cert-a", "--write", "intel"])?;
    let tc = nc.cli(&["token", "create", "--org", "cert-c", "--read", "intel"])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ua, uc) = (na.url("intel")?, nc.url("intel")?);
    let mut lat = runtime.block_on(async {
        let ca_client = |t: String| {
            Client::builder()
                .auth(Auth::bearer(t))
                .ca(ca.clone())
                .build()
        };
        let (client_a, client_c) = (ca_client(ta)?, ca_client(tc)?);
        let (col_a, col_c) = (
            client_a.collection_at(&ua).await?,
            client_c.collection_at(&uc).await?,
        );
        let mut rng = Rng(0xFEED_5EED);
        let producer = rng.uuid();
        let mut lat = Vec::new();
        for i in 0..a.samples {
            let o = indicator(&mut rng, a.count + i as u64, &producer);
            let id = o["id"].as_str().unwrap_or_default().to_owned();
            let raw = serde_json::value::to_raw_value(&o)?;
            client_a.add_objects(&col_a, [raw.as_ref()]).await?;
            let t = Instant::now();
            loop {
                let found = client_c
                    .object(&col_c, &id, &Filters::default())
                    .next_page()
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|p| !p.items.is_empty());
                if found {
                    break;
                }
                anyhow::ensure!(
                    t.elapsed() < Duration::from_secs(60),
                    "object {id} never reached C"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok::<_, anyhow::Error>(lat)
    })?;
    lat.sort_by(f64::total_cmp);
    Ok(RunResult {
        import_rate,
        propagation_rate,
        p50_ms: percentile(&lat, 50.0),
        p95_ms: percentile(&lat, 95.0),
    })
}

pub fn run(a: &BenchFederationArgs, json: bool) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for i in 0..a.runs.max(1) {
        let r = one_run(a)?;
        eprintln!(
            "run {}: A → B → C {:.0} obj/s end to end (import alone {:.0} obj/s), single object p50 {:.0} ms, p95 {:.0} ms",
            i + 1,
            r.propagation_rate,
            r.import_rate,
            r.p50_ms,
            r.p95_ms
        );
        runs.push(r);
    }
    let m = |f: fn(&RunResult) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    let (prop, imp, p50, p95) = (
        m(|r| r.propagation_rate),
        m(|r| r.import_rate),
        m(|r| r.p50_ms),
        m(|r| r.p95_ms),
    );
    if json {
        crate::report::print_json(&serde_json::json!({
            "count": a.count, "samples": a.samples, "runs": runs.len(),
            "propagation_objects_per_sec": prop.round(), "import_objects_per_sec": imp.round(),
            "propagation_to_import_ratio": (prop / imp * 1000.0).round() / 1000.0,
            "latency_p50_ms": p50.round(), "latency_p95_ms": p95.round(),
        }));
    } else {
        println!(
            "federation A → B → C (mutual TLS, loopback): N={}, {} latency samples, median of {} run(s)",
            a.count,
            a.samples,
            runs.len()
        );
        println!(
            "propagation    {prop:.0} obj/s end to end (import alone on one node: {imp:.0} obj/s, ratio {:.2})",
            prop / imp
        );
        println!(
            "single object  p50 {p50:.0} ms, p95 {p95:.0} ms (A acknowledged → readable on C)"
        );
    }
    Ok(())
}
