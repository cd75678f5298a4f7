//! The sharing decision against a reference oracle.
//!
//! Random worlds — 1–5 partners, 0–6 agreements (random parties, status, validity windows
//! around `now`, scope, `max_tlp`, onward sharing, `pap.default`), node defaults — and
//! random objects (TLP or none, PAP or none, labels, granular TLP/PAP markings on
//! `description`/`name`, source none / a partner / an unregistered organisation). Every
//! object is decided for every recipient (our organisation, each partner, an outsider),
//! every purpose and three instants around `now`, and the crate's verdict must equal the
//! oracle's.
//!
//! The oracle is written from the rules in the crate documentation (lib.rs) alone, as
//! naively as possible: plain loops over the list of agreements of the world as generated
//! here. It never looks at the crate's `Agreement`s: the agreements reach the crate only
//! as TOML text, through `parse_document` and `AgreementDoc::check`.
//!
//! The world generator and the oracle are in `model/mod.rs`, shared with the server's
//! end-to-end test (`crates/server/tests/policy_http.rs`).

mod model;

use model::*;
use phalanx_policy::{Facts, Level, Purpose, Reason, Recipient, Subject, Verdict};
use phalanx_stix::Timestamp;
use phalanx_stix::markings::{Pap, Tlp};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------
// The property.
// ---------------------------------------------------------------------------------------

/// How often the interesting outcomes came up (so the property is known not to be vacuous).
#[derive(Debug, Default)]
struct Stats {
    decisions: usize,
    allow: usize,
    redact: usize,
    deny: usize,
    /// A non-CLEAR object received from one partner allowed to another.
    onward_allowed: usize,
    /// The same, denied although the recipient is covered itself.
    onward_denied: usize,
    /// A partner allowed AMBER or above.
    partner_covered: usize,
    /// Export for blocking of an unmarked-PAP object from a source, allowed.
    pap_from_agreement: usize,
}

