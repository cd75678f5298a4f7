//! Data markings: TLP 1.0 (STIX 2.1 §7.2.1.4), TLP 2.0 and PAP (OASIS
//! cti-stix-common-objects extension definitions), statement markings, and an object's
//! effective TLP/PAP from object and granular markings.

use serde_json::Value;

/// The TLP 2.0 extension-definition id.
pub const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
/// The PAP extension-definition id.
pub const PAP_EXTENSION: &str = "extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b";

/// A Traffic Light Protocol level, ordered from least to most restrictive. TLP 1.0 WHITE
/// is TLP 2.0 CLEAR; TLP 1.0 has no AMBER+STRICT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    /// TLP:CLEAR (TLP 1.0 WHITE).
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    AmberStrict,
    /// TLP:RED.
    Red,
}

/// A Permissible Actions Protocol level, least to most restrictive. PAP:WHITE is CLEAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pap {
    /// PAP:CLEAR (legacy PAP:WHITE).
    Clear,
    /// PAP:GREEN.
    Green,
    /// PAP:AMBER.
    Amber,
    /// PAP:RED.
    Red,
}

/// One of the standard marking-definition objects this crate knows by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardMarking {
    /// Its fixed id.
    pub id: &'static str,
    /// Display name (`TLP:GREEN`, `PAP:RED`, ...).
    pub name: &'static str,
    /// Its `created` timestamp.
    pub created: &'static str,
    /// What it marks.
    pub kind: MarkingKind,
}

