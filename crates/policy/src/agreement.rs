//! Sharing agreements: the machine-readable memoranda of understanding that say who
//! shares what with whom, under which handling rules, for how long.
//!
//! The document is TOML or JSON ([`AgreementDoc`]); [`AgreementDoc::check`] turns it into
//! a typed [`Agreement`] or an [`AgreementError`] naming the field. The same document can
//! be loaded on every party's node: `parties` lists the organisations, and the node's own
//! organisation, when listed, is skipped (a node is implicitly a party to its agreements).

use phalanx_stix::Timestamp;
use phalanx_stix::markings::{Pap, Tlp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The lifecycle state of an agreement version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgreementStatus {
    /// Being negotiated: allows nothing.
    Draft,
    /// In force (within its validity window).
    Active,
    /// Temporarily stopped: allows nothing.
    Suspended,
    /// Ended for good: allows nothing.
    Terminated,
}

impl AgreementStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementStatus::Draft => "draft",
            AgreementStatus::Active => "active",
            AgreementStatus::Suspended => "suspended",
            AgreementStatus::Terminated => "terminated",
        }
    }
}

/// To whom a receiving party may pass on data received under the agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onward {
    /// Nobody: the data stays with the recipient.
    Nobody,
    /// The other parties to this agreement.
    Parties,
    /// These partners.
    Named(Vec<String>),
    /// Any partner with an active agreement with the recipient (the community).
    Community,
}

/// The scope of an agreement: what it covers. Empty lists cover everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Collections, by id, alias or title in the document; by id once checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// STIX object types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Labels: an object is covered when it carries at least one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// PAP rules of an agreement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PapDoc {
    /// PAP assumed for objects from the parties that carry no PAP marking
    /// (`CLEAR`, `GREEN`, `AMBER`, `RED`); default: the node's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A duty a party takes on (used by joint incident response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Obligation {
    /// What, e.g. `acknowledge-assistance-request`, `report-sightings`.
    pub kind: String,
    /// Deadline in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_hours: Option<u32>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An agreement document as written (TOML or JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementDoc {
    /// Stable id across versions.
    pub id: String,
    /// Title.
    pub title: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Version; assigned by the node when absent (one more than the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `draft`, `active`, `suspended` or `terminated`.
    pub status: AgreementStatus,
    /// Partner ids (the node's own organisation may be listed; it is always a party).
    pub parties: Vec<String>,
    /// What the agreement covers.
    #[serde(default)]
    pub scope: Scope,
    /// Highest TLP shared: `CLEAR`, `GREEN`, `AMBER`, `AMBER+STRICT`, `RED`
    /// (TLP 1.0 `WHITE` is `CLEAR`).
    pub max_tlp: String,
    /// PAP rules.
    #[serde(default)]
    pub pap: PapDoc,
    /// Onward sharing: `"nobody"`, `"parties"`, `"community"`, or a list of partner ids.
    #[serde(default = "nobody")]
    pub onward: Value,
    /// Days a recipient may keep data received under the agreement once it is
    /// terminated: the sender's push feeds send the recall that much later (none: at
    /// once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Start of validity (RFC 3339).
    pub valid_from: String,
    /// End of validity (RFC 3339), exclusive; none: open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// Obligations of the parties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<Obligation>,
}

fn nobody() -> Value {
    Value::String("nobody".into())
}

/// A typed, checked agreement version.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Stable id.
    pub id: String,
    /// Version (≥ 1).
    pub version: u32,
    /// Title.
    pub title: String,
    /// Lifecycle state.
    pub status: AgreementStatus,
    /// Partner ids (without the node's own organisation), sorted.
    pub parties: Vec<String>,
    /// Collection ids (empty: all).
    pub collections: Vec<String>,
    /// Object types (empty: all).
    pub types: Vec<String>,
    /// Labels (empty: any).
    pub labels: Vec<String>,
    /// Highest TLP shared.
    pub max_tlp: Tlp,
    /// PAP assumed for unmarked objects from the parties.
    pub default_pap: Option<Pap>,
    /// Onward-sharing right.
    pub onward: Onward,
    /// Retention in days.
    pub retention_days: Option<u32>,
    /// Validity start, µs since the epoch.
    pub valid_from_us: i64,
    /// Validity end (exclusive), µs.
    pub valid_until_us: Option<i64>,
    /// Obligations.
    pub obligations: Vec<Obligation>,
    /// The document, with collections resolved to ids and the version filled in.
    pub doc: AgreementDoc,
}

