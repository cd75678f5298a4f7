//! Streaming splitter for STIX input of any size (sans-IO).
//!
//! Accepts, in one stream and in any mix: STIX bundles (`{"type":"bundle",...,"objects":[...]}`),
//! TAXII envelopes (`{"more":..,"objects":[...]}`), single objects, and JSON lines of
//! either. The caller feeds byte chunks with [`Splitter::push`] and calls
//! [`Splitter::finish`] at the end; the splitter hands back each STIX object's exact bytes
//! as soon as the object is complete, so memory stays bounded by the largest single
//! object, not by the input.
//!
//! It only finds value boundaries (strings, brackets, depth); the bytes of each object are
//! then parsed strictly by [`crate::StixObject::parse`]. Faults are reported as
//! [`Item::Error`] with the byte offset and line; an oversize or too-deep object is skipped
//! without being buffered, and the stream goes on with the next one.

use std::fmt;

/// Limits applied while splitting.
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    /// Largest accepted object (bytes of its JSON text).
    pub max_object_bytes: usize,
    /// Deepest accepted nesting of arrays/objects inside one object.
    pub max_depth: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        SplitLimits {
            max_object_bytes: 16 * 1024 * 1024,
            max_depth: crate::json::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Where something is in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset of the start of the value from the start of the stream.
    pub offset: u64,
    /// 1-based line of that byte.
    pub line: u64,
    /// Index within the enclosing `objects` array, when inside a bundle or envelope.
    pub index: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(
                f,
                "objects[{i}] at line {}, byte {}",
                self.line, self.offset
            ),
            None => write!(f, "line {}, byte {}", self.line, self.offset),
        }
    }
}

/// One thing found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The bytes of one candidate STIX object (not yet parsed).
    Object {
        /// Exact bytes as they appeared in the input.
        bytes: Vec<u8>,
        /// Where it started.
        pos: Position,
    },
    /// Something in the input that is not usable, with what and where.
    Error {
        /// Where the fault is.
        pos: Position,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between top-level values.
    Top,
    /// Inside a top-level object, expecting a key or `}`.
    Key { first: bool },
    /// After a key, expecting `:`.
    Colon,
    /// After `:`, expecting a value.
    FieldValue,
    /// After a field value, expecting `,` or `}`.
    AfterField,
    /// Inside the `objects` array, expecting an element (or `]` when first).
    Elem { first: bool },
    /// After an element, expecting `,` or `]`.
    AfterElem,
    /// Scanning a value (see `Scan`); `target` says what the value is.
    Value(Target),
    /// After a top-level syntax fault: skip to the next line.
    Resync,
    /// After an unrecoverable fault inside a container: ignore the rest.
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Key,
    Field,
    Element,
}

/// Resumable scanner that finds where one JSON value ends.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    started: bool,
    scalar: bool,
    in_str: bool,
    esc: bool,
    depth: usize,
    max_seen: usize,
}

enum Step {
    /// The value ended just before this index.
    Done(usize),
    /// Need more input.
    More,
}

