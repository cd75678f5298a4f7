//! Streaming ingest: bytes → [`Splitter`] → parse → validate → store, in batches.
//!
//! A reader thread reads the input in chunks, splits, parses and validates; the calling
//! thread stores each batch of valid objects in one transaction and reports every object's
//! outcome in input order. Memory is bounded by the chunk size, the largest object and two
//! batches in flight, never by the size of the input.

use crate::report::{Outcome, Record, Reporter};
use crate::{Status, datadir};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use phalanx_stix::stream::{Item, Position, SplitLimits, Splitter};
use phalanx_stix::{Issue, StixObject, validate};
use phalanx_store::{IngestOutcome, Prepared, Store};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Valid objects per store transaction.
/// 20,000: each commit rewrites the index pages its random ids touched, so larger
/// batches write less (measured 5,000 → 20,000: +30% throughput); two batches in flight
/// stay well under 300 MB.
pub const DEFAULT_BATCH: usize = 20_000;

/// Bytes read at a time.
const CHUNK: usize = 256 * 1024;

/// An input: a file or stdin.
pub struct Source {
    pub name: String,
    pub len: Option<u64>,
    reader: Box<dyn Read + Send>,
}

impl Source {
    /// Opens `-` (stdin) or a file.
    pub fn open(path: &Path) -> anyhow::Result<Source> {
        if path == Path::new("-") {
            return Ok(Source {
                name: "<stdin>".into(),
                len: None,
                reader: Box::new(std::io::stdin()),
            });
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        Ok(Source {
            name: path.display().to_string(),
            len,
            reader: Box::new(file),
        })
    }

    /// An input read from any reader (a TAXII download, ...), called `name` in reports.
    pub fn from_reader(name: impl Into<String>, reader: impl Read + Send + 'static) -> Source {
        Source {
            name: name.into(),
            len: None,
            reader: Box::new(reader),
        }
    }
}

/// Where an object stood in the input and what validation said about it.
pub enum Meta {
    /// The next object of [`Batch::objects`].
    Valid { pos: Position, warnings: Vec<Issue> },
    /// Refused before storage.
    Invalid {
        pos: Position,
        id: Option<String>,
        reason: Option<String>,
        errors: Vec<Issue>,
        warnings: Vec<Issue>,
    },
}

/// A run of input objects: the valid ones (prepared for the store, their parsed JSON
/// already dropped by the worker that parsed them), and one [`Meta`] per object in input
/// order.
#[derive(Default)]
pub struct Batch {
    pub objects: Vec<Prepared>,
    pub meta: Vec<Meta>,
    /// Input bytes consumed up to the end of this batch.
    pub offset: u64,
}

/// Parses and validates one candidate object.
fn classify(item: Item, max_depth: usize, batch: &mut Batch) {
    match item {
        Item::Error { pos, message } => batch.meta.push(Meta::Invalid {
            pos,
            id: None,
            reason: Some(message),
            errors: Vec::new(),
            warnings: Vec::new(),
        }),
        Item::Object { bytes, pos } => match StixObject::parse_owned(bytes, max_depth) {
            Err(e) => batch.meta.push(Meta::Invalid {
                pos,
                id: None,
                reason: Some(e.to_string()),
                errors: Vec::new(),
                warnings: Vec::new(),
            }),
            Ok(obj) => match validate(obj) {
                // Recall notices are made by a node when it deletes, and travel only by
                // federation: an imported one could make partners delete their copies.
                Ok((valid, warnings)) if valid.object_type() == phalanx_node::recall::TYPE => {
                    batch.meta.push(Meta::Invalid {
                        pos,
                        id: Some(valid.id().to_owned()),
                        reason: Some(
                            "x-phalanx-recall notices are made by the node itself when it deletes; they are not imported".into(),
                        ),
                        errors: Vec::new(),
                        warnings,
                    })
                }
                Ok((valid, warnings)) => {
                    batch.objects.push(Prepared::of(&valid));
                    batch.meta.push(Meta::Valid { pos, warnings });
                }
                Err((obj, report)) => batch.meta.push(Meta::Invalid {
                    pos,
                    id: Some(obj.id().to_owned()),
                    reason: None,
                    errors: report.errors,
                    warnings: report.warnings,
                }),
            },
        },
    }
}

/// Candidate objects handed to a worker at a time.
const CHUNK_ITEMS: usize = 1024;

/// What the reader and workers send to the consumer.
enum Done {
    /// A classified chunk: its sequence number and contents.
    Chunk(u64, Batch),
    /// Reading failed.
    Failed(std::io::Error),
}

/// Reads `source` and hands batches of at least `batch_size` valid objects (fewer at the
/// end; plus the invalid ones met meanwhile) to `consume`, in input order.
///
/// One thread reads and splits; `workers` threads parse and validate chunks of candidate
/// objects in parallel; the calling thread puts the chunks back in input order and runs
/// `consume`. Channels are bounded, so a slow consumer slows the reader down instead of
/// buffering the input.
pub fn read_batches(
    source: Source,
    batch_size: usize,
    limits: SplitLimits,
    mut consume: impl FnMut(Batch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let name = source.name.clone();
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Vec<Item>, u64)>(workers * 2);
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        // Room for a whole batch: while one batch is stored, the next is parsed, so the
        // writer and the parsers overlap (measured with room for half a batch: they took
        // turns, and the import ran at the sum of both times). Prepared versions are
        // compact (their text and columns), so this stays in bounded memory.
        let (done_tx, done_rx) =
            mpsc::sync_channel::<Done>(batch_size.div_ceil(CHUNK_ITEMS) + 2 * workers);
        let reader_done = done_tx.clone();
        scope.spawn(move || {
            let mut input = source.reader;
            let mut splitter = Splitter::new(limits);
            let mut items = Vec::new();
            let mut buf = vec![0u8; CHUNK];
            let mut seq = 0u64;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = reader_done.send(Done::Failed(e));
                        return;
                    }
                };
                if n == 0 {
                    splitter.finish(&mut items);
                } else {
                    splitter.push(&buf[..n], &mut items);
                }
                // Exact chunks, so batch boundaries do not depend on read sizes.
                while items.len() >= CHUNK_ITEMS || (n == 0 && !items.is_empty()) {
                    let rest = items.split_off(items.len().min(CHUNK_ITEMS));
                    let chunk = std::mem::replace(&mut items, rest);
                    if work_tx.send((seq, chunk, splitter.offset())).is_err() {
                        return; // the consumer stopped
                    }
                    seq += 1;
                }
                if n == 0 {
                    return;
                }
            }
        });
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    // A worker that panicked while holding the lock cannot corrupt a
                    // receiver; keep going with the inner value.
                    let job = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((seq, items, offset)) = job else {
                        return;
                    };
                    let mut batch = Batch {
                        offset,
                        ..Batch::default()
                    };
                    for item in items {
                        classify(item, limits.max_depth, &mut batch);
                    }
                    if done_tx.send(Done::Chunk(seq, batch)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drop(work_rx);
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut current = Batch::default();
        for msg in done_rx.iter() {
            match msg {
                Done::Failed(e) => {
                    return Err(anyhow::Error::new(e).context(format!("cannot read {name}")));
                }
                Done::Chunk(seq, batch) => {
                    pending.insert(seq, batch);
                }
            }
            while let Some(batch) = pending.remove(&next) {
                next += 1;
                current.objects.extend(batch.objects);
                current.meta.extend(batch.meta);
                current.offset = batch.offset;
                if current.objects.len() >= batch_size || current.meta.len() >= 4 * batch_size {
                    consume(std::mem::take(&mut current))?;
                }
            }
        }
        if !current.meta.is_empty() {
            consume(current)?;
        }
        Ok(())
    })
}

