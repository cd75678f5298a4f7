//! Content checks beyond the grammar ([`crate::Pattern::lint`]).

use crate::ast::*;

/// A finding of [`crate::Pattern::lint`]: the pattern parses but a value cannot be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The comparison, in canonical form.
    pub comparison: String,
    /// What is wrong, e.g. `'f00' is not a valid SHA-256 hash`.
    pub message: String,
}

/// Hash algorithms (upper case, `-` removed) and the shape of their values, as the
/// reference validator (`stix2patterns/v21/object_validator.py`) checks them.
fn hash_ok(algo: &str, v: &str) -> Option<bool> {
    let hex_len = |n: &[usize]| v.bytes().all(|c| c.is_ascii_hexdigit()) && n.contains(&v.len());
    Some(match algo {
        "MD5" => hex_len(&[32]),
        "MD6" => hex_len(&[32, 40, 56, 64, 96, 128]),
        "RIPEMD160" | "SHA1" => hex_len(&[40]),
        "SHA224" | "SHA3224" => hex_len(&[56]),
        "SHA256" | "SHA3256" => hex_len(&[64]),
        "SHA384" | "SHA3384" => hex_len(&[96]),
        "SHA512" | "SHA3512" | "WHIRLPOOL" => hex_len(&[128]),
        "SSDEEP" => {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"/+:.".contains(&c))
        }
        _ => return None,
    })
}

pub(crate) fn lint(e: &ObservationExpr) -> Vec<Lint> {
    let mut out = Vec::new();
    walk_obs(e, &mut out);
    out
}

fn walk_obs(e: &ObservationExpr, out: &mut Vec<Lint>) {
    match e {
        ObservationExpr::Observation(c) => walk_cmp(c, out),
        ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
            v.iter().for_each(|x| walk_obs(x, out))
        }
        ObservationExpr::Qualified(inner, _) => walk_obs(inner, out),
    }
}

fn walk_cmp(e: &ComparisonExpr, out: &mut Vec<Lint>) {
    match e {
        ComparisonExpr::And(v) | ComparisonExpr::Or(v) => v.iter().for_each(|x| walk_cmp(x, out)),
        ComparisonExpr::Comparison(c) => check(c, out),
    }
}

fn check(c: &Comparison, out: &mut Vec<Lint>) {
    let in_hashes = c
        .path
        .steps
        .iter()
        .any(|s| matches!(s, PathStep::Key(k) if k == "hashes"));
    let Some(PathStep::Key(selector)) = c.path.steps.last() else {
        return;
    };
    if !in_hashes {
        return;
    }
    let algo = selector.to_ascii_uppercase().replace('-', "");
    let values: Vec<&str> = match &c.op {
        Operator::Eq(Literal::Str(s)) | Operator::Ne(Literal::Str(s)) => vec![s.as_str()],
        Operator::In(list) => list
            .iter()
            .filter_map(|l| match l {
                Literal::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => return,
    };
    for v in values {
        if hash_ok(&algo, v) == Some(false) {
            out.push(Lint {
                comparison: c.to_string(),
                message: format!("'{v}' is not a valid {selector} hash"),
            });
        }
    }
}
