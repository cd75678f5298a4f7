//! # phalanx-node
//!
//! The service layer between the front ends (the TAXII server, the CLI) and the store:
//! authentication, the TAXII 2.1 operations, and **the single egress function**
//! ([`Node::egress`]) that every object leaving the node passes through. No front end
//! reads objects from the store itself.
//!
//! Everything here is synchronous; the server runs it on blocking threads.

pub mod attest;
pub mod auth;
pub mod detection;
pub mod federation;
pub mod recall;
pub mod sharing;

pub use auth::Caller;
pub use sharing::{AgreementVersion, Explanation, Purpose};

use hmac::{Hmac, Mac};
use phalanx_stix::{StixObject, ValidObject, validate};
use phalanx_store::{
    Access, Collection, IngestOutcome, NewCollection, ObjectQuery, Principal, PrincipalKind, Store,
    StoreError, StoredObject, StoredStatus, VersionFilter,
};
use phalanx_taxii::query::Endpoint;
use phalanx_taxii::{
    ApiRootInfo, CollectionInfo, Collections, Discovery, EnvelopeIn, Filters, Manifest,
    ManifestRecord, Status, StatusDetail, StatusState, Versions, media, taxii_time,
};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Name of the API root a fresh node creates.
pub const DEFAULT_API_ROOT: &str = "default";
/// Alias of the collection a fresh node creates.
pub const DEFAULT_COLLECTION: &str = "default";

/// Why an operation failed; the server maps each kind to its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No valid credentials (401).
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such thing, or not visible to the caller (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Malformed request (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Well-formed but unprocessable content (422).
    #[error("unprocessable content: {0}")]
    Unprocessable(String),
    /// The store failed (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => NodeError::NotFound(m),
            e => NodeError::Internal(e.to_string()),
        }
    }
}

impl From<phalanx_taxii::QueryError> for NodeError {
    fn from(e: phalanx_taxii::QueryError) -> Self {
        NodeError::BadRequest(e.to_string())
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, NodeError>;

/// Node settings that shape the TAXII service.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Discovery `title`.
    pub title: String,
    /// Discovery `description`.
    pub description: Option<String>,
    /// Discovery `contact`.
    pub contact: Option<String>,
    /// Page size when the client gives no `limit`.
    pub default_page: usize,
    /// Largest page the server returns whatever the client asks.
    pub max_page: usize,
    /// Overrides every API root's `max_content_length` (bytes).
    pub max_content_length: Option<u64>,
    /// Most objects in one posted envelope.
    pub max_objects_per_envelope: usize,
    /// Deepest JSON nesting accepted inside an object.
    pub max_depth: usize,
    /// How long status resources are kept (µs; TAXII asks for at least 24 hours).
    pub status_retention_us: i64,
    /// How long recall notices are kept for partners that pull (µs; default 90 days): a
    /// partner whose pull lags longer misses the recall.
    pub notice_retention_us: i64,
    /// TLP and PAP assumed for objects without those markings (default AMBER/AMBER).
    pub sharing: phalanx_policy::Defaults,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            title: "Phalanx TAXII 2.1 server".into(),
            description: None,
            contact: None,
            default_page: 1000,
            max_page: 10_000,
            max_content_length: None,
            max_objects_per_envelope: 100_000,
            max_depth: 64,
            status_retention_us: 7 * 24 * 3600 * 1_000_000,
            notice_retention_us: 90 * 24 * 3600 * 1_000_000,
            sharing: phalanx_policy::Defaults::default(),
        }
    }
}

/// What a paged read lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Objects,
    Manifest,
    Object,
    Versions,
}

/// One page of objects or manifest records, after egress.
#[derive(Debug, Clone)]
pub struct ObjectPage {
    /// The objects, ascending `date_added`.
    pub items: Vec<StoredObject>,
    /// More match after this page.
    pub more: bool,
    /// Token for the next page (always present when `more`).
    pub next: Option<String>,
}

impl ObjectPage {
    /// `date_added` of the first and last item (the `X-TAXII-Date-Added-*` headers).
    pub fn date_range(&self) -> Option<(i64, i64)> {
        Some((
            self.items.first()?.date_added,
            self.items.last()?.date_added,
        ))
    }

    /// The manifest resource of this page.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            more: self.more,
            next: self.next.clone(),
            objects: self
                .items
                .iter()
                .map(|o| ManifestRecord {
                    id: o.id.clone(),
                    date_added: taxii_time(o.date_added),
                    version: o.version.to_string(),
                    media_type: Some(media::STIX.to_owned()),
                })
                .collect(),
        }
    }

    /// The versions resource of this page.
    pub fn versions(&self) -> Versions {
        Versions {
            more: self.more,
            next: self.next.clone(),
            versions: self.items.iter().map(|o| o.version.to_string()).collect(),
        }
    }

    /// The envelope of this page: the stored JSON of each object, unchanged.
    pub fn envelope(&self) -> String {
        let mut out = String::with_capacity(self.items.iter().map(|o| o.raw.len() + 1).sum());
        phalanx_taxii::write_envelope(
            &mut out,
            self.more,
            self.next.as_deref(),
            self.items.iter().map(|o| o.raw.as_str()),
        );
        out
    }
}

