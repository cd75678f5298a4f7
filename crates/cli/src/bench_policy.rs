//! `phalanx bench policy`: sharing decisions per second on one core.
//!
//! A policy with `--partners` partners and `--agreements` agreements (random parties,
//! scopes over collections, types and labels, TLP ceilings, onward rules, validity
//! windows around now, some suspended) decides for `--objects` object versions with
//! random TLP/PAP markings, labels, granular markings and provenance, every recipient in
//! turn and every purpose in turn. The loop runs on the calling thread only.

use crate::bench::{Rng, median};
use clap::Args;
use phalanx_policy::agreement::{Context, parse_document};
use phalanx_policy::{
    Agreement, Defaults, Facts, Granular, Level, Partner, Policy, Purpose, Recipient, Sector,
    Subject, Verdict,
};
use phalanx_stix::markings::{Pap, Tlp};
use std::hint::black_box;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchPolicyArgs {
    /// Decisions per run
    #[arg(long, default_value_t = 5_000_000)]
    decisions: u64,
    /// Partners
    #[arg(long, default_value_t = 40)]
    partners: usize,
    /// Agreements
    #[arg(long, default_value_t = 60)]
    agreements: usize,
    /// Distinct object versions decided on
    #[arg(long, default_value_t = 4096)]
    objects: usize,
    /// Runs; the median is reported
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

const TYPES: [&str; 4] = ["indicator", "malware", "attack-pattern", "report"];
const LABELS: [&str; 4] = ["ransomware", "apt", "phishing", "ics"];
const COLLECTIONS: [&str; 3] = ["c-intel", "c-ics", "c-sightings"];
const TLPS: [Tlp; 5] = [
    Tlp::Clear,
    Tlp::Green,
    Tlp::Amber,
    Tlp::AmberStrict,
    Tlp::Red,
];

struct Ctx;
impl Context for Ctx {
    fn own_org(&self) -> &str {
        "home"
    }
    fn is_partner(&self, _: &str) -> bool {
        true
    }
    fn collection_id(&self, name: &str) -> Option<String> {
        Some(name.to_owned())
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str], max: usize) -> Vec<&'a str> {
    let n = (rng.next() % (max as u64 + 1)) as usize;
    (0..n)
        .map(|_| items[(rng.next() % items.len() as u64) as usize])
        .collect()
}

fn build(a: &BenchPolicyArgs, rng: &mut Rng, now: i64) -> anyhow::Result<Policy> {
    let partners: Vec<Partner> = (0..a.partners)
        .map(|i| Partner {
            id: format!("p{i}"),
            name: format!("Partner {i}"),
            sector: Sector::Government,
            country: None,
            contact: None,
            identity: format!("identity--{}", rng.uuid()),
            signing_key: None,
            endpoints: vec![],
            cert_fingerprints: vec![],
            removed: false,
        })
        .collect();
    let day = 86_400_000_000i64;
    let mut agreements: Vec<Agreement> = Vec::new();
    for i in 0..a.agreements {
        let parties: Vec<String> = (0..1 + rng.next() % 4)
            .map(|_| format!("\"p{}\"", rng.next() % a.partners as u64))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let q = |v: Vec<&str>| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(",")
        };
        let status = match rng.next() % 10 {
            0 => "suspended",
            1 => "draft",
            _ => "active",
        };
        let (from, until) = match rng.next() % 6 {
            0 => (now - 30 * day, Some(now - day)),
            1 => (now + day, None),
            _ => (now - 365 * day, Some(now + 365 * day)),
        };
        let ts = |us: i64| phalanx_stix::Timestamp::from_micros(us).to_string();
        let onward = match rng.next() % 4 {
            0 => "\"nobody\"".to_owned(),
            1 => "\"parties\"".to_owned(),
            2 => "\"community\"".to_owned(),
            _ => format!("[\"p{}\"]", rng.next() % a.partners as u64),
        };
        let doc = format!(
            "id = \"a{i}\"\ntitle = \"bench {i}\"\nstatus = \"{status}\"\nparties = [{}]\nmax_tlp = \"{}\"\nonward = {onward}\nvalid_from = \"{}\"\n{}\n[scope]\ncollections = [{}]\ntypes = [{}]\nlabels = [{}]\n[pap]\ndefault = \"GREEN\"\n",
            parties.join(","),
            TLPS[1 + (rng.next() % 4) as usize].label(),
            ts(from),
            until.map_or(String::new(), |u| format!("valid_until = \"{}\"", ts(u))),
            q(pick(rng, &COLLECTIONS, 2)),
            q(pick(rng, &TYPES, 2)),
            q(pick(rng, &LABELS, 1)),
        );
        let checked = parse_document(&doc)
            .and_then(|d| d.check(&Ctx, 1))
            .map_err(|e| anyhow::anyhow!("generated agreement: {e}\n{doc}"))?;
        agreements.push(checked);
    }
    Ok(Policy::new(
        "home",
        Defaults::default(),
        partners,
        agreements,
    ))
}