/// The meaning of a standard marking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkingKind {
    /// A TLP 1.0 instance (`definition_type: tlp`), with its TLP 1.0 word.
    Tlp1(Tlp, &'static str),
    /// A TLP 2.0 instance (extension), with its `tlp_2_0` value.
    Tlp2(Tlp, &'static str),
    /// A PAP instance (extension), with its `pap` value.
    Pap(Pap, &'static str),
}

macro_rules! md {
    ($uuid:literal) => {
        concat!("marking-definition--", $uuid)
    };
}

/// Every standard marking definition: TLP 1.0, TLP 2.0 and PAP.
pub const STANDARD_MARKINGS: &[StandardMarking] = &[
    tlp1(
        md!("613f2e26-407d-48c7-9eca-b8e91df99dc9"),
        "TLP:WHITE",
        Tlp::Clear,
        "white",
    ),
    tlp1(
        md!("34098fce-860f-48ae-8e50-ebd3cc5e41da"),
        "TLP:GREEN",
        Tlp::Green,
        "green",
    ),
    tlp1(
        md!("f88d31f6-486f-44da-b317-01333bde0b82"),
        "TLP:AMBER",
        Tlp::Amber,
        "amber",
    ),
    tlp1(
        md!("5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
        "TLP:RED",
        Tlp::Red,
        "red",
    ),
    tlp2(
        md!("94868c89-83c2-464b-929b-a1a8aa3c8487"),
        "TLP:CLEAR",
        Tlp::Clear,
        "clear",
    ),
    tlp2(
        md!("bab4a63c-aed9-4cf5-a766-dfca5abac2bb"),
        "TLP:GREEN",
        Tlp::Green,
        "green",
    ),
    tlp2(
        md!("55d920b0-5e8b-4f79-9ee9-91f868d9b421"),
        "TLP:AMBER",
        Tlp::Amber,
        "amber",
    ),
    tlp2(
        md!("939a9414-2ddd-4d32-a0cd-375ea402b003"),
        "TLP:AMBER+STRICT",
        Tlp::AmberStrict,
        "amber+strict",
    ),
    tlp2(
        md!("e828b379-4e03-4974-9ac4-e53a884c97c1"),
        "TLP:RED",
        Tlp::Red,
        "red",
    ),
    pap(
        md!("ad15a0cd-55b6-4588-a14c-a66105329b92"),
        "PAP:CLEAR",
        "2022-10-01T00:00:00.000Z",
        Pap::Clear,
        "clear",
    ),
    pap(
        md!("a3bea94c-b469-41dc-9cfe-d6e7daba7730"),
        "PAP:WHITE",
        "2022-10-01T00:00:00.000Z",
        Pap::Clear,
        "white",
    ),
    pap(
        md!("c43594d1-4b11-4c59-93ab-1c9b14d53ce9"),
        "PAP:GREEN",
        "2022-10-09T00:00:00.000Z",
        Pap::Green,
        "green",
    ),
    pap(
        md!("60f8932b-e51e-4458-b265-a2e8be9a80ab"),
        "PAP:AMBER",
        "2022-10-02T00:00:00.000Z",
        Pap::Amber,
        "amber",
    ),
    pap(
        md!("740d36e5-7714-4c30-961a-3ae632ceee0e"),
        "PAP:RED",
        "2022-10-06T00:00:00.000Z",
        Pap::Red,
        "red",
    ),
];

const fn tlp1(id: &'static str, name: &'static str, t: Tlp, w: &'static str) -> StandardMarking {
    StandardMarking {
        id,
        name,
        created: "2017-01-20T00:00:00.000Z",
        kind: MarkingKind::Tlp1(t, w),
    }
}
const fn tlp2(id: &'static str, name: &'static str, t: Tlp, w: &'static str) -> StandardMarking {
    StandardMarking {
        id,
        name,
        created: "2022-10-01T00:00:00.000Z",
        kind: MarkingKind::Tlp2(t, w),
    }
}
const fn pap(
    id: &'static str,
    name: &'static str,
    created: &'static str,
    p: Pap,
    w: &'static str,
) -> StandardMarking {
    StandardMarking {
        id,
        name,
        created,
        kind: MarkingKind::Pap(p, w),
    }
}

/// The standard marking with this id, if it is one.
pub fn standard_marking(id: &str) -> Option<&'static StandardMarking> {
    STANDARD_MARKINGS.iter().find(|m| m.id == id)
}

impl Tlp {
    /// The TLP level a marking-definition id stands for, if it is a standard TLP marking.
    pub fn from_marking_id(id: &str) -> Option<Tlp> {
        match standard_marking(id)?.kind {
            MarkingKind::Tlp1(t, _) | MarkingKind::Tlp2(t, _) => Some(t),
            MarkingKind::Pap(..) => None,
        }
    }

    /// The TLP 2.0 marking-definition id of this level.
    pub fn marking_id(self) -> &'static str {
        STANDARD_MARKINGS
            .iter()
            .find(|m| matches!(m.kind, MarkingKind::Tlp2(t, _) if t == self))
            .map_or("", |m| m.id)
    }

    /// The TLP 2.0 label, e.g. `TLP:AMBER+STRICT`.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}

impl Pap {
    /// The PAP level a marking-definition id stands for, if it is a standard PAP marking.
    pub fn from_marking_id(id: &str) -> Option<Pap> {
        match standard_marking(id)?.kind {
            MarkingKind::Pap(p, _) => Some(p),
            _ => None,
        }
    }

    /// The label, e.g. `PAP:GREEN`.
    pub fn label(self) -> &'static str {
        match self {
            Pap::Clear => "PAP:CLEAR",
            Pap::Green => "PAP:GREEN",
            Pap::Amber => "PAP:AMBER",
            Pap::Red => "PAP:RED",
        }
    }
}

/// The full STIX JSON of a standard marking definition, as published.
pub fn standard_marking_json(m: &StandardMarking) -> Value {
    let mut v = serde_json::json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": m.id,
        "created": m.created,
    });
    match m.kind {
        MarkingKind::Tlp1(_, w) => {
            v["definition_type"] = "tlp".into();
            v["name"] = m.name.into();
            v["definition"] = serde_json::json!({ "tlp": w });
        }
        MarkingKind::Tlp2(_, w) => {
            v["name"] = m.name.into();
            v["extensions"] = serde_json::json!({
                TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": w}
            });
        }
        MarkingKind::Pap(_, w) => {
            v["name"] = m.name.into();
            v["extensions"] = serde_json::json!({
                PAP_EXTENSION: {"extension_type": "property-extension", "pap": w}
            });
        }
    }
    v
}

