//! `phalanx serve`: the TAXII 2.1 server on a data directory.
//!
//! Settings come from, in order of precedence: command-line flags, environment variables
//! (`PHALANX_*`, see `phalanx serve --help`), the TOML configuration file
//! (`--config`, default `DIR/phalanx.toml` when it exists), built-in defaults.

use crate::{Status, datadir};
use anyhow::Context;
use clap::Args;
use phalanx_node::{Node, NodeConfig};
use phalanx_server::ServeOptions;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default listen address: loopback, so a fresh node is never exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8421";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8421]
    #[arg(long, env = "PHALANX_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key, serve HTTPS
    #[arg(
        long,
        env = "PHALANX_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(
        long,
        env = "PHALANX_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (credentials travel in clear text)
    #[arg(long, env = "PHALANX_INSECURE_HTTP")]
    insecure_http: bool,
    /// Configuration file (TOML) [default: DIR/phalanx.toml if present]
    #[arg(long, env = "PHALANX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// max_content_length of every API root, in bytes
    #[arg(long, env = "PHALANX_MAX_CONTENT_LENGTH", value_name = "BYTES")]
    max_content_length: Option<u64>,
    /// Title of the server (TAXII discovery)
    #[arg(long, env = "PHALANX_TITLE")]
    title: Option<String>,
    /// CA certificates (PEM) trusted for partner nodes' server certificates when
    /// federating [default: the platform's roots]
    #[arg(long, env = "PHALANX_FEDERATION_CA", value_name = "FILE")]
    federation_ca: Option<PathBuf>,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    taxii: TaxiiSection,
    #[serde(default)]
    pub sharing: SharingSection,
    #[serde(default)]
    federation: FederationSection,
}

/// `[federation]`: how this node connects to its peers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FederationSection {
    /// Client certificate and key (PEM) presented to peers [default: the server's
    /// `tls_cert`/`tls_key`].
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    /// CA certificates trusted for peers.
    ca: Option<PathBuf>,
    pull_interval_seconds: Option<u64>,
    push_interval_ms: Option<u64>,
    page: Option<usize>,
    max_backoff_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    /// Days recall notices stay readable for partners that pull [default: 90].
    recall_notice_days: Option<u64>,
}

/// `[sharing]`: what the policy assumes for objects without markings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingSection {
    default_tlp: Option<String>,
    default_pap: Option<String>,
    /// `reject` (default) or `accept`: unsigned data from a partner with a signing key.
    unsigned: Option<String>,
}

