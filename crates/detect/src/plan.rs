//! From a pattern's tree to index atoms: which values, if seen, could make the pattern
//! match, and whether the index alone can decide it.
//!
//! Soundness rule (what the property tests check): if the evaluator says a record
//! matches a pattern, then the record yields a `(path, value)` pair that one of the
//! pattern's atoms accepts. So index candidates are a superset of the matches, and the
//! evaluator confirms them. A pattern that is one positive `=` / `IN` (strings) or
//! `ISSUBSET` comparison is *decided*: the atom test is exactly the evaluator's test.

use phalanx_pattern::ast::{ComparisonExpr, Literal, ObservationExpr, Operator, PathStep};
use unicode_normalization::UnicodeNormalization;

use phalanx_pattern::net::Block;

/// One index atom of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Atom {
    /// The value at `path` equals `value`.
    Exact { path: String, value: String },
    /// The value at `path` is an address or block inside `block`.
    Cidr { path: String, block: Block },
    /// The (NFC) value at `path` ends with `suffix` (a `LIKE '%.example.com'` on
    /// `domain-name:value`).
    Suffix { path: String, suffix: String },
    /// The (NFC) value at `path` contains `literal` (from a `LIKE`).
    Like { path: String, literal: String },
    /// The (NFC) value at `path` matches the regex (from `MATCHES`, already `(?s:..)`).
    Regex { path: String, regex: String },
}

impl Atom {
    fn cost(&self) -> u32 {
        match self {
            Atom::Exact { .. } | Atom::Cidr { .. } | Atom::Suffix { .. } => 1,
            Atom::Like { .. } => 4,
            Atom::Regex { .. } => 16,
        }
    }
}

/// What the index does with a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// `None`: no comparison can drive lookup; evaluate on every record.
    pub atoms: Option<Vec<Atom>>,
    /// The atoms decide the pattern without the evaluator.
    pub decided: bool,
}

/// The index's name for a path made of keys only (`file:hashes.SHA-256`); `None` for
/// paths the index cannot follow (list steps, `_refs`, binary `_hex`/`_bin` keys, keys
/// containing a dot).
pub(crate) fn path_name(object_type: &str, steps: &[PathStep]) -> Option<String> {
    let mut s = String::with_capacity(object_type.len() + 16);
    s.push_str(object_type);
    s.push(':');
    for (i, st) in steps.iter().enumerate() {
        let PathStep::Key(k) = st else { return None };
        if k.contains('.') || k.ends_with("_refs") || k.ends_with("_hex") || k.ends_with("_bin") {
            return None;
        }
        if i > 0 {
            s.push('.');
        }
        s.push_str(k);
    }
    Some(s)
}

fn test_atoms(c: &phalanx_pattern::ast::Comparison) -> Option<Vec<Atom>> {
    if c.negated {
        return None;
    }
    let path = path_name(&c.path.object_type, &c.path.steps)?;
    match &c.op {
        Operator::Eq(Literal::Str(s)) => Some(vec![Atom::Exact {
            path,
            value: s.clone(),
        }]),
        Operator::In(list) => list
            .iter()
            .map(|l| match l {
                Literal::Str(s) => Some(Atom::Exact {
                    path: path.clone(),
                    value: s.clone(),
                }),
                _ => None,
            })
            .collect(),
        Operator::IsSubset(s) => Some(vec![Atom::Cidr {
            path,
            block: Block::parse(s, false)?,
        }]),
        Operator::Like(p) => {
            let p: String = p.nfc().collect();
            if path == "domain-name:value"
                && let Some(rest) = p.strip_prefix("%.")
                && !rest.is_empty()
                && !rest.contains(['%', '_'])
            {
                return Some(vec![Atom::Suffix {
                    path,
                    suffix: format!(".{rest}"),
                }]);
            }
            let best = p.split(['%', '_']).max_by_key(|s| s.len())?;
            if best.is_empty() {
                return None;
            }
            Some(vec![Atom::Like {
                path,
                literal: best.to_owned(),
            }])
        }
        Operator::Matches(p) => {
            let p: String = p.nfc().collect();
            Some(vec![Atom::Regex {
                path,
                regex: format!("(?s:{p})"),
            }])
        }
        _ => None,
    }
}

fn total_cost(v: &[Atom]) -> u32 {
    v.iter().map(Atom::cost).fold(0u32, u32::saturating_add)
}

