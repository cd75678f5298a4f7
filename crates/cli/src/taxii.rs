//! `phalanx taxii pull|push`: exchange objects with a remote TAXII 2.1 server through the
//! client of `phalanx-taxii`.
//!
//! - `pull` pages through a remote collection's objects and stores them in a local
//!   collection through exactly the `phalanx import` path (split, parse, validate, store,
//!   report): the pages are streamed as JSON lines into [`ingest::import_sources`].
//! - `push` reads files through the `phalanx validate` path, reports invalid objects
//!   (they are not sent), and posts the valid ones, byte for byte, in envelopes of at
//!   most `--envelope-size` objects and the API root's `max_content_length` bytes,
//!   waiting for each status.
//!
//! `URL` is an API root URL, or a discovery URL (`https://host/taxii2/`), whose default
//! API root is then used (it must be on the same origin). A remote collection is named by
//! id, alias or title in that API root, or by its full URL.

use crate::ingest::{self, ImportOptions, Source};
use crate::report::Reporter;
use crate::{Status, datadir};
use anyhow::Context;
use clap::{Args, Subcommand};
use phalanx_stix::Timestamp;
use phalanx_stix::stream::SplitLimits;
use phalanx_store::{NewCollection, Prepared, Store};
use phalanx_taxii::client::{self, ApiRoot, Auth, Client, Collection};
use phalanx_taxii::{Cut, Filters, StatusState, VersionFilter, next_cut};
use serde_json::json;
use serde_json::value::RawValue;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Default objects per envelope for `push`.
pub const DEFAULT_ENVELOPE: usize = 500;

/// Default page size (`limit`) asked by `pull`. Always sending a `limit` also keeps
/// `next` working on servers that need one with it (medallion 3.0 fails without).
pub const DEFAULT_PAGE: usize = 1000;

#[derive(Subcommand, Debug)]
pub enum TaxiiCmd {
    /// Pull a remote collection's objects into a local collection (validated like `import`)
    Pull(PullArgs),
    /// Push STIX files (bundles, envelopes, JSON lines) to a remote collection
    Push(PushArgs),
}

/// The remote server and how to talk to it.
#[derive(Args, Debug)]
pub struct Remote {
    /// API root URL, or discovery URL (https://host/taxii2/: its default API root)
    #[arg(value_parser = parse_url)]
    url: String,
    /// Bearer token (prefer the environment variable: command lines are visible to others)
    #[arg(long, env = "PHALANX_TAXII_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// HTTP Basic user (takes precedence over a token)
    #[arg(long, requires = "password_env")]
    user: Option<String>,
    /// Environment variable holding the HTTP Basic password
    #[arg(long, value_name = "VAR", requires = "user")]
    password_env: Option<String>,
    /// TLS client certificate chain (PEM)
    #[arg(long, requires = "key", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM)
    #[arg(long, requires = "cert", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Trust only these CA certificates (PEM) for the server, instead of the system's
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Seconds allowed for each request
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
    /// Retries of a request that failed transiently (429, 5xx, connection)
    #[arg(long, default_value_t = client::DEFAULT_RETRIES)]
    retries: u32,
    /// Largest response accepted, in bytes
    #[arg(long, default_value_t = client::DEFAULT_MAX_RESPONSE_BYTES, value_name = "BYTES")]
    max_response_bytes: u64,
    /// Allow plain HTTP to a non-loopback server (credentials travel in clear text)
    #[arg(long)]
    insecure_http: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    remote: Remote,
    /// Local collection to store into (id, alias or title)
    #[arg(long, short)]
    collection: String,
    /// Remote collection: id, alias or title in the API root, or a collection URL
    /// [default: the value of --collection]
    #[arg(long, value_name = "COLLECTION_ID_OR_URL")]
    from: Option<String>,
    /// Create the local collection (in the default API root) if it does not exist
    #[arg(long)]
    create: bool,
    /// Only objects the remote server added after this time (its date_added, exclusive)
    #[arg(long, value_parser = parse_timestamp, value_name = "TS")]
    added_after: Option<Timestamp>,
    /// Objects per page asked of the server (the TAXII `limit`; the server may send fewer)
    #[arg(long, default_value_t = DEFAULT_PAGE, value_parser = parse_positive, value_name = "N")]
    limit: usize,
    /// Only these STIX types
    #[arg(long = "type", value_delimiter = ',', value_name = "T,...")]
    types: Vec<String>,
    /// Versions: all, first, last or timestamps, comma-separated
    #[arg(long, default_value = "all", value_parser = crate::export::parse_versions)]
    version: VersionFilter,
    /// Objects per local store transaction
    #[arg(long, default_value_t = ingest::DEFAULT_BATCH)]
    batch: usize,
    /// Print every warning instead of a summary by kind
    #[arg(long)]
    warnings: bool,
    /// No progress display even on a terminal
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    remote: Remote,
    /// Remote collection: id, alias or title in the API root, or a collection URL
    #[arg(long, short)]
    collection: String,
    /// Files to push (`-` for stdin)
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Most objects per envelope (also bounded by the API root's max_content_length)
    #[arg(long, default_value_t = DEFAULT_ENVELOPE, value_parser = parse_positive, value_name = "N")]
    envelope_size: usize,
    /// Seconds to wait for each envelope's status to complete
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    status_timeout: u64,
    /// Print every warning instead of a summary by kind
    #[arg(long)]
    warnings: bool,
}

fn parse_url(s: &str) -> Result<String, String> {
    client::endpoint_url(s)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a positive integer")),
    }
}

