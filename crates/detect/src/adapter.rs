//! Telemetry adapters: one line of bytes in, one [`Record`] of borrowed observables out.
//!
//! Every adapter follows the same contract:
//! - it reads only the line it is given (no state between lines) and copies nothing but
//!   values that need unescaping or assembling (an URL built from host and path);
//! - a line that is not what the adapter reads is an [`AdapterError`] naming what is
//!   wrong and the byte offset; the caller counts it and goes on ([`crate::Hunt`]);
//! - a record without a usable time gets `time: None` (the caller's time is used).
//!
//! The JSON adapters use the [`crate::scan`] scanner (no tree is built).
//!
//! ## Cost per line (Suricata, the benchmark's format)
//!
//! Besides the scanner, the adapter's own work per eve line was measured with `perf`
//! on the benchmark ([`crate::bench`], 1 M indicators, 2 M lines of ~500 bytes, one
//! core) and cut in four steps, each kept because the benchmark showed it (medians of
//! interleaved before/after runs on a two-core machine shared with other work, where
//! single runs vary by ±30%, so small effects need many runs):
//! 1. addresses parsed by a dedicated IPv4 reader (`observable::parse_ipv4`) instead
//!    of std's `IpAddr` parser, in `Record::push`, in the address-or-name choice and in
//!    the index's CIDR lookup (6 runs each: parse + match 358k → 409k lines/s,
//!    parse only 736k → 773k);
//! 2. Suricata's fixed time format read from the bytes (`suricata_time`; 6 runs:
//!    409k → 472k, 773k → 890k);
//! 3. one UTF-8 check of the whole line instead of one per used value (`text_in`;
//!    5 runs: parse only 778k → 906k, parse + match unchanged within noise);
//! 4. the record's observables vector reused from line to line
//!    ([`Adapter::parse_into`], used by [`crate::Hunt`] and the benchmark; 16 runs at
//!    1,000 indicators: parse only 727k → 794k, parse + match 480k → 489k; at 1 M
//!    indicators six runs could not tell it from noise).
//!
//! A later round (after the scanner's block bitmaps, see [`crate::scan`]) took two more:
//! 5. the key filter and the leaf dispatch share one `Field` code per key
//!    (`suricata_field`, computed from the parent's code when the scanner asks
//!    whether a key is wanted), so a leaf is dispatched on one byte instead of its
//!    path being matched again, and `wants` no longer matches the parent path either
//!    (`cargo run --release -p phalanx-detect --example bench -- --indicators 200000
//!    --lines 500000`, medians of three interleaved runs: parse only 2.15 M → 2.32 M
//!    lines/s, parse + match 1.26 M → 1.37 M). A property test checks that the codes
//!    skip nothing and add nothing against the previous path-matching dispatch
//!    (`leaf_by_path`, tests only);
//! 6. the whole-line UTF-8 check is an OR of the line's words when the line is ASCII
//!    (`line_text`; `str::from_utf8` otherwise), and ports are checked without std's
//!    generic number parser (`observable::is_port`, a property test against
//!    `u16::from_str`): together 3.3% fewer instructions per parsed line (callgrind:
//!    `from_utf8` was 465 instructions a line), too small to see in wall-clock runs
//!    on this machine.

use std::borrow::Cow;
use std::collections::HashMap;

use phalanx_stix::Timestamp;
use serde_json::Value;

use crate::observable::{Kind, Record};
use crate::scan::{self, Leaf, ScanError};

/// Why a line gave no record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The line is not a well-formed JSON object.
    #[error("malformed JSON: {0}")]
    Json(#[from] ScanError),
    /// The line is JSON but not a STIX observed-data / bundle the adapter can use.
    #[error("not STIX observed-data: {0}")]
    Stix(String),
}

/// Turns one telemetry line into a [`Record`].
pub trait Adapter: Send + Sync {
    /// A short name for reports (`zeek`, `suricata`, ...).
    fn name(&self) -> &'static str;
    /// Parses one line (without its line terminator).
    fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, AdapterError>;

    /// Parses one line into `record`, replacing its contents (on error `record` is left
    /// empty). Same result as [`Adapter::parse`]; an adapter may override it to reuse
    /// the record's allocations (its observables vector) from line to line, which
    /// [`crate::Hunt`] and the benchmark do. The default calls [`Adapter::parse`].
    fn parse_into<'a>(&self, line: &'a [u8], record: &mut Record<'a>) -> Result<(), AdapterError> {
        match self.parse(line) {
            Ok(r) => {
                *record = r;
                Ok(())
            }
            Err(e) => {
                *record = Record::default();
                Err(e)
            }
        }
    }
}

fn str_of<'a>(leaf: Leaf<'a>) -> Option<Cow<'a, str>> {
    leaf.as_str()
}

/// Seconds since the epoch (Zeek `ts`) to a timestamp.
fn epoch_seconds(leaf: Leaf<'_>) -> Option<Timestamp> {
    let s = leaf.as_f64().or_else(|| leaf.as_str()?.parse().ok())?;
    if !s.is_finite() || s.abs() > 1e11 {
        return None;
    }
    Some(Timestamp::from_micros((s * 1e6).round() as i64))
}

