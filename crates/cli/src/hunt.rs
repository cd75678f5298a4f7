//! `phalanx hunt` (retro-hunt over stored or piped telemetry) and `phalanx watch`
//! (follow a growing log): the node's active indicators against telemetry, sightings
//! stored in the `sightings` collection.

use crate::Status;
use anyhow::Context;
use clap::{Args, ValueEnum};
use phalanx_detect::{Aggregator, Hunt, HuntConfig, Index, IndexConfig, LineStats};
use phalanx_node::detection::TelemetryFormat;
use phalanx_stix::Timestamp;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    /// Tell from the first line (Zeek, Suricata eve.json or STIX)
    Auto,
    /// Zeek JSON logs (every log type)
    Zeek,
    /// Suricata eve.json
    Suricata,
    /// STIX observed-data (bundles or objects, one per line)
    Stix,
    /// JSON lines with a declared field mapping (--map)
    Json,
}

#[derive(Args, Debug)]
pub struct TelemetryArgs {
    /// Telemetry format
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Field mapping for --format json: `path=kind,...`, e.g.
    /// `@timestamp=time,source.ip=src_ip,destination.ip=dst_ip,dns.question.name=domain`
    #[arg(long, value_name = "MAPPING")]
    map: Option<String>,
}

#[derive(Args, Debug)]
pub struct HuntArgs {
    /// Telemetry to hunt through (`-` for stdin)
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    /// Only the indicators of these collections (repeatable) [default: all]
    #[arg(long = "collection", short = 'c')]
    collections: Vec<String>,
    /// Print the sightings without storing them
    #[arg(long)]
    no_store: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The log file to follow (it may be truncated or rotated)
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    /// Read the file from its start instead of from its end
    #[arg(long)]
    from_start: bool,
    /// Seconds between storing the sightings found
    #[arg(long, default_value_t = 5)]
    flush_seconds: u64,
}

/// The adapter for `args`, the format told from `first_line` for `auto`.
fn adapter(
    args: &TelemetryArgs,
    first_line: &[u8],
    name: &str,
) -> anyhow::Result<(TelemetryFormat, Box<dyn phalanx_detect::Adapter>)> {
    let format = match args.format {
        FormatArg::Auto if args.map.is_some() => TelemetryFormat::Json,
        FormatArg::Auto => TelemetryFormat::sniff(first_line).with_context(|| {
            format!("cannot tell the telemetry format of {name} from its first line; give --format (or --map for generic JSON)")
        })?,
        FormatArg::Zeek => TelemetryFormat::Zeek,
        FormatArg::Suricata => TelemetryFormat::Suricata,
        FormatArg::Stix => TelemetryFormat::Stix,
        FormatArg::Json => TelemetryFormat::Json,
    };
    let a = format
        .adapter(args.map.as_deref())
        .map_err(anyhow::Error::msg)?;
    Ok((format, a))
}

/// The observer: this node's STIX identity (created on first use).
fn observer(data: &Path) -> anyhow::Result<String> {
    let (identity, _) = crate::sharing::ensure_identity(data, &Default::default())?;
    identity["id"]
        .as_str()
        .map(str::to_owned)
        .context("the node's identity has no id")
}

fn now() -> Timestamp {
    Timestamp::from_micros(phalanx_node::now_micros())
}

fn report_index(report: &phalanx_detect::BuildReport, index: &Index) {
    let s = index.stats();
    eprintln!(
        "index: {} indicators ({} decided by the index, {} confirmed by the evaluator, {} always evaluated, {} not valid yet); {} refused",
        s.live,
        s.simple,
        s.confirmed,
        s.always_evaluate,
        s.pending,
        report.errors.len()
    );
    for e in report.errors.iter().take(5) {
        eprintln!("  refused: {e}");
    }
    if report.errors.len() > 5 {
        eprintln!("  … and {} more", report.errors.len() - 5);
    }
}

fn report_lines(stats: &LineStats) {
    eprintln!(
        "telemetry: {} lines, {} malformed, {} too long, {} blank; {} hits ({} candidates checked by the evaluator, {} evaluation errors)",
        stats.lines,
        stats.malformed,
        stats.too_long,
        stats.blank,
        stats.matching.hits,
        stats.matching.evaluated,
        stats.matching.eval_errors
    );
    for e in &stats.error_sample {
        eprintln!("  {e}");
    }
}

