//! Compilation and evaluation of patterns over observed-data (STIX 2.1 §9.6-§9.7).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use phalanx_stix::Timestamp;
use regex::bytes::{Regex as BytesRegex, RegexBuilder as BytesRegexBuilder};
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::Limits;
use crate::ast::*;
use crate::codec;
use crate::error::{CompileError, MatchError};
use crate::net::Block;

/// Looks up the SCOs that observed-data objects reference in `object_refs`.
pub trait ScoResolver {
    /// The SCO with this id, if known.
    fn resolve(&self, id: &str) -> Option<&Value>;
}

impl<S: BuildHasher> ScoResolver for HashMap<String, Value, S> {
    fn resolve(&self, id: &str) -> Option<&Value> {
        self.get(id)
    }
}

impl ScoResolver for BTreeMap<String, Value> {
    fn resolve(&self, id: &str) -> Option<&Value> {
        self.get(id)
    }
}

impl<T: ScoResolver + ?Sized> ScoResolver for &T {
    fn resolve(&self, id: &str) -> Option<&Value> {
        (**self).resolve(id)
    }
}

/// A compiled pattern, ready to evaluate against many observation sets.
///
/// Semantics (STIX 2.1 §9 and, where it is silent, the reference `stix2-matcher`):
/// - Each observed-data object is an observation; `number_observed: N` makes it N
///   interchangeable observations. Its SCOs are those named in `object_refs` (resolved
///   through the [`ScoResolver`]) plus those embedded in the deprecated `objects` map.
///   `*_ref` / `*_refs` properties dereference only to SCOs of the same observed-data.
/// - All comparisons of one `[...]` are evaluated on the same root SCO; a comparison
///   whose object type differs from the root's is false.
/// - A path that selects nothing makes the comparison false, with or without `NOT`
///   (except `EXISTS`). With `[*]` the comparison holds if any element satisfies it.
/// - Type mismatches are false, `!=` true. Strings compare by code point (no
///   normalisation) except in `LIKE` and `MATCHES`, which compare NFC forms. Binary
///   values (`*_hex`, `*_bin` properties, `h''`/`b''` literals) compare as octets; a
///   string converts to binary only if all its code points are below U+0100.
/// - A JSON string compared with a `t'..'` literal must be a STIX timestamp, else the
///   evaluation fails with [`MatchError::BadTimestamp`] (as the reference matcher does).
/// - `AND`, `OR`, `FOLLOWEDBY`, `REPEATS` bind distinct observations; `FOLLOWEDBY`
///   requires the left side's latest `first_observed` to be no later than the right
///   side's earliest `last_observed`. `WITHIN d` holds if a window of `d` seconds
///   touches every bound observation's `[first_observed, last_observed]`; `START s STOP
///   e` holds if every bound observation's interval meets `[s, e)`.
#[derive(Debug)]
pub struct Matcher {
    root: Node,
    leaves: Vec<Cmp>,
    slots: u64,
    max_steps: u64,
}

#[derive(Debug)]
enum Node {
    Leaf(usize),
    And(Vec<Node>),
    Or(Vec<Node>),
    FollowedBy(Vec<Node>),
    Within(Box<Node>, i64),
    StartStop(Box<Node>, i64, i64),
    Repeats(Box<Node>, u64),
}

#[derive(Debug)]
enum Cmp {
    And(Vec<Cmp>),
    Or(Vec<Cmp>),
    Test(Test),
}

#[derive(Debug)]
struct Test {
    object_type: String,
    steps: Vec<PathStep>,
    negated: bool,
    kind: TestKind,
}

#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Bin(Vec<u8>),
    Ts(i64),
}

