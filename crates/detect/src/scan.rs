//! A small validating JSON scanner for telemetry lines: it walks one JSON object and
//! hands every scalar leaf, with the path of object keys that leads to it, to a callback,
//! without building a tree and without copying string bodies.
//!
//! Why this and not serde_json: adapters need a handful of fields, borrowed, from lines
//! of any shape (eve.json nests `dns.answers[].rdata`; Zeek has a dozen log schemas).
//! Building a `serde_json::Value` per line runs at about a fifth of the rate of this
//! scanner in the benchmark ([`crate::bench`]: ~0.3 M vs ~1.5 M lines/s on ~500-byte
//! eve lines, one core), because it allocates every key and string. Borrowed serde
//! structs would need one struct per schema and still fall back to allocation on
//! escapes. `serde_json` merely *skipping* a line (`IgnoredAny`) is faster still
//! (~1.7-2 M lines/s) but extracts nothing; the benchmark prints it next to ours so the
//! gap stays visible. Array elements share their parent's path (indices are not needed
//! by any adapter).
//!
//! Two things make the scanner cheap per line, both measured with `perf` on the eve
//! benchmark (where `Scanner::string` alone was ~16% of all samples):
//! - [`walk_with`] takes a [`Visitor`] (monomorphised, no `dyn` call per leaf) that
//!   says which keys it wants; unwanted values are validated by the same code but
//!   without visits or path bookkeeping. The Suricata adapter reads ~12 of ~40 keys.
//! - string bodies are searched for `"` / `\` eight bytes at a time (SWAR, see
//!   `find_quote_or_backslash`), then with `memchr2` past 32 bytes.
//!
//! Together (medians of six interleaved before/after runs of the benchmark at 1 M
//! indicators, on a loaded two-core machine): scanner alone ~1.10 M → ~1.56 M lines/s
//! (the visitor-free figure the benchmark prints), adapter parsing ~0.60 M → ~0.76 M
//! lines/s.
//! What remained per line (perf, after): string scanning ~13% of samples (branch
//! misses on the closing quote: string lengths are unpredictable), `from_utf8` of the
//! used values ~5%, address parsing ~3.5% (once in [`crate::Record::push`], again for
//! the CIDR lookup). The adapter-side items were taken in the next round (see
//! [`crate::adapter`]), string scanning in the one after:
//!
//! ## Block bitmaps for string ends (third round)
//!
//! The line is looked at in 64-byte blocks; for each, two bitmaps say which bytes are
//! `"` and which are `\` (`special_masks`: SSE2 compares and `movemask` on x86_64, a
//! portable SWAR version elsewhere). A block's bitmaps are computed when the scanner
//! first needs them and kept until it moves past the block (positions only grow, so
//! each block is computed at most once per line; nothing is allocated, and lines of
//! any length work). `Scanner::string` then decides the usual string, without
//! escapes and ending in its first block or the next, with a shift, a lowest-bit
//! extraction and one test "no backslash before the first quote", and no loop over
//! bytes; anything else (escapes, longer strings, unterminated ones) takes the
//! byte-exact loop of before (`string_slow`), which finds the next quote or backslash
//! from the same bitmaps. Validation is unchanged by construction: the fast path
//! accepts only bodies without a backslash, which the loop would accept the same way,
//! and every error comes from the loop. A property test runs the scanner and the
//! previous byte search (`walk_reference`, tests only) on random, padded and mutated
//! JSON-like lines and requires the same leaves or the same error and offset; another
//! puts every escape form (runs of backslashes, `\u` cut short, a lone backslash) at
//! every offset around the first two block boundaries. Numbers skip their digits eight
//! bytes at a time (`skip_digits`: flow ids and byte counters are long).
//!
//! Measured with `cargo run --release -p phalanx-detect --example bench --
//! --indicators 200000 --lines 500000`, medians of three interleaved before/after runs
//! on the two-core machine shared with other builds: scanner alone 3.44 M → 4.09 M
//! lines/s and adapter parsing 1.82 M → 2.09 M (serde_json `IgnoredAny` on the same
//! lines: ~3.6 M); looking one block further for strings that cross a block end added
//! ~3% to the scanner (4.13 M → 4.24 M), and the word-wise digit skip cut the
//! `number` instructions by a quarter (callgrind). A first version with one combined
//! bitmap and a non-inlined `string` gained 7% on the scanner and nothing on parsing:
//! the call and the load that told quote from backslash cost what the search saved.
//! The full simdjson structural pass (in-string mask by prefix XOR, skipping unwanted
//! nested values by bracket matching) was not built: in the eve lines the skipped
//! values are nearly all scalars (one nested `flow` object in a fifth of the lines),
//! which the string fast path already skips in a few instructions, while exact error
//! offsets in bracket-skipped regions would need a second validating pass. AVX2 (two
//! compares per block instead of four) would need runtime detection and an `unsafe`
//! call per block for a pass that is ~2% of a line's instructions.
//! What remains (perf, after): the token loop (`object` / `value`, ~30% of the
//! adapter's samples, mostly bounds checks and the dispatch on the next byte) and
//! the bitmaps themselves (~5%). sonic-rs (SIMD, lazy `get_many`) is still not
//! evaluated; its pointer lookups name array indices, so paths under arrays
//! (`dns.answers[].rdata`) would still need a walk.
//!
//! What it checks: the line is exactly one JSON object; tokens are well formed (strings
//! closed, escapes valid, literals and numbers spelled right, commas and colons in
//! place); nesting is at most [`MAX_DEPTH`]. What it does not check: UTF-8 inside
//! strings it skips (values an adapter uses are checked when decoded).

