//! The indicator index: active STIX indicators compiled into lookup structures by
//! observable, updated incrementally, and matched against [`Record`]s.
//!
//! Structures (all keyed by an interned object path such as `ipv4-addr:value`):
//! - exact values (`=`, `IN`): one `HashTable` of `u32` atom indices, hashed over
//!   (path, value); values live in one byte arena; atoms with the same key are chained;
//! - parent domains (`LIKE '%.example.com'` on `domain-name:value`): the same table
//!   under a derived path, probed with every `.`-suffix of an observed name;
//! - CIDR blocks (`ISSUBSET`): one hash map per (path, family, prefix length) that is
//!   in use, probed for each used prefix length no longer than the observed block's —
//!   a longest-prefix lookup in at most 33 (IPv4) / 129 (IPv6) probes, usually a few;
//! - `LIKE` literals: one Aho-Corasick automaton over all literals;
//! - `MATCHES`: one `RegexSet` (linear-time engine, size-limited);
//! - patterns without any indexable comparison: an always-evaluate list (counted in
//!   [`IndexStats::always_evaluate`]).
//!
//! Per indicator the index keeps a 48-byte slot (UUID, `modified`, `valid_until`,
//! flags) and, unless the pattern is decided by the index alone, its compiled
//! [`Matcher`]. A simple indicator owns no allocation of its own: its value sits in the
//! shared arena and its atom in a flat vector.
//!
//! ## Matching many records
//!
//! On a large index, matching a record is mostly waiting for memory: the Bloom
//! filter's word of each probe (the filter is ~8 MiB at a million indicators, past
//! L2), rarely a hash-table bucket. [`Index::match_record`] loads the words of one
//! record's probes together, so its misses overlap one another but not those of the
//! next record. [`Index::match_records`] (used by [`crate::Hunt::feed`] and
//! [`crate::Hunt::read`], 32 lines at a time) plans the probes of eight records,
//! prefetching each filter word as its hash is computed (`_mm_prefetch` on x86_64, a
//! no-op elsewhere), and only then runs them: the loads of eight records are in
//! flight together, and most have arrived when they are tested. Same hits in the same
//! order and same counters as one record at a time (a property test checks it, and the
//! benchmark counts hits both ways). The probe buffers (~8 KiB) are made once per
//! call: made per group of eight they were a quarter of the matching instructions.
//! CIDR lookups visit only the prefix lengths in use (`PrefixSet`, a 129-bit set per
//! path and family) instead of testing all 33 / 129: that loop was ~14% of
//! `plan_pair`'s samples.
//!
//! Measured with `cargo run --release -p phalanx-detect --example bench --
//! --indicators 1000000 --lines 1000000` (three interleaved runs on the shared
//! two-core machine, medians): parse + match 1.21 M lines/s one record at a time →
//! 1.39 M with `match_records` (the same binary's one-at-a-time figure, which also
//! gets the prefetch, 1.27 M); `run_probes`, the filter loads, fell from ~9% to ~2%
//! of the samples. Batches of sixteen were no faster than eight. What remains per
//! record: planning (`plan_pair`, hashing, the probe buffer, ~10% of the parse +
//! match samples), the `LIKE` automaton over names and the `MATCHES` set over URLs
//! (~2%), and the table lookups of probes that pass the filter (~2%).
//!
//! ## Updates and concurrency
//!
//! [`Index::insert`], [`Index::remove`] and [`Index::expire`] take `&mut self`;
//! matching ([`Index::match_record`]) takes `&self` and is `Sync`. A service shares the
//! index as `Arc<RwLock<Index>>`: matchers take the read lock per batch of lines, and an
//! update takes the write lock for a short time — an insert or removal costs the
//! indicator's own atoms (hash inserts or a tombstone), never a full rebuild. The
//! Aho-Corasick automaton and the regex set are kept in two levels (the logarithmic
//! method): new `LIKE` / `MATCHES` atoms are checked one by one until
//! [`IndexConfig::rebuild_after`] of them (`/ 4` for regexes) have arrived, then go
//! into a small automaton / set rebuilt from the recent atoms only; when the small one
//! outgrows a quarter of the main one, both are merged. Each atom so takes part in
//! O(log n) rebuilds, and lookups stay a few automaton runs.
//! Removed and expired indicators are tombstoned (their atoms stop answering at once)
//! and swept when dead atoms outnumber live ones.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

use aho_corasick::AhoCorasick;
use hashbrown::HashTable;
use phalanx_pattern::{Limits, Matcher, Pattern};
use phalanx_stix::Timestamp;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::error::{IndicatorError, IndicatorErrorKind};
use crate::observable::{KNOWN_PATHS, Record};
use crate::plan::{Atom, plan};
use phalanx_pattern::net::Block;

/// Limits and tuning of an [`Index`].
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Limits for parsing and compiling patterns (length, depth, `IN` size, regex size,
    /// evaluation steps).
    pub limits: Limits,
    /// New `LIKE` / `MATCHES` atoms checked one by one before the automaton or regex set
    /// is rebuilt.
    pub rebuild_after: usize,
    /// Compiled-size limit of the combined `MATCHES` regex set, in bytes; over it the
    /// regexes are run one by one.
    pub max_regex_set_bytes: usize,
    /// Deepest JSON nesting accepted in an indicator.
    pub max_json_depth: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            limits: Limits::default(),
            rebuild_after: 32,
            max_regex_set_bytes: 64 << 20,
            max_json_depth: 64,
        }
    }
}

/// A reference to an indexed indicator: its UUID (the id is `indicator--<uuid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndicatorRef(pub [u8; 16]);

impl IndicatorRef {
    /// The STIX id, `indicator--<uuid>`.
    pub fn id(&self) -> String {
        format!("indicator--{}", uuid::Uuid::from_bytes(self.0))
    }
}

impl std::fmt::Display for IndicatorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "indicator--{}", uuid::Uuid::from_bytes(self.0))
    }
}

/// What [`Index::insert`] did with an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Indexed; the pattern is decided by the index alone.
    Simple,
    /// Indexed; candidates are confirmed by the evaluator.
    Confirmed,
    /// Kept, but no comparison can drive lookup: evaluated on every record.
    AlwaysEvaluate,
    /// `valid_from` is in the future: kept aside, indexed by [`Index::expire`] later.
    Pending,
    /// An equal or newer version is already indexed; nothing changed.
    Stale,
    /// A revoked version: the indicator was removed (or was not there).
    Revoked,
    /// Not active: `valid_until` has passed.
    Expired,
    /// `pattern_type` is not `stix`: not matched here.
    NotStix,
}

