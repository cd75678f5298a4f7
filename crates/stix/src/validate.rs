//! STIX 2.1 validation: errors (the object is not conformant and is refused) and warnings
//! (deprecated or custom content, accepted). Every finding names the object id, a JSON
//! path (`$.external_references[2].url`) and a stable code.

use crate::id::{ObjectClass, SCO_TYPES, deterministic_sco_id, is_type_name, parse_id};
use crate::markings::{MarkingKind, PAP_EXTENSION, TLP2_EXTENSION, standard_marking};
use crate::object::StixObject;
use crate::time::Timestamp;
use serde_json::{Map, Value};
use std::fmt;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Accepted, but deprecated, custom or questionable.
    Warning,
    /// Not conformant; the object is refused.
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// The object's id (as written, even when malformed).
    pub object_id: String,
    /// Where in the object: `$`, `$.name`, `$.granular_markings[0].selectors[1]`, ...
    pub path: String,
    /// A stable machine-readable code, e.g. `required`, `custom-property`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]: {} {}: {}",
            self.code, self.object_id, self.path, self.message
        )
    }
}

/// All findings on one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Errors: the object is refused when there is any.
    pub errors: Vec<Issue>,
    /// Warnings.
    pub warnings: Vec<Issue>,
}

impl Report {
    /// No errors.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A STIX object that passed validation. Only [`validate`] makes one, so holding one
/// proves the object is conformant.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidObject(StixObject);

impl ValidObject {
    /// The object.
    pub fn object(&self) -> &StixObject {
        &self.0
    }
    /// Gives the object back.
    pub fn into_inner(self) -> StixObject {
        self.0
    }
}

impl std::ops::Deref for ValidObject {
    type Target = StixObject;
    fn deref(&self) -> &StixObject {
        &self.0
    }
}

/// Validates an object: `Ok` with its warnings, or `Err` with the object and every finding.
#[allow(clippy::result_large_err)]
pub fn validate(object: StixObject) -> Result<(ValidObject, Vec<Issue>), (StixObject, Report)> {
    let report = check(&object);
    if report.is_valid() {
        Ok((ValidObject(object), report.warnings))
    } else {
        Err((object, report))
    }
}

/// All findings on an object without consuming it.
pub fn check(object: &StixObject) -> Report {
    let mut c = Checker {
        id: object.id().to_owned(),
        report: Report::default(),
    };
    c.object(object);
    c.report
}

// ---------------------------------------------------------------------------------------
// Property tables (STIX 2.1 OS, §4–§7).

const SDO_COMMON: &[&str] = &[
    "type",
    "spec_version",
    "id",
    "created_by_ref",
    "created",
    "modified",
    "revoked",
    "labels",
    "confidence",
    "lang",
    "external_references",
    "object_marking_refs",
    "granular_markings",
    "extensions",
];
const SCO_COMMON: &[&str] = &[
    "type",
    "spec_version",
    "id",
    "object_marking_refs",
    "granular_markings",
    "defanged",
    "extensions",
];
const MARKING_PROPS: &[&str] = &[
    "type",
    "spec_version",
    "id",
    "created_by_ref",
    "created",
    "external_references",
    "object_marking_refs",
    "granular_markings",
    "extensions",
    "name",
    "definition_type",
    "definition",
];

/// (type, required, specific properties).
type TypeSpec = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

#[rustfmt::skip]
const TYPES: &[TypeSpec] = &[
    ("attack-pattern", &["name"], &["name", "description", "aliases", "kill_chain_phases"]),
    ("campaign", &["name"], &["name", "description", "aliases", "first_seen", "last_seen", "objective"]),
    ("course-of-action", &["name"], &["name", "description", "action"]),
    ("grouping", &["context", "object_refs"], &["name", "description", "context", "object_refs"]),
    ("identity", &["name"], &["name", "description", "roles", "identity_class", "sectors", "contact_information"]),
    ("incident", &["name"], &["name", "description", "kill_chain_phases"]),
    ("indicator", &["pattern", "pattern_type", "valid_from"], &["name", "description", "indicator_types", "pattern", "pattern_type", "pattern_version", "valid_from", "valid_until", "kill_chain_phases"]),
    ("infrastructure", &["name"], &["name", "description", "infrastructure_types", "aliases", "kill_chain_phases", "first_seen", "last_seen"]),
    ("intrusion-set", &["name"], &["name", "description", "aliases", "first_seen", "last_seen", "goals", "resource_level", "primary_motivation", "secondary_motivations"]),
    ("location", &[], &["name", "description", "latitude", "longitude", "precision", "region", "country", "administrative_area", "city", "street_address", "postal_code"]),
    ("malware", &["is_family"], &["name", "description", "malware_types", "is_family", "aliases", "kill_chain_phases", "first_seen", "last_seen", "operating_system_refs", "architecture_execution_envs", "implementation_languages", "capabilities", "sample_refs"]),
    ("malware-analysis", &["product"], &["product", "version", "host_vm_ref", "operating_system_ref", "installed_software_refs", "configuration_version", "modules", "analysis_engine_version", "analysis_definition_version", "submitted", "analysis_started", "analysis_ended", "result_name", "result", "analysis_sco_refs", "sample_ref"]),
    ("note", &["content", "object_refs"], &["abstract", "content", "authors", "object_refs"]),
    ("observed-data", &["first_observed", "last_observed", "number_observed"], &["first_observed", "last_observed", "number_observed", "objects", "object_refs"]),
    ("opinion", &["opinion", "object_refs"], &["explanation", "authors", "opinion", "object_refs"]),
    ("report", &["name", "published", "object_refs"], &["name", "description", "report_types", "published", "object_refs"]),
    ("threat-actor", &["name"], &["name", "description", "threat_actor_types", "aliases", "first_seen", "last_seen", "roles", "goals", "sophistication", "resource_level", "primary_motivation", "secondary_motivations", "personal_motivations"]),
    ("tool", &["name"], &["name", "description", "tool_types", "aliases", "kill_chain_phases", "tool_version"]),
    ("vulnerability", &["name"], &["name", "description"]),
    ("relationship", &["relationship_type", "source_ref", "target_ref"], &["relationship_type", "description", "source_ref", "target_ref", "start_time", "stop_time"]),
    ("sighting", &["sighting_of_ref"], &["description", "first_seen", "last_seen", "count", "sighting_of_ref", "observed_data_refs", "where_sighted_refs", "summary"]),
    ("language-content", &["object_ref", "contents"], &["object_ref", "object_modified", "contents"]),
    ("extension-definition", &["created_by_ref", "name", "schema", "version", "extension_types"], &["name", "description", "schema", "version", "extension_types", "extension_properties"]),
    ("artifact", &[], &["mime_type", "payload_bin", "url", "hashes", "encryption_algorithm", "decryption_key"]),
    ("autonomous-system", &["number"], &["number", "name", "rir"]),
    ("directory", &["path"], &["path", "path_enc", "ctime", "mtime", "atime", "contains_refs"]),
    ("domain-name", &["value"], &["value", "resolves_to_refs"]),
    ("email-addr", &["value"], &["value", "display_name", "belongs_to_ref"]),
    ("email-message", &["is_multipart"], &["is_multipart", "date", "content_type", "from_ref", "sender_ref", "to_refs", "cc_refs", "bcc_refs", "message_id", "subject", "received_lines", "additional_header_fields", "body", "body_multipart", "raw_email_ref"]),
    ("file", &[], &["hashes", "size", "name", "name_enc", "magic_number_hex", "mime_type", "ctime", "mtime", "atime", "parent_directory_ref", "contains_refs", "content_ref"]),
    ("ipv4-addr", &["value"], &["value", "resolves_to_refs", "belongs_to_refs"]),
    ("ipv6-addr", &["value"], &["value", "resolves_to_refs", "belongs_to_refs"]),
    ("mac-addr", &["value"], &["value"]),
    ("mutex", &["name"], &["name"]),
    ("network-traffic", &["protocols"], &["start", "end", "is_active", "src_ref", "dst_ref", "src_port", "dst_port", "protocols", "src_byte_count", "dst_byte_count", "src_packets", "dst_packets", "ipfix", "src_payload_ref", "dst_payload_ref", "encapsulates_refs", "encapsulated_by_ref"]),
    ("process", &[], &["is_hidden", "pid", "created_time", "cwd", "command_line", "environment_variables", "opened_connection_refs", "creator_user_ref", "image_ref", "parent_ref", "child_refs"]),
    ("software", &["name"], &["name", "cpe", "swid", "languages", "vendor", "version"]),
    ("url", &["value"], &["value"]),
    ("user-account", &[], &["user_id", "credential", "account_login", "account_type", "display_name", "is_service_account", "is_privileged", "can_escalate_privs", "is_disabled", "account_created", "account_expires", "credential_last_changed", "account_first_login", "account_last_login"]),
    ("windows-registry-key", &[], &["key", "values", "modified_time", "creator_user_ref", "number_of_subkeys"]),
    ("x509-certificate", &[], &["is_self_signed", "hashes", "version", "serial_number", "signature_algorithm", "issuer", "validity_not_before", "validity_not_after", "subject", "subject_public_key_algorithm", "subject_public_key_modulus", "subject_public_key_exponent", "x509_v3_extensions"]),
];

/// Property names that are timestamps wherever a STIX-defined type uses them. (A `match`
/// rather than a table: it runs for every property of every object.)
fn is_timestamp_prop(name: &str) -> bool {
    matches!(
        name,
        "first_seen"
            | "last_seen"
            | "valid_from"
            | "valid_until"
            | "published"
            | "first_observed"
            | "last_observed"
            | "start_time"
            | "stop_time"
            | "object_modified"
            | "submitted"
            | "analysis_started"
            | "analysis_ended"
            | "ctime"
            | "mtime"
            | "atime"
            | "date"
            | "start"
            | "end"
            | "created_time"
            | "modified_time"
            | "account_created"
            | "account_expires"
            | "credential_last_changed"
            | "account_first_login"
            | "account_last_login"
            | "validity_not_before"
            | "validity_not_after"
    )
}

/// What a reference may point at.
#[derive(Clone, Copy)]
enum Target {
    Types(&'static [&'static str]),
    AnySco,
    /// SDOs (and custom objects), the targets of sighting_of_ref.
    AnySdo,
    /// SDOs, SCOs and custom objects: relationship ends.
    SdoOrSco,
    /// SCOs and SROs: observed-data object_refs.
    ScoOrSro,
    Any,
}