/// id → name of the indicators among `texts` whose id is in `wanted`.
fn names(texts: &[String], wanted: &HashSet<String>) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        id: Option<&'a str>,
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        pattern: Option<std::borrow::Cow<'a, str>>,
    }
    let mut out = HashMap::new();
    for t in texts {
        if let Ok(h) = serde_json::from_str::<Head<'_>>(t)
            && let Some(id) = h.id
            && wanted.contains(id)
        {
            let name = h.name.or(h.pattern).unwrap_or_default().into_owned();
            out.insert(id.to_owned(), name);
        }
    }
    out
}

pub fn hunt(data: &Path, json: bool, a: &HuntArgs) -> anyhow::Result<Status> {
    let node = crate::datadir::open_node(data)?;
    let me = observer(data)?;
    let started = Instant::now();
    let texts = node.active_indicators(&a.collections)?;
    let (index, report) = Index::build(&texts, now(), IndexConfig::default());
    report_index(&report, &index);
    let (size, reader): (Option<u64>, Box<dyn Read>) = if a.input.as_os_str() == "-" {
        (None, Box::new(std::io::stdin().lock()))
    } else {
        let f = std::fs::File::open(&a.input)
            .with_context(|| format!("cannot open {}", a.input.display()))?;
        (f.metadata().ok().map(|m| m.len()), Box::new(f))
    };
    let bar = crate::ingest::progress_bar(size, true);
    let reader: Box<dyn Read> = match &bar {
        Some(b) => Box::new(b.wrap_read(reader)),
        None => reader,
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let first = reader.fill_buf()?;
    let first_line = first.split(|b| *b == b'\n').next().unwrap_or_default();
    let (format, adapter) = adapter(&a.telemetry, first_line, &a.input.display().to_string())?;
    let mut hunt = Hunt::new(&*adapter, HuntConfig::default());
    let mut agg = Aggregator::new();
    let fallback = now();
    hunt.read(&index, reader, fallback, &mut |hits| agg.add(hits, &me))
        .with_context(|| format!("reading {}", a.input.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report_lines(hunt.stats());
    let summary = agg.summary();
    let sightings = if a.no_store {
        agg.sightings(now())
    } else {
        node.record_sightings(agg.sightings(now()), phalanx_node::now_micros())?
    };
    let wanted: HashSet<String> = summary.iter().map(|s| s.indicator.id()).collect();
    let names = names(&texts, &wanted);
    let elapsed = started.elapsed().as_secs_f64();
    if json {
        for s in &sightings {
            println!("{s}");
        }
        eprintln!(
            "{}",
            json!({"summary": {
                "format": format!("{format:?}").to_lowercase(),
                "lines": hunt.stats().lines, "malformed": hunt.stats().malformed,
                "hits": hunt.stats().matching.hits, "indicators": index.stats().live,
                "refused_indicators": report.errors.len(), "sightings": sightings.len(),
                "stored": !a.no_store, "seconds": elapsed,
                "by_indicator": summary.iter().map(|s| json!({
                    "indicator": s.indicator.id(), "name": names.get(&s.indicator.id()),
                    "count": s.count, "first_seen": s.first_seen.format(6),
                    "last_seen": s.last_seen.format(6),
                })).collect::<Vec<Value>>(),
            }})
        );
    } else {
        println!(
            "{:>9}  {:<27}  {:<27}  {:<50}  NAME",
            "HITS", "FIRST SEEN", "LAST SEEN", "INDICATOR"
        );
        for s in &summary {
            let id = s.indicator.id();
            println!(
                "{:>9}  {:<27}  {:<27}  {:<50}  {}",
                s.count,
                s.first_seen.format(6),
                s.last_seen.format(6),
                id,
                names.get(&id).map(String::as_str).unwrap_or("")
            );
        }
        eprintln!(
            "{} indicators sighted in {:.1} s; {}",
            summary.len(),
            elapsed,
            if a.no_store {
                "sightings not stored (--no-store)".to_owned()
            } else {
                format!(
                    "{} sightings stored in collection {}",
                    sightings.len(),
                    phalanx_node::detection::SIGHTINGS
                )
            }
        );
    }
    Ok(Status::Ok)
}

/// Follows `a.input`: new complete lines are matched against the node's index (kept up
/// to date with the store), sightings stored every `flush_seconds`; a truncated or
/// rotated file is read again from its start. Runs until interrupted (Ctrl-C stores
/// what was found since the last flush).
pub fn watch(data: &Path, json: bool, a: &WatchArgs) -> anyhow::Result<Status> {
    let node = crate::datadir::open_node(data)?;
    let me = observer(data)?;
    let stop = crate::serve::interrupted()?;
    let mut file = open_follow(&a.input)?;
    let mut pos = if a.from_start {
        0
    } else {
        file.seek(std::io::SeekFrom::End(0))?
    };
    let mut identity = file_id(&a.input);
    let mut pending: Vec<u8> = Vec::new();
    let mut adapter: Option<Box<dyn phalanx_detect::Adapter>> = None;
    let mut hunt_stats = LineStats::default();
    let mut agg = Aggregator::new();
    let mut last_flush = Instant::now();
    let flush_every = Duration::from_secs(a.flush_seconds.max(1));
    eprintln!("watching {} (Ctrl-C to stop)", a.input.display());
    loop {
        let stopping = stop.load(std::sync::atomic::Ordering::SeqCst);
        // Rotation (another file under the name) or truncation: start over.
        let len = std::fs::metadata(&a.input).map(|m| m.len()).unwrap_or(0);
        let id_now = file_id(&a.input);
        if (id_now != identity || len < pos)
            && let Ok(f) = open_follow(&a.input)
        {
            file = f;
            pos = 0;
            pending.clear();
            identity = id_now;
            eprintln!(
                "{} was truncated or rotated: reading it from the start",
                a.input.display()
            );
        }
        let mut chunk = Vec::new();
        file.seek(std::io::SeekFrom::Start(pos))?;
        (&mut file).take(16 << 20).read_to_end(&mut chunk)?;
        pos += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = pending.drain(..=end).collect();
            if adapter.is_none() {
                let first = lines.split(|b| *b == b'\n').next().unwrap_or_default();
                adapter = Some(adapter_for(&a.telemetry, first, &a.input)?);
            }
            if let Some(ad) = &adapter {
                let t = now();
                let detector = node.detector(t)?;
                let index = detector.index.read().unwrap_or_else(|e| e.into_inner());
                let mut hunt = Hunt::new(&**ad, HuntConfig::default());
                hunt.feed(&index, &lines, t, &mut |hits| agg.add(hits, &me));
                merge_stats(&mut hunt_stats, hunt.stats());
            }
        }
        if (last_flush.elapsed() >= flush_every || stopping) && !agg.is_empty() {
            let stored = node.record_sightings(agg.sightings(now()), phalanx_node::now_micros())?;
            for s in &stored {
                if json {
                    println!("{s}");
                } else {
                    println!(
                        "sighting {} of {}: {} in all, last seen {}",
                        s["id"].as_str().unwrap_or(""),
                        s["sighting_of_ref"].as_str().unwrap_or(""),
                        s["count"],
                        s["last_seen"].as_str().unwrap_or("")
                    );
                }
            }
            agg = Aggregator::new();
            last_flush = Instant::now();
        }
        if stopping {
            report_lines(&hunt_stats);
            return Ok(Status::Ok);
        }
        if chunk.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn adapter_for(
    t: &TelemetryArgs,
    first: &[u8],
    path: &Path,
) -> anyhow::Result<Box<dyn phalanx_detect::Adapter>> {
    Ok(adapter(t, first, &path.display().to_string())?.1)
}

fn open_follow(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// What identifies the file under a name (device and inode), to notice rotation.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn merge_stats(total: &mut LineStats, s: &LineStats) {
    total.lines += s.lines;
    total.blank += s.blank;
    total.malformed += s.malformed;
    total.too_long += s.too_long;
    total.matching.hits += s.matching.hits;
    total.matching.evaluated += s.matching.evaluated;
    total.matching.eval_errors += s.matching.eval_errors;
    total.matching.records += s.matching.records;
    for e in &s.error_sample {
        if total.error_sample.len() < 20 {
            total.error_sample.push(e.clone());
        }
    }
}