impl Scan {
    fn run(&mut self, buf: &[u8], mut i: usize, lines: &mut u64) -> Step {
        while i < buf.len() {
            let b = buf[i];
            if b == b'\n' {
                *lines += 1;
            }
            if !self.started {
                self.started = true;
                match b {
                    b'{' | b'[' => {
                        self.depth = 1;
                        self.max_seen = 1;
                    }
                    b'"' => {
                        self.in_str = true;
                    }
                    _ => self.scalar = true,
                }
                i += 1;
                continue;
            }
            if self.scalar {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    if b == b'\n' {
                        *lines -= 1; // not part of the value; counted again by the caller
                    }
                    return Step::Done(i);
                }
                i += 1;
                continue;
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                    if self.depth == 0 {
                        return Step::Done(i + 1);
                    }
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.max_seen = self.max_seen.max(self.depth);
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Step::Done(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Step::More
    }
}

/// The splitter. See the module documentation.
#[derive(Debug)]
pub struct Splitter {
    limits: SplitLimits,
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Next index in `buf` to look at.
    pos: usize,
    /// Line number at `pos`.
    line: u64,
    state: State,
    scan: Scan,
    /// Start (index into buf) and position of the value being scanned.
    value_start: usize,
    value_pos: Position,
    /// The value being scanned exceeded the size limit and is being skipped.
    discarding: bool,
    /// Start of the current top-level object in `buf`, and its position.
    top_start: usize,
    top_pos: Position,
    /// The current top-level object is a container (it has an `objects` array).
    container: bool,
    /// The current top-level object cannot be emitted (a fault inside it).
    poisoned: bool,
    /// The key just read at depth 1.
    key: Vec<u8>,
    /// Container fields other than `objects`: (key, raw value).
    fields: Vec<(String, Vec<u8>)>,
    /// Index of the next element in the container's array.
    index: u64,
}

impl Splitter {
    /// A splitter with the given limits.
    pub fn new(limits: SplitLimits) -> Self {
        Splitter {
            limits,
            buf: Vec::with_capacity(1 << 16),
            base: 0,
            pos: 0,
            line: 1,
            state: State::Top,
            scan: Scan::default(),
            value_start: 0,
            value_pos: Position {
                offset: 0,
                line: 1,
                index: None,
            },
            discarding: false,
            top_start: 0,
            top_pos: Position {
                offset: 0,
                line: 1,
                index: None,
            },
            container: false,
            poisoned: false,
            key: Vec::new(),
            fields: Vec::new(),
            index: 0,
        }
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn here(&self, index: Option<u64>) -> Position {
        Position {
            offset: self.base + self.pos as u64,
            line: self.line,
            index,
        }
    }

    /// Feeds the next chunk; complete items are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Item>) {
        if self.base == 0 && self.buf.is_empty() && chunk.starts_with(b"\xEF\xBB\xBF") {
            // A UTF-8 byte-order mark before the first value is tolerated.
            self.buf.extend_from_slice(&chunk[3..]);
            self.base = 3;
        } else {
            self.buf.extend_from_slice(chunk);
        }
        self.run(false, out);
        self.compact();
    }

    /// Signals the end of input; reports anything left incomplete.
    pub fn finish(&mut self, out: &mut Vec<Item>) {
        self.run(true, out);
        let truncated = |what: &str| format!("input ends inside {what} (truncated JSON?)");
        let msg = match self.state {
            State::Top | State::Resync | State::Dead => None,
            State::Value(Target::Element) => Some(truncated("an object")),
            State::Elem { .. } | State::AfterElem => Some(truncated("the objects array")),
            _ if self.container => Some(truncated("a bundle or envelope")),
            _ => Some(truncated("an object")),
        };
        if let Some(message) = msg {
            let pos = match self.state {
                State::Value(Target::Element) => self.value_pos,
                _ => self.top_pos,
            };
            out.push(Item::Error { pos, message });
        }
        self.state = State::Top;
        self.buf.clear();
    }

    /// Drops consumed bytes that no pending value needs.
    fn compact(&mut self) {
        let keep_from = match self.state {
            State::Top | State::Resync | State::Dead => self.pos,
            State::Value(Target::Element) if !self.discarding => self.value_start,
            State::Value(_)
            | State::Key { .. }
            | State::Colon
            | State::FieldValue
            | State::AfterField
                if !self.container && !self.poisoned && !self.discarding =>
            {
                self.top_start
            }
            State::Value(_) if !self.discarding => self.value_start,
            _ => self.pos,
        };
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.base += keep_from as u64;
            self.pos -= keep_from;
            self.value_start = self.value_start.saturating_sub(keep_from);
            self.top_start = self.top_start.saturating_sub(keep_from);
        }
    }

    fn fault(&mut self, out: &mut Vec<Item>, pos: Position, message: String) {
        out.push(Item::Error { pos, message });
        if self.container {
            self.state = State::Dead;
        } else {
            self.state = State::Resync;
        }
    }

    fn unexpected(&self, b: u8, expected: &str) -> String {
        let shown = if b.is_ascii_graphic() {
            format!("{:?}", b as char)
        } else {
            format!("byte 0x{b:02x}")
        };
        format!("expected {expected}, found {shown}")
    }

    fn run(&mut self, eof: bool, out: &mut Vec<Item>) {
        loop {
            if let State::Value(target) = self.state {
                let step = self.scan.run(&self.buf, self.pos, &mut self.line);
                let end = match step {
                    Step::Done(end) => end,
                    Step::More if eof && self.scan.scalar => self.buf.len(),
                    Step::More => {
                        self.pos = self.buf.len();
                        if !self.discarding
                            && self.pos - self.value_start > self.limits.max_object_bytes
                        {
                            // Stop buffering: skip the rest of this value.
                            self.discarding = true;
                        }
                        if self.discarding {
                            self.value_start = self.pos;
                        }
                        return;
                    }
                };
                self.pos = end;
                self.value_done(target, end, out);
                continue;
            }
            // Structural states: skip whitespace, look at one byte.
            let Some(&b) = self.buf.get(self.pos) else {
                return;
            };
            if matches!(self.state, State::Dead) {
                self.pos = self.buf.len();
                return;
            }
            if matches!(self.state, State::Resync) {
                match self.buf[self.pos..].iter().position(|&c| c == b'\n') {
                    Some(n) => {
                        self.pos += n + 1;
                        self.line += 1;
                        self.state = State::Top;
                        continue;
                    }
                    None => {
                        self.pos = self.buf.len();
                        return;
                    }
                }
            }
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                if b == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
                continue;
            }
            match self.state {
                State::Top => {
                    if b == b'{' {
                        self.top_start = self.pos;
                        self.top_pos = self.here(None);
                        self.container = false;
                        self.poisoned = false;
                        self.fields.clear();
                        self.index = 0;
                        self.pos += 1;
                        self.state = State::Key { first: true };
                    } else {
                        let pos = self.here(None);
                        let msg = self.unexpected(b, "'{' (a STIX object, bundle or envelope)");
                        self.fault(out, pos, msg);
                    }
                }
                State::Key { first } => {
                    if b == b'"' {
                        self.begin_value(Target::Key, None);
                    } else if b == b'}' && first {
                        self.pos += 1;
                        self.top_done(out);
                    } else {
                        let pos = self.here(None);
                        let msg = self.unexpected(b, "a property name in double quotes");
                        self.fault(out, pos, msg);
                    }
                }
                State::Colon => {
                    if b == b':' {
                        self.pos += 1;
                        self.state = State::FieldValue;
                    } else {
                        let pos = self.here(None);
                        let msg = self.unexpected(b, "':'");
                        self.fault(out, pos, msg);
                    }
                }
                State::FieldValue => {
                    if b == b'[' && self.key == b"objects" && !self.container {
                        self.pos += 1;
                        self.container = true;
                        self.state = State::Elem { first: true };
                    } else if matches!(b, b'}' | b']' | b',' | b':') {
                        let pos = self.here(None);
                        let msg = self.unexpected(b, "a value");
                        self.fault(out, pos, msg);
                    } else {
                        self.begin_value(Target::Field, None);
                    }
                }
                State::AfterField => match b {
                    b',' => {
                        self.pos += 1;
                        self.state = State::Key { first: false };
                    }
                    b'}' => {
                        self.pos += 1;
                        self.top_done(out);
                    }
                    _ => {
                        let pos = self.here(None);
                        let msg = self.unexpected(b, "',' or '}' after a property");
                        self.fault(out, pos, msg);
                    }
                },
                State::Elem { first } => {
                    if b == b']' && first {
                        self.pos += 1;
                        self.state = State::AfterField;
                    } else if b == b'{' {
                        let idx = Some(self.index);
                        self.index += 1;
                        self.begin_value(Target::Element, idx);
                    } else if matches!(b, b']' | b',') {
                        let pos = self.here(Some(self.index));
                        let msg = self.unexpected(b, "an object");
                        self.fault(out, pos, msg);
                    } else {
                        // A non-object element: report it, skip it, carry on.
                        let idx = Some(self.index);
                        self.index += 1;
                        self.begin_value(Target::Element, idx);
                    }
                }
                State::AfterElem => match b {
                    b',' => {
                        self.pos += 1;
                        self.state = State::Elem { first: false };
                    }
                    b']' => {
                        self.pos += 1;
                        self.state = State::AfterField;
                    }
                    _ => {
                        let pos = self.here(Some(self.index));
                        let msg = self.unexpected(b, "',' or ']' between objects");
                        self.fault(out, pos, msg);
                    }
                },
                State::Value(_) | State::Resync | State::Dead => unreachable!(),
            }
        }
    }

