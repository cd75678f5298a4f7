//! # phalanx-server
//!
//! The HTTP front end of a node, and the only crate that knows axum: the TAXII 2.1
//! routes, authentication (HTTP Basic, bearer tokens), content negotiation, request
//! limits, TLS, `/healthz` and Prometheus `/metrics`. Every route calls the node's
//! service layer ([`phalanx_node::Node`]); none reads the store for objects itself.

mod metrics;
mod tls;

pub use metrics::Metrics;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use http_body_util::BodyExt;
use phalanx_node::{Caller, Node, NodeError, ObjectPage, now_micros};
use phalanx_taxii::{TaxiiError, media, taxii_time};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Shared state of the routes.
#[derive(Clone)]
pub struct App {
    node: Arc<Node>,
    metrics: Arc<Metrics>,
}

/// How to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address and port.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; without them, plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: bool,
}

/// An error response: a TAXII error body with the matching status.
pub struct ApiError {
    status: StatusCode,
    body: Box<TaxiiError>,
    challenge: bool,
}

impl ApiError {
    fn new(status: StatusCode, title: &str, description: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(TaxiiError::new(status.as_u16(), title, description)),
            challenge: status == StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let (status, title) = match &e {
            NodeError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Authentication required"),
            NodeError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            NodeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            NodeError::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable content")
            }
            NodeError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{e}");
        }
        let description = match e {
            NodeError::Unauthenticated(m)
            | NodeError::Forbidden(m)
            | NodeError::NotFound(m)
            | NodeError::BadRequest(m)
            | NodeError::Unprocessable(m)
            | NodeError::Internal(m) => m,
        };
        ApiError::new(status, title, description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media::TAXII));
        if self.challenge {
            for c in [
                "Basic realm=\"phalanx\", charset=\"UTF-8\"",
                "Bearer realm=\"phalanx\"",
            ] {
                r.headers_mut()
                    .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

/// A TAXII request whose Accept header asks for TAXII, with its credentials. They are
/// checked inside the handler's one blocking call ([`Credentials::caller`]), so a
/// request costs one hop to a blocking thread, not two.
pub struct Taxii(pub Credentials);

/// The `Authorization` header of a request, unchecked, and the fingerprint of the
/// client certificate of its connection.
pub struct Credentials(Option<Result<String, ()>>, Option<String>);

impl Credentials {
    /// Whether checking these credentials is cheap (a token: one indexed lookup), unlike
    /// a password (argon2, deliberately slow, on a cache miss).
    fn is_cheap(&self) -> bool {
        matches!(&self.0, Some(Ok(v)) if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
    }

    /// Authenticates: the caller, or 401.
    pub fn caller(&self, node: &Node) -> Result<Caller, NodeError> {
        match &self.0 {
            // Without an Authorization header, a client certificate registered to a
            // partner authenticates as that partner.
            None => match &self.1 {
                Some(fp) => node.authenticate_certificate(fp),
                None => Err(NodeError::Unauthenticated(
                    "send HTTP Basic credentials or a bearer token".into(),
                )),
            },
            Some(Err(())) => Err(NodeError::Unauthenticated(
                "the Authorization header is not ASCII".into(),
            )),
            Some(Ok(v)) => authenticate(node, v),
        }
    }
}

impl FromRequestParts<App> for Taxii {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Self, Self::Rejection> {
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        if !media::accepts_taxii(accept) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
                format!(
                    "this server answers with {}; the Accept header {} does not allow it",
                    media::TAXII,
                    accept.map_or("is missing and".to_owned(), |a| format!("{a:?}"))
                ),
            ));
        }
        Ok(Taxii(Credentials::of(parts)))
    }
}

impl Credentials {
    /// The credentials a request carries.
    fn of(parts: &Parts) -> Credentials {
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned).map_err(|_| ()));
        let cert = parts
            .extensions
            .get::<axum::extract::ConnectInfo<tls::PeerCert>>()
            .and_then(|c| c.0.0.clone());
        Credentials(auth, cert)
    }
}

impl FromRequestParts<App> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Self, Self::Rejection> {
        Ok(Credentials::of(parts))
    }
}

fn authenticate(node: &Node, header: &str) -> Result<Caller, NodeError> {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        node.authenticate_token(rest)
    } else if scheme.eq_ignore_ascii_case("basic") {
        let bad = || NodeError::Unauthenticated("malformed Basic credentials".into());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        node.authenticate_password(user, password, now_micros())
    } else {
        Err(NodeError::Unauthenticated(format!(
            "unsupported authentication scheme {scheme:?}; use Basic or Bearer"
        )))
    }
}

