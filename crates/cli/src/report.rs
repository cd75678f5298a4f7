//! Per-object outcomes for people (compiler-style lines on stderr, a summary) and for
//! machines (`--json`: one JSON line per object on stdout, then a summary line).

use indicatif::ProgressBar;
use phalanx_stix::stream::Position;
use phalanx_stix::{Issue, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;

/// Prints one JSON value on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    println!("{text}");
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Validated (`phalanx validate`).
    Valid,
    /// Stored as a new version.
    Accepted { date_added: i64 },
    /// Already stored, identical.
    Duplicate,
    /// Another object is stored under the same (id, modified).
    Conflict { existing_date_added: i64 },
    /// Not a conformant STIX object.
    Invalid,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Invalid => "invalid",
        }
    }

    /// The object was refused.
    pub fn is_rejection(self) -> bool {
        matches!(self, Outcome::Conflict { .. } | Outcome::Invalid)
    }
}

/// Counts per outcome and per warning code.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub counts: BTreeMap<&'static str, u64>,
    pub warnings: BTreeMap<&'static str, u64>,
    pub rejected: u64,
}

impl Tally {
    /// How the run ended: rejected if any object was refused.
    pub fn status(&self) -> crate::Status {
        if self.rejected > 0 {
            crate::Status::Rejected
        } else {
            crate::Status::Ok
        }
    }

    fn add(&mut self, other: &Tally) {
        for (k, v) in &other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for (k, v) in &other.warnings {
            *self.warnings.entry(k).or_default() += v;
        }
        self.rejected += other.rejected;
    }

    fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "objects": self.total(),
            "outcomes": self.counts,
            "warnings": self.warnings,
            "rejected": self.rejected,
        })
    }
}

/// One object's report.
pub struct Record<'a> {
    pub pos: Position,
    /// The object's id, when it had one.
    pub id: Option<&'a str>,
    pub outcome: Outcome,
    /// Why it is invalid when there is no [`Issue`] (not JSON, not an object, ...).
    pub reason: Option<&'a str>,
    pub errors: &'a [Issue],
    pub warnings: &'a [Issue],
}

/// Collects and prints outcomes for a sequence of files.
pub struct Reporter {
    json: bool,
    all_warnings: bool,
    file: String,
    file_tally: Tally,
    total: Tally,
    files: u64,
    progress: Option<ProgressBar>,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Reporter {
    pub fn new(json: bool, all_warnings: bool) -> Reporter {
        Reporter {
            json,
            all_warnings,
            file: String::new(),
            file_tally: Tally::default(),
            total: Tally::default(),
            files: 0,
            progress: None,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Starts reporting on a new input.
    pub fn start_file(&mut self, name: &str, progress: Option<ProgressBar>) {
        self.file = name.to_owned();
        self.file_tally = Tally::default();
        self.progress = progress;
    }

    pub fn progress(&self) -> Option<&ProgressBar> {
        self.progress.as_ref()
    }

    /// Whether output is JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One more JSON line on stdout, in order with the per-object lines.
    pub fn json_line(&mut self, v: &Value) {
        let _ = writeln!(self.out, "{v}");
    }

    /// A human line on stderr that does not tear the progress bar.
    pub fn say(&self, line: &str) {
        match &self.progress {
            Some(pb) => pb.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    pub fn record(&mut self, r: &Record<'_>) {
        *self.file_tally.counts.entry(r.outcome.name()).or_default() += 1;
        if r.outcome.is_rejection() {
            self.file_tally.rejected += 1;
        }
        for w in r.warnings {
            *self.file_tally.warnings.entry(w.code).or_default() += 1;
        }
        if self.json {
            self.record_json(r);
        } else {
            self.record_human(r);
        }
    }

    fn record_json(&mut self, r: &Record<'_>) {
        let issues = |list: &[Issue]| -> Vec<Value> {
            list.iter()
                .map(|i| json!({"path": i.path, "code": i.code, "message": i.message}))
                .collect()
        };
        let mut v = json!({
            "file": self.file,
            "line": r.pos.line,
            "offset": r.pos.offset,
            "id": r.id,
            "outcome": r.outcome.name(),
        });
        if let Some(i) = r.pos.index {
            v["index"] = i.into();
        }
        match r.outcome {
            Outcome::Accepted { date_added } => v["date_added"] = micros_text(date_added).into(),
            Outcome::Conflict {
                existing_date_added,
            } => v["existing_date_added"] = micros_text(existing_date_added).into(),
            _ => {}
        }
        if let Some(reason) = r.reason {
            v["reason"] = reason.into();
        }
        if !r.errors.is_empty() {
            v["errors"] = issues(r.errors).into();
        }
        if !r.warnings.is_empty() {
            v["warnings"] = issues(r.warnings).into();
        }
        // A closed stdout (e.g. `| head`) must not abort the import.
        let _ = writeln!(self.out, "{v}");
    }

    fn record_human(&mut self, r: &Record<'_>) {
        let at = format!("{}:{}", self.file, r.pos.line);
        let id = r.id.unwrap_or("<no id>");
        let index = r
            .pos
            .index
            .map(|i| format!(" (objects[{i}])"))
            .unwrap_or_default();
        match r.outcome {
            Outcome::Invalid => {
                if let Some(reason) = r.reason {
                    self.say(&format!("{at}: error: {}{index}: {reason}", r.pos));
                }
                for e in r.errors {
                    self.say(&format!(
                        "{at}: error[{}]: {id} {}: {}{index}",
                        e.code, e.path, e.message
                    ));
                }
            }
            Outcome::Conflict {
                existing_date_added,
            } => self.say(&format!(
                "{at}: conflict: {id}{index}: a different object with the same id and modified \
                 was stored at {}; nothing was overwritten",
                micros_text(existing_date_added)
            )),
            _ => {}
        }
        if self.all_warnings {
            for w in r.warnings {
                self.say(&format!(
                    "{at}: warning[{}]: {id} {}: {}{index}",
                    w.code, w.path, w.message
                ));
            }
        }
    }

    /// Ends the current input: prints its summary.
    pub fn finish_file(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
        let t = std::mem::take(&mut self.file_tally);
        self.files += 1;
        if self.json {
            let mut v = t.to_json();
            v["file"] = self.file.clone().into();
            let _ = writeln!(self.out, "{}", json!({ "file_summary": v }));
        } else {
            self.say(&format!(
                "{}: {}",
                self.file,
                summary_text(&t, self.all_warnings)
            ));
        }
        self.total.add(&t);
    }

    /// Ends the run; returns the totals.
    pub fn finish(mut self) -> Tally {
        if self.json {
            let _ = writeln!(self.out, "{}", json!({ "summary": self.total.to_json() }));
        } else if self.files > 1 {
            eprintln!("total: {}", summary_text(&self.total, self.all_warnings));
        }
        let _ = self.out.flush();
        self.total
    }
}

fn summary_text(t: &Tally, listed_warnings: bool) -> String {
    let mut s = format!("{} objects", t.total());
    let parts: Vec<String> = t.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if !parts.is_empty() {
        s.push_str(": ");
        s.push_str(&parts.join(", "));
    }
    let nw: u64 = t.warnings.values().sum();
    if nw > 0 {
        let kinds: Vec<String> = t.warnings.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s.push_str(&format!("; {nw} warnings ({})", kinds.join(", ")));
        if !listed_warnings {
            s.push_str(", --warnings lists them");
        }
    }
    s
}

/// A µs timestamp as RFC 3339 text with microseconds.
pub fn micros_text(us: i64) -> String {
    Timestamp::from_micros(us).format(6)
}
