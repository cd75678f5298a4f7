//! # phalanx-federation
//!
//! The workers `phalanx serve` runs to federate with partner nodes over plain TAXII 2.1:
//! one task per feed (`phalanx peer pull|push|accept`), started and stopped as feeds are
//! added and removed.
//!
//! - **Pull**: pages through the partner's collection from the feed's cursor
//!   (`added_after`), stores each page with the partner as its source and moves the cursor
//!   to the page's `X-TAXII-Date-Added-Last` **in the same transaction** — a crash
//!   repeats at most one page, which idempotent ingest absorbs. Polls every
//!   `pull_interval`; while a page was full it continues at once.
//! - **Push**: reads the local collection after the feed's cursor (the collection's
//!   strictly increasing `date_added` is the outbox: an object is in it exactly when its
//!   transaction committed), passes every object through the node's egress with purpose
//!   `federate` for the partner, POSTs what may go, and moves the cursor only once the
//!   partner acknowledged (a complete status). An idle push feed goes as soon as its
//!   node stores or deletes objects ([`phalanx_node::Node::on_change`]: a TAXII POST or
//!   DELETE, a pulled page), so an object reaches a connected peer in the time of the
//!   transfer; the local store is also looked at every `push_interval` (250 ms), for
//!   what another process (`phalanx import`) stored.
//! - A feed runs only while an agreement with the partner is in force; what flows is
//!   decided per object by the policy.
//! - Failures (unreachable peer, 5xx, garbage, oversized or slow answers — the TAXII
//!   client bounds time and size) are recorded on the feed (`phalanx peer status`) and
//!   retried with exponential backoff and jitter (up to `max_backoff`); one peer's
//!   trouble never touches another feed.

use phalanx_node::Node;
use phalanx_node::attest::Item;
use phalanx_store::{Feed, FeedDirection};
use phalanx_taxii::client::{Client, Collection};
use phalanx_taxii::{Cut, Filters, next_cut};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The node's signing identity: objects it produced are pushed with its attestation.
#[derive(Clone)]
pub struct Signer {
    /// The node's STIX identity id (`created_by_ref` of attestations).
    pub identity: String,
    /// Its Ed25519 key.
    pub key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, key not shown)", self.identity)
    }
}

/// How the workers talk to peers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Signs what this node produced when pushing it (none: pushed unsigned).
    pub signer: Option<Signer>,
    /// The node's TLS client certificate and key (PEM): peers map it to this node.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// CA certificates to trust for peers' server certificates (default: platform roots).
    pub ca: Option<PathBuf>,
    /// Pause between polls of a pull feed that is up to date.
    pub pull_interval: Duration,
    /// Pause between looks at the local store for a push feed with nothing new.
    pub push_interval: Duration,
    /// Objects per pulled page and per pushed envelope.
    pub page: usize,
    /// Longest wait after repeated failures.
    pub max_backoff: Duration,
    /// Time for one request to a peer.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            signer: None,
            client_cert: None,
            ca: None,
            pull_interval: Duration::from_secs(5),
            push_interval: Duration::from_millis(250),
            page: 2000,
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(60),
        }
    }
}

/// An error with its chain of causes, so the feed's record says what really failed
/// ("operation timed out", not only "GET … failed").
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// An error of one feed round, as recorded on the feed.
type RoundResult = Result<usize, String>;

