//! `phalanx export`: a collection as a STIX bundle or JSON lines, streamed page by page
//! from the store with each object's original JSON text.

use crate::blocking;
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
    /// Output format. `suricata`, `zeek-intel` and `blocklist` turn indicators into
    /// rules and lists for active blocking: only what PAP allows (as --for-blocking).
    #[arg(long, value_enum, default_value = "bundle")]
    format: ExportFormat,
    /// First Suricata rule id (`--format suricata`).
    #[arg(long, default_value_t = 3_900_000)]
    sid_base: u32,
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

/// What `phalanx export` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    /// A STIX bundle.
    Bundle,
    /// One STIX object per line.
    Jsonl,
    /// Suricata rules (addresses, networks, domains via DNS and TLS SNI, URLs via HTTP).
    Suricata,
    /// A Zeek Intel framework file.
    ZeekIntel,
    /// One value per line (addresses, networks, domains, URLs, hashes, ...).
    Blocklist,
}

impl ExportFormat {
    fn for_blocking(self) -> bool {
        matches!(
            self,
            ExportFormat::Suricata | ExportFormat::ZeekIntel | ExportFormat::Blocklist
        )
    }
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
    let purpose = if a.for_blocking || a.format.for_blocking() {
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
    if a.format.for_blocking() {
        return export_for_blocking(node, a, &col.id, q, &caller, purpose, json);
    }
    let mut count = 0;
    with_output(a.output.as_deref(), |w| {
        count = match a.format {
            ExportFormat::Suricata | ExportFormat::ZeekIntel | ExportFormat::Blocklist => 0,
            ExportFormat::Bundle => {
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
            ExportFormat::Jsonl => node.scan(&caller, purpose, q, |o| {
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

/// Indicators as Suricata rules, a Zeek Intel file or a plain list: the latest version
/// of each indicator PAP lets go to active use, valid now, with a pattern that is a list
/// of values (see [`blocking`]); what is skipped is counted with the reason.
fn export_for_blocking(
    node: &Node,
    a: &ExportArgs,
    collection: &str,
    mut q: ObjectQuery,
    caller: &Caller,
    purpose: Purpose,
    json: bool,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    q.types = vec!["indicator".into()];
    q.versions = VersionFilter::parse("last").map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Timestamp::from_micros(phalanx_node::now_micros());
    let mut indicators = 0u64;
    let mut entries = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut sid = a.sid_base;
    let format = a.format;
    with_output(a.output.as_deref(), |w| {
        match format {
            ExportFormat::ZeekIntel => writeln!(
                w,
                "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"
            )?,
            _ => writeln!(
                w,
                "# Phalanx {} of collection {collection}, {}",
                match format {
                    ExportFormat::Suricata => "Suricata rules",
                    _ => "blocklist",
                },
                now.format(0)
            )?,
        }
        node.scan(caller, purpose, q, |o| {
            let v: serde_json::Value = serde_json::from_str(&o.raw)?;
            let skip = |why: &str, skipped: &mut BTreeMap<String, u64>| {
                *skipped.entry(why.to_owned()).or_default() += 1;
            };
            let valid = |k: &str| v[k].as_str().and_then(|t| Timestamp::parse(t).ok());
            let usable = if v["revoked"] == true {
                Err("revoked".to_owned())
            } else if v["pattern_type"] != "stix" {
                Err("pattern_type is not stix".to_owned())
            } else if valid("valid_until").is_some_and(|t| t <= now) {
                Err("expired (valid_until passed)".to_owned())
            } else if valid("valid_from").is_some_and(|t| t > now) {
                Err("not valid yet (valid_from ahead)".to_owned())
            } else {
                blocking::entries(v["pattern"].as_str().unwrap_or_default())
            };
            let list = match usable {
                Ok(l) => l,
                Err(why) => {
                    skip(&why, &mut skipped);
                    return Ok(());
                }
            };
            let name = v["name"].as_str().unwrap_or("indicator");
            let mut lines = Vec::new();
            for e in &list {
                match format {
                    ExportFormat::ZeekIntel => lines.push(blocking::zeek_line(e, &o.id, name)),
                    ExportFormat::Suricata => {
                        match blocking::suricata_rules(e, &o.id, name, &mut sid) {
                            Ok(r) => lines.extend(r),
                            Err(why) => skip(why, &mut skipped),
                        }
                    }
                    _ => lines.push(e.value.replace(['\n', '\r'], "")),
                }
            }
            if !lines.is_empty() {
                indicators += 1;
            }
            entries += lines.len() as u64;
            for l in lines {
                writeln!(w, "{l}")?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(())
    })?;
    let stats = serde_json::json!({
        "collection": collection, "indicators": indicators, "entries": entries,
        "skipped": skipped,
    });
    if json && a.output.is_some() {
        crate::report::print_json(&stats);
    } else if json {
        // stdout carries the rules or the list.
        eprintln!("{stats}");
    } else {
        eprintln!("exported {entries} entries from {indicators} indicators");
        for (why, n) in &skipped {
            eprintln!("  skipped {n}: {why}");
        }
    }
    Ok(())
}
