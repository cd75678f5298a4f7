//! The sharing decision: one total function from (object facts, recipient, purpose, time)
//! to allow / allow with redaction / deny, with the reason.

use crate::agreement::{Agreement, Onward};
use crate::facts::{Facts, Level};
use crate::partner::Partner;
use phalanx_stix::markings::{Pap, Tlp};
use std::collections::HashMap;
use std::fmt;

/// Who would receive the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// A user or token of this node's own organisation.
    Local,
    /// A registered partner (by id).
    Partner(&'a str),
    /// An organisation that is neither this node's nor a registered partner.
    Outsider(&'a str),
}

/// Why the object would leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Read by the recipient (TAXII GET, export to a file).
    Read,
    /// Delivered to a peer node by federation.
    Federate,
    /// Passed on by a recipient to a third party.
    OnwardShare,
    /// Exported to active blocking (firewall, DNS RPZ, IPS drop rules).
    ExportForBlocking,
}

impl Purpose {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Read => "read",
            Purpose::Federate => "federate",
            Purpose::OnwardShare => "onward-share",
            Purpose::ExportForBlocking => "export-for-blocking",
        }
    }

    /// Parses [`Purpose::as_str`].
    pub fn parse(s: &str) -> Option<Purpose> {
        [
            Purpose::Read,
            Purpose::Federate,
            Purpose::OnwardShare,
            Purpose::ExportForBlocking,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// The object version being decided on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// STIX type.
    pub object_type: &'a str,
    /// Collection id.
    pub collection: &'a str,
    /// Markings, labels and source.
    pub facts: &'a Facts,
}

/// What happens to the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It goes as it is.
    Allow,
    /// It goes without the properties at these granular-marking selectors.
    Redact(Vec<String>),
    /// It does not go.
    Deny,
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason<'a> {
    /// The recipient is this node's own organisation.
    OwnOrganisation,
    /// The recipient is the partner the object came from.
    SentByRecipient,
    /// TLP:CLEAR: no limit on disclosure.
    Clear,
    /// TLP:GREEN and the recipient is in the community (this agreement is in force).
    Community(&'a Agreement),
    /// An agreement in force with the recipient covers the object at its TLP.
    Covered(&'a Agreement),
    /// The recipient is not a partner: only TLP:CLEAR goes to it.
    Outsider,
    /// TLP:GREEN needs an agreement in force with the recipient; there is none.
    NotInCommunity,
    /// No agreement in force with the recipient covers the object at this TLP.
    NoCoveringAgreement(Tlp),
    /// TLP:RED is read on this node by named recipients only; it never leaves by federation.
    RedStaysHere,
    /// The object was received at this TLP (AMBER+STRICT or RED), which forbids passing it on.
    NoOnward(Tlp),
    /// The object was received from this partner, and no agreement in force with it allows
    /// passing it on to the recipient.
    OnwardNotAllowed(&'a str),
    /// Active blocking needs PAP:CLEAR or PAP:GREEN.
    PapForbidsBlocking(Pap),
    /// It reports on this partner's data (a sighting of its indicator): it goes to that
    /// partner only.
    ReportsOn(&'a str),
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::OwnOrganisation => write!(f, "the recipient is this node's own organisation"),
            Reason::SentByRecipient => write!(f, "the recipient is the partner it came from"),
            Reason::Clear => write!(f, "TLP:CLEAR: disclosure is not limited"),
            Reason::Community(a) => write!(
                f,
                "TLP:GREEN: the recipient is in the community (agreement {} in force)",
                a.name()
            ),
            Reason::Covered(a) => write!(f, "agreement {} covers it", a.name()),
            Reason::Outsider => write!(
                f,
                "the recipient is not a registered partner: only TLP:CLEAR goes to it"
            ),
            Reason::NotInCommunity => write!(
                f,
                "TLP:GREEN goes to the community only, and the recipient has no agreement in force"
            ),
            Reason::NoCoveringAgreement(t) => write!(
                f,
                "no agreement in force with the recipient covers it at {}",
                t.label()
            ),
            Reason::RedStaysHere => write!(
                f,
                "TLP:RED never leaves the node by federation or onward sharing"
            ),
            Reason::NoOnward(t) => write!(
                f,
                "it was received as {}, which may not be passed on",
                t.label()
            ),
            Reason::OnwardNotAllowed(s) => write!(
                f,
                "it came from partner {s}, and no agreement in force with {s} allows passing it on to the recipient"
            ),
            Reason::PapForbidsBlocking(p) => write!(
                f,
                "{}: active blocking needs PAP:CLEAR or PAP:GREEN",
                p.label()
            ),
            Reason::ReportsOn(p) => write!(
                f,
                "it reports on partner {p}'s data (a sighting of its indicator): it goes to {p} only"
            ),
        }
    }
}

/// A decision with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// What happens.
    pub verdict: Verdict,
    /// The rule that decided (for a denial, the rule that failed).
    pub reason: Reason<'a>,
}

impl Decision<'_> {
    /// Whether anything of the object goes.
    pub fn allows(&self) -> bool {
        !matches!(self.verdict, Verdict::Deny)
    }
}