/// Runs the feed workers until `stop` resolves.
pub async fn run(node: Arc<Node>, cfg: Config, stop: tokio::sync::watch::Receiver<bool>) {
    let mut running: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut stop_rx = stop.clone();
    // Push feeds wake as soon as this process stores or deletes objects; the
    // `push_interval` look remains for changes made by other processes.
    let (changes_tx, changes) = tokio::sync::watch::channel(0u64);
    node.on_change(move || changes_tx.send_modify(|n| *n = n.wrapping_add(1)));
    loop {
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.feeds()).await {
            Ok(Ok(feeds)) => {
                let ids: Vec<i64> = feeds.iter().map(|f| f.id).collect();
                running.retain(|id, h| {
                    let keep = ids.contains(id) && !h.is_finished();
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for f in feeds {
                    if f.direction == FeedDirection::Accept || running.contains_key(&f.id) {
                        continue;
                    }
                    tracing::info!(feed = f.id, partner = %f.partner, direction = f.direction.as_str(), remote = %f.remote, "starting feed");
                    let task = feed_task(
                        node.clone(),
                        cfg.clone(),
                        f.id,
                        stop.clone(),
                        changes.clone(),
                    );
                    running.insert(f.id, tokio::spawn(task));
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot read feeds: {e}"),
            Err(e) => tracing::warn!("feed scan failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop_rx.changed() => break,
        }
    }
    for (_, h) in running {
        h.abort();
    }
}

fn client(cfg: &Config) -> Result<Client, String> {
    let mut b = Client::builder().timeout(cfg.timeout).retries(1);
    if let Some((c, k)) = &cfg.client_cert {
        b = b.client_cert(c, k);
    }
    if let Some(ca) = &cfg.ca {
        b = b.ca(ca);
    }
    b.build()
        .map_err(|e| format!("TAXII client: {}", describe(&e)))
}

/// Full jitter over an exponential backoff: a random wait in [base/2, base], base =
/// interval × 2^failures, capped.
fn backoff(interval: Duration, failures: i64, max: Duration) -> Duration {
    let base = interval
        .saturating_mul(1u32 << failures.clamp(0, 16) as u32)
        .min(max);
    let mut b = [0u8; 4];
    let r = if getrandom::fill(&mut b).is_ok() {
        u32::from_le_bytes(b)
    } else {
        u32::MAX / 2
    };
    base / 2 + base.mul_f64(f64::from(r) / f64::from(u32::MAX) / 2.0)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, phalanx_node::NodeError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("worker failed: {e}")),
    }
}

async fn feed_task(
    node: Arc<Node>,
    cfg: Config,
    id: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut changes: tokio::sync::watch::Receiver<u64>,
) {
    let client = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            let n = node.clone();
            let _ =
                blocking(move || Ok(n.store().feed_error(id, &e, phalanx_node::now_micros())?))
                    .await;
            return;
        }
    };
    let own_identity: Option<String> = {
        let n = node.clone();
        blocking(move || n.own_identity()).await.ok().flatten()
    };
    let mut remote: Option<Remote> = None;
    let mut ahead = Prefetch::default();
    loop {
        // What changes from here on wakes the next wait (a push feed's).
        changes.borrow_and_update();
        let n = node.clone();
        let feed = match blocking(move || Ok(n.feeds()?.into_iter().find(|f| f.id == id))).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(feed = id, "{e}");
                tokio::time::sleep(cfg.pull_interval).await;
                continue;
            }
        };
        let now = phalanx_node::now_micros();
        let n = node.clone();
        let partner = feed.partner.clone();
        let active = blocking(move || n.federates_with(&partner, now))
            .await
            .unwrap_or(false);
        let idle = match feed.direction {
            FeedDirection::Push => cfg.push_interval,
            _ => cfg.pull_interval,
        };
        // Without an agreement in force nothing flows, but a push feed still owes the
        // recalls of agreements that were terminated.
        let mut failed = false;
        let wait = if !active && feed.direction != FeedDirection::Push {
            idle
        } else {
            let round = match feed.direction {
                FeedDirection::Push if !active => {
                    recall_terminated(&node, &client, &mut remote, &feed, &cfg).await
                }
                FeedDirection::Pull => {
                    pull(
                        &node,
                        &client,
                        &mut remote,
                        &feed,
                        &cfg,
                        own_identity.clone(),
                    )
                    .await
                }
                FeedDirection::Push => {
                    push(&node, &client, &mut remote, &feed, &cfg, &mut ahead).await
                }
                FeedDirection::Accept => return,
            };
            match round {
                // A full page or envelope: more is probably waiting.
                Ok(n) if n >= cfg.page => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(feed = id, partner = %feed.partner, direction = feed.direction.as_str(), remote = %feed.remote, "federation error: {e}");
                    failed = true;
                    remote = None;
                    let n = node.clone();
                    let failures = feed.failures + 1;
                    let _ = blocking(move || {
                        Ok(n.store().feed_error(id, &e, phalanx_node::now_micros())?)
                    })
                    .await;
                    backoff(
                        cfg.pull_interval.min(Duration::from_secs(1)),
                        failures,
                        cfg.max_backoff,
                    )
                }
            }
        };
        // A push feed in force that is idle (not backing off after a failure) goes at
        // once when objects change.
        let wake = feed.direction == FeedDirection::Push && active && !failed;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Ok(()) = changes.changed(), if wake => {}
            _ = stop.changed() => return,
        }
    }
}