/// What is wrong with an agreement document, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agreement field {field}: {message}")]
pub struct AgreementError {
    /// The field (`parties[1]`, `scope.collections[0]`, `valid_until`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> AgreementError {
    AgreementError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a TLP level: `CLEAR`, `GREEN`, `AMBER`, `AMBER+STRICT`, `RED`, with or without
/// `TLP:`, any case; TLP 1.0 `WHITE` is `CLEAR`.
pub fn parse_tlp(s: &str) -> Result<Tlp, String> {
    let u = s.trim().to_ascii_uppercase();
    match u.strip_prefix("TLP:").unwrap_or(&u) {
        "CLEAR" | "WHITE" => Ok(Tlp::Clear),
        "GREEN" => Ok(Tlp::Green),
        "AMBER" => Ok(Tlp::Amber),
        "AMBER+STRICT" => Ok(Tlp::AmberStrict),
        "RED" => Ok(Tlp::Red),
        _ => Err(format!(
            "{s:?} is not a TLP level (CLEAR, GREEN, AMBER, AMBER+STRICT, RED; WHITE = CLEAR)"
        )),
    }
}

/// Parses a PAP level: `CLEAR` (or `WHITE`), `GREEN`, `AMBER`, `RED`, with or without `PAP:`.
pub fn parse_pap(s: &str) -> Result<Pap, String> {
    let u = s.trim().to_ascii_uppercase();
    match u.strip_prefix("PAP:").unwrap_or(&u) {
        "CLEAR" | "WHITE" => Ok(Pap::Clear),
        "GREEN" => Ok(Pap::Green),
        "AMBER" => Ok(Pap::Amber),
        "RED" => Ok(Pap::Red),
        _ => Err(format!(
            "{s:?} is not a PAP level (CLEAR, GREEN, AMBER, RED; WHITE = CLEAR)"
        )),
    }
}

/// Reads an agreement document from TOML or JSON text (JSON when it starts with `{`).
pub fn parse_document(text: &str) -> Result<AgreementDoc, AgreementError> {
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| err("(document)", format!("invalid JSON: {e}")))?
    } else {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| err("(document)", format!("invalid TOML: {e}")))?;
        toml_to_json(toml::Value::Table(table))
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let m = e.inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = m
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => f.to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (".", None) => "(document)".to_owned(),
            (p, None) => p.to_owned(),
        };
        err(field, m)
    })
}

/// TOML → JSON; TOML datetimes become their RFC 3339 text.
fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

fn timestamp(field: &str, s: &str) -> Result<i64, AgreementError> {
    Timestamp::parse(s).map(|t| t.as_micros()).map_err(|e| {
        err(
            field,
            format!("{s:?}: {e} (RFC 3339 in UTC, e.g. 2026-01-01T00:00:00Z)"),
        )
    })
}

/// What the node knows when checking an agreement.
pub trait Context {
    /// The node's own organisation id.
    fn own_org(&self) -> &str;
    /// Whether a partner with this id exists (and is not removed).
    fn is_partner(&self, id: &str) -> bool;
    /// The id of a collection named by id, alias or title.
    fn collection_id(&self, name: &str) -> Option<String>;
}

