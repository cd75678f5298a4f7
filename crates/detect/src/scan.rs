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
//! gap stays visible (a SIMD structural scanner such as sonic-rs is the next step if
//! the scanner becomes the bottleneck). Array elements share
//! their parent's path (indices are not needed by any adapter).
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
    s.object(0, visit)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.err("trailing characters after the object"));
    }
    Ok(())
}

impl<'a> Scanner<'a> {
    fn err(&self, what: &'static str) -> ScanError {
        ScanError {
            offset: self.i,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

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
    fn string(&mut self) -> Result<(&'a [u8], bool), ScanError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            // Most keys and values are short: a plain loop beats memchr's setup there.
            let short = &self.b[self.i..self.b.len().min(self.i + 24)];
            let found = match short.iter().position(|&c| c == b'"' || c == b'\\') {
                Some(off) => Some(off),
                None if short.len() < 24 => None,
                None => memchr::memchr2(b'"', b'\\', &self.b[self.i + 24..]).map(|o| o + 24),
            };
            let Some(off) = found else {
                self.i = self.b.len();
                return Err(self.err("unterminated string"));
            };
            self.i += off;
            if self.b[self.i] == b'"' {
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

    fn value(
        &mut self,
        depth: usize,
        visit: &mut dyn FnMut(&[&'a [u8]], Leaf<'a>),
    ) -> Result<(), ScanError> {
        let path_len = self.depth;
        match self.peek() {
            Some(b'"') => {
                let (s, esc) = self.string()?;
                visit(&self.path[..path_len], Leaf::Str(s, esc));
            }
            Some(b'{') => self.object(depth + 1, visit)?,
            Some(b'[') => self.array(depth + 1, visit)?,
            Some(b't') => {
                self.literal(b"true")?;
                visit(&self.path[..path_len], Leaf::Bool(true));
            }
            Some(b'f') => {
                self.literal(b"false")?;
                visit(&self.path[..path_len], Leaf::Bool(false));
            }
            Some(b'n') => {
                self.literal(b"null")?;
                visit(&self.path[..path_len], Leaf::Null);
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                visit(&self.path[..path_len], Leaf::Num(n));
            }
            Some(_) => return Err(self.err("expected a JSON value")),
            None => return Err(self.err("unexpected end of line")),
        }
        Ok(())
    }

    fn object(
        &mut self,
        depth: usize,
        visit: &mut dyn FnMut(&[&'a [u8]], Leaf<'a>),
    ) -> Result<(), ScanError> {
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
            self.path[saved] = key;
            self.depth = saved + 1;
            self.value(depth, visit)?;
            self.depth = saved;
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

    fn array(
        &mut self,
        depth: usize,
        visit: &mut dyn FnMut(&[&'a [u8]], Leaf<'a>),
    ) -> Result<(), ScanError> {
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
}