    fn begin_value(&mut self, target: Target, index: Option<u64>) {
        self.scan = Scan::default();
        self.value_start = self.pos;
        self.value_pos = self.here(index);
        self.discarding = false;
        self.state = State::Value(target);
    }

    fn value_done(&mut self, target: Target, end: usize, out: &mut Vec<Item>) {
        let pos = self.value_pos;
        let too_big = self.discarding || end - self.value_start > self.limits.max_object_bytes;
        let too_deep = self.scan.max_seen > self.limits.max_depth + 1;
        let bytes = &self.buf[self.value_start.min(end)..end];
        match target {
            Target::Key | Target::Field
                if !self.container
                    && !self.poisoned
                    && end - self.top_start > self.limits.max_object_bytes =>
            {
                // Many small properties can add up to an oversize object too.
                self.poisoned = true;
                out.push(Item::Error {
                    pos: self.top_pos,
                    message: self.limit_message(true),
                });
                self.state = match target {
                    Target::Key => State::Colon,
                    _ => State::AfterField,
                };
            }
            Target::Key => {
                self.key.clear();
                self.key
                    .extend_from_slice(&bytes[1..bytes.len().saturating_sub(1)]);
                self.state = State::Colon;
                if too_big {
                    self.poisoned = true;
                }
            }
            Target::Field => {
                if too_big || too_deep {
                    self.poisoned = true;
                    out.push(Item::Error {
                        pos,
                        message: self.limit_message(too_big),
                    });
                } else if self.container || self.key != b"objects" {
                    let key = String::from_utf8_lossy(&self.key).into_owned();
                    self.fields.push((key, bytes.to_vec()));
                }
                self.state = State::AfterField;
            }
            Target::Element => {
                if too_big || too_deep {
                    out.push(Item::Error {
                        pos,
                        message: self.limit_message(too_big),
                    });
                } else if bytes.first() != Some(&b'{') {
                    out.push(Item::Error {
                        pos,
                        message: "element of objects is not a JSON object".to_owned(),
                    });
                } else {
                    out.push(Item::Object {
                        bytes: bytes.to_vec(),
                        pos,
                    });
                }
                self.state = State::AfterElem;
            }
        }
        self.discarding = false;
    }