#[derive(Debug, Clone, Copy)]
enum OrdOp {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
enum TestKind {
    Eq(Val),
    Ne(Val),
    Order(OrdOp, Val),
    In(Vec<Val>),
    Like(Regex, bool),
    Matches(Regex, Option<BytesRegex>),
    Subset(Block),
    Superset(Block),
    Exists,
}

// ---------------------------------------------------------------- compile

pub(crate) fn compile(e: &ObservationExpr, limits: &Limits) -> Result<Matcher, CompileError> {
    let mut leaves = Vec::new();
    let root = compile_obs(e, limits, &mut leaves, 0)?;
    let slots = slots(&root);
    if slots > limits.max_binding_size as u64 {
        return Err(CompileError::BindingTooLarge {
            needed: slots,
            max: limits.max_binding_size,
        });
    }
    Ok(Matcher {
        root,
        leaves,
        slots,
        max_steps: limits.max_match_steps,
    })
}

/// Observations one binding of `n` uses at most.
fn slots(n: &Node) -> u64 {
    match n {
        Node::Leaf(_) => 1,
        Node::And(v) | Node::FollowedBy(v) => {
            v.iter().map(slots).fold(0u64, |a, b| a.saturating_add(b))
        }
        Node::Or(v) => v.iter().map(slots).max().unwrap_or(0),
        Node::Within(i, _) | Node::StartStop(i, _, _) => slots(i),
        Node::Repeats(i, t) => slots(i).saturating_mul(*t),
    }
}

fn ts_micros(t: &TimestampLiteral) -> Result<i64, CompileError> {
    Timestamp::parse(t.as_str())
        .map(|ts| ts.as_micros())
        .map_err(|e| CompileError::Timestamp {
            text: t.as_str().to_owned(),
            reason: e.to_string(),
        })
}

fn compile_obs(
    e: &ObservationExpr,
    limits: &Limits,
    leaves: &mut Vec<Cmp>,
    depth: usize,
) -> Result<Node, CompileError> {
    if depth > limits.max_depth.saturating_mul(2) {
        return Err(CompileError::Malformed("tree deeper than the depth limit"));
    }
    let many = |v: &Vec<ObservationExpr>, leaves: &mut Vec<Cmp>| {
        if v.len() < 2 {
            return Err(CompileError::Malformed(
                "AND/OR/FOLLOWEDBY with fewer than two operands",
            ));
        }
        v.iter()
            .map(|x| compile_obs(x, limits, leaves, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match e {
        ObservationExpr::Observation(c) => {
            let c = compile_cmp(c, limits, depth + 1)?;
            leaves.push(c);
            Node::Leaf(leaves.len() - 1)
        }
        ObservationExpr::And(v) => Node::And(many(v, leaves)?),
        ObservationExpr::Or(v) => Node::Or(many(v, leaves)?),
        ObservationExpr::FollowedBy(v) => Node::FollowedBy(many(v, leaves)?),
        ObservationExpr::Qualified(inner, q) => {
            let bad = |reason| CompileError::Qualifier {
                qualifier: q.to_string(),
                reason,
            };
            let inner = Box::new(compile_obs(inner, limits, leaves, depth + 1)?);
            match q {
                Qualifier::Within { seconds } => {
                    if !(seconds.is_finite() && *seconds > 0.0) {
                        return Err(bad("WITHIN needs a positive number of seconds"));
                    }
                    // Saturating float-to-int conversion.
                    Node::Within(inner, (seconds * 1e6).round() as i64)
                }
                Qualifier::StartStop { start, stop } => {
                    Node::StartStop(inner, ts_micros(start)?, ts_micros(stop)?)
                }
                Qualifier::Repeats { times } => {
                    if *times == 0 {
                        return Err(bad("REPEATS needs at least 1"));
                    }
                    Node::Repeats(inner, *times)
                }
            }
        }
    })
}

fn compile_cmp(c: &ComparisonExpr, limits: &Limits, depth: usize) -> Result<Cmp, CompileError> {
    if depth > limits.max_depth.saturating_mul(2) {
        return Err(CompileError::Malformed("tree deeper than the depth limit"));
    }
    let many = |v: &Vec<ComparisonExpr>| {
        if v.len() < 2 {
            return Err(CompileError::Malformed(
                "AND/OR with fewer than two operands",
            ));
        }
        v.iter()
            .map(|x| compile_cmp(x, limits, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match c {
        ComparisonExpr::And(v) => Cmp::And(many(v)?),
        ComparisonExpr::Or(v) => Cmp::Or(many(v)?),
        ComparisonExpr::Comparison(t) => Cmp::Test(compile_test(t, limits)?),
    })
}

fn lit_val(l: &Literal) -> Result<Val, CompileError> {
    Ok(match l {
        Literal::Int(n) => Val::Int(*n),
        Literal::Float(x) => Val::Float(*x),
        Literal::Str(s) => Val::Str(s.clone()),
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Binary(b) => Val::Bin(b.clone()),
        Literal::Timestamp(t) => Val::Ts(ts_micros(t)?),
    })
}

fn compile_test(t: &Comparison, limits: &Limits) -> Result<Test, CompileError> {
    if !matches!(t.path.steps.first(), Some(PathStep::Key(_))) {
        return Err(CompileError::Malformed("object path must start with a key"));
    }
    let text = || t.to_string();
    let regex_err = |e: regex::Error| CompileError::Regex {
        comparison: text(),
        reason: e.to_string(),
    };
    let orderable = |l: &Literal| -> Result<Val, CompileError> {
        if matches!(l, Literal::Bool(_)) {
            return Err(CompileError::OperandType { comparison: text() });
        }
        lit_val(l)
    };
    let kind = match &t.op {
        Operator::Eq(l) => TestKind::Eq(lit_val(l)?),
        Operator::Ne(l) => TestKind::Ne(lit_val(l)?),
        Operator::Lt(l) => TestKind::Order(OrdOp::Lt, orderable(l)?),
        Operator::Le(l) => TestKind::Order(OrdOp::Le, orderable(l)?),
        Operator::Gt(l) => TestKind::Order(OrdOp::Gt, orderable(l)?),
        Operator::Ge(l) => TestKind::Order(OrdOp::Ge, orderable(l)?),
        Operator::In(list) => {
            let vals = list.iter().map(lit_val).collect::<Result<Vec<_>, _>>()?;
            let class = |v: &Val| match v {
                Val::Int(_) | Val::Float(_) => 0,
                Val::Str(_) => 1,
                Val::Bool(_) => 2,
                Val::Bin(_) => 3,
                Val::Ts(_) => 4,
            };
            if vals.windows(2).any(|w| class(&w[0]) != class(&w[1])) {
                return Err(CompileError::MixedSet { comparison: text() });
            }
            TestKind::In(vals)
        }
        Operator::Like(p) => {
            let p: String = p.nfc().collect();
            let mut re = String::from("(?s)^");
            for ch in p.chars() {
                match ch {
                    '%' => re.push_str(".*"),
                    '_' => re.push('.'),
                    c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
                }
            }
            re.push('$');
            let latin1 = p.chars().all(|c| (c as u32) < 0x100);
            let r = RegexBuilder::new(&re)
                .size_limit(limits.max_regex_bytes)
                .dfa_size_limit(limits.max_regex_bytes)
                .build()
                .map_err(regex_err)?;
            TestKind::Like(r, latin1)
        }
        Operator::Matches(p) => {
            let p: String = p.nfc().collect();
            let r = RegexBuilder::new(&format!("(?s:{p})"))
                .size_limit(limits.max_regex_bytes)
                .dfa_size_limit(limits.max_regex_bytes)
                .build()
                .map_err(regex_err)?;
            // Binary values are matched as in the reference: the regex's code points
            // (all below U+0100) taken as octets.
            let bin = if p.chars().all(|c| (c as u32) < 0x100) {
                BytesRegexBuilder::new(&format!("(?s:{})", latin1_escape(&p)))
                    .unicode(false)
                    .size_limit(limits.max_regex_bytes)
                    .dfa_size_limit(limits.max_regex_bytes)
                    .build()
                    .ok()
            } else {
                None
            };
            TestKind::Matches(r, bin)
        }
        Operator::IsSubset(s) => {
            TestKind::Subset(Block::parse(s, false).ok_or_else(|| CompileError::Network {
                comparison: text(),
                text: s.clone(),
                expected: "an IP address or CIDR block",
            })?)
        }
        Operator::IsSuperset(s) => {
            TestKind::Superset(Block::parse(s, false).ok_or_else(|| CompileError::Network {
                comparison: text(),
                text: s.clone(),
                expected: "an IP address or CIDR block",
            })?)
        }
        Operator::Exists => TestKind::Exists,
    };
    Ok(Test {
        object_type: t.path.object_type.clone(),
        steps: t.path.steps.clone(),
        negated: t.negated,
        kind,
    })
}

/// Rewrites code points U+0080..U+00FF as `\xHH` so a byte-mode regex matches them as
/// single octets.
fn latin1_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut escaped = false;
    for c in p.chars() {
        let high = (0x80..0x100).contains(&(c as u32));
        if high {
            if escaped {
                // `\é` is a literal é: drop the backslash, keep the octet.
                out.pop();
            }
            out.push_str(&format!("\\x{:02X}", c as u32));
            escaped = false;
            continue;
        }
        out.push(c);
        escaped = c == '\\' && !escaped;
    }
    out
}

// ---------------------------------------------------------------- data model

struct Obs<'a> {
    first: i64,
    last: i64,
    count: u64,
    /// (id or embedded key, object)
    objects: Vec<(&'a str, &'a Value)>,
}

impl<'a> Obs<'a> {
    fn lookup(&self, id: &str) -> Option<&'a Value> {
        self.objects.iter().find(|(k, _)| *k == id).map(|(_, v)| *v)
    }
}

fn prepare<'a, R: ScoResolver + ?Sized>(
    observed: &'a [Value],
    scos: &'a R,
) -> Result<Vec<Obs<'a>>, MatchError> {
    let mut out = Vec::with_capacity(observed.len());
    for (index, od) in observed.iter().enumerate() {
        let bad = |reason: String| MatchError::Observation { index, reason };
        let time = |key: &str| -> Result<i64, MatchError> {
            let s = od
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("missing or non-string {key}")))?;
            Timestamp::parse(s)
                .map(|t| t.as_micros())
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        let first = time("first_observed")?;
        let last = time("last_observed")?;
        if first > last {
            return Err(bad("first_observed is after last_observed".into()));
        }
        let count = od
            .get("number_observed")
            .and_then(Value::as_u64)
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("number_observed must be an integer >= 1".into()))?;
        let mut objects = Vec::new();
        if let Some(refs) = od.get("object_refs").and_then(Value::as_array) {
            for r in refs.iter().filter_map(Value::as_str) {
                if let Some(obj) = scos.resolve(r) {
                    objects.push((r, obj));
                }
            }
        }
        if let Some(embedded) = od.get("objects").and_then(Value::as_object) {
            for (k, v) in embedded {
                objects.push((k.as_str(), v));
            }
        }
        out.push(Obs {
            first,
            last,
            count,
            objects,
        });
    }
    Ok(out)
}