/// What bootstrapping a fresh node created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The default collection, when it was created now.
    pub collection: Option<Collection>,
    /// `(user, password)` of the administrator, when it was created now: shown once.
    pub admin: Option<(String, String)>,
}

/// Most stored rows one page request reads while skipping objects the caller may not see.
const SCAN_BUDGET: usize = 100_000;

/// How long a successful password check is remembered (argon2 is deliberately slow;
/// TAXII clients send Basic credentials with every request).
const PASSWORD_CACHE_US: i64 = 60 * 1_000_000;

/// The node.
pub struct Node {
    store: Arc<dyn Store>,
    cfg: NodeConfig,
    /// Key of the MACs on `next` tokens.
    next_key: Vec<u8>,
    /// sha256(user, password) → (caller, verified at).
    password_cache: Mutex<HashMap<String, (Caller, i64)>>,
    /// The node's own organisation id.
    own_org: String,
    /// The policy and the store's policy generation it was built at.
    policy_cache: Mutex<Option<sharing::Snapshot>>,
    /// The detector's index, kept up to date with the store.
    detection: detection::Detection,
    /// Called after every change this node makes to stored objects (see
    /// [`Node::on_change`]).
    listeners: Mutex<Vec<Listener>>,
}

/// A callback run after the node stored or deleted objects.
type Listener = Box<dyn Fn() + Send + Sync>;

/// Organisation id of a node that was not given one.
pub const DEFAULT_ORG: &str = "local";

