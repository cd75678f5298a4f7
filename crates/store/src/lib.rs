//! # phalanx-store
//!
//! Persistence for a Phalanx node behind the [`Store`] trait: TAXII API roots,
//! collections, and every version of every STIX object with its original JSON, its
//! collection and its `date_added`. [`SqliteStore`] is the embedded default (one file,
//! WAL, `synchronous=FULL`: a committed batch survives `kill -9` and power loss).
//!
//! Rules the store enforces for every backend:
//! - **Idempotent ingest.** (id, version) identifies an object version within a
//!   collection; the version is `modified` (else `created`; SCOs are unversioned).
//!   Re-ingesting identical content is [`IngestOutcome::Duplicate`]; different content
//!   under the same key is [`IngestOutcome::Conflict`] and nothing is overwritten.
//! - **Exact pagination.** `date_added` is in microseconds and strictly increasing within
//!   a collection, assigned under the write lock, so a keyset cursor on it never skips
//!   or repeats an object.
//! - **Batches are transactions.** [`Store::ingest`] stores a whole batch or nothing.
//!
//! ```
//! use phalanx_store::{NewCollection, ObjectQuery, SqliteStore, Store};
//! use phalanx_stix::{StixObject, validate};
//!
//! let store = SqliteStore::open_in_memory().unwrap();
//! store.ensure_api_root("default", "Default API root").unwrap();
//! let c = store.create_collection("default", &NewCollection::named("intel")).unwrap();
//! let obj = StixObject::parse(br#"{"type":"ipv4-addr","id":"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4","value":"198.51.100.3"}"#, 64).unwrap();
//! let (valid, _) = validate(obj).unwrap();
//! let outcomes = store.ingest(&c.id, &[valid], 1_700_000_000_000_000).unwrap();
//! assert!(outcomes[0].is_added());
//! let page = store.query(&ObjectQuery::new(&c.id)).unwrap();
//! assert_eq!(page.items.len(), 1);
//! ```

mod sqlite;

pub use sqlite::SqliteStore;

pub use phalanx_taxii::VersionFilter;

use phalanx_stix::{Timestamp, ValidObject};

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// A named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A create would collide with an existing thing.
    #[error("{0} already exists")]
    Exists(String),
    /// An argument is invalid (bad alias, bad timestamp, ...).
    #[error("invalid {0}")]
    Invalid(String),
    /// Stored data is not what this version of Phalanx wrote.
    #[error("store is corrupt or from an incompatible version: {0}")]
    Corrupt(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A TAXII API root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiRoot {
    /// Path segment (`default` → `/default/`).
    pub name: String,
    /// TAXII `title`.
    pub title: String,
    /// TAXII `description`.
    pub description: Option<String>,
    /// TAXII `max_content_length` in bytes.
    pub max_content_length: u64,
}

/// Default `max_content_length` of a new API root (100 MiB).
pub const DEFAULT_MAX_CONTENT_LENGTH: u64 = 100 * 1024 * 1024;

/// A TAXII collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Collection {
    /// TAXII `id` (UUIDv4).
    pub id: String,
    /// The API root it belongs to.
    pub api_root: String,
    /// TAXII `title`.
    pub title: String,
    /// TAXII `description`.
    pub description: Option<String>,
    /// TAXII `alias`, unique within the API root.
    pub alias: Option<String>,
    /// Default read permission (`can_read`) for callers without an explicit grant.
    pub can_read: bool,
    /// Default write permission (`can_write`).
    pub can_write: bool,
    /// TAXII `media_types`.
    pub media_types: Vec<String>,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewCollection {
    /// Explicit id (restore), else a new UUIDv4.
    pub id: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Default read permission.
    pub can_read: bool,
    /// Default write permission.
    pub can_write: bool,
    /// Media types (empty: STIX 2.1).
    pub media_types: Vec<String>,
}

impl NewCollection {
    /// A readable, writable STIX 2.1 collection whose title and alias are `name`.
    pub fn named(name: &str) -> NewCollection {
        NewCollection {
            id: None,
            title: name.to_owned(),
            description: None,
            alias: Some(name.to_owned()),
            can_read: true,
            can_write: true,
            media_types: Vec::new(),
        }
    }
}

/// What happened to one object of an ingested batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored as a new version.
    Added {
        /// Its `date_added` (µs since the epoch).
        date_added: i64,
    },
    /// The identical version was already stored; nothing changed.
    Duplicate,
    /// A different object is stored under the same (id, version); nothing changed.
    Conflict {
        /// `date_added` of the stored version.
        existing_date_added: i64,
    },
}