/// Checks every decision in the world.
fn check_world(w: &World, stats: &mut Stats) -> Result<(), TestCaseError> {
    let (partners, agrs, objects) = resolve(w);
    let policy = build_policy(w, &partners, &agrs);
    let mut recipients = vec![(To::Local, Recipient::Local)];
    for p in &partners {
        recipients.push((To::Partner(p), Recipient::Partner(p)));
    }
    recipients.push((To::Outsider, Recipient::Outsider(OUTSIDER)));
    let base = base();
    let nows = [base - 1, base, base + HOUR];
    for o in &objects {
        let subject = Subject {
            object_type: o.ty,
            collection: o.coll,
            facts: &o.facts,
        };
        for &(to, recipient) in &recipients {
            for purpose in PURPOSES {
                for (k, &now) in nows.iter().enumerate() {
                    let d = policy.decide(recipient, subject, purpose, now);
                    let got = match &d.verdict {
                        Verdict::Allow => Out::Allow,
                        Verdict::Redact(sel) => {
                            let set: BTreeSet<String> = sel.iter().cloned().collect();
                            prop_assert_eq!(set.len(), sel.len(), "duplicate selectors {:?}", sel);
                            Out::Redact(set)
                        }
                        Verdict::Deny => Out::Deny,
                    };
                    let want = oracle(w, &agrs, o, to, purpose, now);
                    let tlp = o.facts.tlp.unwrap_or(w.default_tlp);
                    let foreign = matches!(&o.facts.source, Some(s) if to != To::Partner(s));
                    match (&want, to) {
                        (Out::Deny, _) => stats.deny += 1,
                        (Out::Redact(_), _) => stats.redact += 1,
                        (Out::Allow, _) => stats.allow += 1,
                    }
                    if let To::Partner(_) = to
                        && foreign
                        && tlp > Tlp::Clear
                    {
                        if want == Out::Deny {
                            if may_see(
                                &agrs,
                                &Obj {
                                    facts: Facts {
                                        source: None,
                                        ..o.facts.clone()
                                    },
                                    ..o.clone()
                                },
                                to,
                                tlp,
                                purpose,
                                now,
                            ) {
                                stats.onward_denied += 1;
                            }
                        } else {
                            stats.onward_allowed += 1;
                        }
                    }
                    if let To::Partner(_) = to
                        && tlp >= Tlp::Amber
                        && want != Out::Deny
                    {
                        stats.partner_covered += 1;
                    }
                    if purpose == Purpose::ExportForBlocking
                        && o.facts.pap.is_none()
                        && o.facts.source.is_some()
                        && w.default_pap > Pap::Green
                        && want != Out::Deny
                    {
                        stats.pap_from_agreement += 1;
                    }
                    prop_assert_eq!(
                        &got,
                        &want,
                        "recipient {:?}, purpose {:?}, now {} (base{:+}µs), object {:?}\nreason: {}\nagreements:\n{}",
                        recipient,
                        purpose,
                        Timestamp::from_micros(now),
                        now - base,
                        o,
                        d.reason,
                        agrs.iter()
                            .enumerate()
                            .map(|(i, a)| toml(a, i))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                    // The reason fits the verdict: a passing rule for what goes, a failing
                    // one for a denial.
                    let passing = matches!(
                        d.reason,
                        Reason::OwnOrganisation
                            | Reason::SentByRecipient
                            | Reason::Clear
                            | Reason::Community(_)
                            | Reason::Covered(_)
                    );
                    prop_assert_eq!(
                        passing,
                        d.allows(),
                        "reason {:?} for {:?}",
                        d.reason,
                        d.verdict
                    );
                    if k == 1 {
                        let (e, steps) = policy.explain(recipient, subject, purpose, now);
                        prop_assert_eq!(&e, &d);
                        prop_assert!(steps.last().is_some_and(|l| l.starts_with("decision:")));
                    }
                    stats.decisions += 1;
                }
            }
        }
    }
    Ok(())
}

const CASES: u32 = 2000;

#[test]
fn decide_matches_the_oracle() {
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oracle.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let stats = std::cell::RefCell::new(Stats::default());
    let result = runner.run(&world(), |w| check_world(&w, &mut stats.borrow_mut()));
    if let Err(e) = result {
        panic!("{e}");
    }
    let s = stats.into_inner();
    eprintln!("{CASES} worlds: {s:?}");
    assert!(s.decisions > 100 * CASES as usize, "{s:?}");
    // Every kind of outcome is reached often.
    for (what, n) in [
        ("allow", s.allow),
        ("redact", s.redact),
        ("deny", s.deny),
        ("onward allowed", s.onward_allowed),
        ("onward denied", s.onward_denied),
        ("partner covered", s.partner_covered),
        ("PAP from an agreement", s.pap_from_agreement),
    ] {
        assert!(n > 100, "{what}: {s:?}");
    }
}

/// The oracle on a hand-made world, so that it is not only compared with the crate.
#[test]
fn oracle_sanity() {
    // A hand-made world: one partner with an AMBER agreement in force, an AMBER object.
    let w = World {
        n: 2,
        default_tlp: Tlp::Amber,
        default_pap: Pap::Amber,
        agreements: vec![GenAgreement {
            party_mask: 0b01,
            own_listed: true,
            status: Status::Active,
            from_h: -1,
            len_h: Some(24),
            coll_mask: 0,
            type_mask: 0,
            label_mask: 0,
            max_tlp: Tlp::Amber,
            onward: GenOnward::Named(0b10),
            pap_default: Some(Pap::Green),
        }],
        objects: vec![GenObject {
            ty: 0,
            coll: 0,
            label_mask: 0,
            tlp: Some(Tlp::Amber),
            pap: None,
            granular: vec![(0, Level::Tlp(Tlp::Red))],
            source: Some(0),
        }],
    };
    let (partners, agrs, objects) = resolve(&w);
    let now = base();
    let o = &objects[0];
    // From org-0 to org-1: org-1 has no agreement, so rule 4 fails.
    assert_eq!(
        oracle(&w, &agrs, o, To::Partner("org-1"), Purpose::Read, now),
        Out::Deny
    );
    // Back to org-0: unchanged.
    assert_eq!(
        oracle(&w, &agrs, o, To::Partner("org-0"), Purpose::Read, now),
        Out::Allow
    );
    // Our organisation: everything; blocking allowed by the agreement's pap.default.
    assert_eq!(
        oracle(&w, &agrs, o, To::Local, Purpose::ExportForBlocking, now),
        Out::Allow
    );
    assert_eq!(
        oracle(&w, &agrs, o, To::Outsider, Purpose::Read, now),
        Out::Deny
    );
    let policy = build_policy(&w, &partners, &agrs);
    assert_eq!(policy.agreements()[0].parties, vec!["org-0"]);
    let mut stats = Stats::default();
    check_world(&w, &mut stats).unwrap();
    assert_eq!(stats.decisions, 4 * 4 * 3);
}
