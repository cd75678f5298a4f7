//! The detection benchmark: generated indicators and eve.json lines (seeded, so every
//! run sees the same data), measuring index build time, memory per simple indicator,
//! and lines per second parsed and matched on one thread.
//!
//! Memory is measured by a counting global allocator ([`CountingAlloc`]) when the
//! binary installs it (the example and `phalanx bench detect` should): live heap bytes
//! after building the index of simple indicators minus before, divided by their count
//! (the indicator texts are generated on the fly and freed, so only the index is
//! counted). Without it, the process RSS difference is used, which is coarser.
//!
//! Throughput is the median over chunks of lines (each chunk generated, then timed),
//! next to the reference figures of the same run: the adapter's parsing alone, and
//! `serde_json` (skipping with `IgnoredAny`, and building a `Value`) on the first chunk.
//! Parse + match is timed two ways on the same lines: the headline figure parses 32
//! lines, then matches them together ([`Index::match_records`], as [`crate::Hunt::feed`]
//! and [`crate::Hunt::read`] do), and "one at a time" matches each line as soon as it
//! is parsed ([`Index::match_record`], as [`crate::Hunt::line`] does). Both must find
//! the same hits (the test below checks it).
//!
//! ## Third performance round, overall
//!
//! `cargo run --release -p phalanx-detect --example bench -- --indicators 1000000
//! --lines 2000000`, the binary before the round and after it run in alternation,
//! five runs each, medians (in brackets: the median ratio to serde_json's
//! `IgnoredAny` figure of the same run, which was ~3.55 M lines/s both times), on the
//! two-core machine while other builds ran:
//!
//! | figure                         | before            | after              |
//! |--------------------------------|-------------------|--------------------|
//! | parse + match, 32 at a time    | —                 | 1.55 M (0.435)     |
//! | parse + match, one at a time   | 1.05 M (0.290)    | 1.40 M (0.389)     |
//! | parse only                     | 1.83 M (0.518)    | 2.49 M (0.705)     |
//! | scanner alone                  | 3.33 M (0.937)    | 4.33 M (1.211)     |
//! | index build (simple ones)      | 3.59 s            | 3.33 s (unchanged) |
//! | bytes per simple indicator     | 121.1             | 121.1              |
//!
//! Where it came from: block bitmaps for string ends and word-wise digits
//! ([`crate::scan`]), one field code per key and a cheaper whole-line UTF-8 check
//! ([`crate::adapter`]), and matching eight records at a time with prefetched filter
//! words ([`crate::index`]). The issue's 1 M lines/s was measured on a busier
//! machine (~314k lines/s then, serde_json ~1.13 M): the ratios are the portable
//! figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use phalanx_stix::Timestamp;

use crate::adapter::{Adapter, Suricata};
use crate::index::{Index, IndexConfig, MatchStats};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that counts live heap bytes; install it in a binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn live_bytes() -> Option<usize> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| LIVE.load(Ordering::Relaxed))
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What to generate and measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Indicators in total (about 3,000 of them multi-part when ≥ 100,000).
    pub indicators: usize,
    /// eve.json lines matched.
    pub lines: usize,
    /// Lines per timed chunk.
    pub chunk_lines: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// If set, write `patterns.txt` and `observations.jsonl` (a slice for the
    /// stix2-matcher comparison, `bench/stix2_matcher_bench.py`) into this directory.
    pub export_dir: Option<PathBuf>,
    /// Patterns and observations in the exported slice.
    pub export_patterns: usize,
    /// Observations in the exported slice.
    pub export_observations: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            indicators: 1_000_000,
            lines: 10_000_000,
            chunk_lines: 200_000,
            seed: 42,
            export_dir: None,
            export_patterns: 200,
            export_observations: 200,
        }
    }
}