impl IngestOutcome {
    /// Whether the object was newly stored.
    pub fn is_added(&self) -> bool {
        matches!(self, IngestOutcome::Added { .. })
    }
}

/// A query over one collection: the TAXII filters plus a keyset cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery {
    /// Collection id.
    pub collection: String,
    /// Only objects added strictly after this `date_added` (µs).
    pub added_after: Option<i64>,
    /// Keyset cursor: only objects with `date_added` strictly after this (µs); the last
    /// `date_added` of the previous page.
    pub after: Option<i64>,
    /// At most this many items (the page may be shorter only at the end).
    pub limit: usize,
    /// `match[id]` (ORed).
    pub ids: Vec<String>,
    /// `match[type]` (ORed).
    pub types: Vec<String>,
    /// `match[version]`.
    pub versions: VersionFilter,
    /// `match[spec_version]` (ORed); empty: any.
    pub spec_versions: Vec<String>,
}

impl ObjectQuery {
    /// Latest versions of everything in a collection, first page of 1000.
    pub fn new(collection: &str) -> Self {
        ObjectQuery {
            collection: collection.to_owned(),
            added_after: None,
            after: None,
            limit: 1000,
            ids: Vec::new(),
            types: Vec::new(),
            versions: VersionFilter::default(),
            spec_versions: Vec::new(),
        }
    }
}

/// One stored object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// STIX id.
    pub id: String,
    /// STIX type.
    pub object_type: String,
    /// Spec version.
    pub spec_version: String,
    /// The TAXII version of this record: `modified`, else `created`, else `date_added`
    /// (for unversioned SCOs), as a timestamp.
    pub version: Timestamp,
    /// `date_added` (µs since the epoch).
    pub date_added: i64,
    /// The original JSON text (empty for manifest queries).
    pub raw: String,
    /// Sharing facts (markings, labels, source partner), kept beside the object.
    pub facts: phalanx_policy::Facts,
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, ascending by `date_added`.
    pub items: Vec<T>,
    /// More items match after this page.
    pub more: bool,
}

/// Which collections a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// None.
    None,
    /// Every collection, present and future.
    All,
    /// These collections (ids).
    Collections(Vec<String>),
}

impl Access {
    /// Whether the grant covers a collection.
    pub fn covers(&self, collection_id: &str) -> bool {
        match self {
            Access::None => false,
            Access::All => true,
            Access::Collections(ids) => ids.iter().any(|i| i == collection_id),
        }
    }

    /// The union of two grants.
    pub fn union(&self, other: &Access) -> Access {
        match (self, other) {
            (Access::All, _) | (_, Access::All) => Access::All,
            (Access::None, x) | (x, Access::None) => x.clone(),
            (Access::Collections(a), Access::Collections(b)) => {
                let mut ids = a.clone();
                ids.extend(b.iter().filter(|i| !a.contains(i)).cloned());
                Access::Collections(ids)
            }
        }
    }
}

/// What kind of credential a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A user with a password (HTTP Basic); `secret_hash` is an argon2 PHC string.
    User,
    /// A bearer API token; `secret_hash` is the hex SHA-256 of the token (tokens are
    /// 256-bit random, so a fast hash is enough and allows lookup by hash).
    Token,
}