use std::borrow::Cow;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 32;

/// A scalar at the end of a path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf<'a> {
    /// A string: the raw bytes between the quotes, and whether they contain escapes.
    Str(&'a [u8], bool),
    /// A number as written.
    Num(&'a [u8]),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl<'a> Leaf<'a> {
    /// The string value (escapes resolved); `None` for non-strings or invalid UTF-8.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match *self {
            Leaf::Str(raw, false) => std::str::from_utf8(raw).ok().map(Cow::Borrowed),
            Leaf::Str(raw, true) => unescape(raw).map(Cow::Owned),
            _ => None,
        }
    }

    /// The number as `f64`; `None` for non-numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Leaf::Num(raw) => std::str::from_utf8(raw).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Why a line is not a JSON object: what and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct ScanError {
    /// Byte offset in the line.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// A consumer of [`walk_with`]: says which keys it wants and receives their scalars.
///
/// Skipping is the main saving of the scanner on wide lines: an eve.json line has about
/// forty keys of which the Suricata adapter reads a dozen, and a skipped value (a whole
/// `flow` or `alert` object included) is still validated token by token but costs no
/// call to the visitor and no path bookkeeping.
pub trait Visitor<'a> {
    /// Whether the value under `key` (an object key, below the keys `parent`) is wanted.
    /// An unwanted value is still checked but none of its leaves are visited. The
    /// default wants everything.
    fn wants(&mut self, parent: &[&'a [u8]], key: &'a [u8]) -> bool {
        let _ = (parent, key);
        true
    }

    /// One scalar of a wanted value, with its key path (array elements share their
    /// parent's path).
    fn leaf(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>);
}

/// A visitor that wants nothing: used for skipped values.
struct Skip;

