//! Attestations: how a producing node's Ed25519 signature on object versions travels over
//! plain TAXII without changing the objects.
//!
//! The format is described in [`phalanx_policy::provenance`]: one attestation covers a
//! group of versions that share type, markings, labels and granular markings (so the
//! policy decides the attestation exactly as each of them), each named by (id, version,
//! SHA-256 of its RFC 8785 form). One signature per group instead of per object: the
//! receivers verify once for up to [`MAX_GROUP`] objects.
//!
//! Everything is deterministic (Ed25519 signatures are), so signing the same group twice
//! gives the same bytes and ingest stays idempotent. In an envelope the attestation
//! comes **before** the objects it covers, so a receiver always has it when an object
//! arrives — in the same envelope or page, or stored from an earlier one.
//!
//! Verification order on ingest ([`check_batch`]): parse and validate (done by the
//! caller) → the signer is a registered partner with a key → the signature verifies →
//! each covered object's digest matches (every verified attestation that covers a
//! version must match it) → a partner that signs must have every versioned object it
//! sends covered.
//!
//! **Paths.** A node that passes on versions it received signs them too, with a
//! *transit* attestation: the same format plus `path`, the identities of the nodes the
//! versions passed before it (oldest first; the first is the node that shared them
//! first). The receiver records as the versions' path the `path` of the transit
//! attestation of the partner it received them from, followed by that partner
//! ([`Checked::paths`]); without one, just that partner. So C, receiving A's indicator
//! through B, holds A's attestation (who produced it) and B's (that it came A → B),
//! both verifiable by anyone who has A's and B's keys, and records the path A → B.
//! Federation never sends a version to a node on its path.

use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use phalanx_policy::provenance;
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::HashMap;

pub use phalanx_policy::provenance::ATTESTATION as TYPE;

/// Most object versions one attestation covers (its size stays well under 1 MiB).
pub const MAX_GROUP: usize = 1000;

/// Most hops a transit attestation's `path` may name.
pub const MAX_PATH: usize = 32;

/// Namespace of attestation ids (UUIDv5 over the covered `id|version` lines).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7a4c_61e2_3b0f_4d8e_9a51_c2f0_83d4_6b19);

/// `sha256:` and the hex SHA-256 of the RFC 8785 form of an object.
pub fn digest(object: &Map<String, Value>) -> String {
    let canonical = phalanx_stix::json::canonical_object(object);
    let h = sha2::Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", crate::auth::hex(&h))
}

/// The id of the attestation of a list of (object id, version) by `signer`. It names the
/// signer and, for a transit attestation, the path: no node can take the id of another
/// node's attestation of the same versions (and so have it refused as a conflict). The
/// covered ids and versions are checked to be STIX ids and timestamps ([`verify`]), so
/// the `|` and newline separators are unambiguous.
pub fn id_for<'a>(
    covers: impl IntoIterator<Item = (&'a str, &'a str)>,
    signer: &str,
    path: &[String],
) -> String {
    let mut name = String::new();
    name.push_str(if path.is_empty() {
        "origin|"
    } else {
        "transit|"
    });
    name.push_str(signer);
    for hop in path {
        name.push('|');
        name.push_str(hop);
    }
    name.push('\n');
    legacy_id_for(covers, name)
}

/// The id before it named the signer (origin attestations stored by earlier versions
/// still verify).
fn legacy_id_for<'a>(
    covers: impl IntoIterator<Item = (&'a str, &'a str)>,
    mut name: String,
) -> String {
    for (id, version) in covers {
        name.push_str(id);
        name.push('|');
        name.push_str(version);
        name.push('\n');
    }
    format!(
        "{TYPE}--{}",
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes())
    )
}

/// The version of an object as TAXII and attestations name it: `modified`, else `created`.
fn version_of(o: &Map<String, Value>) -> Option<&str> {
    o.get("modified")
        .or_else(|| o.get("created"))
        .and_then(Value::as_str)
}

/// What objects of one attestation group share (type, markings, labels, granular
/// markings), as text; `None` for what is not attested (unversioned SCOs, attestations).
pub fn group_key(o: &Map<String, Value>) -> Option<String> {
    version_of(o)?;
    let ty = o.get("type")?.as_str()?;
    if ty == TYPE {
        return None;
    }
    let part = |k: &str| {
        o.get(k)
            .map(phalanx_stix::json::canonical)
            .unwrap_or_default()
    };
    Some(format!(
        "{ty}\n{}\n{}\n{}",
        part("object_marking_refs"),
        part("labels"),
        part("granular_markings")
    ))
}

