//! # phalanx-policy
//!
//! Partners, sharing agreements, and **the sharing decision**: one total function
//! ([`Policy::decide`]) that says, for an object version (its markings, granular markings,
//! labels, type, collection and the partner it came from), a recipient and a purpose, at
//! a given time, whether the object may go — as it is, with some properties redacted, or
//! not at all — and why. No IO, no async: time is passed in.
//!
//! ## The rules
//!
//! The object's TLP is the most restrictive TLP among its `object_marking_refs` (TLP 1.0
//! and 2.0 alike; TLP 1.0 WHITE is TLP 2.0 CLEAR, TLP 1.0 has no AMBER+STRICT). An object
//! without one gets the node's default, AMBER unless configured (fail closed). The
//! standard TLP/PAP marking definitions themselves are public (CLEAR).
//!
//! An agreement is **in force** at time *t* when its status is `active` and
//! `valid_from ≤ t < valid_until`. It **carries** an object at a TLP when it is in force,
//! its scope covers the object (collection, type, label — empty lists cover all) and its
//! `max_tlp` is at least that TLP.
//!
//! 1. **Own organisation** (users and tokens of the node's own organisation): every object
//!    (the node's users are its organisation's recipients).
//! 2. **The partner an object came from** gets it back unchanged.
//! 3. **Outsiders** (an organisation that is neither ours nor a registered partner): TLP:CLEAR
//!    only.
//! 4. **Partners**, by TLP:
//!    - CLEAR: always.
//!    - GREEN: the partner has at least one agreement in force (the community).
//!    - AMBER, AMBER+STRICT: an agreement with the partner carries the object.
//!    - RED: as AMBER with `max_tlp = "RED"` (the agreement names the recipients), for
//!      purpose `read` only — RED never leaves by federation or onward sharing.
//! 5. **Onward sharing**: an object received from partner S goes to partner P ≠ S only if
//!    (besides rule 4) it is not AMBER+STRICT or RED (those may not be passed on) and an
//!    agreement with S in force carries it and lets it go to P (`onward`: `nobody`,
//!    `parties` of that agreement, a named list, or the `community`). TLP:CLEAR has no
//!    limit.
//! 6. **PAP** governs use, not reading: purpose `export-for-blocking` needs PAP:CLEAR or
//!    PAP:GREEN. The PAP of an object without a PAP marking is the most restrictive
//!    `pap.default` of the agreements in force with its source that carry it, else the
//!    node default (AMBER).
//! 7. **Granular markings** more restrictive than the object's are decided the same way
//!    per selector: content the recipient may not see is redacted ([`redact()`]); if that
//!    removes a required property, the whole object is denied.
//! 8. An agreement that is suspended, terminated or past `valid_until` allows nothing from
//!    that instant — no restart, no cache to expire.

pub mod agreement;
mod decide;
pub mod facts;
pub mod partner;
pub mod provenance;
mod redact;

pub use agreement::{Agreement, AgreementDoc, AgreementError, AgreementStatus, Onward};
pub use decide::{
    Decision, Defaults, Policy, Purpose, Reason, Recipient, Subject, Unsigned, Verdict,
};
pub use facts::{Facts, Granular, Level};
pub use partner::{Partner, Sector};
pub use redact::redact;
