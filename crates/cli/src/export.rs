//! `phalanx export`: a collection as a STIX bundle or JSON lines, streamed page by page
//! from the store with each object's original JSON text.

use crate::Format;
use anyhow::Context;
use clap::Args;
use phalanx_node::{Caller, Node, Purpose};
use phalanx_stix::Timestamp;
use phalanx_store::{ObjectQuery, VersionFilter};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Objects fetched from the store per query.
const PAGE: usize = 2000;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Collection id, alias or title.
    #[arg(long, short)]
    collection: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "bundle")]
    format: Format,
    /// Write to FILE (atomically: a partial export never appears under FILE) instead of
    /// stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only these object types (repeatable, or comma-separated).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only these object ids (repeatable, or comma-separated).
    #[arg(long = "id", value_delimiter = ',')]
    ids: Vec<String>,
    /// Only objects added to the collection after this time (RFC 3339).
    #[arg(long, value_parser = parse_timestamp)]
    added_after: Option<Timestamp>,
    /// Which versions: `all` (default: an export loses nothing), `first`, `last`, or
    /// timestamps, comma-separated (TAXII match[version]).
    #[arg(long, default_value = "all", value_parser = parse_versions)]
    version: VersionFilter,
    /// Only these spec versions (comma-separated).
    #[arg(long, value_delimiter = ',')]
    spec_version: Vec<String>,
    /// Export what this partner (or organisation) may receive: the sharing policy
    /// decides per object and redacts per granular marking [default: this node's own
    /// organisation, which receives everything]
    #[arg(long = "for", value_name = "PARTNER")]
    recipient: Option<String>,
    /// Export for active blocking (firewall, DNS RPZ, IPS drop rules): only objects whose
    /// PAP allows it (PAP:CLEAR or PAP:GREEN)
    #[arg(long)]
    for_blocking: bool,
}

/// Who an export is for, and why.
fn audience(a: &ExportArgs) -> (Caller, Purpose) {
    let caller = match &a.recipient {
        None => Caller::local_operator(),
        Some(org) => Caller {
            id: format!("export:{org}"),
            name: org.clone(),
            org: org.clone(),
            read: phalanx_store::Access::All,
            write: phalanx_store::Access::None,
            admin: false,
        },
    };
    let purpose = if a.for_blocking {
        Purpose::Blocking
    } else {
        Purpose::Export
    };
    (caller, purpose)
}

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

pub fn parse_versions(s: &str) -> Result<VersionFilter, String> {
    VersionFilter::parse(s).map_err(|e| e.to_string())
}

/// An object's JSON on one line. JSON strings cannot hold raw line breaks, so any line
/// break in the text is insignificant whitespace and becomes a space; the rest of the
/// original text is kept byte for byte.
pub fn one_line(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains(['\n', '\r']) {
        raw.replace(['\n', '\r'], " ").into()
    } else {
        raw.into()
    }
}

/// Writes to a file atomically (temporary sibling, fsync, rename) or to stdout.
pub fn with_output(
    path: Option<&Path>,
    body: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match path.filter(|p| *p != Path::new("-")) {
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let r = body(&mut w).and_then(|()| Ok(w.flush()?));
            match r {
                Err(e) if is_broken_pipe(&e) => Ok(()),
                r => r,
            }
        }
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = dir.join(format!(
                ".{}.partial-{}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("export"),
                std::process::id()
            ));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
            let r = body(&mut w).and_then(|()| {
                let file = w.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot rename to {}", path.display()))?;
                Ok(())
            });
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `phalanx export`.
pub fn run(node: &Node, a: &ExportArgs, json: bool) -> anyhow::Result<()> {
    let col = node
        .store()
        .find_collection(&a.collection)
        .with_context(|| format!("cannot export collection {:?}", a.collection))?;
    let q = ObjectQuery {
        added_after: a.added_after.as_ref().map(Timestamp::as_micros),
        limit: PAGE,
        ids: a.ids.clone(),
        types: a.types.clone(),
        versions: a.version.clone(),
        spec_versions: a.spec_version.clone(),
        ..ObjectQuery::new(&col.id)
    };
    let (caller, purpose) = audience(a);
    let mut count = 0;
    with_output(a.output.as_deref(), |w| {
        count = match a.format {
            Format::Bundle => {
                write!(
                    w,
                    "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
                    uuid::Uuid::new_v4()
                )?;
                let mut first = true;
                let n = node.scan(&caller, purpose, q, |o| {
                    w.write_all(if first { b"\n" } else { b",\n" })?;
                    first = false;
                    w.write_all(o.raw.as_bytes())?;
                    Ok::<_, anyhow::Error>(())
                })?;
                w.write_all(b"\n]}\n")?;
                n
            }
            Format::Jsonl => node.scan(&caller, purpose, q, |o| {
                w.write_all(one_line(&o.raw).as_bytes())?;
                w.write_all(b"\n")?;
                Ok::<_, anyhow::Error>(())
            })?,
        };
        Ok(())
    })?;
    if let Some(path) = &a.output {
        if json {
            crate::report::print_json(&serde_json::json!({
                "collection": col.id, "objects": count, "output": path,
            }));
        } else {
            eprintln!("exported {count} objects to {}", path.display());
        }
    }
    Ok(())
}