/// RFC 3339-like times as sensors write them: `2020-04-30T00:06:39.824370+0000`,
/// `...+00:00`, `...Z`, or a plain STIX timestamp.
pub(crate) fn loose_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let (base, zone) = s.split_at(i);
    let offset_secs: i64 = match zone.as_bytes() {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let digits: Vec<u8> = rest.iter().copied().filter(|c| *c != b':').collect();
            if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = |a: u8, b: u8| i64::from(a - b'0') * 10 + i64::from(b - b'0');
            let off = n(digits[0], digits[1]) * 3600 + n(digits[2], digits[3]) * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    // The STIX form on a stack buffer: `T` between date and time, `Z` at the end.
    let mut buf = [0u8; 48];
    let n = base.len();
    if n + 1 > buf.len() {
        return None;
    }
    buf[..n].copy_from_slice(base.as_bytes());
    if buf[10] == b' ' {
        buf[10] = b'T';
    }
    buf[n] = b'Z';
    let t = Timestamp::parse(std::str::from_utf8(&buf[..=n]).ok()?).ok()?;
    Some(Timestamp::from_micros(
        t.as_micros()
            .checked_sub(offset_secs.checked_mul(1_000_000)?)?,
    ))
}

/// Suricata's own time format, `YYYY-MM-DDTHH:MM:SS.ffffff+0000` (31 bytes, UTC),
/// read straight from the line's bytes; `None` for anything else, including dates this
/// short path does not vouch for (years before 1970, invalid dates), which then go
/// through [`loose_time`].
///
/// Why: every eve line has one, and the general path (UTF-8 check, zone split, copy to
/// the STIX form, `Timestamp::parse`) was ~2.5% of the benchmark's samples. A property
/// test checks that both paths agree on every input this one accepts.
fn suricata_time(raw: &[u8]) -> Option<Timestamp> {
    let b: &[u8; 31] = raw.try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || &b[26..] != b"+0000"
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |n, &c| {
            let d = c.wrapping_sub(b'0');
            (d <= 9).then_some(n * 10 + i64::from(d))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec, micros) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year < 1970 || !(1..=month_days).contains(&day) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
    // `days_from_civil`), with March as the first month of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y / 400, y % 400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec;
    Some(Timestamp::from_micros(secs * 1_000_000 + micros))
}

/// Pushes an address, or a name when it is not an address.
fn ip_or_domain<'a>(r: &mut Record<'a>, v: Cow<'a, str>) {
    if crate::observable::is_ip(&v) {
        r.push(Kind::Ip, v);
    } else {
        r.push(Kind::Domain, v);
    }
}

fn make_url(host: Option<Cow<'_, str>>, path: Cow<'_, str>) -> String {
    if path.contains("://") {
        return path.into_owned();
    }
    let host = host.unwrap_or(Cow::Borrowed(""));
    let mut u = String::with_capacity(7 + host.len() + path.len());
    u.push_str("http://");
    u.push_str(&host.to_ascii_lowercase());
    if !path.starts_with('/') {
        u.push('/');
    }
    u.push_str(&path);
    u
}

/// Zeek JSON logs (`LogAscii::use_json`), one record per line, any log stream.
///
/// Fields read (both `id.orig_h` and `id_orig_h` spellings): `ts`; `id.orig_h` /
/// `id.resp_h` (source / destination), ports and `proto`; `src`, `dst`, `tx_hosts`,
/// `rx_hosts` (addresses); `orig_l2_addr` / `resp_l2_addr` (MAC); dns `query` and
/// `answers` (addresses or names); http `host` + `uri` (domain and URL); ssl
/// `server_name`; files `md5`, `sha1`, `sha256`, `filename`; smb_files `name`; smtp
/// `mailfrom`, `rcptto`. Streams with none of these (`weird`, `pe`, `x509`) give a
/// record with only a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Zeek;