/// Node-wide policy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// TLP of objects without a TLP marking (default AMBER: fail closed).
    pub tlp: Tlp,
    /// PAP of objects without a PAP marking (default AMBER: no active use).
    pub pap: Pap,
    /// What happens to unsigned data from a partner with a registered signing key
    /// (default: refused).
    pub unsigned: Unsigned,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            tlp: Tlp::Amber,
            pap: Pap::Amber,
            unsigned: Unsigned::Reject,
        }
    }
}

/// The rule for object versions received, without a valid attestation, from a partner
/// that signs (has a registered key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// Refuse them (the default): a partner configured to sign sends only what a known
    /// producer signed.
    Reject,
    /// Store them (marked unsigned: `policy explain` says so).
    Accept,
}

/// Everything the decision depends on besides the object: the node's organisation and
/// defaults, its partners and the latest version of each agreement.
#[derive(Debug, Clone)]
pub struct Policy {
    own_org: String,
    defaults: Defaults,
    partners: HashMap<String, Partner>,
    by_fingerprint: HashMap<String, String>,
    agreements: Vec<Agreement>,
    /// Partner id → indexes into `agreements` it is a party to.
    by_partner: HashMap<String, Vec<usize>>,
}

/// A sink for the rule chain of [`Policy::explain`]; the plain decision uses [`NoTrace`]
/// and builds no text.
trait Trace {
    const ON: bool;
    fn step(&mut self, s: String);
}

struct NoTrace;
impl Trace for NoTrace {
    const ON: bool = false;
    fn step(&mut self, _: String) {}
}

impl Trace for Vec<String> {
    const ON: bool = true;
    fn step(&mut self, s: String) {
        self.push(s);
    }
}

impl Policy {
    /// A policy over these partners (removed ones are ignored) and agreements (the latest
    /// version of each).
    pub fn new(
        own_org: &str,
        defaults: Defaults,
        partners: Vec<Partner>,
        agreements: Vec<Agreement>,
    ) -> Policy {
        let partners: HashMap<String, Partner> = partners
            .into_iter()
            .filter(|p| !p.removed && p.id != own_org)
            .map(|p| (p.id.clone(), p))
            .collect();
        let by_fingerprint = partners
            .values()
            .flat_map(|p| {
                p.cert_fingerprints
                    .iter()
                    .map(|f| (f.clone(), p.id.clone()))
            })
            .collect();
        let mut by_partner: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in agreements.iter().enumerate() {
            for p in &a.parties {
                by_partner.entry(p.clone()).or_default().push(i);
            }
        }
        Policy {
            own_org: own_org.to_owned(),
            defaults,
            partners,
            by_fingerprint,
            agreements,
            by_partner,
        }
    }

    /// The node's own organisation id.
    pub fn own_org(&self) -> &str {
        &self.own_org
    }

    /// The defaults for unmarked objects.
    pub fn defaults(&self) -> Defaults {
        self.defaults
    }