impl Node {
    /// Registers `f` to run (on the writing thread, so it must be quick) after every
    /// change this node makes to stored objects: a TAXII POST or DELETE, a pulled page,
    /// stored sightings. Push feeds use it to send at once instead of at their next look
    /// (changes made by another process over the same store are not seen here).
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    pub(crate) fn changed(&self) {
        for f in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            f();
        }
    }

    /// Opens the service over a store.
    pub fn new(store: Arc<dyn Store>, cfg: NodeConfig) -> Result<Node> {
        // Read first: opening a node (every CLI command) should not take the write lock
        // once the key exists.
        let key = "taxii.next_key";
        let next_key = match store.setting(key)? {
            Some(k) => k,
            None => store.init_setting(key, &auth::hex(&auth::random_bytes::<32>()))?,
        };
        let own_org = match store.setting("node.org")? {
            Some(o) => o,
            None => store.init_setting("node.org", DEFAULT_ORG)?,
        };
        Ok(Node {
            store,
            cfg,
            next_key: next_key.into_bytes(),
            password_cache: Mutex::new(HashMap::new()),
            own_org,
            policy_cache: Mutex::new(None),
            detection: detection::Detection::default(),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// The store (for the CLI's administrative commands).
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// Makes a fresh node usable: the default API root, a default collection when
    /// there is none, and an administrator when there is no user at all.
    pub fn bootstrap(&self, now_us: i64) -> Result<Bootstrap> {
        self.store
            .ensure_api_root(DEFAULT_API_ROOT, "Default API root")?;
        let collection = if self.store.collections(None)?.is_empty() {
            let mut c = NewCollection::named(DEFAULT_COLLECTION);
            c.title = "Default collection".into();
            Some(self.store.create_collection(DEFAULT_API_ROOT, &c)?)
        } else {
            None
        };
        let has_user = self
            .store
            .principals()?
            .iter()
            .any(|p| p.kind == PrincipalKind::User);
        let admin = if has_user {
            None
        } else {
            let password = auth::new_password();
            self.add_user(
                "admin",
                &self.own_org,
                &password,
                Access::All,
                Access::All,
                true,
                now_us,
            )?;
            Some(("admin".to_owned(), password))
        };
        Ok(Bootstrap { collection, admin })
    }

    /// Creates a user with an argon2-hashed password.
    #[allow(clippy::too_many_arguments)]
    pub fn add_user(
        &self,
        name: &str,
        org: &str,
        password: &str,
        read: Access,
        write: Access,
        admin: bool,
        now_us: i64,
    ) -> Result<Principal> {
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
            return Err(NodeError::BadRequest(format!(
                "user name {name:?}: must be non-empty, without ':' or control characters"
            )));
        }
        if password.is_empty() {
            return Err(NodeError::BadRequest("empty password".into()));
        }
        let p = auth::principal(
            PrincipalKind::User,
            format!("user:{name}"),
            name,
            org,
            auth::hash_password(password),
            read,
            write,
            admin,
            now_us,
        );
        self.store.add_principal(&p).map_err(|e| match e {
            StoreError::Exists(_) => NodeError::BadRequest(format!("user {name:?} exists")),
            e => e.into(),
        })?;
        Ok(p)
    }

    /// Creates an API token; returns the principal and the token (shown once, stored
    /// only as a hash).
    pub fn create_token(
        &self,
        label: &str,
        org: &str,
        read: Access,
        write: Access,
        now_us: i64,
    ) -> Result<(Principal, String)> {
        let token = auth::new_token();
        let id = format!("tok-{}", auth::hex(&auth::random_bytes::<6>()));
        let p = auth::principal(
            PrincipalKind::Token,
            id,
            label,
            org,
            auth::token_hash(&token),
            read,
            write,
            false,
            now_us,
        );
        self.store.add_principal(&p)?;
        Ok((p, token))
    }

    /// Resolves collection names (id, alias or title) to ids for a grant.
    pub fn resolve_access(&self, names: Option<&[String]>) -> Result<Access> {
        Ok(match names {
            None => Access::None,
            Some([]) => Access::All,
            Some(names) => Access::Collections(
                names
                    .iter()
                    .map(|n| Ok(self.store.find_collection(n)?.id))
                    .collect::<Result<Vec<_>>>()?,
            ),
        })
    }

    /// Authenticates a bearer token.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller> {
        let hash = auth::token_hash(token);
        let found = self
            .snapshot()?
            .catalog
            .token(&hash, || Ok(self.store.token_by_hash(&hash)?))?;
        match found {
            Some(p) if p.revoked_us.is_none() => Ok(Caller::of(&p)),
            Some(_) => Err(NodeError::Unauthenticated(
                "the token has been revoked".into(),
            )),
            None => Err(NodeError::Unauthenticated("unknown token".into())),
        }
    }

    /// Authenticates a user and password (HTTP Basic).
    pub fn authenticate_password(&self, user: &str, password: &str, now_us: i64) -> Result<Caller> {
        use sha2::Digest;
        let key = auth::hex(&Sha256::digest(format!("{user}\0{password}").as_bytes()));
        if let Some((caller, at)) = self
            .password_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && now_us - at < PASSWORD_CACHE_US
        {
            return Ok(caller.clone());
        }
        let bad = || NodeError::Unauthenticated("wrong user name or password".into());
        let p = match self.store.principal(&format!("user:{user}")) {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => {
                // Same work as a real check, so timing does not reveal which users exist.
                auth::verify_password(password, DUMMY_HASH);
                return Err(bad());
            }
            Err(e) => return Err(e.into()),
        };
        if p.revoked_us.is_some() || !auth::verify_password(password, &p.secret_hash) {
            return Err(bad());
        }
        let caller = Caller::of(&p);
        let mut cache = self
            .password_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| now_us - *at < PASSWORD_CACHE_US);
        }
        cache.insert(key, (caller.clone(), now_us));
        Ok(caller)
    }

    /// The discovery resource.
    pub fn discovery(&self) -> Result<Discovery> {
        let roots: Vec<String> = self
            .store
            .api_roots()?
            .into_iter()
            .map(|r| format!("/{}/", r.name))
            .collect();
        let default = roots
            .iter()
            .find(|r| *r == &format!("/{DEFAULT_API_ROOT}/"))
            .or(roots.first())
            .cloned();
        Ok(Discovery {
            title: self.cfg.title.clone(),
            description: self.cfg.description.clone(),
            contact: self.cfg.contact.clone(),
            default,
            api_roots: roots,
        })
    }

    /// The `max_content_length` in force for an API root.
    pub fn max_content_length(&self, root: &str) -> Result<u64> {
        Ok(self.api_root(root)?.max_content_length)
    }

    /// An API root resource.
    pub fn api_root(&self, name: &str) -> Result<ApiRootInfo> {
        let root = self
            .store
            .api_roots()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| NodeError::NotFound(format!("API root {name:?}")))?;
        Ok(ApiRootInfo {
            title: root.title,
            description: root.description,
            versions: vec![media::TAXII.to_owned()],
            max_content_length: self
                .cfg
                .max_content_length
                .unwrap_or(root.max_content_length),
        })
    }

    fn info(caller: &Caller, c: &Collection) -> CollectionInfo {
        CollectionInfo {
            id: c.id.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            alias: c.alias.clone(),
            can_read: caller.may_read(c),
            can_write: caller.may_write(c),
            media_types: c.media_types.clone(),
        }
    }

    /// The collections of an API root the caller can read or write.
    pub fn collections(&self, caller: &Caller, root: &str) -> Result<Collections> {
        self.api_root(root)?;
        Ok(Collections {
            collections: self
                .store
                .collections(Some(root))?
                .iter()
                .filter(|c| caller.may_read(c) || caller.may_write(c))
                .map(|c| Self::info(caller, c))
                .collect(),
        })
    }

    /// A collection by id, if the caller can read or write it (else 404: a caller
    /// without rights does not learn that it exists).
    fn visible_collection(&self, caller: &Caller, root: &str, id: &str) -> Result<Collection> {
        let not_found = || NodeError::NotFound(format!("collection {id} in API root {root}"));
        // TAXII names collections by id only (aliases and titles are for the CLI).
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found());
        }
        let found =
            self.snapshot()?
                .catalog
                .collection(id, || match self.store.find_collection(id) {
                    Ok(c) if c.id == id => Ok(Some(c)),
                    Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e.into()),
                })?;
        let c = match found {
            Some(c) if c.api_root == root => c,
            _ => return Err(not_found()),
        };
        if caller.may_read(&c) || caller.may_write(&c) {
            Ok(c)
        } else {
            Err(not_found())
        }
    }

    fn readable_collection(&self, caller: &Caller, root: &str, id: &str) -> Result<Collection> {
        let c = self.visible_collection(caller, root, id)?;
        if !caller.may_read(&c) {
            return Err(NodeError::Forbidden(format!(
                "{} may not read collection {id}",
                caller.name
            )));
        }
        Ok(c)
    }

    /// One collection resource.
    pub fn collection(&self, caller: &Caller, root: &str, id: &str) -> Result<CollectionInfo> {
        Ok(Self::info(
            caller,
            &self.visible_collection(caller, root, id)?,
        ))
    }

    /// **The egress function.** Every object or manifest record that leaves the node
    /// passes through here, with the recipient and the purpose: the collection's read
    /// right first, then the sharing policy per object (allow, redact, deny).
    pub fn egress(
        &self,
        caller: &Caller,
        collection: &Collection,
        purpose: Purpose,
        items: Vec<StoredObject>,
        now_us: i64,
    ) -> Result<Vec<StoredObject>> {
        let allowed = match purpose {
            Purpose::Read | Purpose::Federate | Purpose::Manage => caller.may_read(collection),
            // `can_read` is the TAXII flag of a collection; the node's administrator
            // still exports and backs it up.
            Purpose::Export | Purpose::Blocking | Purpose::Backup => {
                caller.admin || caller.may_read(collection)
            }
        };
        if !allowed {
            return Ok(Vec::new());
        }
        self.apply_policy(caller, collection, purpose, items, now_us)
    }

    /// Streams every object matching `q` to `f`, page by page in `date_added` order,
    /// each page through [`Node::egress`] (exports and backups); returns how many
    /// objects `f` received.
    pub fn scan<E: From<NodeError>>(
        &self,
        caller: &Caller,
        purpose: Purpose,
        mut q: ObjectQuery,
        mut f: impl FnMut(&StoredObject) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        let collection = self
            .store
            .find_collection(&q.collection)
            .map_err(NodeError::from)?;
        let mut n = 0;
        loop {
            let page = self.store.query(&q).map_err(NodeError::from)?;
            let last = page.items.last().map(|o| o.date_added);
            for o in &self.egress(caller, &collection, purpose, page.items, now_micros())? {
                f(o)?;
                n += 1;
            }
            match (page.more, last) {
                (true, Some(last)) => q.after = Some(last),
                _ => return Ok(n),
            }
        }
    }

    fn page(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        listing: Listing,
        fixed_id: Option<&str>,
        raw_query: &str,
    ) -> Result<ObjectPage> {
        let (endpoint, with_raw) = match listing {
            Listing::Objects => (Endpoint::Objects, true),
            Listing::Manifest => (Endpoint::Objects, false),
            Listing::Object => (Endpoint::Object, true),
            Listing::Versions => (Endpoint::Versions, false),
        };
        let scope = format!("{listing:?} {}", fixed_id.unwrap_or(""));
        let c = self.readable_collection(caller, root, collection)?;
        let f = Filters::parse(raw_query, endpoint)?;
        let binding = format!(
            "{}|{root}|{collection}|{scope}|{}",
            caller.id,
            f.fingerprint()
        );
        let after = match &f.next {
            Some(n) => Some(self.check_next(n, &binding)?),
            None => None,
        };
        let limit = f
            .limit
            .unwrap_or(self.cfg.default_page)
            .min(self.cfg.max_page);
        let q = ObjectQuery {
            collection: c.id.clone(),
            added_after: f.added_after.map(|t| t.as_micros()),
            after,
            limit,
            ids: match fixed_id {
                Some(id) => vec![id.to_owned()],
                None => f.ids.clone(),
            },
            types: f.types.clone(),
            versions: match endpoint {
                Endpoint::Versions => VersionFilter::all(),
                _ => f.versions.clone().unwrap_or_default(),
            },
            spec_versions: f.spec_versions.clone(),
        };
        let (items, more, resume) = self.fill_page(caller, &c, q, with_raw)?;
        let next = more.then(|| self.make_next(resume, &binding));
        if let Some(id) = fixed_id
            && items.is_empty()
            && f.next.is_none()
            && f.added_after.is_none()
        {
            return Err(NodeError::NotFound(format!(
                "object {id} in collection {collection}"
            )));
        }
        Ok(ObjectPage { items, more, next })
    }

    /// Reads until `q.limit` objects the caller may see are collected (or the rows run
    /// out), so that `more`, `next` and the page boundaries say nothing about objects the
    /// caller may not see. Returns the items, `more`, and the `date_added` to resume after.
    /// A page scans at most [`SCAN_BUDGET`] rows; past that it ends early with `more`.
    fn fill_page(
        &self,
        caller: &Caller,
        c: &Collection,
        mut q: ObjectQuery,
        with_raw: bool,
    ) -> Result<(Vec<StoredObject>, bool, i64)> {
        let limit = q.limit.max(1);
        let now = now_micros();
        let mut items: Vec<StoredObject> = Vec::new();
        let mut scanned = 0usize;
        loop {
            // One more than still needed: seeing it tells whether more visible ones follow.
            q.limit = limit + 1 - items.len();
            let page = if with_raw {
                self.store.query(&q)?
            } else {
                self.store.manifest(&q)?
            };
            scanned += page.items.len();
            let last = page.items.last().map(|o| o.date_added);
            // A partner's node pulling: later versions it may not receive, of objects
            // whose earlier versions it may (and so may hold), are replaced by a
            // `superseded` recall notice (TAXII has no other way to tell a puller). Only
            // in unfiltered reads (a feed's), which a notice cannot contradict.
            let unfiltered = q.ids.is_empty() && q.types.is_empty() && q.spec_versions.is_empty();
            let later = if with_raw && caller.is_peer() && unfiltered {
                recall::later_versions(&page.items, &caller.org)
            } else {
                Vec::new()
            };
            let visible = self.egress(caller, c, Purpose::Read, page.items, now)?;
            let mut notices = Vec::new();
            for (_, date_added, earlier) in self.superseded(caller, c, later, &visible, now)? {
                notices.extend(self.superseded_notice(&earlier, date_added)?);
            }
            if notices.is_empty() {
                items.extend(visible);
            } else {
                let mut merged: Vec<StoredObject> = visible.into_iter().chain(notices).collect();
                merged.sort_by_key(|o| o.date_added);
                items.extend(merged);
            }
            if items.len() > limit {
                items.truncate(limit);
                let resume = items.last().map_or(0, |o| o.date_added);
                return Ok((items, true, resume));
            }
            match (page.more, last) {
                (true, Some(last)) if scanned < SCAN_BUDGET => q.after = Some(last),
                (true, Some(last)) => return Ok((items, true, last)),
                _ => return Ok((items, false, 0)),
            }
        }
    }

    /// `GET .../objects/`.
    pub fn objects(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        query: &str,
    ) -> Result<ObjectPage> {
        self.page(caller, root, collection, Listing::Objects, None, query)
    }

    /// `GET .../manifest/`.
    pub fn manifest(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        query: &str,
    ) -> Result<ObjectPage> {
        self.page(caller, root, collection, Listing::Manifest, None, query)
    }

    /// `GET .../objects/{id}/`.
    pub fn object(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        id: &str,
        query: &str,
    ) -> Result<ObjectPage> {
        check_object_id(id)?;
        self.page(caller, root, collection, Listing::Object, Some(id), query)
    }

    /// `GET .../objects/{id}/versions/`.
    pub fn versions(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        id: &str,
        query: &str,
    ) -> Result<ObjectPage> {
        check_object_id(id)?;
        self.page(caller, root, collection, Listing::Versions, Some(id), query)
    }

    /// `DELETE .../objects/{id}/`: needs read and write rights.
    pub fn delete_object(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        id: &str,
        query: &str,
    ) -> Result<usize> {
        check_object_id(id)?;
        let c = self.visible_collection(caller, root, collection)?;
        if !(caller.may_read(&c) && caller.may_write(&c)) {
            return Err(NodeError::Forbidden(format!(
                "deleting needs read and write rights on collection {collection}"
            )));
        }
        let f = Filters::parse(query, Endpoint::Delete)?;
        let versions = f.versions.unwrap_or_else(VersionFilter::all);
        // Deleting is not reading, but it must not reveal or touch what the caller may
        // not see: versions hidden from it by the sharing policy count as absent, and a
        // delete that would also remove hidden versions is refused.
        let q = ObjectQuery {
            ids: vec![id.to_owned()],
            versions: versions.clone(),
            spec_versions: f.spec_versions.clone(),
            limit: self.cfg.max_page,
            ..ObjectQuery::new(&c.id)
        };
        let mut matching = self.store.manifest(&q)?.items;
        // A partner's node (by its certificate) withdraws only what it sent: versions of
        // the object that came from elsewhere stay (and count as absent for it).
        let mut versions = versions;
        if caller.is_peer() {
            let before = matching.len();
            matching.retain(|o| o.facts.source.as_deref() == Some(caller.org.as_str()));
            if matching.len() < before {
                versions = VersionFilter {
                    all: false,
                    first: false,
                    last: false,
                    exact: matching.iter().map(|o| o.version).collect(),
                };
            }
        }
        let total = matching.len();
        let visible = self
            .egress(caller, &c, Purpose::Manage, matching, now_micros())?
            .len();
        if visible == 0 {
            return Err(NodeError::NotFound(format!(
                "object {id} in collection {collection}"
            )));
        }
        if visible < total {
            return Err(NodeError::Forbidden(format!(
                "object {id} has versions you may not see; ask the node's operator to delete it"
            )));
        }
        // The deletion leaves tombstones (push partners are sent a DELETE) and recall
        // notices (read by pulling partners) in its transaction.
        let now = now_micros();
        let n = self.store.delete_with_notices(
            &c.id,
            id,
            &versions,
            &f.spec_versions,
            &self.notices(now)?,
            now,
        )?;
        self.changed();
        if n == 0 {
            return Err(NodeError::NotFound(format!(
                "object {id} in collection {collection}"
            )));
        }
        Ok(n)
    }

    /// `POST .../objects/`: validates and stores an envelope; returns the (complete)
    /// status, which is also kept for later `GET .../status/{id}/`.
    pub fn add_objects(
        &self,
        caller: &Caller,
        root: &str,
        collection: &str,
        body: &[u8],
        now_us: i64,
    ) -> Result<Status> {
        let c = self.visible_collection(caller, root, collection)?;
        if !caller.may_write(&c) {
            return Err(NodeError::Forbidden(format!(
                "{} may not add to collection {collection}",
                caller.name
            )));
        }
        let env: EnvelopeIn<'_> = serde_json::from_slice(body).map_err(|e| {
            NodeError::BadRequest(format!("request body is not a JSON object: {e}"))
        })?;
        if env.stix_type.is_some() {
            return Err(NodeError::Unprocessable(
                "the body has a \"type\": it looks like a STIX bundle; TAXII 2.1 takes an envelope {\"objects\": [...]}".into(),
            ));
        }
        let raws = env.objects.unwrap_or_default();
        if raws.is_empty() {
            return Err(NodeError::Unprocessable(
                "the envelope has no objects".into(),
            ));
        }
        if raws.len() > self.cfg.max_objects_per_envelope {
            return Err(NodeError::Unprocessable(format!(
                "the envelope has {} objects; at most {} are accepted per request",
                raws.len(),
                self.cfg.max_objects_per_envelope
            )));
        }
        // Parse and validate each object on its own (one bad object fails alone), on
        // every core for large envelopes.
        let request_time = taxii_time(now_us);
        let checked = check_all(&raws, self.cfg.max_depth, &request_time);
        let mut slots: Vec<std::result::Result<usize, StatusDetail>> =
            Vec::with_capacity(raws.len());
        let mut valid: Vec<ValidObject> = Vec::new();
        for c in checked {
            match c {
                Ok(v) => {
                    slots.push(Ok(valid.len()));
                    valid.push(v);
                }
                Err(d) => slots.push(Err(d)),
            }
        }
        // Signatures: an attestation by a partner with a registered key must verify and
        // match the object it covers, or both are refused.
        let policy = self.policy()?;
        let local = self.recipient(&policy, caller) == phalanx_policy::Recipient::Local;
        let source = (!local).then_some(caller.org.as_str());
        let mut checked = self.check_signatures(&policy, &c.id, source, &valid)?;
        // Recall notices come from partners' nodes; this node makes its own when it
        // deletes. One posted by a user would make partners delete their copies.
        if source.is_none() {
            for (i, v) in valid.iter().enumerate() {
                if v.object_type() == recall::TYPE {
                    checked.refused.push((
                        i,
                        "x-phalanx-recall notices are made by this node when it deletes; use DELETE".into(),
                    ));
                }
            }
            checked.refused.sort();
            checked.refused.dedup_by_key(|(i, _)| *i);
        }
        let mut paths = checked.paths;
        if !checked.refused.is_empty() {
            let mut map = vec![None; valid.len()];
            let mut kept = Vec::with_capacity(valid.len());
            let mut kept_paths = Vec::with_capacity(valid.len());
            let mut why: HashMap<usize, String> = checked.refused.into_iter().collect();
            for (i, (v, path)) in valid.into_iter().zip(paths).enumerate() {
                if let Some(message) = why.remove(&i) {
                    map[i] = Some(Err(StatusDetail {
                        id: v.id().to_owned(),
                        version: object_version(&v).unwrap_or_else(|| request_time.clone()),
                        message: Some(format!("signature check: {message}")),
                    }));
                } else {
                    map[i] = Some(Ok(kept.len()));
                    kept.push(v);
                    kept_paths.push(path);
                }
            }
            valid = kept;
            paths = kept_paths;
            for slot in &mut slots {
                if let Ok(i) = slot
                    && let Some(m) = map[*i].take()
                {
                    *slot = m;
                }
            }
        }
        let status_id = uuid::Uuid::new_v4().to_string();
        let build = |outcomes: &[IngestOutcome], local: bool| {
            build_status(
                &status_id,
                &slots,
                &valid,
                outcomes,
                &request_time,
                raws.len(),
                local,
            )
        };
        // What a partner (or outsider) posts is recorded as coming from it (`source`).
        // The status is written in the objects' transaction: acknowledged together.
        // Recalls the partner sends are acted on first: repeating them (a retried request)
        // changes nothing, and nothing is acknowledged before they are done. (A version
        // the same envelope carries before its recall is still stored: a push sends the
        // recall itself as a DELETE after the envelope.)
        if let Some(from) = source {
            let mut ignored = vec![false; valid.len()];
            self.honour_recalls(&c.id, from, &valid, &mut ignored, now_us)?;
        }
        let versions = prepare_with_paths(&valid, paths);
        let mut status = None;
        self.store
            .ingest_with_status(&c.id, &versions, source, now_us, &mut |outcomes| {
                let st = build(outcomes, local);
                let stored = stored_status(&st, root, caller, now_us);
                let id = st.id.clone();
                status = Some(st);
                (id, stored)
            })?;
        self.changed();
        status.ok_or_else(|| NodeError::Internal("the store did not record the status".into()))
    }

    /// `GET {api-root}/status/{id}/`: the requester's own statuses (administrators see
    /// all); others get 404.
    pub fn status(&self, caller: &Caller, root: &str, id: &str, now_us: i64) -> Result<Status> {
        let not_found = || NodeError::NotFound(format!("status {id}"));
        let st = self.store.status(id)?.ok_or_else(not_found)?;
        if st.api_root != root
            || (st.owner != caller.id && !caller.admin)
            || now_us - st.created_us > self.cfg.status_retention_us
        {
            return Err(not_found());
        }
        serde_json::from_str(&st.body)
            .map_err(|e| NodeError::Internal(format!("stored status {id}: {e}")))
    }

    /// Forgets status resources older than the retention period.
    pub fn purge_statuses(&self, now_us: i64) -> Result<usize> {
        Ok(self
            .store
            .purge_statuses(now_us - self.cfg.status_retention_us)?)
    }

    /// Forgets recall notices older than their retention ([`NodeConfig`]).
    pub fn purge_notices(&self, now_us: i64) -> Result<usize> {
        Ok(self
            .store
            .purge_notices(now_us - self.cfg.notice_retention_us)?)
    }

    fn mac(&self, data: &str) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.next_key)
            .expect("HMAC takes any key length");
        m.update(data.as_bytes());
        auth::hex(&m.finalize().into_bytes()[..16])
    }

    fn make_next(&self, after_us: i64, binding: &str) -> String {
        format!("{after_us}.{}", self.mac(&format!("{after_us}|{binding}")))
    }

    /// Checks a `next` token against the query and caller it was issued for.
    fn check_next(&self, next: &str, binding: &str) -> Result<i64> {
        let bad = || {
            NodeError::BadRequest(
                "query parameter next: not a token this server issued for this query and caller"
                    .into(),
            )
        };
        let (after, mac) = next.split_once('.').ok_or_else(bad)?;
        let after_us: i64 = after.parse().map_err(|_| bad())?;
        let want = self.mac(&format!("{after_us}|{binding}"));
        // Constant-time comparison.
        if want.len() != mac.len()
            || want
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return Err(bad());
        }
        Ok(after_us)
    }
}

