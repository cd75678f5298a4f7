//! `phalanx`: the node binary. This file holds only the command line (clap) and the
//! dispatch; each command lives in its own module.
//!
//! Exit codes: 0 success; 1 some input was rejected (invalid objects, conflicts,
//! validation errors); 2 bad command line; 3 the command could not run (IO, store).

mod access;
mod backup;
mod bench;
mod bench_federation;
mod bench_policy;
mod bench_taxii;
mod blocking;
mod datadir;
mod export;
mod hunt;
mod ingest;
mod pattern;
mod peer;
mod pki;
mod report;
mod serve;
mod sharing;
mod taxii;

use clap::{Args, Parser, Subcommand, ValueEnum};
use phalanx_store::{NewCollection, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "phalanx",
    version,
    about = "Federated cyber-defence cooperation node: STIX 2.1 store, TAXII 2.1 sharing"
)]
struct Cli {
    /// Data directory (created on first use).
    #[arg(
        long,
        global = true,
        env = "PHALANX_DATA",
        default_value = "./phalanx-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// Machine-readable output (JSON, or JSON lines for per-object reports).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory, its store, the node's organisation, STIX identity and
    /// signing key (also done implicitly on first use)
    Init(sharing::InitArgs),
    /// Manage TAXII API roots and collections.
    #[command(subcommand)]
    Collection(CollectionCmd),
    /// Validate STIX files without storing anything; exit 1 if any object has errors.
    Validate(ValidateArgs),
    /// Import STIX bundles, TAXII envelopes or JSON lines into a collection.
    Import(ImportArgs),
    /// Export a collection as a STIX bundle (default) or JSON lines.
    Export(export::ExportArgs),
    /// Write every API root, collection and object version to a JSON-lines backup.
    Backup {
        /// Backup file to write (`-` for stdout).
        file: PathBuf,
    },
    /// Restore a backup written by `phalanx backup`.
    Restore {
        /// Backup file to read (`-` for stdin).
        file: PathBuf,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Serve TAXII 2.1 (creates the default API root, collection and an administrator on first start)
    Serve(serve::ServeArgs),
    /// Bearer API tokens for TAXII clients
    #[command(subcommand)]
    Token(access::TokenCmd),
    /// Users for HTTP Basic authentication
    #[command(subcommand)]
    User(access::UserCmd),
    /// Pull from or push to a remote TAXII 2.1 server
    #[command(subcommand)]
    Taxii(taxii::TaxiiCmd),
    /// Partner organisations
    #[command(subcommand)]
    Partner(sharing::PartnerCmd),
    /// Sharing agreements (versioned)
    #[command(subcommand)]
    Agreement(sharing::AgreementCmd),
    /// The sharing policy
    #[command(subcommand)]
    Policy(sharing::PolicyCmd),
    /// Federation with partner nodes: pull, push and accept feeds, and their health
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// A small certificate authority for test and exercise federations
    #[command(subcommand)]
    Pki(pki::PkiCmd),
    /// STIX 2.1 patterns: check one, or evaluate it against observed-data
    #[command(subcommand)]
    Pattern(pattern::PatternCmd),
    /// Retro-hunt: the node's active indicators against telemetry (Zeek, Suricata,
    /// STIX observed-data, mapped JSON); sightings stored in the `sightings` collection
    Hunt(hunt::HuntArgs),
    /// Follow a growing telemetry file and record sightings as they happen
    Watch(hunt::WatchArgs),
}

#[derive(Subcommand, Debug)]
enum CollectionCmd {
    /// Create a collection (NAME is its alias and, unless --title is given, its title).
    Create {
        /// Alias of the new collection (letters, digits, '-', '_', '.').
        name: String,
        /// API root to create it in (created if missing).
        #[arg(long, default_value = datadir::DEFAULT_API_ROOT)]
        api_root: String,
        /// Title (default: NAME).
        #[arg(long)]
        title: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Readable but not writable by TAXII clients.
        #[arg(long)]
        read_only: bool,
    },
    /// List collections with their object counts.
    List {
        /// Only this API root.
        #[arg(long)]
        api_root: Option<String>,
    },
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Files to validate (`-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print every warning instead of a summary by kind.
    #[arg(long)]
    warnings: bool,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// Collection id, alias or title.
    #[arg(long, short)]
    collection: String,
    /// Files to import (`-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Objects per transaction.
    #[arg(long, default_value_t = ingest::DEFAULT_BATCH)]
    batch: usize,
    /// Print every warning instead of a summary by kind.
    #[arg(long)]
    warnings: bool,
    /// No progress bar even on a terminal.
    #[arg(long)]
    quiet: bool,
    /// Create the collection (in the default API root) if it does not exist.
    #[arg(long)]
    create: bool,
    /// Record the objects as received from this partner (provenance: the sharing policy
    /// then applies its onward-sharing rules to them).
    #[arg(long, value_name = "PARTNER")]
    from_partner: Option<String>,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Generate N indicators, import them into a fresh store and report throughput.
    Import(bench::BenchArgs),
    /// TAXII load benchmark: write, read back, concurrent single GETs (phalanx or --url)
    Taxii(bench_taxii::BenchTaxiiArgs),
    /// Sharing-policy decisions per second on one core
    Policy(bench_policy::BenchPolicyArgs),
    /// Federation A → B → C over mutual TLS: propagation rate and single-object latency
    Federation(bench_federation::BenchFederationArgs),
    /// Detection: index build for N indicators, eve.json lines parsed and matched per
    /// second on one core, bytes per indicator
    Detect(BenchDetectArgs),
}

#[derive(Args, Debug)]
struct BenchDetectArgs {
    /// Indicators (mixed IPs, CIDRs, domains, URLs, hashes, a few thousand multi-part)
    #[arg(long, default_value_t = 1_000_000)]
    indicators: usize,
    /// eve.json-style lines (~500 bytes) to match
    #[arg(long, default_value_t = 10_000_000)]
    lines: usize,
    /// Write a slice of the patterns and observations here for the stix2-matcher
    /// comparison (`crates/detect/bench/stix2_matcher_bench.py DIR`)
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    /// A STIX bundle.
    Bundle,
    /// One object per line.
    Jsonl,
}

/// How a command ended, when it ran to completion.
enum Status {
    Ok,
    Rejected,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Rejected) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Status> {
    let json = cli.json;
    match cli.command {
        Command::Init(a) => {
            let (identity, public_key) = sharing::ensure_identity(&cli.data, &a)?;
            let roots = datadir::open(&cli.data)?.api_roots()?;
            if json {
                report::print_json(&serde_json::json!({
                    "data": cli.data, "api_roots": roots, "identity": identity,
                    "public_key": public_key,
                }));
            } else {
                println!("data directory {} is ready", cli.data.display());
                println!(
                    "organisation {} ({}), signing key {public_key}",
                    identity["name"].as_str().unwrap_or(""),
                    identity["id"].as_str().unwrap_or("")
                );
            }
            Ok(Status::Ok)
        }
        Command::Collection(cmd) => collection(&cli.data, json, cmd),
        Command::Validate(a) => ingest::validate_files(&a.files, json, a.warnings),
        Command::Import(a) => {
            let store = datadir::open(&cli.data)?;
            if a.create
                && let Err(phalanx_store::StoreError::NotFound(_)) =
                    store.find_collection(&a.collection)
            {
                store.create_collection(
                    datadir::DEFAULT_API_ROOT,
                    &NewCollection::named(&a.collection),
                )?;
            }
            if let Some(p) = &a.from_partner {
                let node = datadir::open_node(&cli.data)?;
                anyhow::ensure!(
                    node.policy()?.partner(p).is_some(),
                    "--from-partner {p:?}: no such partner (see `phalanx partner list`)"
                );
            }
            let opts = ingest::ImportOptions {
                source: a.from_partner.clone(),
                batch: a.batch.max(1),
                json,
                all_warnings: a.warnings,
                progress: !a.quiet && !json,
            };
            ingest::import_files(&store, &a.collection, &a.files, &opts)
        }
        Command::Export(a) => {
            export::run(&datadir::open_node(&cli.data)?, &a, json)?;
            Ok(Status::Ok)
        }
        Command::Backup { file } => {
            backup::backup(&datadir::open_node(&cli.data)?, &file, json)?;
            Ok(Status::Ok)
        }
        Command::Restore { file } => {
            let store = datadir::open(&cli.data)?;
            backup::restore(&store, &file, json)?;
            Ok(Status::Ok)
        }
        Command::Bench(BenchCmd::Import(a)) => {
            bench::import(&a, json)?;
            Ok(Status::Ok)
        }
        Command::Bench(BenchCmd::Detect(a)) => {
            let cfg = phalanx_detect::bench::BenchConfig {
                indicators: a.indicators,
                lines: a.lines,
                export_dir: a.export,
                ..Default::default()
            };
            print!("{}", phalanx_detect::bench::run(&cfg));
            Ok(Status::Ok)
        }
        Command::Bench(BenchCmd::Federation(a)) => {
            bench_federation::run(&a, json)?;
            Ok(Status::Ok)
        }
        Command::Bench(BenchCmd::Policy(a)) => {
            bench_policy::run(&a, json)?;
            Ok(Status::Ok)
        }
        Command::Bench(BenchCmd::Taxii(a)) => {
            bench_taxii::run(&a, json)?;
            Ok(Status::Ok)
        }
        Command::Serve(a) => serve::run(&cli.data, &a),
        Command::Token(cmd) => access::token(&cli.data, json, cmd),
        Command::User(cmd) => access::user(&cli.data, json, cmd),
        Command::Taxii(cmd) => taxii::run(&cli.data, json, cmd),
        Command::Partner(cmd) => {
            sharing::partner(&cli.data, json, cmd)?;
            Ok(Status::Ok)
        }
        Command::Agreement(cmd) => {
            sharing::agreement(&cli.data, json, cmd)?;
            Ok(Status::Ok)
        }
        Command::Peer(cmd) => {
            peer::run(&cli.data, json, cmd)?;
            Ok(Status::Ok)
        }
        Command::Pattern(cmd) => pattern::run(json, cmd),
        Command::Hunt(a) => hunt::hunt(&cli.data, json, &a),
        Command::Watch(a) => hunt::watch(&cli.data, json, &a),
        Command::Pki(cmd) => {
            pki::run(cmd, json)?;
            Ok(Status::Ok)
        }
        Command::Policy(cmd) => {
            sharing::policy(&cli.data, json, cmd)?;
            Ok(Status::Ok)
        }
    }
}

fn collection(data: &std::path::Path, json: bool, cmd: CollectionCmd) -> anyhow::Result<Status> {
    let store = datadir::open(data)?;
    match cmd {
        CollectionCmd::Create {
            name,
            api_root,
            title,
            description,
            read_only,
        } => {
            store.ensure_api_root(&api_root, &api_root)?;
            let mut new = NewCollection::named(&name);
            if let Some(t) = title {
                new.title = t;
            }
            new.description = description;
            new.can_write = !read_only;
            let c = store.create_collection(&api_root, &new)?;
            if json {
                report::print_json(&c);
            } else {
                println!(
                    "created collection {} ({}) in API root {}",
                    c.alias.as_deref().unwrap_or(&c.title),
                    c.id,
                    c.api_root
                );
            }
        }
        CollectionCmd::List { api_root } => {
            let cols = store.collections(api_root.as_deref())?;
            let mut rows = Vec::with_capacity(cols.len());
            for c in cols {
                let n = store.count(&c.id)?;
                rows.push((c, n));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(c, n)| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["objects"] = (*n).into();
                        v
                    })
                    .collect();
                report::print_json(&v);
            } else {
                println!(
                    "{:<36}  {:<10}  {:<20}  {:>9}  {:<4}  TITLE",
                    "ID", "API ROOT", "ALIAS", "OBJECTS", "RW"
                );
                for (c, n) in rows {
                    let rw = format!(
                        "{}{}",
                        if c.can_read { "r" } else { "-" },
                        if c.can_write { "w" } else { "-" }
                    );
                    println!(
                        "{:<36}  {:<10}  {:<20}  {:>9}  {:<4}  {}",
                        c.id,
                        c.api_root,
                        c.alias.as_deref().unwrap_or("-"),
                        n,
                        rw,
                        c.title
                    );
                }
            }
        }
    }
    Ok(Status::Ok)
}