/// Signs a group of object versions (their JSON texts, all with the same
/// [`group_key`]) as `signer` (an identity id) with `key`. `path` is empty for versions
/// this node shares first; for versions it passes on, the nodes they passed before it
/// (a transit attestation).
pub fn attest(
    objects: &[&str],
    path: &[String],
    signer: &str,
    key: &ed25519_dalek::SigningKey,
) -> Result<String, String> {
    let mut maps = Vec::with_capacity(objects.len());
    for raw in objects {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(o)) => maps.push(o),
            _ => return Err("an object to attest is not a JSON object".into()),
        }
    }
    let first = maps.first().ok_or("nothing to attest")?;
    let key0 = group_key(first).ok_or("unversioned objects are not attested")?;
    if maps.iter().any(|m| group_key(m).as_deref() != Some(&key0)) {
        return Err("an attestation covers objects of one type, markings and labels".into());
    }
    let mut covers = Vec::with_capacity(maps.len());
    let mut latest = "";
    for m in &maps {
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .ok_or("object without id")?;
        let version = version_of(m).ok_or("object without version")?;
        latest = latest.max(version);
        covers.push(json!({"object_ref": id, "object_modified": version, "digest": digest(m)}));
    }
    let id = id_for(
        maps.iter()
            .filter_map(|m| Some((m.get("id")?.as_str()?, version_of(m)?))),
        signer,
        path,
    );
    let mut a = json!({
        "type": TYPE,
        "spec_version": "2.1",
        "id": id,
        "created": latest,
        "modified": latest,
        "created_by_ref": signer,
        "object_type": first.get("type"),
        "covers": covers,
    });
    for k in ["object_marking_refs", "labels", "granular_markings"] {
        if let Some(v) = first.get(k) {
            a[k] = v.clone();
        }
    }
    if !path.is_empty() {
        a["path"] = json!(path);
    }
    let sig = key.sign(phalanx_stix::json::canonical(&a).as_bytes());
    a["signature"] = base64::engine::general_purpose::STANDARD
        .encode(sig.to_bytes())
        .into();
    Ok(a.to_string())
}

/// One item of an envelope in the order it is sent: an attestation, then the indexes of
/// the objects it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An attestation made here.
    Attestation(String),
    /// The object at this index of the input.
    Object(usize),
}

/// Groups the objects to sign by path and [`group_key`] (in order of first appearance,
/// at most [`MAX_GROUP`] each) and signs each group; returns the envelope order — every
/// attestation right before the objects it covers, objects that are not attested
/// (`paths[i]` `None`, SCOs) in place. `paths[i]` is `Some(&[])` for what this node
/// produced and `Some(path)` for what it passes on (see [`attest`]).
pub fn sign_page(
    objects: &[&str],
    paths: &[Option<&[String]>],
    signer: &str,
    key: &ed25519_dalek::SigningKey,
) -> Vec<Item> {
    let plan = plan_groups(objects, paths);
    let signed: Vec<Option<String>> = crate::parallel_map(&plan, 2, |step| match step {
        Step::Group(members) => {
            let texts: Vec<&str> = members.iter().map(|&i| objects[i]).collect();
            let path = paths[members[0]].unwrap_or_default();
            attest(&texts, path, signer, key).ok()
        }
        Step::Plain(_) => None,
    });
    let mut out = Vec::with_capacity(objects.len() + plan.len());
    for (step, att) in plan.iter().zip(signed) {
        match step {
            Step::Group(members) => {
                out.extend(att.map(Item::Attestation));
                out.extend(members.iter().map(|&i| Item::Object(i)));
            }
            Step::Plain(i) => out.push(Item::Object(*i)),
        }
    }
    out
}

enum Step {
    Group(Vec<usize>),
    Plain(usize),
}

