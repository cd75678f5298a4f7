//! An async TAXII 2.1 client for any TAXII 2.1 server (feature `client`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), phalanx_taxii::client::Error> {
//! use phalanx_taxii::Filters;
//! use phalanx_taxii::client::{Auth, Client};
//!
//! let client = Client::builder()
//!     .auth(Auth::bearer("phx_..."))
//!     .build()?;
//! // An API root URL, or a discovery URL (`.../taxii2/`, then its default API root).
//! let root = client.resolve_api_root("https://node.example/taxii2/").await?;
//! let intel = client.find_collection(&root, "intel").await?;
//! let filters = Filters { limit: Some(500), ..Filters::default() };
//! let mut pages = client.objects(&intel, &filters);
//! while let Some(page) = pages.next_page().await? {
//!     for object in &page.items {
//!         println!("{}", object.get()); // the object's JSON text, as received
//!     }
//! }
//! let status = client.add_objects(&intel, pages_to_push()).await?;
//! println!("{} of {} stored", status.success_count, status.total_count);
//! # Ok(()) }
//! # fn pages_to_push() -> Vec<&'static serde_json::value::RawValue> { Vec::new() }
//! ```
//!
//! Main types: [`Client`] (built by [`ClientBuilder`], with [`Auth`]), the handles
//! [`ApiRoot`] and [`Collection`] (URL plus resource), [`Pages`] / [`Page`] for listings,
//! and [`Error`] (a TAXII error response is [`Error::Server`] with a [`ServerError`]).
//! Endpoints: [`Client::discovery`], [`Client::api_root`], [`Client::resolve_api_root`],
//! [`Client::collections`], [`Client::collection`], [`Client::collection_at`],
//! [`Client::find_collection`], [`Client::objects`], [`Client::manifest`],
//! [`Client::object`], [`Client::versions`], [`Client::post_objects`],
//! [`Client::add_objects`], [`Client::status`], [`Client::wait_status`],
//! [`Client::delete_object`].
//!
//! What it does for the caller (STANDARDS.md §1):
//! - **Headers.** Every request sends `Accept: application/taxii+json;version=2.1`, POSTs
//!   also `Content-Type`; every successful response with a body must be TAXII 2.1 JSON
//!   ([`Error::ContentType`] otherwise). Error responses become [`Error::Server`] with the
//!   HTTP status and the TAXII error's title and description.
//! - **Paging** ([`Pages`]): follows `next` while `more` is true; when a server says
//!   `more` without a `next` (the manifest and versions resources define none), repeats
//!   the query with `added_after` = the `X-TAXII-Date-Added-Last` header. If that header is
//!   missing or does not advance, or a server keeps answering empty pages with `more`,
//!   paging ends with [`Error::Paging`] after the last page received, never loops.
//!   (`added_after` is exclusive: a server that gives several objects the same
//!   `date_added` and splits them across pages without `next` loses the rest of them; that
//!   is TAXII's rule, and Phalanx's `date_added` values are unique per collection.)
//! - **Objects stay lossless**: each object is its own raw JSON text
//!   ([`RawValue`]), never re-encoded; [`Client::add_objects`] writes the envelope around
//!   the caller's bytes.
//! - **Retries** with exponential backoff and jitter (and `Retry-After` when given, if no
//!   longer than [`ClientBuilder::max_retry_wait`]): GET and DELETE on 429, 502, 503, 504
//!   and transport failures; POST only when the server cannot have processed it — 429,
//!   503, or a connection that was never established. (Re-posting identical objects is
//!   harmless in TAXII 2.1, a duplicate is a success, but some servers, medallion for
//!   one, count it as a failure, so a POST whose fate is unknown — 502, 504, a timeout,
//!   a dropped connection — is not repeated; the error says so.) TLS failures are never
//!   retried.
//! - **Limits**: a total timeout per request, a connect timeout, and a maximum response
//!   size: reading stops as soon as a body exceeds it ([`Error::TooLarge`]).
//! - **Security**: plain `http://` is refused except to loopback addresses unless
//!   [`ClientBuilder::insecure_http`] (credentials would travel in clear text); redirects
//!   are followed only within the same origin; an API root named by a discovery resource
//!   must be on the discovery URL's origin, so a server cannot send our credentials
//!   elsewhere. TLS is rustls with aws-lc-rs, TLS 1.2 or 1.3, no 0-RTT (TAXII §8.2);
//!   server certificates are checked against the platform's roots or, with
//!   [`ClientBuilder::ca`], only against the given CA certificates.
//! - **Status**: [`Client::add_objects`] polls `{api-root}/status/{id}/` until the
//!   status is `complete` or [`ClientBuilder::status_timeout`] passes, and refuses a
//!   status whose counts disagree ([`Error::InconsistentStatus`]).

use crate::{
    ApiRootInfo, CollectionInfo, Collections, Discovery, Filters, ManifestRecord, Status,
    StatusState, TaxiiError, media, write_envelope,
};
use phalanx_stix::Timestamp;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use reqwest::Url;

/// Default total time for one request (connect, send, read the whole response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time to establish a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest response body read, in bytes: 100 MiB, the size of the largest
/// request Phalanx accepts by default (`max_content_length`).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 100 * 1024 * 1024;
/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 4;
/// Default first backoff delay; it doubles with every retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// Default longest single wait between attempts (backoff or `Retry-After`).
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Default time [`Client::add_objects`] waits for a status to become `complete` (as the
/// reference client `taxii2-client`).
pub const DEFAULT_STATUS_TIMEOUT: Duration = Duration::from_secs(60);

/// Most consecutive empty pages with `more: true` accepted before paging gives up.
const MAX_EMPTY_PAGES: u32 = 8;
/// Most bytes of an error response read (the rest is dropped, not an error).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Most redirects followed (same origin only).
const MAX_REDIRECTS: usize = 5;
/// Longest pause between two polls of a status resource.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic (TAXII 2.1 §1.6.2; every TAXII client must support it).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>` (a Phalanx API token, for one).
    Bearer(String),
}