/// The store's rows for valid objects, each with the path it travelled
/// ([`attest::Checked::paths`]); parallel to `valid`.
pub(crate) fn prepare_with_paths(
    valid: &[ValidObject],
    paths: Vec<Vec<String>>,
) -> Vec<phalanx_store::Prepared> {
    valid
        .iter()
        .zip(paths)
        .map(|(v, path)| {
            let mut p = phalanx_store::Prepared::of(v);
            p.facts.path = path;
            p
        })
        .collect()
}

/// Parses and validates raw objects, in input order, on up to all cores.
pub(crate) fn check_all(
    raws: &[&serde_json::value::RawValue],
    max_depth: usize,
    request_time: &str,
) -> Vec<std::result::Result<ValidObject, StatusDetail>> {
    let check = |raw: &&serde_json::value::RawValue| match StixObject::parse(
        raw.get().as_bytes(),
        max_depth,
    ) {
        Err(e) => Err(StatusDetail {
            id: loose_field(raw.get(), "id").unwrap_or_default(),
            version: loose_version(raw.get()).unwrap_or_else(|| request_time.to_owned()),
            message: Some(format!("not a STIX object: {e}")),
        }),
        Ok(obj) => match validate(obj) {
            Ok((v, _warnings)) => Ok(v),
            Err((obj, report)) => Err(StatusDetail {
                id: obj.id().to_owned(),
                version: object_version(&obj).unwrap_or_else(|| request_time.to_owned()),
                message: Some(describe(&report.errors)),
            }),
        },
    };
    parallel_map(raws, 128, check)
}