/// Measured figures.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    /// Indicators generated.
    pub indicators: usize,
    /// Simple (index-decided) indicators.
    pub simple: usize,
    /// Indicators confirmed by the evaluator.
    pub confirmed: usize,
    /// Always-evaluate indicators.
    pub always_evaluate: usize,
    /// Indicators refused (must be 0).
    pub errors: usize,
    /// Seconds to build the index of the simple indicators (parse + compile + index).
    pub build_simple_secs: f64,
    /// Seconds to insert the multi-part indicators incrementally afterwards.
    pub insert_complex_secs: f64,
    /// Index bytes per simple indicator.
    pub bytes_per_simple: f64,
    /// How memory was measured.
    pub memory_method: &'static str,
    /// Lines matched.
    pub lines: usize,
    /// Average line length in bytes.
    pub avg_line_bytes: f64,
    /// Median lines/s parsed and matched (one thread), lines matched in groups
    /// ([`Index::match_records`]).
    pub match_lines_per_sec: f64,
    /// Median lines/s parsed and matched one record at a time ([`Index::match_record`]).
    pub match_single_lines_per_sec: f64,
    /// Median lines/s of the adapter's parsing alone.
    pub parse_lines_per_sec: f64,
    /// Lines/s of the JSON scanner alone, no adapter (first chunk).
    pub scan_lines_per_sec: f64,
    /// Lines/s of `serde_json::from_slice::<IgnoredAny>` (first chunk).
    pub serde_skip_lines_per_sec: f64,
    /// Lines/s of `serde_json::from_slice::<Value>` (first chunk).
    pub serde_value_lines_per_sec: f64,
    /// Hits found.
    pub hits: u64,
    /// Hits found matching one record at a time (must equal `hits`).
    pub hits_single: u64,
    /// Candidates the evaluator checked.
    pub evaluated: u64,
    /// Pattern-observation pairs per second of the plain evaluator over the exported
    /// slice (when exported).
    pub evaluator_pairs_per_sec: Option<f64>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "detect benchmark (one thread)")?;
        writeln!(
            f,
            "  indicators        {} ({} simple, {} confirmed, {} always-evaluate, {} refused)",
            self.indicators, self.simple, self.confirmed, self.always_evaluate, self.errors
        )?;
        writeln!(
            f,
            "  index build       {:.2} s for the simple ones ({:.0} indicators/s), \
             +{:.2} s for the multi-part ones inserted incrementally",
            self.build_simple_secs,
            self.simple as f64 / self.build_simple_secs.max(1e-9),
            self.insert_complex_secs
        )?;
        writeln!(
            f,
            "  memory            {:.1} bytes per simple indicator ({})",
            self.bytes_per_simple, self.memory_method
        )?;
        writeln!(
            f,
            "  lines             {} eve.json lines, {:.0} bytes on average",
            self.lines, self.avg_line_bytes
        )?;
        writeln!(
            f,
            "  parse + match     {:.0} lines/s ({:.0} MB/s; 32 lines at a time, as Hunt::feed / read)",
            self.match_lines_per_sec,
            self.match_lines_per_sec * self.avg_line_bytes / 1e6
        )?;
        writeln!(
            f,
            "  one at a time     {:.0} lines/s (parse + match_record per line, as Hunt::line)",
            self.match_single_lines_per_sec
        )?;
        writeln!(
            f,
            "  parse only        {:.0} lines/s (reference; match/parse = {:.2})",
            self.parse_lines_per_sec,
            self.match_lines_per_sec / self.parse_lines_per_sec.max(1e-9)
        )?;
        writeln!(
            f,
            "  scanner alone     {:.0} lines/s (JSON tokens only, no adapter)",
            self.scan_lines_per_sec
        )?;
        writeln!(
            f,
            "  serde_json        {:.0} lines/s skipping (IgnoredAny), {:.0} lines/s to Value",
            self.serde_skip_lines_per_sec, self.serde_value_lines_per_sec
        )?;
        writeln!(
            f,
            "  hits              {} ({} evaluator confirmations)",
            self.hits, self.evaluated
        )?;
        let pairs = self.match_lines_per_sec * self.indicators as f64;
        writeln!(
            f,
            "  equivalent        {pairs:.3e} pattern-observation pairs/s (lines/s x indicators)"
        )?;
        if let Some(p) = self.evaluator_pairs_per_sec {
            writeln!(
                f,
                "  plain evaluator   {p:.0} pairs/s on the exported slice (no index)"
            )?;
        }
        Ok(())
    }
}

/// splitmix64: a small, fast, seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ip4(v: u32) -> String {
    std::net::Ipv4Addr::from(v).to_string()
}

/// Indicator values by kind and number, shared by indicator and line generation.
struct Values {
    seed: u64,
}

