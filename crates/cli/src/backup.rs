//! `phalanx backup` / `phalanx restore`: the node's TAXII view as JSON lines.
//!
//! Format (one JSON object per line, in this order):
//!
//! ```text
//! {"phalanx_backup":1,"created":"2026-11-23T10:00:00.000000Z","phalanx":"0.1.0"}
//! {"api_root":{"name":"default","title":"...","description":null,"max_content_length":104857600}}
//! {"collection":{"id":"...","api_root":"default","title":"intel","alias":"intel",...}}
//! {"object":{"collection":"<collection id>","date_added_us":1763892000000000,"json":"<original JSON text>","source":"<partner id, if received from one>","path":["<identity id of each node it passed>"]}}
//! ...
//! {"end":{"api_roots":1,"collections":1,"objects":1826}}
//! ```
//!
//! Objects appear per collection in `date_added` order, every version, with the original
//! text as a JSON string (so it survives byte for byte). The `end` line makes a truncated
//! backup detectable. Restoring the same backup twice changes nothing.

use crate::export::with_output;
use crate::report::{micros_text, print_json};
use anyhow::{Context, bail};
use phalanx_node::{Caller, Node, Purpose};
use phalanx_stix::{StixObject, validate};
use phalanx_store::{
    ApiRoot, Collection, IngestOutcome, NewCollection, ObjectQuery, Restored, Store, VersionFilter,
};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use std::path::Path;

/// Format version written in the header.
const FORMAT: u32 = 1;

/// Longest accepted line (an object of the largest accepted size, escaped).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Object versions restored per transaction.
const BATCH: usize = 5000;

#[derive(Serialize, Deserialize)]
struct Header {
    phalanx_backup: u32,
    created: String,
    phalanx: String,
}

#[derive(Serialize, Deserialize)]
struct ObjectLine<'a> {
    collection: &'a str,
    date_added_us: i64,
    json: std::borrow::Cow<'a, str>,
    /// The partner the version came from (absent: this node's organisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// The nodes the version passed before this one (absent: none recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    path: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Default)]