    fn limit_message(&self, too_big: bool) -> String {
        if too_big {
            format!(
                "object exceeds the size limit of {} bytes; skipped",
                self.limits.max_object_bytes
            )
        } else {
            format!(
                "object nests deeper than the limit of {} levels; skipped",
                self.limits.max_depth
            )
        }
    }

    /// A top-level `{...}` ended at `self.pos`.
    fn top_done(&mut self, out: &mut Vec<Item>) {
        self.state = State::Top;
        if self.container {
            self.check_container(out);
            return;
        }
        if self.poisoned {
            return;
        }
        let bytes = self.buf[self.top_start..self.pos].to_vec();
        if bytes.len() > self.limits.max_object_bytes {
            out.push(Item::Error {
                pos: self.top_pos,
                message: self.limit_message(true),
            });
            return;
        }
        out.push(Item::Object {
            bytes,
            pos: self.top_pos,
        });
    }

    /// Checks the non-`objects` fields of a bundle or envelope.
    fn check_container(&mut self, out: &mut Vec<Item>) {
        let field = |k: &str| {
            self.fields
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| serde_json::from_slice::<serde_json::Value>(v).ok())
        };
        let pos = self.top_pos;
        let mut err = |message: String| out.push(Item::Error { pos, message });
        match field("type") {
            None => {} // a TAXII envelope
            Some(serde_json::Value::String(t)) if t == "bundle" => {
                match field("id") {
                    Some(serde_json::Value::String(id)) => {
                        if !matches!(crate::id::parse_id(&id), Ok(("bundle", _))) {
                            err(format!("bundle id {id:?} is not of the form bundle--UUID"));
                        }
                    }
                    _ => err("bundle has no id".to_owned()),
                }
                if let Some(v) = field("spec_version") {
                    err(format!(
                        "bundle has spec_version {v}: a STIX 2.0 bundle (STIX 2.1 bundles carry no spec_version)"
                    ));
                }
            }
            Some(other) => err(format!(
                "a top-level object with an objects array must be a bundle or a TAXII envelope, not type {other}"
            )),
        }
    }
}

