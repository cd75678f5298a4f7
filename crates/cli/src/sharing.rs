//! `phalanx partner …`, `phalanx agreement …`, `phalanx policy explain`, and the node's
//! own identity and signing key (created by `init`).

use crate::datadir;
use crate::report::{micros_text, print_json};
use anyhow::Context;
use clap::{Args, Subcommand};
use phalanx_node::Node;
use phalanx_policy::{AgreementStatus, Partner, Sector};
use std::path::Path;

/// File holding the node's Ed25519 signing key (hex seed), readable by the owner only.
pub const KEY_FILE: &str = "node.key";

#[derive(Args, Debug)]
pub struct InitArgs {
    /// This node's organisation id (what local tokens' --org name) [default: local]
    #[arg(long, value_name = "ID")]
    org: Option<String>,
    /// Organisation name for the node's STIX identity [default: the id]
    #[arg(long)]
    name: Option<String>,
    /// Sector: government, military, private, academic
    #[arg(long, value_parser = Sector::parse, default_value = "government")]
    sector: Sector,
    /// ISO 3166-1 alpha-2 country code
    #[arg(long)]
    country: Option<String>,
    /// Contact (e-mail, phone)
    #[arg(long)]
    contact: Option<String>,
}

impl Default for InitArgs {
    fn default() -> Self {
        InitArgs {
            org: None,
            name: None,
            sector: Sector::Government,
            country: None,
            contact: None,
        }
    }
}

/// Creates (once) the node's signing key, organisation and STIX identity; returns the
/// identity JSON and the public key (hex).
pub fn ensure_identity(dir: &Path, a: &InitArgs) -> anyhow::Result<(serde_json::Value, String)> {
    let store = datadir::open(dir)?;
    use phalanx_store::Store;
    if let Some(org) = &a.org {
        phalanx_policy::partner::check_id("organisation id", org).map_err(anyhow::Error::msg)?;
        let set = store.init_setting("node.org", org)?;
        anyhow::ensure!(
            set == *org,
            "this node's organisation is already {set:?}; it cannot change"
        );
    }
    let node = Node::new(
        std::sync::Arc::new(store),
        phalanx_node::NodeConfig::default(),
    )?;
    let public = signing_key(dir)?;
    let public = node.store().init_setting("node.public_key", &public)?;
    let identity = match node.store().setting("node.identity")? {
        Some(i) => serde_json::from_str(&i).context("stored node identity")?,
        None => {
            let org = node.own_org().to_owned();
            let now = micros_text(datadir::now_micros());
            let mut id = serde_json::json!({
                "type": "identity",
                "spec_version": "2.1",
                "id": format!("identity--{}", uuid::Uuid::new_v4()),
                "created": now,
                "modified": now,
                "name": a.name.clone().unwrap_or(org),
                "identity_class": "organization",
                "sectors": [a.sector.stix_sector()],
            });
            if let Some(c) = &a.contact {
                id["contact_information"] = c.clone().into();
            }
            if let Some(c) = &a.country {
                anyhow::ensure!(
                    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()),
                    "--country {c:?}: expected an ISO 3166-1 alpha-2 code such as FR"
                );
                id["x_phalanx_country"] = c.clone().into();
            }
            let text = serde_json::to_string(&id)?;
            serde_json::from_str(&node.store().init_setting("node.identity", &text)?)?
        }
    };
    Ok((identity, public))
}

/// The node's signing key (from `DIR/node.key`, created on first use).
pub fn signing_seed(dir: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let path = dir.join(KEY_FILE);
    let seed: [u8; 32] = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = phalanx_node::auth::from_hex(text.trim())
                .with_context(|| format!("{}: not a hex Ed25519 seed", path.display()))?;
            bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{}: expected 32 bytes", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
            write_private(&path, &phalanx_node::auth::hex(&seed))?;
            seed
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The node's public signing key (hex), creating the key file on first use.
fn signing_key(dir: &Path) -> anyhow::Result<String> {
    Ok(phalanx_node::auth::hex(
        signing_seed(dir)?.verifying_key().as_bytes(),
    ))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// An Ed25519 public key given as 64 hex digits or base64 (32 bytes), checked to be a
/// valid curve point; returned as lower-case hex.
fn parse_public_key(s: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let s = s.trim();
    let bytes = phalanx_node::auth::from_hex(s)
        .filter(|b| b.len() == 32)
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .filter(|b| b.len() == 32)
        .with_context(|| {
            format!("--signing-key {s:?}: expected an Ed25519 public key (32 bytes as 64 hex digits or base64)")
        })?;
    let arr: [u8; 32] = bytes.try_into().expect("length checked");
    ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| anyhow::anyhow!("--signing-key: not a valid Ed25519 public key"))?;
    Ok(phalanx_node::auth::hex(&arr))
}

/// SHA-256 fingerprint of the first certificate in a PEM file.
fn cert_fingerprint(path: &Path) -> anyhow::Result<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let cert = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificate {}", path.display()))?
        .next()
        .with_context(|| format!("{}: no certificate", path.display()))?
        .with_context(|| format!("{}: bad PEM", path.display()))?;
    Ok(phalanx_node::auth::hex(&sha2::Sha256::digest(
        cert.as_ref(),
    )))
}