/// Node calls running at once: a few per core. More would not go faster (the work is
/// CPU and SQLite), but would open more SQLite connections and queue inside SQLite
/// instead of here (measured: 32 concurrent GETs churned the read-connection pool,
/// re-parsing the schema on every new connection).
fn node_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new((2 * cores).max(4))
    })
}

/// Runs a short node call (an indexed lookup or two) right on the async worker when its
/// credentials are cheap to check: the hop to a blocking thread and back costs more than
/// the call (measured: single-object GETs, 32 clients). Anything else goes to
/// [`blocking`].
async fn quick<T: Send + 'static>(
    cred: Credentials,
    node: Arc<Node>,
    f: impl FnOnce(&Node, Caller) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ApiError> {
    if cred.is_cheap() {
        let caller = cred.caller(&node).map_err(ApiError::from)?;
        return f(&node, caller).map_err(ApiError::from);
    }
    as_caller(cred, node, f).await
}

/// Authenticates and runs a node call on the blocking pool.
async fn as_caller<T: Send + 'static>(
    cred: Credentials,
    node: Arc<Node>,
    f: impl FnOnce(&Node, Caller) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || {
        let caller = cred.caller(&node)?;
        f(&node, caller)
    })
    .await
}

/// Runs blocking node work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = node_permits().acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the server is stopping",
        )
    })?;
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            format!("request handler failed: {e}"),
        )),
    }
}

fn taxii_json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media::TAXII));
    r
}

fn json<T: serde::Serialize>(value: &T) -> ApiResult {
    let body = serde_json::to_vec(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    Ok(taxii_json(StatusCode::OK, body))
}

/// A page response with the `X-TAXII-Date-Added-First/Last` headers.
fn paged(page: &ObjectPage, body: Vec<u8>) -> Response {
    let mut r = taxii_json(StatusCode::OK, body);
    if let Some((first, last)) = page.date_range() {
        for (name, us) in [
            ("x-taxii-date-added-first", first),
            ("x-taxii-date-added-last", last),
        ] {
            if let Ok(v) = HeaderValue::from_str(&taxii_time(us)) {
                r.headers_mut().insert(name, v);
            }
        }
    }
    r
}

/// Every route the server answers and its methods. The egress test walks all of them; a
/// unit test checks that this list and [`router`] agree.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/taxii2/", &["GET"]),
    ("/{root}/", &["GET"]),
    ("/{root}/status/{id}/", &["GET"]),
    ("/{root}/collections/", &["GET"]),
    ("/{root}/collections/{cid}/", &["GET"]),
    ("/{root}/collections/{cid}/manifest/", &["GET"]),
    ("/{root}/collections/{cid}/objects/", &["GET", "POST"]),
    (
        "/{root}/collections/{cid}/objects/{oid}/",
        &["GET", "DELETE"],
    ),
    (
        "/{root}/collections/{cid}/objects/{oid}/versions/",
        &["GET"],
    ),
    ("/admin/policy/explain", &["GET"]),
    ("/detect/lines", &["POST"]),
    ("/healthz", &["GET"]),
    ("/metrics", &["GET"]),
];

/// Builds the router.
pub fn router(node: Arc<Node>, metrics: Arc<Metrics>) -> Router {
    let app = App { node, metrics };
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/{root}/", get(api_root))
        .route("/{root}/status/{id}/", get(status))
        .route("/{root}/collections/", get(collections))
        .route("/{root}/collections/{cid}/", get(collection))
        .route("/{root}/collections/{cid}/manifest/", get(manifest))
        .route(
            "/{root}/collections/{cid}/objects/",
            get(objects).post(add_objects),
        )
        .route(
            "/{root}/collections/{cid}/objects/{oid}/",
            get(object).delete(delete_object),
        )
        .route(
            "/{root}/collections/{cid}/objects/{oid}/versions/",
            get(versions),
        )
        .route("/admin/policy/explain", get(explain))
        .route("/detect/lines", axum::routing::post(detect_lines))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are limited per API root (max_content_length) in the handler.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "no such TAXII endpoint (TAXII paths end in '/'; discovery is /taxii2/)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this endpoint does not take that HTTP method",
    )
}

async fn healthz(State(app): State<App>) -> Response {
    let node = app.node.clone();
    match blocking(move || node.discovery()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response(),
    }
}

async fn discovery(State(app): State<App>, Taxii(cred): Taxii) -> ApiResult {
    json(&as_caller(cred, app.node.clone(), move |node, _| node.discovery()).await?)
}

async fn api_root(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path(root): Path<String>,
) -> ApiResult {
    json(&as_caller(cred, app.node.clone(), move |node, _| node.api_root(&root)).await?)
}