impl AgreementDoc {
    /// Checks every field and resolves names; `version` is the version this document
    /// becomes (the node assigns it).
    pub fn check(&self, ctx: &dyn Context, version: u32) -> Result<Agreement, AgreementError> {
        crate::partner::check_id("agreement id", &self.id).map_err(|m| err("id", m))?;
        if self.title.trim().is_empty() {
            return Err(err("title", "must not be empty"));
        }
        if version == 0 {
            return Err(err("version", "versions start at 1"));
        }
        let mut parties = Vec::new();
        for (i, p) in self.parties.iter().enumerate() {
            if p == ctx.own_org() {
                continue;
            }
            if !ctx.is_partner(p) {
                return Err(err(
                    format!("parties[{i}]"),
                    format!(
                        "{p:?} is not a partner of this node (add it with `phalanx partner add`)"
                    ),
                ));
            }
            if parties.contains(p) {
                return Err(err(
                    format!("parties[{i}]"),
                    format!("{p:?} is listed twice"),
                ));
            }
            parties.push(p.clone());
        }
        if parties.is_empty() {
            return Err(err("parties", "names no partner besides this node"));
        }
        parties.sort();
        let mut collections = Vec::new();
        for (i, c) in self.scope.collections.iter().enumerate() {
            let id = ctx.collection_id(c).ok_or_else(|| {
                err(
                    format!("scope.collections[{i}]"),
                    format!("no collection {c:?} on this node"),
                )
            })?;
            collections.push(id);
        }
        for (i, t) in self.scope.types.iter().enumerate() {
            let ok = t.len() >= 3
                && t.len() <= 250
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !t.starts_with('-')
                && !t.ends_with('-');
            if !ok {
                return Err(err(
                    format!("scope.types[{i}]"),
                    format!("{t:?} is not a STIX type name"),
                ));
            }
        }
        let max_tlp = parse_tlp(&self.max_tlp).map_err(|m| err("max_tlp", m))?;
        let default_pap = match &self.pap.default {
            Some(p) => Some(parse_pap(p).map_err(|m| err("pap.default", m))?),
            None => None,
        };
        let onward = match &self.onward {
            Value::String(s) => match s.as_str() {
                "nobody" => Onward::Nobody,
                "parties" => Onward::Parties,
                "community" => Onward::Community,
                _ => {
                    return Err(err(
                        "onward",
                        format!(
                            "{s:?}: expected \"nobody\", \"parties\", \"community\" or a list of partner ids"
                        ),
                    ));
                }
            },
            Value::Array(a) => {
                let mut named = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    let field = format!("onward[{i}]");
                    let p = v
                        .as_str()
                        .ok_or_else(|| err(&field, "expected a partner id"))?;
                    if p == ctx.own_org() {
                        continue;
                    }
                    if !ctx.is_partner(p) {
                        return Err(err(field, format!("{p:?} is not a partner of this node")));
                    }
                    named.push(p.to_owned());
                }
                Onward::Named(named)
            }
            _ => {
                return Err(err(
                    "onward",
                    "expected \"nobody\", \"parties\", \"community\" or a list of partner ids",
                ));
            }
        };
        if self.retention_days == Some(0) {
            return Err(err(
                "retention_days",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        let valid_from_us = timestamp("valid_from", &self.valid_from)?;
        let valid_until_us = match &self.valid_until {
            Some(u) => {
                let u = timestamp("valid_until", u)?;
                if u <= valid_from_us {
                    return Err(err("valid_until", "must be later than valid_from"));
                }
                Some(u)
            }
            None => None,
        };
        for (i, o) in self.obligations.iter().enumerate() {
            crate::partner::check_id("kind", &o.kind)
                .map_err(|m| err(format!("obligations[{i}].kind"), m))?;
            if o.within_hours == Some(0) {
                return Err(err(
                    format!("obligations[{i}].within_hours"),
                    "must be at least 1",
                ));
            }
        }
        let mut doc = self.clone();
        doc.version = Some(version);
        doc.scope.collections = collections.clone();
        Ok(Agreement {
            id: self.id.clone(),
            version,
            title: self.title.clone(),
            status: self.status,
            parties,
            collections,
            types: self.scope.types.clone(),
            labels: self.scope.labels.clone(),
            max_tlp,
            default_pap,
            onward,
            retention_days: self.retention_days,
            valid_from_us,
            valid_until_us,
            obligations: self.obligations.clone(),
            doc,
        })
    }
}

impl Agreement {
    /// In force at `now_us`: active and within its validity window.
    pub fn in_force(&self, now_us: i64) -> bool {
        self.status == AgreementStatus::Active
            && self.valid_from_us <= now_us
            && self.valid_until_us.is_none_or(|u| now_us < u)
    }

    /// Why it is not in force at `now_us`, if it is not.
    pub fn not_in_force(&self, now_us: i64) -> Option<String> {
        if self.status != AgreementStatus::Active {
            Some(format!("is {}", self.status.as_str()))
        } else if now_us < self.valid_from_us {
            Some(format!(
                "is not valid before {}",
                Timestamp::from_micros(self.valid_from_us)
            ))
        } else if let Some(u) = self.valid_until_us
            && now_us >= u
        {
            Some(format!("expired at {}", Timestamp::from_micros(u)))
        } else {
            None
        }
    }

    /// Whether a partner is a party.
    pub fn has_party(&self, partner: &str) -> bool {
        self.parties.iter().any(|p| p == partner)
    }

    /// Why the scope does not cover an object (collection, type, labels), if it does not.
    pub fn scope_excludes(
        &self,
        collection: &str,
        object_type: &str,
        labels: &[String],
    ) -> Option<String> {
        if !self.collections.is_empty() && !self.collections.iter().any(|c| c == collection) {
            Some(format!("does not cover collection {collection}"))
        } else if !self.types.is_empty() && !self.types.iter().any(|t| t == object_type) {
            Some(format!("does not cover type {object_type}"))
        } else if !self.labels.is_empty() && !self.labels.iter().any(|l| labels.contains(l)) {
            Some(format!("covers only labels {:?}", self.labels))
        } else {
            None
        }
    }

    /// A one-line name: `ID v3`.
    pub fn name(&self) -> String {
        format!("{} v{}", self.id, self.version)
    }
}

/// Field-by-field differences between two documents: `(field, old, new)` as JSON text.
pub fn diff(old: &AgreementDoc, new: &AgreementDoc) -> Vec<(String, String, String)> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| v.map_or_else(|| "(none)".to_owned(), Value::to_string);
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k.clone(), show(a.get(k)), show(b.get(k))))
        .collect()
}