/// Splits a whole in-memory input (convenience for tests and small inputs).
pub fn split_all(input: &[u8], limits: SplitLimits) -> Vec<Item> {
    let mut s = Splitter::new(limits);
    let mut out = Vec::new();
    s.push(input, &mut out);
    s.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Object { bytes, .. } => Some(String::from_utf8(bytes.clone()).unwrap()),
                Item::Error { .. } => None,
            })
            .collect()
    }

    fn errors(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Error { message, pos } => Some(format!("{pos}: {message}")),
                Item::Object { .. } => None,
            })
            .collect()
    }

    const BUNDLE: &str = r#"{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
      "objects": [ {"a": "x}]\"{"} , {"b": [1, {"c": 2}]} ] }"#;

    #[test]
    fn bundle_elements_are_exact_bytes_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 1000] {
            let mut s = Splitter::new(SplitLimits::default());
            let mut out = Vec::new();
            for c in BUNDLE.as_bytes().chunks(chunk) {
                s.push(c, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(errors(&out), Vec::<String>::new(), "chunk {chunk}");
            assert_eq!(
                objects(&out),
                [r#"{"a": "x}]\"{"}"#, r#"{"b": [1, {"c": 2}]}"#],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn objects_array_may_come_first_and_envelopes_work() {
        let out = split_all(
            br#"{"objects":[{"x":1}],"more":false} {"objects":[], "type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d"}"#,
            SplitLimits::default(),
        );
        assert_eq!(objects(&out), [r#"{"x":1}"#]);
        assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    }

    #[test]
    fn json_lines_with_a_bad_line() {
        let out = split_all(
            b"{\"id\":1}\nnot json\n{\"id\":2}\n{\"id\":3,\"objects\":{\"0\":{}}}\n",
            SplitLimits::default(),
        );
        assert_eq!(
            objects(&out),
            [
                r#"{"id":1}"#,
                r#"{"id":2}"#,
                r#"{"id":3,"objects":{"0":{}}}"#
            ]
        );
        assert_eq!(
            errors(&out),
            ["line 2, byte 9: expected '{' (a STIX object, bundle or envelope), found 'n'"]
        );
    }

    #[test]
    fn truncated_input_is_reported() {
        let out = split_all(
            br#"{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[{"a":1},{"b":"#,
            SplitLimits::default(),
        );
        assert_eq!(objects(&out), [r#"{"a":1}"#]);
        assert_eq!(
            errors(&out),
            ["objects[1] at line 1, byte 88: input ends inside an object (truncated JSON?)"]
        );
    }

    #[test]
    fn oversize_object_is_skipped_without_buffering() {
        let big = "x".repeat(10_000);
        let input = format!(r#"{{"objects":[{{"a":1}},{{"s":"{big}"}},{{"b":2}}]}}"#);
        let limits = SplitLimits {
            max_object_bytes: 1000,
            max_depth: 8,
        };
        let mut s = Splitter::new(limits);
        let mut out = Vec::new();
        let mut peak = 0;
        for c in input.as_bytes().chunks(100) {
            s.push(c, &mut out);
            peak = peak.max(s.buf.len());
        }
        s.finish(&mut out);
        assert!(peak < 1200, "buffered {peak} bytes");
        assert_eq!(objects(&out), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(errors(&out).len(), 1);
        assert!(errors(&out)[0].contains("objects[1]") && errors(&out)[0].contains("size limit"));
    }

    #[test]
    fn too_deep_object_is_skipped() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let input = format!(r#"{{"objects":[{{"a":{deep}}},{{"b":2}}]}}"#);
        let out = split_all(input.as_bytes(), SplitLimits::default());
        assert_eq!(objects(&out), [r#"{"b":2}"#]);
        assert!(errors(&out)[0].contains("deeper than the limit"));
    }

    #[test]
    fn wrong_container_and_garbage_between_elements() {
        let out = split_all(
            br#"{"type":"report","objects":[{"a":1}]}"#,
            SplitLimits::default(),
        );
        assert!(errors(&out)[0].contains("not type \"report\""));
        let out = split_all(br#"{"objects":[{"a":1} {"b":2}]}"#, SplitLimits::default());
        assert_eq!(objects(&out), [r#"{"a":1}"#]);
        assert!(errors(&out)[0].contains("expected ',' or ']' between objects"));
        let out = split_all(
            br#"{"objects":[{"a":1}, 5, {"b":2}]}"#,
            SplitLimits::default(),
        );
        assert_eq!(objects(&out), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert!(errors(&out)[0].contains("objects[1]"));
    }
}