fn plan_groups(objects: &[&str], paths: &[Option<&[String]>]) -> Vec<Step> {
    let mut plan: Vec<Step> = Vec::new();
    // (path, group key) → index in `plan` of its open group
    let mut open: HashMap<String, usize> = HashMap::new();
    for (i, raw) in objects.iter().enumerate() {
        let key = paths.get(i).copied().flatten().and_then(|path| {
            match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(m)) => group_key(&m).map(|k| format!("{}\n{k}", path.join(" "))),
                _ => None,
            }
        });
        let Some(key) = key else {
            plan.push(Step::Plain(i));
            continue;
        };
        match open.get(&key).copied() {
            Some(g) if matches!(&plan[g], Step::Group(m) if m.len() < MAX_GROUP) => {
                if let Step::Group(m) = &mut plan[g] {
                    m.push(i);
                }
            }
            _ => {
                open.insert(key, plan.len());
                plan.push(Step::Group(vec![i]));
            }
        }
    }
    plan
}

/// What a valid attestation covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// The signer's identity id.
    pub signer: String,
    /// For a transit attestation, the nodes the versions passed before the signer
    /// (oldest first); empty when the signer shared them first.
    pub path: Vec<String>,
    /// Object id → (version, digest) of each covered version of it.
    pub digests: HashMap<String, Vec<(String, String)>>,
}

impl Covered {
    /// Whether an object's JSON is a version this attestation covers, with the content
    /// signed: `None` when it does not cover that version at all.
    pub fn matches(&self, object: &Map<String, Value>) -> Option<bool> {
        let id = object.get("id").and_then(Value::as_str)?;
        let signed = self.signed_digest(id, version_of(object)?)?;
        Some(signed == digest(object))
    }

    /// The digest signed for (id, version), if covered.
    pub fn signed_digest(&self, id: &str, version: &str) -> Option<&str> {
        let (_, d) = self.digests.get(id)?.iter().find(|(v, _)| v == version)?;
        Some(d)
    }

    /// Number of versions covered.
    pub fn len(&self) -> usize {
        self.digests.values().map(Vec::len).sum()
    }

    /// Whether it covers nothing.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// Checks an attestation's signature with the signer's public key (32 bytes) and returns
/// what it covers; the caller then compares digests with the objects.
pub fn verify(att: &Map<String, Value>, public_key: &[u8; 32]) -> Result<Covered, String> {
    let sig_b64 = att
        .get("signature")
        .and_then(Value::as_str)
        .ok_or("attestation without signature")?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or("attestation signature is not 64 bytes of base64")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
        .map_err(|_| "the signer's registered key is not a valid Ed25519 key")?;
    let mut unsigned = att.clone();
    unsigned.remove("signature");
    let message = phalanx_stix::json::canonical(&Value::Object(unsigned));
    key.verify(
        message.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| "the signature does not verify with the signer's registered key".to_owned())?;
    let signer = att
        .get("created_by_ref")
        .and_then(Value::as_str)
        .ok_or("attestation without created_by_ref")?;
    let Some(Value::Array(entries)) = att.get("covers") else {
        return Err("attestation without covers".into());
    };
    let mut digests = HashMap::with_capacity(entries.len());
    let mut order = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let field = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("attestation covers[{i}] without {k}"))
        };
        let (id, version, d) = (
            field("object_ref")?,
            field("object_modified")?,
            field("digest")?,
        );
        if phalanx_stix::id::parse_id(id).is_err()
            || phalanx_stix::Timestamp::parse(version).is_err()
        {
            return Err(format!(
                "attestation covers[{i}]: object_ref must be a STIX id and object_modified a timestamp"
            ));
        }
        order.push((id, version));
        digests
            .entry(id.to_owned())
            .or_insert_with(Vec::new)
            .push((version.to_owned(), d.to_owned()));
    }
    let path = match att.get("path") {
        None => Vec::new(),
        Some(Value::Array(hops)) if !hops.is_empty() && hops.len() <= MAX_PATH => {
            let mut path = Vec::with_capacity(hops.len());
            for (i, h) in hops.iter().enumerate() {
                match h.as_str() {
                    Some(id)
                        if id.starts_with("identity--")
                            && phalanx_stix::id::parse_id(id).is_ok()
                            && id != signer =>
                    {
                        path.push(id.to_owned());
                    }
                    _ => {
                        return Err(format!(
                            "attestation path[{i}]: expected the identity id of another node"
                        ));
                    }
                }
            }
            path
        }
        Some(_) => {
            return Err(format!(
                "attestation path: expected a list of 1 to {MAX_PATH} identity ids"
            ));
        }
    };
    let id = att.get("id").and_then(Value::as_str);
    let legacy =
        || path.is_empty() && id == Some(&legacy_id_for(order.iter().copied(), String::new()));
    if id != Some(&id_for(order.iter().copied(), signer, &path)) && !legacy() {
        return Err("attestation id does not match what it covers".into());
    }
    Ok(Covered {
        signer: signer.to_owned(),
        path,
        digests,
    })
}