/// Allowed targets of reference properties; `*` applies to every type.
#[rustfmt::skip]
const REFS: &[(&str, &str, Target)] = &[
    ("*", "created_by_ref", Target::Types(&["identity"])),
    ("*", "object_marking_refs", Target::Types(&["marking-definition"])),
    ("malware", "operating_system_refs", Target::Types(&["software"])),
    ("malware", "sample_refs", Target::Types(&["file", "artifact"])),
    ("malware-analysis", "host_vm_ref", Target::Types(&["software"])),
    ("malware-analysis", "operating_system_ref", Target::Types(&["software"])),
    ("malware-analysis", "installed_software_refs", Target::Types(&["software"])),
    ("malware-analysis", "analysis_sco_refs", Target::AnySco),
    ("malware-analysis", "sample_ref", Target::Types(&["file", "artifact", "network-traffic"])),
    ("observed-data", "object_refs", Target::ScoOrSro),
    ("grouping", "object_refs", Target::Any),
    ("note", "object_refs", Target::Any),
    ("opinion", "object_refs", Target::Any),
    ("report", "object_refs", Target::Any),
    ("language-content", "object_ref", Target::Any),
    ("relationship", "source_ref", Target::SdoOrSco),
    ("relationship", "target_ref", Target::SdoOrSco),
    ("sighting", "sighting_of_ref", Target::AnySdo),
    ("sighting", "observed_data_refs", Target::Types(&["observed-data"])),
    ("sighting", "where_sighted_refs", Target::Types(&["identity", "location"])),
    ("directory", "contains_refs", Target::Types(&["file", "directory"])),
    ("domain-name", "resolves_to_refs", Target::Types(&["ipv4-addr", "ipv6-addr", "domain-name"])),
    ("email-addr", "belongs_to_ref", Target::Types(&["user-account"])),
    ("email-message", "from_ref", Target::Types(&["email-addr"])),
    ("email-message", "sender_ref", Target::Types(&["email-addr"])),
    ("email-message", "to_refs", Target::Types(&["email-addr"])),
    ("email-message", "cc_refs", Target::Types(&["email-addr"])),
    ("email-message", "bcc_refs", Target::Types(&["email-addr"])),
    ("email-message", "raw_email_ref", Target::Types(&["artifact"])),
    ("file", "parent_directory_ref", Target::Types(&["directory"])),
    ("file", "contains_refs", Target::AnySco),
    ("file", "content_ref", Target::Types(&["artifact"])),
    ("ipv4-addr", "resolves_to_refs", Target::Types(&["mac-addr"])),
    ("ipv4-addr", "belongs_to_refs", Target::Types(&["autonomous-system"])),
    ("ipv6-addr", "resolves_to_refs", Target::Types(&["mac-addr"])),
    ("ipv6-addr", "belongs_to_refs", Target::Types(&["autonomous-system"])),
    ("network-traffic", "src_ref", Target::Types(&["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"])),
    ("network-traffic", "dst_ref", Target::Types(&["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"])),
    ("network-traffic", "src_payload_ref", Target::Types(&["artifact"])),
    ("network-traffic", "dst_payload_ref", Target::Types(&["artifact"])),
    ("network-traffic", "encapsulates_refs", Target::Types(&["network-traffic"])),
    ("network-traffic", "encapsulated_by_ref", Target::Types(&["network-traffic"])),
    ("process", "opened_connection_refs", Target::Types(&["network-traffic"])),
    ("process", "creator_user_ref", Target::Types(&["user-account"])),
    ("process", "image_ref", Target::Types(&["file"])),
    ("process", "parent_ref", Target::Types(&["process"])),
    ("process", "child_refs", Target::Types(&["process"])),
    ("windows-registry-key", "creator_user_ref", Target::Types(&["user-account"])),
];