/// A peer's collection and the largest request its API root accepts.
struct Remote {
    col: Collection,
    max_bytes: u64,
}

async fn collection<'c>(
    client: &Client,
    cache: &'c mut Option<Remote>,
    url: &str,
) -> Result<&'c Remote, String> {
    if cache.is_none() {
        let col = client
            .collection_at(url)
            .await
            .map_err(|e| format!("collection {url}: {}", describe(&e)))?;
        let root = client
            .api_root(col.api_root.as_str())
            .await
            .map_err(|e| format!("API root {}: {}", col.api_root, describe(&e)))?;
        *cache = Some(Remote {
            col,
            max_bytes: root.info.max_content_length,
        });
    }
    Ok(cache.as_ref().expect("set above"))
}

/// One pull round: pages from the cursor until the peer has no more; returns objects
/// received.
async fn pull(
    node: &Arc<Node>,
    client: &Client,
    cache: &mut Option<Remote>,
    feed: &Feed,
    cfg: &Config,
    own_identity: Option<String>,
) -> RoundResult {
    let col = &collection(client, cache, &feed.remote).await?.col;
    let filters = Filters {
        added_after: feed.cursor.map(phalanx_stix::Timestamp::from_micros),
        limit: Some(cfg.page),
        ..Filters::default()
    };
    let mut pages = client.objects(col, &filters);
    let mut received = 0;
    let mut cursor = feed.cursor;
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|e| format!("GET objects: {}", describe(&e)))?
    {
        received += page.items.len();
        // Without the header the page is stored but the cursor stays: the next round
        // asks again and idempotent ingest absorbs the repeat.
        let last = page
            .date_added_last
            .as_deref()
            .and_then(|t| phalanx_stix::Timestamp::parse(t).ok())
            .map(|t| t.as_micros());
        if let Some(l) = last {
            cursor = Some(cursor.map_or(l, |c| c.max(l)));
        }
        let n = node.clone();
        let f = feed.clone();
        let own = own_identity.clone();
        let at = cursor.unwrap_or(0);
        let stored = blocking(move || {
            let raws: Vec<&serde_json::value::RawValue> =
                page.items.iter().map(AsRef::as_ref).collect();
            n.store_pulled(&f, &raws, at, own.as_deref(), phalanx_node::now_micros())
        })
        .await?;
        if stored.recalled > 0 {
            tracing::info!(feed = feed.id, partner = %feed.partner, "the partner recalled {} object versions: deleted here", stored.recalled);
        }
        if stored.invalid > 0 || stored.conflicts > 0 {
            tracing::warn!(feed = feed.id, partner = %feed.partner, "pulled page: {} invalid and {} conflicting objects refused", stored.invalid, stored.conflicts);
        }
    }
    Ok(received)
}

/// One push round: the next envelope of what the partner may receive; returns the rows
/// passed (sent or skipped).
/// A page read, decided and signed ahead, while the previous one is in flight.
type Prepared = (phalanx_node::federation::Outgoing, Vec<Item>);

/// The next page of a push feed, prepared ahead from `from` (a cursor not yet
/// acknowledged: it is used only if the acknowledgement moves the feed's cursor there).
#[derive(Default)]
struct Prefetch {
    from: Option<i64>,
    page: Option<tokio::task::JoinHandle<Result<Prepared, String>>>,
}

/// Reads the page after `cursor`, through egress (purpose federate), and signs what this
/// node produced — CPU and SQLite work, off the async threads.
fn prepare(
    node: &Arc<Node>,
    feed: &Feed,
    cursor: Option<i64>,
    cfg: &Config,
) -> tokio::task::JoinHandle<Result<Prepared, String>> {
    let n = node.clone();
    let mut f = feed.clone();
    f.cursor = cursor;
    let page = cfg.page;
    let signer = cfg.signer.clone();
    tokio::task::spawn_blocking(move || {
        let out = n
            .outgoing(&f, page, phalanx_node::now_micros())
            .map_err(|e| e.to_string())?;
        let items = sign_all(&out.objects, signer.as_ref());
        Ok((out, items))
    })
}