/// Verifies an attestation against the partner registry: `Ok(None)` when its signer is
/// not a partner with a registered key (it cannot be checked, and vouches for nothing);
/// `Err` when the signer is known and the attestation does not verify.
pub fn verify_registered(
    policy: &phalanx_policy::Policy,
    att: &Map<String, Value>,
) -> Result<Option<(String, Covered)>, String> {
    let Some(signer) = att.get("created_by_ref").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Some(partner) = policy.partner_by_identity(signer) else {
        return Ok(None);
    };
    let Some(key) = partner.signing_key.as_deref().and_then(key_bytes) else {
        return Ok(None);
    };
    verify(att, &key)
        .map(|c| Some((partner.id.clone(), c)))
        .map_err(|e| format!("{e} (signer {})", partner.id))
}

/// Finds the stored attestations (JSON texts) that claim to cover (id, version).
pub type StoredLookup<'a> = dyn Fn(&str, &str) -> Result<Vec<String>, String> + 'a;

/// What a batch is checked against besides itself.
pub struct BatchContext<'a> {
    /// The partner the batch comes from (`None`: this node's own users).
    pub source: Option<&'a str>,
    /// This node's identity: its own objects coming back are refused.
    pub own_identity: Option<&'a str>,
    /// The stored attestations claiming to cover (id, version) in the target collection.
    pub stored: &'a StoredLookup<'a>,
}

/// What checking the signatures of a batch found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Indexes of objects to refuse, with why (sorted, one entry per index).
    pub refused: Vec<(usize, String)>,
    /// Per object of the batch, the path to record ([`phalanx_policy::Facts::path`]):
    /// from a partner, the `path` of its verified transit attestation covering the
    /// version, followed by the partner's identity (just the partner's identity without
    /// one); empty for this node's own users.
    pub paths: Vec<Vec<String>>,
}