/// Runs `phalanx taxii ...`.
pub fn run(data: &Path, json: bool, cmd: TaxiiCmd) -> anyhow::Result<Status> {
    match cmd {
        TaxiiCmd::Pull(a) => pull(data, json, &a),
        TaxiiCmd::Push(a) => push(json, &a),
    }
}

fn build_client(r: &Remote, status_timeout: Option<Duration>) -> anyhow::Result<Client> {
    let mut b = Client::builder()
        .timeout(Duration::from_secs(r.timeout.max(1)))
        .retries(r.retries)
        .max_response_bytes(r.max_response_bytes)
        .insecure_http(r.insecure_http);
    if let Some(t) = status_timeout {
        b = b.status_timeout(t);
    }
    match (&r.user, &r.password_env, &r.token) {
        (Some(user), Some(var), _) => {
            let password = std::env::var(var)
                .with_context(|| format!("--password-env {var}: no such environment variable"))?;
            b = b.auth(Auth::basic(user, password));
        }
        (_, _, Some(token)) => b = b.auth(Auth::bearer(token)),
        _ => {}
    }
    if let (Some(cert), Some(key)) = (&r.cert, &r.key) {
        b = b.client_cert(cert, key);
    }
    if let Some(ca) = &r.ca {
        b = b.ca(ca);
    }
    Ok(b.build()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The remote API root and collection named by `URL` and `name`.
async fn remote_collection(
    client: &Client,
    url: &str,
    name: &str,
) -> Result<(ApiRoot, Collection), client::Error> {
    if name.starts_with("https://") || name.starts_with("http://") {
        let col = client.collection_at(name).await?;
        let root = client.api_root(col.api_root.as_str()).await?;
        return Ok((root, col));
    }
    let root = client.resolve_api_root(url).await?;
    let col = client.find_collection(&root, name).await?;
    Ok((root, col))
}

/// What the download side of a pull saw.
#[derive(Debug, Default)]
struct PullStats {
    pages: u64,
    objects: u64,
    date_added_last: Option<String>,
}

/// The pages of a pull as one byte stream of JSON lines, for the import path.
struct PageReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for PageReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(page)) => {
                    self.buf = page;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvError) => return Ok(0), // the download ended
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn pull(data: &Path, json: bool, a: &PullArgs) -> anyhow::Result<Status> {
    let store = datadir::open(data)?;
    if a.create
        && let Err(phalanx_store::StoreError::NotFound(_)) = store.find_collection(&a.collection)
    {
        store.create_collection(
            datadir::DEFAULT_API_ROOT,
            &NewCollection::named(&a.collection),
        )?;
    }
    let local = ingest::find_collection(&store, &a.collection)?;
    let client = build_client(&a.remote, None)?;
    let rt = runtime()?;
    let from = a.from.as_deref().unwrap_or(&a.collection);
    let (_, remote) = rt.block_on(remote_collection(&client, &a.remote.url, from))?;
    anyhow::ensure!(
        remote.info.can_read,
        "remote collection {} is not readable with these credentials",
        remote.url
    );
    let filters = Filters {
        added_after: a.added_after,
        limit: Some(a.limit),
        types: a.types.clone(),
        versions: Some(a.version.clone()),
        ..Filters::default()
    };
    let name = format!("{}objects/", remote.url);
    // Pages travel through a small bounded channel: the download runs ahead of the
    // store by a few pages at most.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    let download = std::thread::spawn(move || {
        let mut stats = PullStats::default();
        rt.block_on(async {
            let mut pages = client.objects(&remote, &filters);
            loop {
                match pages.next_page().await {
                    Ok(Some(page)) => {
                        stats.pages += 1;
                        stats.objects += page.items.len() as u64;
                        if page.date_added_last.is_some() {
                            stats.date_added_last = page.date_added_last;
                        }
                        let mut lines = Vec::new();
                        for o in &page.items {
                            lines.extend_from_slice(o.get().as_bytes());
                            lines.push(b'\n');
                        }
                        if tx.send(Ok(lines)).is_err() {
                            return; // the import stopped
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let message = format!("{:#}", anyhow::Error::from(e));
                        let _ = tx.send(Err(std::io::Error::other(message)));
                        return;
                    }
                }
            }
        });
        stats
    });
    let opts = ImportOptions {
        source: None,
        batch: a.batch.max(1),
        json,
        all_warnings: a.warnings,
        progress: !a.quiet && !json,
    };
    let source = Source::from_reader(
        name.clone(),
        PageReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        },
    );
    let imported = ingest::import_sources(&store, &local.id, vec![source], &opts);
    let stats = download
        .join()
        .map_err(|_| anyhow::anyhow!("the download thread panicked"))?;
    let status = imported?;
    if json {
        println!(
            "{}",
            json!({"pull": {
                "from": name, "collection": local.id, "pages": stats.pages,
                "objects": stats.objects, "date_added_last": stats.date_added_last,
            }})
        );
    } else {
        let resume = stats
            .date_added_last
            .as_ref()
            .map(|t| format!("; newest date_added {t} (continue later with --added-after {t})"))
            .unwrap_or_default();
        eprintln!(
            "pulled {} objects in {} pages from {name}{resume}",
            stats.objects, stats.pages
        );
    }
    Ok(status)
}