#[derive(Subcommand, Debug)]
pub enum PartnerCmd {
    /// Register a partner organisation
    Add(PartnerAddArgs),
    /// List partners
    List,
    /// Show one partner, with its STIX identity and agreements
    Show {
        /// Partner id
        id: String,
    },
    /// Remove a partner (it stops being a recipient at once; history is kept)
    Remove {
        /// Partner id
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct PartnerAddArgs {
    /// Short stable id (letters, digits, '-', '_', '.'): what tokens' --org and
    /// agreements' parties name
    id: String,
    /// Organisation name
    #[arg(long)]
    name: String,
    /// government, military, private or academic
    #[arg(long, value_parser = Sector::parse)]
    sector: Sector,
    /// ISO 3166-1 alpha-2 country code
    #[arg(long)]
    country: Option<String>,
    /// Contact (e-mail, phone)
    #[arg(long)]
    contact: Option<String>,
    /// The partner's STIX identity id [default: a new one]
    #[arg(long, value_name = "identity--UUID")]
    identity: Option<String>,
    /// Ed25519 public signing key (64 hex digits or base64)
    #[arg(long, value_name = "KEY")]
    signing_key: Option<String>,
    /// TAXII endpoint (API root or collection URL); repeatable
    #[arg(long = "endpoint", value_name = "URL")]
    endpoints: Vec<String>,
    /// SHA-256 fingerprint of a TLS client certificate it connects with; repeatable
    #[arg(long = "cert-fingerprint", value_name = "SHA256")]
    fingerprints: Vec<String>,
    /// A TLS client certificate (PEM) it connects with; repeatable
    #[arg(long = "cert", value_name = "FILE")]
    certs: Vec<std::path::PathBuf>,
}

/// The STIX identity of a partner.
fn partner_identity(p: &Partner) -> serde_json::Value {
    let mut v = serde_json::json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": p.identity,
        "name": p.name,
        "identity_class": "organization",
        "sectors": [p.sector.stix_sector()],
    });
    if let Some(c) = &p.contact {
        v["contact_information"] = c.clone().into();
    }
    if let Some(c) = &p.country {
        v["x_phalanx_country"] = c.clone().into();
    }
    v
}