    /// A partner by id (not removed).
    pub fn partner(&self, id: &str) -> Option<&Partner> {
        self.partners.get(id)
    }

    /// The partner owning a client-certificate fingerprint (normalised hex).
    pub fn partner_by_fingerprint(&self, fingerprint: &str) -> Option<&Partner> {
        self.partners.get(self.by_fingerprint.get(fingerprint)?)
    }

    /// The partner whose STIX identity id this is (the producer named by
    /// `created_by_ref`).
    pub fn partner_by_identity(&self, identity: &str) -> Option<&Partner> {
        self.partners.values().find(|p| p.identity == identity)
    }

    /// Whether object versions received from `source` must carry a valid attestation:
    /// the partner has a registered signing key and the node refuses unsigned data.
    pub fn requires_signature(&self, source: &str) -> bool {
        self.defaults.unsigned == Unsigned::Reject
            && self
                .partner(source)
                .is_some_and(|p| p.signing_key.is_some())
    }

    /// The agreements (latest versions).
    pub fn agreements(&self) -> &[Agreement] {
        &self.agreements
    }

    /// What an organisation id is to this node.
    pub fn recipient<'a>(&self, org: &'a str) -> Recipient<'a> {
        if org == self.own_org {
            Recipient::Local
        } else if self.partners.contains_key(org) {
            Recipient::Partner(org)
        } else {
            Recipient::Outsider(org)
        }
    }

    /// **The decision.** Total: every input gets a verdict and a reason.
    pub fn decide<'a>(
        &'a self,
        to: Recipient<'a>,
        s: Subject<'a>,
        purpose: Purpose,
        now_us: i64,
    ) -> Decision<'a> {
        self.eval(to, s, purpose, now_us, &mut NoTrace)
    }

    /// The decision and the rule chain that produced it, one step per line.
    pub fn explain<'a>(
        &'a self,
        to: Recipient<'a>,
        s: Subject<'a>,
        purpose: Purpose,
        now_us: i64,
    ) -> (Decision<'a>, Vec<String>) {
        let mut steps = Vec::new();
        let d = self.eval(to, s, purpose, now_us, &mut steps);
        steps.push(format!(
            "decision: {} — {}",
            match &d.verdict {
                Verdict::Allow => "allow".to_owned(),
                Verdict::Redact(sel) => format!("allow with redaction of {}", sel.join(", ")),
                Verdict::Deny => "deny".to_owned(),
            },
            d.reason
        ));
        (d, steps)
    }

    fn eval<'a, T: Trace>(
        &'a self,
        to: Recipient<'a>,
        s: Subject<'a>,
        purpose: Purpose,
        now: i64,
        tr: &mut T,
    ) -> Decision<'a> {
        let deny = |reason| Decision {
            verdict: Verdict::Deny,
            reason,
        };
        let tlp = s.facts.tlp.unwrap_or(self.defaults.tlp);
        if T::ON {
            tr.step(format!(
                "recipient: {}; purpose: {}",
                match to {
                    Recipient::Local => format!("this node's organisation ({})", self.own_org),
                    Recipient::Partner(p) => format!("partner {p}"),
                    Recipient::Outsider(o) => format!("{o} (not a registered partner)"),
                },
                purpose.as_str()
            ));
            tr.step(match s.facts.tlp {
                Some(t) => format!(
                    "object: {} in collection {}, marked {}",
                    s.object_type,
                    s.collection,
                    t.label()
                ),
                None => format!(
                    "object: {} in collection {}, no TLP marking: the node default {} applies",
                    s.object_type,
                    s.collection,
                    tlp.label()
                ),
            });
            if let Some(src) = &s.facts.source {
                tr.step(format!("provenance: received from partner {src}"));
            }
        }
        if let Some(about) = s.facts.about.as_deref()
            && to != Recipient::Local
            && to != Recipient::Partner(about)
        {
            if T::ON {
                tr.step(format!("it reports on partner {about}'s data"));
            }
            return deny(Reason::ReportsOn(about));
        }
        let sent_by_recipient =
            matches!(to, Recipient::Partner(p) if s.facts.source.as_deref() == Some(p));
        let reason = if sent_by_recipient {
            Reason::SentByRecipient
        } else {
            match self.level(to, s, tlp, purpose, now, tr) {
                Ok(r) => r,
                Err(r) => return deny(r),
            }
        };
        if T::ON {
            tr.step(format!("{}: pass — {reason}", tlp.label()));
        }
        if purpose == Purpose::ExportForBlocking {
            let pap = self.effective_pap(s, now);
            if pap > Pap::Green {
                if T::ON {
                    tr.step(format!(
                        "{}: fail — active blocking needs PAP:CLEAR or PAP:GREEN",
                        pap.label()
                    ));
                }
                return deny(Reason::PapForbidsBlocking(pap));
            }
            if T::ON {
                tr.step(format!("{}: pass — active blocking allowed", pap.label()));
            }
        }
        let mut redact = Vec::new();
        for g in &s.facts.granular {
            let hidden = match g.level {
                Level::Tlp(t) if t > tlp && !sent_by_recipient => {
                    let r = self.level(to, s, t, purpose, now, tr);
                    if T::ON {
                        tr.step(format!(
                            "granular {} on {}: {}",
                            t.label(),
                            g.selector,
                            match &r {
                                Ok(_) => "visible".to_owned(),
                                Err(e) => format!("redacted — {e}"),
                            }
                        ));
                    }
                    r.is_err()
                }
                Level::Pap(p) if purpose == Purpose::ExportForBlocking && p > Pap::Green => {
                    if T::ON {
                        tr.step(format!(
                            "granular {} on {}: redacted — active blocking needs PAP:CLEAR or PAP:GREEN",
                            p.label(),
                            g.selector
                        ));
                    }
                    true
                }
                _ => false,
            };
            if hidden && !redact.contains(&g.selector) {
                redact.push(g.selector.clone());
            }
        }
        Decision {
            verdict: if redact.is_empty() {
                Verdict::Allow
            } else {
                Verdict::Redact(redact)
            },
            reason,
        }
    }

    /// Whether content marked `tlp` may go to the recipient.
    fn level<'a, T: Trace>(
        &'a self,
        to: Recipient<'a>,
        s: Subject<'a>,
        tlp: Tlp,
        purpose: Purpose,
        now: i64,
        tr: &mut T,
    ) -> Result<Reason<'a>, Reason<'a>> {
        let p = match to {
            Recipient::Local => return Ok(Reason::OwnOrganisation),
            Recipient::Outsider(_) if tlp == Tlp::Clear => return Ok(Reason::Clear),
            Recipient::Outsider(_) => return Err(Reason::Outsider),
            Recipient::Partner(p) => p,
        };
        if tlp == Tlp::Clear {
            return Ok(Reason::Clear);
        }
        if tlp == Tlp::Red && purpose != Purpose::Read {
            return Err(Reason::RedStaysHere);
        }
        let own = if tlp == Tlp::Green {
            self.community(p, now, tr).ok_or(Reason::NotInCommunity)?
        } else {
            self.covering(p, s, tlp, now, tr)
                .map(Reason::Covered)
                .ok_or(Reason::NoCoveringAgreement(tlp))?
        };
        if let Some(src) = s.facts.source.as_deref() {
            if tlp >= Tlp::AmberStrict {
                return Err(Reason::NoOnward(tlp));
            }
            if !self.onward(src, p, s, tlp, now, tr) {
                return Err(Reason::OnwardNotAllowed(src));
            }
        }
        Ok(own)
    }

    /// An agreement in force with `p` (any scope): membership of the community.
    fn community<'a, T: Trace>(&'a self, p: &str, now: i64, tr: &mut T) -> Option<Reason<'a>> {
        let found = self
            .agreements_of(p)
            .find(|a| a.in_force(now))
            .map(Reason::Community);
        if T::ON && found.is_none() {
            for a in self.agreements_of(p) {
                tr.step(format!(
                    "agreement {}: {}",
                    a.name(),
                    a.not_in_force(now).unwrap_or_default()
                ));
            }
            tr.step(format!("no agreement with {p} is in force"));
        }
        found
    }

    fn agreements_of<'a>(&'a self, p: &str) -> impl Iterator<Item = &'a Agreement> + 'a {
        self.by_partner
            .get(p)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|&i| &self.agreements[i])
    }

    /// Why agreement `a` does not carry the object at `tlp`, if it does.
    fn misses(a: &Agreement, s: Subject<'_>, tlp: Tlp, now: i64) -> Option<String> {
        if let Some(why) = a.not_in_force(now) {
            return Some(why);
        }
        if let Some(why) = a.scope_excludes(s.collection, s.object_type, &s.facts.labels) {
            return Some(why);
        }
        if a.max_tlp < tlp {
            return Some(format!("allows up to {} only", a.max_tlp.label()));
        }
        None
    }

    fn carries(a: &Agreement, s: Subject<'_>, tlp: Tlp, now: i64) -> bool {
        a.in_force(now)
            && a.max_tlp >= tlp
            && a.scope_excludes(s.collection, s.object_type, &s.facts.labels)
                .is_none()
    }

    /// An agreement in force with `p` that covers the object at `tlp`.
    fn covering<'a, T: Trace>(
        &'a self,
        p: &str,
        s: Subject<'_>,
        tlp: Tlp,
        now: i64,
        tr: &mut T,
    ) -> Option<&'a Agreement> {
        let found = self
            .agreements_of(p)
            .find(|a| Self::carries(a, s, tlp, now));
        if T::ON && found.is_none() {
            for a in self.agreements_of(p) {
                tr.step(format!(
                    "agreement {} with {p}: {}",
                    a.name(),
                    Self::misses(a, s, tlp, now).unwrap_or_default()
                ));
            }
            if self.agreements_of(p).next().is_none() {
                tr.step(format!("{p} is party to no agreement"));
            }
        }
        found
    }

    /// Whether an agreement in force with the source covers the object at `tlp` and lets
    /// it go on to `p`.
    fn onward<T: Trace>(
        &self,
        src: &str,
        p: &str,
        s: Subject<'_>,
        tlp: Tlp,
        now: i64,
        tr: &mut T,
    ) -> bool {
        let allows = |a: &Agreement| match &a.onward {
            Onward::Nobody => false,
            Onward::Parties => a.has_party(p),
            Onward::Named(list) => list.iter().any(|n| n == p),
            Onward::Community => self.agreements_of(p).any(|b| b.in_force(now)),
        };
        let found = self
            .agreements_of(src)
            .find(|a| Self::carries(a, s, tlp, now) && allows(a));
        if T::ON {
            match found {
                Some(a) => tr.step(format!(
                    "onward: agreement {} with {src} allows passing it on to {p}",
                    a.name()
                )),
                None => {
                    for a in self.agreements_of(src) {
                        let why = Self::misses(a, s, tlp, now).unwrap_or_else(|| {
                            format!(
                                "onward sharing is {:?}, which does not include {p}",
                                a.onward
                            )
                        });
                        tr.step(format!("onward: agreement {} with {src}: {why}", a.name()));
                    }
                    if self.agreements_of(src).next().is_none() {
                        tr.step(format!("onward: {src} is party to no agreement"));
                    }
                }
            }
        }
        found.is_some()
    }

    /// The PAP in force: the object's marking, else the most restrictive default of the
    /// agreements in force with its source that cover it, else the node default.
    fn effective_pap(&self, s: Subject<'_>, now: i64) -> Pap {
        if let Some(p) = s.facts.pap {
            return p;
        }
        let tlp = s.facts.tlp.unwrap_or(self.defaults.tlp);
        s.facts
            .source
            .as_deref()
            .and_then(|src| {
                self.agreements_of(src)
                    .filter(|a| Self::carries(a, s, tlp, now))
                    .filter_map(|a| a.default_pap)
                    .max()
            })
            .unwrap_or(self.defaults.pap)
    }
}
