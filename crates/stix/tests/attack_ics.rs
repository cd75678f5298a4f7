//! The real ATT&CK for ICS bundle splits, parses and validates with zero errors.

use phalanx_stix::stream::{Item, SplitLimits, split_all};
use phalanx_stix::{StixObject, check};
use std::path::PathBuf;

fn shared_data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

#[test]
fn ics_attack_bundle_validates_without_errors() {
    let bytes = std::fs::read(shared_data("stix/ics-attack.json")).expect("shared ATT&CK data");
    let items = split_all(&bytes, SplitLimits::default());
    assert_eq!(items.len(), 1826);
    let mut errors = Vec::new();
    let mut warnings = 0;
    for item in items {
        let Item::Object { bytes, .. } = item else {
            panic!("{item:?}")
        };
        let o = StixObject::parse_owned(bytes, 64).unwrap();
        let r = check(&o);
        errors.extend(r.errors.iter().map(ToString::to_string));
        warnings += r.warnings.len();
    }
    assert!(
        errors.is_empty(),
        "{} errors, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(20)]
    );
    // ATT&CK relies on x_mitre_* custom properties and x-mitre-* custom types.
    assert!(warnings > 1826, "{warnings}");
}