/// `f` over `items`, on every core when there are at least `min` items; results in order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < min.max(2) || threads < 2 {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The status of an add-objects request from the per-object results.
fn build_status(
    id: &str,
    slots: &[std::result::Result<usize, StatusDetail>],
    valid: &[ValidObject],
    outcomes: &[IngestOutcome],
    request_time: &str,
    total: usize,
    local: bool,
) -> Status {
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    for slot in slots {
        match slot {
            Err(d) => failures.push(d.clone()),
            Ok(i) => {
                let o = &valid[*i];
                let version = |date_added: Option<i64>| {
                    object_version(o)
                        .or_else(|| date_added.map(taxii_time))
                        .unwrap_or_else(|| request_time.to_owned())
                };
                let detail = |version, message: Option<String>| StatusDetail {
                    id: o.id().to_owned(),
                    version,
                    message,
                };
                match outcomes[*i] {
                    IngestOutcome::Added { date_added } => {
                        successes.push(detail(version(Some(date_added)), None));
                    }
                    IngestOutcome::Duplicate => successes.push(detail(
                        version(None),
                        Some("already stored (identical)".into()),
                    )),
                    // Only the node's own organisation learns when the other content was
                    // stored (it may be an object the poster may not see).
                    IngestOutcome::Conflict {
                        existing_date_added,
                    } => failures.push(detail(
                        version(None),
                        Some(if local {
                            format!(
                                "a different object with this id and version was stored at {}; versions are immutable, publish a new modified",
                                taxii_time(existing_date_added)
                            )
                        } else {
                            "a different object with this id and version is stored; versions are immutable, publish a new modified".to_owned()
                        }),
                    )),
                }
            }
        }
    }
    Status {
        id: id.to_owned(),
        status: StatusState::Complete,
        request_timestamp: Some(request_time.to_owned()),
        total_count: total as u64,
        success_count: successes.len() as u64,
        successes,
        failure_count: failures.len() as u64,
        failures,
        pending_count: 0,
        pendings: Vec::new(),
    }
}