impl Auth {
    /// HTTP Basic with a user name and password.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Auth {
        Auth::Bearer(token.into())
    }
}

impl fmt::Debug for Auth {
    /// Never shows the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { user, .. } => write!(f, "Basic({user:?}, <password>)"),
            Auth::Bearer(_) => f.write_str("Bearer(<token>)"),
        }
    }
}

/// A TAXII error response: the HTTP status and what the server said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// Request method.
    pub method: String,
    /// Request URL.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// The TAXII error's `title`, or the HTTP reason phrase when the body is not a TAXII
    /// error.
    pub title: String,
    /// The TAXII error's `description`, or the start of a non-TAXII body.
    pub description: Option<String>,
    /// The whole TAXII error body, when there was one.
    pub error: Option<TaxiiError>,
    /// The `Retry-After` delay, when the server gave one.
    pub retry_after: Option<Duration>,
    /// The `Location` of a redirect that was not followed (another origin, too many).
    pub location: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: HTTP {}: {}",
            self.method, self.url, self.status, self.title
        )?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        if let Some(l) = &self.location {
            write!(
                f,
                " (redirect to {l} not followed: only same-origin redirects are)"
            )?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a TAXII server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be built (unreadable or invalid certificate, key or CA file).
    #[error("TAXII client configuration: {0}")]
    Config(String),
    /// A URL that cannot be used.
    #[error("bad TAXII URL {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// Plain HTTP to a non-loopback host without [`ClientBuilder::insecure_http`].
    #[error(
        "refusing plain HTTP to {url}: credentials and intelligence would travel in clear text \
         (use https, or allow insecure HTTP explicitly)"
    )]
    InsecureUrl {
        /// The URL.
        url: String,
    },
    /// A caller mistake detected before sending anything.
    #[error("{0}")]
    Usage(String),
    /// The request failed below HTTP (DNS, connection, TLS, timeout, broken body).
    #[error("{method} {url} failed{}", if *.retried > 0 { format!(" (after {} retries)", .retried) } else { String::new() })]
    Transport {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Retries made before giving up.
        retried: u32,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an HTTP error status.
    #[error("{0}")]
    Server(Box<ServerError>),
    /// A response body larger than [`ClientBuilder::max_response_bytes`]; reading stopped
    /// there.
    #[error("{url}: response larger than the limit of {limit} bytes; reading stopped")]
    TooLarge {
        /// Request URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A successful response that is not TAXII 2.1 JSON.
    #[error(
        "{url}: expected Content-Type {expected}, got {}",
        .found.as_deref().map_or("none".to_owned(), |f| format!("{f:?}"))
    )]
    ContentType {
        /// Request URL.
        url: String,
        /// The media type required.
        expected: &'static str,
        /// The `Content-Type` received.
        found: Option<String>,
    },
    /// A TAXII 2.1 response that does not parse as the expected resource.
    #[error("{url}: not a valid TAXII {resource} resource: {source}")]
    Decode {
        /// Request URL.
        url: String,
        /// The resource expected (`envelope`, `status`, ...).
        resource: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Paging cannot go on (the pages received so far were delivered).
    #[error("paging {url}: {message}")]
    Paging {
        /// The endpoint paged.
        url: String,
        /// Why it stopped.
        message: String,
    },
    /// Discovery did not lead to a usable API root.
    #[error("discovery {url}: {message}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is missing or refused.
        message: String,
    },
    /// No collection with that id, alias or title in the API root.
    #[error("no collection {name:?} in API root {api_root} (available: {})", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    CollectionNotFound {
        /// API root URL.
        api_root: String,
        /// The name looked for.
        name: String,
        /// What the API root offers (`alias (id)` or `id`).
        available: Vec<String>,
    },
    /// The collection does not grant the caller the right needed.
    #[error("collection {collection} is not {action} for these credentials")]
    NotPermitted {
        /// Collection URL.
        collection: String,
        /// `readable` or `writable`.
        action: &'static str,
    },
    /// A status stayed `pending` past [`ClientBuilder::status_timeout`].
    #[error(
        "status {} still pending after {waited:?}: {} succeeded, {} failed, {} pending of {}",
        .status.id, .status.success_count, .status.failure_count, .status.pending_count, .status.total_count
    )]
    StatusTimeout {
        /// The last status seen.
        status: Box<Status>,
        /// How long the client waited.
        waited: Duration,
    },
    /// A status whose counts disagree with each other or with its lists.
    #[error(
        "status {} is inconsistent: {} succeeded + {} failed + {} pending != {} total, or a list length differs",
        .status.id, .status.success_count, .status.failure_count, .status.pending_count, .status.total_count
    )]
    InconsistentStatus {
        /// The status received.
        status: Box<Status>,
    },
}

impl Error {
    /// The HTTP status of a [`Error::Server`] error.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Server(s) => Some(s.status),
            _ => None,
        }
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of a [`Client`]; see each method for its default.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    auth: Option<Auth>,
    client_cert: Option<(PathBuf, PathBuf)>,
    ca: Option<PathBuf>,
    timeout: Duration,
    connect_timeout: Duration,
    max_response_bytes: u64,
    retries: u32,
    backoff: Duration,
    max_retry_wait: Duration,
    status_timeout: Duration,
    insecure_http: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            auth: None,
            client_cert: None,
            ca: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_BACKOFF,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            status_timeout: DEFAULT_STATUS_TIMEOUT,
            insecure_http: false,
        }
    }
}