/// Counts of what an index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Indicators being matched.
    pub live: usize,
    /// Of those, decided by the index alone.
    pub simple: usize,
    /// Of those, confirmed by the evaluator.
    pub confirmed: usize,
    /// Of those, evaluated on every record (no indexable comparison).
    pub always_evaluate: usize,
    /// Waiting for their `valid_from`.
    pub pending: usize,
    /// Exact-value atoms (including parent-domain suffixes).
    pub exact_atoms: usize,
    /// CIDR atoms.
    pub cidr_atoms: usize,
    /// `LIKE` atoms.
    pub like_atoms: usize,
    /// `MATCHES` atoms.
    pub regex_atoms: usize,
    /// Whether the `MATCHES` atoms exceeded the regex-set size limit and run one by one.
    pub regex_set_fallback: bool,
}

/// What [`Index::build`] did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Outcome counts by kind, in input order of first occurrence.
    pub outcomes: Vec<(Inserted, usize)>,
    /// Indicators that could not be used, with the reason (id when known).
    pub errors: Vec<IndicatorError>,
}

impl BuildReport {
    fn count(&mut self, o: Inserted) {
        match self.outcomes.iter_mut().find(|(k, _)| *k == o) {
            Some((_, n)) => *n += 1,
            None => self.outcomes.push((o, 1)),
        }
    }

    /// How many inserts had outcome `o`.
    pub fn count_of(&self, o: Inserted) -> usize {
        self.outcomes
            .iter()
            .find(|(k, _)| *k == o)
            .map_or(0, |(_, n)| *n)
    }
}

/// What [`Index::expire`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Indicators removed because `valid_until` passed.
    pub expired: usize,
    /// Pending indicators whose `valid_from` arrived, now indexed.
    pub activated: usize,
}

/// One confirmed match of an indicator on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The indicator.
    pub indicator: IndicatorRef,
    /// When (the record's time, or the fallback time).
    pub time: Timestamp,
    /// How many observations it stands for (`number_observed` for STIX input, else 1).
    pub count: u64,
}

/// Counters of matching work, summed over calls to [`Index::match_record`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchStats {
    /// Records matched.
    pub records: u64,
    /// Candidates the evaluator checked.
    pub evaluated: u64,
    /// Hits.
    pub hits: u64,
    /// Evaluations that failed ([`phalanx_pattern::MatchError`]); counted as no match.
    pub eval_errors: u64,
    /// The first few evaluation errors: indicator id and message.
    pub eval_error_sample: Vec<(String, String)>,
}

const NONE: u32 = u32::MAX;
const NO_PATH: u16 = u16::MAX;
const MAX_EXACT_LEN: usize = u16::MAX as usize;
const ERROR_SAMPLE: usize = 10;
const SUFFIX_MARK: &str = "#suffix";

#[derive(Debug, Clone, Copy)]
struct Slot {
    uuid: [u8; 16],
    modified: i64,
    valid_until: i64,
    /// Index into `matchers`, or `NONE` when decided by the index.
    matcher: u32,
    atoms: u32,
    live: bool,
    always: bool,
}

#[derive(Debug, Clone, Copy)]
struct ExactAtom {
    slot: u32,
    next: u32,
    off: u32,
    len: u16,
    path: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CidrKey {
    path: u16,
    v6: bool,
    prefix: u8,
    net: u128,
}

/// A set of prefix lengths, 0 to 128 (longer ones are stored as 128).
///
/// Why a bit set: a CIDR lookup probes every used length up to the observed block's,
/// and testing all 33 (IPv4) or 129 (IPv6) lengths one by one was ~1% of the eve
/// benchmark's samples with a single length in use.
#[derive(Debug, Clone, Copy, Default)]
struct PrefixSet([u64; 3]);

impl PrefixSet {
    fn insert(&mut self, len: u8) {
        let len = usize::from(len.min(128));
        self.0[len / 64] |= 1 << (len % 64);
    }

    /// The lengths in the set up to `max`, shortest first.
    fn up_to(self, max: u8) -> impl Iterator<Item = u8> {
        self.0
            .into_iter()
            .enumerate()
            .flat_map(|(w, mut bits)| {
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let low = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some(w * 64 + low)
                })
            })
            .take_while(move |&len| len <= usize::from(max))
            .map(|len| len as u8)
    }
}

/// Probes buffered per record before the filter is consulted ([`Index::run_probes`]).
const PROBES: usize = 16;

/// Records planned together by [`Index::match_records`].
const MATCH_BATCH: usize = 8;

/// The key of one filtered lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKey<'v> {
    /// An exact (or parent-domain) value under a path.
    Exact { path: u16, value: &'v [u8] },
    /// A CIDR block.
    Cidr(CidrKey),
}

/// One filtered lookup: the key and its hash.
#[derive(Debug, Clone, Copy)]
struct Probe<'v> {
    hash: u64,
    key: ProbeKey<'v>,
}

/// A fixed buffer of probes (no allocation per record).
struct Probes<'v> {
    buf: [Probe<'v>; PROBES],
    len: usize,
}

impl<'v> Probes<'v> {
    const fn new() -> Self {
        let empty = Probe {
            hash: 0,
            key: ProbeKey::Exact {
                path: NO_PATH,
                value: &[],
            },
        };
        Probes {
            buf: [empty; PROBES],
            len: 0,
        }
    }
}

#[derive(Debug)]
struct LikeAtom {
    slot: u32,
    path: u16,
    literal: Box<str>,
}

#[derive(Debug)]
struct RegexAtom {
    slot: u32,
    path: u16,
    regex: Box<str>,
    /// Compiled alone while pending, or when the set is over its size limit.
    single: Option<Regex>,
}

#[derive(Debug)]
struct PendingIndicator {
    uuid: [u8; 16],
    valid_from: i64,
    modified: i64,
    json: Value,
}