/// Totals of a push.
#[derive(Debug, Default)]
struct PushTally {
    envelopes: u64,
    sent: u64,
    succeeded: u64,
    failed: u64,
    pending: u64,
    /// Valid objects larger than the server's max_content_length (not sent).
    oversize: u64,
}

struct Pusher<'a> {
    client: &'a Client,
    rt: &'a tokio::runtime::Runtime,
    col: &'a Collection,
    envelope_size: usize,
    max_bytes: u64,
    tally: PushTally,
}

impl Pusher<'_> {
    /// Sends full envelopes from the front of `pending` (all of it when `last`).
    fn flush(
        &mut self,
        rep: &mut Reporter,
        pending: &mut Vec<Prepared>,
        last: bool,
    ) -> anyhow::Result<()> {
        while !pending.is_empty() && (last || pending.len() >= self.envelope_size) {
            let sizes: Vec<usize> = pending
                .iter()
                .take(self.envelope_size)
                .map(|o| o.raw.len())
                .collect();
            match next_cut(&sizes, self.envelope_size, self.max_bytes) {
                Cut::Oversize => {
                    let o = pending.remove(0);
                    self.tally.oversize += 1;
                    let message = format!(
                        "{} bytes: larger than the server's max_content_length ({} bytes); not sent",
                        o.raw.len(),
                        self.max_bytes
                    );
                    if rep.is_json() {
                        rep.json_line(
                            &json!({"id": o.id, "outcome": "oversize", "reason": message}),
                        );
                    } else {
                        rep.say(&format!("error: {}: {message}", o.id));
                    }
                }
                Cut::Envelope(n) => {
                    let batch: Vec<Prepared> = pending.drain(..n).collect();
                    self.send(rep, &batch)?;
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, rep: &mut Reporter, objects: &[Prepared]) -> anyhow::Result<()> {
        let raws = objects
            .iter()
            .map(|o| serde_json::from_str::<&RawValue>(&o.raw))
            .collect::<Result<Vec<_>, _>>()
            .context("a validated object is not JSON")?;
        self.tally.envelopes += 1;
        self.tally.sent += objects.len() as u64;
        let n = self.tally.envelopes;
        let result = self
            .rt
            .block_on(self.client.add_objects(self.col, raws.iter().copied()));
        let status = match result {
            Ok(s) => s,
            Err(client::Error::StatusTimeout { status, .. }) => *status,
            Err(e @ client::Error::Server(_)) if matches!(e.http_status(), Some(413 | 422)) => {
                // The server refused this envelope as a whole: every object failed.
                self.tally.failed += objects.len() as u64;
                if rep.is_json() {
                    rep.json_line(&json!({
                        "envelope": n, "objects": objects.len(), "error": e.to_string(),
                    }));
                } else {
                    rep.say(&format!(
                        "envelope {n}: {} objects refused: {e}",
                        objects.len()
                    ));
                }
                return Ok(());
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "push stopped at envelope {n}; {} objects were stored before",
                    self.tally.succeeded
                )));
            }
        };
        self.tally.succeeded += status.success_count;
        self.tally.failed += status.failure_count;
        self.tally.pending += status.pending_count;
        if rep.is_json() {
            rep.json_line(&json!({"envelope": n, "objects": objects.len(), "status": status}));
            return Ok(());
        }
        let mut line = format!(
            "envelope {n}: {} objects: {} succeeded, {} failed",
            status.total_count, status.success_count, status.failure_count
        );
        if status.status == StatusState::Pending {
            line.push_str(&format!(", {} still pending", status.pending_count));
        }
        rep.say(&format!("{line} (status {})", status.id));
        for f in &status.failures {
            rep.say(&format!(
                "envelope {n}: failed: {} {}: {}",
                f.id,
                f.version,
                f.message.as_deref().unwrap_or("no reason given")
            ));
        }
        Ok(())
    }
}