impl ClientBuilder {
    /// Credentials sent with every request (default: none).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// A TLS client certificate chain and its private key, PEM files (default: none).
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Trust only the CA certificates of this PEM file for server certificates, instead
    /// of the platform's roots (a partner PKI, a test CA).
    pub fn ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.ca = Some(pem_file.into());
        self
    }

    /// Total time for one request attempt (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time to establish a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Largest response body read (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Retries after a failed first attempt (default [`DEFAULT_RETRIES`]; 0 disables).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// First backoff delay, doubled on each retry, with jitter (default
    /// [`DEFAULT_BACKOFF`]).
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// Longest wait before a retry (default [`DEFAULT_MAX_RETRY_WAIT`]): backoff is
    /// capped there, and a `Retry-After` longer than this ends the retries.
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// How long [`Client::add_objects`] polls a pending status (default
    /// [`DEFAULT_STATUS_TIMEOUT`]).
    pub fn status_timeout(mut self, timeout: Duration) -> Self {
        self.status_timeout = timeout;
        self
    }

    /// Allow plain `http://` to non-loopback hosts (default: refused).
    pub fn insecure_http(mut self, allow: bool) -> Self {
        self.insecure_http = allow;
        self
    }

    /// Reads the certificate files and builds the client.
    pub fn build(self) -> Result<Client> {
        let tls = tls_config(
            self.ca.as_deref(),
            self.client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )?;
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(redirects)
            .user_agent(concat!("phalanx-taxii/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            auth: self.auth,
            cfg: Arc::new(Config {
                max_response_bytes: self.max_response_bytes,
                retries: self.retries,
                backoff: self.backoff,
                max_retry_wait: self.max_retry_wait,
                status_timeout: self.status_timeout,
                insecure_http: self.insecure_http,
            }),
        })
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("cannot read {what} {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Config(format!("bad PEM in {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no certificate in {what} {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// rustls with aws-lc-rs, TLS 1.3 and 1.2, no early data, ALPN h2 then HTTP/1.1.
fn tls_config(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?;
    let builder = match ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path, "CA file")? {
                roots.add(cert).map_err(|e| {
                    Error::Config(format!(
                        "unusable CA certificate in {}: {e}",
                        path.display()
                    ))
                })?;
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| Error::Config(format!("platform certificate verifier: {e}")))?
        }
    };
    let mut config = match identity {
        Some((cert, key)) => {
            let chain = read_certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                Error::Config(format!(
                    "cannot read a private key from {}: {e}",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::Config(format!(
                    "client certificate {} and its key do not match or are unsupported: {e}",
                    cert.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // TAXII 2.1 §8.2 forbids 0-RTT: keep rustls' default of no early data.
    config.enable_early_data = false;
    Ok(config)
}

#[derive(Debug)]
struct Config {
    max_response_bytes: u64,
    retries: u32,
    backoff: Duration,
    max_retry_wait: Duration,
    status_timeout: Duration,
    insecure_http: bool,
}

/// A TAXII 2.1 client: cheap to clone (clones share connections).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    auth: Option<Auth>,
    cfg: Arc<Config>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("auth", &self.auth)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// An API root: its URL (ending in `/`) and its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoot {
    /// `{api-root}/`.
    pub url: Url,
    /// What the server says about it.
    pub info: ApiRootInfo,
}

/// A collection: where it is and what the server says about it (including the caller's
/// `can_read` / `can_write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// The URL of its API root.
    pub api_root: Url,
    /// `{api-root}/collections/{id}/`.
    pub url: Url,
    /// The collection resource.
    pub info: CollectionInfo,
}

/// One page of an objects, object, manifest or versions listing.
#[derive(Debug)]
pub struct Page<T> {
    /// Objects (raw JSON), manifest records or versions.
    pub items: Vec<T>,
    /// The server's `more`.
    pub more: bool,
    /// The server's `next`, if any.
    pub next: Option<String>,
    /// `X-TAXII-Date-Added-First`, verbatim.
    pub date_added_first: Option<String>,
    /// `X-TAXII-Date-Added-Last`, verbatim.
    pub date_added_last: Option<String>,
}

/// The wire form of an envelope, manifest or versions resource, with `next` kept even
/// where TAXII does not define it.
#[derive(serde::Deserialize)]
struct WirePage<T> {
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<serde_json::Value>,
    #[serde(default = "Vec::new", alias = "versions")]
    objects: Vec<T>,
}

enum Cursor {
    Start,
    Next(String),
    AddedAfter(Timestamp),
    /// Paging cannot go on: the next call reports why.
    Failed(String),
    Done,
}

/// The pages of one listing, fetched one at a time by [`Pages::next_page`].
pub struct Pages<'c, T> {
    client: &'c Client,
    url: Url,
    filters: Filters,
    resource: &'static str,
    cursor: Cursor,
    empty_pages: u32,
    _items: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pages<'_, T> {
    /// The next page, or `None` after the last one.
    ///
    /// Requests repeat the caller's filters, plus `next` or the `added_after` that
    /// continues the listing. After an error, paging is over.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>> {
        let mut query = self.filters.clone();
        match std::mem::replace(&mut self.cursor, Cursor::Done) {
            Cursor::Done => return Ok(None),
            Cursor::Failed(message) => {
                return Err(Error::Paging {
                    url: self.url.to_string(),
                    message,
                });
            }
            Cursor::Start => {}
            Cursor::Next(next) => query.next = Some(next),
            Cursor::AddedAfter(t) => {
                query.added_after = Some(t);
                query.next = None;
            }
        }
        let url = with_filters(&self.url, &query);
        let (wire, headers) = self
            .client
            .get_json::<WirePage<T>>(&url, self.resource)
            .await?;
        let next = match wire.next {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if s.is_empty() => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(Error::Paging {
                    url: url.to_string(),
                    message: format!("\"next\" is neither a string nor a number: {other}"),
                });
            }
        };
        let first = header_text(&headers, "x-taxii-date-added-first");
        let last = header_text(&headers, "x-taxii-date-added-last");
        if wire.more {
            self.empty_pages = if wire.objects.is_empty() {
                self.empty_pages + 1
            } else {
                0
            };
            self.cursor = if self.empty_pages > MAX_EMPTY_PAGES {
                Cursor::Failed(format!(
                    "{} consecutive empty pages with \"more\": true; giving up",
                    self.empty_pages
                ))
            } else if let Some(n) = &next {
                Cursor::Next(n.clone())
            } else {
                continue_after(query.added_after, last.as_deref())
            };
        }
        Ok(Some(Page {
            items: wire.objects,
            more: wire.more,
            next,
            date_added_first: first,
            date_added_last: last,
        }))
    }

    /// Every item of every page, in order (memory grows with the listing: prefer
    /// [`Pages::next_page`] for big collections).
    pub async fn all(mut self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        while let Some(page) = self.next_page().await? {
            out.extend(page.items);
        }
        Ok(out)
    }
}

/// Where paging goes on when a server gave `more` but no `next`.
fn continue_after(previous: Option<Timestamp>, last: Option<&str>) -> Cursor {
    let Some(last) = last else {
        return Cursor::Failed(
            "the server said \"more\" but gave neither \"next\" nor X-TAXII-Date-Added-Last".into(),
        );
    };
    match Timestamp::parse(last) {
        Err(e) => Cursor::Failed(format!("bad X-TAXII-Date-Added-Last {last:?}: {e}")),
        Ok(t) if previous.is_some_and(|p| t <= p) => Cursor::Failed(format!(
            "X-TAXII-Date-Added-Last {last:?} does not advance past added_after; stopping to \
             avoid a loop"
        )),
        Ok(t) => Cursor::AddedAfter(t),
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// The query string of `filters` on `url` (which must have none).
fn with_filters(url: &Url, f: &Filters) -> Url {
    let mut url = url.clone();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(t) = f.added_after {
        pairs.push(("added_after", t.to_string()));
    }
    if let Some(n) = f.limit {
        pairs.push(("limit", n.to_string()));
    }
    if let Some(n) = &f.next {
        pairs.push(("next", n.clone()));
    }
    if !f.ids.is_empty() {
        pairs.push(("match[id]", f.ids.join(",")));
    }
    if !f.types.is_empty() {
        pairs.push(("match[type]", f.types.join(",")));
    }
    if let Some(v) = &f.versions {
        let text = if v.all {
            "all".to_owned()
        } else {
            let mut parts = Vec::new();
            if v.first {
                parts.push("first".to_owned());
            }
            if v.last {
                parts.push("last".to_owned());
            }
            parts.extend(v.exact.iter().map(|t| t.to_string()));
            parts.join(",")
        };
        if !text.is_empty() {
            pairs.push(("match[version]", text));
        }
    }
    if !f.spec_versions.is_empty() {
        pairs.push(("match[spec_version]", f.spec_versions.join(",")));
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url
}

/// Parses a URL given for a TAXII endpoint: http(s), no fragment, path ending in `/`.
pub fn endpoint_url(text: &str) -> Result<Url> {
    let bad = |message: &str| Error::Url {
        url: text.to_owned(),
        message: message.to_owned(),
    };
    let mut url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("TAXII runs over https (or http on loopback)"));
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if url.query().is_some() {
        return Err(bad("TAXII endpoint URLs have no query"));
    }
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` + the given path segments + a trailing `/`; segments are percent-encoded, and
/// `.`, `..` and empty ones refused (ids come from servers).
fn child(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    {
        let mut path = url.path_segments_mut().map_err(|()| Error::Url {
            url: base.to_string(),
            message: "cannot have a path".into(),
        })?;
        path.pop_if_empty();
        for s in segments {
            if s.is_empty() || *s == "." || *s == ".." {
                return Err(Error::Usage(format!(
                    "{s:?} cannot be a path segment of a TAXII URL"
                )));
            }
            path.push(s);
        }
        path.push("");
    }
    Ok(url)
}

/// The API root of a collection URL (`{api-root}/collections/{id}/`).
fn api_root_of(collection: &Url) -> Result<Url> {
    let segs: Vec<&str> = collection
        .path_segments()
        .map_or(Vec::new(), Iterator::collect);
    let n = segs.len();
    if n < 3 || !segs[n - 1].is_empty() || segs[n - 3] != "collections" || segs[n - 2].is_empty() {
        return Err(Error::Url {
            url: collection.to_string(),
            message: "not a collection URL ({api-root}/collections/{id}/)".into(),
        });
    }
    let mut root = collection.clone();
    if let Ok(mut p) = root.path_segments_mut() {
        p.pop().pop().pop().push("");
    }
    Ok(root)
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// What one HTTP exchange returned.
struct Reply {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Retry-After: delta-seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut parts = value.split_whitespace();
    let (_day, d, mon, y, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == mon)? + 1;
    let at = Timestamp::parse(&format!("{y}-{m:02}-{d:0>2}T{time}Z")).ok()?;
    let now_us = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
    let wait_us = i128::from(at.as_micros()) - i128::try_from(now_us).ok()?;
    Some(Duration::from_micros(u64::try_from(wait_us.max(0)).ok()?))
}

/// Backoff before retry `attempt` (0 = first retry): `base · 2^attempt`, capped, with
/// jitter drawn uniformly from its upper half.
fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let half = full / 2;
    let random = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(attempt)
    };
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { random % nanos })
}

/// Whether a failed attempt may be repeated, and after how long.
fn retry_delay(cfg: &Config, method: &Method, error: &Error, attempt: u32) -> Option<Duration> {
    let idempotent = *method != Method::POST;
    let computed = backoff(cfg.backoff, cfg.max_retry_wait, attempt);
    match error {
        Error::Transport { source, .. } => {
            let unsent = source.is_connect() && !is_tls_failure(source);
            (idempotent && !is_tls_failure(source) || unsent).then_some(computed)
        }
        Error::Server(s) => {
            let retryable = match s.status {
                429 | 503 => true,
                502 | 504 => idempotent,
                _ => false,
            };
            if !retryable {
                return None;
            }
            match s.retry_after {
                Some(wait) if wait > cfg.max_retry_wait => None,
                Some(wait) => Some(wait),
                None => Some(computed),
            }
        }
        _ => None,
    }
}

/// A TLS failure (bad certificate, refused client certificate, ...): not transient.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: descend into it explicitly.
        source = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    false
}

impl Client {
    /// A builder with the defaults (no credentials, platform roots, the `DEFAULT_*`
    /// limits).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    fn check_url(&self, url: &Url) -> Result<()> {
        if url.scheme() == "http" && !self.cfg.insecure_http && !is_loopback(url) {
            return Err(Error::InsecureUrl {
                url: url.to_string(),
            });
        }
        Ok(())
    }

    /// One request with retries; `Ok` only for a 2xx response, whose body was read within
    /// the size limit.
    async fn execute(&self, method: Method, url: &Url, body: Option<&str>) -> Result<Reply> {
        self.check_url(url)?;
        let mut attempt = 0;
        loop {
            let result = self.attempt(&method, url, body).await;
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            let delay = (attempt < self.cfg.retries)
                .then(|| retry_delay(&self.cfg, &method, &error, attempt))
                .flatten();
            let Some(delay) = delay else {
                return Err(match error {
                    Error::Transport {
                        method,
                        url,
                        source,
                        ..
                    } => Error::Transport {
                        method,
                        url,
                        retried: attempt,
                        source,
                    },
                    e => e,
                });
            };
            tracing::debug!(%method, %url, attempt, ?delay, error = %error, "TAXII request failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, method: &Method, url: &Url, body: Option<&str>) -> Result<Reply> {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, media::TAXII);
        req = match &self.auth {
            Some(Auth::Basic { user, password }) => req.basic_auth(user, Some(password)),
            Some(Auth::Bearer(token)) => req.bearer_auth(token),
            None => req,
        };
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, media::TAXII).body(body.to_owned());
        }
        let transport = |source: reqwest::Error| Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            retried: 0,
            source,
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            let limit = self.cfg.max_response_bytes;
            let too_large = || Error::TooLarge {
                url: url.to_string(),
                limit,
            };
            if resp.content_length().is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Reply {
                headers: resp.headers().clone(),
                body,
            });
        }
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        // The error body is informative only: read a bounded prefix, ignore read failures.
        while body.len() < MAX_ERROR_BODY {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        Err(Error::Server(Box::new(server_error(
            method, url, status, &headers, &body,
        ))))
    }

    /// GET a TAXII resource and parse it.
    async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        resource: &'static str,
    ) -> Result<(T, HeaderMap)> {
        let reply = self.execute(Method::GET, url, None).await?;
        let value = parse_taxii(url, resource, &reply)?;
        Ok((value, reply.headers))
    }

    /// `GET` a discovery resource (`https://host/taxii2/`).
    pub async fn discovery(&self, url: &str) -> Result<Discovery> {
        let url = endpoint_url(url)?;
        Ok(self.get_json(&url, "discovery").await?.0)
    }

    /// `GET` an API root resource.
    pub async fn api_root(&self, url: &str) -> Result<ApiRoot> {
        let url = endpoint_url(url)?;
        let (info, _) = self.get_json(&url, "api-root").await?;
        Ok(ApiRoot { url, info })
    }

    /// The API root at `url`, which is either an API root URL or a discovery URL; from a
    /// discovery resource, its `default` API root, or its only one. The API root must be
    /// on the discovery URL's origin (scheme, host, port): credentials are not sent
    /// anywhere a server names; give another origin's API root URL directly.
    pub async fn resolve_api_root(&self, url: &str) -> Result<ApiRoot> {
        let url = endpoint_url(url)?;
        let (value, _) = self
            .get_json::<serde_json::Value>(&url, "discovery or api-root")
            .await?;
        if value.get("versions").is_some() && value.get("max_content_length").is_some() {
            let info: ApiRootInfo =
                serde_json::from_value(value).map_err(|source| Error::Decode {
                    url: url.to_string(),
                    resource: "api-root",
                    source,
                })?;
            return Ok(ApiRoot { url, info });
        }
        let discovery: Discovery =
            serde_json::from_value(value).map_err(|source| Error::Decode {
                url: url.to_string(),
                resource: "discovery",
                source,
            })?;
        let failed = |message: String| Error::Discovery {
            url: url.to_string(),
            message,
        };
        let chosen = match (&discovery.default, discovery.api_roots.as_slice()) {
            (Some(d), _) => d.clone(),
            (None, [only]) => only.clone(),
            (None, []) => return Err(failed("the server lists no API root".into())),
            (None, many) => {
                return Err(failed(format!(
                    "no default API root; give one of these URLs: {}",
                    many.join(", ")
                )));
            }
        };
        let root = url
            .join(&chosen)
            .map_err(|e| failed(format!("API root {chosen:?} is not a URL: {e}")))?;
        if root.origin() != url.origin() {
            return Err(failed(format!(
                "API root {root} is on another origin; give its URL directly if it is trusted"
            )));
        }
        self.api_root(root.as_str()).await
    }

    /// Every collection of an API root the caller can see.
    pub async fn collections(&self, root: &ApiRoot) -> Result<Vec<Collection>> {
        let url = child(&root.url, &["collections"])?;
        let (list, _): (Collections, _) = self.get_json(&url, "collections").await?;
        list.collections
            .into_iter()
            .map(|info| {
                Ok(Collection {
                    api_root: root.url.clone(),
                    url: child(&root.url, &["collections", &info.id])?,
                    info,
                })
            })
            .collect()
    }

    /// One collection by id.
    pub async fn collection(&self, root: &ApiRoot, id: &str) -> Result<Collection> {
        let url = child(&root.url, &["collections", id])?;
        self.collection_at_url(url).await
    }

    /// The collection at a collection URL (`{api-root}/collections/{id}/`).
    pub async fn collection_at(&self, url: &str) -> Result<Collection> {
        self.collection_at_url(endpoint_url(url)?).await
    }

    async fn collection_at_url(&self, url: Url) -> Result<Collection> {
        let api_root = api_root_of(&url)?;
        let (info, _) = self.get_json(&url, "collection").await?;
        Ok(Collection {
            api_root,
            url,
            info,
        })
    }

    /// A collection by id, else by alias, else by title (when exactly one has it).
    pub async fn find_collection(&self, root: &ApiRoot, name: &str) -> Result<Collection> {
        let all = self.collections(root).await?;
        let by = |f: &dyn Fn(&CollectionInfo) -> bool| {
            let mut found: Vec<&Collection> = all.iter().filter(|c| f(&c.info)).collect();
            (found.len() == 1).then(|| found.remove(0).clone())
        };
        by(&|c| c.id == name)
            .or_else(|| by(&|c| c.alias.as_deref() == Some(name)))
            .or_else(|| by(&|c| c.title == name))
            .ok_or_else(|| Error::CollectionNotFound {
                api_root: root.url.to_string(),
                name: name.to_owned(),
                available: all
                    .iter()
                    .map(|c| match &c.info.alias {
                        Some(a) => format!("{a} ({})", c.info.id),
                        None => c.info.id.clone(),
                    })
                    .collect(),
            })
    }

    fn pages<T>(&self, url: Url, filters: &Filters, resource: &'static str) -> Pages<'_, T> {
        Pages {
            client: self,
            url,
            filters: filters.clone(),
            resource,
            cursor: Cursor::Start,
            empty_pages: 0,
            _items: PhantomData,
        }
    }

    fn readable(col: &Collection) -> Result<()> {
        if col.info.can_read {
            Ok(())
        } else {
            Err(Error::NotPermitted {
                collection: col.url.to_string(),
                action: "readable",
            })
        }
    }

    fn paged<T>(
        &self,
        col: &Collection,
        segments: &[&str],
        filters: &Filters,
        resource: &'static str,
    ) -> Pages<'_, T> {
        let mut pages = self.pages(col.url.clone(), filters, resource);
        match Self::readable(col).and_then(|()| child(&col.url, segments)) {
            Ok(url) => pages.url = url,
            Err(e) => pages.cursor = Cursor::Failed(e.to_string()),
        }
        pages
    }

    /// The objects of a collection (`GET .../objects/`), page by page, each object as its
    /// raw JSON text. `filters` may use every filter (`limit` is the page size asked for).
    pub fn objects(&self, col: &Collection, filters: &Filters) -> Pages<'_, Box<RawValue>> {
        self.paged(col, &["objects"], filters, "envelope")
    }

    /// The manifest of a collection (`GET .../manifest/`), page by page.
    pub fn manifest(&self, col: &Collection, filters: &Filters) -> Pages<'_, ManifestRecord> {
        self.paged(col, &["manifest"], filters, "manifest")
    }

    /// The versions of one object (`GET .../objects/{id}/`), page by page; filters:
    /// `added_after`, `limit`, `match[version]`, `match[spec_version]`.
    pub fn object(
        &self,
        col: &Collection,
        id: &str,
        filters: &Filters,
    ) -> Pages<'_, Box<RawValue>> {
        self.paged(col, &["objects", id], filters, "envelope")
    }

    /// The version timestamps of one object (`GET .../objects/{id}/versions/`), page by
    /// page; filters: `added_after`, `limit`, `match[spec_version]`.
    pub fn versions(&self, col: &Collection, id: &str, filters: &Filters) -> Pages<'_, String> {
        self.paged(col, &["objects", id, "versions"], filters, "versions")
    }

    /// Deletes an object (`DELETE .../objects/{id}/`); filters: `match[version]`,
    /// `match[spec_version]` (the server's default otherwise).
    pub async fn delete_object(&self, col: &Collection, id: &str, filters: &Filters) -> Result<()> {
        let url = with_filters(&child(&col.url, &["objects", id])?, filters);
        self.execute(Method::DELETE, &url, None).await?;
        Ok(())
    }

    /// Posts one envelope of objects (`POST .../objects/`) and returns the status the
    /// server answered with, which may still be pending. Each object is written as given
    /// (its raw JSON text). There must be at least one object, and the envelope must fit
    /// the API root's `max_content_length` (the caller splits).
    pub async fn post_objects<'o>(
        &self,
        col: &Collection,
        objects: impl IntoIterator<Item = &'o RawValue>,
    ) -> Result<Status> {
        if !col.info.can_write {
            return Err(Error::NotPermitted {
                collection: col.url.to_string(),
                action: "writable",
            });
        }
        let mut body = String::new();
        let mut objects = objects.into_iter().map(RawValue::get).peekable();
        if objects.peek().is_none() {
            return Err(Error::Usage(
                "no objects to add (TAXII forbids empty envelopes)".into(),
            ));
        }
        write_envelope(&mut body, false, None, objects);
        let url = child(&col.url, &["objects"])?;
        let reply = self.execute(Method::POST, &url, Some(&body)).await?;
        parse_taxii(&url, "status", &reply)
    }

    /// [`Client::post_objects`], then [`Client::wait_status`]: the final status.
    pub async fn add_objects<'o>(
        &self,
        col: &Collection,
        objects: impl IntoIterator<Item = &'o RawValue>,
    ) -> Result<Status> {
        let status = self.post_objects(col, objects).await?;
        self.wait_status(&col.api_root, status).await
    }

    /// `GET {api-root}/status/{id}/`.
    pub async fn status(&self, api_root: &Url, id: &str) -> Result<Status> {
        let url = child(api_root, &["status", id])?;
        Ok(self.get_json(&url, "status").await?.0)
    }

    /// Polls a status until it is `complete` (or [`ClientBuilder::status_timeout`]
    /// passes: [`Error::StatusTimeout`] with the last status seen). Every status seen must
    /// be consistent ([`Status::is_consistent`]).
    pub async fn wait_status(&self, api_root: &Url, mut status: Status) -> Result<Status> {
        let start = Instant::now();
        let mut interval = Duration::from_millis(100);
        loop {
            if !status.is_consistent() {
                return Err(Error::InconsistentStatus {
                    status: Box::new(status),
                });
            }
            if status.status == StatusState::Complete {
                return Ok(status);
            }
            let waited = start.elapsed();
            if waited >= self.cfg.status_timeout {
                return Err(Error::StatusTimeout {
                    status: Box::new(status),
                    waited,
                });
            }
            tokio::time::sleep(interval.min(self.cfg.status_timeout - waited)).await;
            interval = (interval * 2).min(MAX_POLL_INTERVAL);
            status = self.status(api_root, &status.id).await?;
        }
    }
}