/// The indicator index. See the module documentation for structure and concurrency.
pub struct Index {
    config: IndexConfig,
    hasher: hashbrown::DefaultHashBuilder,
    slots: Vec<Slot>,
    ids: HashTable<u32>,
    matchers: Vec<Option<Matcher>>,
    free_matchers: Vec<u32>,
    paths: Vec<Box<str>>,
    path_ids: HashMap<Box<str>, u16>,
    known: [u16; KNOWN_PATHS.len()],
    /// Per path id: bit 0 exact, 1 suffix, 2 cidr, 3 like, 4 regex.
    path_flags: Vec<u8>,
    /// Per path id: the id of its parent-domain suffix path, or `NO_PATH`.
    suffix_path: Vec<u16>,
    arena: Vec<u8>,
    exact: Vec<ExactAtom>,
    exact_table: HashTable<u32>,
    /// A blocked Bloom filter over exact and CIDR keys (three bits in one 64-bit word
    /// per key, see `bloom_bits`): most lookups miss, and this saves them the table's
    /// cache misses. [`Index::match_record`] computes every key of a record first and
    /// then reads their filter words together, so the misses on the filter overlap.
    bloom: Vec<u64>,
    bloom_keys: usize,
    cidr: hashbrown::HashMap<CidrKey, u32>,
    cidr_atoms: Vec<(u32, u32)>,
    /// Per (path, family): the prefix lengths that have CIDR atoms (bit `n` of the
    /// set for length `n`), so a lookup visits only those.
    cidr_lens: hashbrown::HashMap<(u16, bool), PrefixSet>,
    like: Vec<LikeAtom>,
    like_ac: Option<AhoCorasick>,
    like_main: usize,
    like_small: Option<AhoCorasick>,
    like_built: usize,
    regex: Vec<RegexAtom>,
    regex_set: Option<RegexSet>,
    regex_main: usize,
    regex_small: Option<RegexSet>,
    regex_built: usize,
    regex_fallback: bool,
    always: Vec<u32>,
    pending: Vec<PendingIndicator>,
    deferred: bool,
    dead_atoms: usize,
    live_atoms: usize,
    stats: IndexStats,
}

// Matching from several threads under a read lock needs these.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Index>();
};

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new(IndexConfig::default())
    }
}

fn ts_micros(v: &Value, key: &str) -> Result<Option<i64>, IndicatorErrorKind> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Timestamp::parse(s)
            .map(|t| Some(t.as_micros()))
            .map_err(|e| IndicatorErrorKind::Timestamp {
                property: key.to_owned(),
                reason: e.to_string(),
            }),
        Some(_) => Err(IndicatorErrorKind::Timestamp {
            property: key.to_owned(),
            reason: "not a string".into(),
        }),
    }
}

/// The block of an observed address (a bare address is a /32 or /128), as
/// `Block::parse(value, false)`; IPv4 through the crate's fast parser (see
/// `observable::is_ip` for why).
#[inline]
fn block_of(value: &str) -> Option<Block> {
    match crate::observable::parse_ipv4(value.as_bytes()) {
        Some(a) => Some(Block {
            v6: false,
            addr: u128::from(a),
            prefix: 32,
        }),
        None => Block::parse(value, false),
    }
}

fn nfc(v: &str) -> Cow<'_, str> {
    if v.is_ascii() {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(v.nfc().collect())
    }
}

impl Index {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Index {
        let mut idx = Index {
            config,
            hasher: hashbrown::DefaultHashBuilder::default(),
            slots: Vec::new(),
            ids: HashTable::new(),
            matchers: Vec::new(),
            free_matchers: Vec::new(),
            paths: Vec::new(),
            path_ids: HashMap::new(),
            known: [NO_PATH; KNOWN_PATHS.len()],
            path_flags: Vec::new(),
            suffix_path: Vec::new(),
            arena: Vec::new(),
            exact: Vec::new(),
            exact_table: HashTable::new(),
            bloom: vec![0; 64],
            bloom_keys: 0,
            cidr: hashbrown::HashMap::new(),
            cidr_atoms: Vec::new(),
            cidr_lens: hashbrown::HashMap::new(),
            like: Vec::new(),
            like_ac: None,
            like_main: 0,
            like_small: None,
            like_built: 0,
            regex: Vec::new(),
            regex_set: None,
            regex_main: 0,
            regex_small: None,
            regex_built: 0,
            regex_fallback: false,
            always: Vec::new(),
            pending: Vec::new(),
            deferred: false,
            dead_atoms: 0,
            live_atoms: 0,
            stats: IndexStats::default(),
        };
        for (i, p) in KNOWN_PATHS.iter().enumerate() {
            idx.known[i] = idx.intern(p);
        }
        idx
    }

    /// Builds an index from indicator JSON texts, active at `now`. Unusable indicators
    /// are reported in [`BuildReport::errors`], never silently dropped.
    pub fn build<T: AsRef<[u8]>>(
        texts: impl IntoIterator<Item = T>,
        now: Timestamp,
        config: IndexConfig,
    ) -> (Index, BuildReport) {
        let mut idx = Index::new(config);
        let mut report = BuildReport::default();
        idx.deferred = true;
        for t in texts {
            match idx.insert_json(t.as_ref(), now) {
                Ok(o) => report.count(o),
                Err(e) => report.errors.push(e),
            }
        }
        idx.deferred = false;
        idx.rebuild_like();
        idx.rebuild_regex();
        (idx, report)
    }