async fn status(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, id)): Path<(String, String)>,
) -> ApiResult {
    json(
        &as_caller(cred, app.node.clone(), move |node, caller| {
            node.status(&caller, &root, &id, now_micros())
        })
        .await?,
    )
}

/// `GET /admin/policy/explain?object=ID&partner=P[&purpose=read][&at=RFC3339]`: the
/// policy decision and its rule chain, for administrators (plain JSON, not TAXII).
async fn explain(
    State(app): State<App>,
    cred: Credentials,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> ApiResult {
    let mut object = None;
    let mut partner = None;
    let mut purpose = phalanx_policy::Purpose::Read;
    let mut at = None;
    let bad = |m: String| ApiError::from(NodeError::BadRequest(m));
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "object" => object = Some(v.into_owned()),
            "partner" => partner = Some(v.into_owned()),
            "purpose" => {
                purpose = phalanx_policy::Purpose::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "query parameter purpose: {v:?} is not read, federate, onward-share or export-for-blocking"
                    ))
                })?;
            }
            "at" => {
                at = Some(
                    phalanx_stix::Timestamp::parse(&v)
                        .map_err(|e| bad(format!("query parameter at: {e}")))?
                        .as_micros(),
                );
            }
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    let object = object.ok_or_else(|| bad("query parameter object is required".into()))?;
    let partner = partner.ok_or_else(|| bad("query parameter partner is required".into()))?;
    let found = as_caller(cred, app.node.clone(), move |node, caller| {
        if !caller.admin {
            return Err(NodeError::Forbidden(
                "policy explanations are for administrators".into(),
            ));
        }
        node.explain(&object, &partner, purpose, at.unwrap_or_else(now_micros))
    })
    .await?;
    let body: Vec<_> = found
        .iter()
        .map(phalanx_node::Explanation::to_json)
        .collect();
    Ok(axum::Json(body).into_response())
}

async fn collections(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path(root): Path<String>,
) -> ApiResult {
    json(
        &as_caller(cred, app.node.clone(), move |node, caller| {
            node.collections(&caller, &root)
        })
        .await?,
    )
}

async fn collection(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid)): Path<(String, String)>,
) -> ApiResult {
    json(
        &as_caller(cred, app.node.clone(), move |node, caller| {
            node.collection(&caller, &root, &cid)
        })
        .await?,
    )
}

async fn manifest(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let page = as_caller(cred, app.node.clone(), move |node, caller| {
        node.manifest(&caller, &root, &cid, q.as_deref().unwrap_or(""))
    })
    .await?;
    let body = serde_json::to_vec(&page.manifest()).unwrap_or_default();
    Ok(paged(&page, body))
}

async fn objects(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (page, body) = as_caller(cred, app.node.clone(), move |node, caller| {
        let page = node.objects(&caller, &root, &cid, q.as_deref().unwrap_or(""))?;
        let body = page.envelope();
        Ok((page, body))
    })
    .await?;
    Ok(paged(&page, body.into_bytes()))
}

async fn object(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (page, body) = quick(cred, app.node.clone(), move |node, caller| {
        let page = node.object(&caller, &root, &cid, &oid, q.as_deref().unwrap_or(""))?;
        let body = page.envelope();
        Ok((page, body))
    })
    .await?;
    Ok(paged(&page, body.into_bytes()))
}

async fn versions(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let page = as_caller(cred, app.node.clone(), move |node, caller| {
        node.versions(&caller, &root, &cid, &oid, q.as_deref().unwrap_or(""))
    })
    .await?;
    let body = serde_json::to_vec(&page.versions()).unwrap_or_default();
    Ok(paged(&page, body))
}

