//! `(path, value)` pairs of STIX observed-data, for index lookup: every string the
//! evaluator could select with a key-only path (see [`crate::plan::path_name`]).
//!
//! It follows the evaluator's data model: the observation's SCOs are those named in
//! `object_refs` plus those embedded in `objects`; non-SCO types are never roots; a
//! `*_ref` key dereferences to an SCO of the same observation; `*_refs`, `*_hex`,
//! `*_bin` keys, keys containing a dot and list elements are not followed (the planner
//! never makes atoms for such paths).

use std::collections::HashMap;

use serde_json::Value;

/// How many `_ref` hops and nested objects are followed.
const MAX_DEPTH: usize = 8;

/// Calls `f(path, value)` for every string reachable by a key-only path from a root SCO
/// of the observed-data `od`.
pub(crate) fn stix_pairs(od: &Value, scos: &HashMap<String, Value>, f: &mut dyn FnMut(&str, &str)) {
    let mut objects: Vec<(&str, &Value)> = Vec::new();
    if let Some(refs) = od.get("object_refs").and_then(Value::as_array) {
        for r in refs.iter().filter_map(Value::as_str) {
            if let Some(o) = scos.get(r) {
                objects.push((r, o));
            }
        }
    }
    if let Some(embedded) = od.get("objects").and_then(Value::as_object) {
        for (k, v) in embedded {
            objects.push((k.as_str(), v));
        }
    }
    let mut path = String::new();
    for (_, root) in &objects {
        let Some(ty) = root.get("type").and_then(Value::as_str) else {
            continue;
        };
        // Types STIX defines that are not SCOs are never roots (as in the evaluator).
        use phalanx_stix::ObjectClass;
        if !matches!(ObjectClass::of(ty), ObjectClass::Sco | ObjectClass::Custom) {
            continue;
        }
        path.clear();
        path.push_str(ty);
        path.push(':');
        walk(root, &objects, &mut path, 0, f);
    }
}

fn walk(
    obj: &Value,
    objects: &[(&str, &Value)],
    path: &mut String,
    depth: usize,
    f: &mut dyn FnMut(&str, &str),
) {
    let Value::Object(m) = obj else { return };
    if depth > MAX_DEPTH {
        return;
    }
    let base = path.len();
    for (k, v) in m {
        if k.contains('.') || k.ends_with("_refs") || k.ends_with("_hex") || k.ends_with("_bin") {
            continue;
        }
        if !path.ends_with(':') {
            path.push('.');
        }
        path.push_str(k);
        if k.ends_with("_ref") {
            if let Some(target) = v
                .as_str()
                .and_then(|id| objects.iter().find(|(key, _)| *key == id))
            {
                walk(target.1, objects, path, depth + 1, f);
            }
        } else {
            match v {
                Value::String(s) => f(path, s),
                Value::Object(_) => walk(v, objects, path, depth + 1, f),
                _ => {}
            }
        }
        path.truncate(base);
    }
}
