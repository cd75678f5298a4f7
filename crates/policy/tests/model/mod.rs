//! The world model shared by the sharing-policy property tests: a generator of random
//! worlds (partners, agreements, objects with markings, labels, granular markings and
//! provenance), the world resolved to plain values, the agreements as TOML documents,
//! and the reference oracle written from the rules in the crate documentation (lib.rs)
//! alone.
//!
//! Included by `crates/policy/tests/oracle.rs` (against [`Policy::decide`]) and by
//! `crates/server/tests/policy_http.rs` (against what a running node serves), as
//! `#[path = "../../policy/tests/model/mod.rs"] mod model;`.
//!
//! The oracle is written as naively as possible: plain loops over the list of agreements
//! of the world as generated here. It never looks at the crate's `Agreement`s: the
//! agreements reach the crate only as TOML text.

use phalanx_policy::agreement::{Context, parse_document};
use phalanx_policy::{Defaults, Facts, Granular, Level, Partner, Policy, Purpose, Sector};
use phalanx_stix::Timestamp;
use phalanx_stix::markings::{Pap, Tlp};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The node's own organisation.
pub const OWN: &str = "home";
/// An organisation that is not a registered partner.
pub const OUTSIDER: &str = "somebody-else";
/// A source that is not a registered partner (e.g. removed since).
pub const GHOST: &str = "ghost-org";
pub const COLLECTIONS: [&str; 2] = ["coll-a", "coll-b"];
pub const TYPES: [&str; 3] = ["indicator", "malware", "report"];
/// Agreements use the first two; objects may also carry the third.
pub const LABELS: [&str; 3] = ["apt", "crime", "misc"];
pub const SELECTORS: [&str; 2] = ["description", "name"];
pub const HOUR: i64 = 3_600_000_000;
pub const PURPOSES: [Purpose; 4] = [
    Purpose::Read,
    Purpose::Federate,
    Purpose::OnwardShare,
    Purpose::ExportForBlocking,
];

pub fn base() -> i64 {
    Timestamp::parse("2026-03-01T00:00:00Z")
        .unwrap()
        .as_micros()
}

pub fn pid(i: usize) -> String {
    format!("org-{i}")
}

// ---------------------------------------------------------------------------------------
// The generated world.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Active,
    Draft,
    Suspended,
    Terminated,
}

#[derive(Debug, Clone)]
pub enum GenOnward {
    /// The key is left out (default: nobody).
    Absent,
    Nobody,
    Parties,
    Community,
    /// Bit mask over the partners.
    Named(u8),
}

#[derive(Debug, Clone)]
pub struct GenAgreement {
    /// Bit mask over the partners (reduced to the partner count; never empty).
    pub party_mask: u8,
    /// Whether our own organisation is also listed in `parties`.
    pub own_listed: bool,
    pub status: Status,
    /// `valid_from`, hours from `now`.
    pub from_h: i64,
    /// Validity length in hours (`None`: open-ended).
    pub len_h: Option<i64>,
    pub coll_mask: u8,
    pub type_mask: u8,
    pub label_mask: u8,
    pub max_tlp: Tlp,
    pub onward: GenOnward,
    pub pap_default: Option<Pap>,
}

#[derive(Debug, Clone)]
pub struct GenObject {
    pub ty: usize,
    pub coll: usize,
    pub label_mask: u8,
    pub tlp: Option<Tlp>,
    pub pap: Option<Pap>,
    pub granular: Vec<(usize, Level)>,
    /// Index into the partners, `n` meaning the unregistered [`GHOST`].
    pub source: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct World {
    pub n: usize,
    pub default_tlp: Tlp,
    pub default_pap: Pap,
    pub agreements: Vec<GenAgreement>,
    pub objects: Vec<GenObject>,
}

pub fn tlp() -> impl Strategy<Value = Tlp> {
    prop_oneof![
        Just(Tlp::Clear),
        Just(Tlp::Green),
        Just(Tlp::Amber),
        Just(Tlp::AmberStrict),
        Just(Tlp::Red),
    ]
}

pub fn pap() -> impl Strategy<Value = Pap> {
    prop_oneof![
        Just(Pap::Clear),
        Just(Pap::Green),
        Just(Pap::Amber),
        Just(Pap::Red)
    ]
}

pub fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        4 => Just(Status::Active),
        1 => Just(Status::Draft),
        1 => Just(Status::Suspended),
        1 => Just(Status::Terminated),
    ]
}

