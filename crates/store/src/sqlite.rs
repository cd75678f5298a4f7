//! The embedded SQLite backend.
//!
//! SQL is kept portable (TEXT, BIGINT, INTEGER flags, no SQLite-only functions in
//! queries) so a PostgreSQL backend can share the schema.

use crate::{
    ApiRoot, Collection, DEFAULT_MAX_CONTENT_LENGTH, Deleted, Feed, FeedDirection, IngestOutcome,
    NewCollection, NewFeed, NoticeBuilder, ObjectQuery, Page, Prepared, Principal, PrincipalKind,
    Restored, Result, StatusBuilder, Store, StoreError, StoredAgreement, StoredObject,
    StoredStatus, Tombstone, VersionFilter, vkey,
};
use phalanx_policy::facts::{pap_code, pap_from_code, tlp_code, tlp_from_code};
use phalanx_policy::provenance::ATTESTATION;
use phalanx_policy::{Facts, Partner};
use phalanx_stix::{StixObject, Timestamp, ValidObject};
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA_VERSION: i64 = 8;

const SCHEMA: &str = "
CREATE TABLE api_roots (
    name TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT,
    max_content_length BIGINT NOT NULL
);
CREATE TABLE collections (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    api_root TEXT NOT NULL REFERENCES api_roots(name),
    title TEXT NOT NULL,
    description TEXT,
    alias TEXT,
    can_read INTEGER NOT NULL,
    can_write INTEGER NOT NULL,
    media_types TEXT NOT NULL,
    UNIQUE (api_root, alias)
);
CREATE TABLE objects (
    seq INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL REFERENCES collections(seq),
    stix_id TEXT NOT NULL,
    id_hash BIGINT NOT NULL,
    type TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    vkey TEXT NOT NULL,
    version TEXT,
    date_added BIGINT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX objects_by_id ON objects (collection, id_hash);
CREATE UNIQUE INDEX objects_by_date ON objects (collection, date_added);
";

/// Version 2: principals (users and tokens), TAXII status resources, node settings.
const SCHEMA_V2: &str = "
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    org TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    read_access TEXT NOT NULL,
    write_access TEXT NOT NULL,
    admin INTEGER NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT
);
CREATE INDEX principals_by_secret ON principals (secret_hash);
CREATE TABLE statuses (
    id TEXT PRIMARY KEY,
    api_root TEXT NOT NULL,
    owner TEXT NOT NULL,
    created BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX statuses_by_created ON statuses (created);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Version 3: sharing facts beside each object version (markings, labels, source
/// partner), partners, and every version of every agreement.
const SCHEMA_V3: &str = "
ALTER TABLE objects ADD COLUMN tlp INTEGER;
ALTER TABLE objects ADD COLUMN pap INTEGER;
ALTER TABLE objects ADD COLUMN labels TEXT;
ALTER TABLE objects ADD COLUMN granular TEXT;
ALTER TABLE objects ADD COLUMN source TEXT;
CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE TABLE agreements (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    created BIGINT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
INSERT INTO settings (key, value) VALUES ('policy.generation', '0');
";

/// Version 4: federation feeds (pull from, push to, accept from a partner) with their
/// durable cursors and health.
const SCHEMA_V4: &str = "
CREATE TABLE feeds (
    id INTEGER PRIMARY KEY,
    partner TEXT NOT NULL,
    direction TEXT NOT NULL,
    remote TEXT NOT NULL,
    local TEXT NOT NULL,
    cursor BIGINT,
    last_ok BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    failures INTEGER NOT NULL,
    moved INTEGER NOT NULL,
    UNIQUE (partner, direction, remote, local)
);
";

/// Version 5: tombstones — one row per deleted object version, written in the delete's
/// transaction (the outbox of deletions for push feeds), and each feed's cursor in them.
const SCHEMA_V5: &str = "
CREATE TABLE tombstones (
    seq INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL,
    stix_id TEXT NOT NULL,
    type TEXT NOT NULL,
    version TEXT,
    tlp INTEGER,
    pap INTEGER,
    labels TEXT,
    granular TEXT,
    source TEXT
);
CREATE INDEX tombstones_by_collection ON tombstones (collection, seq);
ALTER TABLE feeds ADD COLUMN tomb_cursor BIGINT;
";

/// Version 6: each version's producer (its `created_by_ref`), and an index of what
/// stored attestations claim to cover, so an object can find the attestation that
/// arrived in an earlier page or envelope.
const SCHEMA_V6: &str = "
ALTER TABLE objects ADD COLUMN producer TEXT;
ALTER TABLE tombstones ADD COLUMN producer TEXT;
CREATE TABLE attested (
    collection INTEGER NOT NULL,
    stix_id TEXT NOT NULL,
    version TEXT NOT NULL,
    attestation INTEGER NOT NULL
);
CREATE INDEX attested_by_object ON attested (collection, stix_id, version);
";

/// Version 7: the path each received version travelled (the nodes it passed before this
/// one). Versions stored before it have none recorded.
const SCHEMA_V7: &str = "
ALTER TABLE objects ADD COLUMN path TEXT;
ALTER TABLE tombstones ADD COLUMN path TEXT;
";

/// Version 8: the partner whose data a version reports on (a sighting of its
/// indicator), which alone may receive it.
const SCHEMA_V8: &str = "
ALTER TABLE objects ADD COLUMN about TEXT;
ALTER TABLE tombstones ADD COLUMN about TEXT;
";

/// The SQLite store. One connection behind a mutex: SQLite has a single writer anyway,
/// and WAL lets other processes (a CLI next to a running server) read meanwhile.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The database file; `None` for in-memory stores, which read through `conn`.
    path: Option<std::path::PathBuf>,
    /// Idle read-only connections: reads run in parallel with each other and with the
    /// writer (WAL), instead of queueing behind one mutex.
    readers: Mutex<Vec<Connection>>,
    /// Collection id → its integer key. Collections are never deleted or re-keyed, so
    /// an entry, once read, stays true (only found ids are kept).
    seqs: Mutex<HashMap<String, i64>>,
    /// The policy generation as last read: (when, value, `moves` at the start of that
    /// read). Every request asks for it (a read transaction each time, ~10% of a
    /// single-object GET), so it is re-read at most every [`GENERATION_RECHECK`], and
    /// at once after this store moved it.
    generation: Mutex<Option<(std::time::Instant, i64, u64)>>,
    /// How often this store has moved the generation.
    moves: std::sync::atomic::AtomicU64,
}

/// How long a policy generation read stays current for changes made by another
/// process (changes through this store are seen at once).
const GENERATION_RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

/// Most idle read connections kept.
const MAX_IDLE_READERS: usize = 32;

/// A connection to read with: a pooled read-only one, or the writer for in-memory stores.
enum ReadConn<'a> {
    Pooled(&'a SqliteStore, Option<Connection>),
    Writer(std::sync::MutexGuard<'a, Connection>),
}

impl std::ops::Deref for ReadConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            ReadConn::Pooled(_, c) => c.as_ref().expect("present until drop"),
            ReadConn::Writer(g) => g,
        }
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        if let ReadConn::Pooled(store, c) = self
            && let Some(c) = c.take()
        {
            let mut idle = store.readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(c);
            }
        }
    }
}