impl Adapter for Zeek {
    fn name(&self) -> &'static str {
        "zeek"
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, AdapterError> {
        let mut r = Record::default();
        r.observables.reserve(12);
        let mut host: Option<Cow<'a, str>> = None;
        let mut uri: Option<Cow<'a, str>> = None;
        scan::walk_with(
            line,
            &mut TopLevel(|path: &[&'a [u8]], leaf: Leaf<'a>| {
                let [key] = path else { return };
                let key: &[u8] = key;
                match key {
                    b"ts" => r.time = epoch_seconds(leaf),
                    b"id.orig_h" | b"id_orig_h" => {
                        if let Some(v) = str_of(leaf) {
                            r.push(Kind::SrcIp, v)
                        }
                    }
                    b"id.resp_h" | b"id_resp_h" => {
                        if let Some(v) = str_of(leaf) {
                            r.push(Kind::DstIp, v)
                        }
                    }
                    b"id.orig_p" | b"id_orig_p" | b"id.resp_p" | b"id_resp_p" => {
                        if let Leaf::Num(n) = leaf
                            && let Ok(n) = std::str::from_utf8(n)
                        {
                            let k = if key.ends_with(b"orig_p") {
                                Kind::SrcPort
                            } else {
                                Kind::DstPort
                            };
                            r.push(k, Cow::Borrowed(n));
                        }
                    }
                    b"proto" => {
                        if let Some(v) = str_of(leaf) {
                            r.push(Kind::Protocol, v)
                        }
                    }
                    b"src" | b"dst" | b"tx_hosts" | b"rx_hosts" => {
                        if let Some(v) = str_of(leaf) {
                            r.push(Kind::Ip, v)
                        }
                    }
                    b"orig_l2_addr" | b"resp_l2_addr" => {
                        if let Some(v) = str_of(leaf) {
                            r.push(Kind::Mac, v)
                        }
                    }
                    b"query" | b"server_name" => {
                        if let Some(v) = str_of(leaf) {
                            ip_or_domain(&mut r, v)
                        }
                    }
                    b"answers" => {
                        if let Some(v) = str_of(leaf) {
                            ip_or_domain(&mut r, v)
                        }
                    }
                    b"host" => {
                        if let Some(v) = str_of(leaf) {
                            host = Some(v.clone());
                            ip_or_domain(&mut r, v)
                        }
                    }
                    b"uri" => uri = str_of(leaf),
                    b"md5" | b"sha1" | b"sha256" => {
                        if let Some(v) = str_of(leaf) {
                            let k = match key {
                                b"md5" => Kind::Md5,
                                b"sha1" => Kind::Sha1,
                                _ => Kind::Sha256,
                            };
                            r.push(k, v)
                        }
                    }
                    b"filename" | b"name" if path.len() == 1 => {
                        // `name` is a file name in smb_files only; in weird it is the
                        // weird's name. Both are harmless as file names, but keep it
                        // honest: only paths with a separator or a dot count.
                        if let Some(v) = str_of(leaf)
                            && (key == b"filename" || v.contains(['\\', '/', '.']))
                        {
                            r.push(Kind::FileName, v)
                        }
                    }
                    b"mailfrom" | b"rcptto" => {
                        if let Some(v) = str_of(leaf) {
                            let t = trim_angle(v);
                            r.push(Kind::Email, t)
                        }
                    }
                    _ => {}
                }
            }),
        )?;
        if let Some(u) = uri {
            let url = make_url(host, u);
            r.push(Kind::Url, Cow::Owned(url));
        }
        Ok(r)
    }
}

/// A visitor over top-level keys only (Zeek logs are flat: nested values are skipped
/// unvisited).
struct TopLevel<F>(F);

impl<'a, F: FnMut(&[&'a [u8]], Leaf<'a>)> scan::Visitor<'a> for TopLevel<F> {
    fn wants(&mut self, parent: &[&'a [u8]], _key: &'a [u8]) -> bool {
        parent.is_empty()
    }
    fn leaf(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>) {
        (self.0)(path, leaf)
    }
}

fn trim_angle(v: Cow<'_, str>) -> Cow<'_, str> {
    match v {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim_matches(['<', '>', ' '])),
        Cow::Owned(s) => Cow::Owned(s.trim_matches(['<', '>', ' ']).to_owned()),
    }
}

/// Suricata `eve.json`, any `event_type`.
///
/// Fields read: `timestamp`; `src_ip` / `dest_ip`, `src_port` / `dest_port`, `proto`,
/// `app_proto`; dns `rrname` (v1 and v2 `queries` / `answers`), `rdata` (addresses or
/// names), `grouped.A` / `AAAA` / `CNAME`; http `hostname` + `url`; tls `sni`;
/// fileinfo `filename`, `md5`, `sha1`, `sha256`; smtp `mail_from`, `rcpt_to`; email
/// `from`, `to`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Suricata;

impl Adapter for Suricata {
    fn name(&self) -> &'static str {
        "suricata"
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, AdapterError> {
        let mut r = Record::default();
        r.observables.reserve(12);
        self.parse_into(line, &mut r)?;
        Ok(r)
    }

    /// Reuses `record.observables` (one allocation fewer per line: malloc and free were
    /// ~2.5% of the benchmark's samples).
    fn parse_into<'a>(&self, line: &'a [u8], record: &mut Record<'a>) -> Result<(), AdapterError> {
        let mut observables = std::mem::take(&mut record.observables);
        observables.clear();
        *record = Record::default();
        let mut v = SuricataVisitor {
            text: line_text(line),
            record: Record {
                observables,
                ..Record::default()
            },
            ..SuricataVisitor::default()
        };
        match scan::walk_with(line, &mut v) {
            Ok(()) => {
                *record = v.finish();
                Ok(())
            }
            Err(e) => {
                record.observables = v.record.observables;
                record.observables.clear();
                Err(e.into())
            }
        }
    }
}

/// The Suricata adapter's state while a line is walked.
#[derive(Default)]
struct SuricataVisitor<'a> {
    record: Record<'a>,
    /// The whole line, when it is valid UTF-8: used values are cut from it (see
    /// [`text_in`]) instead of being validated one by one.
    text: Option<&'a str>,
    host: Option<Cow<'a, str>>,
    url: Option<Cow<'a, str>>,
    /// The [`Field`] of each key on the current path, by depth (set by `wants`: the
    /// scanner asks before it descends, so `fields[d]` is the field of the key at depth
    /// `d` of every leaf below it). Four levels are enough: no field lies deeper than
    /// `dns.answers[].rdata`.
    fields: [Field; 4],
    /// Set by the unfiltered reference walk in tests: want every key, and act on leaves
    /// by matching their paths (`leaf_by_path`, the previous dispatch).
    #[cfg(test)]
    every: bool,
}

impl<'a> SuricataVisitor<'a> {
    fn finish(mut self) -> Record<'a> {
        if let Some(u) = self.url {
            self.record
                .push(Kind::Url, Cow::Owned(make_url(self.host, u)));
        }
        self.record
    }
}

/// Whether every byte of `b` is ASCII: the words OR-ed together, 32 bytes a round
/// (LLVM turns the rounds into 16-byte vector ORs), then one test of the high bits.
#[inline]
fn is_ascii_line(b: &[u8]) -> bool {
    let mut acc = 0u64;
    let mut rounds = b.chunks_exact(32);
    for round in &mut rounds {
        for w in round.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            acc |= u64::from_le_bytes(a);
        }
    }
    let tail = rounds.remainder().iter().fold(0u8, |t, &c| t | c);
    acc & 0x8080_8080_8080_8080 == 0 && tail < 0x80
}

/// The whole line as text when it is valid UTF-8 (see [`text_in`]).
///
/// Telemetry lines are nearly always ASCII, which [`is_ascii_line`] checks at about
/// a quarter of the instructions of `str::from_utf8` on a ~500-byte eve line (465 per
/// line, ~4% of the adapter's, in callgrind); other lines get the full check.
#[inline]
fn line_text(line: &[u8]) -> Option<&str> {
    if is_ascii_line(line) {
        // SAFETY: every byte is below 0x80 (checked just above), and a sequence of
        // ASCII bytes is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(line) })
    } else {
        std::str::from_utf8(line).ok()
    }
}