struct Counts {
    api_roots: u64,
    collections: u64,
    objects: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    ApiRoot(ApiRoot),
    Collection(Collection),
    #[serde(borrow)]
    Object(ObjectLine<'a>),
    End(Counts),
}

/// `phalanx backup FILE`.
pub fn backup(node: &Node, file: &Path, json: bool) -> anyhow::Result<()> {
    let store = node.store();
    let mut counts = Counts::default();
    with_output(Some(file), |w| {
        let header = Header {
            phalanx_backup: FORMAT,
            created: micros_text(crate::datadir::now_micros()),
            phalanx: env!("CARGO_PKG_VERSION").into(),
        };
        writeln!(w, "{}", serde_json::to_string(&header)?)?;
        for root in store.api_roots()? {
            writeln!(w, "{}", serde_json::json!({ "api_root": root }))?;
            counts.api_roots += 1;
        }
        let collections = store.collections(None)?;
        for c in &collections {
            writeln!(w, "{}", serde_json::json!({ "collection": c }))?;
            counts.collections += 1;
        }
        for c in &collections {
            let q = ObjectQuery {
                versions: VersionFilter::all(),
                limit: 2000,
                ..ObjectQuery::new(&c.id)
            };
            counts.objects += node.scan(&Caller::local_operator(), Purpose::Backup, q, |o| {
                let line = ObjectLine {
                    collection: &c.id,
                    date_added_us: o.date_added,
                    json: o.raw.as_str().into(),
                    source: o.facts.source.clone(),
                    path: o.facts.path.clone(),
                };
                writeln!(w, "{{\"object\":{}}}", serde_json::to_string(&line)?)?;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        writeln!(w, "{}", serde_json::json!({ "end": &counts }))?;
        Ok(())
    })?;
    if json {
        print_json(&serde_json::json!({ "backup": file, "counts": counts }));
    } else {
        eprintln!(
            "backed up {} API roots, {} collections, {} object versions to {}",
            counts.api_roots,
            counts.collections,
            counts.objects,
            file.display()
        );
    }
    Ok(())
}

/// Restores one batch of versions of one collection, failing on any conflict.
fn flush(store: &dyn Store, collection: &str, batch: &mut Vec<Restored>) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let outcomes = store.ingest_with_dates(collection, batch)?;
    for (o, Restored { object: obj, .. }) in outcomes.iter().zip(batch.iter()) {
        if let IngestOutcome::Conflict { .. } = o {
            bail!(
                "{} {}: the store already holds different content under this id and version",
                obj.id(),
                obj.str_prop("modified").unwrap_or("(unversioned)")
            );
        }
    }
    let added = outcomes.iter().filter(|o| o.is_added()).count() as u64;
    batch.clear();
    Ok(added)
}

/// `phalanx restore FILE`.
pub fn restore(store: &dyn Store, file: &Path, json: bool) -> anyhow::Result<()> {
    let reader: Box<dyn std::io::Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        )
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let name = file.display().to_string();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut seen = Counts::default();
    let mut end: Option<Counts> = None;
    let mut added = 0u64;
    let mut current: Option<String> = None;
    let mut batch: Vec<Restored> = Vec::new();
    loop {
        buf.clear();
        let n = Read::by_ref(&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {name}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let at = || format!("{name}:{line_no}");
        if buf.len() > MAX_LINE {
            bail!("{}: line longer than {MAX_LINE} bytes", at());
        }
        if line_no == 1 {
            let h: Header = serde_json::from_slice(&buf)
                .with_context(|| format!("{}: not a phalanx backup (bad header)", at()))?;
            if h.phalanx_backup != FORMAT {
                bail!(
                    "{}: backup format {} (this build reads {FORMAT})",
                    at(),
                    h.phalanx_backup
                );
            }
            continue;
        }
        if end.is_some() {
            bail!("{}: content after the end record", at());
        }
        let line: Line<'_> =
            serde_json::from_slice(&buf).with_context(|| format!("{}: unreadable record", at()))?;
        match line {
            Line::ApiRoot(root) => {
                store.put_api_root(&root).with_context(at)?;
                seen.api_roots += 1;
            }
            Line::Collection(c) => {
                restore_collection(store, &c).with_context(at)?;
                seen.collections += 1;
            }
            Line::Object(o) => {
                if current.as_deref() != Some(o.collection) {
                    if let Some(c) = &current {
                        added += flush(store, c, &mut batch)?;
                    }
                    current = Some(o.collection.to_owned());
                }
                let obj =
                    StixObject::parse(o.json.as_bytes(), phalanx_stix::json::DEFAULT_MAX_DEPTH)
                        .with_context(|| format!("{}: stored object is not STIX", at()))?;
                let (valid, _) = validate(obj).map_err(|(obj, report)| {
                    let first = report
                        .errors
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    anyhow::anyhow!("{}: stored object {} is invalid: {first}", at(), obj.id())
                })?;
                batch.push(Restored {
                    object: valid,
                    date_added: o.date_added_us,
                    source: o.source.clone(),
                    path: o.path.clone(),
                });
                seen.objects += 1;
                if batch.len() >= BATCH {
                    added += flush(store, o.collection, &mut batch)?;
                }
            }
            Line::End(counts) => end = Some(counts),
        }
    }
    if let Some(c) = &current {
        added += flush(store, c, &mut batch)?;
    }
    if line_no == 0 {
        bail!("{name} is empty");
    }
    match end {
        None => bail!(
            "{name} is truncated (no end record); {} object versions up to line {line_no} were restored, \
             restoring a complete backup again finishes the job",
            seen.objects
        ),
        Some(e) if e != seen => {
            bail!("{name}: end record counts {e:?} but the file holds {seen:?}")
        }
        Some(_) => {}
    }
    if json {
        print_json(&serde_json::json!({ "restored": file, "counts": seen, "added": added }));
    } else {
        eprintln!(
            "restored {} API roots, {} collections, {} object versions ({added} new) from {name}",
            seen.api_roots, seen.collections, seen.objects
        );
    }
    Ok(())
}

fn restore_collection(store: &dyn Store, c: &Collection) -> anyhow::Result<()> {
    if let Ok(existing) = store.find_collection(&c.id)
        && existing.id == c.id
        && existing.api_root == c.api_root
    {
        return Ok(());
    }
    store.create_collection(
        &c.api_root,
        &NewCollection {
            id: Some(c.id.clone()),
            title: c.title.clone(),
            description: c.description.clone(),
            alias: c.alias.clone(),
            can_read: c.can_read,
            can_write: c.can_write,
            media_types: c.media_types.clone(),
        },
    )?;
    Ok(())
}