pub fn progress_bar(len: Option<u64>, enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
            )
            .ok()?,
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}")
                .ok()?,
        ),
    };
    pb.set_draw_target(ProgressDrawTarget::stderr());
    Some(pb)
}

/// Reports every object of a batch whose valid objects got `outcomes`.
pub fn report_batch(
    rep: &mut Reporter,
    batch: &Batch,
    outcomes: &mut dyn Iterator<Item = Outcome>,
) {
    let mut objects = batch.objects.iter();
    for meta in &batch.meta {
        match meta {
            Meta::Valid { pos, warnings } => {
                let obj = objects.next();
                let outcome = outcomes.next().unwrap_or(Outcome::Valid);
                rep.record(&Record {
                    pos: *pos,
                    id: obj.map(|o| o.id.as_str()),
                    outcome,
                    reason: None,
                    errors: &[],
                    warnings,
                });
            }
            Meta::Invalid {
                pos,
                id,
                reason,
                errors,
                warnings,
            } => rep.record(&Record {
                pos: *pos,
                id: id.as_deref(),
                outcome: Outcome::Invalid,
                reason: reason.as_deref(),
                errors,
                warnings,
            }),
        }
    }
    if let Some(pb) = rep.progress() {
        pb.set_position(batch.offset);
    }
}

