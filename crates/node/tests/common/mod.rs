//! What the node's integration tests share.

use phalanx_policy::{Partner, Sector};

/// A government partner `id` with STIX identity `identity` and, if given, a public
/// signing key (hex).
pub fn partner(id: &str, identity: &str, signing_key: Option<String>) -> Partner {
    Partner {
        id: id.into(),
        name: id.into(),
        sector: Sector::Government,
        country: None,
        contact: None,
        identity: identity.into(),
        signing_key,
        endpoints: vec![],
        cert_fingerprints: vec![],
        removed: false,
    }
}