pub fn onward() -> impl Strategy<Value = GenOnward> {
    prop_oneof![
        Just(GenOnward::Absent),
        Just(GenOnward::Nobody),
        Just(GenOnward::Parties),
        Just(GenOnward::Community),
        (0u8..32).prop_map(GenOnward::Named),
    ]
}

pub fn agreement() -> impl Strategy<Value = GenAgreement> {
    (
        (1u8..32, any::<bool>(), status()),
        // Windows around now: expired (also exactly at now), in force, not yet valid.
        (
            prop_oneof![Just(-48i64), Just(-1), Just(0), Just(1), Just(24)],
            prop::option::weighted(
                0.7,
                prop_oneof![Just(1i64), Just(24), Just(47), Just(48), Just(72)],
            ),
        ),
        (
            prop_oneof![3 => Just(0u8), 1 => 1u8..4],
            prop_oneof![3 => Just(0u8), 1 => 1u8..8],
            prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        ),
        tlp(),
        onward(),
        prop::option::of(pap()),
    )
        .prop_map(
            |(
                (party_mask, own_listed, status),
                (from_h, len_h),
                (coll_mask, type_mask, label_mask),
                max_tlp,
                onward,
                pap_default,
            )| {
                GenAgreement {
                    party_mask,
                    own_listed,
                    status,
                    from_h,
                    len_h,
                    coll_mask,
                    type_mask,
                    label_mask,
                    max_tlp,
                    onward,
                    pap_default,
                }
            },
        )
}

pub fn level() -> impl Strategy<Value = Level> {
    prop_oneof![3 => tlp().prop_map(Level::Tlp), 1 => pap().prop_map(Level::Pap)]
}

pub fn object() -> impl Strategy<Value = GenObject> {
    (
        0..TYPES.len(),
        0..COLLECTIONS.len(),
        0u8..8,
        prop::option::weighted(0.8, tlp()),
        prop::option::of(pap()),
        prop::collection::vec((0..SELECTORS.len(), level()), 0..3),
        prop::option::weighted(0.6, 0u8..6),
    )
        .prop_map(
            |(ty, coll, label_mask, tlp, pap, granular, source)| GenObject {
                ty,
                coll,
                label_mask,
                tlp,
                pap,
                granular,
                source,
            },
        )
}

pub fn world() -> impl Strategy<Value = World> {
    world_with(1..=3)
}

/// Worlds with this many objects.
pub fn world_with(objects: RangeInclusive<usize>) -> impl Strategy<Value = World> {
    (
        1usize..=5,
        prop_oneof![3 => Just(Tlp::Amber), 1 => tlp()],
        prop_oneof![3 => Just(Pap::Amber), 1 => pap()],
        prop::collection::vec(agreement(), 0..=6),
        prop::collection::vec(object(), objects),
    )
        .prop_map(|(n, default_tlp, default_pap, agreements, objects)| World {
            n,
            default_tlp,
            default_pap,
            agreements,
            objects,
        })
}

// ---------------------------------------------------------------------------------------
// The world resolved to plain values (shared by the TOML writer and the oracle).
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Onward {
    Nobody,
    Parties,
    Community,
    Named(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Agr {
    pub id: String,
    pub parties: Vec<String>,
    pub own_listed: bool,
    pub status: Status,
    pub from: i64,
    pub until: Option<i64>,
    pub collections: Vec<String>,
    pub types: Vec<String>,
    pub labels: Vec<String>,
    pub max_tlp: Tlp,
    pub onward: Onward,
    /// Whether `onward` is left out of the document.
    pub onward_absent: bool,
    pub pap_default: Option<Pap>,
}

#[derive(Debug, Clone)]
pub struct Obj {
    pub ty: &'static str,
    pub coll: &'static str,
    pub facts: Facts,
}

pub fn mask<T: Clone>(m: u8, items: &[T]) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| m & (1 << i) != 0)
        .map(|(_, x)| x.clone())
        .collect()
}