impl Values {
    fn ipv4(&self, k: u64) -> String {
        ip4(0x0B00_0000 | (mix(k ^ self.seed) as u32 & 0x00FF_FFFF))
    }
    fn cidr(&self, k: u64) -> (String, String) {
        let net = 0x0C00_0000u32.wrapping_add(((k % 131_072) as u32) << 8);
        (format!("{}/24", ip4(net)), ip4(net | 77))
    }
    fn ipv6(&self, k: u64) -> String {
        format!("2001:db8:{:x}::{:x}", k & 0xffff, (k >> 16) + 1)
    }
    fn domain(&self, k: u64) -> String {
        format!(
            "d{:x}.evil{}.example",
            mix(k ^ self.seed) & 0xff_ffff_ffff,
            k % 97
        )
    }
    fn url_host(&self, k: u64) -> String {
        format!("u{k:x}.bad.example")
    }
    fn url_path(&self, k: u64) -> String {
        format!("/p/{k}/index.php")
    }
    fn md5(&self, k: u64) -> String {
        format!("{:016x}{:016x}", mix(k ^ 0x55), mix(k ^ 0x66))
    }
    fn sha256(&self, k: u64) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            mix(k ^ 1),
            mix(k ^ 2),
            mix(k ^ 3),
            mix(k ^ 4)
        )
    }
}

/// Shares of the simple indicators, by kind (per mille).
const MIX: [(u8, u64); 8] = [
    (0, 300), // ipv4 =
    (1, 100), // cidr ISSUBSET
    (2, 50),  // ipv6 =
    (3, 200), // domain =
    (4, 150), // url =
    (5, 100), // md5
    (6, 97),  // sha256
    (7, 3),   // multi-part (generated separately)
];

struct Plan {
    counts: [u64; 7],
    complex: u64,
}

fn plan_counts(total: usize) -> Plan {
    let total = total as u64;
    let complex = if total >= 100_000 {
        3_000
    } else {
        (total * 3 / 1000).max(4)
    };
    let simple = total.saturating_sub(complex);
    let mut counts = [0u64; 7];
    let share_sum: u64 = MIX[..7].iter().map(|m| m.1).sum();
    for (i, c) in counts.iter_mut().enumerate() {
        *c = simple * MIX[i].1 / share_sum;
    }
    let assigned: u64 = counts.iter().sum();
    counts[0] += simple - assigned;
    Plan { counts, complex }
}

fn indicator_id(n: u64) -> String {
    format!(
        "indicator--{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 16) as u32,
        n & 0xffff,
        mix(n) & 0xfff,
        mix(n ^ 7) & 0xfff,
        mix(n ^ 9) & 0xffff_ffff_ffff
    )
}