impl SharingSection {
    /// The policy defaults this section sets.
    pub fn defaults(&self) -> anyhow::Result<phalanx_policy::Defaults> {
        use phalanx_policy::agreement::{parse_pap, parse_tlp};
        let d = phalanx_policy::Defaults::default();
        Ok(phalanx_policy::Defaults {
            tlp: match &self.default_tlp {
                Some(t) => parse_tlp(t).map_err(|m| anyhow::anyhow!("sharing.default_tlp: {m}"))?,
                None => d.tlp,
            },
            pap: match &self.default_pap {
                Some(p) => parse_pap(p).map_err(|m| anyhow::anyhow!("sharing.default_pap: {m}"))?,
                None => d.pap,
            },
            unsigned: match self.unsigned.as_deref() {
                None => d.unsigned,
                Some("reject") => phalanx_policy::Unsigned::Reject,
                Some("accept") => phalanx_policy::Unsigned::Accept,
                Some(other) => anyhow::bail!(
                    "sharing.unsigned: {other:?} is neither \"reject\" nor \"accept\""
                ),
            },
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxiiSection {
    title: Option<String>,
    description: Option<String>,
    contact: Option<String>,
    default_page: Option<usize>,
    max_page: Option<usize>,
    max_content_length: Option<u64>,
    max_objects_per_envelope: Option<usize>,
    status_retention_hours: Option<u64>,
}

pub fn load_config(data: &Path, explicit: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => {
            let p = data.join("phalanx.toml");
            if !p.exists() {
                return Ok(ConfigFile::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad configuration {}", path.display()))
}

fn node_config(a: &ServeArgs, file: &ConfigFile) -> anyhow::Result<NodeConfig> {
    let f = &file.taxii;
    let d = NodeConfig::default();
    let cfg = NodeConfig {
        title: a.title.clone().or(f.title.clone()).unwrap_or(d.title),
        description: f.description.clone(),
        contact: f.contact.clone(),
        default_page: f.default_page.unwrap_or(d.default_page),
        max_page: f.max_page.unwrap_or(d.max_page),
        max_content_length: a.max_content_length.or(f.max_content_length),
        max_objects_per_envelope: f
            .max_objects_per_envelope
            .unwrap_or(d.max_objects_per_envelope),
        max_depth: d.max_depth,
        status_retention_us: f
            .status_retention_hours
            .map_or(d.status_retention_us, |h| (h * 3600 * 1_000_000) as i64),
        notice_retention_us: file
            .federation
            .recall_notice_days
            .map_or(d.notice_retention_us, |days| {
                i64::try_from(days.saturating_mul(86_400_000_000)).unwrap_or(i64::MAX)
            }),
        sharing: file.sharing.defaults()?,
    };
    anyhow::ensure!(
        cfg.default_page > 0 && cfg.max_page >= cfg.default_page,
        "taxii.default_page must be > 0 and <= taxii.max_page"
    );
    anyhow::ensure!(
        cfg.status_retention_us >= 24 * 3600 * 1_000_000,
        "taxii.status_retention_hours must be at least 24 (TAXII 2.1 §4.3.1)"
    );
    Ok(cfg)
}

pub fn run(data: &Path, a: &ServeArgs) -> anyhow::Result<Status> {
    let file = load_config(data, a.config.as_deref())?;
    let cfg = node_config(a, &file)?;
    let listen = match a.listen.or(file.server.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse()?,
    };
    let tls = match (
        a.tls_cert.clone().or(file.server.tls_cert),
        a.tls_key.clone().or(file.server.tls_key),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key"),
    };
    let fed = &file.federation;
    let d = phalanx_federation::Config::default();
    let (identity, _) =
        crate::sharing::ensure_identity(data, &crate::sharing::InitArgs::default())?;
    let signer = match identity["id"].as_str() {
        Some(id) => Some(phalanx_federation::Signer {
            identity: id.to_owned(),
            key: crate::sharing::signing_seed(data)?,
        }),
        None => None,
    };
    let federation = phalanx_federation::Config {
        signer,
        client_cert: match (&fed.client_cert, &fed.client_key, &tls) {
            (Some(c), Some(k), _) => Some((c.clone(), k.clone())),
            (None, None, Some((c, k))) => Some((c.clone(), k.clone())),
            (None, None, None) => None,
            _ => anyhow::bail!("federation.client_cert and federation.client_key go together"),
        },
        ca: a.federation_ca.clone().or(fed.ca.clone()),
        pull_interval: fed
            .pull_interval_seconds
            .map_or(d.pull_interval, std::time::Duration::from_secs),
        push_interval: fed
            .push_interval_ms
            .map_or(d.push_interval, std::time::Duration::from_millis),
        page: fed.page.unwrap_or(d.page).max(1),
        max_backoff: fed
            .max_backoff_seconds
            .map_or(d.max_backoff, std::time::Duration::from_secs),
        timeout: fed
            .timeout_seconds
            .map_or(d.timeout, std::time::Duration::from_secs),
    };
    let opts = ServeOptions {
        listen,
        tls,
        insecure_http: a.insecure_http || file.server.insecure_http.unwrap_or(false),
    };
    let store = datadir::open(data)?;
    let node = Arc::new(Node::new(Arc::new(store), cfg)?);
    let boot = node.bootstrap(datadir::now_micros())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let shutdown = {
        let _guard = runtime.enter();
        shutdown_signal()?
    };
    // Federation workers run beside the server and stop with it.
    let (stop_federation, stop_rx) = tokio::sync::watch::channel(false);
    let workers = runtime.spawn(phalanx_federation::run(node.clone(), federation, stop_rx));
    let served = runtime.block_on(phalanx_server::serve(node, opts, shutdown, |addr, tls| {
        let scheme = if tls { "https" } else { "http" };
        println!("Phalanx TAXII 2.1 server listening on {scheme}://{addr}/taxii2/");
        println!("data directory: {}", data.display());
        if let Some(c) = &boot.collection {
            println!("created the default collection {} ({})", c.title, c.id);
        }
        if let Some((user, password)) = &boot.admin {
            println!(
                "created administrator {user:?} with password {password} (shown only now; HTTP Basic)"
            );
        }
        println!("press Ctrl-C to stop");
    }));
    let _ = stop_federation.send(true);
    let _ = runtime.block_on(workers);
    served?;
    eprintln!("stopped: every acknowledged request is stored");
    Ok(Status::Ok)
}

/// A flag that Ctrl-C or SIGTERM sets (for commands that run until interrupted and
/// then finish their work, such as `phalanx watch`).
pub fn interrupted() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = rt.block_on(async { shutdown_signal() })?;
    let set = flag.clone();
    std::thread::spawn(move || {
        rt.block_on(signal);
        set.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    Ok(flag)
}

/// Ctrl-C or SIGTERM. The handlers are installed now, before the banner says the server
/// is up: a signal that arrives right after the banner must stop it gracefully, not kill
/// it with the default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