impl<'a> Visitor<'a> for Skip {
    #[inline(always)]
    fn wants(&mut self, _: &[&'a [u8]], _: &'a [u8]) -> bool {
        false
    }
    #[inline(always)]
    fn leaf(&mut self, _: &[&'a [u8]], _: Leaf<'a>) {}
}

/// [`walk`]'s callback as a visitor that wants every key.
struct Every<'v, 'a>(&'v mut dyn FnMut(&[&'a [u8]], Leaf<'a>));

impl<'a> Visitor<'a> for Every<'_, 'a> {
    fn leaf(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>) {
        (self.0)(path, leaf)
    }
}

/// The scanner's state. `REFERENCE` (tests only) finds string ends with the previous
/// rounds' byte search instead of the block bitmaps, to check that both agree.
struct Scanner<'a, const REFERENCE: bool = false> {
    b: &'a [u8],
    i: usize,
    path: [&'a [u8]; MAX_DEPTH],
    depth: usize,
    /// The block whose bitmaps are in `quotes` and `slashes` (`usize::MAX`: none yet).
    blk: usize,
    /// Bit `j`: byte `blk * 64 + j` is `"`.
    quotes: u64,
    /// Bit `j`: byte `blk * 64 + j` is `\`.
    slashes: u64,
}

/// Walks `line` (one JSON object, surrounding whitespace allowed) and calls `visit` with
/// the key path and value of every scalar.
pub fn walk<'a>(
    line: &'a [u8],
    visit: &mut dyn FnMut(&[&'a [u8]], Leaf<'a>),
) -> Result<(), ScanError> {
    walk_with(line, &mut Every(visit))
}

/// Walks `line` like [`walk`], visiting only the values `visitor` wants
/// ([`Visitor::wants`]). Skipped values are validated exactly as visited ones: a line
/// is refused with the same error and offset whatever the visitor wants.
pub fn walk_with<'a, V: Visitor<'a>>(line: &'a [u8], visitor: &mut V) -> Result<(), ScanError> {
    Scanner::<false>::new(line).run(visitor)
}

/// [`walk_with`] finding string ends by the previous byte search (the reference of the
/// equivalence tests).
#[cfg(test)]
fn walk_reference<'a, V: Visitor<'a>>(line: &'a [u8], visitor: &mut V) -> Result<(), ScanError> {
    Scanner::<true>::new(line).run(visitor)
}

impl<'a, const REFERENCE: bool> Scanner<'a, REFERENCE> {
    fn new(b: &'a [u8]) -> Self {
        Scanner {
            b,
            i: 0,
            path: [&[]; MAX_DEPTH],
            depth: 0,
            blk: usize::MAX,
            quotes: 0,
            slashes: 0,
        }
    }

    fn run<V: Visitor<'a>>(mut self, visitor: &mut V) -> Result<(), ScanError> {
        let s = &mut self;
        s.ws();
        if s.peek() != Some(b'{') {
            return Err(s.err("expected '{' (a JSON object)"));
        }
        s.object(0, visitor)?;
        s.ws();
        if s.i != s.b.len() {
            return Err(s.err("trailing characters after the object"));
        }
        Ok(())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Offset of the first `"` or `\` in `s`: the previous rounds' search, kept as the
/// reference the block bitmaps ([`special_masks`]) are tested against.
///
/// Eight bytes at a time (SWAR: a byte equal to the target becomes zero after the XOR,
/// and `(v - 0x01..) & !v & 0x80..` marks zero bytes; the lowest mark is exact because
/// borrows only run upwards), then `memchr2` (SIMD) past 32 bytes.
#[cfg(test)]
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let q = w ^ (ONES * u64::from(b'"'));
        let e = w ^ (ONES * u64::from(b'\\'));
        let m = ((q.wrapping_sub(ONES) & !q) | (e.wrapping_sub(ONES) & !e)) & HIGHS;
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
        if base >= 32 {
            return memchr::memchr2(b'"', b'\\', &s[base..]).map(|o| o + base);
        }
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|o| o + base)
}

/// The offset of the first byte at or after `i` that is not an ASCII digit (or the
/// length of `b`).
///
/// Eight bytes at a time: for each byte `c`, `(c | 0x80) - 0x30` keeps its high bit
/// when `c & 0x7f >= 0x30` and `(c & 0x7f) + 0x46` gets one when `c & 0x7f >= 0x3a`;
/// neither crosses into the next byte, so `c | !t1 | t2` has its high bit set exactly
/// for the non-digits. Flow ids and byte counters have ten to twenty digits, where the
/// byte loop's exit was a branch miss per number.
#[inline]
fn skip_digits(b: &[u8], mut i: usize) -> usize {
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i.saturating_add(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let t1 = (w | HIGHS).wrapping_sub(ONES * 0x30);
        let t2 = (w & LOWS).wrapping_add(ONES * 0x46);
        let non_digit = (w | !t1 | t2) & HIGHS;
        if non_digit != 0 {
            return i + (non_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Bytes per bitmap block.
const BLOCK: usize = 64;

/// The bitmaps of one 64-byte block: bit `j` of the first is set when byte `j` is
/// `"`, of the second when it is `\`.
///
/// x86_64 with SSE2 (part of the x86_64 baseline, so no runtime detection): eight
/// 16-byte compares per block. The vectors are assembled from two `u64` reads (one
/// load once compiled), so no pointer is dereferenced unchecked. AVX2 would halve the
/// compares but needs runtime detection and an `unsafe` call per block; the whole
/// bitmap pass is a few percent of a line's cost, so it was not tried.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn special_masks(block: &[u8; BLOCK]) -> (u64, u64) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let (mut quotes, mut slashes) = (0u64, 0u64);
    for (k, lane) in block.chunks_exact(16).enumerate() {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&lane[at..at + 8]);
            i64::from_le_bytes(w)
        };
        let (lo, hi) = (word(0), word(8));
        // SAFETY: these intrinsics only compute on values (no memory access); their one
        // requirement, the SSE2 target feature, is enabled for this whole compilation
        // (the `cfg` above).
        let (q, e) = unsafe {
            let v = _mm_set_epi64x(hi, lo);
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))),
            )
        };
        quotes |= u64::from(q as u16) << (16 * k);
        slashes |= u64::from(e as u16) << (16 * k);
    }
    (quotes, slashes)
}