/// The world with validity windows around [`base`].
pub fn resolve(w: &World) -> (Vec<String>, Vec<Agr>, Vec<Obj>) {
    resolve_at(w, base())
}

/// The world with validity windows around `base` (µs): the agreements' `valid_from` and
/// `valid_until` are whole hours from it.
pub fn resolve_at(w: &World, base: i64) -> (Vec<String>, Vec<Agr>, Vec<Obj>) {
    let partners: Vec<String> = (0..w.n).map(pid).collect();
    let agreements = w
        .agreements
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut parties = mask(g.party_mask, &partners);
            if parties.is_empty() {
                parties.push(pid(usize::from(g.party_mask) % w.n));
            }
            let from = base + g.from_h * HOUR;
            Agr {
                id: format!("agr-{i}"),
                parties,
                own_listed: g.own_listed,
                status: g.status,
                from,
                until: g.len_h.map(|l| from + l * HOUR),
                collections: mask(g.coll_mask, &COLLECTIONS)
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                types: mask(g.type_mask, &TYPES)
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                labels: mask(g.label_mask, &LABELS[..2])
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                max_tlp: g.max_tlp,
                onward: match g.onward {
                    GenOnward::Absent | GenOnward::Nobody => Onward::Nobody,
                    GenOnward::Parties => Onward::Parties,
                    GenOnward::Community => Onward::Community,
                    GenOnward::Named(m) => Onward::Named(mask(m, &partners)),
                },
                onward_absent: matches!(g.onward, GenOnward::Absent),
                pap_default: g.pap_default,
            }
        })
        .collect();
    let objects = w
        .objects
        .iter()
        .map(|o| Obj {
            ty: TYPES[o.ty],
            coll: COLLECTIONS[o.coll],
            facts: Facts {
                tlp: o.tlp,
                pap: o.pap,
                labels: mask(o.label_mask, &LABELS)
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                granular: o
                    .granular
                    .iter()
                    .map(|(s, level)| Granular {
                        selector: SELECTORS[*s].to_string(),
                        level: *level,
                    })
                    .collect(),
                source: o.source.map(|s| {
                    let s = usize::from(s) % (w.n + 1);
                    if s == w.n { GHOST.to_string() } else { pid(s) }
                }),
                producer: None,
                path: Vec::new(),
                about: None,
            },
        })
        .collect();
    (partners, agreements, objects)
}

// ---------------------------------------------------------------------------------------
// Agreements as TOML documents, checked by the crate.
// ---------------------------------------------------------------------------------------

pub fn quoted(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

pub fn time(us: i64, bare: bool) -> String {
    let t = Timestamp::from_micros(us).format(0);
    if bare { t } else { format!("{t:?}") }
}

pub fn toml(a: &Agr, i: usize) -> String {
    let mut parties = a.parties.clone();
    if a.own_listed {
        parties.insert(i % (parties.len() + 1), OWN.to_string());
    }
    let status = match a.status {
        Status::Active => "active",
        Status::Draft => "draft",
        Status::Suspended => "suspended",
        Status::Terminated => "terminated",
    };
    let tlp = match a.max_tlp {
        Tlp::Clear => ["CLEAR", "WHITE", "tlp:clear"][i % 3],
        Tlp::Green => ["GREEN", "TLP:GREEN"][i % 2],
        Tlp::Amber => ["AMBER", "amber"][i % 2],
        Tlp::AmberStrict => "AMBER+STRICT",
        Tlp::Red => "RED",
    };
    // Alternate TOML datetimes and strings.
    let bare = i.is_multiple_of(2);
    let mut t = format!(
        "id = \"{}\"\ntitle = \"Agreement {i}\"\nstatus = \"{status}\"\nparties = {}\nmax_tlp = \"{tlp}\"\nvalid_from = {}\n",
        a.id,
        quoted(&parties),
        time(a.from, bare)
    );
    if let Some(u) = a.until {
        t += &format!("valid_until = {}\n", time(u, !bare));
    }
    if !a.onward_absent {
        t += &match &a.onward {
            Onward::Nobody => "onward = \"nobody\"\n".to_string(),
            Onward::Parties => "onward = \"parties\"\n".to_string(),
            Onward::Community => "onward = \"community\"\n".to_string(),
            Onward::Named(l) => format!("onward = {}\n", quoted(l)),
        };
    }
    t += &format!(
        "[scope]\ncollections = {}\ntypes = {}\nlabels = {}\n",
        quoted(&a.collections),
        quoted(&a.types),
        quoted(&a.labels)
    );
    if let Some(p) = a.pap_default {
        t += &format!("[pap]\ndefault = \"{}\"\n", p.label());
    }
    t
}

pub struct Ctx<'a> {
    pub partners: &'a [String],
}

