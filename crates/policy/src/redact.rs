//! Granular redaction: removing the properties a recipient may not see.

use serde_json::{Map, Value};

/// Removes the content at each selector from an object's JSON and returns the new JSON.
///
/// A selector ending in an object key removes that key. A selector ending in a list index
/// removes the whole list property that holds it (removing one element would shift the
/// indexes other granular markings point at). Granular markings whose selectors pointed
/// into removed content are dropped with it. The result must still be a valid STIX
/// object: when a required property would go, this fails and the object must not go
/// at all.
pub fn redact(raw: &str, selectors: &[String], max_depth: usize) -> Result<String, String> {
    let mut obj: Map<String, Value> =
        serde_json::from_str(raw).map_err(|e| format!("stored object is not JSON: {e}"))?;
    let mut removed: Vec<String> = Vec::new();
    for sel in selectors {
        let mut parts: Vec<&str> = sel.split('.').collect();
        while parts.last().is_some_and(|p| p.starts_with('[')) {
            parts.pop();
        }
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        if let Some(holder) = walk(&mut obj, parents) {
            holder.remove(*last);
        }
        removed.push(parts.join("."));
    }
    let under = |s: &str| {
        removed.iter().any(|r| {
            s == r || (s.starts_with(r.as_str()) && s.as_bytes().get(r.len()) == Some(&b'.'))
        })
    };
    if let Some(Value::Array(gms)) = obj.get_mut("granular_markings") {
        for gm in gms.iter_mut() {
            if let Some(Value::Array(sels)) = gm.get_mut("selectors") {
                sels.retain(|s| !s.as_str().is_some_and(under));
            }
        }
        gms.retain(|gm| {
            gm.get("selectors")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty())
        });
        if gms.is_empty() {
            obj.remove("granular_markings");
        }
    }
    let text = serde_json::to_string(&obj).map_err(|e| e.to_string())?;
    let parsed = phalanx_stix::StixObject::parse(text.as_bytes(), max_depth)
        .map_err(|e| format!("redacted object: {e}"))?;
    match phalanx_stix::validate(parsed) {
        Ok(_) => Ok(text),
        Err((_, report)) => Err(format!(
            "redacting {} would leave an invalid object ({}: {})",
            selectors.join(", "),
            report.errors.first().map_or("", |e| e.path.as_str()),
            report.errors.first().map_or("", |e| e.message.as_str())
        )),
    }
}

/// The JSON object at `path` (keys and `[n]` indexes), if there is one.
fn walk<'a>(obj: &'a mut Map<String, Value>, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur: &mut Value = match path.split_first() {
        None => return Some(obj),
        Some((first, _)) => obj.get_mut(*first)?,
    };
    for part in &path[1..] {
        cur = match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(i) => cur.as_array_mut()?.get_mut(i.parse::<usize>().ok()?)?,
            None => cur.as_object_mut()?.get_mut(*part)?,
        };
    }
    cur.as_object_mut()
}