/// Checks the signatures in a batch (see [`Checked`]):
///
/// - An attestation by a partner with a registered key must verify (else it is refused,
///   and so are the objects it claims to cover).
/// - An object verified attestations cover (in the batch, or stored earlier) must match
///   the digest each of them signed: one mismatch refuses it, so a node that passes on
///   an altered copy cannot cover it with its own transit attestation.
/// - From a partner that signs ([`phalanx_policy::Policy::requires_signature`]), every
///   versioned object must be covered by a verified attestation of a registered partner
///   — its producer, or a node that passed it on.
/// - Objects and attestations this node produced are not taken back.
///
/// Attestations of signers that cannot be checked are kept, unverified.
pub fn check_batch(
    policy: &phalanx_policy::Policy,
    objects: &[phalanx_stix::ValidObject],
    ctx: &BatchContext<'_>,
) -> Checked {
    let mut refused: Vec<(usize, String)> = Vec::new();
    let mut verified: Vec<(String, Covered)> = Vec::new();
    // (object id, version) → why its attestation was refused
    let mut bad_claims: HashMap<(String, String), String> = HashMap::new();
    let mut own = std::collections::HashSet::new();
    for (i, o) in objects.iter().enumerate() {
        if ctx.own_identity.is_some() && o.str_prop("created_by_ref") == ctx.own_identity {
            own.insert(i);
            refused.push((
                i,
                "this node produced it: its own data is not taken back".into(),
            ));
            continue;
        }
        if o.object_type() != TYPE {
            continue;
        }
        match verify_registered(policy, o.json()) {
            Ok(Some(v)) => verified.push(v),
            Ok(None) => {}
            Err(e) => {
                for (id, version) in provenance::covered(o.json()) {
                    bad_claims.insert((id.to_owned(), version.to_owned()), e.clone());
                }
                refused.push((i, format!("attestation refused: {e}")));
            }
        }
    }
    let required = ctx.source.is_some_and(|s| policy.requires_signature(s));
    let partner = ctx.source.and_then(|s| policy.partner(s));
    // From a partner that signs, an object without its attestation in the batch is
    // looked up among the stored ones (which an earlier envelope or page brought).
    let signs = partner.is_some_and(|p| p.signing_key.is_some());
    let hop = partner.map(|p| p.identity.as_str());
    let mut paths: Vec<Vec<String>> = vec![Vec::new(); objects.len()];
    // Stored attestations, verified once per batch (by text).
    let mut stored_cache: HashMap<String, Option<(String, Covered)>> = HashMap::new();
    let signs_with_key = |identity: &str| {
        policy
            .partner_by_identity(identity)
            .is_some_and(|p| p.signing_key.is_some())
    };
    for (i, o) in objects.iter().enumerate() {
        // Recall notices need no signature: one can only withdraw what came from the
        // partner that sends it, over the partner's authenticated channel.
        if o.object_type() == TYPE || o.object_type() == provenance::RECALL || own.contains(&i) {
            paths[i].extend(hop.map(str::to_owned));
            continue;
        }
        let Some(version) = version_of(o.json()) else {
            paths[i].extend(hop.map(str::to_owned));
            continue; // SCOs are not attested.
        };
        if !bad_claims.is_empty()
            && let Some(e) = bad_claims.get(&(o.id().to_owned(), version.to_owned()))
        {
            refused.push((i, format!("its signature is refused: {e}")));
            continue;
        }
        // Verified attestations covering this version: (signer, path, signed digest).
        let mut covering: Vec<(String, Vec<String>, String)> = verified
            .iter()
            .filter_map(|(_, c)| {
                let d = c.signed_digest(o.id(), version)?;
                Some((c.signer.clone(), c.path.clone(), d.to_owned()))
            })
            .collect();
        let transit_of = |cov: &[(String, Vec<String>, String)]| {
            cov.iter()
                .find(|(s, p, _)| Some(s.as_str()) == hop && !p.is_empty())
                .map(|(_, p, _)| p.clone())
        };
        let by_source = covering.iter().any(|(s, _, _)| Some(s.as_str()) == hop);
        // A transit attestation names the node that shared the version first; when that
        // node signs, its own attestation must be there too (a forwarder cannot stand
        // in for the producer, e.g. over a copy it altered).
        let origin_missing = |cov: &[(String, Vec<String>, String)]| {
            transit_of(cov)
                .and_then(|p| p.first().cloned())
                .filter(|first| {
                    signs_with_key(first) && !cov.iter().any(|(s, p, _)| s == first && p.is_empty())
                })
        };
        if (!by_source && signs) || origin_missing(&covering).is_some() {
            let stored = match (ctx.stored)(o.id(), version) {
                Ok(s) => s,
                Err(e) => {
                    refused.push((i, e));
                    continue;
                }
            };
            for raw in stored {
                let entry = stored_cache.entry(raw.clone()).or_insert_with(|| {
                    match serde_json::from_str::<Value>(&raw) {
                        Ok(Value::Object(m)) => verify_registered(policy, &m).ok().flatten(),
                        _ => None,
                    }
                });
                if let Some((_, c)) = entry
                    && let Some(d) = c.signed_digest(o.id(), version)
                    && !covering
                        .iter()
                        .any(|(s, p, _)| *s == c.signer && *p == c.path)
                {
                    covering.push((c.signer.clone(), c.path.clone(), d.to_owned()));
                }
            }
        }
        if let Some(first) = origin_missing(&covering) {
            refused.push((
                i,
                format!("its producer {first} signs what it shares, and no attestation of it covers this version"),
            ));
            continue;
        }
        // The hops before the partner: as its transit attestation names them, else the
        // node whose origin attestation covers it (the object's own producer's first);
        // hops between that did not sign are not known.
        let via = transit_of(&covering);
        let before: Vec<String> = match &via {
            Some(p) => p.clone(),
            None => {
                let origins: Vec<&String> = covering
                    .iter()
                    .filter(|(s, p, _)| p.is_empty() && Some(s.as_str()) != hop)
                    .map(|(s, _, _)| s)
                    .collect();
                let claimed = o.str_prop("created_by_ref");
                origins
                    .iter()
                    .find(|s| Some(s.as_str()) == claimed)
                    .or(origins.first())
                    .map(|s| vec![(*s).clone()])
                    .unwrap_or_default()
            }
        };
        // Only the signers on that path (and the partner) vouch for this version: a
        // mismatch among them refuses it; other nodes' attestations do not count.
        let relevant = |signer: &str| Some(signer) == hop || before.iter().any(|h| h == signer);
        let mut found: Option<bool> = None;
        let mut digest_of_o: Option<String> = None;
        for (signer, _, signed) in &covering {
            if relevant(signer) {
                let d = digest_of_o.get_or_insert_with(|| digest(o.json()));
                found = Some(found.unwrap_or(true) && signed == d);
            }
        }
        let mut path = before;
        path.extend(hop.map(str::to_owned));
        if ctx
            .own_identity
            .is_some_and(|me| path.iter().any(|h| h == me))
        {
            refused.push((
                i,
                "its path names this node: it has passed here before (a loop)".into(),
            ));
            continue;
        }
        if path.len() > MAX_PATH {
            refused.push((
                i,
                format!(
                    "it travelled {} hops, more than the {MAX_PATH} a path may name",
                    path.len()
                ),
            ));
            continue;
        }
        paths[i] = path;
        match found {
            Some(true) => {}
            Some(false) => refused.push((
                i,
                "the content differs from what a signer signed (digest mismatch)".into(),
            )),
            None if required => refused.push((
                i,
                format!(
                    "unsigned: partner {} signs what it shares, and no valid attestation of a registered partner covers this version",
                    ctx.source.unwrap_or_default()
                ),
            )),
            None => {}
        }
    }
    refused.sort();
    refused.dedup_by_key(|(i, _)| *i);
    Checked { refused, paths }
}