/// Predefined SCO extensions (§6), which carry no `extension_type`.
const PREDEFINED_EXTENSIONS: &[(&str, &str)] = &[
    ("file", "ntfs-ext"),
    ("file", "raster-image-ext"),
    ("file", "pdf-ext"),
    ("file", "archive-ext"),
    ("file", "windows-pebinary-ext"),
    ("network-traffic", "http-request-ext"),
    ("network-traffic", "icmp-ext"),
    ("network-traffic", "socket-ext"),
    ("network-traffic", "tcp-ext"),
    ("process", "windows-process-ext"),
    ("process", "windows-service-ext"),
    ("user-account", "unix-account-ext"),
];

const EXTENSION_TYPES: &[&str] = &[
    "new-sdo",
    "new-sco",
    "new-sro",
    "property-extension",
    "toplevel-property-extension",
];

const PATTERN_TYPES: &[&str] = &["stix", "pcre", "sigma", "snort", "suricata", "yara"];
const OPINIONS: &[&str] = &[
    "strongly-disagree",
    "disagree",
    "neutral",
    "agree",
    "strongly-agree",
];

/// Known hash algorithms and their hex lengths (None: not hex, e.g. SSDEEP, TLSH).
const HASHES: &[(&str, Option<usize>)] = &[
    ("MD5", Some(32)),
    ("SHA-1", Some(40)),
    ("SHA-256", Some(64)),
    ("SHA-512", Some(128)),
    ("SHA3-256", Some(64)),
    ("SHA3-512", Some(128)),
    ("SSDEEP", None),
    ("TLSH", Some(70)),
];

// ---------------------------------------------------------------------------------------

struct Checker {
    id: String,
    report: Report,
}