/// A user or API token: who it is, which organisation it acts for, what it may do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// Unique id: `user:NAME` for users, `tok-…` for tokens.
    pub id: String,
    /// User or token.
    pub kind: PrincipalKind,
    /// User name, or the token's label.
    pub name: String,
    /// Organisation it acts for.
    pub org: String,
    /// Hash of the secret (see [`PrincipalKind`]).
    pub secret_hash: String,
    /// Collections it may read.
    pub read: Access,
    /// Collections it may write (writing implies reading).
    pub write: Access,
    /// Node administrator (every right, status of every request).
    pub admin: bool,
    /// Creation time (µs).
    pub created_us: i64,
    /// Revocation time (µs); a revoked principal authenticates no more.
    pub revoked_us: Option<i64>,
}

/// A stored TAXII status resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatus {
    /// API root it belongs to.
    pub api_root: String,
    /// Principal that made the request.
    pub owner: String,
    /// Creation time (µs).
    pub created_us: i64,
    /// The status resource (JSON).
    pub body: String,
}

/// One version of a sharing agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAgreement {
    /// Agreement id.
    pub id: String,
    /// Version (1, 2, ...).
    pub version: u32,
    /// The checked document (JSON).
    pub doc: String,
    /// When this version was recorded (µs).
    pub created_us: i64,
    /// Who recorded it.
    pub author: String,
}

/// Which way a feed moves objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedDirection {
    /// This node pulls from the partner's remote collection into a local one.
    Pull,
    /// This node pushes a local collection to the partner's remote collection.
    Push,
    /// The partner's node may push (POST) into a local collection (`remote` is empty).
    Accept,
}

impl FeedDirection {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedDirection::Pull => "pull",
            FeedDirection::Push => "push",
            FeedDirection::Accept => "accept",
        }
    }

    /// Parses [`FeedDirection::as_str`].
    pub fn parse(s: &str) -> Option<FeedDirection> {
        match s {
            "pull" => Some(FeedDirection::Pull),
            "push" => Some(FeedDirection::Push),
            "accept" => Some(FeedDirection::Accept),
            _ => None,
        }
    }
}

/// A feed to create.
#[derive(Debug, Clone)]
pub struct NewFeed {
    /// Partner id.
    pub partner: String,
    /// Direction.
    pub direction: FeedDirection,
    /// The remote TAXII collection URL (empty for `accept`).
    pub remote: String,
    /// The local collection id.
    pub local: String,
    /// Initial cursor (µs): pull from after this remote `date_added`, push after this
    /// local one; `None`: from the beginning.
    pub cursor: Option<i64>,
}

/// A federation feed and its health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Feed {
    /// Id.
    pub id: i64,
    /// Partner id.
    pub partner: String,
    /// Direction.
    pub direction: FeedDirection,
    /// Remote collection URL.
    pub remote: String,
    /// Local collection id.
    pub local: String,
    /// Pull: the remote `date_added` stored up to; push: the local `date_added`
    /// delivered up to (µs).
    pub cursor: Option<i64>,
    /// Last success (µs).
    pub last_ok_us: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// When it happened (µs).
    pub last_error_us: Option<i64>,
    /// Failures since the last success.
    pub failures: i64,
    /// Objects moved so far.
    pub moved: i64,
    /// Push feeds: the last tombstone (`seq`) recalled from the partner.
    pub recalled_up_to: Option<i64>,
}

/// A deleted object version, kept so push feeds can recall it from their partners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// Increasing sequence number (the recall cursor).
    pub seq: i64,
    /// STIX id.
    pub id: String,
    /// STIX type.
    pub object_type: String,
    /// The deleted version (`modified` as written); `None` for unversioned objects.
    pub version: Option<String>,
    /// The sharing facts the version had (the policy decides who is told).
    pub facts: phalanx_policy::Facts,
}