/// Turns on SQLite's query planner stability guarantee. Without it, a statement whose
/// plan may depend on a bound value (`LIMIT ?`, which every page query has) is marked
/// expired whenever that parameter is re-bound, so every cached statement was parsed
/// and planned again on each use (measured: a third of the server's CPU on
/// single-object GETs). Our queries are written for one plan (see `+date_added`).
fn stable_plans(c: &Connection) -> rusqlite::Result<()> {
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// A stable 64-bit key for an id, indexed instead of the id text: an index of 8-byte
/// keys is a fraction of the size of one of ~60-byte ids, and since ids are random every
/// commit rewrites the index pages it touches (bulk ingest at 1M objects: ~1.3x faster).
/// FNV-1a; collisions are harmless (queries also compare `stix_id`). Part of the on-disk
/// format: never change it without a schema migration.
fn id_hash(id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// Start of a subquery over the other versions (`n`) of the row being filtered
/// (`objects`); `first`/`last` are "no earlier/later version exists", which the
/// (collection, id_hash) index answers with one seek.
const NEIGHBOUR: &str = "SELECT 1 FROM objects n WHERE n.collection = objects.collection \
     AND n.id_hash = objects.id_hash AND n.stix_id = objects.stix_id";

impl SqliteStore {
    /// Opens (creating if needed) the store in a file.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        let mut store = SqliteStore::init(conn)?;
        store.path = Some(path.to_owned());
        Ok(store)
    }

    /// A private in-memory store (tests, examples).
    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        stable_plans(&conn)?;
        // 16 KiB pages: STIX objects are ~0.5-5 KiB, so more fit per page and the id
        // index needs fewer pages (measured: ~15% faster bulk ingest than 4 KiB). Only
        // effective before the first table is created.
        conn.pragma_update(None, "page_size", 16384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Random STIX ids scatter index inserts; a cache that holds the hot index pages
        // avoids re-reading them (64 MiB; SQLite's default is 2 MiB).
        conn.pragma_update(None, "cache_size", -65536)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} {SCHEMA_V2} {SCHEMA_V3} {SCHEMA_V4} {SCHEMA_V5} {SCHEMA_V6} {SCHEMA_V7} {SCHEMA_V8} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
            }
            // Each step brings a store from version n to n + 1; all in one transaction.
            1..SCHEMA_VERSION => {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                for from in version..SCHEMA_VERSION {
                    match from {
                        1 => tx.execute_batch(SCHEMA_V2)?,
                        2 => tx.execute_batch(SCHEMA_V3)?,
                        3 => tx.execute_batch(SCHEMA_V4)?,
                        4 => tx.execute_batch(SCHEMA_V5)?,
                        5 => tx.execute_batch(SCHEMA_V6)?,
                        6 => tx.execute_batch(SCHEMA_V7)?,
                        _ => tx.execute_batch(SCHEMA_V8)?,
                    }
                }
                if version < 6 {
                    backfill_facts(&tx, version < 3)?;
                }
                tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
                tx.commit()?;
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(StoreError::Corrupt(format!(
                    "schema version {v}, this build knows {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: None,
            readers: Mutex::new(Vec::new()),
            seqs: Mutex::new(HashMap::new()),
            generation: Mutex::new(None),
            moves: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A connection for reads.
    fn reader(&self) -> Result<ReadConn<'_>> {
        let Some(path) = &self.path else {
            return Ok(ReadConn::Writer(self.conn()));
        };
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let c = match idle {
            Some(c) => c,
            None => {
                use rusqlite::OpenFlags;
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(30))?;
                c.pragma_update(None, "cache_size", -16384)?;
                stable_plans(&c)?;
                c
            }
        };
        Ok(ReadConn::Pooled(self, Some(c)))
    }

    /// Called after every transaction that moved the policy generation (committed or
    /// not): the remembered value is no longer current.
    fn generation_moved(&self) {
        self.moves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The integer key of a collection, remembered once found.
    fn seq(&self, conn: &Connection, id: &str) -> Result<i64> {
        if let Some(&seq) = self.seqs.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(seq);
        }
        let seq = collection_seq(conn, id)?;
        self.seqs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), seq);
        Ok(seq)
    }

    /// Runs a change of what decides access (principals, collections, API roots) in
    /// one transaction that also moves the policy generation, so every node over this
    /// file (also in another process) drops what it cached.
    fn changing<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        bump_generation(&tx)?;
        let committed = tx.commit();
        self.generation_moved();
        committed?;
        Ok(out)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ingest_tx(
        &self,
        collection: &str,
        objects: &mut dyn Iterator<Item = (Cow<'_, Prepared>, Option<i64>, Option<&str>)>,
        now_us: i64,
        status: Option<&mut StatusBuilder<'_>>,
        feed: Option<(i64, i64)>,
    ) -> Result<Vec<IngestOutcome>> {
        // The iterator yields (object, given date_added, source partner).
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cseq = self.seq(&tx, collection)?;
        // Read under the write lock: no other writer can assign date_added meanwhile.
        let mut last: i64 = tx.query_row(
            "SELECT COALESCE(MAX(date_added), 0) FROM objects WHERE collection = ?1",
            [cseq],
            |r| r.get(0),
        )?;
        let mut out = Vec::new();
        for (o, given, source) in objects {
            let date = match given {
                Some(d) => d,
                None => now_us.max(last + 1),
            };
            let outcome = insert_one(&tx, cseq, &o, date, source)?;
            if let IngestOutcome::Added { date_added } = outcome {
                last = last.max(date_added);
            }
            out.push(outcome);
        }
        if let Some(status) = status {
            let (id, st) = status(&out);
            put_status(&tx, &id, &st)?;
        }
        if let Some((feed, cursor)) = feed {
            let added = out.iter().filter(|o| o.is_added()).count() as i64;
            advance(&tx, feed, cursor, added, now_us)?;
        }
        tx.commit()?;
        Ok(out)
    }

    fn select(&self, q: &ObjectQuery, with_raw: bool) -> Result<Page<StoredObject>> {
        let mut sql = String::from("SELECT stix_id, type, spec_version, version, date_added, ");
        sql.push_str(if with_raw { "raw" } else { "''" });
        sql.push_str(", tlp, pap, labels, granular, source, producer, path, about");
        sql.push_str(" FROM objects WHERE collection = ?");
        let conn = self.reader()?;
        let mut args: Vec<rusqlite::types::Value> = vec![self.seq(&conn, &q.collection)?.into()];
        // With ids, the (collection, id_hash) index finds the few rows directly; `+`
        // keeps the planner from walking the date index instead (measured: a full scan
        // of the collection per `match[id]` query otherwise). Unary plus is portable SQL.
        let date = if q.ids.is_empty() {
            "date_added"
        } else {
            "+date_added"
        };
        let floor = q.added_after.max(q.after);
        if let Some(f) = floor {
            sql.push_str(&format!(" AND {date} > ?"));
            args.push(f.into());
        }
        if !q.ids.is_empty() {
            sql.push_str(&format!(
                " AND id_hash IN ({})",
                vec!["?"; q.ids.len()].join(",")
            ));
            args.extend(q.ids.iter().map(|i| id_hash(i).into()));
            in_list(&mut sql, &mut args, "stix_id", &q.ids);
        }
        in_list(&mut sql, &mut args, "type", &q.types);
        in_list(&mut sql, &mut args, "spec_version", &q.spec_versions);
        match version_clause(&q.versions, &mut args) {
            Some(clause) => sql.push_str(&clause),
            None => {
                return Ok(Page {
                    items: Vec::new(),
                    more: false,
                });
            }
        }
        let limit = q.limit.max(1);
        sql.push_str(&format!(" ORDER BY {date} LIMIT ?"));
        args.push((limit as i64 + 1).into());
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut items = stmt
            .query_map(params_from_iter(args), |r| {
                let date_added: i64 = r.get(4)?;
                let version: Option<String> = r.get(3)?;
                Ok(StoredObject {
                    id: r.get(0)?,
                    object_type: r.get(1)?,
                    spec_version: r.get(2)?,
                    version: version
                        .and_then(|v| Timestamp::parse(&v).ok())
                        .unwrap_or_else(|| Timestamp::from_micros(date_added)),
                    date_added,
                    raw: r.get(5)?,
                    facts: facts_from_row(r, 6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, more })
    }
}

fn in_list(
    sql: &mut String,
    args: &mut Vec<rusqlite::types::Value>,
    column: &str,
    values: &[String],
) {
    if values.is_empty() {
        return;
    }
    sql.push_str(&format!(
        " AND {column} IN ({})",
        vec!["?"; values.len()].join(",")
    ));
    args.extend(values.iter().map(|v| v.clone().into()));
}

/// The SQL condition (with a leading ` AND`) for a version filter, pushing its
/// arguments; `None` when the filter matches nothing.
fn version_clause(v: &VersionFilter, args: &mut Vec<rusqlite::types::Value>) -> Option<String> {
    if v.all {
        return Some(String::new());
    }
    let mut alts = Vec::new();
    if v.last {
        alts.push(format!(
            "NOT EXISTS ({NEIGHBOUR} AND n.vkey > objects.vkey)"
        ));
    }
    if v.first {
        alts.push(format!(
            "NOT EXISTS ({NEIGHBOUR} AND n.vkey < objects.vkey)"
        ));
    }
    if !v.exact.is_empty() {
        alts.push(format!("vkey IN ({})", vec!["?"; v.exact.len()].join(",")));
        args.extend(v.exact.iter().map(|t| vkey(t).into()));
    }
    (!alts.is_empty()).then(|| format!(" AND ({})", alts.join(" OR ")))
}

fn insert_one(
    tx: &Transaction<'_>,
    collection: i64,
    o: &Prepared,
    date_added: i64,
    source: Option<&str>,
) -> Result<IngestOutcome> {
    let hash = id_hash(&o.id);
    let existing: Option<(String, i64)> = tx
        .prepare_cached(
            "SELECT raw, date_added FROM objects
             WHERE collection = ?1 AND id_hash = ?2 AND stix_id = ?3 AND vkey = ?4",
        )?
        .query_row(params![collection, hash, o.id, o.vkey], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((raw, existing_date_added)) = existing else {
        let facts = &o.facts;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO objects (collection, stix_id, id_hash, type, spec_version, vkey, version, date_added, raw,
                 tlp, pap, labels, granular, source, producer, path, about)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                collection,
                o.id,
                hash,
                o.object_type,
                o.spec_version,
                o.vkey,
                o.version,
                date_added,
                &*o.raw,
                facts.tlp.map(tlp_code),
                facts.pap.map(pap_code),
                labels_text(&facts.labels),
                facts.granular_text(),
                source,
                facts.producer,
                facts.path_text(),
                facts.about,
            ]);
        or_exists(inserted, || {
            format!("date_added {date_added} in collection {collection}")
        })?;
        if !o.covers.is_empty() {
            index_attestation(
                tx,
                collection,
                tx.last_insert_rowid(),
                o.covers.iter().map(|(id, v)| (id.as_str(), v.as_str())),
            )?;
        }
        return Ok(IngestOutcome::Added { date_added });
    };
    // The (id, version) is taken: the same content is a duplicate, anything else a conflict.
    let parse = |text: &str| StixObject::parse(text.as_bytes(), 128).ok();
    let same = *raw == *o.raw
        || matches!((parse(&raw), parse(&o.raw)), (Some(a), Some(b)) if a.same_content(&b));
    Ok(if same {
        IngestOutcome::Duplicate
    } else {
        IngestOutcome::Conflict {
            existing_date_added,
        }
    })
}

/// The internal key of a collection.
fn collection_seq(conn: &Connection, id: &str) -> Result<i64> {
    conn.prepare_cached("SELECT seq FROM collections WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("collection {id}")))
}

fn is_alias(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn api_root_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiRoot> {
    Ok(ApiRoot {
        name: r.get(0)?,
        title: r.get(1)?,
        description: r.get(2)?,
        max_content_length: r.get::<_, i64>(3)? as u64,
    })
}

fn collection_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Collection> {
    let media: String = r.get(7)?;
    Ok(Collection {
        id: r.get(0)?,
        api_root: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        alias: r.get(4)?,
        can_read: r.get(5)?,
        can_write: r.get(6)?,
        media_types: media
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

const COLLECTION_COLUMNS: &str =
    "id, api_root, title, description, alias, can_read, can_write, media_types";

impl Store for SqliteStore {
    fn ensure_api_root(&self, name: &str, title: &str) -> Result<ApiRoot> {
        if !is_alias(name) {
            return Err(StoreError::Invalid(format!(
                "API root name {name:?} (use letters, digits, '-', '_', '.')"
            )));
        }
        let find = |conn: &Connection| {
            conn.query_row(
                "SELECT name, title, description, max_content_length FROM api_roots WHERE name = ?1",
                [name],
                api_root_from_row,
            )
            .optional()
        };
        // Read first: every node start ensures its default root, and moving the
        // generation when nothing changed would drop every node's caches.
        if let Some(root) = find(&self.conn())? {
            return Ok(root);
        }
        self.changing(|conn| {
            conn.execute(
                "INSERT INTO api_roots (name, title, description, max_content_length) VALUES (?1, ?2, NULL, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, title, DEFAULT_MAX_CONTENT_LENGTH as i64],
            )?;
            find(conn)?.ok_or_else(|| StoreError::NotFound(format!("API root {name:?}")))
        })
    }

    fn put_api_root(&self, root: &ApiRoot) -> Result<()> {
        if !is_alias(&root.name) {
            return Err(StoreError::Invalid(format!(
                "API root name {:?}",
                root.name
            )));
        }
        self.changing(|conn| {
            conn.execute(
                "INSERT INTO api_roots (name, title, description, max_content_length) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description,
                 max_content_length = excluded.max_content_length",
                params![root.name, root.title, root.description, root.max_content_length as i64],
            )?;
            Ok(())
        })
    }

    fn api_roots(&self) -> Result<Vec<ApiRoot>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT name, title, description, max_content_length FROM api_roots ORDER BY name",
        )?;
        let roots = stmt
            .query_map([], api_root_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(roots)
    }

    fn create_collection(&self, api_root: &str, c: &NewCollection) -> Result<Collection> {
        if let Some(a) = &c.alias
            && !is_alias(a)
        {
            return Err(StoreError::Invalid(format!(
                "collection alias {a:?} (use letters, digits, '-', '_', '.')"
            )));
        }
        if c.title.trim().is_empty() {
            return Err(StoreError::Invalid("collection title (empty)".into()));
        }
        let id = match &c.id {
            Some(id) => uuid::Uuid::parse_str(id)
                .map_err(|_| StoreError::Invalid(format!("collection id {id:?} (not a UUID)")))?
                .to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let media = if c.media_types.is_empty() {
            phalanx_stix::STIX_MEDIA_TYPE.to_owned()
        } else {
            c.media_types.join(",")
        };
        self.changing(|conn| {
        let root_exists = conn
            .query_row(
                "SELECT 1 FROM api_roots WHERE name = ?1",
                [api_root],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !root_exists {
            return Err(StoreError::NotFound(format!("API root {api_root:?}")));
        }
        let clash: Option<String> = conn
            .query_row(
                "SELECT id FROM collections WHERE id = ?1 OR (api_root = ?2 AND alias = ?3)",
                params![id, api_root, c.alias],
                |r| r.get(0),
            )
            .optional()?;
        if clash.is_some() {
            return Err(StoreError::Exists(format!(
                "collection {}",
                c.alias.as_deref().unwrap_or(&id)
            )));
        }
        conn.execute(
            "INSERT INTO collections (id, api_root, title, description, alias, can_read, can_write, media_types)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![id, api_root, c.title, c.description, c.alias, c.can_read, c.can_write, media],
        )?;
        Ok(())
        })?;
        self.find_collection(&id)
    }

    fn collections(&self, api_root: Option<&str>) -> Result<Vec<Collection>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLLECTION_COLUMNS} FROM collections WHERE ?1 IS NULL OR api_root = ?1 ORDER BY seq"
        ))?;
        let cols = stmt
            .query_map([api_root], collection_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(cols)
    }

    fn find_collection(&self, key: &str) -> Result<Collection> {
        let conn = self.reader()?;
        for column in ["id", "alias", "title"] {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLLECTION_COLUMNS} FROM collections WHERE {column} = ?1 ORDER BY seq"
            ))?;
            let found = stmt
                .query_map([key], collection_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            match found.len() {
                0 => continue,
                1 => return Ok(found.into_iter().next().expect("one element")),
                n => {
                    return Err(StoreError::Invalid(format!(
                        "collection {key:?}: {n} collections have that {column}; use the id"
                    )));
                }
            }
        }
        Err(StoreError::NotFound(format!("collection {key:?}")))
    }

    fn ingest_from(
        &self,
        collection: &str,
        objects: &[ValidObject],
        source: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_tx(
            collection,
            &mut objects
                .iter()
                .map(|o| (Cow::Owned(Prepared::of(o)), None, source)),
            now_us,
            None,
            None,
        )
    }

    fn ingest_prepared(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_tx(
            collection,
            &mut versions.iter().map(|v| (Cow::Borrowed(v), None, source)),
            now_us,
            None,
            None,
        )
    }

    fn ingest_with_status(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
        status: &mut StatusBuilder<'_>,
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_tx(
            collection,
            &mut versions.iter().map(|v| (Cow::Borrowed(v), None, source)),
            now_us,
            Some(status),
            None,
        )
    }

    fn ingest_with_dates(
        &self,
        collection: &str,
        objects: &[Restored],
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_tx(
            collection,
            &mut objects.iter().map(|r| {
                let mut v = Prepared::of(&r.object);
                v.facts.path = r.path.clone();
                (Cow::Owned(v), Some(r.date_added), r.source.as_deref())
            }),
            0,
            None,
            None,
        )
    }

    fn query(&self, q: &ObjectQuery) -> Result<Page<StoredObject>> {
        self.select(q, true)
    }

    fn manifest(&self, q: &ObjectQuery) -> Result<Page<StoredObject>> {
        self.select(q, false)
    }

    fn delete_with_notices(
        &self,
        collection: &str,
        id: &str,
        versions: &VersionFilter,
        spec_versions: &[String],
        notice: &NoticeBuilder<'_>,
        now_us: i64,
    ) -> Result<usize> {
        let mut sql = String::from(
            "DELETE FROM objects WHERE collection = ? AND id_hash = ? AND stix_id = ?",
        );
        let mut conn = self.conn();
        let cseq = self.seq(&conn, collection)?;
        let mut args: Vec<rusqlite::types::Value> =
            vec![cseq.into(), id_hash(id).into(), id.to_owned().into()];
        in_list(&mut sql, &mut args, "spec_version", spec_versions);
        match version_clause(versions, &mut args) {
            Some(clause) => sql.push_str(&clause),
            None => return Ok(0),
        }
        // Each deleted version leaves a tombstone in the same transaction, with its facts,
        // so push feeds can recall it from the peers the policy let it go to.
        sql.push_str(
            " RETURNING stix_id, type, version, tlp, pap, labels, granular, source, producer, path, raw, about",
        );
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = {
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, String>(10)?,
                        r.get::<_, Option<String>>(11)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut insert = tx.prepare(
                "INSERT INTO tombstones (collection, stix_id, type, version, tlp, pap, labels, granular, source, producer, path, about)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (id, ty, version, tlp, pap, labels, granular, source, producer, path, _, about) in
                &rows
            {
                insert.execute(params![
                    cseq, id, ty, version, tlp, pap, labels, granular, source, producer, path,
                    about
                ])?;
            }
            // The notices of the deleted versions, stored like any new object.
            let mut last: i64 = tx.query_row(
                "SELECT COALESCE(MAX(date_added), 0) FROM objects WHERE collection = ?1",
                [cseq],
                |r| r.get(0),
            )?;
            for (id, ty, version, _, _, _, _, source, _, path, raw, about) in &rows {
                let deleted = Deleted {
                    id,
                    object_type: ty,
                    version: version.as_deref(),
                    raw,
                    source: source.as_deref(),
                    path: Facts::parse_path(path.as_deref()),
                    about: about.as_deref(),
                };
                if let Some(n) = notice(&deleted) {
                    let date = now_us.max(last + 1);
                    if let IngestOutcome::Added { date_added } =
                        insert_one(&tx, cseq, &n, date, deleted.source)?
                    {
                        last = date_added;
                    }
                }
            }
            rows.len()
        };
        tx.commit()?;
        Ok(n)
    }

    fn tombstones(
        &self,
        collection: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Tombstone>> {
        let conn = self.reader()?;
        let cseq = self.seq(&conn, collection)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, stix_id, type, version, tlp, pap, labels, granular, source, producer, path, about FROM tombstones
             WHERE collection = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        Ok(stmt
            .query_map(params![cseq, after.unwrap_or(0), limit as i64], |r| {
                Ok(Tombstone {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    object_type: r.get(2)?,
                    version: r.get(3)?,
                    facts: facts_from_row(r, 4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn attestations_of(&self, collection: &str, id: &str, version: &str) -> Result<Vec<String>> {
        let conn = self.reader()?;
        let cseq = self.seq(&conn, collection)?;
        let mut stmt = conn.prepare_cached(
            "SELECT o.raw FROM attested a JOIN objects o ON o.seq = a.attestation
             WHERE a.collection = ?1 AND a.stix_id = ?2 AND a.version = ?3 ORDER BY a.attestation",
        )?;
        Ok(stmt
            .query_map(params![cseq, id, version], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn feed_recalled(&self, id: i64, seq: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE feeds SET tomb_cursor = MAX(COALESCE(tomb_cursor, ?2), ?2) WHERE id = ?1",
            params![id, seq],
        )?;
        Ok(())
    }

    fn last_tombstone(&self, collection: &str) -> Result<Option<i64>> {
        let conn = self.reader()?;
        let cseq = self.seq(&conn, collection)?;
        Ok(conn
            .prepare_cached("SELECT MAX(seq) FROM tombstones WHERE collection = ?1")?
            .query_row([cseq], |r| r.get(0))?)
    }

    fn last_added(&self, collection: &str) -> Result<Option<i64>> {
        let conn = self.reader()?;
        let cseq = self.seq(&conn, collection)?;
        Ok(conn
            .prepare_cached("SELECT MAX(date_added) FROM objects WHERE collection = ?1")?
            .query_row([cseq], |r| r.get(0))?)
    }

    fn count(&self, collection: &str) -> Result<u64> {
        let conn = self.reader()?;
        let cseq = self.seq(&conn, collection)?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM objects WHERE collection = ?1",
            [cseq],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn total_objects(&self) -> Result<u64> {
        let n: i64 = self
            .reader()?
            .query_row("SELECT COUNT(*) FROM objects", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn add_principal(&self, p: &Principal) -> Result<()> {
        let access = |a| serde_json::to_string(a).map_err(|e| StoreError::Invalid(e.to_string()));
        let kind = match p.kind {
            PrincipalKind::User => "user",
            PrincipalKind::Token => "token",
        };
        self.changing(|conn| {
        let res = conn.execute(
            "INSERT INTO principals (id, kind, name, org, secret_hash, read_access, write_access, admin, created, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                p.id,
                kind,
                p.name,
                p.org,
                p.secret_hash,
                access(&p.read)?,
                access(&p.write)?,
                p.admin,
                p.created_us,
                p.revoked_us
            ],
        );
        or_exists(res, || format!("principal {:?}", p.id)).map(|_| ())
        })
    }

    fn principal(&self, id: &str) -> Result<Principal> {
        self.reader()?
            .query_row(
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = ?1"),
                [id],
                principal_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("{id:?}")))?
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<Principal>> {
        self.reader()?
            .prepare_cached(&format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE secret_hash = ?1 AND kind = 'token'"
            ))?
            .query_row([hash], principal_from_row)
            .optional()?
            .transpose()
    }

    fn principals(&self) -> Result<Vec<Principal>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY created, id"
        ))?;
        let rows = stmt
            .query_map([], principal_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().collect()
    }

    fn revoke_principal(&self, id: &str, now_us: i64) -> Result<()> {
        self.changing(|conn| {
            let n = conn.execute(
                "UPDATE principals SET revoked = COALESCE(revoked, ?2) WHERE id = ?1",
                params![id, now_us],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("{id:?}")));
            }
            Ok(())
        })
    }

    fn put_status(&self, id: &str, st: &StoredStatus) -> Result<()> {
        put_status(&self.conn(), id, st)
    }

    fn status(&self, id: &str) -> Result<Option<StoredStatus>> {
        Ok(self
            .reader()?
            .prepare_cached("SELECT api_root, owner, created, body FROM statuses WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(StoredStatus {
                    api_root: r.get(0)?,
                    owner: r.get(1)?,
                    created_us: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn purge_statuses(&self, before_us: i64) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM statuses WHERE created < ?1", [before_us])?)
    }

    fn purge_notices(&self, before_us: i64) -> Result<usize> {
        // Rare (deletions only) and run hourly: a scan of the type column is enough.
        Ok(self.conn().execute(
            "DELETE FROM objects WHERE type = ?1 AND date_added < ?2",
            params![phalanx_policy::provenance::RECALL, before_us],
        )?)
    }

    fn put_partner(&self, p: &Partner, now_us: i64) -> Result<()> {
        let doc = serde_json::to_string(p).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO partners (id, doc, updated) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated = excluded.updated",
            params![p.id, doc, now_us],
        )?;
        bump_generation(&tx)?;
        let committed = tx.commit();
        self.generation_moved();
        committed?;
        Ok(())
    }

    fn partners(&self) -> Result<Vec<Partner>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached("SELECT id, doc FROM partners ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, doc)| {
                serde_json::from_str(&doc)
                    .map_err(|e| StoreError::Corrupt(format!("partner {id:?}: {e}")))
            })
            .collect()
    }

    fn add_agreement(&self, a: &StoredAgreement) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let res = tx.execute(
            "INSERT INTO agreements (id, version, doc, created, author) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, a.version, a.doc, a.created_us, a.author],
        );
        or_exists(res, || format!("agreement {} version {}", a.id, a.version))?;
        bump_generation(&tx)?;
        let committed = tx.commit();
        self.generation_moved();
        committed?;
        Ok(())
    }

    fn agreement_history(&self, id: &str) -> Result<Vec<StoredAgreement>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, version, doc, created, author FROM agreements WHERE id = ?1 ORDER BY version",
        )?;
        Ok(stmt
            .query_map([id], agreement_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn agreements(&self) -> Result<Vec<StoredAgreement>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, version, doc, created, author FROM agreements a
             WHERE version = (SELECT MAX(version) FROM agreements b WHERE b.id = a.id) ORDER BY id",
        )?;
        Ok(stmt
            .query_map([], agreement_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn ingest_feed_page(
        &self,
        collection: &str,
        versions: &[Prepared],
        source: Option<&str>,
        now_us: i64,
        feed: i64,
        cursor: i64,
    ) -> Result<Vec<IngestOutcome>> {
        self.ingest_tx(
            collection,
            &mut versions.iter().map(|v| (Cow::Borrowed(v), None, source)),
            now_us,
            None,
            Some((feed, cursor)),
        )
    }

    fn add_feed(&self, f: &NewFeed) -> Result<Feed> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let res = tx.execute(
            "INSERT INTO feeds (partner, direction, remote, local, cursor, failures, moved, tomb_cursor)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, (SELECT MAX(seq) FROM tombstones))",
            params![f.partner, f.direction.as_str(), f.remote, f.local, f.cursor],
        );
        or_exists(res, || {
            format!("{} feed {} {}", f.direction.as_str(), f.partner, f.remote)
        })?;
        let id = tx.last_insert_rowid();
        bump_generation(&tx)?;
        let committed = tx.commit();
        self.generation_moved();
        committed?;
        drop(conn);
        self.feeds()?
            .into_iter()
            .find(|x| x.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("feed {id}")))
    }

    fn feeds(&self) -> Result<Vec<Feed>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, partner, direction, remote, local, cursor, last_ok, last_error, last_error_at,
             failures, moved, tomb_cursor FROM feeds ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let d: String = r.get(2)?;
                Ok((
                    d,
                    Feed {
                        id: r.get(0)?,
                        partner: r.get(1)?,
                        direction: FeedDirection::Pull,
                        remote: r.get(3)?,
                        local: r.get(4)?,
                        cursor: r.get(5)?,
                        last_ok_us: r.get(6)?,
                        last_error: r.get(7)?,
                        last_error_us: r.get(8)?,
                        failures: r.get(9)?,
                        moved: r.get(10)?,
                        recalled_up_to: r.get(11)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(d, mut f)| {
                f.direction = FeedDirection::parse(&d).ok_or_else(|| {
                    StoreError::Corrupt(format!("feed {}: direction {d:?}", f.id))
                })?;
                Ok(f)
            })
            .collect()
    }

    fn remove_feed(&self, id: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM feeds WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound(format!("feed {id}")));
        }
        bump_generation(&tx)?;
        let committed = tx.commit();
        self.generation_moved();
        committed?;
        Ok(())
    }

    fn feed_progress(&self, id: i64, cursor: i64, moved: i64, now_us: i64) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        advance(&tx, id, cursor, moved, now_us)?;
        tx.commit()?;
        Ok(())
    }

    fn feed_error(&self, id: i64, message: &str, now_us: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE feeds SET last_error = ?2, last_error_at = ?3, failures = failures + 1 WHERE id = ?1",
            params![id, message, now_us],
        )?;
        Ok(())
    }

    fn policy_generation(&self) -> Result<i64> {
        use std::sync::atomic::Ordering;
        let moves = self.moves.load(Ordering::SeqCst);
        if let Some((at, g, m)) = *self.generation.lock().unwrap_or_else(|e| e.into_inner())
            && m == moves
            && at.elapsed() < GENERATION_RECHECK
        {
            return Ok(g);
        }
        let at = std::time::Instant::now();
        let v: Option<String> = self
            .reader()?
            .prepare_cached("SELECT value FROM settings WHERE key = 'policy.generation'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let g = v.and_then(|v| v.parse().ok()).unwrap_or(0);
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, g, moves));
        Ok(g)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()?
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        )?;
        Ok(
            conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })?,
        )
    }
}

fn put_status(conn: &Connection, id: &str, st: &StoredStatus) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO statuses (id, api_root, owner, created, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body",
    )?
    .execute(params![id, st.api_root, st.owner, st.created_us, st.body])?;
    Ok(())
}

const PRINCIPAL_COLUMNS: &str =
    "id, kind, name, org, secret_hash, read_access, write_access, admin, created, revoked";

fn principal_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Principal>> {
    let kind: String = r.get(1)?;
    let read: String = r.get(5)?;
    let write: String = r.get(6)?;
    let id: String = r.get(0)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("principal {id:?}: bad {what}"));
    let kind = match kind.as_str() {
        "user" => PrincipalKind::User,
        "token" => PrincipalKind::Token,
        _ => return Ok(Err(corrupt("kind"))),
    };
    let (Ok(read), Ok(write)) = (serde_json::from_str(&read), serde_json::from_str(&write)) else {
        return Ok(Err(corrupt("access")));
    };
    Ok(Ok(Principal {
        kind,
        name: r.get(2)?,
        org: r.get(3)?,
        secret_hash: r.get(4)?,
        read,
        write,
        admin: r.get(7)?,
        created_us: r.get(8)?,
        revoked_us: r.get(9)?,
        id,
    }))
}

fn agreement_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAgreement> {
    Ok(StoredAgreement {
        id: r.get(0)?,
        version: r.get(1)?,
        doc: r.get(2)?,
        created_us: r.get(3)?,
        author: r.get(4)?,
    })
}

fn bump_generation(tx: &Connection) -> Result<()> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('policy.generation', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
        [],
    )?;
    Ok(())
}

