//! The facts about an object version the policy decides on, extracted once at ingest and
//! kept beside the object (never inside it).

use phalanx_stix::markings::{EffectiveMarkings, Pap, Tlp, standard_marking};
use serde_json::{Map, Value};

/// A granular marking the policy acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granular {
    /// The selector (`description`, `external_references.[0].url`).
    pub selector: String,
    /// The marking on it.
    pub level: Level,
}

/// A TLP or PAP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// TLP.
    Tlp(Tlp),
    /// PAP.
    Pap(Pap),
}

/// Sharing facts of one object version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Most restrictive object-level TLP (`None`: unmarked; the node's default applies).
    pub tlp: Option<Tlp>,
    /// Most restrictive object-level PAP.
    pub pap: Option<Pap>,
    /// The object's `labels`.
    pub labels: Vec<String>,
    /// Granular TLP/PAP markings.
    pub granular: Vec<Granular>,
    /// The partner this version was received from (`None`: produced or imported locally).
    pub source: Option<String>,
    /// Who the object says produced it: its `created_by_ref` (an identity id). A claim,
    /// which an attestation can prove; the node never sends an object back to its
    /// producer, nor stores its own objects coming back.
    pub producer: Option<String>,
    /// The nodes (STIX identity ids) this version passed through before reaching this
    /// node, oldest first: the first shared it, the last is the partner it came from.
    /// Empty for what this node produced or imported (and when the partner it came from
    /// registered no identity). Each hop proves its part with a signed transit
    /// attestation (see [`crate::provenance`]); federation never sends a version to a
    /// node on its path.
    pub path: Vec<String>,
    /// The partner whose data this version reports on — a sighting of an indicator
    /// that partner produced. It goes to that partner only (as its agreements allow),
    /// never to a third party: what a partner shared, and that it was seen here, stay
    /// between the two.
    pub about: Option<String>,
}

impl Facts {
    /// The facts of an object's JSON, received from `source`. The standard TLP and PAP
    /// marking definitions are public: they count as TLP:CLEAR.
    pub fn of(object: &Map<String, Value>, source: Option<&str>) -> Facts {
        let m = EffectiveMarkings::of(object);
        let id = object.get("id").and_then(Value::as_str).unwrap_or("");
        let public_definition = standard_marking(id).is_some();
        let mut granular: Vec<Granular> = m
            .granular_tlp
            .into_iter()
            .map(|(selector, t)| Granular {
                selector,
                level: Level::Tlp(t),
            })
            .collect();
        granular.extend(m.granular_pap.into_iter().map(|(selector, p)| Granular {
            selector,
            level: Level::Pap(p),
        }));
        Facts {
            tlp: if public_definition {
                Some(Tlp::Clear)
            } else {
                m.tlp
            },
            pap: m.pap,
            labels: match object.get("labels") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            },
            granular,
            source: source.map(str::to_owned),
            producer: object
                .get("created_by_ref")
                .and_then(Value::as_str)
                .map(str::to_owned),
            path: Vec::new(),
            about: None,
        }
    }

    /// The path as stored: hops separated by spaces (identity ids hold none); `None`
    /// when empty.
    pub fn path_text(&self) -> Option<String> {
        (!self.path.is_empty()).then(|| self.path.join(" "))
    }

    /// Reads [`Facts::path_text`] back.
    pub fn parse_path(text: Option<&str>) -> Vec<String> {
        text.map(|t| {
            t.split(' ')
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Compact text of the granular markings for storage: `T<level> <selector>` or
    /// `P<level> <selector>` lines, level 0 (CLEAR) to 4 (RED).
    pub fn granular_text(&self) -> Option<String> {
        if self.granular.is_empty() {
            return None;
        }
        let mut s = String::new();
        for g in &self.granular {
            let (k, n) = match g.level {
                Level::Tlp(t) => ('T', tlp_code(t)),
                Level::Pap(p) => ('P', pap_code(p)),
            };
            s.push(k);
            s.push(char::from(b'0' + n));
            s.push(' ');
            s.push_str(&g.selector);
            s.push('\n');
        }
        Some(s)
    }

    /// Reads [`Facts::granular_text`] back; lines it does not understand are an error.
    pub fn parse_granular(text: &str) -> Result<Vec<Granular>, String> {
        text.lines()
            .map(|l| {
                let b = l.as_bytes();
                if b.len() < 4 || b[2] != b' ' {
                    return Err(format!("bad granular marking line {l:?}"));
                }
                let n = b[1].wrapping_sub(b'0');
                let level = match b[0] {
                    b'T' => Level::Tlp(tlp_from_code(n).ok_or("bad TLP code")?),
                    b'P' => Level::Pap(pap_from_code(n).ok_or("bad PAP code")?),
                    _ => return Err(format!("bad granular marking line {l:?}")),
                };
                Ok(Granular {
                    selector: l[3..].to_owned(),
                    level,
                })
            })
            .collect()
    }
}

/// Storage code of a TLP level: 0 CLEAR … 4 RED.
pub fn tlp_code(t: Tlp) -> u8 {
    match t {
        Tlp::Clear => 0,
        Tlp::Green => 1,
        Tlp::Amber => 2,
        Tlp::AmberStrict => 3,
        Tlp::Red => 4,
    }
}

/// The TLP level of a storage code.
pub fn tlp_from_code(n: u8) -> Option<Tlp> {
    Some(match n {
        0 => Tlp::Clear,
        1 => Tlp::Green,
        2 => Tlp::Amber,
        3 => Tlp::AmberStrict,
        4 => Tlp::Red,
        _ => return None,
    })
}

/// Storage code of a PAP level: 0 CLEAR … 3 RED.
pub fn pap_code(p: Pap) -> u8 {
    match p {
        Pap::Clear => 0,
        Pap::Green => 1,
        Pap::Amber => 2,
        Pap::Red => 3,
    }
}

/// The PAP level of a storage code.
pub fn pap_from_code(n: u8) -> Option<Pap> {
    Some(match n {
        0 => Pap::Clear,
        1 => Pap::Green,
        2 => Pap::Amber,
        3 => Pap::Red,
        _ => return None,
    })
}