/// A value selected by a path.
#[derive(Debug)]
enum Dv<'a> {
    Json(&'a Value),
    Bin(Vec<u8>),
    /// The objects a `*_refs` list dereferenced to.
    Refs(Vec<&'a Value>),
}

fn select<'a>(root: &'a Value, steps: &[PathStep], obs: &Obs<'a>) -> Vec<Dv<'a>> {
    let mut cur = vec![Dv::Json(root)];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match (step, v) {
                (PathStep::Key(k), Dv::Json(Value::Object(m))) => {
                    let Some(x) = m.get(k) else { continue };
                    if k.ends_with("_ref") {
                        if let Some(target) = x.as_str().and_then(|id| obs.lookup(id)) {
                            next.push(Dv::Json(target));
                        }
                    } else if k.ends_with("_refs") {
                        if let Some(list) = x.as_array() {
                            let objs: Vec<&Value> = list
                                .iter()
                                .filter_map(Value::as_str)
                                .filter_map(|id| obs.lookup(id))
                                .collect();
                            if !objs.is_empty() {
                                next.push(Dv::Refs(objs));
                            }
                        }
                    } else if let (true, Some(s)) = (k.ends_with("_hex"), x.as_str()) {
                        next.push(codec::hex_decode(s).map_or(Dv::Json(x), Dv::Bin));
                    } else if let (true, Some(s)) = (k.ends_with("_bin"), x.as_str()) {
                        next.push(codec::b64_decode(s).map_or(Dv::Json(x), Dv::Bin));
                    } else {
                        next.push(Dv::Json(x));
                    }
                }
                (PathStep::Index(i), Dv::Json(Value::Array(a))) => {
                    if let Some(x) = usize::try_from(*i).ok().and_then(|i| a.get(i)) {
                        next.push(Dv::Json(x));
                    }
                }
                (PathStep::Index(i), Dv::Refs(objs)) => {
                    if let Some(x) = usize::try_from(*i).ok().and_then(|i| objs.get(i)) {
                        next.push(Dv::Json(x));
                    }
                }
                (PathStep::AnyIndex, Dv::Json(Value::Array(a))) => {
                    next.extend(a.iter().map(Dv::Json));
                }
                (PathStep::AnyIndex, Dv::Refs(objs)) => next.extend(objs.into_iter().map(Dv::Json)),
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

/// A comparison-ready view of a selected value.
enum Data<'a> {
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Bin(&'a [u8]),
    Other,
}

fn data<'a>(v: &'a Dv<'_>) -> Data<'a> {
    match v {
        Dv::Bin(b) => Data::Bin(b),
        Dv::Refs(_) => Data::Other,
        Dv::Json(j) => match j {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Data::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    Data::Int(i128::from(u))
                } else {
                    n.as_f64().map_or(Data::Other, Data::Float)
                }
            }
            Value::String(s) => Data::Str(s),
            Value::Bool(b) => Data::Bool(*b),
            _ => Data::Other,
        },
    }
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

enum Cmpd {
    Ord(Ordering),
    /// Types that cannot be ordered: the comparison is false even under NOT.
    Unsupported,
    /// Binary vs a string with code points >= U+0100: false, NOT applies.
    NotComparable,
}

struct Ctx {
    index: usize,
}

impl Ctx {
    fn ts(&self, s: &str) -> Result<i64, MatchError> {
        Timestamp::parse(s)
            .map(|t| t.as_micros())
            .map_err(|_| MatchError::BadTimestamp {
                index: self.index,
                value: s.to_owned(),
            })
    }

    fn eq(&self, d: &Data<'_>, lit: &Val) -> Result<bool, MatchError> {
        Ok(match (d, lit) {
            (Data::Str(s), Val::Ts(t)) => self.ts(s)? == *t,
            (Data::Int(a), Val::Int(b)) => *a == i128::from(*b),
            (Data::Int(a), Val::Float(b)) => (*a as f64) == *b,
            (Data::Float(a), Val::Int(b)) => *a == (*b as f64),
            (Data::Float(a), Val::Float(b)) => a == b,
            (Data::Str(a), Val::Str(b)) => *a == b,
            (Data::Str(a), Val::Bin(b)) => latin1(a).is_some_and(|x| x == *b),
            (Data::Bin(a), Val::Bin(b)) => a == b,
            (Data::Bin(a), Val::Str(b)) => latin1(b).is_some_and(|x| x == *a),
            (Data::Bool(a), Val::Bool(b)) => a == b,
            _ => false,
        })
    }

    fn order(&self, d: &Data<'_>, lit: &Val) -> Result<Cmpd, MatchError> {
        let ord = |o: Option<Ordering>| o.map_or(Cmpd::Unsupported, Cmpd::Ord);
        Ok(match (d, lit) {
            (Data::Str(s), Val::Ts(t)) => Cmpd::Ord(self.ts(s)?.cmp(t)),
            (Data::Int(a), Val::Int(b)) => Cmpd::Ord(a.cmp(&i128::from(*b))),
            (Data::Int(a), Val::Float(b)) => ord((*a as f64).partial_cmp(b)),
            (Data::Float(a), Val::Int(b)) => ord(a.partial_cmp(&(*b as f64))),
            (Data::Float(a), Val::Float(b)) => ord(a.partial_cmp(b)),
            (Data::Str(a), Val::Str(b)) => Cmpd::Ord(a.cmp(&b.as_str())),
            (Data::Bin(a), Val::Bin(b)) => Cmpd::Ord(a.cmp(&b.as_slice())),
            (Data::Str(a), Val::Bin(b)) => match latin1(a) {
                Some(x) => Cmpd::Ord(x.as_slice().cmp(b.as_slice())),
                None => Cmpd::NotComparable,
            },
            (Data::Bin(a), Val::Str(b)) => match latin1(b) {
                Some(x) => Cmpd::Ord(a.cmp(&x.as_slice())),
                None => Cmpd::NotComparable,
            },
            _ => Cmpd::Unsupported,
        })
    }

    /// One value against one test; `NOT` applied.
    fn test_value(&self, t: &Test, v: &Dv<'_>) -> Result<bool, MatchError> {
        let d = data(v);
        let r = match &t.kind {
            TestKind::Eq(l) => self.eq(&d, l)?,
            TestKind::Ne(l) => !self.eq(&d, l)?,
            TestKind::Order(op, l) => match self.order(&d, l)? {
                Cmpd::Unsupported => return Ok(false),
                Cmpd::NotComparable => false,
                Cmpd::Ord(o) => match op {
                    OrdOp::Lt => o.is_lt(),
                    OrdOp::Le => o.is_le(),
                    OrdOp::Gt => o.is_gt(),
                    OrdOp::Ge => o.is_ge(),
                },
            },
            TestKind::In(set) => {
                let mut found = false;
                for l in set {
                    if self.eq(&d, l)? {
                        found = true;
                        break;
                    }
                }
                found
            }
            TestKind::Like(re, latin1_pattern) => match d {
                Data::Str(s) => re.is_match(&s.nfc().collect::<String>()),
                Data::Bin(b) if *latin1_pattern => {
                    std::str::from_utf8(b).is_ok_and(|s| re.is_match(&s.nfc().collect::<String>()))
                }
                _ => false,
            },
            TestKind::Matches(re, bin) => match d {
                Data::Str(s) => re.is_match(&s.nfc().collect::<String>()),
                Data::Bin(b) => bin.as_ref().is_some_and(|r| r.is_match(b)),
                _ => false,
            },
            TestKind::Subset(outer) => match d {
                Data::Str(s) => Block::parse(s, false).is_some_and(|b| b.within(outer)),
                _ => false,
            },
            TestKind::Superset(inner) => match d {
                Data::Str(s) => Block::parse(s, false).is_some_and(|b| inner.within(&b)),
                _ => false,
            },
            TestKind::Exists => true,
        };
        Ok(r != t.negated)
    }

    fn test_root(&self, t: &Test, root: &Value, obs: &Obs<'_>) -> Result<bool, MatchError> {
        let values = select(root, &t.steps, obs);
        if let TestKind::Exists = t.kind {
            return Ok(values.is_empty() == t.negated);
        }
        for v in &values {
            if self.test_value(t, v)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn cmp_root(&self, c: &Cmp, ty: &str, root: &Value, obs: &Obs<'_>) -> Result<bool, MatchError> {
        match c {
            Cmp::And(v) => {
                for x in v {
                    if !self.cmp_root(x, ty, root, obs)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Cmp::Or(v) => {
                for x in v {
                    if self.cmp_root(x, ty, root, obs)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Cmp::Test(t) => {
                if t.object_type != ty {
                    return Ok(false);
                }
                self.test_root(t, root, obs)
            }
        }
    }
}

// ---------------------------------------------------------------- binding search

type Found<'s> = dyn FnMut(&mut Search<'_>, &mut Vec<u32>) -> Result<bool, MatchError> + 's;

struct Search<'m> {
    m: &'m Matcher,
    /// Per leaf, the observations it matches.
    hits: &'m [Vec<u32>],
    first: Vec<i64>,
    last: Vec<i64>,
    cap: Vec<u64>,
    used: Vec<u64>,
    steps: u64,
    /// Symmetry breaking for REPEATS: (binding start, previous copy's binding, active).
    lex: Vec<(usize, Vec<u32>, bool)>,
}

impl Search<'_> {
    fn lex_ok(&self, b: &[u32]) -> bool {
        self.lex
            .iter()
            .filter(|(_, _, on)| *on)
            .all(|(start, prev, _)| {
                let cur = &b[*start..];
                let n = cur.len().min(prev.len());
                cur[..n] >= prev[..n]
            })
    }

    fn max_first(&self, b: &[u32]) -> i64 {
        b.iter()
            .map(|&o| self.first[o as usize])
            .max()
            .unwrap_or(i64::MIN)
    }

    fn min_last(&self, b: &[u32]) -> i64 {
        b.iter()
            .map(|&o| self.last[o as usize])
            .min()
            .unwrap_or(i64::MAX)
    }

    fn solve(
        &mut self,
        node: &Node,
        b: &mut Vec<u32>,
        k: &mut Found<'_>,
    ) -> Result<bool, MatchError> {
        match node {
            Node::Leaf(i) => {
                let all = self.hits;
                match all.get(*i) {
                    Some(hits) => self.leaf(hits, b, k),
                    None => Ok(false),
                }
            }
            Node::And(v) => self.seq(v, 0, b, k),
            Node::Or(v) => {
                for x in v {
                    if self.solve(x, b, k)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Node::FollowedBy(v) => {
                let start = b.len();
                self.followed(v, 0, start, b, k)
            }
            Node::Within(inner, d) => {
                let start = b.len();
                self.solve(inner, b, &mut |s: &mut Search<'_>, b: &mut Vec<u32>| {
                    let part = &b[start..];
                    if part.is_empty() || s.max_first(part).saturating_sub(s.min_last(part)) <= *d {
                        k(s, b)
                    } else {
                        Ok(false)
                    }
                })
            }
            Node::StartStop(inner, from, to) => {
                if from >= to {
                    return Ok(false);
                }
                let start = b.len();
                self.solve(inner, b, &mut |s: &mut Search<'_>, b: &mut Vec<u32>| {
                    let ok = b[start..]
                        .iter()
                        .all(|&o| s.first[o as usize] < *to && s.last[o as usize] >= *from);
                    if ok { k(s, b) } else { Ok(false) }
                })
            }
            Node::Repeats(inner, n) => {
                // Each copy binds at least one observation.
                let available: u64 = self.cap.iter().sum();
                if *n > available {
                    return Ok(false);
                }
                self.repeat(inner, *n, None, b, k)
            }
        }
    }

    fn leaf(
        &mut self,
        hits: &[u32],
        b: &mut Vec<u32>,
        k: &mut Found<'_>,
    ) -> Result<bool, MatchError> {
        for &o in hits {
            let oi = o as usize;
            if self.used[oi] >= self.cap[oi] {
                continue;
            }
            b.push(o);
            if !self.lex_ok(b) {
                b.pop();
                continue;
            }
            self.steps += 1;
            if self.steps > self.m.max_steps {
                return Err(MatchError::Budget { steps: self.steps });
            }
            self.used[oi] += 1;
            let r = k(self, b);
            self.used[oi] -= 1;
            b.pop();
            if r? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn seq(
        &mut self,
        v: &[Node],
        i: usize,
        b: &mut Vec<u32>,
        k: &mut Found<'_>,
    ) -> Result<bool, MatchError> {
        if i == v.len() {
            return k(self, b);
        }
        self.solve(&v[i], b, &mut |s: &mut Search<'_>, b: &mut Vec<u32>| {
            s.seq(v, i + 1, b, k)
        })
    }

    fn followed(
        &mut self,
        v: &[Node],
        i: usize,
        start: usize,
        b: &mut Vec<u32>,
        k: &mut Found<'_>,
    ) -> Result<bool, MatchError> {
        if i == v.len() {
            return k(self, b);
        }
        let mid = b.len();
        self.solve(&v[i], b, &mut |s: &mut Search<'_>, b: &mut Vec<u32>| {
            if i > 0 && s.max_first(&b[start..mid]) > s.min_last(&b[mid..]) {
                return Ok(false);
            }
            s.followed(v, i + 1, start, b, k)
        })
    }

    fn repeat(
        &mut self,
        inner: &Node,
        n: u64,
        prev: Option<(usize, usize)>,
        b: &mut Vec<u32>,
        k: &mut Found<'_>,
    ) -> Result<bool, MatchError> {
        if n == 0 {
            return k(self, b);
        }
        let start = b.len();
        let slot = prev.map(|(ps, pe)| {
            self.lex.push((start, b[ps..pe].to_vec(), true));
            self.lex.len() - 1
        });
        let r = self.solve(inner, b, &mut |s: &mut Search<'_>, b: &mut Vec<u32>| {
            if let Some((ps, pe)) = prev
                && b[start..] < b[ps..pe]
            {
                return Ok(false);
            }
            if let Some(i) = slot {
                s.lex[i].2 = false;
            }
            let r = s.repeat(inner, n - 1, Some((start, b.len())), b, k);
            if let Some(i) = slot {
                s.lex[i].2 = true;
            }
            r
        });
        if slot.is_some() {
            self.lex.pop();
        }
        r
    }
}

impl Matcher {
    /// Whether the observations satisfy the pattern. `observed` holds observed-data
    /// objects (STIX 2.1 with `object_refs`, or 2.0-style with embedded `objects`);
    /// `scos` resolves the ids in `object_refs`.
    pub fn matches<R: ScoResolver + ?Sized>(
        &self,
        observed: &[Value],
        scos: &R,
    ) -> Result<bool, MatchError> {
        Ok(self.find(observed, scos)?.is_some())
    }

    /// Like [`Matcher::matches`], returning the indices (ascending, distinct) of the
    /// observed-data objects of the first binding found.
    pub fn find<R: ScoResolver + ?Sized>(
        &self,
        observed: &[Value],
        scos: &R,
    ) -> Result<Option<Vec<usize>>, MatchError> {
        let obs = prepare(observed, scos)?;
        let mut hits = Vec::with_capacity(self.leaves.len());
        for leaf in &self.leaves {
            let mut h = Vec::new();
            for (index, o) in obs.iter().enumerate() {
                let ctx = Ctx { index };
                let mut hit = false;
                for (_, root) in &o.objects {
                    let Some(ty) = root.get("type").and_then(Value::as_str) else {
                        continue;
                    };
                    // STIX 2.1 types that are not SCOs are never roots (reference
                    // matcher: `[observed-data:...]`, `[identity:...]` match nothing).
                    use phalanx_stix::ObjectClass;
                    if !matches!(ObjectClass::of(ty), ObjectClass::Sco | ObjectClass::Custom) {
                        continue;
                    }
                    if ctx.cmp_root(leaf, ty, root, o)? {
                        hit = true;
                        break;
                    }
                }
                if hit {
                    // Observation counts never exceed u32 in practice; larger inputs
                    // are refused rather than truncated.
                    let Ok(i) = u32::try_from(index) else {
                        return Err(MatchError::Observation {
                            index,
                            reason: "too many observations".into(),
                        });
                    };
                    h.push(i);
                }
            }
            hits.push(h);
        }
        let mut search = Search {
            m: self,
            hits: &hits,
            first: obs.iter().map(|o| o.first).collect(),
            last: obs.iter().map(|o| o.last).collect(),
            cap: obs.iter().map(|o| o.count.min(self.slots)).collect(),
            used: vec![0; obs.len()],
            steps: 0,
            lex: Vec::new(),
        };
        let mut found: Option<Vec<usize>> = None;
        let mut done = |_: &mut Search<'_>, b: &mut Vec<u32>| -> Result<bool, MatchError> {
            let mut v: Vec<usize> = b.iter().map(|&o| o as usize).collect();
            v.sort_unstable();
            v.dedup();
            found = Some(v);
            Ok(true)
        };
        let mut b = Vec::new();
        search.solve(&self.root, &mut b, &mut done)?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::latin1_escape;

    #[test]
    fn latin1_escape_table() {
        for (input, want) in [
            ("abc", "abc"),
            ("\u{e9}", "\\xE9"),
            ("\\\u{e9}", "\\xE9"),
            ("\\\\\u{e9}", "\\\\\\xE9"),
            ("\\x61", "\\x61"),
        ] {
            assert_eq!(latin1_escape(input), want, "{input:?}");
        }
    }
}