    /// Counts of what the index holds.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            pending: self.pending.len(),
            like_atoms: self.like.len(),
            regex_atoms: self.regex.len(),
            cidr_atoms: self.cidr_atoms.len(),
            exact_atoms: self.exact.len(),
            regex_set_fallback: self.regex_fallback,
            ..self.stats
        }
    }

    fn intern(&mut self, path: &str) -> u16 {
        if let Some(&id) = self.path_ids.get(path) {
            return id;
        }
        // More than 65,534 distinct paths: further ones share "no path" and their
        // atoms are not indexed (the caller falls back to always-evaluate).
        let Ok(id) = u16::try_from(self.paths.len()) else {
            return NO_PATH;
        };
        if id == NO_PATH {
            return NO_PATH;
        }
        self.paths.push(path.into());
        self.path_ids.insert(path.into(), id);
        self.path_flags.push(0);
        self.suffix_path.push(NO_PATH);
        id
    }

    fn uuid_hash(&self, uuid: &[u8; 16]) -> u64 {
        self.hasher.hash_one(uuid)
    }

    fn find_slot(&self, uuid: &[u8; 16]) -> Option<u32> {
        let h = self.uuid_hash(uuid);
        self.ids
            .find(h, |&s| self.slots[s as usize].uuid == *uuid)
            .copied()
    }

    fn key_hash(hasher: &hashbrown::DefaultHashBuilder, path: u16, value: &[u8]) -> u64 {
        hasher.hash_one((path, value))
    }

    /// The filter word of a key hash and the three bits it sets there.
    ///
    /// Blocked: all bits of a key sit in one 64-bit word, so a lookup costs one cache
    /// miss instead of two (the filter is ~4 bytes per key, 4 MiB at a million
    /// indicators: beyond L2, and the misses on it dominated matching in `perf`). At
    /// ~32 bits per key, three bits in one word give a false-positive rate of ~0.2%,
    /// below the two-word, two-bit filter it replaces (~0.4%).
    #[inline]
    fn bloom_bits(bloom: &[u64], h: u64) -> (usize, u64) {
        let w = (h as usize) & (bloom.len() - 1);
        let bit = |shift: u32| 1u64 << ((h >> shift) & 63);
        (w, bit(40) | bit(46) | bit(52))
    }

    /// Starts loading the filter word of a key hash into the cache (a hint: no effect
    /// on results), so that [`Index::run_probes`] finds it there.
    #[inline(always)]
    fn prefetch_bloom(&self, h: u64) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        {
            let (w, _) = Self::bloom_bits(&self.bloom, h);
            if let Some(word) = self.bloom.get(w) {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                // SAFETY: a prefetch never faults and reads nothing the program sees;
                // the pointer is to a live element of `self.bloom` besides. SSE is
                // enabled for this compilation (the `cfg` above).
                unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(word).cast::<i8>()) };
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
        let _ = h;
    }

    #[inline]
    fn bloom_may_contain(&self, h: u64) -> bool {
        let (w, bits) = Self::bloom_bits(&self.bloom, h);
        self.bloom.get(w).is_some_and(|&x| x & bits == bits)
    }

    /// Adds a key hash; grows (rebuilding from every key) to keep 16 to 32 bits a key.
    fn bloom_add(&mut self, h: u64) {
        if (self.bloom_keys + 1) * 16 > self.bloom.len() * 64 {
            self.bloom_rebuild();
        }
        let (w, bits) = Self::bloom_bits(&self.bloom, h);
        self.bloom[w] |= bits;
        self.bloom_keys += 1;
    }

    /// Rebuilds the filter from the exact and CIDR keys, sized for twice their number.
    fn bloom_rebuild(&mut self) {
        let n = self.exact.len() + self.cidr.len() + 1;
        let words = (n * 32 / 64).max(64).next_power_of_two();
        let mut bloom = vec![0u64; words];
        let mut set = |h: u64| {
            let (w, bits) = Self::bloom_bits(&bloom, h);
            bloom[w] |= bits;
        };
        for e in &self.exact {
            let v = &self.arena[e.off as usize..e.off as usize + e.len as usize];
            set(Self::key_hash(&self.hasher, e.path, v));
        }
        for key in self.cidr.keys() {
            set(self.hasher.hash_one(key));
        }
        self.bloom = bloom;
        self.bloom_keys = n - 1;
    }

    /// Inserts one indicator given as JSON text (see [`Index::insert`]).
    pub fn insert_json(&mut self, text: &[u8], now: Timestamp) -> Result<Inserted, IndicatorError> {
        let v =
            phalanx_stix::json::parse_strict(text, self.config.max_json_depth).map_err(|e| {
                IndicatorError {
                    id: None,
                    kind: IndicatorErrorKind::Json(e.to_string()),
                }
            })?;
        self.insert(v, now)
    }

    /// Inserts (or replaces with a newer version, or removes when revoked) one
    /// indicator, deciding activity at `now`.
    pub fn insert(&mut self, v: Value, now: Timestamp) -> Result<Inserted, IndicatorError> {
        let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
        let err = |kind| IndicatorError {
            id: id.clone(),
            kind,
        };
        if v.get("type").and_then(Value::as_str) != Some("indicator") {
            return Err(err(IndicatorErrorKind::NotIndicator));
        }
        let uuid = match id.as_deref().map(phalanx_stix::id::parse_id) {
            Some(Ok(("indicator", u))) => *u.as_bytes(),
            _ => return Err(err(IndicatorErrorKind::BadId)),
        };
        let modified = match ts_micros(&v, "modified").and_then(|m| match m {
            Some(m) => Ok(Some(m)),
            None => ts_micros(&v, "created"),
        }) {
            Ok(m) => m.unwrap_or(i64::MIN),
            Err(k) => return Err(err(k)),
        };
        let existing = self.find_slot(&uuid);
        if let Some(s) = existing
            && self.slots[s as usize].modified >= modified
        {
            return Ok(Inserted::Stale);
        }
        if let Some(p) = self.pending.iter().position(|p| p.uuid == uuid) {
            if self.pending[p].modified >= modified {
                return Ok(Inserted::Stale);
            }
            self.pending.swap_remove(p);
        }
        if v.get("revoked").and_then(Value::as_bool) == Some(true) {
            if let Some(s) = existing {
                self.kill(s);
            }
            return Ok(Inserted::Revoked);
        }
        if v.get("pattern_type").and_then(Value::as_str) != Some("stix") {
            if let Some(s) = existing {
                self.kill(s);
            }
            return Ok(Inserted::NotStix);
        }
        let valid_from = ts_micros(&v, "valid_from").map_err(err)?;
        let valid_until = ts_micros(&v, "valid_until")
            .map_err(err)?
            .unwrap_or(i64::MAX);
        let now_us = now.as_micros();
        if valid_until <= now_us {
            if let Some(s) = existing {
                self.kill(s);
            }
            return Ok(Inserted::Expired);
        }
        let Some(text) = v.get("pattern").and_then(Value::as_str) else {
            return Err(err(IndicatorErrorKind::NoPattern));
        };
        let pattern = Pattern::parse_with(text, &self.config.limits)
            .map_err(|e| err(IndicatorErrorKind::Parse(e)))?;
        let matcher = pattern
            .compile()
            .map_err(|e| err(IndicatorErrorKind::Compile(e)))?;
        if let Some(from) = valid_from
            && from > now_us
        {
            if let Some(s) = existing {
                self.kill(s);
            }
            self.pending.push(PendingIndicator {
                uuid,
                valid_from: from,
                modified,
                json: v,
            });
            return Ok(Inserted::Pending);
        }
        if let Some(s) = existing {
            self.kill(s);
        }
        let plan = plan(&pattern.expr);
        Ok(self.add(uuid, modified, valid_until, plan, matcher))
    }

    fn add(
        &mut self,
        uuid: [u8; 16],
        modified: i64,
        valid_until: i64,
        plan: crate::plan::Plan,
        matcher: Matcher,
    ) -> Inserted {
        let Ok(slot) = u32::try_from(self.slots.len()) else {
            // 4 billion slots: not reachable within memory; refuse rather than wrap.
            return Inserted::Stale;
        };
        let mut atoms = plan.atoms;
        // Atoms the structures cannot hold (an over-long value) make the indicator
        // always-evaluate rather than lose matches.
        if let Some(list) = &atoms
            && list.iter().any(|a| match a {
                Atom::Exact { value, .. } => value.len() > MAX_EXACT_LEN,
                Atom::Suffix { suffix, .. } => suffix.len() > MAX_EXACT_LEN,
                _ => false,
            })
        {
            atoms = None;
        }
        // Arena offsets are u32: past 4 GiB of values, new indicators are evaluated on
        // every record instead (far beyond any real feed, but never a wrap).
        let new_bytes: usize = atoms.as_ref().map_or(0, |l| {
            l.iter()
                .map(|a| match a {
                    Atom::Exact { value, .. } => value.len(),
                    Atom::Suffix { suffix, .. } => suffix.len(),
                    _ => 0,
                })
                .sum()
        });
        if self.arena.len() + new_bytes > u32::MAX as usize {
            atoms = None;
        }
        let decided = plan.decided && atoms.is_some();
        let matcher_idx = if decided {
            NONE
        } else if let Some(i) = self.free_matchers.pop() {
            self.matchers[i as usize] = Some(matcher);
            i
        } else {
            self.matchers.push(Some(matcher));
            (self.matchers.len() - 1) as u32
        };
        let n_atoms = atoms.as_ref().map_or(0, Vec::len);
        self.slots.push(Slot {
            uuid,
            modified,
            valid_until,
            matcher: matcher_idx,
            atoms: u32::try_from(n_atoms).unwrap_or(u32::MAX),
            live: true,
            always: atoms.is_none(),
        });
        let h = self.uuid_hash(&uuid);
        let slots = &self.slots;
        let hasher = &self.hasher;
        self.ids
            .insert_unique(h, slot, |&s| hasher.hash_one(slots[s as usize].uuid));
        self.stats.live += 1;
        self.live_atoms += n_atoms;
        let outcome = match atoms {
            None => {
                self.always.push(slot);
                self.stats.always_evaluate += 1;
                Inserted::AlwaysEvaluate
            }
            Some(list) => {
                for a in list {
                    self.add_atom(slot, a);
                }
                if decided {
                    self.stats.simple += 1;
                    Inserted::Simple
                } else {
                    self.stats.confirmed += 1;
                    Inserted::Confirmed
                }
            }
        };
        if !self.deferred {
            let n = self.config.rebuild_after.max(1);
            if self.like.len() - self.like_built >= n {
                if self.like.len() - self.like_main > (self.like_main / 4).max(16 * n) {
                    self.rebuild_like();
                } else {
                    self.rebuild_like_small();
                }
            }
            if self.regex.len() - self.regex_built >= (n / 4).max(1) && !self.regex_fallback {
                if self.regex.len() - self.regex_main > (self.regex_main / 4).max(4 * n) {
                    self.rebuild_regex();
                } else {
                    self.rebuild_regex_small();
                }
            }
        }
        outcome
    }

    fn add_exact(&mut self, slot: u32, path: u16, value: &[u8]) {
        let h = Self::key_hash(&self.hasher, path, value);
        self.bloom_add(h);
        let idx = self.exact.len() as u32;
        let (arena, exact) = (&self.arena, &self.exact);
        let found = self.exact_table.find_mut(h, |&a| {
            let e = &exact[a as usize];
            e.path == path && &arena[e.off as usize..e.off as usize + e.len as usize] == value
        });
        match found {
            Some(head) => {
                let prev = *head;
                let e = self.exact[prev as usize];
                *head = idx;
                self.exact.push(ExactAtom {
                    slot,
                    next: prev,
                    off: e.off,
                    len: e.len,
                    path,
                });
            }
            None => {
                let off = self.arena.len() as u32;
                self.arena.extend_from_slice(value);
                self.exact.push(ExactAtom {
                    slot,
                    next: NONE,
                    off,
                    len: value.len() as u16,
                    path,
                });
                let (arena, exact, hasher) = (&self.arena, &self.exact, &self.hasher);
                self.exact_table.insert_unique(h, idx, |&a| {
                    let e = &exact[a as usize];
                    Self::key_hash(
                        hasher,
                        e.path,
                        &arena[e.off as usize..e.off as usize + e.len as usize],
                    )
                });
            }
        }
    }

    fn add_atom(&mut self, slot: u32, atom: Atom) {
        match atom {
            Atom::Exact { path, value } => {
                let p = self.intern(&path);
                self.path_flags[p as usize] |= 1;
                self.add_exact(slot, p, value.as_bytes());
            }
            Atom::Suffix { path, suffix } => {
                let base = self.intern(&path);
                let p = self.intern(&format!("{path}{SUFFIX_MARK}"));
                if base == NO_PATH || p == NO_PATH {
                    return;
                }
                self.path_flags[base as usize] |= 2;
                self.suffix_path[base as usize] = p;
                self.add_exact(slot, p, suffix.as_bytes());
            }
            Atom::Cidr { path, block } => {
                let p = self.intern(&path);
                self.path_flags[p as usize] |= 4;
                let key = CidrKey {
                    path: p,
                    v6: block.v6,
                    prefix: block.prefix,
                    net: Block::network(block.v6, block.addr, block.prefix),
                };
                let idx = self.cidr_atoms.len() as u32;
                let kh = self.hasher.hash_one(key);
                self.bloom_add(kh);
                let head = self.cidr.entry(key).or_insert(NONE);
                self.cidr_atoms.push((slot, *head));
                *head = idx;
                let lens = self.cidr_lens.entry((p, block.v6)).or_default();
                lens.insert(block.prefix);
            }
            Atom::Like { path, literal } => {
                let p = self.intern(&path);
                self.path_flags[p as usize] |= 8;
                self.like.push(LikeAtom {
                    slot,
                    path: p,
                    literal: literal.into(),
                });
            }
            Atom::Regex { path, regex } => {
                let p = self.intern(&path);
                self.path_flags[p as usize] |= 16;
                let limit = self.config.limits.max_regex_bytes;
                let single = RegexBuilder::new(&regex)
                    .size_limit(limit)
                    .dfa_size_limit(limit)
                    .build()
                    .ok();
                self.regex.push(RegexAtom {
                    slot,
                    path: p,
                    regex: regex.into(),
                    single,
                });
            }
        }
    }

    /// Rebuilds the main automaton over every `LIKE` atom.
    fn rebuild_like(&mut self) {
        // Literal automata fail to build only on state-id overflow; then every LIKE
        // atom stays on the one-by-one path.
        self.like_ac = if self.like.is_empty() {
            None
        } else {
            AhoCorasick::new(self.like.iter().map(|a| a.literal.as_bytes())).ok()
        };
        self.like_main = if self.like_ac.is_some() {
            self.like.len()
        } else {
            0
        };
        self.like_small = None;
        self.like_built = self.like_main;
    }

    /// Rebuilds the small automaton over the atoms added since the main one.
    fn rebuild_like_small(&mut self) {
        let recent = &self.like[self.like_main..];
        if let Ok(ac) = AhoCorasick::new(recent.iter().map(|a| a.literal.as_bytes())) {
            self.like_small = Some(ac);
            self.like_built = self.like.len();
        }
    }

    fn regex_set_of(&self, atoms: &[RegexAtom]) -> Option<RegexSet> {
        RegexSetBuilder::new(atoms.iter().map(|a| &*a.regex))
            .size_limit(self.config.max_regex_set_bytes)
            .dfa_size_limit(self.config.max_regex_set_bytes)
            .build()
            .ok()
    }

    /// Rebuilds the main regex set over every `MATCHES` atom (or, over the size limit,
    /// falls back to running each regex alone).
    fn rebuild_regex(&mut self) {
        self.regex_small = None;
        if self.regex.is_empty() {
            self.regex_set = None;
            self.regex_main = 0;
            self.regex_built = 0;
            return;
        }
        match self.regex_set_of(&self.regex) {
            Some(set) => {
                self.regex_set = Some(set);
                self.regex_main = self.regex.len();
                self.regex_built = self.regex.len();
                self.regex_fallback = false;
                for a in &mut self.regex {
                    a.single = None;
                }
            }
            None => {
                self.regex_set = None;
                self.regex_main = 0;
                self.regex_built = 0;
                self.regex_fallback = true;
                let limit = self.config.limits.max_regex_bytes;
                for a in &mut self.regex {
                    if a.single.is_none() {
                        a.single = RegexBuilder::new(&a.regex)
                            .size_limit(limit)
                            .dfa_size_limit(limit)
                            .build()
                            .ok();
                    }
                }
            }
        }
    }

    /// Rebuilds the small regex set over the atoms added since the main one.
    fn rebuild_regex_small(&mut self) {
        if let Some(set) = self.regex_set_of(&self.regex[self.regex_main..]) {
            self.regex_small = Some(set);
            self.regex_built = self.regex.len();
            for a in &mut self.regex[self.regex_main..] {
                a.single = None;
            }
        }
    }

    fn kill(&mut self, slot: u32) {
        let s = self.slots[slot as usize];
        if !s.live {
            return;
        }
        self.slots[slot as usize].live = false;
        let h = self.uuid_hash(&s.uuid);
        if let Ok(e) = self.ids.find_entry(h, |&x| x == slot) {
            e.remove();
        }
        if s.matcher != NONE {
            self.matchers[s.matcher as usize] = None;
            self.free_matchers.push(s.matcher);
        }
        self.stats.live -= 1;
        if s.always {
            self.always.retain(|&x| x != slot);
            self.stats.always_evaluate -= 1;
        } else if s.matcher == NONE {
            self.stats.simple -= 1;
        } else {
            self.stats.confirmed -= 1;
        }
        self.live_atoms -= s.atoms as usize;
        self.dead_atoms += s.atoms as usize;
        if self.dead_atoms > 4096 && self.dead_atoms > self.live_atoms {
            self.sweep();
        }
    }

    /// Removes an indicator by id (any version, also a pending one). Returns whether it
    /// was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Ok(("indicator", u)) = phalanx_stix::id::parse_id(id) else {
            return false;
        };
        let uuid = *u.as_bytes();
        let before = self.pending.len();
        self.pending.retain(|p| p.uuid != uuid);
        let mut found = before != self.pending.len();
        if let Some(s) = self.find_slot(&uuid) {
            self.kill(s);
            found = true;
        }
        found
    }

    /// Removes indicators whose `valid_until` is at or before `now`, and indexes pending
    /// ones whose `valid_from` has arrived.
    pub fn expire(&mut self, now: Timestamp) -> ExpireReport {
        let now_us = now.as_micros();
        let mut report = ExpireReport::default();
        let dead: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live && s.valid_until <= now_us)
            .map(|(i, _)| i as u32)
            .collect();
        for s in dead {
            self.kill(s);
            report.expired += 1;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.valid_from <= now_us);
        self.pending = waiting;
        for p in ready {
            if matches!(
                self.insert(p.json, now),
                Ok(Inserted::Simple | Inserted::Confirmed | Inserted::AlwaysEvaluate)
            ) {
                report.activated += 1;
            }
        }
        report
    }

    /// Drops the atoms of removed indicators and rebuilds the lookup structures.
    fn sweep(&mut self) {
        let live = |slots: &Vec<Slot>, s: u32| slots[s as usize].live;
        let exact = std::mem::take(&mut self.exact);
        let arena = std::mem::take(&mut self.arena);
        self.exact_table = HashTable::new();
        for e in exact {
            if live(&self.slots, e.slot) {
                let v = &arena[e.off as usize..e.off as usize + e.len as usize];
                self.add_exact(e.slot, e.path, v);
            }
        }
        let cidr = std::mem::take(&mut self.cidr);
        let cidr_atoms = std::mem::take(&mut self.cidr_atoms);
        self.cidr_lens.clear();
        for (key, head) in cidr {
            let mut a = head;
            while a != NONE {
                let (slot, next) = cidr_atoms[a as usize];
                if live(&self.slots, slot) {
                    let idx = self.cidr_atoms.len() as u32;
                    let h = self.cidr.entry(key).or_insert(NONE);
                    self.cidr_atoms.push((slot, *h));
                    *h = idx;
                    self.cidr_lens
                        .entry((key.path, key.v6))
                        .or_default()
                        .insert(key.prefix);
                }
                a = next;
            }
        }
        let slots = &self.slots;
        self.like.retain(|a| live(slots, a.slot));
        self.regex.retain(|a| live(slots, a.slot));
        self.rebuild_like();
        self.rebuild_regex();
        self.bloom_rebuild();
        self.dead_atoms = 0;
    }

    /// The chain of exact atoms under a key that passed the filter.
    fn exact_chain(&self, h: u64, path: u16, value: &[u8], out: &mut Vec<u32>) {
        let head = self.exact_table.find(h, |&a| {
            let e = &self.exact[a as usize];
            e.path == path && &self.arena[e.off as usize..e.off as usize + e.len as usize] == value
        });
        let mut a = head.copied().unwrap_or(NONE);
        while a != NONE {
            let e = &self.exact[a as usize];
            if self.slots[e.slot as usize].live {
                out.push(e.slot);
            }
            a = e.next;
        }
    }

    /// The chain of CIDR atoms under a key that passed the filter.
    fn cidr_chain(&self, key: &CidrKey, out: &mut Vec<u32>) {
        let mut a = self.cidr.get(key).copied().unwrap_or(NONE);
        while a != NONE {
            let (slot, next) = self.cidr_atoms[a as usize];
            if self.slots[slot as usize].live {
                out.push(slot);
            }
            a = next;
        }
    }

    /// Candidate slots for one (path, value) pair.
    fn lookup_pair(&self, path: u16, value: &str, out: &mut Vec<u32>) {
        let mut probes = Probes::new();
        self.plan_pair(path, value, &mut probes, out);
        self.run_probes(&mut probes, out);
    }

    /// Runs the filter over every planned probe, then the table lookups of those that
    /// pass, and empties `probes`.
    ///
    /// The filter words of all probes are loaded first, in one loop without branches
    /// between the loads, so their cache misses overlap (a record has ~6-10 probes:
    /// two addresses, each also under its CIDR prefix lengths, names and their parent
    /// domains, hashes); most probes stop there.
    fn run_probes(&self, probes: &mut Probes<'_>, out: &mut Vec<u32>) {
        let n = probes.len;
        let mut pass = [false; PROBES];
        for (p, ok) in probes.buf[..n].iter().zip(pass.iter_mut()) {
            *ok = self.bloom_may_contain(p.hash);
        }
        for (p, ok) in probes.buf[..n].iter().zip(pass) {
            if !ok {
                continue;
            }
            match &p.key {
                ProbeKey::Exact { path, value } => self.exact_chain(p.hash, *path, value, out),
                ProbeKey::Cidr(key) => self.cidr_chain(key, out),
            }
        }
        probes.len = 0;
    }

    /// Adds a probe, running the pending ones first when the buffer is full. A probe
    /// equal to one already planned is dropped: records repeat values (`dns.rrname`
    /// and `dns.answers[].rrname`), and candidates are deduplicated anyway.
    fn push_probe<'v>(&self, probes: &mut Probes<'v>, probe: Probe<'v>, out: &mut Vec<u32>) {
        if probes.buf[..probes.len]
            .iter()
            .any(|p| p.hash == probe.hash && p.key == probe.key)
        {
            return;
        }
        if probes.len == PROBES {
            self.run_probes(probes, out);
        }
        self.prefetch_bloom(probe.hash);
        probes.buf[probes.len] = probe;
        probes.len += 1;
    }

    /// Plans the filtered lookups of one (path, value) pair (exact value, parent
    /// domains, CIDR blocks) into `probes`, and runs the `LIKE` / `MATCHES` ones at
    /// once (they do not go through the filter).
    fn plan_pair<'v>(
        &self,
        path: u16,
        value: &'v str,
        probes: &mut Probes<'v>,
        out: &mut Vec<u32>,
    ) {
        let Some(&flags) = self.path_flags.get(path as usize) else {
            return;
        };
        if flags == 0 {
            return;
        }
        if flags & 1 != 0 {
            let v = value.as_bytes();
            let hash = Self::key_hash(&self.hasher, path, v);
            let key = ProbeKey::Exact { path, value: v };
            self.push_probe(probes, Probe { hash, key }, out);
        }
        let needs_nfc = flags & (2 | 8 | 16) != 0;
        let normal = if needs_nfc {
            nfc(value)
        } else {
            Cow::Borrowed(value)
        };
        if flags & 2 != 0 {
            let sp = self.suffix_path[path as usize];
            if sp != NO_PATH {
                match &normal {
                    Cow::Borrowed(n) => {
                        for (i, c) in n.char_indices() {
                            if c == '.' {
                                let v = &n.as_bytes()[i..];
                                let hash = Self::key_hash(&self.hasher, sp, v);
                                let key = ProbeKey::Exact { path: sp, value: v };
                                self.push_probe(probes, Probe { hash, key }, out);
                            }
                        }
                    }
                    // A normalised copy does not outlive this call: look it up now.
                    Cow::Owned(n) => {
                        for (i, c) in n.char_indices() {
                            if c == '.' {
                                let v = &n.as_bytes()[i..];
                                let h = Self::key_hash(&self.hasher, sp, v);
                                if self.bloom_may_contain(h) {
                                    self.exact_chain(h, sp, v, out);
                                }
                            }
                        }
                    }
                }
            }
        }
        if flags & 4 != 0
            && let Some(b) = block_of(value)
            && let Some(lens) = self.cidr_lens.get(&(path, b.v6))
        {
            for len in lens.up_to(b.prefix) {
                let key = CidrKey {
                    path,
                    v6: b.v6,
                    prefix: len,
                    net: Block::network(b.v6, b.addr, len),
                };
                let hash = self.hasher.hash_one(key);
                self.push_probe(
                    probes,
                    Probe {
                        hash,
                        key: ProbeKey::Cidr(key),
                    },
                    out,
                );
            }
        }
        if flags & 8 != 0 {
            let hay = normal.as_bytes();
            let levels = [(&self.like_ac, 0usize), (&self.like_small, self.like_main)];
            for (ac, base) in levels {
                let Some(ac) = ac else { continue };
                for m in ac.find_overlapping_iter(hay) {
                    let a = &self.like[base + m.pattern().as_usize()];
                    if a.path == path && self.slots[a.slot as usize].live {
                        out.push(a.slot);
                    }
                }
            }
            for a in &self.like[self.like_built..] {
                if a.path == path
                    && self.slots[a.slot as usize].live
                    && memchr::memmem::find(hay, a.literal.as_bytes()).is_some()
                {
                    out.push(a.slot);
                }
            }
        }
        if flags & 16 != 0 {
            let levels = [
                (&self.regex_set, 0usize),
                (&self.regex_small, self.regex_main),
            ];
            for (set, base) in levels {
                let Some(set) = set else { continue };
                if !set.is_match(&normal) {
                    continue;
                }
                for i in set.matches(&normal).iter() {
                    let a = &self.regex[base + i];
                    if a.path == path && self.slots[a.slot as usize].live {
                        out.push(a.slot);
                    }
                }
            }
            for a in &self.regex[self.regex_built..] {
                if a.path == path && self.slots[a.slot as usize].live {
                    // A regex that failed to compile alone is a candidate every time:
                    // the evaluator decides.
                    if a.single.as_ref().is_none_or(|r| r.is_match(&normal)) {
                        out.push(a.slot);
                    }
                }
            }
        }
    }

    /// Matches one record; confirmed hits are appended to `hits`. `fallback` is the
    /// time for records without one.
    pub fn match_record(
        &self,
        record: &Record<'_>,
        fallback: Timestamp,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
    ) {
        let time = record.time.unwrap_or(fallback);
        if let Some(stix) = &record.stix {
            for od in &stix.observed {
                self.match_observed(od, &stix.scos, time, hits, stats);
            }
            return;
        }
        stats.records += 1;
        let mut cand: Vec<u32> = Vec::new();
        let mut probes = Probes::new();
        self.plan_record(record, &mut probes, &mut cand);
        self.run_probes(&mut probes, &mut cand);
        self.finish_record(record, time, &mut cand, hits, stats);
    }

    /// Matches several records: the same hits, in the same order, and the same
    /// counters as [`Index::match_record`] on each in turn, but faster on a large
    /// index. The records are taken eight at a time: the filter lookups of
    /// all of them are planned (and their filter words prefetched) before any is
    /// run, so the cache misses of one record overlap those of the next instead of
    /// being waited for one record after the other.
    pub fn match_records(
        &self,
        records: &[Record<'_>],
        fallback: Timestamp,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
    ) {
        self.match_records_each(records, fallback, hits, stats, &mut |_, _| {});
    }

    /// [`Index::match_records`], calling `done(k, hits.len())` after record `k` has
    /// been matched (its hits are those appended since the previous call).
    pub(crate) fn match_records_each(
        &self,
        records: &[Record<'_>],
        fallback: Timestamp,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
        done: &mut dyn FnMut(usize, usize),
    ) {
        let mut k = 0;
        let mut cands: [Vec<u32>; MATCH_BATCH] = Default::default();
        // Made once per call (~8 KiB): per group it was ~5% of the instructions.
        // `run_probes` leaves each buffer empty for the next group.
        let mut probes: [Probes<'_>; MATCH_BATCH] = [const { Probes::new() }; MATCH_BATCH];
        for group in records.chunks(MATCH_BATCH) {
            for ((r, p), c) in group.iter().zip(&mut probes).zip(&mut cands) {
                c.clear();
                if r.stix.is_none() {
                    self.plan_record(r, p, c);
                }
            }
            for ((r, p), c) in group.iter().zip(&mut probes).zip(&mut cands) {
                if r.stix.is_some() {
                    self.match_record(r, fallback, hits, stats);
                } else {
                    stats.records += 1;
                    self.run_probes(p, c);
                    self.finish_record(r, r.time.unwrap_or(fallback), c, hits, stats);
                }
                done(k, hits.len());
                k += 1;
            }
        }
    }

    /// Plans the lookups of a (non-STIX) record: filtered probes into `probes`, the
    /// unfiltered candidates (`LIKE`, `MATCHES`) into `cand`.
    #[inline]
    fn plan_record<'r>(
        &self,
        record: &'r Record<'_>,
        probes: &mut Probes<'r>,
        cand: &mut Vec<u32>,
    ) {
        record.pairs(&mut |k, v| {
            let p = self.known[k];
            if p != NO_PATH {
                self.plan_pair(p, v, probes, cand);
            }
        });
    }

    /// Confirms the candidates of a (non-STIX) record whose probes have run.
    fn finish_record(
        &self,
        record: &Record<'_>,
        time: Timestamp,
        cand: &mut Vec<u32>,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
    ) {
        if cand.is_empty() && self.always.is_empty() {
            return;
        }
        cand.extend_from_slice(&self.always);
        cand.sort_unstable();
        cand.dedup();
        if self.needs_eval(cand) {
            let (od, scos) = record.to_stix(time);
            self.confirm(
                cand,
                time,
                1,
                hits,
                stats,
                Some((std::slice::from_ref(&od), &scos)),
            );
        } else {
            self.confirm(cand, time, 1, hits, stats, None);
        }
    }

    /// Matches one STIX observed-data object (SCOs resolved through `scos`).
    pub fn match_observed(
        &self,
        od: &Value,
        scos: &HashMap<String, Value>,
        fallback: Timestamp,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
    ) {
        stats.records += 1;
        let time = od
            .get("last_observed")
            .and_then(Value::as_str)
            .and_then(|s| Timestamp::parse(s).ok())
            .unwrap_or(fallback);
        let count = od
            .get("number_observed")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1);
        let mut cand: Vec<u32> = Vec::new();
        crate::emit::stix_pairs(od, scos, &mut |path, v| {
            if let Some(&p) = self.path_ids.get(path) {
                self.lookup_pair(p, v, &mut cand);
            }
        });
        cand.extend_from_slice(&self.always);
        cand.sort_unstable();
        cand.dedup();
        self.confirm(
            &cand,
            time,
            count,
            hits,
            stats,
            Some((std::slice::from_ref(od), scos)),
        );
    }

    fn needs_eval(&self, cand: &[u32]) -> bool {
        cand.iter().any(|&c| {
            let s = &self.slots[c as usize];
            s.live && s.matcher != NONE
        })
    }

    fn confirm(
        &self,
        cand: &[u32],
        time: Timestamp,
        count: u64,
        hits: &mut Vec<Hit>,
        stats: &mut MatchStats,
        stix: Option<(&[Value], &HashMap<String, Value>)>,
    ) {
        for &slot in cand.iter() {
            let s = &self.slots[slot as usize];
            if !s.live {
                continue;
            }
            let hit = if s.matcher == NONE {
                true
            } else {
                let Some(m) = self
                    .matchers
                    .get(s.matcher as usize)
                    .and_then(Option::as_ref)
                else {
                    continue;
                };
                let Some((od, scos)) = stix else { continue };
                stats.evaluated += 1;
                match m.matches(od, scos) {
                    Ok(b) => b,
                    Err(e) => {
                        stats.eval_errors += 1;
                        if stats.eval_error_sample.len() < ERROR_SAMPLE {
                            stats
                                .eval_error_sample
                                .push((IndicatorRef(s.uuid).id(), e.to_string()));
                        }
                        false
                    }
                }
            };
            if hit {
                stats.hits += 1;
                hits.push(Hit {
                    indicator: IndicatorRef(s.uuid),
                    time,
                    count,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_set_lists_lengths_up_to_max() {
        let mut s = PrefixSet::default();
        assert_eq!(s.up_to(128).count(), 0);
        for len in [0u8, 8, 24, 32, 63, 64, 65, 127, 128, 200] {
            s.insert(len);
        }
        let all: Vec<u8> = s.up_to(255).collect();
        assert_eq!(all, [0, 8, 24, 32, 63, 64, 65, 127, 128]);
        let v4: Vec<u8> = s.up_to(32).collect();
        assert_eq!(v4, [0, 8, 24, 32]);
        let some: Vec<u8> = s.up_to(64).collect();
        assert_eq!(some, [0, 8, 24, 32, 63, 64]);
        assert_eq!(s.up_to(0).collect::<Vec<_>>(), [0]);
    }
}