/// `raw`, a slice of the line `text`, as a `&str` without a second UTF-8 check; `None`
/// when there is no valid text or `raw` is not part of it.
///
/// Why: the adapter uses eight to twelve values per eve line, and `str::from_utf8` on
/// each (a call and its alignment set-up for ~10-byte strings) was ~5% of the
/// benchmark's samples; one check of the whole line (~500 bytes of mostly ASCII, where
/// the check runs word by word) costs less. A line that is not valid UTF-8 as a whole
/// (the scanner does not require it in skipped values) falls back to the per-value
/// check, so the result is the same either way.
#[inline]
fn text_in<'a>(text: Option<&'a str>, raw: &'a [u8]) -> Option<&'a str> {
    let t = text?;
    let off = (raw.as_ptr() as usize).checked_sub(t.as_ptr() as usize)?;
    // `get` checks the bounds and char boundaries; the pointer check proves `raw` is
    // this very part of the line.
    t.get(off..off.checked_add(raw.len())?)
        .filter(|s| s.as_ptr() == raw.as_ptr())
}

/// A string leaf's value, through [`text_in`] when it has no escapes.
#[inline]
fn str_in<'a>(text: Option<&'a str>, leaf: Leaf<'a>) -> Option<Cow<'a, str>> {
    match leaf {
        Leaf::Str(raw, false) => match text_in(text, raw) {
            Some(s) => Some(Cow::Borrowed(s)),
            None => leaf.as_str(),
        },
        _ => leaf.as_str(),
    }
}

/// What the Suricata adapter does with the value under a key: descend into it (the
/// containers `Dns` ... `Mail`), use it (`Timestamp` ... `Email`), or skip it
/// (`Unused`). Computed once per key from the parent's field ([`suricata_field`]),
/// so a leaf is dispatched on one byte instead of matching its path again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Field {
    #[default]
    Unused,
    /// The line's object itself (the parent of the top-level keys).
    Root,
    Dns,
    DnsQueries,
    DnsAnswers,
    DnsGrouped,
    Http,
    Tls,
    FileInfo,
    /// `smtp` or `email`.
    Mail,
    Timestamp,
    SrcIp,
    DestIp,
    SrcPort,
    DestPort,
    /// `proto` or `app_proto`.
    Proto,
    /// dns `rrname` (also under `queries` and `answers`), `grouped.CNAME`, tls `sni`.
    Domain,
    /// dns `rdata` (also under `answers`), `grouped.A` / `AAAA`.
    IpOrDomain,
    HttpHost,
    HttpUrl,
    FileName,
    Md5,
    Sha1,
    Sha256,
    /// smtp / email `mail_from`, `rcpt_to`, `from`, `to`.
    Email,
}

/// The field of `key` under a value of field `parent`: exactly the paths the adapter
/// acts on, and their prefixes. Everything else (flow counters, alert metadata, user
/// agents, ...) is `Unused` and skipped by the scanner without a visit: on the eve
/// benchmark this roughly halves the adapter's cost per line.
fn suricata_field(parent: Field, key: &[u8]) -> Field {
    match parent {
        Field::Root => match key {
            b"timestamp" => Field::Timestamp,
            b"src_ip" => Field::SrcIp,
            b"dest_ip" => Field::DestIp,
            b"src_port" => Field::SrcPort,
            b"dest_port" => Field::DestPort,
            b"proto" | b"app_proto" => Field::Proto,
            b"dns" => Field::Dns,
            b"http" => Field::Http,
            b"tls" => Field::Tls,
            b"fileinfo" => Field::FileInfo,
            b"smtp" | b"email" => Field::Mail,
            _ => Field::Unused,
        },
        Field::Dns => match key {
            b"rrname" => Field::Domain,
            b"rdata" => Field::IpOrDomain,
            b"queries" => Field::DnsQueries,
            b"answers" => Field::DnsAnswers,
            b"grouped" => Field::DnsGrouped,
            _ => Field::Unused,
        },
        Field::DnsQueries => match key {
            b"rrname" => Field::Domain,
            _ => Field::Unused,
        },
        Field::DnsAnswers => match key {
            b"rrname" => Field::Domain,
            b"rdata" => Field::IpOrDomain,
            _ => Field::Unused,
        },
        Field::DnsGrouped => match key {
            b"A" | b"AAAA" => Field::IpOrDomain,
            b"CNAME" => Field::Domain,
            _ => Field::Unused,
        },
        Field::Http => match key {
            b"hostname" => Field::HttpHost,
            b"url" => Field::HttpUrl,
            _ => Field::Unused,
        },
        Field::Tls => match key {
            b"sni" => Field::Domain,
            _ => Field::Unused,
        },
        Field::FileInfo => match key {
            b"filename" => Field::FileName,
            b"md5" => Field::Md5,
            b"sha1" => Field::Sha1,
            b"sha256" => Field::Sha256,
            _ => Field::Unused,
        },
        Field::Mail => match key {
            b"mail_from" | b"rcpt_to" | b"from" | b"to" => Field::Email,
            _ => Field::Unused,
        },
        _ => Field::Unused,
    }
}