impl Context for Ctx<'_> {
    fn own_org(&self) -> &str {
        OWN
    }
    fn is_partner(&self, id: &str) -> bool {
        self.partners.iter().any(|p| p == id)
    }
    fn collection_id(&self, name: &str) -> Option<String> {
        COLLECTIONS.contains(&name).then(|| name.to_string())
    }
}

pub fn partner(id: &str) -> Partner {
    Partner {
        id: id.into(),
        name: id.into(),
        sector: Sector::Private,
        country: None,
        contact: None,
        identity: "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5".into(),
        signing_key: None,
        endpoints: vec![],
        cert_fingerprints: vec![],
        removed: false,
    }
}

pub fn build_policy(w: &World, partners: &[String], agrs: &[Agr]) -> Policy {
    let ctx = Ctx { partners };
    let checked = agrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let text = toml(a, i);
            parse_document(&text)
                .unwrap_or_else(|e| panic!("{e}\n{text}"))
                .check(&ctx, 1)
                .unwrap_or_else(|e| panic!("{e}\n{text}"))
        })
        .collect();
    Policy::new(
        OWN,
        Defaults {
            tlp: w.default_tlp,
            pap: w.default_pap,
            ..Defaults::default()
        },
        partners.iter().map(|p| partner(p)).collect(),
        checked,
    )
}

// ---------------------------------------------------------------------------------------
// The oracle, from the documented rules.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum To<'a> {
    Local,
    Partner(&'a str),
    Outsider,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Allow,
    Redact(BTreeSet<String>),
    Deny,
}

/// "in force at t: status active and valid_from ≤ t < valid_until".
pub fn in_force(a: &Agr, now: i64) -> bool {
    if a.status != Status::Active {
        return false;
    }
    if now < a.from {
        return false;
    }
    if let Some(u) = a.until
        && now >= u
    {
        return false;
    }
    true
}

/// "carries an object at a TLP when it is in force, its scope covers the object
/// (collection, type, label — empty lists cover all) and its max_tlp is at least that TLP".
pub fn carries(a: &Agr, o: &Obj, t: Tlp, now: i64) -> bool {
    if !in_force(a, now) {
        return false;
    }
    let mut coll_ok = a.collections.is_empty();
    for c in &a.collections {
        if c == o.coll {
            coll_ok = true;
        }
    }
    let mut type_ok = a.types.is_empty();
    for ty in &a.types {
        if ty == o.ty {
            type_ok = true;
        }
    }
    let mut label_ok = a.labels.is_empty();
    for l in &a.labels {
        for ol in &o.facts.labels {
            if l == ol {
                label_ok = true;
            }
        }
    }
    coll_ok && type_ok && label_ok && a.max_tlp >= t
}

pub fn is_party(a: &Agr, p: &str) -> bool {
    let mut found = false;
    for x in &a.parties {
        if x == p {
            found = true;
        }
    }
    found
}

/// "the community": partners with at least one agreement in force.
pub fn in_community(agrs: &[Agr], p: &str, now: i64) -> bool {
    for a in agrs {
        if is_party(a, p) && in_force(a, now) {
            return true;
        }
    }
    false
}

