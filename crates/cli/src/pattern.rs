//! `phalanx pattern check|match`: STIX patterns from the command line.
//!
//! `check` parses a pattern, prints its canonical form and what the reference validator
//! would also object to (hash values that do not fit their algorithm); an invalid
//! pattern is an error pointing at the byte range. `match` evaluates a pattern against
//! the observed-data (and the SCOs they reference) of a STIX file: exit 0 on a match,
//! 1 on none (as `grep`).

use crate::Status;
use anyhow::Context;
use clap::{Args, Subcommand};
use phalanx_pattern::Pattern;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum PatternCmd {
    /// Check a STIX 2.1 pattern: print its canonical form, or what is wrong and where
    /// (exit 1).
    Check {
        /// The pattern, e.g. "[ipv4-addr:value = '198.51.100.7']".
        pattern: String,
    },
    /// Evaluate a pattern against observed-data: exit 0 on a match, 1 on none.
    Match(MatchArgs),
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// The pattern.
    pattern: String,
    /// STIX file (bundle, envelope, JSON array or JSON lines; `-` for stdin) with the
    /// observed-data and the SCOs their `object_refs` name.
    #[arg(long, value_name = "FILE")]
    observed: PathBuf,
}

pub fn run(json: bool, cmd: PatternCmd) -> anyhow::Result<Status> {
    match cmd {
        PatternCmd::Check { pattern } => check(json, &pattern),
        PatternCmd::Match(a) => matches(json, &a),
    }
}

/// The pattern and a caret line under the byte range an error points at.
fn pointer(text: &str, start: usize, end: usize) -> String {
    let col = text.get(..start).map_or(start, |s| s.chars().count());
    let width = text
        .get(start..end.max(start))
        .map_or(1, |s| s.chars().count().max(1));
    format!("  {text}\n  {}{}", " ".repeat(col), "^".repeat(width))
}

fn check(json: bool, text: &str) -> anyhow::Result<Status> {
    let parsed = Pattern::parse(text);
    let (p, error) = match parsed {
        Ok(p) => {
            let compiled = p.compile().err().map(|e| (e.to_string(), None));
            (Some(p), compiled)
        }
        Err(e) => {
            let span = e.span();
            (None, Some((e.to_string(), span)))
        }
    };
    let lints = p.as_ref().map(Pattern::lint).unwrap_or_default();
    if json {
        println!(
            "{}",
            json!({
                "valid": error.is_none(),
                "canonical": p.as_ref().map(ToString::to_string),
                "error": error.as_ref().map(|(m, s)| json!({
                    "message": m,
                    "start": s.map(|s| s.start),
                    "end": s.map(|s| s.end),
                })),
                "warnings": lints.iter().map(|l| json!({"comparison": l.comparison, "message": l.message})).collect::<Vec<_>>(),
            })
        );
    } else {
        match &error {
            None => println!(
                "{}",
                p.as_ref().map(ToString::to_string).unwrap_or_default()
            ),
            Some((m, span)) => {
                eprintln!("invalid pattern: {m}");
                if let Some(s) = span {
                    eprintln!("{}", pointer(text, s.start, s.end));
                }
            }
        }
        for l in &lints {
            eprintln!("warning: {}: {}", l.comparison, l.message);
        }
    }
    Ok(if error.is_none() {
        Status::Ok
    } else {
        Status::Rejected
    })
}

fn matches(json: bool, a: &MatchArgs) -> anyhow::Result<Status> {
    let p = match Pattern::parse(&a.pattern) {
        Ok(p) => p,
        Err(e) => {
            let mut msg = format!("invalid pattern: {e}");
            if let Some(s) = e.span() {
                msg.push('\n');
                msg.push_str(&pointer(&a.pattern, s.start, s.end));
            }
            anyhow::bail!(msg);
        }
    };
    let m = p
        .compile()
        .map_err(|e| anyhow::anyhow!("pattern cannot be evaluated: {e}"))?;
    let bytes = if a.observed.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(&a.observed)
            .with_context(|| format!("cannot read {}", a.observed.display()))?
    };
    let mut observed: Vec<Value> = Vec::new();
    let mut scos: HashMap<String, Value> = HashMap::new();
    for item in phalanx_stix::stream::split_all(&bytes, Default::default()) {
        match item {
            phalanx_stix::stream::Item::Object { bytes, pos } => {
                let v: Value = serde_json::from_slice(&bytes).with_context(|| {
                    format!("{}: object at {pos} is not JSON", a.observed.display())
                })?;
                if v["type"] == "observed-data" {
                    observed.push(v);
                } else if let Some(id) = v["id"].as_str() {
                    scos.insert(id.to_owned(), v);
                }
            }
            phalanx_stix::stream::Item::Error { pos, message } => {
                anyhow::bail!("{}: {message} at {pos}", a.observed.display())
            }
        }
    }
    anyhow::ensure!(
        !observed.is_empty(),
        "{}: no observed-data to match against",
        a.observed.display()
    );
    let found = m
        .find(&observed, &scos)
        .map_err(|e| anyhow::anyhow!("evaluation stopped: {e}"))?;
    let ids: Vec<&str> = found
        .iter()
        .flatten()
        .filter_map(|&i| observed.get(i).and_then(|o| o["id"].as_str()))
        .collect();
    if json {
        println!(
            "{}",
            json!({"match": found.is_some(), "pattern": p.to_string(), "observed_data_refs": ids})
        );
    } else if found.is_some() {
        println!("match: {}", ids.join(", "));
    } else {
        println!("no match ({} observed-data)", observed.len());
    }
    Ok(if found.is_some() {
        Status::Ok
    } else {
        Status::Rejected
    })
}