impl<'a> SuricataVisitor<'a> {
    /// Acts on one leaf of a used field.
    #[inline]
    fn act(&mut self, field: Field, leaf: Leaf<'a>) {
        let text = self.text;
        let r = &mut self.record;
        let push = |r: &mut Record<'a>, k: Kind| {
            if let Some(v) = str_in(text, leaf) {
                r.push(k, v)
            }
        };
        match field {
            Field::Timestamp => {
                r.time = match leaf {
                    Leaf::Str(raw, false) => suricata_time(raw),
                    _ => None,
                }
                .or_else(|| str_in(text, leaf).and_then(|s| loose_time(&s)))
            }
            Field::SrcIp => push(r, Kind::SrcIp),
            Field::DestIp => push(r, Kind::DstIp),
            Field::SrcPort | Field::DestPort => {
                if let Leaf::Num(n) = leaf
                    && let Some(n) = text_in(text, n).or_else(|| std::str::from_utf8(n).ok())
                {
                    let k = if field == Field::SrcPort {
                        Kind::SrcPort
                    } else {
                        Kind::DstPort
                    };
                    r.push(k, Cow::Borrowed(n));
                }
            }
            Field::Proto => push(r, Kind::Protocol),
            Field::Domain => push(r, Kind::Domain),
            Field::IpOrDomain => {
                if let Some(v) = str_in(text, leaf) {
                    ip_or_domain(r, v)
                }
            }
            Field::HttpHost => {
                if let Some(v) = str_in(text, leaf) {
                    self.host = Some(v.clone());
                    ip_or_domain(r, v)
                }
            }
            Field::HttpUrl => self.url = str_in(text, leaf),
            Field::FileName => push(r, Kind::FileName),
            Field::Md5 => push(r, Kind::Md5),
            Field::Sha1 => push(r, Kind::Sha1),
            Field::Sha256 => push(r, Kind::Sha256),
            Field::Email => {
                if let Some(v) = str_in(text, leaf) {
                    r.push(Kind::Email, trim_angle(v))
                }
            }
            Field::Unused
            | Field::Root
            | Field::Dns
            | Field::DnsQueries
            | Field::DnsAnswers
            | Field::DnsGrouped
            | Field::Http
            | Field::Tls
            | Field::FileInfo
            | Field::Mail => {}
        }
    }

    /// The previous dispatch, on the leaf's whole path: the reference the field codes
    /// are tested against (`suricata_filter_loses_nothing`).
    #[cfg(test)]
    fn leaf_by_path(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>) {
        let text = self.text;
        let r = &mut self.record;
        let push = |r: &mut Record<'a>, k: Kind| {
            if let Some(v) = str_in(text, leaf) {
                r.push(k, v)
            }
        };
        // Dispatch on the top-level key first.
        let Some((&top, rest)) = path.split_first() else {
            return;
        };
        let top: &[u8] = top;
        if rest.is_empty() {
            match top {
                b"timestamp" => {
                    r.time = match leaf {
                        Leaf::Str(raw, false) => suricata_time(raw),
                        _ => None,
                    }
                    .or_else(|| str_in(text, leaf).and_then(|s| loose_time(&s)))
                }
                b"src_ip" => push(r, Kind::SrcIp),
                b"dest_ip" => push(r, Kind::DstIp),
                b"src_port" | b"dest_port" => {
                    if let Leaf::Num(n) = leaf
                        && let Some(n) = text_in(text, n).or_else(|| std::str::from_utf8(n).ok())
                    {
                        let k = if top == b"src_port" {
                            Kind::SrcPort
                        } else {
                            Kind::DstPort
                        };
                        r.push(k, Cow::Borrowed(n));
                    }
                }
                b"proto" | b"app_proto" => push(r, Kind::Protocol),
                _ => {}
            }
            return;
        }
        match top {
            b"dns" => match rest {
                [b"rrname"]
                | [b"queries", b"rrname"]
                | [b"answers", b"rrname"]
                | [b"grouped", b"CNAME"] => push(r, Kind::Domain),
                [b"rdata"]
                | [b"answers", b"rdata"]
                | [b"grouped", b"A"]
                | [b"grouped", b"AAAA"] => {
                    if let Some(v) = str_in(text, leaf) {
                        ip_or_domain(r, v)
                    }
                }
                _ => {}
            },
            b"http" => match rest {
                [b"hostname"] => {
                    if let Some(v) = str_in(text, leaf) {
                        self.host = Some(v.clone());
                        ip_or_domain(r, v)
                    }
                }
                [b"url"] => self.url = str_in(text, leaf),
                _ => {}
            },
            b"tls" if rest == [b"sni"] => push(r, Kind::Domain),
            b"fileinfo" => match rest {
                [b"filename"] => push(r, Kind::FileName),
                [b"md5"] => push(r, Kind::Md5),
                [b"sha1"] => push(r, Kind::Sha1),
                [b"sha256"] => push(r, Kind::Sha256),
                _ => {}
            },
            b"smtp" | b"email" => match rest {
                [b"mail_from"] | [b"rcpt_to"] | [b"from"] | [b"to"] => {
                    if let Some(v) = str_in(text, leaf) {
                        r.push(Kind::Email, trim_angle(v))
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

impl<'a> scan::Visitor<'a> for SuricataVisitor<'a> {
    #[inline]
    fn wants(&mut self, parent: &[&'a [u8]], key: &'a [u8]) -> bool {
        #[cfg(test)]
        if self.every {
            return true;
        }
        let depth = parent.len();
        let up = match depth.checked_sub(1) {
            None => Field::Root,
            Some(d) => self.fields.get(d).copied().unwrap_or_default(),
        };
        let field = suricata_field(up, key);
        match self.fields.get_mut(depth) {
            Some(slot) if field != Field::Unused => {
                *slot = field;
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn leaf(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>) {
        #[cfg(test)]
        if self.every {
            return self.leaf_by_path(path, leaf);
        }
        let field = path
            .len()
            .checked_sub(1)
            .and_then(|d| self.fields.get(d))
            .copied()
            .unwrap_or_default();
        self.act(field, leaf);
    }
}

/// Why a field mapping was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// An entry is not `path=kind`.
    #[error("mapping entry {entry:?} is not of the form field.path=kind")]
    Syntax {
        /// The entry.
        entry: String,
    },
    /// The kind is not one of [`Kind::name`] (or `time`).
    #[error("mapping entry {entry:?}: unknown kind {kind:?}")]
    UnknownKind {
        /// The entry.
        entry: String,
        /// The kind named.
        kind: String,
    },
}

/// Generic JSON lines with a declared field mapping (ECS-style dotted paths).
///
/// A mapping is `path=kind` entries separated by commas, e.g.
/// `@timestamp=time,source.ip=src_ip,destination.ip=dst_ip,dns.question.name=domain,url.full=url`.
/// A path matches nested objects (`{"source":{"ip":..}}`), dotted keys
/// (`{"source.ip":..}`) and array elements (`{"dns":{"answers":[{"data":..}]}}` for
/// `dns.answers.data`). `time` takes RFC 3339 text or epoch seconds.
#[derive(Debug, Clone, Default)]
pub struct GenericJson {
    fields: HashMap<Vec<u8>, Kind>,
    time: Vec<Vec<u8>>,
}

impl GenericJson {
    /// Parses a mapping (see the type's documentation).
    pub fn from_spec(spec: &str) -> Result<GenericJson, MappingError> {
        let mut g = GenericJson::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((path, kind)) = entry.split_once('=') else {
                return Err(MappingError::Syntax {
                    entry: entry.to_owned(),
                });
            };
            let (path, kind) = (path.trim(), kind.trim());
            if path.is_empty() {
                return Err(MappingError::Syntax {
                    entry: entry.to_owned(),
                });
            }
            if kind == "time" {
                g.time.push(path.as_bytes().to_vec());
                continue;
            }
            let k = Kind::from_name(kind).ok_or_else(|| MappingError::UnknownKind {
                entry: entry.to_owned(),
                kind: kind.to_owned(),
            })?;
            g.fields.insert(path.as_bytes().to_vec(), k);
        }
        Ok(g)
    }
}

impl Adapter for GenericJson {
    fn name(&self) -> &'static str {
        "json"
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, AdapterError> {
        let mut r = Record::default();
        let mut joined: Vec<u8> = Vec::with_capacity(64);
        scan::walk(line, &mut |path, leaf| {
            joined.clear();
            for (i, k) in path.iter().enumerate() {
                if i > 0 {
                    joined.push(b'.');
                }
                joined.extend_from_slice(k);
            }
            if self.time.contains(&joined) {
                r.time = match leaf {
                    Leaf::Num(_) => epoch_seconds(leaf),
                    _ => leaf.as_str().and_then(|s| loose_time(&s)),
                };
                return;
            }
            if let Some(&k) = self.fields.get(joined.as_slice()) {
                let v = match leaf {
                    Leaf::Num(n) => std::str::from_utf8(n).ok().map(Cow::Borrowed),
                    _ => leaf.as_str(),
                };
                if let Some(v) = v {
                    r.push(k, v);
                }
            }
        })?;
        Ok(r)
    }
}

/// STIX observed-data: a line holding a bundle (its observed-data objects and the SCOs
/// beside them), or one observed-data object with embedded `objects` (STIX 2.0 style).
/// Each observed-data is matched on its own; SCOs referenced by `object_refs` must be
/// in the same bundle.
#[derive(Debug, Clone, Copy, Default)]
pub struct StixObserved {
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
}

/// The STIX part of a [`Record`]: observed-data objects and the SCOs they reference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StixRecord {
    /// The observed-data objects, each matched on its own.
    pub observed: Vec<Value>,
    /// SCOs by id.
    pub scos: HashMap<String, Value>,
}

impl Adapter for StixObserved {
    fn name(&self) -> &'static str {
        "stix"
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, AdapterError> {
        let depth = if self.max_depth == 0 {
            64
        } else {
            self.max_depth
        };
        let v = phalanx_stix::json::parse_strict(line, depth)
            .map_err(|e| AdapterError::Stix(e.to_string()))?;
        let mut rec = StixRecord::default();
        let objects: Vec<Value> = match v.get("type").and_then(Value::as_str) {
            Some("bundle") => match v.get("objects") {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err(AdapterError::Stix("bundle without an objects list".into())),
            },
            Some("observed-data") => vec![v],
            Some(other) => {
                return Err(AdapterError::Stix(format!(
                    "type {other:?} is neither bundle nor observed-data"
                )));
            }
            None => return Err(AdapterError::Stix("no \"type\" property".into())),
        };
        for o in objects {
            match o.get("type").and_then(Value::as_str) {
                Some("observed-data") => rec.observed.push(o),
                Some(_) => {
                    if let Some(id) = o.get("id").and_then(Value::as_str) {
                        rec.scos.insert(id.to_owned(), o.clone());
                    }
                }
                None => {}
            }
        }
        if rec.observed.is_empty() {
            return Err(AdapterError::Stix("no observed-data object".into()));
        }
        let time = rec
            .observed
            .iter()
            .filter_map(|o| o.get("last_observed")?.as_str())
            .filter_map(|s| Timestamp::parse(s).ok())
            .max();
        Ok(Record {
            time,
            observables: Vec::new(),
            stix: Some(Box::new(rec)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(adapter: &dyn Adapter, line: &str) -> Vec<(Kind, String)> {
        let r = adapter.parse(line.as_bytes()).unwrap();
        r.observables
            .iter()
            .map(|o| (o.kind, o.value.to_string()))
            .collect()
    }

    #[test]
    fn line_text_table() {
        let mut long = b"x".repeat(100);
        for at in [0usize, 7, 8, 31, 32, 33, 63, 64, 95, 96, 99] {
            for (byte, text) in [(0x7fu8, true), (0x80, false), (0xff, false)] {
                long.fill(b'a');
                long[at] = byte;
                assert_eq!(is_ascii_line(&long), byte < 0x80, "{byte:#x} at {at}");
                assert_eq!(line_text(&long).is_some(), text, "{byte:#x} at {at}");
            }
        }
        assert!(is_ascii_line(b""));
        assert_eq!(line_text("é\"\u{1F600}".as_bytes()), Some("é\"\u{1F600}"));
        assert_eq!(line_text(b"abc\xc3"), None);
    }

    proptest::proptest! {
        /// The ASCII shortcut gives the text `str::from_utf8` gives.
        #[test]
        fn line_text_is_from_utf8(b in proptest::collection::vec(
            proptest::prop_oneof![0u8..0x80, proptest::prelude::any::<u8>()], 0..130)
        ) {
            proptest::prop_assert_eq!(is_ascii_line(&b), b.is_ascii());
            proptest::prop_assert_eq!(line_text(&b), std::str::from_utf8(&b).ok());
        }
    }

    #[test]
    fn loose_time_table() {
        let cases = [
            (
                "2020-04-30T00:06:39.824370+0000",
                Some("2020-04-30T00:06:39.824370Z"),
            ),
            (
                "2020-04-30T02:06:39+02:00",
                Some("2020-04-30T00:06:39.000000Z"),
            ),
            ("2020-04-30T00:06:39Z", Some("2020-04-30T00:06:39.000000Z")),
            ("2020-04-30 00:06:39", Some("2020-04-30T00:06:39.000000Z")),
            ("2020-04-30T00:06:39+0", None),
            ("yesterday", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                loose_time(input).map(|t| t.format(6)).as_deref(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn suricata_time_table() {
        let cases = [
            (
                "2020-04-30T00:06:39.824370+0000",
                Some("2020-04-30T00:06:39.824370Z"),
            ),
            (
                "1970-01-01T00:00:00.000000+0000",
                Some("1970-01-01T00:00:00.000000Z"),
            ),
            (
                "2024-02-28T23:59:59.999999+0000",
                Some("2024-02-28T23:59:59.999999Z"),
            ),
            (
                "2024-03-01T00:00:00.000001+0000",
                Some("2024-03-01T00:00:00.000001Z"),
            ),
            (
                "2024-02-29T00:00:00.000000+0000",
                Some("2024-02-29T00:00:00.000000Z"),
            ),
            (
                "2000-12-31T12:00:00.500000+0000",
                Some("2000-12-31T12:00:00.500000Z"),
            ),
            // Left to the general path.
            ("2023-02-29T00:00:00.000000+0000", None),
            ("2100-02-29T00:00:00.000000+0000", None),
            ("2024-04-31T00:00:00.000000+0000", None),
            ("2024-01-01T00:00:00.000000+0100", None),
            ("2024-01-01T00:00:00.00000+0000", None),
            ("2024-13-01T00:00:00.000000+0000", None),
            ("2024-01-01T24:00:00.000000+0000", None),
            ("2024-01-01T00:00:60.000000+0000", None),
            ("1969-12-31T23:59:59.000000+0000", None),
            ("2024-01-0aT00:00:00.000000+0000", None),
        ];
        for (input, want) in cases {
            let got = suricata_time(input.as_bytes()).map(|t| t.format(6));
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    /// Values are cut from the line when it is valid UTF-8 as a whole and checked one
    /// by one otherwise: an invalid byte in a skipped value changes nothing, one in a
    /// used value drops that value only.
    #[test]
    fn suricata_values_with_invalid_utf8_elsewhere() {
        let line = |ua: &[u8], host: &[u8]| {
            let mut l =
                br#"{"src_ip":"10.0.0.1","src_port":5,"http":{"http_user_agent":""#.to_vec();
            l.extend_from_slice(ua);
            l.extend_from_slice(br#"","hostname":""#);
            l.extend_from_slice(host);
            l.extend_from_slice(br#"","url":"/\u00e9"}}"#);
            l
        };
        let got = |l: &[u8]| -> Vec<(Kind, String)> {
            let r = Suricata.parse(l).unwrap();
            r.observables
                .iter()
                .map(|o| (o.kind, o.value.to_string()))
                .collect()
        };
        let all = vec![
            (Kind::SrcIp, "10.0.0.1".to_owned()),
            (Kind::SrcPort, "5".to_owned()),
            (Kind::Domain, "a.example".to_owned()),
            (Kind::Url, "http://a.example/\u{e9}".to_owned()),
        ];
        assert_eq!(got(&line(b"ok", b"a.example")), all);
        assert_eq!(got(&line(b"bad \xff", b"a.example")), all);
        let mut dropped = all.clone();
        dropped.remove(2);
        dropped[2].1 = "http:///\u{e9}".to_owned();
        assert_eq!(got(&line(b"ok", b"a.\xffexample")), dropped);
    }

    #[test]
    fn suricata_fields() {
        let line = r#"{"timestamp":"2024-01-01T00:00:00.5+0000","event_type":"http","src_ip":"10.0.0.1","src_port":51000,"dest_ip":"203.0.113.9","dest_port":80,"proto":"TCP","http":{"hostname":"Evil.Example","url":"/a?b=1"},"dns":{"queries":[{"rrname":"x.example"}],"answers":[{"rdata":"198.51.100.1"}]},"fileinfo":{"sha256":"AB"}}"#;
        let got = obs(&Suricata, line);
        let want = vec![
            (Kind::SrcIp, "10.0.0.1"),
            (Kind::SrcPort, "51000"),
            (Kind::DstIp, "203.0.113.9"),
            (Kind::DstPort, "80"),
            (Kind::Protocol, "tcp"),
            (Kind::Domain, "evil.example"),
            (Kind::Domain, "x.example"),
            (Kind::Ip, "198.51.100.1"),
            (Kind::Sha256, "ab"),
            (Kind::Url, "http://evil.example/a?b=1"),
        ];
        let want: Vec<(Kind, String)> = want.into_iter().map(|(k, v)| (k, v.into())).collect();
        assert_eq!(got, want);
        let t = Suricata.parse(line.as_bytes()).unwrap().time.unwrap();
        assert_eq!(t.format(3), "2024-01-01T00:00:00.500Z");
    }

    #[test]
    fn zeek_fields() {
        let line = r#"{"@stream":"http","ts":1588206738.09551,"id.orig_h":"10.0.1.4","id.orig_p":60757,"id_resp_h":"192.168.0.4","id_resp_p":80,"host":"192.168.0.4","uri":"/x"}"#;
        let got = obs(&Zeek, line);
        let want = vec![
            (Kind::SrcIp, "10.0.1.4"),
            (Kind::SrcPort, "60757"),
            (Kind::DstIp, "192.168.0.4"),
            (Kind::DstPort, "80"),
            (Kind::Ip, "192.168.0.4"),
            (Kind::Url, "http://192.168.0.4/x"),
        ];
        let want: Vec<(Kind, String)> = want.into_iter().map(|(k, v)| (k, v.into())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn generic_mapping() {
        let g = GenericJson::from_spec("@timestamp=time, source.ip=src_ip,dns.answers.data=ip")
            .unwrap();
        let line = r#"{"@timestamp":"2024-01-01T00:00:00Z","source":{"ip":"10.1.1.1"},"dns":{"answers":[{"data":"1.1.1.1"},{"data":"2.2.2.2"}]}}"#;
        let got = obs(&g, line);
        assert_eq!(
            got,
            vec![
                (Kind::SrcIp, "10.1.1.1".to_owned()),
                (Kind::Ip, "1.1.1.1".to_owned()),
                (Kind::Ip, "2.2.2.2".to_owned())
            ]
        );
        let flat = r#"{"source.ip":"10.1.1.2"}"#;
        assert_eq!(obs(&g, flat), vec![(Kind::SrcIp, "10.1.1.2".to_owned())]);
        for (spec, err) in [
            ("source.ip", "is not of the form"),
            ("source.ip=bogus", "unknown kind"),
        ] {
            let e = GenericJson::from_spec(spec).unwrap_err().to_string();
            assert!(e.contains(err), "{spec}: {e}");
        }
    }

    /// A JSON value over the Suricata vocabulary (wanted and unwanted keys, nested
    /// objects and arrays), as text.
    fn eve_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "dns",
            "rrname",
            "rdata",
            "queries",
            "answers",
            "grouped",
            "A",
            "AAAA",
            "CNAME",
            "http",
            "hostname",
            "url",
            "tls",
            "sni",
            "fileinfo",
            "filename",
            "md5",
            "sha256",
            "smtp",
            "email",
            "mail_from",
            "to",
            "src_ip",
            "dest_ip",
            "src_port",
            "proto",
            "timestamp",
            "flow",
            "alert",
            "x",
        ]);
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "10.0.0.1",
                "Evil.Example.",
                "2001:db8::1",
                "/a?b",
                "AB",
                "<a@b.example>",
                "2024-01-01T00:00:00Z",
                "TCP",
                "-",
                "",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            (0u32..70000).prop_map(Value::from),
            Just(Value::Null),
            Just(Value::Bool(true)),
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]

        /// The fixed-format time path agrees with the general one wherever it answers.
        #[test]
        fn suricata_time_agrees_with_loose_time(
            y in 1900u32..2200, mo in 0u32..14, d in 0u32..32, h in 0u32..25, mi in 0u32..61,
            s in 0u32..61, us in 0u32..1_000_000, zone in proptest::sample::select(vec!["+0000", "Z", "+0100"]),
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}{zone}");
            if let Some(fast) = suricata_time(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), loose_time(&text), "{}", text);
            }
        }

        /// The Suricata adapter's key filter and leaf dispatch (the field codes of
        /// [`suricata_field`]) skip nothing and add nothing: filtered walks give the
        /// same record as unfiltered ones dispatching on whole paths.
        #[test]
        fn suricata_filter_loses_nothing(v in eve_value()) {
            let line = serde_json::to_vec(&serde_json::json!({ "event": v.clone(), "dns": v.clone(), "http": v.clone(), "tls": v.clone(), "fileinfo": v.clone(), "smtp": v.clone(), "top": v })).unwrap();
            let top = match serde_json::from_slice::<Value>(&line).unwrap() {
                Value::Object(m) => m,
                _ => unreachable!(),
            };
            for l in [line, serde_json::to_vec(&top["event"]).unwrap()] {
                let filtered = Suricata.parse(&l);
                let mut every = SuricataVisitor { every: true, ..SuricataVisitor::default() };
                let reference = scan::walk_with(&l, &mut every).map(|()| every.finish());
                // Parsing into a used record gives the same record.
                let mut reused = Record::default();
                reused.push(Kind::Ip, Cow::Borrowed("192.0.2.1"));
                let into = Suricata.parse_into(&l, &mut reused).map(|()| reused);
                proptest::prop_assert_eq!(&into, &filtered);
                proptest::prop_assert_eq!(filtered, reference.map_err(AdapterError::from));
            }
        }
    }
}