/// The bitmaps of one 64-byte block (portable: eight bytes at a time).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn special_masks(block: &[u8; BLOCK]) -> (u64, u64) {
    special_masks_swar(block)
}

/// [`special_masks`] without SIMD: per 8-byte word, a byte equal to the target becomes
/// zero after the XOR and `!(((x & 0x7f..) + 0x7f..) | x | 0x7f..)` marks exactly the
/// zero bytes (no carry crosses a byte); the marks are gathered into eight bits by a
/// multiplication.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline]
fn special_masks_swar(block: &[u8; BLOCK]) -> (u64, u64) {
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let zero_bytes = |x: u64| !(((x & LOWS).wrapping_add(LOWS)) | x | LOWS);
    // One bit per byte (bit 7 of each) moved to the top byte, in byte order.
    let gather = |z: u64| ((z >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
    let (mut quotes, mut slashes) = (0u64, 0u64);
    for (k, chunk) in block.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        quotes |= gather(zero_bytes(w ^ (ONES * u64::from(b'"')))) << (8 * k);
        slashes |= gather(zero_bytes(w ^ (ONES * u64::from(b'\\')))) << (8 * k);
    }
    (quotes, slashes)
}

/// The bitmaps of the block starting at byte `start` of `b` (bytes past the end count
/// as neither quote nor backslash).
#[inline]
fn block_masks_at(b: &[u8], start: usize) -> (u64, u64) {
    match b
        .get(start..start.saturating_add(BLOCK))
        .and_then(|full| <&[u8; BLOCK]>::try_from(full).ok())
    {
        Some(block) => special_masks(block),
        None => {
            let rest = b.get(start..).unwrap_or_default();
            let mut block = [0u8; BLOCK];
            block[..rest.len()].copy_from_slice(rest);
            special_masks(&block)
        }
    }
}

impl<'a, const REFERENCE: bool> Scanner<'a, REFERENCE> {
    /// Makes `blk` the current block (computing its bitmaps unless it already is).
    #[inline(always)]
    fn load_block(&mut self, blk: usize) {
        if blk != self.blk {
            self.blk = blk;
            (self.quotes, self.slashes) = block_masks_at(self.b, blk.saturating_mul(BLOCK));
        }
    }

    /// The offset of the first `"` or `\` at or after `from`, from the block bitmaps
    /// (each block is computed once per line: positions only grow).
    #[inline]
    fn next_special(&mut self, from: usize) -> Option<usize> {
        #[cfg(test)]
        if REFERENCE {
            let rest = self.b.get(from..).unwrap_or_default();
            return find_quote_or_backslash(rest).map(|o| o + from);
        }
        let mut blk = from / BLOCK;
        self.load_block(blk);
        let mut m = (self.quotes | self.slashes) & (u64::MAX << (from % BLOCK));
        loop {
            if m != 0 {
                return Some(blk * BLOCK + m.trailing_zeros() as usize);
            }
            blk += 1;
            if blk.saturating_mul(BLOCK) >= self.b.len() {
                return None;
            }
            self.load_block(blk);
            m = self.quotes | self.slashes;
        }
    }

    fn err(&self, what: &'static str) -> ScanError {
        ScanError {
            offset: self.i,
            what,
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// At an opening quote; returns the raw body and whether it has escapes.
    ///
    /// The common case, a string without escapes whose closing quote is in the block
    /// of its first byte or the next, is decided from the blocks' bitmaps without a
    /// loop over bytes: the first quote at or after the start, and no backslash before
    /// it. Everything else (escapes, longer strings, unterminated ones) goes through
    /// [`Scanner::string_slow`], the byte-exact loop.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool), ScanError> {
        let start = self.i + 1;
        if !REFERENCE {
            let blk = start / BLOCK;
            self.load_block(blk);
            let sh = start % BLOCK;
            let mut q = self.quotes >> sh;
            let mut e = self.slashes >> sh;
            let mut base = start;
            // Nothing special up to the block's end: the string goes on in the next
            // block (one more block is looked at here; longer strings take the loop).
            if q | e == 0 && (blk + 1).saturating_mul(BLOCK) < self.b.len() {
                self.load_block(blk + 1);
                (q, e, base) = (self.quotes, self.slashes, (blk + 1) * BLOCK);
            }
            // `q & q.wrapping_neg()` is the first quote's bit; the bits below it must
            // hold no backslash.
            if q != 0 && e & ((q & q.wrapping_neg()) - 1) == 0 {
                let end = base + q.trailing_zeros() as usize;
                if let Some(body) = self.b.get(start..end) {
                    self.i = end + 1;
                    return Ok((body, false));
                }
            }
        }
        self.string_slow(start)
    }

    /// [`Scanner::string`] byte-exactly: from the body's first byte `start`, every
    /// backslash is checked and the closing quote found.
    #[inline(never)]
    fn string_slow(&mut self, start: usize) -> Result<(&'a [u8], bool), ScanError> {
        self.i = start;
        let mut escaped = false;
        loop {
            let Some(at) = self.next_special(self.i) else {
                self.i = self.b.len();
                return Err(self.err("unterminated string"));
            };
            self.i = at;
            if self.b.get(self.i) == Some(&b'"') {
                let body = &self.b[start..self.i];
                self.i += 1;
                return Ok((body, escaped));
            }
            escaped = true;
            match self.b.get(self.i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 2..self.i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.err("invalid \\u escape"));
                    }
                    self.i += 6;
                }
                _ => return Err(self.err("invalid escape")),
            }
        }
    }

    #[inline]
    fn number(&mut self) -> Result<&'a [u8], ScanError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |s: &mut Self| {
            let st = s.i;
            s.i = skip_digits(s.b, s.i);
            s.i - st
        };
        if digits(self) == 0 {
            return Err(self.err("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number fraction"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number exponent"));
            }
        }
        Ok(&self.b[start..self.i])
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value<V: Visitor<'a>>(&mut self, depth: usize, visit: &mut V) -> Result<(), ScanError> {
        let path_len = self.depth;
        match self.peek() {
            Some(b'"') => {
                let (s, esc) = self.string()?;
                visit.leaf(&self.path[..path_len], Leaf::Str(s, esc));
            }
            Some(b'{') => self.object(depth + 1, visit)?,
            Some(b'[') => self.array(depth + 1, visit)?,
            Some(b't') => {
                self.literal(b"true")?;
                visit.leaf(&self.path[..path_len], Leaf::Bool(true));
            }
            Some(b'f') => {
                self.literal(b"false")?;
                visit.leaf(&self.path[..path_len], Leaf::Bool(false));
            }
            Some(b'n') => {
                self.literal(b"null")?;
                visit.leaf(&self.path[..path_len], Leaf::Null);
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                visit.leaf(&self.path[..path_len], Leaf::Num(n));
            }
            Some(_) => return Err(self.err("expected a JSON value")),
            None => return Err(self.err("unexpected end of line")),
        }
        Ok(())
    }

    fn object<V: Visitor<'a>>(&mut self, depth: usize, visit: &mut V) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let saved = self.depth;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key"));
            }
            let (key, _) = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
            self.ws();
            // `saved < MAX_DEPTH`: the path grows by one per object level and objects
            // nest less than MAX_DEPTH deep (checked above).
            if visit.wants(&self.path[..saved], key) {
                self.path[saved] = key;
                self.depth = saved + 1;
                self.value(depth, visit)?;
                self.depth = saved;
            } else {
                self.value(depth, &mut Skip)?;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array<V: Visitor<'a>>(&mut self, depth: usize, visit: &mut V) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth, visit)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }
}