/// The markings in force on an object: the most restrictive TLP and PAP among its
/// object-level markings, the statement (and other) marking refs, and per granular
/// selector the most restrictive TLP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectiveMarkings {
    /// Most restrictive TLP among `object_marking_refs` (`None`: unmarked).
    pub tlp: Option<Tlp>,
    /// Most restrictive PAP among `object_marking_refs`.
    pub pap: Option<Pap>,
    /// Other (non-TLP/PAP) object-level marking refs, e.g. statements.
    pub other: Vec<String>,
    /// Granular markings: (selector, TLP) for each selector marked with a TLP, and
    /// (selector, PAP) likewise.
    pub granular_tlp: Vec<(String, Tlp)>,
    /// Granular PAP markings.
    pub granular_pap: Vec<(String, Pap)>,
}

impl EffectiveMarkings {
    /// Computes the effective markings of an object's JSON.
    pub fn of(object: &serde_json::Map<String, Value>) -> EffectiveMarkings {
        let mut out = EffectiveMarkings::default();
        if let Some(Value::Array(refs)) = object.get("object_marking_refs") {
            for r in refs.iter().filter_map(Value::as_str) {
                if let Some(t) = Tlp::from_marking_id(r) {
                    out.tlp = out.tlp.max(Some(t));
                } else if let Some(p) = Pap::from_marking_id(r) {
                    out.pap = out.pap.max(Some(p));
                } else {
                    out.other.push(r.to_owned());
                }
            }
        }
        if let Some(Value::Array(gms)) = object.get("granular_markings") {
            for gm in gms {
                let Some(r) = gm.get("marking_ref").and_then(Value::as_str) else {
                    continue;
                };
                let sels = gm.get("selectors").and_then(Value::as_array);
                for s in sels.into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(t) = Tlp::from_marking_id(r) {
                        out.granular_tlp.push((s.to_owned(), t));
                    } else if let Some(p) = Pap::from_marking_id(r) {
                        out.granular_pap.push((s.to_owned(), p));
                    }
                }
            }
        }
        out
    }

    /// The TLP in force on the property at `selector` (e.g. `description`,
    /// `external_references.[0].url`): the object-level TLP raised by any granular marking
    /// on the selector itself or on an enclosing selector.
    pub fn tlp_of(&self, selector: &str) -> Option<Tlp> {
        let covers = |s: &str| {
            selector == s
                || (selector.starts_with(s) && selector.as_bytes().get(s.len()) == Some(&b'.'))
        };
        self.granular_tlp
            .iter()
            .filter(|(s, _)| covers(s))
            .map(|(_, t)| *t)
            .fold(self.tlp, |acc, t| acc.max(Some(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_levels() {
        assert_eq!(
            Tlp::from_marking_id("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
            Some(Tlp::Clear)
        );
        assert_eq!(
            Tlp::Red.marking_id(),
            "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
        );
        assert_eq!(
            Pap::from_marking_id("marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9"),
            Some(Pap::Green)
        );
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
    }

    #[test]
    fn effective_markings_take_the_most_restrictive() {
        let Value::Object(o) = json!({
            "object_marking_refs": [
                "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
                "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab",
                "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"
            ],
            "granular_markings": [{
                "selectors": ["description", "external_references.[0]"],
                "marking_ref": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
            }]
        }) else {
            unreachable!()
        };
        let m = EffectiveMarkings::of(&o);
        assert_eq!(m.tlp, Some(Tlp::Amber));
        assert_eq!(m.pap, Some(Pap::Amber));
        assert_eq!(m.other.len(), 1);
        assert_eq!(m.tlp_of("description"), Some(Tlp::Red));
        assert_eq!(m.tlp_of("external_references.[0].url"), Some(Tlp::Red));
        assert_eq!(m.tlp_of("external_references.[1].url"), Some(Tlp::Amber));
        assert_eq!(m.tlp_of("name"), Some(Tlp::Amber));
        assert_eq!(m.tlp_of("descriptions"), Some(Tlp::Amber));
    }
}