fn open_all(files: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    files.iter().map(|f| Source::open(f)).collect()
}

/// Options of `phalanx import`.
pub struct ImportOptions {
    pub batch: usize,
    pub json: bool,
    pub all_warnings: bool,
    /// The partner the objects came from (provenance; `None`: this node's organisation).
    pub source: Option<String>,
    pub progress: bool,
}

/// `phalanx import`: streams every file into the collection.
pub fn import_files(
    store: &dyn Store,
    collection: &str,
    files: &[PathBuf],
    opts: &ImportOptions,
) -> anyhow::Result<Status> {
    let col = find_collection(store, collection)?;
    // Open everything first: a typo in the last file name should not leave a half import.
    let sources = open_all(files)?;
    import_sources(store, &col.id, sources, opts)
}

/// The local collection `name` (id, alias or title), with a hint when there is none.
pub fn find_collection(store: &dyn Store, name: &str) -> anyhow::Result<phalanx_store::Collection> {
    store.find_collection(name).with_context(|| {
        format!("no collection {name:?} (create it with `phalanx collection create {name}`)")
    })
}

/// Streams every source into the collection with id `collection_id` (the path of
/// `phalanx import`, also used by `phalanx taxii pull`).
pub fn import_sources(
    store: &dyn Store,
    collection_id: &str,
    sources: Vec<Source>,
    opts: &ImportOptions,
) -> anyhow::Result<Status> {
    let mut rep = Reporter::new(opts.json, opts.all_warnings);
    for source in sources {
        let pb = progress_bar(source.len, opts.progress);
        rep.start_file(&source.name, pb);
        let mut stored = 0u64;
        let result = read_batches(source, opts.batch, SplitLimits::default(), |batch| {
            let outcomes = store.ingest_prepared(
                collection_id,
                &batch.objects,
                opts.source.as_deref(),
                datadir::now_micros(),
            )?;
            stored += outcomes.iter().filter(|o| o.is_added()).count() as u64;
            let mut it = outcomes.into_iter().map(|o| match o {
                IngestOutcome::Added { date_added } => Outcome::Accepted { date_added },
                IngestOutcome::Duplicate => Outcome::Duplicate,
                IngestOutcome::Conflict {
                    existing_date_added,
                } => Outcome::Conflict {
                    existing_date_added,
                },
            });
            report_batch(&mut rep, &batch, &mut it);
            if let Some(pb) = rep.progress() {
                pb.set_message(format!("{stored} stored"));
            }
            Ok(())
        });
        rep.finish_file();
        result.with_context(|| {
            format!("import stopped; the {stored} objects stored before the failure are kept")
        })?;
    }
    Ok(rep.finish().status())
}

/// `phalanx validate`: the same reading path, nothing stored.
pub fn validate_files(files: &[PathBuf], json: bool, all_warnings: bool) -> anyhow::Result<Status> {
    let sources = open_all(files)?;
    let mut rep = Reporter::new(json, all_warnings);
    for source in sources {
        let pb = progress_bar(source.len, !json);
        rep.start_file(&source.name, pb);
        let result = read_batches(source, DEFAULT_BATCH, SplitLimits::default(), |batch| {
            report_batch(&mut rep, &batch, &mut std::iter::empty());
            Ok(())
        });
        rep.finish_file();
        result?;
    }
    Ok(rep.finish().status())
}