fn labels_text(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default())
}

/// The sharing facts in columns `first..first+8` (tlp, pap, labels, granular, source,
/// producer, path, about).
fn facts_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Facts> {
    let corrupt = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            first,
            rusqlite::types::Type::Text,
            format!("stored sharing facts: bad {what}").into(),
        )
    };
    let tlp: Option<u8> = r.get(first)?;
    let pap: Option<u8> = r.get(first + 1)?;
    let labels: Option<String> = r.get(first + 2)?;
    let granular: Option<String> = r.get(first + 3)?;
    Ok(Facts {
        tlp: match tlp {
            Some(n) => Some(tlp_from_code(n).ok_or_else(|| corrupt("tlp"))?),
            None => None,
        },
        pap: match pap {
            Some(n) => Some(pap_from_code(n).ok_or_else(|| corrupt("pap"))?),
            None => None,
        },
        labels: match labels {
            Some(l) => serde_json::from_str(&l).map_err(|_| corrupt("labels"))?,
            None => Vec::new(),
        },
        granular: match granular {
            Some(g) => Facts::parse_granular(&g).map_err(|_| corrupt("granular markings"))?,
            None => Vec::new(),
        },
        source: r.get(first + 4)?,
        producer: r.get(first + 5)?,
        path: Facts::parse_path(r.get::<_, Option<String>>(first + 6)?.as_deref()),
        about: r.get(first + 7)?,
    })
}

