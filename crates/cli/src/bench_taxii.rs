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
//! 4. **policy** (phalanx only): the read of step 2 three more times as this node's own
//!    organisation (no sharing decision: the reference) and three times, interleaved, as
//!    a partner whose agreement covers every object (a decision per object: half the
//!    objects are TLP:GREEN, decided by community membership, half TLP:AMBER, decided by
//!    the agreement's scope and ceiling); the medians and their ratio.

use crate::bench::{Rng, indicator, median, percentile};
use anyhow::{Context, bail};
use clap::Args;
use phalanx_taxii::Filters;
use phalanx_taxii::client::{Auth, Client};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    write: f64,
    read: f64,
    /// Reads as this node's organisation and as a partner (NaN without --policy).
    read_local: f64,
    read_partner: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// p90 and the slowest GET, printed per run to show the shape of the tail.
    p90_ms: f64,
    max_ms: f64,
    gets_per_sec: f64,
    get_errors: f64,
}

/// Where to send requests, and how to authenticate.
#[derive(Clone)]
struct Target {
    collection_url: String,
    auth: Auth,
    /// A partner's credentials, whose reads the sharing policy decides per object.
    partner: Option<Auth>,
}

impl Target {
    /// A client of its own (its own connections).
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::builder().auth(self.auth.clone()).build()?)
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
    let token = run(&["token", "create", "--org", "local", "--write", "bench"])?;
    // A partner under an agreement that covers every generated object.
    run(&[
        "partner",
        "add",
        "bench-partner",
        "--name",
        "Bench partner",
        "--sector",
        "government",
    ])?;
    let agreement = data.with_extension("agreement.toml");
    std::fs::write(
        &agreement,
        "id = \"bench\"\ntitle = \"bench\"\nstatus = \"active\"\nparties = [\"bench-partner\"]\n\
         max_tlp = \"AMBER\"\nvalid_from = \"2020-01-01T00:00:00Z\"\n\
         [scope]\ncollections = [\"bench\"]\ntypes = [\"indicator\"]\nlabels = [\"bench\"]\n",
    )?;
    run(&["agreement", "add", &agreement.to_string_lossy()])?;
    let partner = run(&[
        "token",
        "create",
        "--org",
        "bench-partner",
        "--read",
        "bench",
    ])?;
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
            auth: Auth::bearer(token),
            partner: Some(Auth::bearer(partner)),
        },
    ))
}

/// Reads the whole collection page by page; objects per second (all `expect` must come).
async fn read_all(
    client: &Client,
    col: &phalanx_taxii::client::Collection,
    page: usize,
    expect: u64,
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut got = 0u64;
    let filters = Filters {
        limit: Some(page),
        ..Filters::default()
    };
    let mut pages = client.objects(col, &filters);
    while let Some(page) = pages.next_page().await? {
        got += page.items.len() as u64;
    }
    let rate = got as f64 / t0.elapsed().as_secs_f64();
    anyhow::ensure!(got == expect, "read back {got} objects, wrote {expect}");
    Ok(rate)
}