async fn push(
    node: &Arc<Node>,
    client: &Client,
    cache: &mut Option<Remote>,
    feed: &Feed,
    cfg: &Config,
    ahead: &mut Prefetch,
) -> RoundResult {
    // The page prepared during the last round, if the cursor moved where it was read
    // from; else read it now.
    let handle = match ahead.page.take() {
        Some(h) if ahead.from == feed.cursor => h,
        Some(h) => {
            h.abort();
            prepare(node, feed, feed.cursor, cfg)
        }
        None => prepare(node, feed, feed.cursor, cfg),
    };
    let (out, items) = handle.await.map_err(|e| format!("worker failed: {e}"))??;
    // A full page: more is waiting. Prepare it while this one travels (the partner
    // ingests, this node reads, decides and signs).
    if out.scanned >= cfg.page
        && let Some(c) = out.cursor
    {
        ahead.from = Some(c);
        ahead.page = Some(prepare(node, feed, Some(c), cfg));
    }
    if let Some(cursor) = out.cursor {
        let mut sent = 0;
        if !out.objects.is_empty() {
            let remote = collection(client, cache, &feed.remote).await?;
            // What goes travels with this node's attestations, each right before the
            // objects it covers.
            let mut texts: Vec<String> = Vec::with_capacity(items.len());
            let mut attached: Vec<bool> = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Item::Attestation(a) => {
                        texts.push(a);
                        attached.push(true);
                    }
                    Item::Object(i) => {
                        texts.push(out.objects[i].raw.clone());
                        attached.push(false);
                    }
                }
            }
            let raws: Vec<Box<serde_json::value::RawValue>> = texts
                .into_iter()
                .map(serde_json::value::RawValue::from_string)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("stored object is not JSON: {e}"))?;
            // Envelopes within the partner's max_content_length.
            let sizes: Vec<usize> = raws.iter().map(|r| r.get().len()).collect();
            let mut start = 0;
            while start < raws.len() {
                match next_cut(&sizes[start..], usize::MAX, remote.max_bytes) {
                    Cut::Oversize => {
                        tracing::warn!(feed = feed.id, partner = %feed.partner, "an object of {} bytes is larger than the partner's max_content_length ({} bytes): not sent", sizes[start], remote.max_bytes);
                        start += 1;
                    }
                    Cut::Envelope(n) => {
                        let st = client
                            .add_objects(
                                &remote.col,
                                raws[start..start + n].iter().map(AsRef::as_ref),
                            )
                            .await
                            .map_err(|e| format!("POST objects: {}", describe(&e)))?;
                        if st.failure_count > 0 {
                            // The partner answered for every object: a refusal will not
                            // change on retry.
                            tracing::warn!(feed = feed.id, partner = %feed.partner, "the partner refused {} of {} objects: {:?}", st.failure_count, n, st.failures.first().and_then(|d| d.message.clone()));
                        }
                        // Objects moved, the attestations made here aside.
                        sent += attached[start..start + n].iter().filter(|a| !**a).count();
                        start += n;
                    }
                }
            }
        }
        // Marking upgrades: the partner deletes the object it may no longer hold (and
        // its own push feeds pass the deletion on).
        if !out.recalls.is_empty() {
            delete_all(client, cache, feed, &out.recalls, "marking upgrade recall").await?;
            tracing::info!(feed = feed.id, partner = %feed.partner, "recalled {} objects whose new version the partner may not receive", out.recalls.len());
        }
        let n = node.clone();
        let id = feed.id;
        blocking(move || {
            Ok(n.store()
                .feed_progress(id, cursor, sent as i64, phalanx_node::now_micros())?)
        })
        .await?;
    }
    if out.scanned >= cfg.page {
        return Ok(out.scanned);
    }
    // Caught up with the objects: recall what was deleted here since, then what
    // terminated agreements no longer let the partner keep.
    let deleted = recall(node, client, cache, feed, cfg).await?;
    Ok(out.scanned + deleted + recall_terminated(node, client, cache, feed, cfg).await?)
}