/// An object version to restore with its `date_added` and source partner.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The object.
    pub object: ValidObject,
    /// Its original `date_added` (µs).
    pub date_added: i64,
    /// The partner it came from.
    pub source: Option<String>,
    /// The nodes it passed before this one ([`phalanx_policy::Facts::path`]).
    pub path: Vec<String>,
}

/// An object version made ready for the store: every column the writer needs, computed
/// from the parsed object beforehand (on any thread). Bulk import prepares versions on
/// every core and drops the parsed JSON there, so the single writer only writes
/// (measured: freeing parsed objects and deriving the facts took a fifth of the writer's
/// time at 1M objects).
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// STIX id.
    pub id: String,
    /// STIX type.
    pub object_type: String,
    /// `spec_version` (2.1 when absent).
    pub spec_version: String,
    /// Version key: `modified` (else `created`) with 9 fraction digits, so text order is
    /// time order; empty for unversioned objects.
    pub vkey: String,
    /// The version as the object writes it; `None` for unversioned objects.
    pub version: Option<String>,
    /// The original JSON text.
    pub raw: Box<str>,
    /// The sharing facts (without `source`: the ingest names it; `path` is empty unless
    /// the caller sets it).
    pub facts: phalanx_policy::Facts,
    /// What an attestation claims to cover: (id, version) pairs; empty for other types.
    pub covers: Vec<(String, String)>,
}