/// A registered public key (64 hex digits) as bytes.
pub fn key_bytes(hex: &str) -> Option<[u8; 32]> {
    crate::auth::from_hex(hex)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(ip: &str, labels: &str) -> String {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{}","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-02T00:00:00.000Z","pattern":"[ipv4-addr:value = '{ip}']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","labels":[{labels}],"object_marking_refs":["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]}}"#,
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, ip.as_bytes())
        )
    }

    fn map(s: &str) -> Map<String, Value> {
        match serde_json::from_str(s).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn sign_verify_tamper() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = key.verifying_key().to_bytes();
        let signer = "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1";
        let (x, y) = (
            obj("198.51.100.3", "\"apt\""),
            obj("198.51.100.4", "\"apt\""),
        );
        let a = attest(&[&x, &y], &[], signer, &key).unwrap();
        // Deterministic: the same versions sign to the same bytes.
        assert_eq!(a, attest(&[&x, &y], &[], signer, &key).unwrap());
        let att = map(&a);
        assert_eq!(att["object_marking_refs"], map(&x)["object_marking_refs"]);
        assert_eq!(att["object_type"], "indicator");
        let covered = verify(&att, &pk).unwrap();
        assert_eq!(covered.signer, signer);
        assert_eq!(covered.len(), 2);
        // Key order and whitespace do not matter (RFC 8785); content does.
        let pretty = serde_json::to_string_pretty(&map(&x)).unwrap();
        assert_eq!(covered.matches(&map(&pretty)), Some(true));
        let tampered = x.replace("apt", "crime");
        assert_eq!(covered.matches(&map(&tampered)), Some(false));
        let other = obj("198.51.100.5", "\"apt\"");
        assert_eq!(covered.matches(&map(&other)), None);
        // Another key, or an edited attestation, fails.
        let wrong = ed25519_dalek::SigningKey::from_bytes(&[8; 32])
            .verifying_key()
            .to_bytes();
        assert!(verify(&att, &wrong).is_err());
        let mut edited = att.clone();
        edited["covers"][0]["digest"] = "sha256:00".into();
        assert!(verify(&edited, &pk).is_err());
        // Objects with other labels do not share an attestation; SCOs are not attested.
        let z = obj("198.51.100.6", "\"crime\"");
        assert!(attest(&[&x, &z], &[], signer, &key).is_err());
        let sco = r#"{"type":"ipv4-addr","id":"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4","value":"198.51.100.3"}"#;
        assert!(attest(&[sco], &[], signer, &key).is_err());
    }

    #[test]
    fn a_page_is_grouped_with_each_attestation_before_its_objects() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let signer = "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1";
        let sco = r#"{"type":"ipv4-addr","id":"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4","value":"198.51.100.3"}"#;
        let objs = [
            obj("10.0.0.1", "\"a\""),
            obj("10.0.0.2", "\"b\""),
            obj("10.0.0.3", "\"a\""),
            sco.to_owned(),
            obj("10.0.0.4", "\"a\""),
        ];
        let texts: Vec<&str> = objs.iter().map(String::as_str).collect();
        // The fifth came from a partner before paths were recorded: not signed here.
        let own: &[String] = &[];
        let items = sign_page(
            &texts,
            &[Some(own), Some(own), Some(own), Some(own), None],
            signer,
            &key,
        );
        let shape: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Attestation(a) => format!("A{}", map(a)["covers"].as_array().unwrap().len()),
                Item::Object(i) => i.to_string(),
            })
            .collect();
        assert_eq!(shape, ["A2", "0", "2", "A1", "1", "3", "4"]);
    }

    #[test]
    fn transit_attestations_name_the_path_and_group_by_it() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let pk = key.verifying_key().to_bytes();
        let forwarder = "identity--0b0c0d0e-1f20-4a2b-8c3d-4e5f60718293";
        let producer = "identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1".to_owned();
        let other = "identity--7d6e5f40-3a2b-4c1d-8e0f-a1b2c3d4e5f6".to_owned();
        let (x, y, z) = (
            obj("10.1.0.1", "\"a\""),
            obj("10.1.0.2", "\"a\""),
            obj("10.1.0.3", "\"a\""),
        );
        let texts = [x.as_str(), y.as_str(), z.as_str()];
        let via_p = vec![producer.clone()];
        let via_o = vec![other.clone(), producer.clone()];
        // Same type and markings, different paths: two groups.
        let items = sign_page(
            &texts,
            &[Some(&via_p[..]), Some(&via_o[..]), Some(&via_p[..])],
            forwarder,
            &key,
        );
        let mut seen = Vec::new();
        for i in &items {
            if let Item::Attestation(a) = i {
                let c = verify(&map(a), &pk).unwrap();
                assert_eq!(c.signer, forwarder);
                seen.push((c.path.clone(), c.len()));
            }
        }
        assert_eq!(seen, [(via_p.clone(), 2), (via_o.clone(), 1)]);
        // An origin attestation has no path property at all.
        let origin = map(&attest(&[&x], &[], forwarder, &key).unwrap());
        assert!(!origin.contains_key("path"));
        assert!(verify(&origin, &pk).unwrap().path.is_empty());
        // A path is signed: editing it breaks the signature; malformed paths are refused
        // even when correctly signed.
        let mut edited = map(&attest(&[&x], &via_p, forwarder, &key).unwrap());
        edited["path"] = json!([other]);
        assert!(verify(&edited, &pk).is_err());
        // Signs an edited attestation again and verifies it.
        let sign = |mut a: Map<String, Value>| {
            a.remove("signature");
            let sig = key.sign(phalanx_stix::json::canonical(&Value::Object(a.clone())).as_bytes());
            a.insert(
                "signature".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(sig.to_bytes())
                    .into(),
            );
            verify(&a, &pk)
        };
        let resign = |path: Value| {
            let mut a = map(&attest(&[&x], &via_p, forwarder, &key).unwrap());
            a["path"] = path;
            sign(a)
        };
        assert!(resign(json!([producer])).is_ok());
        // Origin attestations made before ids named their signer still verify; any
        // other id does not.
        let mut old = map(&attest(&[&x], &[], forwarder, &key).unwrap());
        let x_map = map(&x);
        let x_id = x_map["id"].as_str().unwrap();
        let x_version = x_map["modified"].as_str().unwrap();
        let legacy = legacy_id_for([(x_id, x_version)], String::new());
        old.insert("id".into(), legacy.clone().into());
        assert!(sign(old.clone()).is_ok());
        old.insert(
            "id".into(),
            id_for([(x_id, x_version)], producer.as_str(), &[]).into(),
        );
        assert!(sign(old.clone()).is_err(), "another signer's id");
        // Covered ids and versions must be what they claim to be.
        old.insert("id".into(), legacy.into());
        old["covers"][0]["object_modified"] = "2026|x".into();
        assert!(sign(old).unwrap_err().contains("covers[0]"));
        for bad in [
            json!([]),
            json!("identity--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1"),
            json!(["not an id"]),
            json!(["indicator--5b4f5c2c-9d1c-4f58-8a2c-64a7c1b1c0d1"]),
            json!([forwarder]),
            json!(vec![producer.clone(); MAX_PATH + 1]),
        ] {
            let e = resign(bad.clone()).unwrap_err();
            assert!(e.contains("path"), "{bad}: {e}");
        }
    }
}