fn indicator_json(n: u64, pattern: &str) -> String {
    let mut s = String::with_capacity(256 + pattern.len());
    s.push_str(r#"{"type":"indicator","spec_version":"2.1","id":""#);
    s.push_str(&indicator_id(n));
    s.push_str(r#"","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","pattern":""#);
    for c in pattern.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push_str(r#"","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z","labels":["malicious-activity"]}"#);
    s
}

fn simple_pattern(v: &Values, kind: usize, k: u64) -> String {
    match kind {
        0 => format!("[ipv4-addr:value = '{}']", v.ipv4(k)),
        1 => format!("[ipv4-addr:value ISSUBSET '{}']", v.cidr(k).0),
        2 => format!("[ipv6-addr:value = '{}']", v.ipv6(k)),
        3 => format!("[domain-name:value = '{}']", v.domain(k)),
        4 => format!("[url:value = 'http://{}{}']", v.url_host(k), v.url_path(k)),
        5 => format!("[file:hashes.MD5 = '{}']", v.md5(k)),
        _ => format!("[file:hashes.'SHA-256' = '{}']", v.sha256(k)),
    }
}

fn complex_pattern(v: &Values, k: u64) -> String {
    match k % 30 {
        0 => format!("[url:value MATCHES '^http://m{k}\\\\.bad\\\\.example/']"),
        1..=9 => format!("[domain-name:value LIKE '%.s{k:x}.example']"),
        10..=19 => format!(
            "[network-traffic:dst_ref.value = '{}' AND network-traffic:dst_port = 443]",
            v.ipv4(1_000_000_000 + k)
        ),
        _ => format!(
            "[domain-name:value = '{}'] FOLLOWEDBY [url:value = 'http://{}{}'] WITHIN 600 SECONDS",
            v.domain(2_000_000_000 + k),
            v.url_host(k),
            v.url_path(k)
        ),
    }
}

/// All generated indicator patterns, simple ones first: (is_simple, pattern).
fn patterns(cfg: &BenchConfig) -> impl Iterator<Item = (bool, String)> + '_ {
    let v = Values { seed: cfg.seed };
    let p = plan_counts(cfg.indicators);
    let simple = (0..7usize).flat_map(move |kind| {
        let v = Values { seed: cfg.seed };
        (0..p.counts[kind]).map(move |k| (true, simple_pattern(&v, kind, k)))
    });
    let complex = (0..p.complex).map(move |k| (false, complex_pattern(&v, k)));
    simple.chain(complex)
}

/// Writes one eve.json line for line number `n`.
fn eve_line(out: &mut Vec<u8>, rng: &mut Rng, v: &Values, plan: &Plan, n: u64) {
    use std::io::Write;
    let hit = rng.below(100) < 2;
    let pick = |rng: &mut Rng, kind: usize| rng.below(plan.counts[kind].max(1));
    let src = ip4(0x0A00_0000 | (rng.next() as u32 & 0x00FF_FFFF));
    let mut dst = ip4(0xC0A8_0000 | (rng.next() as u32 & 0xFFFF));
    let event = rng.below(5);
    if hit && event == 0 {
        dst = match rng.below(3) {
            0 => v.cidr(pick(rng, 1)).1,
            1 if plan.complex >= 30 => {
                // A multi-part `dst_ref AND dst_port` indicator: confirmed by the
                // evaluator.
                let k = 30 * rng.below(plan.complex / 30) + 10 + rng.below(10);
                v.ipv4(1_000_000_000 + k)
            }
            _ => v.ipv4(pick(rng, 0)),
        };
    }
    let usec = n % 1_000_000;
    let secs = n / 1000;
    let _ = write!(
        out,
        r#"{{"timestamp":"2024-03-01T{:02}:{:02}:{:02}.{usec:06}+0000","flow_id":{},"in_iface":"ens192","event_type":"#,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        rng.next() >> 14
    );
    let sport = 1024 + rng.below(60000);
    let common = |out: &mut Vec<u8>, ty: &str, dport: u16, proto: &str| {
        let _ = write!(
            out,
            r#""{ty}","src_ip":"{src}","src_port":{sport},"dest_ip":"{dst}","dest_port":{dport},"proto":"{proto}","#
        );
    };
    match event {
        0 => {
            common(out, "flow", 443, "TCP");
            let _ = write!(
                out,
                r#""app_proto":"tls","flow":{{"pkts_toserver":{},"pkts_toclient":{},"bytes_toserver":{},"bytes_toclient":{},"start":"2024-03-01T00:00:00.000000+0000","end":"2024-03-01T00:00:03.000000+0000","age":3,"state":"closed","reason":"timeout","alerted":false}},"community_id":"1:{:016x}{:012x}=","#,
                rng.below(100),
                rng.below(100),
                rng.below(100_000),
                rng.below(1_000_000),
                rng.next(),
                rng.next() & 0xffff_ffff_ffff
            );
        }
        1 => {
            common(out, "dns", 53, "UDP");
            let name = if hit {
                v.domain(pick(rng, 3))
            } else {
                format!("host{}.corp.example.net", rng.below(1_000_000))
            };
            let _ = write!(
                out,
                r#""dns":{{"version":2,"type":"answer","id":{},"flags":"8180","qr":true,"rd":true,"ra":true,"rrname":"{name}","rrtype":"A","rcode":"NOERROR","answers":[{{"rrname":"{name}","rrtype":"A","ttl":300,"rdata":"{}"}}]}},"#,
                rng.below(65536),
                ip4(0xC633_6400 | (rng.next() as u32 & 0xff))
            );
        }
        2 => {
            common(out, "http", 80, "TCP");
            let (host, path) = if hit {
                let k = pick(rng, 4);
                (v.url_host(k), v.url_path(k))
            } else {
                (
                    format!("www{}.example.org", rng.below(100_000)),
                    format!("/static/{}/app.js", rng.below(1_000_000)),
                )
            };
            let _ = write!(
                out,
                r#""tx_id":0,"http":{{"hostname":"{host}","url":"{path}","http_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","http_content_type":"text/html","http_method":"GET","protocol":"HTTP/1.1","status":200,"length":{}}},"#,
                rng.below(100_000)
            );
        }
        3 => {
            common(out, "tls", 443, "TCP");
            let sni = if hit {
                v.domain(pick(rng, 3))
            } else {
                format!("api{}.cdn.example.com", rng.below(100_000))
            };
            let _ = write!(
                out,
                r#""tls":{{"subject":"CN={sni}","issuerdn":"C=US, O=Example CA, CN=Example TLS RSA CA G1","serial":"0A:1B:2C:3D","fingerprint":"{:016x}","sni":"{sni}","version":"TLS 1.2","notbefore":"2024-01-01T00:00:00","notafter":"2025-01-01T00:00:00"}},"#,
                rng.next()
            );
        }
        _ => {
            common(out, "fileinfo", 80, "TCP");
            let (md5, sha256) = if hit {
                (v.md5(pick(rng, 5)), v.sha256(pick(rng, 6)))
            } else {
                (
                    v.md5(u64::MAX - rng.below(1 << 40)),
                    v.sha256(u64::MAX - rng.below(1 << 40)),
                )
            };
            let _ = write!(
                out,
                r#""fileinfo":{{"filename":"/download/{}.exe","magic":"PE32 executable","state":"CLOSED","md5":"{md5}","sha256":"{sha256}","stored":false,"size":{},"tx_id":0}},"#,
                rng.below(100_000),
                rng.below(10_000_000)
            );
        }
    }
    let _ = writeln!(out, r#""host":"sensor-{:02}"}}"#, rng.below(32));
}

/// The non-empty lines of a buffer (memchr, as a real reader would split).
fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            if !line.is_empty() {
                return Some(line);
            }
        }
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Lines parsed, then matched together, in the main parse + match figure.
const GROUP: usize = 32;

/// Runs the benchmark.
pub fn run(cfg: &BenchConfig) -> BenchReport {
    let now =
        Timestamp::parse("2024-06-01T00:00:00Z").unwrap_or_else(|_| Timestamp::from_micros(0));
    let mut report = BenchReport {
        indicators: cfg.indicators,
        lines: cfg.lines,
        ..BenchReport::default()
    };
    // Index of the simple indicators, texts generated on the fly.
    let heap_before = live_bytes();
    let rss_before = rss_bytes();
    let start = Instant::now();
    let simple_texts = patterns(cfg)
        .enumerate()
        .take_while(|(_, (simple, _))| *simple)
        .map(|(n, (_, p))| indicator_json(n as u64, &p));
    let (mut index, build) = Index::build(simple_texts, now, IndexConfig::default());
    report.build_simple_secs = start.elapsed().as_secs_f64();
    let simple_count = index.stats().simple.max(1);
    match (heap_before, live_bytes()) {
        (Some(b), Some(a)) => {
            report.bytes_per_simple = a.saturating_sub(b) as f64 / simple_count as f64;
            report.memory_method = "live heap bytes, counting allocator";
        }
        _ => {
            let (b, a) = (rss_before.unwrap_or(0), rss_bytes().unwrap_or(0));
            report.bytes_per_simple = a.saturating_sub(b) as f64 / simple_count as f64;
            report.memory_method = "process RSS difference";
        }
    }
    report.errors = build.errors.len();
    // Multi-part indicators, inserted one by one into the live index.
    let start = Instant::now();
    for (n, (simple, p)) in patterns(cfg).enumerate() {
        if !simple
            && index
                .insert_json(indicator_json(n as u64, &p).as_bytes(), now)
                .is_err()
        {
            report.errors += 1;
        }
    }
    report.insert_complex_secs = start.elapsed().as_secs_f64();
    let st = index.stats();
    report.simple = st.simple;
    report.confirmed = st.confirmed;
    report.always_evaluate = st.always_evaluate;

    // Lines, chunk by chunk.
    let values = Values { seed: cfg.seed };
    let plan = plan_counts(cfg.indicators);
    let mut rng = Rng(cfg.seed ^ 0xEEEE);
    let mut match_rates = Vec::new();
    let mut single_rates = Vec::new();
    let mut parse_rates = Vec::new();
    let mut stats = MatchStats::default();
    let mut hits = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut done = 0usize;
    let mut total_bytes = 0usize;
    let adapter = Suricata;
    let chunk = cfg.chunk_lines.max(1);
    while done < cfg.lines {
        let n = chunk.min(cfg.lines - done);
        buf.clear();
        for i in 0..n {
            eve_line(&mut buf, &mut rng, &values, &plan, (done + i) as u64);
        }
        total_bytes += buf.len();
        if done == 0 {
            let start = Instant::now();
            let mut ok = 0usize;
            for line in lines(&buf) {
                ok += usize::from(serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok());
            }
            report.serde_skip_lines_per_sec = ok as f64 / start.elapsed().as_secs_f64();
            let start = Instant::now();
            let mut ok = 0usize;
            for line in lines(&buf) {
                ok += usize::from(serde_json::from_slice::<serde_json::Value>(line).is_ok());
            }
            report.serde_value_lines_per_sec = ok as f64 / start.elapsed().as_secs_f64();
            let start = Instant::now();
            let mut ok = 0usize;
            for line in lines(&buf) {
                ok += usize::from(crate::scan::walk(line, &mut |_, _| {}).is_ok());
            }
            report.scan_lines_per_sec = ok as f64 / start.elapsed().as_secs_f64();
        }
        // Parse only.
        let start = Instant::now();
        // One record per chunk, its observables vector reused line to line
        // ([`Adapter::parse_into`]), as `Hunt` does.
        let mut observables = 0usize;
        let mut r = crate::Record::default();
        for line in lines(&buf) {
            if adapter.parse_into(line, &mut r).is_ok() {
                observables += r.observables.len();
            }
        }
        std::hint::black_box(observables);
        parse_rates.push(n as f64 / start.elapsed().as_secs_f64());
        // Parse and match, one record at a time ([`Index::match_record`], as
        // `Hunt::line` does).
        let mut single = MatchStats::default();
        let start = Instant::now();
        for line in lines(&buf) {
            if adapter.parse_into(line, &mut r).is_ok() {
                hits.clear();
                index.match_record(&r, now, &mut hits, &mut single);
            }
        }
        single_rates.push(n as f64 / start.elapsed().as_secs_f64());
        report.hits_single += single.hits;
        // Parse and match, [`GROUP`] lines parsed, then matched together
        // ([`Index::match_records`]).
        let start = Instant::now();
        let mut group: Vec<crate::Record<'_>> =
            (0..GROUP).map(|_| crate::Record::default()).collect();
        let mut it = lines(&buf);
        loop {
            let mut k = 0;
            while k < GROUP {
                let Some(line) = it.next() else { break };
                if adapter.parse_into(line, &mut group[k]).is_ok() {
                    k += 1;
                }
            }
            if k == 0 {
                break;
            }
            hits.clear();
            index.match_records(&group[..k], now, &mut hits, &mut stats);
        }
        match_rates.push(n as f64 / start.elapsed().as_secs_f64());
        done += n;
    }
    report.avg_line_bytes = total_bytes as f64 / cfg.lines.max(1) as f64;
    report.match_lines_per_sec = median(&mut match_rates);
    report.match_single_lines_per_sec = median(&mut single_rates);
    report.parse_lines_per_sec = median(&mut parse_rates);
    report.hits = stats.hits;
    report.evaluated = stats.evaluated;
    if let Some(dir) = &cfg.export_dir {
        report.evaluator_pairs_per_sec = export(cfg, dir, &values, &plan, now, &index).ok();
    }
    report
}

/// Writes the stix2-matcher slice and measures the plain evaluator on it (pairs/s).
fn export(
    cfg: &BenchConfig,
    dir: &std::path::Path,
    values: &Values,
    plan: &Plan,
    now: Timestamp,
    index: &Index,
) -> std::io::Result<f64> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    // Observations: generated eve lines through the adapter. The indicators the index
    // finds in them join the exported patterns, so the slice has matches to agree on.
    let mut rng = Rng(cfg.seed ^ 0xABCD);
    let mut buf = Vec::new();
    for i in 0..cfg.export_observations {
        eve_line(&mut buf, &mut rng, values, plan, i as u64);
    }
    let mut hit_ids = std::collections::HashSet::new();
    let mut hits = Vec::new();
    let mut stats = MatchStats::default();
    for line in lines(&buf) {
        if let Ok(r) = Suricata.parse(line) {
            index.match_record(&r, now, &mut hits, &mut stats);
        }
    }
    for h in &hits {
        hit_ids.insert(h.indicator.id());
    }
    // Patterns: an even spread over the kinds, multi-part ones included.
    let all: Vec<String> = patterns(cfg).map(|(_, p)| p).collect();
    let step = (all.len() / cfg.export_patterns.max(1)).max(1);
    let mut chosen: Vec<&String> = all.iter().step_by(step).take(cfg.export_patterns).collect();
    let complex_start = all.len().saturating_sub(plan.complex as usize);
    chosen.extend(all[complex_start..].iter().take(10));
    for (n, p) in all.iter().enumerate() {
        if hit_ids.contains(&indicator_id(n as u64)) {
            chosen.push(p);
        }
    }
    let mut pf = std::io::BufWriter::new(std::fs::File::create(dir.join("patterns.txt"))?);
    for p in &chosen {
        writeln!(pf, "{p}")?;
    }
    pf.flush()?;
    // The observations as observed-data with embedded objects (readable by both
    // evaluators).
    let mut observed = Vec::new();
    let mut of = std::io::BufWriter::new(std::fs::File::create(dir.join("observations.jsonl"))?);
    for line in lines(&buf) {
        let Ok(r) = Suricata.parse(line) else {
            continue;
        };
        let (mut od, scos) = r.to_stix(r.time.unwrap_or(now));
        if let serde_json::Value::Object(m) = &mut od {
            m.remove("object_refs");
            m.insert(
                "objects".into(),
                serde_json::Value::Object(scos.into_iter().collect()),
            );
            m.insert(
                "id".into(),
                format!(
                    "observed-data--{}",
                    uuid::Uuid::from_u128(observed.len() as u128 + 1)
                )
                .into(),
            );
            m.insert("spec_version".into(), "2.1".into());
            m.insert("created".into(), "2024-01-01T00:00:00.000Z".into());
            m.insert("modified".into(), "2024-01-01T00:00:00.000Z".into());
        }
        writeln!(of, "{od}")?;
        observed.push(od);
    }
    of.flush()?;
    // The plain evaluator on every pair.
    let matchers: Vec<phalanx_pattern::Matcher> = chosen
        .iter()
        .filter_map(|p| phalanx_pattern::Pattern::parse(p).ok()?.compile().ok())
        .collect();
    let empty: std::collections::HashMap<String, serde_json::Value> = Default::default();
    let start = Instant::now();
    let mut pairs = 0u64;
    let mut matched = 0u64;
    for m in &matchers {
        for od in &observed {
            pairs += 1;
            matched += u64::from(m.matches(std::slice::from_ref(od), &empty) == Ok(true));
        }
    }
    let rate = pairs as f64 / start.elapsed().as_secs_f64();
    std::fs::write(
        dir.join("expected.txt"),
        format!("pairs {pairs}\nmatched {matched}\nphalanx_evaluator_pairs_per_sec {rate:.0}\n"),
    )?;
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny run: every indicator is accepted, lines parse, hits are found, and the
    /// exported slice is written.
    #[test]
    fn small_run_is_consistent() {
        let dir = std::env::temp_dir().join(format!("phalanx-detect-bench-{}", std::process::id()));
        let cfg = BenchConfig {
            indicators: 2_000,
            lines: 3_000,
            chunk_lines: 1_000,
            export_dir: Some(dir.clone()),
            export_patterns: 20,
            export_observations: 20,
            ..BenchConfig::default()
        };
        let r = run(&cfg);
        assert_eq!(r.errors, 0);
        assert_eq!(r.simple + r.confirmed + r.always_evaluate, 2_000);
        assert_eq!(r.always_evaluate, 0);
        assert!(r.hits > 0, "{r}");
        assert_eq!(r.hits, r.hits_single, "{r}");
        assert!(r.avg_line_bytes > 350.0 && r.avg_line_bytes < 650.0, "{r}");
        let exported = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        assert!(exported.starts_with("pairs "), "{exported}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