async fn delete_object(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    as_caller(cred, app.node.clone(), move |node, caller| {
        node.delete_object(&caller, &root, &cid, &oid, q.as_deref().unwrap_or(""))
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// A request body of at most `limit` bytes (`too_large` when longer).
async fn read_limited(
    body: Body,
    limit: u64,
    too_large: ApiError,
) -> Result<axum::body::Bytes, ApiError> {
    match http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large)
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// `POST /detect/lines?format=zeek|suricata|stix|json[&map=...]`: telemetry as JSON
/// lines, matched against the node's active indicators; the sightings are stored in the
/// `sightings` collection and returned with the line counters. For the node's own
/// organisation (its users and tokens); bodies up to the default API root's
/// max_content_length.
async fn detect_lines(
    State(app): State<App>,
    cred: Credentials,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Body,
) -> ApiResult {
    use phalanx_node::detection::TelemetryFormat;
    let bad = |m: String| ApiError::from(NodeError::BadRequest(m));
    let mut format = None;
    let mut map = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "format" => {
                format = Some(TelemetryFormat::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "query parameter format: {v:?} is not zeek, suricata, stix or json"
                    ))
                })?)
            }
            "map" => map = Some(v.into_owned()),
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    let format = format.ok_or_else(|| bad("query parameter format is required".into()))?;
    let node = app.node.clone();
    let (caller, limit) = blocking(move || {
        let caller = cred.caller(&node)?;
        Ok((
            caller,
            node.max_content_length(phalanx_node::DEFAULT_API_ROOT)?,
        ))
    })
    .await?;
    let too_large = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request too large",
        format!("the body exceeds {limit} bytes; send the telemetry in parts"),
    );
    let bytes = read_limited(body, limit, too_large).await?;
    let node = app.node.clone();
    let report =
        blocking(move || node.detect_lines(&caller, format, map.as_deref(), &bytes, now_micros()))
            .await?;
    let s = &report.stats;
    Ok(axum::Json(serde_json::json!({
        "lines": s.lines, "malformed": s.malformed, "too_long": s.too_long, "blank": s.blank,
        "hits": s.matching.hits,
        "errors": s.error_sample.iter().map(|e| serde_json::json!({"line": e.line, "message": e.message})).collect::<Vec<_>>(),
        "sightings": report.sightings,
    }))
    .into_response())
}

async fn add_objects(
    State(app): State<App>,
    Taxii(cred): Taxii,
    Path((root, cid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // Authenticate before anything else, and before reading a body.
    let node = app.node.clone();
    let root2 = root.clone();
    let (caller, limit) = blocking(move || {
        let caller = cred.caller(&node)?;
        Ok((caller, node.max_content_length(&root2)?))
    })
    .await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !media::is_taxii_content(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!(
                "POST bodies must be {}; got {}",
                media::TAXII,
                content_type.map_or("no Content-Type".to_owned(), |c| format!("{c:?}"))
            ),
        ));
    }
    let too_large = |n: Option<u64>| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request too large",
            format!(
                "the body{} exceeds this API root's max_content_length of {limit} bytes",
                n.map_or(String::new(), |n| format!(" ({n} bytes)"))
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit
    {
        return Err(too_large(Some(n)));
    }
    let bytes = read_limited(body, limit, too_large(None)).await?;
    let node = app.node.clone();
    let metrics = app.metrics.clone();
    let status = blocking(move || {
        let st = node.add_objects(&caller, &root, &cid, &bytes, now_micros())?;
        metrics.objects_added(st.success_count, st.failure_count);
        Ok(st)
    })
    .await?;
    let body = serde_json::to_vec(&status).unwrap_or_default();
    Ok(taxii_json(StatusCode::ACCEPTED, body))
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    node: Arc<Node>,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr, bool) + Send,
) -> anyhow::Result<()> {
    if opts.tls.is_none() && !opts.listen.ip().is_loopback() && !opts.insecure_http {
        anyhow::bail!(
            "refusing to serve plain HTTP on {}: give --tls-cert and --tls-key, listen on loopback, or pass --insecure-http",
            opts.listen
        );
    }
    let metrics = Arc::new(Metrics::new(node.clone()));
    let app = router(node.clone(), metrics);
    // Forget expired status resources and recall notices now and then.
    let purger = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let n = purger.clone();
            let _ = tokio::task::spawn_blocking(move || {
                n.purge_statuses(now_micros())?;
                n.purge_notices(now_micros())
            })
            .await;
        }
    });
    let tcp = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    let addr = tcp.local_addr()?;
    match opts.tls {
        None => {
            ready(addr, false);
            axum::serve(
                tcp,
                app.into_make_service_with_connect_info::<tls::PeerCert>(),
            )
            .with_graceful_shutdown(shutdown)
            .await?;
        }
        Some((cert, key)) => {
            let config = tls::server_config(&cert, &key)?;
            let listener = tls::TlsListener::new(tcp, config);
            ready(addr, true);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<tls::PeerCert>(),
            )
            .with_graceful_shutdown(shutdown)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A route added to the router but not to [`super::ROUTES`] would escape the egress
    /// test: every `.route(` in this file must name a listed path, and every listed path
    /// must be routed.
    #[test]
    fn routes_table_matches_the_router() {
        let src = include_str!("lib.rs");
        let body = &src[src.find("pub fn router(").expect("router")..];
        let body = &body[..body.find("\n}\n").expect("end of router")];
        let routed: Vec<&str> = body
            .split(".route(")
            .skip(1)
            .map(|r| r.split('"').nth(1).expect("a path literal"))
            .collect();
        let listed: Vec<&str> = super::ROUTES.iter().map(|(p, _)| *p).collect();
        assert_eq!(routed, listed);
    }
}