/// Resolves JSON escapes; `None` on invalid UTF-8 or a lone surrogate.
pub(crate) fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex4 = |i: usize| -> Option<u32> {
        let h = raw.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1)?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(i + 2)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        };
        let mut buf = [0; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(line: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        walk(line.as_bytes(), &mut |path, leaf| {
            let p: Vec<String> = path
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            let v = match leaf {
                Leaf::Str(..) => leaf.as_str().map(|s| s.into_owned()).unwrap_or_default(),
                Leaf::Num(n) => String::from_utf8_lossy(n).into_owned(),
                Leaf::Bool(b) => b.to_string(),
                Leaf::Null => "null".into(),
            };
            out.push((p.join("."), v));
        })?;
        Ok(out)
    }

    #[test]
    fn walks_nested_objects_and_arrays() {
        let got =
            leaves(r#" {"a":"x","b":{"c":[1,{"d":"\u00e9\n"}],"e":true},"f":null,"g":-1.5e3} "#)
                .unwrap();
        let want = [
            ("a", "x"),
            ("b.c", "1"),
            ("b.c.d", "\u{e9}\n"),
            ("b.e", "true"),
            ("f", "null"),
            ("g", "-1.5e3"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn malformed_lines_are_refused_with_an_offset() {
        let cases = [
            ("", "expected '{' (a JSON object)", 0),
            ("[1]", "expected '{' (a JSON object)", 0),
            (r#"{"a":"x"#, "unterminated string", 7),
            (r#"{"a" "x"}"#, "expected ':'", 5),
            (r#"{"a":tru}"#, "invalid literal", 5),
            (r#"{"a":1,}"#, "expected a key", 7),
            (r#"{"a":1} x"#, "trailing characters after the object", 8),
            (r#"{"a":"\q"}"#, "invalid escape", 6),
            (r#"{"a":-}"#, "invalid number", 6),
            (r#"{"a":[1 2]}"#, "expected ',' or ']'", 8),
        ];
        for (line, what, offset) in cases {
            let e = leaves(line).unwrap_err();
            assert_eq!((e.what, e.offset), (what, offset), "{line:?}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(leaves(&deep).unwrap_err().what, "nested too deeply");
    }

    #[test]
    fn unescape_table() {
        for (raw, want) in [
            (r"a\/b", Some("a/b")),
            (r"\ud83d\ude00", Some("\u{1F600}")),
            (r"\ud83d", None),
            (r"\u0041\t", Some("A\t")),
        ] {
            assert_eq!(unescape(raw.as_bytes()).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn find_quote_or_backslash_table() {
        // Positions around the 8-byte words and the 32-byte switch to memchr.
        for len in [0usize, 1, 7, 8, 9, 15, 16, 31, 32, 33, 40, 100] {
            for target in [b'"', b'\\'] {
                for at in [0, 1, 6, 7, 8, 9, 31, 32, 33, 63, 64, 99] {
                    let mut s = vec![b'a'; len];
                    if at < len {
                        s[at] = target;
                    }
                    let want = (at < len).then_some(at);
                    assert_eq!(find_quote_or_backslash(&s), want, "len {len} at {at}");
                }
            }
        }
        // High bytes (UTF-8) next to the target are not mistaken for it.
        let s = "é\u{80}ÿ\"".as_bytes();
        assert_eq!(find_quote_or_backslash(s), Some(s.len() - 1));
    }

    #[test]
    fn escapes_across_word_boundaries() {
        let cases = [
            (r#"{"k":"abcdefg\"hij"}"#, "abcdefg\"hij"),
            (r#"{"k":"abcdefgh\\"}"#, "abcdefgh\\"),
            (
                r#"{"k":"0123456789012345678901234567890123456789\u00e9\"x"}"#,
                "0123456789012345678901234567890123456789\u{e9}\"x",
            ),
            (
                r#"{"k":"\ud83d\ude00 and \/ \b\f\n\r\t"}"#,
                "\u{1F600} and / \u{8}\u{c}\n\r\t",
            ),
            (r#"{"k":""}"#, ""),
        ];
        for (line, want) in cases {
            let got = leaves(line).unwrap();
            assert_eq!(got, vec![("k".to_owned(), want.to_owned())], "{line}");
        }
    }

    /// Wants only keys starting with `a` (and everything below them).
    struct OnlyA(Vec<(String, String)>);

    impl<'a> Visitor<'a> for OnlyA {
        fn wants(&mut self, _: &[&'a [u8]], key: &'a [u8]) -> bool {
            key.first() == Some(&b'a')
        }
        fn leaf(&mut self, path: &[&'a [u8]], leaf: Leaf<'a>) {
            let p: Vec<String> = path
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            self.0.push((p.join("."), format!("{leaf:?}")));
        }
    }

    fn all_leaves(line: &[u8]) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        walk(line, &mut |path, leaf| {
            let p: Vec<String> = path
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            out.push((p.join("."), format!("{leaf:?}")));
        })?;
        Ok(out)
    }

    /// JSON-like text from fragments that exercise every scanner path: escapes (valid
    /// and not), unicode escapes, nesting, arrays, literals, numbers, stray bytes.
    fn jsonish() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let frag = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"",
            "\"a\"",
            "\"ab\":",
            "\"b\":",
            "\"c\"",
            "\"a\":{",
            "\"b\":[",
            "1",
            "-2.5e3",
            "0.",
            "true",
            "false",
            "null",
            "tru",
            "\\\"",
            "\\\\",
            "\\u00e9",
            "\\ud83d\\ude00",
            "\\u12",
            "\\q",
            "é",
            "\u{1F600}",
            "\"0123456789012345678901234567890123456789\"",
            "\"x\\\"y\"",
            "\n",
        ]);
        prop::collection::vec(frag, 0..40)
            .prop_map(|v| v.concat().into_bytes())
            .prop_flat_map(|b| {
                let n = b.len();
                (Just(b), 0..=n, any::<u8>())
            })
            .prop_map(|(mut b, at, byte)| {
                // Sometimes one arbitrary byte (invalid UTF-8, controls, ...).
                if byte % 4 == 0 {
                    b.insert(at, byte);
                }
                b
            })
    }

    /// The per-byte definition of the block bitmaps.
    fn naive_masks(block: &[u8; BLOCK]) -> (u64, u64) {
        let mut q = 0u64;
        let mut e = 0u64;
        for (j, &c) in block.iter().enumerate() {
            q |= u64::from(c == b'"') << j;
            e |= u64::from(c == b'\\') << j;
        }
        (q, e)
    }

    #[test]
    fn block_masks_table() {
        let mut block = [b'a'; BLOCK];
        assert_eq!(special_masks(&block), (0, 0));
        assert_eq!(special_masks_swar(&block), (0, 0));
        for at in 0..BLOCK {
            for (c, quote) in [(b'"', true), (b'\\', false)] {
                block = [b'a'; BLOCK];
                block[at] = c;
                let want = if quote { (1 << at, 0) } else { (0, 1 << at) };
                assert_eq!(special_masks(&block), want, "at {at}");
                assert_eq!(special_masks_swar(&block), want, "at {at}");
            }
        }
        // Bytes that differ from the targets by one bit, high bytes, all targets.
        let mut block = [0u8; BLOCK];
        for (j, b) in block.iter_mut().enumerate() {
            *b = [b'"', b'\\', 0xa2, 0xdc, b'#', b']', 0x80, 0xff][j % 8];
        }
        assert_eq!(special_masks(&block), naive_masks(&block));
        assert_eq!(special_masks_swar(&block), naive_masks(&block));
        // A tail shorter than a block is padded with bytes that are neither.
        let line = br#"{"a":"\"#;
        assert_eq!(block_masks_at(line, 0), (0b10_1010, 0b100_0000));
        assert_eq!(block_masks_at(line, 64), (0, 0));
        assert_eq!(block_masks_at(line, usize::MAX), (0, 0));
    }

    #[test]
    fn skip_digits_every_byte_at_every_place() {
        for c in 0..=255u8 {
            for at in 0..12 {
                let mut s = b"012345678901".to_vec();
                s[at] = c;
                let want = if c.is_ascii_digit() { s.len() } else { at };
                assert_eq!(skip_digits(&s, 0), want, "byte {c:#x} at {at}");
                assert_eq!(skip_digits(&s, at), want, "byte {c:#x} from {at}");
            }
        }
        assert_eq!(skip_digits(b"12", 5), 5);
    }

    /// Strings crossing block ends, escapes and runs of backslashes at every offset
    /// around the first two block boundaries: the bitmap scanner and the byte search
    /// give the same leaves or the same error.
    #[test]
    fn strings_across_block_boundaries() {
        let bodies: [&[u8]; 10] = [
            b"",
            b"\\\"",
            b"\\\\",
            b"\\\\\\\"",
            b"\\\\\\\\\\\\",
            b"\\u00e9",
            b"\\u00",
            b"\\q",
            b"\\",
            b"x\\\\\"",
        ];
        for pad in 0..140 {
            for body in bodies {
                for tail in [&b"\"}"[..], b"\"", b"", b"abc\"}"] {
                    let mut line = br#"{"k":""#.to_vec();
                    line.extend(std::iter::repeat_n(b'a', pad));
                    line.extend_from_slice(body);
                    line.extend_from_slice(tail);
                    let new = collect(&line, false);
                    let old = collect(&line, true);
                    assert_eq!(new, old, "{}", String::from_utf8_lossy(&line));
                }
            }
        }
    }

    /// The leaves (or the error) of a full walk, by the bitmap scanner or the reference.
    fn collect(line: &[u8], reference: bool) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        let mut push = |path: &[&[u8]], leaf: Leaf<'_>| {
            let p: Vec<String> = path
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            out.push((p.join("."), format!("{leaf:?}")));
        };
        let mut every = Every(&mut push);
        if reference {
            walk_reference(line, &mut every)?;
        } else {
            walk_with(line, &mut every)?;
        }
        Ok(out)
    }

    /// JSON-like lines long enough to span several blocks: `jsonish` fragments with
    /// some long strings and arbitrary padding in front (shifting every token against
    /// the block boundaries), then mutated at a few random places.
    fn long_jsonish() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            0usize..70,
            jsonish(),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
        )
            .prop_map(|(pad, body, edits)| {
                let mut line = vec![b' '; pad];
                line.extend_from_slice(&body);
                for (at, byte, op) in edits {
                    if line.is_empty() {
                        break;
                    }
                    let at = at % line.len();
                    let byte = [byte, b'"', b'\\'][usize::from(byte % 3)];
                    match op {
                        0 => line[at] = byte,
                        1 => line.insert(at, byte),
                        _ => {
                            line.remove(at);
                        }
                    }
                }
                line
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Skipping unwanted values never changes whether (and where) a line is refused,
        /// and the wanted leaves are exactly those of a full walk under wanted keys.
        #[test]
        fn filtered_walk_agrees_with_full_walk(line in jsonish()) {
            let full = all_leaves(&line);
            let mut only = OnlyA(Vec::new());
            let filtered = walk_with(&line, &mut only);
            match (&full, &filtered) {
                (Ok(all), Ok(())) => {
                    let want: Vec<_> = all
                        .iter()
                        .filter(|(p, _)| p.split('.').all(|k| k.starts_with('a')) && !p.is_empty())
                        .cloned()
                        .collect();
                    proptest::prop_assert_eq!(&only.0, &want);
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                _ => proptest::prop_assert!(false, "{full:?} vs {filtered:?}"),
            }
        }

        /// Every object serde_json accepts, the scanner accepts (it checks less: UTF-8
        /// and control characters inside strings).
        #[test]
        fn accepts_what_serde_json_accepts(line in jsonish()) {
            if let Ok(serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(&line) {
                let ok = walk(&line, &mut |_, _| ()).is_ok();
                proptest::prop_assert!(ok);
            }
        }

        /// The bitmap scanner accepts and refuses exactly what the byte search does,
        /// with the same leaves, errors and offsets.
        #[test]
        fn bitmap_scanner_agrees_with_byte_search(line in long_jsonish()) {
            proptest::prop_assert_eq!(collect(&line, false), collect(&line, true));
            let mut a = OnlyA(Vec::new());
            let mut b = OnlyA(Vec::new());
            let ra = walk_with(&line, &mut a);
            let rb = walk_reference(&line, &mut b);
            proptest::prop_assert_eq!(ra, rb);
            proptest::prop_assert_eq!(a.0, b.0);
        }

        /// The bitmaps of random blocks (biased towards the two targets and their
        /// one-bit neighbours) are their per-byte definition, SIMD and portable.
        #[test]
        fn block_masks_are_per_byte(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![b'"', b'\\', 0xa2, 0xdc, 0x02, 0x5d]),
                proptest::prelude::any::<u8>(),
            ],
            BLOCK,
        )) {
            let block: [u8; BLOCK] = bytes.try_into().unwrap();
            proptest::prop_assert_eq!(special_masks(&block), naive_masks(&block));
            proptest::prop_assert_eq!(special_masks_swar(&block), naive_masks(&block));
        }

        /// The word-wise digit skip stops where the byte loop does.
        #[test]
        fn skip_digits_is_byte_loop(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    (b'0'..=b'9'),
                    proptest::sample::select(vec![b'/', b':', 0xb0, 0xb9, 0xba, 0x2f, 0x3a, b'.', b'e']),
                    proptest::prelude::any::<u8>(),
                ],
                0..40,
            ),
            from in 0usize..45,
        ) {
            let mut want = from;
            while s.get(want).is_some_and(u8::is_ascii_digit) {
                want += 1;
            }
            proptest::prop_assert_eq!(skip_digits(&s, from), want.max(from));
        }

        #[test]
        fn find_quote_or_backslash_is_position(s in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let want = s.iter().position(|&c| c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(find_quote_or_backslash(&s), want);
        }
    }
}