fn stored_status(st: &Status, root: &str, caller: &Caller, now_us: i64) -> StoredStatus {
    StoredStatus {
        api_root: root.to_owned(),
        owner: caller.id.clone(),
        created_us: now_us,
        // Strings, integers and a unit enum: serialising cannot fail.
        body: serde_json::to_string(st).expect("a Status serialises"),
    }
}

/// A hash verified against when the user does not exist (any valid argon2id PHC).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Wq7PJSc2SRdKLnqNTMSX5VaOw1OLw1CyC2iPfqFjhcE";

fn check_object_id(id: &str) -> Result<()> {
    phalanx_stix::id::parse_id(id)
        .map(|_| ())
        .map_err(|e| NodeError::BadRequest(format!("object id in the path: {e}")))
}

/// The TAXII version of an object: `modified`, else `created`, as written.
fn object_version(o: &StixObject) -> Option<String> {
    o.str_prop("modified")
        .or_else(|| o.str_prop("created"))
        .map(str::to_owned)
}

/// A string field of JSON that did not parse as a STIX object, if it can be found.
fn loose_field(raw: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v.get(key)?.as_str().map(str::to_owned)
}

fn loose_version(raw: &str) -> Option<String> {
    loose_field(raw, "modified").or_else(|| loose_field(raw, "created"))
}

/// A one-line summary of validation errors: `path: message; ...`.
fn describe(errors: &[phalanx_stix::Issue]) -> String {
    let mut parts: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    if errors.len() > 5 {
        parts.push(format!("and {} more errors", errors.len() - 5));
    }
    format!("invalid STIX 2.1: {}", parts.join("; "))
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