pub fn partner(dir: &Path, json: bool, cmd: PartnerCmd) -> anyhow::Result<()> {
    let node = datadir::open_node(dir)?;
    let now = datadir::now_micros();
    match cmd {
        PartnerCmd::Add(a) => {
            let mut fingerprints = Vec::new();
            for f in &a.fingerprints {
                fingerprints.push(
                    phalanx_policy::partner::normalise_fingerprint(f)
                        .map_err(anyhow::Error::msg)?,
                );
            }
            for c in &a.certs {
                fingerprints.push(cert_fingerprint(c)?);
            }
            let p = Partner {
                id: a.id,
                name: a.name,
                sector: a.sector,
                country: a.country,
                contact: a.contact,
                identity: a
                    .identity
                    .unwrap_or_else(|| format!("identity--{}", uuid::Uuid::new_v4())),
                signing_key: a.signing_key.as_deref().map(parse_public_key).transpose()?,
                endpoints: a.endpoints,
                cert_fingerprints: fingerprints,
                removed: false,
            };
            node.add_partner(&p, now)?;
            if json {
                print_json(&p);
            } else {
                println!("added partner {} ({})", p.id, p.name);
            }
        }
        PartnerCmd::List => {
            let partners = node.partners()?;
            if json {
                print_json(&partners);
            } else {
                println!(
                    "{:<16}  {:<10}  {:<7}  {:<8}  NAME",
                    "ID", "SECTOR", "COUNTRY", "STATE"
                );
                for p in partners {
                    println!(
                        "{:<16}  {:<10}  {:<7}  {:<8}  {}",
                        p.id,
                        p.sector.as_str(),
                        p.country.as_deref().unwrap_or("-"),
                        if p.removed { "removed" } else { "active" },
                        p.name
                    );
                }
            }
        }
        PartnerCmd::Show { id } => {
            let p = node
                .partners()?
                .into_iter()
                .find(|p| p.id == id)
                .with_context(|| format!("no partner {id:?}"))?;
            let agreements: Vec<_> = node
                .agreements()?
                .into_iter()
                .filter(|a| a.agreement.has_party(&id))
                .map(|a| {
                    serde_json::json!({
                        "id": a.agreement.id, "version": a.agreement.version,
                        "in_force": a.agreement.in_force(now),
                        "status": a.agreement.status.as_str(),
                    })
                })
                .collect();
            let mut v = serde_json::to_value(&p)?;
            v["stix_identity"] = partner_identity(&p);
            v["agreements"] = agreements.into();
            print_json(&v);
        }
        PartnerCmd::Remove { id } => {
            let p = node.remove_partner(&id, now)?;
            if json {
                print_json(&p);
            } else {
                println!("removed partner {id}: it receives nothing from now on");
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum AgreementCmd {
    /// Record an agreement document (TOML or JSON; `-` for stdin) as a new version
    Add {
        /// The document
        file: std::path::PathBuf,
    },
    /// List agreements (latest versions)
    List,
    /// Show an agreement: its latest (or a given) version and its history
    Show {
        /// Agreement id
        id: String,
        /// Show this version instead of the latest
        #[arg(long)]
        version: Option<u32>,
    },
    /// Suspend an agreement (a new version with status suspended): its flows stop at once
    Suspend {
        /// Agreement id
        id: String,
    },
    /// Make a draft or suspended agreement active (a new version)
    Activate {
        /// Agreement id
        id: String,
    },
    /// Terminate an agreement for good (a new version with status terminated)
    Terminate {
        /// Agreement id
        id: String,
    },
    /// Differences between two versions [default: the latest and the one before]
    Diff {
        /// Agreement id
        id: String,
        /// Older version
        from: Option<u32>,
        /// Newer version [default: the latest]
        to: Option<u32>,
    },
}

fn author() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .map(|u| format!("local:{u}"))
        .unwrap_or_else(|_| "local operator".into())
}

pub fn agreement(dir: &Path, json: bool, cmd: AgreementCmd) -> anyhow::Result<()> {
    let node = datadir::open_node(dir)?;
    let now = datadir::now_micros();
    let print_version = |v: &phalanx_node::AgreementVersion, verb: &str| {
        if json {
            print_json(&serde_json::json!({
                "id": v.agreement.id, "version": v.agreement.version,
                "status": v.agreement.status.as_str(), "in_force": v.agreement.in_force(now),
                "document": v.agreement.doc,
            }));
        } else {
            println!(
                "{verb} agreement {} version {} ({}{})",
                v.agreement.id,
                v.agreement.version,
                v.agreement.status.as_str(),
                if v.agreement.in_force(now) {
                    ", in force"
                } else {
                    ", not in force"
                }
            );
        }
    };
    match cmd {
        AgreementCmd::Add { file } => {
            let text = if file == Path::new("-") {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let v = node.add_agreement(&text, &author(), now)?;
            print_version(&v, "recorded");
        }
        AgreementCmd::List => {
            let all = node.agreements()?;
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "id": v.agreement.id, "version": v.agreement.version,
                            "status": v.agreement.status.as_str(),
                            "in_force": v.agreement.in_force(now),
                            "parties": v.agreement.parties, "max_tlp": v.agreement.max_tlp.label(),
                            "title": v.agreement.title,
                        })
                    })
                    .collect();
                print_json(&v);
            } else {
                println!(
                    "{:<24}  {:>3}  {:<10}  {:<8}  {:<16}  {:<24}  TITLE",
                    "ID", "VER", "STATUS", "IN FORCE", "MAX TLP", "PARTIES"
                );
                for v in all {
                    let a = &v.agreement;
                    println!(
                        "{:<24}  {:>3}  {:<10}  {:<8}  {:<16}  {:<24}  {}",
                        a.id,
                        a.version,
                        a.status.as_str(),
                        if a.in_force(now) { "yes" } else { "no" },
                        a.max_tlp.label(),
                        a.parties.join(","),
                        a.title
                    );
                }
            }
        }
        AgreementCmd::Show { id, version } => {
            let history = node.agreement_history(&id)?;
            anyhow::ensure!(!history.is_empty(), "no agreement {id:?}");
            let v = match version {
                Some(n) => history
                    .iter()
                    .find(|v| v.agreement.version == n)
                    .with_context(|| format!("agreement {id} has no version {n}"))?,
                None => history.last().expect("not empty"),
            };
            let hist: Vec<_> = history
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "version": h.agreement.version, "status": h.agreement.status.as_str(),
                        "recorded": micros_text(h.created_us), "author": h.author,
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "document": v.agreement.doc,
                "in_force": v.agreement.in_force(now),
                "why_not_in_force": v.agreement.not_in_force(now),
                "history": hist,
            }));
        }
        AgreementCmd::Suspend { id } => {
            print_version(
                &node.set_agreement_status(&id, AgreementStatus::Suspended, &author(), now)?,
                "suspended",
            );
        }
        AgreementCmd::Activate { id } => {
            print_version(
                &node.set_agreement_status(&id, AgreementStatus::Active, &author(), now)?,
                "activated",
            );
        }
        AgreementCmd::Terminate { id } => {
            print_version(
                &node.set_agreement_status(&id, AgreementStatus::Terminated, &author(), now)?,
                "terminated",
            );
        }
        AgreementCmd::Diff { id, from, to } => {
            let history = node.agreement_history(&id)?;
            anyhow::ensure!(!history.is_empty(), "no agreement {id:?}");
            let latest = history.last().expect("not empty").agreement.version;
            let to = to.unwrap_or(latest);
            let from = from.unwrap_or(to.saturating_sub(1));
            let get = |n: u32| {
                history
                    .iter()
                    .find(|v| v.agreement.version == n)
                    .with_context(|| format!("agreement {id} has no version {n}"))
            };
            let (a, b) = (get(from)?, get(to)?);
            let changes = phalanx_policy::agreement::diff(&a.agreement.doc, &b.agreement.doc);
            if json {
                let v: Vec<_> = changes
                    .iter()
                    .map(|(f, o, n)| serde_json::json!({"field": f, "from": o, "to": n}))
                    .collect();
                print_json(&v);
            } else {
                println!("--- {id} v{from}\n+++ {id} v{to}");
                for (f, o, n) in changes {
                    println!("{f}:\n  - {o}\n  + {n}");
                }
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Print the decision for an object and a recipient, with the rule chain
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Object id
    #[arg(long)]
    object: String,
    /// Recipient partner id (or any organisation id)
    #[arg(long, value_name = "P")]
    partner: String,
    /// read, federate, onward-share or export-for-blocking
    #[arg(long, default_value = "read", value_parser = parse_purpose)]
    purpose: phalanx_policy::Purpose,
    /// Decide at this time (RFC 3339) instead of now
    #[arg(long)]
    at: Option<String>,
}

fn parse_purpose(s: &str) -> Result<phalanx_policy::Purpose, String> {
    phalanx_policy::Purpose::parse(s).ok_or_else(|| {
        format!("{s:?}: expected read, federate, onward-share or export-for-blocking")
    })
}

/// `phalanx policy explain`.
pub fn policy(dir: &Path, json: bool, cmd: PolicyCmd) -> anyhow::Result<()> {
    let node = datadir::open_node(dir)?;
    let PolicyCmd::Explain(a) = cmd;
    let now = match &a.at {
        Some(t) => phalanx_stix::Timestamp::parse(t)
            .map_err(|e| anyhow::anyhow!("--at {t:?}: {e}"))?
            .as_micros(),
        None => datadir::now_micros(),
    };
    let found = node.explain(&a.object, &a.partner, a.purpose, now)?;
    if json {
        let v: Vec<_> = found
            .iter()
            .map(phalanx_node::Explanation::to_json)
            .collect();
        print_json(&v);
    } else {
        for e in &found {
            println!(
                "{} version {} in collection {} ({}):",
                a.object,
                e.version,
                e.collection.alias.as_deref().unwrap_or(&e.collection.title),
                e.collection.id
            );
            for s in &e.steps {
                println!("  {s}");
            }
        }
    }
    Ok(())
}
