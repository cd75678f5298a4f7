//! Partners: the organisations this node cooperates with.

use serde::{Deserialize, Serialize};

/// The sector an organisation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sector {
    /// Ministries, agencies, national CERTs.
    Government,
    /// Armed forces, cyber commands.
    Military,
    /// Companies, including operators of critical infrastructure.
    Private,
    /// Universities and research institutes.
    Academic,
}

impl Sector {
    /// Parses `government`, `military`, `private` or `academic` (any case).
    pub fn parse(s: &str) -> Result<Sector, String> {
        match s.to_ascii_lowercase().as_str() {
            "government" => Ok(Sector::Government),
            "military" => Ok(Sector::Military),
            "private" => Ok(Sector::Private),
            "academic" => Ok(Sector::Academic),
            _ => Err(format!(
                "{s:?} is not a sector (government, military, private, academic)"
            )),
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Government => "government",
            Sector::Military => "military",
            Sector::Private => "private",
            Sector::Academic => "academic",
        }
    }

    /// The STIX `industry-sector-ov` value closest to it.
    pub fn stix_sector(self) -> &'static str {
        match self {
            Sector::Government => "government",
            Sector::Military => "defense",
            Sector::Private => "infrastructure",
            Sector::Academic => "education",
        }
    }
}

/// A partner organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    /// Short stable id (`cert-eu`): what tokens' `--org` and agreements' `parties` name.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Sector.
    pub sector: Sector,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Contact (e-mail, phone).
    pub contact: Option<String>,
    /// The STIX `identity` id that stands for the partner (`created_by_ref` of what it produces).
    pub identity: String,
    /// Ed25519 public signing key, 64 lower-case hex digits.
    pub signing_key: Option<String>,
    /// TAXII endpoints (API root or collection URLs).
    pub endpoints: Vec<String>,
    /// SHA-256 fingerprints (64 lower-case hex digits) of the TLS client certificates it
    /// connects with.
    pub cert_fingerprints: Vec<String>,
    /// Removed partners are kept for history; they are no longer recipients.
    pub removed: bool,
}

/// Checks an organisation or agreement id: 1–64 characters of letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {id:?}: 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// Normalises a certificate fingerprint: SHA-256 as hex, with or without `:` separators,
/// any case → 64 lower-case hex digits.
pub fn normalise_fingerprint(s: &str) -> Result<String, String> {
    let hex: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "certificate fingerprint {s:?}: expected a SHA-256 digest as 64 hex digits (colons allowed)"
        ))
    }
}

impl Partner {
    /// Checks every field; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        check_id("partner id", &self.id)?;
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if let Some(c) = &self.country
            && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "country {c:?}: expected an ISO 3166-1 alpha-2 code such as \"FR\""
            ));
        }
        phalanx_stix::id::parse_id(&self.identity)
            .map_err(|e| format!("identity {:?}: {e}", self.identity))?;
        if !self.identity.starts_with("identity--") {
            return Err(format!(
                "identity {:?}: must be an identity-- id",
                self.identity
            ));
        }
        if let Some(k) = &self.signing_key
            && !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!(
                "signing key {k:?}: expected an Ed25519 public key as 64 hex digits"
            ));
        }
        for e in &self.endpoints {
            let ok = (e.starts_with("https://") || e.starts_with("http://"))
                && e.len() > 8
                && !e.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(format!(
                    "endpoint {e:?}: expected an http(s):// URL of a TAXII API root or collection"
                ));
            }
        }
        for f in &self.cert_fingerprints {
            if normalise_fingerprint(f)? != *f {
                return Err(format!(
                    "certificate fingerprint {f:?}: not normalised (64 lower-case hex digits)"
                ));
            }
        }
        Ok(())
    }
}