/// Whether content at TLP `t` may go to `to` (rules 1, 3, 4, 5), not counting rule 2.
pub fn may_see(agrs: &[Agr], o: &Obj, to: To<'_>, t: Tlp, purpose: Purpose, now: i64) -> bool {
    let p = match to {
        // Rule 1.
        To::Local => return true,
        // Rule 3.
        To::Outsider => return t == Tlp::Clear,
        To::Partner(p) => p,
    };
    // Rule 4.
    let rule4 = match t {
        Tlp::Clear => return true, // and rule 5: "TLP:CLEAR has no limit"
        Tlp::Green => in_community(agrs, p, now),
        Tlp::Amber | Tlp::AmberStrict => {
            let mut ok = false;
            for a in agrs {
                if is_party(a, p) && carries(a, o, t, now) {
                    ok = true;
                }
            }
            ok
        }
        Tlp::Red => {
            let mut ok = false;
            for a in agrs {
                if is_party(a, p) && carries(a, o, t, now) && a.max_tlp == Tlp::Red {
                    ok = true;
                }
            }
            ok && purpose == Purpose::Read
        }
    };
    if !rule4 {
        return false;
    }
    // Rule 5 (the recipient is not the source here).
    if let Some(s) = &o.facts.source {
        if t == Tlp::AmberStrict || t == Tlp::Red {
            return false;
        }
        let mut ok = false;
        for a in agrs {
            if !is_party(a, s) || !carries(a, o, t, now) {
                continue;
            }
            let lets_go = match &a.onward {
                Onward::Nobody => false,
                Onward::Parties => is_party(a, p),
                Onward::Named(list) => list.iter().any(|x| x == p),
                Onward::Community => in_community(agrs, p, now),
            };
            if lets_go {
                ok = true;
            }
        }
        if !ok {
            return false;
        }
    }
    true
}

/// Rule 6: the object's PAP, else the most restrictive `pap.default` of the agreements in
/// force with its source that carry it, else the node default.
pub fn effective_pap(w: &World, agrs: &[Agr], o: &Obj, now: i64) -> Pap {
    if let Some(p) = o.facts.pap {
        return p;
    }
    let tlp = o.facts.tlp.unwrap_or(w.default_tlp);
    let mut found: Option<Pap> = None;
    if let Some(s) = &o.facts.source {
        for a in agrs {
            if is_party(a, s)
                && carries(a, o, tlp, now)
                && let Some(d) = a.pap_default
                && found.is_none_or(|f| d > f)
            {
                found = Some(d);
            }
        }
    }
    found.unwrap_or(w.default_pap)
}

pub fn oracle(w: &World, agrs: &[Agr], o: &Obj, to: To<'_>, purpose: Purpose, now: i64) -> Out {
    let tlp = o.facts.tlp.unwrap_or(w.default_tlp);
    // Rule 2: the partner the object came from gets it back unchanged.
    let back = match to {
        To::Partner(p) => o.facts.source.as_deref() == Some(p),
        _ => false,
    };
    if !back && !may_see(agrs, o, to, tlp, purpose, now) {
        return Out::Deny;
    }
    // Rule 6: PAP governs use (whoever the recipient).
    let blocking = purpose == Purpose::ExportForBlocking;
    if blocking && effective_pap(w, agrs, o, now) > Pap::Green {
        return Out::Deny;
    }
    // Rule 7: granular markings more restrictive than the object's, per selector.
    let mut hidden = BTreeSet::new();
    for g in &o.facts.granular {
        match g.level {
            Level::Tlp(t) => {
                if t > tlp && !back && !may_see(agrs, o, to, t, purpose, now) {
                    hidden.insert(g.selector.clone());
                }
            }
            Level::Pap(p) => {
                if blocking && p > Pap::Green {
                    hidden.insert(g.selector.clone());
                }
            }
        }
    }
    if hidden.is_empty() {
        Out::Allow
    } else {
        Out::Redact(hidden)
    }
}