async fn one_run(a: &BenchTaxiiArgs, t: &Target, seed: u64) -> anyhow::Result<Run> {
    let client = t.client()?;
    let col = client.collection_at(&t.collection_url).await?;
    let mut rng = Rng(seed);
    let producer = rng.uuid();
    // The envelopes are built before timing: the benchmark measures the server.
    let mut ids = Vec::with_capacity(a.count as usize);
    let mut objects = Vec::with_capacity(a.count as usize);
    for i in 0..a.count {
        let o = indicator(&mut rng, i, &producer);
        ids.push(o["id"].as_str().unwrap_or_default().to_owned());
        objects.push(serde_json::value::to_raw_value(&o)?);
    }

    let t0 = Instant::now();
    for envelope in objects.chunks(a.envelope.max(1)) {
        let st = client
            .add_objects(&col, envelope.iter().map(AsRef::as_ref))
            .await?;
        anyhow::ensure!(
            st.success_count == envelope.len() as u64,
            "not every object stored: {} of {} ({:?})",
            st.success_count,
            envelope.len(),
            st.failures.first()
        );
    }
    let write = a.count as f64 / t0.elapsed().as_secs_f64();

    let read = read_all(&client, &col, a.page, a.count).await?;
    let (mut read_local, mut read_partner) = (f64::NAN, f64::NAN);
    if let Some(auth) = &t.partner {
        let partner = Client::builder().auth(auth.clone()).build()?;
        let pcol = partner.collection_at(&t.collection_url).await?;
        let (mut local, mut other) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            local.push(read_all(&client, &col, a.page, a.count).await?);
            other.push(read_all(&partner, &pcol, a.page, a.count).await?);
        }
        read_local = median(&mut local);
        read_partner = median(&mut other);
    }

    // Single GETs: each client its own connection, warmed up with one request.
    let mut clients = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let c = t.client()?;
        c.object(&col, &ids[0], &Filters::default())
            .next_page()
            .await?;
        clients.push(c);
    }
    let picks: Vec<String> = (0..a.gets)
        .map(|_| ids[(rng.next() % ids.len() as u64) as usize].clone())
        .collect();
    let per_client = a.gets.div_ceil(a.clients.max(1)).max(1);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, chunk) in clients.into_iter().zip(picks.chunks(per_client)) {
        let (col, chunk) = (col.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            for id in chunk {
                let s = Instant::now();
                // A failed GET is counted, not timed (medallion answers some concurrent
                // GETs with 500).
                match c.object(&col, &id, &Filters::default()).next_page().await {
                    Ok(Some(p)) if !p.items.is_empty() => {
                        lat.push(s.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let (mut lat, mut get_errors) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r?;
        lat.extend(l);
        get_errors += e;
    }
    let gets_per_sec = lat.len() as f64 / t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Run {
        write,
        read,
        read_local,
        read_partner,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        p90_ms: percentile(&lat, 90.0),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        gets_per_sec,
        get_errors: get_errors as f64,
    })
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
                        (Some(u), Some(var)) => Auth::basic(
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
                        partner: None,
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
            "run {}: write {:.0} obj/s, read {:.0} obj/s, GET p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({:.0} GETs/s, {} failed)",
            i + 1,
            r.write,
            r.read,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.gets_per_sec,
            r.get_errors
        );
        if r.read_partner.is_finite() {
            eprintln!(
                "       policy: read as own organisation {:.0} obj/s, as a partner {:.0} obj/s ({:+.1}%)",
                r.read_local,
                r.read_partner,
                (r.read_partner / r.read_local - 1.0) * 100.0
            );
        }
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
    let (rl, rp) = (m(|r| r.read_local), m(|r| r.read_partner));
    let ratio = m(|r| r.read_partner / r.read_local);
    if json {
        crate::report::print_json(&serde_json::json!({
            "server": label, "count": a.count, "envelope": a.envelope, "page": a.page,
            "gets": a.gets, "clients": a.clients, "runs": runs.len(),
            "write_objects_per_sec": write.round(), "read_objects_per_sec": read.round(),
            "get_p50_ms": (p50 * 100.0).round() / 100.0, "get_p99_ms": (p99 * 100.0).round() / 100.0,
            "gets_per_sec": gps.round(), "get_errors": errors,
            "read_own_org_objects_per_sec": rl.round(), "read_partner_objects_per_sec": rp.round(),
            "partner_to_own_read_ratio": (ratio * 1000.0).round() / 1000.0,
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
        if rp.is_finite() {
            println!(
                "policy read    own organisation {rl:.0} obj/s, partner {rp:.0} obj/s: ratio {ratio:.3} ({:+.1}%)",
                (ratio - 1.0) * 100.0
            );
        }
    }
    Ok(())
}