struct Obj {
    object_type: &'static str,
    collection: &'static str,
    facts: Facts,
}

fn objects(a: &BenchPolicyArgs, rng: &mut Rng) -> Vec<Obj> {
    (0..a.objects)
        .map(|_| {
            let r = rng.next();
            let mut granular = Vec::new();
            if r.is_multiple_of(8) {
                granular.push(Granular {
                    selector: "description".into(),
                    level: Level::Tlp(Tlp::Red),
                });
            }
            Obj {
                object_type: TYPES[(r >> 8) as usize % TYPES.len()],
                collection: COLLECTIONS[(r >> 12) as usize % COLLECTIONS.len()],
                facts: Facts {
                    tlp: match (r >> 16) % 6 {
                        5 => None,
                        n => Some(TLPS[n as usize]),
                    },
                    pap: match (r >> 20) % 5 {
                        0 => Some(Pap::Clear),
                        1 => Some(Pap::Green),
                        2 => Some(Pap::Amber),
                        3 => Some(Pap::Red),
                        _ => None,
                    },
                    labels: pick(rng, &LABELS, 2)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    granular,
                    source: (r >> 24)
                        .is_multiple_of(3)
                        .then(|| format!("p{}", (r >> 32) % a.partners as u64)),
                    producer: None,
                    path: Vec::new(),
                    about: None,
                },
            }
        })
        .collect()
}

pub fn run(a: &BenchPolicyArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(a.partners > 0 && a.objects > 0, "need partners and objects");
    let now = crate::datadir::now_micros();
    let mut rng = Rng(0x5EED_0F90_11C7);
    let policy = build(a, &mut rng, now)?;
    let objs = objects(a, &mut rng);
    let ids: Vec<String> = (0..a.partners).map(|i| format!("p{i}")).collect();
    let mut recipients: Vec<Recipient<'_>> = ids.iter().map(|p| Recipient::Partner(p)).collect();
    recipients.push(Recipient::Local);
    recipients.push(Recipient::Outsider("stranger"));
    let purposes = [
        Purpose::Read,
        Purpose::Federate,
        Purpose::OnwardShare,
        Purpose::ExportForBlocking,
    ];
    let mut rates = Vec::new();
    let mut counts = [0u64; 3];
    for run in 0..a.runs.max(1) {
        let mut c = [0u64; 3];
        let t0 = Instant::now();
        for i in 0..a.decisions as usize {
            let o = &objs[i % objs.len()];
            let to = recipients[(i / objs.len() + i) % recipients.len()];
            let subject = Subject {
                object_type: o.object_type,
                collection: o.collection,
                facts: &o.facts,
            };
            let d = policy.decide(black_box(to), subject, purposes[i % 4], now);
            c[match d.verdict {
                Verdict::Allow => 0,
                Verdict::Redact(_) => 1,
                Verdict::Deny => 2,
            }] += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let rate = a.decisions as f64 / secs;
        eprintln!(
            "run {}: {:.0} decisions/s ({:.0} ns each)",
            run + 1,
            rate,
            1e9 / rate
        );
        rates.push(rate);
        counts = c;
    }
    let m = median(&mut rates);
    if json {
        crate::report::print_json(&serde_json::json!({
            "decisions_per_sec": m.round(), "ns_per_decision": (1e9 / m).round(),
            "runs": rates.len(), "decisions": a.decisions, "partners": a.partners,
            "agreements": a.agreements, "objects": a.objects,
            "allow": counts[0], "redact": counts[1], "deny": counts[2],
        }));
    } else {
        println!(
            "policy: {} partners, {} agreements, {} object versions, {} decisions per run, one thread, median of {} run(s)",
            a.partners,
            a.agreements,
            a.objects,
            a.decisions,
            rates.len()
        );
        println!(
            "decisions      {m:.0}/s ({:.0} ns each); last run: {} allow, {} redact, {} deny",
            1e9 / m,
            counts[0],
            counts[1],
            counts[2]
        );
    }
    Ok(())
}