fn push(json: bool, a: &PushArgs) -> anyhow::Result<Status> {
    let client = build_client(&a.remote, Some(Duration::from_secs(a.status_timeout)))?;
    let rt = runtime()?;
    let (root, col) = rt.block_on(remote_collection(&client, &a.remote.url, &a.collection))?;
    anyhow::ensure!(
        col.info.can_write,
        "remote collection {} is not writable with these credentials",
        col.url
    );
    let sources = a
        .files
        .iter()
        .map(|f| Source::open(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut pusher = Pusher {
        client: &client,
        rt: &rt,
        col: &col,
        envelope_size: a.envelope_size.max(1),
        max_bytes: root.info.max_content_length,
        tally: PushTally::default(),
    };
    let mut rep = Reporter::new(json, a.warnings);
    for source in sources {
        rep.start_file(&source.name, None);
        let mut pending: Vec<Prepared> = Vec::new();
        let result = ingest::read_batches(
            source,
            pusher.envelope_size,
            SplitLimits::default(),
            |batch| {
                ingest::report_batch(&mut rep, &batch, &mut std::iter::empty());
                pending.extend(batch.objects);
                pusher.flush(&mut rep, &mut pending, false)
            },
        )
        .and_then(|()| pusher.flush(&mut rep, &mut pending, true));
        rep.finish_file();
        result?;
    }
    let local = rep.finish();
    let invalid = local.counts.get("invalid").copied().unwrap_or(0);
    let t = &pusher.tally;
    if json {
        println!(
            "{}",
            json!({"push": {
                "to": col.url.as_str(), "envelopes": t.envelopes, "sent": t.sent,
                "succeeded": t.succeeded, "failed": t.failed, "pending": t.pending,
                "invalid": invalid, "oversize": t.oversize,
            }})
        );
    } else {
        let mut line = format!(
            "pushed to {}: {} objects sent in {} envelopes: {} succeeded, {} failed",
            col.url, t.sent, t.envelopes, t.succeeded, t.failed
        );
        if t.pending > 0 {
            line.push_str(&format!(", {} still pending", t.pending));
        }
        if invalid > 0 {
            line.push_str(&format!("; {invalid} invalid objects not sent"));
        }
        if t.oversize > 0 {
            line.push_str(&format!("; {} too large to send", t.oversize));
        }
        eprintln!("{line}");
    }
    Ok(if t.failed + t.pending + t.oversize + local.rejected > 0 {
        Status::Rejected
    } else {
        Status::Ok
    })
}