/// All of `v` must be indexable (any may be the one that holds).
fn any_of<T>(v: &[T], f: impl Fn(&T) -> Option<Vec<Atom>>) -> Option<Vec<Atom>> {
    let mut out = Vec::new();
    for x in v {
        out.extend(f(x)?);
    }
    Some(out)
}

/// One of `v` suffices (all must hold): the cheapest indexable one.
fn all_of<T>(v: &[T], f: impl Fn(&T) -> Option<Vec<Atom>>) -> Option<Vec<Atom>> {
    v.iter().filter_map(f).min_by_key(|a| total_cost(a))
}

fn cmp_atoms(c: &ComparisonExpr) -> Option<Vec<Atom>> {
    match c {
        ComparisonExpr::Comparison(t) => test_atoms(t),
        ComparisonExpr::Or(v) => any_of(v, cmp_atoms),
        ComparisonExpr::And(v) => all_of(v, cmp_atoms),
    }
}

fn obs_atoms(e: &ObservationExpr) -> Option<Vec<Atom>> {
    match e {
        ObservationExpr::Observation(c) => cmp_atoms(c),
        ObservationExpr::Or(v) => any_of(v, obs_atoms),
        ObservationExpr::And(v) | ObservationExpr::FollowedBy(v) => all_of(v, obs_atoms),
        ObservationExpr::Qualified(inner, _) => obs_atoms(inner),
    }
}

/// Plans a pattern.
pub(crate) fn plan(e: &ObservationExpr) -> Plan {
    let atoms = obs_atoms(e);
    let decided = match e {
        ObservationExpr::Observation(ComparisonExpr::Comparison(c)) => {
            !c.negated
                && path_name(&c.path.object_type, &c.path.steps).is_some()
                && match &c.op {
                    Operator::Eq(Literal::Str(_)) | Operator::IsSubset(_) => true,
                    Operator::In(l) => l.iter().all(|x| matches!(x, Literal::Str(_))),
                    _ => false,
                }
        }
        _ => false,
    };
    Plan {
        decided: decided && atoms.is_some(),
        atoms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_pattern::Pattern;

    fn p(text: &str) -> Plan {
        plan(&Pattern::parse(text).unwrap().expr)
    }

    fn ex(path: &str, v: &str) -> Atom {
        Atom::Exact {
            path: path.into(),
            value: v.into(),
        }
    }

    #[test]
    fn plans_table() {
        let d = "domain-name:value";
        let cases: Vec<(&str, Option<Vec<Atom>>, bool)> = vec![
            (
                "[domain-name:value = 'a.example']",
                Some(vec![ex(d, "a.example")]),
                true,
            ),
            (
                "[domain-name:value IN ('a', 'b')]",
                Some(vec![ex(d, "a"), ex(d, "b")]),
                true,
            ),
            ("[domain-name:value != 'a']", None, false),
            ("[domain-name:value NOT = 'a']", None, false),
            ("[file:size = 5]", None, false),
            (
                "[file:hashes.'SHA-256' = 'ab' AND file:size > 5]",
                Some(vec![ex("file:hashes.SHA-256", "ab")]),
                false,
            ),
            (
                "[url:value LIKE '%/evil_path%']",
                Some(vec![Atom::Like {
                    path: "url:value".into(),
                    literal: "/evil".into(),
                }]),
                false,
            ),
            (
                "[domain-name:value LIKE '%.evil.example']",
                Some(vec![Atom::Suffix {
                    path: d.into(),
                    suffix: ".evil.example".into(),
                }]),
                false,
            ),
            ("[url:value LIKE '%%']", None, false),
            (
                "[ipv4-addr:value = '1.2.3.4'] OR [file:size = 1]",
                None,
                false,
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] AND [file:size = 1]",
                Some(vec![ex("ipv4-addr:value", "1.2.3.4")]),
                false,
            ),
            ("[network-traffic:protocols[*] = 'tcp']", None, false),
            (
                "[network-traffic:dst_ref.value = '1.2.3.4']",
                Some(vec![ex("network-traffic:dst_ref.value", "1.2.3.4")]),
                true,
            ),
        ];
        for (text, atoms, decided) in cases {
            let got = p(text);
            assert_eq!(got.atoms, atoms, "{text}");
            assert_eq!(got.decided, decided, "{text}");
        }
    }
}
