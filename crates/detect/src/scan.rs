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
//! the CIDR lookup). The adapter-side items (UTF-8 checks, addresses, time, the
//! record's allocation) were taken in the next round (see [`crate::adapter`]); string
//! scanning (~13%, `Scanner::string`, the load after the word search that decides
//! quote or backslash) and the token loop (`object` / `value` / `number`, ~10%) are
//! now the largest parse costs. The next step, if parsing is the bottleneck, is a simdjson-style
//! first pass (quote and backslash bitmaps over 64 bytes, in-string mask by prefix
//! XOR) that removes the per-string branch. sonic-rs (SIMD, lazy `get_many`) was not
//! evaluated in this round; its pointer lookups name array indices, so paths under
//! arrays (`dns.answers[].rdata`) would still need a walk.
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

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    path: [&'a [u8]; MAX_DEPTH],
    depth: usize,
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
    let mut s = Scanner {
        b: line,
        i: 0,
        path: [&[]; MAX_DEPTH],
        depth: 0,
    };
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Offset of the first `"` or `\` in `s`.
///
/// Eight bytes at a time (SWAR: a byte equal to the target becomes zero after the XOR,
/// and `(v - 0x01..) & !v & 0x80..` marks zero bytes; the lowest mark is exact because
/// borrows only run upwards), then `memchr2` (SIMD) past 32 bytes. Keys and most values
/// of telemetry lines are shorter than that, where memchr's setup costs more than it
/// saves (see the module documentation for the measured effect).
#[inline(always)]
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
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

impl<'a> Scanner<'a> {
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
    #[inline]
    fn string(&mut self) -> Result<(&'a [u8], bool), ScanError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            let Some(off) = find_quote_or_backslash(rest) else {
                self.i = self.b.len();
                return Err(self.err("unterminated string"));
            };
            self.i += off;
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
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
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

        #[test]
        fn find_quote_or_backslash_is_position(s in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let want = s.iter().position(|&c| c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(find_quote_or_backslash(&s), want);
        }
    }
}