fn path_key(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn path_idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn get_ts(j: &Map<String, Value>, k: &str) -> Option<Timestamp> {
    j.get(k)
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse(s).ok())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Checker {
    fn issue(&mut self, severity: Severity, path: &str, code: &'static str, message: String) {
        let issue = Issue {
            severity,
            object_id: self.id.clone(),
            path: path.to_owned(),
            code,
            message,
        };
        match severity {
            Severity::Error => self.report.errors.push(issue),
            Severity::Warning => self.report.warnings.push(issue),
        }
    }
    fn err(&mut self, path: &str, code: &'static str, message: impl Into<String>) {
        self.issue(Severity::Error, path, code, message.into());
    }
    fn warn(&mut self, path: &str, code: &'static str, message: impl Into<String>) {
        self.issue(Severity::Warning, path, code, message.into());
    }

    fn object(&mut self, o: &StixObject) {
        let j = o.json();
        let ty = o.object_type();
        let class = o.class();
        if !is_type_name(ty) {
            self.err(
                "$.type",
                "type-name",
                format!(
                    "type {ty:?} is not a valid type name ([a-z0-9-], 3-250 characters, no '--')"
                ),
            );
        }
        match parse_id(o.id()) {
            Ok((prefix, _)) if prefix != ty => self.err(
                "$.id",
                "id-type",
                format!("id type part {prefix:?} does not match type {ty:?}"),
            ),
            Ok(_) => {}
            Err(e) => self.err("$.id", "id-syntax", e.to_string()),
        }
        if class == ObjectClass::Bundle {
            self.err(
                "$.type",
                "nested-bundle",
                "a bundle cannot be an object of another bundle or envelope",
            );
            return;
        }
        self.spec_version(o);
        let spec = TYPES.iter().find(|(t, _, _)| *t == ty);
        let (common, required, specific): (&[&str], &[&str], &[&str]) = match (class, spec) {
            (ObjectClass::MarkingDefinition, _) => (MARKING_PROPS, &[], &[]),
            (ObjectClass::Sco, Some((_, r, s))) => (SCO_COMMON, r, s),
            (_, Some((_, r, s))) => (SDO_COMMON, r, s),
            (_, None) => (SDO_COMMON, &[], &[]),
        };
        for &r in required {
            if !j.contains_key(r) {
                self.err(
                    &path_key("$", r),
                    "required",
                    format!("required property {r:?} is missing"),
                );
            }
        }
        self.common(o, class);
        if class == ObjectClass::Custom {
            self.warn(
                "$.type",
                "custom-object",
                format!("custom object type {ty:?}"),
            );
        }
        for (k, v) in j {
            let path = path_key("$", k);
            if !(common.contains(&k.as_str()) || specific.contains(&k.as_str())) {
                self.custom_property(&path, k, class);
            }
            if class != ObjectClass::Custom && is_timestamp_prop(k) {
                self.timestamp(&path, v, false);
            }
            if k.ends_with("_ref") || k.ends_with("_refs") {
                let target = REFS
                    .iter()
                    .find(|(t, p, _)| (*t == ty || *t == "*") && p == k)
                    .map(|(_, _, target)| *target);
                if class == ObjectClass::Custom && !common.contains(&k.as_str()) {
                    // A custom type's own references: reported, but the type's producer
                    // defines them (ATT&CK ships empty x_mitre_data_source_ref values).
                    let before = self.report.errors.len();
                    self.reference(&path, k, v, target);
                    let demoted: Vec<Issue> = self.report.errors.drain(before..).collect();
                    for mut i in demoted {
                        i.severity = Severity::Warning;
                        self.report.warnings.push(i);
                    }
                } else {
                    self.reference(&path, k, v, target);
                }
            }
        }
        self.type_specific(o, ty);
    }

    fn spec_version(&mut self, o: &StixObject) {
        match o.json().get("spec_version") {
            None if o.class() == ObjectClass::Sco => {}
            None => self.err(
                "$.spec_version",
                "required",
                "required property \"spec_version\" is missing (STIX 2.0 content?)",
            ),
            Some(Value::String(v)) if v == "2.1" => {}
            Some(v) => self.err(
                "$.spec_version",
                "spec-version",
                format!("spec_version must be \"2.1\", found {v}"),
            ),
        }
    }

    fn custom_property(&mut self, path: &str, k: &str, class: ObjectClass) {
        let valid_name = (3..=250).contains(&k.len())
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            self.err(
                path,
                "property-name",
                format!("property name {k:?} must be 3-250 characters of [a-z0-9_]"),
            );
        } else if class == ObjectClass::Custom {
            // Properties of custom types are the type's own business.
        } else if k.starts_with("x_") {
            self.warn(
                path,
                "custom-property",
                format!("custom property {k:?} (deprecated: use an extension)"),
            );
        } else {
            self.warn(
                path,
                "unknown-property",
                format!("property {k:?} is not defined for this type"),
            );
        }
    }

    fn common(&mut self, o: &StixObject, class: ObjectClass) {
        let j = o.json();
        let versioned = !matches!(class, ObjectClass::Sco | ObjectClass::MarkingDefinition);
        let needs_created = class != ObjectClass::Sco;
        let custom_without_dates = class == ObjectClass::Custom && !j.contains_key("created");
        if needs_created && !custom_without_dates {
            match j.get("created") {
                None => self.err(
                    "$.created",
                    "required",
                    "required property \"created\" is missing",
                ),
                Some(v) => {
                    self.timestamp("$.created", v, true);
                }
            }
        }
        if versioned && !custom_without_dates {
            match j.get("modified") {
                None => self.err(
                    "$.modified",
                    "required",
                    "required property \"modified\" is missing",
                ),
                Some(v) => {
                    self.timestamp("$.modified", v, true);
                }
            }
            if let (Some(c), Some(m)) = (o.created(), o.modified())
                && m < c
            {
                self.err(
                    "$.modified",
                    "modified-before-created",
                    format!("modified {m} is earlier than created {c}"),
                );
            }
        }
        if let Some(v) = j.get("revoked")
            && !v.is_boolean()
        {
            self.err(
                "$.revoked",
                "type",
                format!("revoked must be a boolean, found {}", type_name(v)),
            );
        }
        if let Some(v) = j.get("confidence") {
            self.int_range("$.confidence", v, 0, 100);
        }
        if let Some(v) = j.get("lang")
            && !v.is_string()
        {
            self.err("$.lang", "type", "lang must be a string");
        }
        if let Some(v) = j.get("labels") {
            self.string_list("$.labels", v);
        }
        if let Some(v) = j.get("defanged") {
            if class != ObjectClass::Sco && class != ObjectClass::Custom {
                self.err(
                    "$.defanged",
                    "sco-only",
                    "defanged applies to cyber-observable objects only",
                );
            } else if !v.is_boolean() {
                self.err("$.defanged", "type", "defanged must be a boolean");
            }
        }
        if let Some(v) = j.get("external_references") {
            self.external_references(v);
        }
        if let Some(v) = j.get("granular_markings") {
            self.granular_markings(j, v);
        }
        if let Some(v) = j.get("extensions") {
            self.extensions(o.object_type(), v);
        }
        if let Some(v) = j.get("kill_chain_phases") {
            self.kill_chain_phases(v);
        }
    }

    fn timestamp(&mut self, path: &str, v: &Value, millis: bool) -> Option<Timestamp> {
        let Some(s) = v.as_str() else {
            self.err(
                path,
                "type",
                format!("must be a timestamp string, found {}", type_name(v)),
            );
            return None;
        };
        match Timestamp::parse(s) {
            Ok(t) => {
                if millis && t.fraction_digits() < 3 {
                    self.err(
                        path,
                        "timestamp-precision",
                        format!("{s:?} must have at least millisecond precision"),
                    );
                }
                Some(t)
            }
            Err(e) => {
                self.err(path, "timestamp", e.to_string());
                None
            }
        }
    }

    fn order(&mut self, j: &Map<String, Value>, early: &str, late: &str, strict: bool) {
        if let (Some(a), Some(b)) = (get_ts(j, early), get_ts(j, late))
            && (b < a || (strict && b == a))
        {
            let rel = if strict { "later than" } else { "at or after" };
            self.err(
                &path_key("$", late),
                "time-order",
                format!("{late} ({b}) must be {rel} {early} ({a})"),
            );
        }
    }

    fn int_range(&mut self, path: &str, v: &Value, lo: i64, hi: i64) -> Option<i64> {
        match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            Some(n) => {
                self.err(path, "range", format!("{n} is outside {lo}..={hi}"));
                None
            }
            None => {
                self.err(
                    path,
                    "type",
                    format!("must be an integer, found {}", type_name(v)),
                );
                None
            }
        }
    }

    fn string_list(&mut self, path: &str, v: &Value) {
        match v.as_array() {
            Some(a) => {
                for (i, e) in a.iter().enumerate() {
                    if !e.is_string() {
                        self.err(
                            &path_idx(path, i),
                            "type",
                            format!("must be a string, found {}", type_name(e)),
                        );
                    }
                }
            }
            None => self.err(
                path,
                "type",
                format!("must be a list of strings, found {}", type_name(v)),
            ),
        }
    }

    fn reference(&mut self, path: &str, key: &str, v: &Value, target: Option<Target>) {
        let one = |c: &mut Checker, path: &str, e: &Value| {
            let Some(s) = e.as_str() else {
                c.err(
                    path,
                    "type",
                    format!("must be an identifier string, found {}", type_name(e)),
                );
                return;
            };
            let ty = match parse_id(s) {
                Ok((ty, _)) => ty,
                Err(err) => {
                    c.err(path, "ref-syntax", err.to_string());
                    return;
                }
            };
            let Some(target) = target else { return };
            let class = ObjectClass::of(ty);
            let ok = match target {
                Target::Types(ts) => ts.contains(&ty),
                Target::AnySco => class == ObjectClass::Sco || class == ObjectClass::Custom,
                Target::AnySdo => matches!(class, ObjectClass::Sdo | ObjectClass::Custom),
                Target::SdoOrSco => matches!(
                    class,
                    ObjectClass::Sdo | ObjectClass::Sco | ObjectClass::Custom
                ),
                Target::ScoOrSro => matches!(
                    class,
                    ObjectClass::Sco | ObjectClass::Sro | ObjectClass::Custom
                ),
                Target::Any => class != ObjectClass::Bundle,
            };
            if !ok {
                let allowed = match target {
                    Target::Types(ts) => ts.join(", "),
                    Target::AnySco => "a cyber-observable object".to_owned(),
                    Target::AnySdo => "a domain object".to_owned(),
                    Target::SdoOrSco => "a domain or cyber-observable object".to_owned(),
                    Target::ScoOrSro => "a cyber-observable or relationship object".to_owned(),
                    Target::Any => "a STIX object".to_owned(),
                };
                c.err(
                    path,
                    "ref-type",
                    format!("{key} must point at {allowed}, not {ty}"),
                );
            }
        };
        if key.ends_with("_refs") {
            match v.as_array() {
                Some(a) if a.is_empty() => {
                    self.err(path, "empty-list", format!("{key} must not be empty"))
                }
                Some(a) => {
                    for (i, e) in a.iter().enumerate() {
                        one(self, &path_idx(path, i), e);
                    }
                }
                None => self.err(path, "type", format!("{key} must be a list of identifiers")),
            }
        } else {
            one(self, path, v);
        }
    }

    fn external_references(&mut self, v: &Value) {
        let Some(list) = v.as_array() else {
            self.err(
                "$.external_references",
                "type",
                "external_references must be a list",
            );
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let path = path_idx("$.external_references", i);
            let Some(r) = r.as_object() else {
                self.err(&path, "type", "an external reference must be an object");
                continue;
            };
            if !r.get("source_name").is_some_and(Value::is_string) {
                self.err(
                    &path_key(&path, "source_name"),
                    "required",
                    "external reference needs a source_name string",
                );
            }
            if !["description", "url", "external_id"]
                .iter()
                .any(|k| r.contains_key(*k))
            {
                self.err(
                    &path,
                    "external-reference",
                    "external reference needs at least one of description, url, external_id",
                );
            }
            if let Some(h) = r.get("hashes") {
                self.hashes(&path_key(&path, "hashes"), h);
            }
        }
    }

    fn hashes(&mut self, path: &str, v: &Value) {
        let Some(h) = v.as_object() else {
            self.err(path, "type", "hashes must be a dictionary");
            return;
        };
        if h.is_empty() {
            self.err(path, "empty", "hashes must not be empty");
        }
        for (alg, value) in h {
            let p = path_key(path, alg);
            let Some(s) = value.as_str() else {
                self.err(&p, "type", "a hash value must be a string");
                continue;
            };
            match HASHES.iter().find(|(a, _)| a == alg) {
                Some((_, Some(len))) => {
                    if s.len() != *len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                        self.err(
                            &p,
                            "hash",
                            format!("{alg} must be {len} hexadecimal digits"),
                        );
                    }
                }
                Some((_, None)) => {}
                None => self.warn(
                    &p,
                    "custom-hash",
                    format!("hash algorithm {alg:?} is not in the hash vocabulary"),
                ),
            }
        }
    }

    fn kill_chain_phases(&mut self, v: &Value) {
        let Some(list) = v.as_array() else {
            self.err(
                "$.kill_chain_phases",
                "type",
                "kill_chain_phases must be a list",
            );
            return;
        };
        for (i, p) in list.iter().enumerate() {
            let path = path_idx("$.kill_chain_phases", i);
            for k in ["kill_chain_name", "phase_name"] {
                if !p.get(k).is_some_and(Value::is_string) {
                    self.err(
                        &path_key(&path, k),
                        "required",
                        format!("kill chain phase needs a {k} string"),
                    );
                }
            }
        }
    }

    fn granular_markings(&mut self, obj: &Map<String, Value>, v: &Value) {
        let Some(list) = v.as_array() else {
            self.err(
                "$.granular_markings",
                "type",
                "granular_markings must be a list",
            );
            return;
        };
        for (i, gm) in list.iter().enumerate() {
            let path = path_idx("$.granular_markings", i);
            let Some(gm) = gm.as_object() else {
                self.err(&path, "type", "a granular marking must be an object");
                continue;
            };
            match (gm.get("marking_ref"), gm.get("lang")) {
                (Some(r), None) => self.reference(
                    &path_key(&path, "marking_ref"),
                    "marking_ref",
                    r,
                    Some(Target::Types(&["marking-definition"])),
                ),
                (None, Some(l)) if l.is_string() => {}
                (None, Some(_)) => {
                    self.err(&path_key(&path, "lang"), "type", "lang must be a string")
                }
                _ => self.err(
                    &path,
                    "granular-marking",
                    "a granular marking needs exactly one of marking_ref and lang",
                ),
            }
            match gm.get("selectors").and_then(Value::as_array) {
                Some(sels) if !sels.is_empty() => {
                    for (k, s) in sels.iter().enumerate() {
                        let sp = path_idx(&path_key(&path, "selectors"), k);
                        match s.as_str() {
                            Some(sel) => {
                                if let Err(why) = resolve_selector(obj, sel) {
                                    self.err(&sp, "selector", format!("selector {sel:?} {why}"));
                                }
                            }
                            None => self.err(&sp, "type", "a selector must be a string"),
                        }
                    }
                }
                _ => self.err(
                    &path_key(&path, "selectors"),
                    "required",
                    "a granular marking needs a non-empty selectors list",
                ),
            }
        }
    }

    fn extensions(&mut self, ty: &str, v: &Value) {
        let Some(exts) = v.as_object() else {
            self.err("$.extensions", "type", "extensions must be a dictionary");
            return;
        };
        if exts.is_empty() {
            self.err("$.extensions", "empty", "extensions must not be empty");
        }
        for (name, ext) in exts {
            let path = path_key("$.extensions", name);
            let Some(ext) = ext.as_object() else {
                self.err(&path, "type", "an extension must be an object");
                continue;
            };
            if name.starts_with("extension-definition--") {
                if let Err(e) = parse_id(name) {
                    self.err(&path, "ref-syntax", e.to_string());
                }
                match ext.get("extension_type").and_then(Value::as_str) {
                    Some(t) if EXTENSION_TYPES.contains(&t) => {}
                    Some(t) => self.err(
                        &path_key(&path, "extension_type"),
                        "enum",
                        format!(
                            "extension_type {t:?} is not one of {}",
                            EXTENSION_TYPES.join(", ")
                        ),
                    ),
                    None => self.err(
                        &path_key(&path, "extension_type"),
                        "required",
                        "an extension-definition extension needs extension_type",
                    ),
                }
                for (k, rv) in ext {
                    if k.ends_with("_ref") || k.ends_with("_refs") {
                        self.reference(&path_key(&path, k), k, rv, None);
                    }
                }
            } else if PREDEFINED_EXTENSIONS.contains(&(ty, name.as_str())) {
                // Predefined SCO extensions carry no extension_type.
            } else {
                self.warn(&path, "custom-extension", format!("extension {name:?} is neither predefined for {ty} nor an extension-definition id (deprecated custom extension)"));
            }
        }
    }

    fn type_specific(&mut self, o: &StixObject, ty: &str) {
        let j = o.json();
        match ty {
            "campaign" | "intrusion-set" | "threat-actor" | "infrastructure" | "malware"
            | "sighting" => {
                self.order(j, "first_seen", "last_seen", false);
            }
            _ => {}
        }
        match ty {
            "indicator" => {
                self.order(j, "valid_from", "valid_until", true);
                match j.get("pattern_type").and_then(Value::as_str) {
                    Some(pt) if !PATTERN_TYPES.contains(&pt) => self.warn(
                        "$.pattern_type",
                        "open-vocab",
                        format!("pattern_type {pt:?} is not in the pattern-type vocabulary"),
                    ),
                    _ => {}
                }
                for k in ["pattern", "pattern_type"] {
                    if let Some(v) = j.get(k)
                        && !v.is_string()
                    {
                        self.err(&path_key("$", k), "type", format!("{k} must be a string"));
                    }
                }
            }
            "malware" => match j.get("is_family") {
                Some(Value::Bool(true)) if !j.contains_key("name") => self.err(
                    "$.name",
                    "required",
                    "a malware family (is_family: true) needs a name",
                ),
                Some(Value::Bool(_)) | None => {}
                Some(_) => self.err("$.is_family", "type", "is_family must be a boolean"),
            },
            "malware-analysis" => {
                if !j.contains_key("result") && !j.contains_key("analysis_sco_refs") {
                    self.err(
                        "$",
                        "required",
                        "malware-analysis needs result or analysis_sco_refs",
                    );
                }
                self.order(j, "analysis_started", "analysis_ended", false);
            }
            "observed-data" => {
                match (j.contains_key("objects"), j.contains_key("object_refs")) {
                    (true, true) => self.err(
                        "$",
                        "observed-data",
                        "observed-data must have exactly one of object_refs and objects, not both",
                    ),
                    (false, false) => self.err(
                        "$",
                        "observed-data",
                        "observed-data must have exactly one of object_refs and objects",
                    ),
                    (true, false) => self.warn(
                        "$.objects",
                        "deprecated",
                        "observed-data objects is deprecated; use object_refs",
                    ),
                    (false, true) => {}
                }
                if let Some(v) = j.get("number_observed") {
                    self.int_range("$.number_observed", v, 1, 999_999_999);
                }
                self.order(j, "first_observed", "last_observed", false);
            }
            "sighting" => {
                if let Some(v) = j.get("count") {
                    self.int_range("$.count", v, 0, 999_999_999);
                }
            }
            "relationship" => {
                if let Some(rt) = j.get("relationship_type") {
                    let ok = rt.as_str().is_some_and(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    });
                    if !ok {
                        self.err(
                            "$.relationship_type",
                            "relationship-type",
                            "relationship_type must be [a-z0-9-]+",
                        );
                    }
                }
                self.order(j, "start_time", "stop_time", true);
            }
            "opinion" => {
                if let Some(v) = j.get("opinion")
                    && !v.as_str().is_some_and(|s| OPINIONS.contains(&s))
                {
                    self.err(
                        "$.opinion",
                        "enum",
                        format!("opinion must be one of {}", OPINIONS.join(", ")),
                    );
                }
            }
            "location" => self.location(j),
            "language-content" => match j.get("contents").and_then(Value::as_object) {
                Some(c) if !c.is_empty() && c.values().all(Value::is_object) => {}
                _ => self.err(
                    "$.contents",
                    "type",
                    "contents must be a non-empty dictionary of language code to dictionary",
                ),
            },
            "extension-definition" => {
                let types: Vec<&str> = match j.get("extension_types").and_then(Value::as_array) {
                    Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).collect(),
                    _ => {
                        self.err(
                            "$.extension_types",
                            "type",
                            "extension_types must be a non-empty list",
                        );
                        Vec::new()
                    }
                };
                for t in &types {
                    if !EXTENSION_TYPES.contains(t) {
                        self.err(
                            "$.extension_types",
                            "enum",
                            format!("{t:?} is not one of {}", EXTENSION_TYPES.join(", ")),
                        );
                    }
                }
                if j.contains_key("extension_properties")
                    && !types.contains(&"toplevel-property-extension")
                {
                    self.err(
                        "$.extension_properties",
                        "extension",
                        "extension_properties is only allowed with toplevel-property-extension",
                    );
                }
            }
            "marking-definition" => self.marking_definition(o),
            _ if SCO_TYPES.contains(&ty) => self.sco(o, ty),
            _ => {}
        }
    }

    fn location(&mut self, j: &Map<String, Value>) {
        let lat = j.get("latitude");
        let lon = j.get("longitude");
        if lat.is_some() != lon.is_some() {
            self.err(
                "$",
                "location",
                "latitude and longitude must be given together",
            );
        }
        if j.contains_key("precision") && lat.is_none() {
            self.err(
                "$.precision",
                "location",
                "precision needs latitude and longitude",
            );
        }
        if !j.contains_key("region")
            && !j.contains_key("country")
            && (lat.is_none() || lon.is_none())
        {
            self.err(
                "$",
                "location",
                "a location needs region, country, or latitude and longitude",
            );
        }
        for (k, v, lim) in [("latitude", lat, 90.0), ("longitude", lon, 180.0)] {
            if let Some(v) = v {
                match v.as_f64() {
                    Some(x) if (-lim..=lim).contains(&x) => {}
                    _ => self.err(
                        &path_key("$", k),
                        "range",
                        format!("{k} must be a number in -{lim}..={lim}"),
                    ),
                }
            }
        }
    }

    fn marking_definition(&mut self, o: &StixObject) {
        let j = o.json();
        if j.contains_key("modified") {
            self.warn("$.modified", "unversioned", "marking definitions are not versioned; modified is not a marking-definition property");
        }
        let has_ext = j.contains_key("extensions");
        let dt = j.get("definition_type").and_then(Value::as_str);
        if !has_ext {
            for k in ["definition_type", "definition"] {
                if !j.contains_key(k) {
                    self.err(
                        &path_key("$", k),
                        "required",
                        format!("{k} is required when extensions is absent"),
                    );
                }
            }
        } else if j.contains_key("definition_type") {
            self.warn(
                "$.definition_type",
                "deprecated",
                "definition_type and definition are deprecated when extensions is present",
            );
        }
        let def = j.get("definition");
        if def.is_some_and(|d| !d.is_object()) {
            self.err("$.definition", "type", "definition must be an object");
        }
        match dt {
            Some("statement") => {
                if !def
                    .and_then(|d| d.get("statement"))
                    .is_some_and(Value::is_string)
                {
                    self.err(
                        "$.definition.statement",
                        "required",
                        "a statement marking needs definition.statement",
                    );
                }
            }
            Some("tlp") => {
                let level = def.and_then(|d| d.get("tlp")).and_then(Value::as_str);
                match standard_marking(o.id()).map(|m| m.kind) {
                    Some(MarkingKind::Tlp1(_, w)) if level == Some(w) => {}
                    Some(MarkingKind::Tlp1(_, w)) => self.err("$.definition.tlp", "tlp", format!("this TLP 1.0 marking must have definition.tlp {w:?}")),
                    _ => self.err("$.id", "tlp", "TLP 1.0 markings must use the four predefined marking-definition ids (§7.2.1.4)"),
                }
            }
            Some(_) | None => {}
        }
        match standard_marking(o.id()).map(|m| m.kind) {
            Some(MarkingKind::Tlp2(_, w)) => {
                self.standard_extension(j, TLP2_EXTENSION, "tlp_2_0", w)
            }
            Some(MarkingKind::Pap(_, w)) => self.standard_extension(j, PAP_EXTENSION, "pap", w),
            Some(MarkingKind::Tlp1(..)) if dt != Some("tlp") => self.err(
                "$.definition_type",
                "tlp",
                "a TLP 1.0 marking id must have definition_type \"tlp\"",
            ),
            _ => {}
        }
    }

    fn standard_extension(&mut self, j: &Map<String, Value>, ext: &str, key: &str, want: &str) {
        let got = j
            .get("extensions")
            .and_then(|e| e.get(ext))
            .and_then(|e| e.get(key))
            .and_then(Value::as_str);
        if got != Some(want) {
            self.err(
                &format!("$.extensions.{ext}.{key}"),
                "standard-marking",
                format!("this standard marking id must carry {key} {want:?} in extension {ext}"),
            );
        }
    }

    fn sco(&mut self, o: &StixObject, ty: &str) {
        let j = o.json();
        if let Some(want) = deterministic_sco_id(ty, j)
            && want != o.id()
        {
            self.warn(
                "$.id",
                "sco-id",
                format!("id is not the deterministic id of its contributing properties ({want})"),
            );
        }
        if let Some(h) = j.get("hashes") {
            self.hashes("$.hashes", h);
        }
        match ty {
            "network-traffic" => {
                if !j.contains_key("src_ref") && !j.contains_key("dst_ref") {
                    self.err(
                        "$",
                        "network-traffic",
                        "network-traffic needs src_ref or dst_ref",
                    );
                }
                if let Some(p) = j.get("protocols") {
                    match p.as_array() {
                        Some(a) if !a.is_empty() => self.string_list("$.protocols", p),
                        _ => self.err(
                            "$.protocols",
                            "type",
                            "protocols must be a non-empty list of strings",
                        ),
                    }
                }
                for k in ["src_port", "dst_port"] {
                    if let Some(v) = j.get(k) {
                        self.int_range(&path_key("$", k), v, 0, 65535);
                    }
                }
                self.order(j, "start", "end", false);
            }
            "email-message" => match j.get("is_multipart") {
                Some(Value::Bool(true)) if j.contains_key("body") => self.err(
                    "$.body",
                    "email-message",
                    "body must not be present when is_multipart is true",
                ),
                Some(Value::Bool(false)) if j.contains_key("body_multipart") => self.err(
                    "$.body_multipart",
                    "email-message",
                    "body_multipart must not be present when is_multipart is false",
                ),
                Some(Value::Bool(_)) | None => {}
                Some(_) => self.err("$.is_multipart", "type", "is_multipart must be a boolean"),
            },
            "artifact" => match (j.contains_key("payload_bin"), j.contains_key("url")) {
                (true, true) => self.err(
                    "$",
                    "artifact",
                    "artifact must not have both payload_bin and url",
                ),
                (false, true) if !j.contains_key("hashes") => self.err(
                    "$.hashes",
                    "artifact",
                    "an artifact given by url needs hashes",
                ),
                _ => {}
            },
            "file" if !j.contains_key("hashes") && !j.contains_key("name") => {
                self.err("$", "file", "file needs hashes or name");
            }
            "x509-certificate" if j.keys().all(|k| SCO_COMMON.contains(&k.as_str())) => {
                self.err(
                    "$",
                    "x509-certificate",
                    "x509-certificate needs at least one property besides the common ones",
                );
            }
            "autonomous-system" => {
                if let Some(v) = j.get("number") {
                    self.int_range("$.number", v, 0, i64::from(u32::MAX));
                }
            }
            _ => {}
        }
        for k in ["value", "name", "path"] {
            if let Some(v) = j.get(k)
                && !v.is_string()
                && matches!(
                    ty,
                    "domain-name"
                        | "email-addr"
                        | "ipv4-addr"
                        | "ipv6-addr"
                        | "mac-addr"
                        | "url"
                        | "mutex"
                        | "software"
                        | "directory"
                        | "file"
                )
            {
                self.err(&path_key("$", k), "type", format!("{k} must be a string"));
            }
        }
    }
}

/// Resolves a granular-marking selector (§7.2.3.1: `.`-separated property names and `[n]`
/// list indices) against an object; `Err` says why it points at nothing.
pub fn resolve_selector<'a>(
    obj: &'a Map<String, Value>,
    selector: &str,
) -> Result<&'a Value, String> {
    if selector.is_empty() {
        return Err("is empty".to_owned());
    }
    let mut parts = selector.split('.');
    let first = parts.next().unwrap_or_default();
    let mut cur = obj
        .get(first)
        .ok_or_else(|| format!("names property {first:?}, which the object does not have"))?;
    for part in parts {
        if let Some(idx) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            let n: usize = idx
                .parse()
                .map_err(|_| format!("has an invalid list index {part:?}"))?;
            cur = cur
                .as_array()
                .ok_or_else(|| format!("indexes {part:?} into something that is not a list"))?
                .get(n)
                .ok_or_else(|| format!("index {n} is past the end of the list"))?;
        } else {
            cur = cur
                .as_object()
                .ok_or_else(|| format!("looks up {part:?} in something that is not an object"))?
                .get(part)
                .ok_or_else(|| format!("names property {part:?}, which does not exist there"))?;
        }
    }
    Ok(cur)
}