/// Sends the recalls owed for agreements with the partner that were terminated (see
/// `Node::termination_recalls`): `DELETE …/objects/{id}/` for every version.
async fn recall_terminated(
    node: &Arc<Node>,
    client: &Client,
    cache: &mut Option<Remote>,
    feed: &Feed,
    cfg: &Config,
) -> RoundResult {
    let n = node.clone();
    let f = feed.clone();
    let page = cfg.page;
    let Some((ids, progress)) =
        blocking(move || n.termination_recalls(&f, page, phalanx_node::now_micros())).await?
    else {
        return Ok(0);
    };
    delete_all(client, cache, feed, &ids, "termination recall").await?;
    if !ids.is_empty() {
        tracing::info!(feed = feed.id, partner = %feed.partner, "recalled {} objects shared under a terminated agreement", ids.len());
    }
    let n = node.clone();
    blocking(move || n.termination_recalled(&progress)).await?;
    Ok(ids.len())
}

/// `DELETE …/objects/{id}/` with every version, for each id; an object the partner no
/// longer holds (404) counts as deleted.
async fn delete_all(
    client: &Client,
    cache: &mut Option<Remote>,
    feed: &Feed,
    ids: &[String],
    why: &str,
) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    let col = &collection(client, cache, &feed.remote).await?.col;
    let every = Filters {
        versions: Some(phalanx_taxii::VersionFilter::all()),
        ..Filters::default()
    };
    for id in ids {
        match client.delete_object(col, id, &every).await {
            Ok(()) => {}
            Err(e) if e.http_status() == Some(404) => {}
            Err(e) => return Err(format!("DELETE {id} ({why}): {}", describe(&e))),
        }
    }
    Ok(())
}

/// The envelope order of a page: the objects grouped under their attestations (signed
/// on every core), the others as they are. What this node produced gets its origin
/// attestation; what it passes on, a transit attestation naming the path it came by
/// (versions stored before paths were recorded go as they are).
fn sign_all(objects: &[phalanx_store::StoredObject], signer: Option<&Signer>) -> Vec<Item> {
    let Some(s) = signer else {
        return (0..objects.len()).map(Item::Object).collect();
    };
    let texts: Vec<&str> = objects.iter().map(|o| o.raw.as_str()).collect();
    let paths: Vec<Option<&[String]>> = objects
        .iter()
        .map(|o| {
            (o.facts.source.is_none() || !o.facts.path.is_empty())
                .then_some(o.facts.path.as_slice())
        })
        .collect();
    phalanx_node::attest::sign_page(&texts, &paths, &s.identity, &s.key)
}

/// Sends the deletions since the feed's recall cursor (`DELETE …/objects/{id}/` with
/// `match[version]`); an object the partner no longer holds (404) counts as recalled.
async fn recall(
    node: &Arc<Node>,
    client: &Client,
    cache: &mut Option<Remote>,
    feed: &Feed,
    cfg: &Config,
) -> RoundResult {
    let n = node.clone();
    let f = feed.clone();
    let page = cfg.page;
    let (recalls, last) =
        blocking(move || n.outgoing_recalls(&f, page, phalanx_node::now_micros())).await?;
    let Some(last) = last else {
        return Ok(0);
    };
    if !recalls.is_empty() {
        let col = &collection(client, cache, &feed.remote).await?.col;
        for t in &recalls {
            let filters = Filters {
                versions: Some(
                    match t.version.as_deref().map(phalanx_stix::Timestamp::parse) {
                        Some(Ok(v)) => phalanx_taxii::VersionFilter {
                            all: false,
                            first: false,
                            last: false,
                            exact: vec![v],
                        },
                        _ => phalanx_taxii::VersionFilter::all(),
                    },
                ),
                ..Filters::default()
            };
            match client.delete_object(col, &t.id, &filters).await {
                Ok(()) => {}
                Err(e) if e.http_status() == Some(404) => {}
                Err(e) => return Err(format!("DELETE {}: {}", t.id, describe(&e))),
            }
        }
        tracing::info!(feed = feed.id, partner = %feed.partner, "recalled {} deleted object versions", recalls.len());
    }
    let n = node.clone();
    let id = feed.id;
    blocking(move || Ok(n.store().feed_recalled(id, last)?)).await?;
    Ok(recalls.len())
}