/// Computes the facts a store of an older schema lacks: markings (`markings`: before
/// schema 3), producers and the attestation index (before schema 6).
fn backfill_facts(tx: &Transaction<'_>, markings: bool) -> Result<()> {
    let rows: Vec<(i64, i64, String)> = tx
        .prepare("SELECT seq, collection, raw FROM objects")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare(
        "UPDATE objects SET tlp = ?2, pap = ?3, labels = ?4, granular = ?5 WHERE seq = ?1",
    )?;
    let mut producer = tx.prepare("UPDATE objects SET producer = ?2 WHERE seq = ?1")?;
    for (seq, collection, raw) in rows {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&raw) else {
            return Err(StoreError::Corrupt(format!("object row {seq} is not JSON")));
        };
        let f = Facts::of(&map, None);
        if markings {
            update.execute(params![
                seq,
                f.tlp.map(tlp_code),
                f.pap.map(pap_code),
                labels_text(&f.labels),
                f.granular_text()
            ])?;
        }
        producer.execute(params![seq, f.producer])?;
        if map.get("type").and_then(serde_json::Value::as_str) == Some(ATTESTATION) {
            index_attestation(
                tx,
                collection,
                seq,
                phalanx_policy::provenance::covered(&map),
            )?;
        }
    }
    Ok(())
}

/// Records what a stored attestation (row `seq`) claims to cover.
fn index_attestation<'a>(
    tx: &Transaction<'_>,
    collection: i64,
    seq: i64,
    covers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO attested (collection, stix_id, version, attestation) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (id, version) in covers {
        insert.execute(params![collection, id, version, seq])?;
    }
    Ok(())
}

/// Moves a feed's cursor forward (never back) and records a success.
fn advance(tx: &Transaction<'_>, feed: i64, cursor: i64, moved: i64, now_us: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE feeds SET cursor = MAX(COALESCE(cursor, ?2), ?2), last_ok = ?4, failures = 0,
         moved = moved + ?3 WHERE id = ?1",
    )?
    .execute(params![feed, cursor, moved, now_us])?;
    Ok(())
}

/// A uniqueness violation as [`StoreError::Exists`] naming `what`; other errors as they are.
fn or_exists<T>(r: rusqlite::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    match r {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Exists(what()))
        }
        r => Ok(r?),
    }
}