impl Prepared {
    /// Prepares a valid object.
    pub fn of(o: &ValidObject) -> Prepared {
        let (vkey, version) = version_key(o);
        Prepared {
            id: o.id().to_owned(),
            object_type: o.object_type().to_owned(),
            spec_version: o.spec_version().unwrap_or("2.1").to_owned(),
            vkey,
            version,
            raw: o.raw().into(),
            facts: phalanx_policy::Facts::of(o.json(), None),
            covers: if o.object_type() == phalanx_policy::provenance::ATTESTATION {
                phalanx_policy::provenance::covered(o.json())
                    .into_iter()
                    .map(|(id, v)| (id.to_owned(), v.to_owned()))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// The version key of an object ([`Prepared::vkey`]) and its version as written.
fn version_key(o: &phalanx_stix::StixObject) -> (String, Option<String>) {
    if o.class() == phalanx_stix::ObjectClass::Sco {
        return (String::new(), None);
    }
    let raw = o.str_prop("modified").or_else(|| o.str_prop("created"));
    match o.version() {
        Some(t) => (vkey(&t), raw.map(str::to_owned)),
        None => (String::new(), None),
    }
}

/// A timestamp as a version key (9 fraction digits: text order is time order).
pub(crate) fn vkey(t: &Timestamp) -> String {
    t.format(9)
}

/// A version being deleted, as [`Store::delete_with_notices`] shows it to the notice
/// builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted<'a> {
    /// STIX id.
    pub id: &'a str,
    /// STIX type.
    pub object_type: &'a str,
    /// The version (`modified` as written); `None` for unversioned objects.
    pub version: Option<&'a str>,
    /// The stored JSON text.
    pub raw: &'a str,
    /// The partner it came from.
    pub source: Option<&'a str>,
    /// The nodes it passed before this one.
    pub path: Vec<String>,
    /// The partner whose data it reported on.
    pub about: Option<&'a str>,
}

/// Makes the recall notice of a deleted version (`None`: none).
pub type NoticeBuilder<'a> = dyn Fn(&Deleted<'_>) -> Option<Prepared> + 'a;

/// Builds the status resource of an ingest from its outcomes: (status id, status).
pub type StatusBuilder<'a> = dyn FnMut(&[IngestOutcome]) -> (String, StoredStatus) + 'a;

/// Persistence for a node. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// Creates an API root if it does not exist; returns it.
    fn ensure_api_root(&self, name: &str, title: &str) -> Result<ApiRoot>;
    /// Inserts or replaces an API root (restore).
    fn put_api_root(&self, root: &ApiRoot) -> Result<()>;
    /// All API roots, by name.
    fn api_roots(&self) -> Result<Vec<ApiRoot>>;
    /// Creates a collection in an API root.
    fn create_collection(&self, api_root: &str, c: &NewCollection) -> Result<Collection>;
    /// Collections, all or of one API root, in a stable order (by creation).
    fn collections(&self, api_root: Option<&str>) -> Result<Vec<Collection>>;
    /// Finds a collection by id, alias or title (in that order of preference).
    fn find_collection(&self, key: &str) -> Result<Collection>;
    /// Stores a batch in one transaction, assigning `date_added` from `now_us` on.
    fn ingest(
        &self,
        collection: &str,
        objects: &[ValidObject],
        now_us: i64,
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_from(collection, objects, None, now_us)
    }
    /// As [`Store::ingest`], recording the partner the objects came from (`None`: this
    /// node's organisation).
    fn ingest_from(
        &self,
        collection: &str,
        objects: &[ValidObject],
        source: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<IngestOutcome>>;
    /// As [`Store::ingest_from`] for versions prepared beforehand ([`Prepared::of`]).
    fn ingest_prepared(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<IngestOutcome>>;
    /// As [`Store::ingest_prepared`], and in the same transaction stores the status resource that
    /// `status` builds from the outcomes: an acknowledged request and its objects are
    /// durable together (one commit, one fsync).
    ///
    /// `source` is the partner the objects came from (`None`: this node's organisation).
    fn ingest_with_status(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
        status: &mut StatusBuilder<'_>,
    ) -> Result<Vec<IngestOutcome>>;
    /// Stores a batch with given `date_added` values and source partners (restore);
    /// duplicates are skipped.
    fn ingest_with_dates(
        &self,
        collection: &str,
        objects: &[Restored],
    ) -> Result<Vec<IngestOutcome>>;
    /// Objects matching a query.
    fn query(&self, q: &ObjectQuery) -> Result<Page<StoredObject>>;
    /// Manifest records (as [`Store::query`], without the JSON text).
    fn manifest(&self, q: &ObjectQuery) -> Result<Page<StoredObject>>;
    /// Deletes the versions of one object that match `versions` and `spec_versions`,
    /// leaving a [`Tombstone`] for each in the same transaction; returns how many were
    /// deleted.
    fn delete(
        &self,
        collection: &str,
        id: &str,
        versions: &VersionFilter,
        spec_versions: &[String],
    ) -> Result<usize> {
        self.delete_with_notices(collection, id, versions, spec_versions, &|_| None, 0)
    }
    /// As [`Store::delete`], and in the same transaction stores what `notice` makes of
    /// each deleted version (a recall notice, recorded as coming from the partner the
    /// version came from), with `date_added` from `now_us` on: the deletion and the
    /// notice that tells pulling partners about it are durable together.
    fn delete_with_notices(
        &self,
        collection: &str,
        id: &str,
        versions: &VersionFilter,
        spec_versions: &[String],
        notice: &NoticeBuilder<'_>,
        now_us: i64,
    ) -> Result<usize>;
    /// Tombstones of a collection after `after` (a `seq`), oldest first.
    fn tombstones(
        &self,
        collection: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Tombstone>>;
    /// The `seq` of a collection's newest tombstone (`None`: none).
    fn last_tombstone(&self, collection: &str) -> Result<Option<i64>>;
    /// Moves a push feed's recall cursor forward to `seq`.
    fn feed_recalled(&self, id: i64, seq: i64) -> Result<()>;
    /// The JSON text of the stored attestations in a collection that claim to cover an
    /// object version (`version` as the object states it), oldest first. Claims only:
    /// the caller verifies them.
    fn attestations_of(&self, collection: &str, id: &str, version: &str) -> Result<Vec<String>>;
    /// Number of object versions in a collection.
    fn count(&self, collection: &str) -> Result<u64>;
    /// The newest `date_added` of a collection (`None`: empty).
    fn last_added(&self, collection: &str) -> Result<Option<i64>>;
    /// Number of object versions in the whole store.
    fn total_objects(&self) -> Result<u64>;

    /// Adds a principal ([`StoreError::Exists`] if the id is taken).
    fn add_principal(&self, p: &Principal) -> Result<()>;
    /// A principal by id.
    fn principal(&self, id: &str) -> Result<Principal>;
    /// The token whose secret hashes to `hash`, revoked or not.
    fn token_by_hash(&self, hash: &str) -> Result<Option<Principal>>;
    /// Every principal, oldest first.
    fn principals(&self) -> Result<Vec<Principal>>;
    /// Marks a principal revoked (idempotent; the first revocation time is kept).
    fn revoke_principal(&self, id: &str, now_us: i64) -> Result<()>;

    /// Keeps a status resource under its id.
    fn put_status(&self, id: &str, status: &StoredStatus) -> Result<()>;
    /// A status resource by id.
    fn status(&self, id: &str) -> Result<Option<StoredStatus>>;
    /// Forgets status resources created before `before_us`; returns how many.
    fn purge_statuses(&self, before_us: i64) -> Result<usize>;
    /// Forgets recall notices (`x-phalanx-recall`) added before `before_us`, in every
    /// collection, without tombstones; returns how many.
    fn purge_notices(&self, before_us: i64) -> Result<usize>;

    /// Adds or replaces a partner (removal is `removed = true`: history stays).
    fn put_partner(&self, p: &phalanx_policy::Partner, now_us: i64) -> Result<()>;
    /// Every partner, removed ones included, by id.
    fn partners(&self) -> Result<Vec<phalanx_policy::Partner>>;
    /// Stores a new agreement version ([`StoreError::Exists`] if that version exists).
    fn add_agreement(&self, a: &StoredAgreement) -> Result<()>;
    /// Every version of one agreement, oldest first.
    fn agreement_history(&self, id: &str) -> Result<Vec<StoredAgreement>>;
    /// The latest version of every agreement, by id.
    fn agreements(&self) -> Result<Vec<StoredAgreement>>;
    /// As [`Store::ingest_prepared`], and in the same transaction moves feed `feed`'s cursor
    /// to `cursor` (a page pulled from a peer is stored and acknowledged together).
    #[allow(clippy::too_many_arguments)]
    fn ingest_feed_page(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
        feed: i64,
        cursor: i64,
    ) -> Result<Vec<IngestOutcome>>;
    /// Adds a federation feed ([`StoreError::Exists`] for the same partner, direction,
    /// remote and local collection).
    fn add_feed(&self, f: &NewFeed) -> Result<Feed>;
    /// Every feed, oldest first.
    fn feeds(&self) -> Result<Vec<Feed>>;
    /// Removes a feed.
    fn remove_feed(&self, id: i64) -> Result<()>;
    /// Records a success: the cursor moves forward to `cursor` (never back), `moved`
    /// objects more, failures reset.
    fn feed_progress(&self, id: i64, cursor: i64, moved: i64, now_us: i64) -> Result<()>;
    /// Records a failure.
    fn feed_error(&self, id: i64, message: &str, now_us: i64) -> Result<()>;
    /// A number that changes whenever anything that decides access changes (also by
    /// another process): principals, API roots, collections, partners, agreements and
    /// feeds. The node rebuilds its policy and drops its cached tokens and collections
    /// when it moves.
    fn policy_generation(&self) -> Result<i64>;

    /// A node setting.
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` under `key` unless a value is there already; returns the stored value.
    fn init_setting(&self, key: &str, value: &str) -> Result<String>;
    /// Stores `value` under `key`, replacing what was there.
    fn put_setting(&self, key: &str, value: &str) -> Result<()>;
}