/// Checks the media type of a successful reply and parses its body.
fn parse_taxii<T: DeserializeOwned>(url: &Url, resource: &'static str, reply: &Reply) -> Result<T> {
    let content_type = header_text(&reply.headers, CONTENT_TYPE.as_str());
    if !media::is_taxii_content(content_type.as_deref()) {
        return Err(Error::ContentType {
            url: url.to_string(),
            expected: media::TAXII,
            found: content_type,
        });
    }
    serde_json::from_slice(&reply.body).map_err(|source| Error::Decode {
        url: url.to_string(),
        resource,
        source,
    })
}

/// A typed error from a non-2xx response.
fn server_error(
    method: &Method,
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ServerError {
    let taxii = serde_json::from_slice::<TaxiiError>(body).ok();
    let (title, description) = match &taxii {
        Some(e) => (e.title.clone(), e.description.clone()),
        None => {
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(300)
                .collect();
            let text = text.trim();
            (
                status.canonical_reason().unwrap_or("error").to_owned(),
                (!text.is_empty()).then(|| text.to_owned()),
            )
        }
    };
    ServerError {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        title,
        description,
        error: taxii,
        retry_after: header_text(headers, RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(&v, std::time::SystemTime::now())),
        location: status
            .is_redirection()
            .then(|| header_text(headers, LOCATION.as_str()))
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Endpoint;

    #[test]
    fn filters_survive_the_query_string() {
        // Each query, parsed as a server would, encoded by the client and parsed again,
        // gives the same filters.
        for q in [
            "",
            "limit=10",
            "added_after=2024-01-02T03:04:05.123456Z&limit=3",
            "next=abc.def%2B%2F%3D",
            "match[id]=indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f,malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
            "match[type]=indicator,x-custom-thing",
            "match[version]=all",
            "match[version]=first,last,2020-01-01T00:00:00.000Z",
            "match[spec_version]=2.0,2.1",
            "added_after=2016-11-04T03:04:05Z&match[version]=last",
        ] {
            let f = Filters::parse(q, Endpoint::Objects).unwrap();
            let url = with_filters(
                &Url::parse("https://h/r/collections/c/objects/").unwrap(),
                &f,
            );
            let back = Filters::parse(url.query().unwrap_or(""), Endpoint::Objects).unwrap();
            assert_eq!(back, f, "{q} -> {url}");
        }
    }

    #[test]
    fn added_after_keeps_the_header_precision() {
        let f = Filters {
            added_after: Some(Timestamp::parse("2024-01-02T03:04:05.123456Z").unwrap()),
            ..Filters::default()
        };
        let url = with_filters(&Url::parse("http://h/x/").unwrap(), &f);
        assert_eq!(
            url.query(),
            Some("added_after=2024-01-02T03%3A04%3A05.123456Z")
        );
    }

    #[test]
    fn endpoint_urls() {
        for (input, want) in [
            ("https://h/taxii2", Some("https://h/taxii2/")),
            ("https://h/api1/", Some("https://h/api1/")),
            (
                "http://127.0.0.1:8421/default#x",
                Some("http://127.0.0.1:8421/default/"),
            ),
            ("ftp://h/x/", None),
            ("https://h/x/?a=1", None),
            ("not a url", None),
        ] {
            assert_eq!(
                endpoint_url(input).ok().map(|u| u.to_string()).as_deref(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn child_urls_encode_and_refuse_traversal() {
        let root = Url::parse("https://h/api1/").unwrap();
        assert_eq!(
            child(&root, &["collections", "a/b c"]).unwrap().as_str(),
            "https://h/api1/collections/a%2Fb%20c/"
        );
        for bad in ["", ".", ".."] {
            assert!(child(&root, &["collections", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_root_of_collection_urls() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            api_root_of(&u(
                "https://h/a/b/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/"
            ))
            .unwrap(),
            u("https://h/a/b/")
        );
        for bad in [
            "https://h/collections/",
            "https://h/a/objects/x/",
            "https://h/a/collections/x",
        ] {
            assert!(api_root_of(&u(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let client = Client::builder().build().unwrap();
        for (url, ok) in [
            ("http://127.0.0.1:1/", true),
            ("http://127.8.9.10/", true),
            ("http://localhost/", true),
            ("http://[::1]/", true),
            ("http://192.0.2.1/", false),
            ("http://node.example/", false),
            ("https://node.example/", true),
        ] {
            assert_eq!(
                client.check_url(&Url::parse(url).unwrap()).is_ok(),
                ok,
                "{url}"
            );
        }
        let insecure = Client::builder().insecure_http(true).build().unwrap();
        assert!(
            insecure
                .check_url(&Url::parse("http://node.example/").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06T08:49:37Z
        for (v, want) in [
            ("0", Some(0)),
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:50:07 GMT", Some(30)),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(0)), // in the past: no wait
            ("Sun, 06 Foo 1994 08:50:07 GMT", None),
            ("-1", None),
            ("soon", None),
        ] {
            assert_eq!(parse_retry_after(v, now).map(|d| d.as_secs()), want, "{v}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for attempt in 0..8 {
            let full = (base * (1 << attempt)).min(cap);
            for _ in 0..20 {
                let d = backoff(base, cap, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(backoff(Duration::ZERO, cap, 3), Duration::ZERO);
    }

    fn server(status: u16, retry_after: Option<u64>) -> Error {
        Error::Server(Box::new(ServerError {
            method: "GET".into(),
            url: "u".into(),
            status,
            title: "t".into(),
            description: None,
            error: None,
            retry_after: retry_after.map(Duration::from_secs),
            location: None,
        }))
    }

    #[test]
    fn which_failures_are_retried() {
        let cfg = Config {
            max_response_bytes: 1,
            retries: 3,
            backoff: Duration::from_millis(10),
            max_retry_wait: Duration::from_secs(5),
            status_timeout: Duration::ZERO,
            insecure_http: false,
        };
        // (status, Retry-After, retried for GET/DELETE, retried for POST)
        for (status, after, idempotent, post) in [
            (429, None, true, true),
            (503, None, true, true),
            (502, None, true, false),
            (504, None, true, false),
            (500, None, false, false),
            (400, None, false, false),
            (401, None, false, false),
            (404, None, false, false),
            (413, None, false, false),
            (429, Some(2), true, true),
            (503, Some(60), false, false), // longer than max_retry_wait: give up now
        ] {
            let e = server(status, after);
            for (method, want) in [
                (Method::GET, idempotent),
                (Method::DELETE, idempotent),
                (Method::POST, post),
            ] {
                let d = retry_delay(&cfg, &method, &e, 0);
                assert_eq!(d.is_some(), want, "{status} {after:?} {method}");
                if let (Some(d), Some(a)) = (d, after) {
                    assert_eq!(d, Duration::from_secs(a));
                }
            }
        }
        let large = Error::TooLarge {
            url: "u".into(),
            limit: 1,
        };
        assert!(retry_delay(&cfg, &Method::GET, &large, 0).is_none());
    }

    #[test]
    fn server_errors_are_typed() {
        let url = Url::parse("https://h/x/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        let body = br#"{"title":"Unauthorized","description":"bad token","http_status":"401"}"#;
        let e = server_error(&Method::GET, &url, StatusCode::UNAUTHORIZED, &headers, body);
        assert_eq!((e.status, e.title.as_str()), (401, "Unauthorized"));
        assert_eq!(e.description.as_deref(), Some("bad token"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.error.unwrap().http_status.as_deref(), Some("401"));

        let e = server_error(
            &Method::POST,
            &url,
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>\n<b>upstream down</b></html>",
        );
        assert_eq!(e.title, "Bad Gateway");
        assert_eq!(
            e.description.as_deref(),
            Some("<html> <b>upstream down</b></html>")
        );
        assert!(e.error.is_none());
        assert_eq!(
            e.to_string(),
            "POST https://h/x/: HTTP 502: Bad Gateway: <html> <b>upstream down</b></html>"
        );
    }

    #[test]
    fn paging_continues_after_the_last_date_added() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        assert!(matches!(
            continue_after(None, Some("2024-01-01T00:00:00.000001Z")),
            Cursor::AddedAfter(x) if x == t("2024-01-01T00:00:00.000001Z")
        ));
        assert!(matches!(
            continue_after(
                Some(t("2024-01-01T00:00:00Z")),
                Some("2024-01-01T00:00:00.000001Z")
            ),
            Cursor::AddedAfter(_)
        ));
        for (prev, last) in [
            (None, None),
            (None, Some("yesterday")),
            (
                Some("2024-01-01T00:00:00.000001Z"),
                Some("2024-01-01T00:00:00.000001Z"),
            ),
            (Some("2024-01-02T00:00:00Z"), Some("2024-01-01T00:00:00Z")),
        ] {
            assert!(
                matches!(continue_after(prev.map(t), last), Cursor::Failed(_)),
                "{prev:?} {last:?}"
            );
        }
    }

    #[test]
    fn pages_keep_objects_raw_and_read_next_and_versions() {
        let page: WirePage<Box<RawValue>> = serde_json::from_str(
            r#"{"more":true,"next":7,"objects":[{"b":1,  "a":[1.50]}, {"x":"\u00e9"}]}"#,
        )
        .unwrap();
        assert!(page.more);
        assert_eq!(page.next, Some(serde_json::json!(7)));
        assert_eq!(page.objects[0].get(), r#"{"b":1,  "a":[1.50]}"#);
        assert_eq!(page.objects[1].get(), r#"{"x":"\u00e9"}"#);
        let v: WirePage<String> =
            serde_json::from_str(r#"{"versions":["2020-01-01T00:00:00.000Z"]}"#).unwrap();
        assert_eq!(v.objects.len(), 1);
        let empty: WirePage<ManifestRecord> = serde_json::from_str("{}").unwrap();
        assert!(!empty.more && empty.objects.is_empty() && empty.next.is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let text = format!(
            "{:?} {:?}",
            Auth::basic("alice", "hunter2"),
            Client::builder()
                .auth(Auth::bearer("phx_secret"))
                .build()
                .unwrap()
        );
        assert!(
            !text.contains("hunter2") && !text.contains("phx_secret"),
            "{text}"
        );
        assert!(text.contains("alice"));
    }

    #[test]
    fn bad_certificate_files_are_config_errors() {
        let dir = std::env::temp_dir().join(format!("phalanx-taxii-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for builder in [
            Client::builder().ca(&empty),
            Client::builder().ca(dir.join("missing.pem")),
            Client::builder().client_cert(&empty, &empty),
        ] {
            assert!(matches!(builder.build(), Err(Error::Config(_))));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
