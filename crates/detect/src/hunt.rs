//! Feeding lines through an adapter and the index: line splitting with a length limit,
//! counting and sampling malformed lines, collecting hits. Bad lines never stop the
//! stream.
//!
//! [`Hunt::feed`] and [`Hunt::read`] match lines 32 at a time
//! ([`Index::match_records`], whose cache misses overlap across records: +15% parse +
//! match lines/s at a million indicators, see [`crate::index`]); [`Hunt::line`]
//! matches its one line. The results are the same either way, which a property test
//! checks line by line (hits per line and their order, counters, error samples, for
//! every reader buffer size).

use std::io::BufRead;

use phalanx_stix::Timestamp;

use crate::adapter::Adapter;
use crate::index::{Hit, Index, MatchStats};
use crate::observable::{Observable, Record};

/// Limits of a [`Hunt`].
#[derive(Debug, Clone)]
pub struct HuntConfig {
    /// Longest line accepted, in bytes (longer lines are skipped and counted).
    pub max_line_bytes: usize,
    /// How many line errors are kept as a sample.
    pub error_sample: usize,
}

impl Default for HuntConfig {
    fn default() -> Self {
        HuntConfig {
            max_line_bytes: 1 << 20,
            error_sample: 20,
        }
    }
}

/// A line that gave no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Counters of a [`Hunt`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Lines read (including blank and bad ones).
    pub lines: u64,
    /// Blank lines (skipped, not errors).
    pub blank: u64,
    /// Lines the adapter refused.
    pub malformed: u64,
    /// Lines over [`HuntConfig::max_line_bytes`].
    pub too_long: u64,
    /// The first line errors.
    pub error_sample: Vec<LineError>,
    /// Matching counters.
    pub matching: MatchStats,
}

/// Lines parsed before their records are matched together by [`Hunt::feed`] and
/// [`Hunt::read`] ([`Index::match_records`]: the index's cache misses of one record
/// overlap those of the others).
const BATCH: usize = 32;

/// [`Hunt::read`] matches the lines it holds once they take this many bytes.
const BATCH_BYTES: usize = 1 << 20;

/// A line waiting in a batch: its bytes (`\r` stripped) and its 1-based number.
#[derive(Debug, Clone, Copy)]
struct Pending {
    start: usize,
    end: usize,
    line: u64,
}

/// What [`Hunt::admit`] decided about a line.
enum Admit {
    /// To be parsed: its length without a trailing `\r`.
    Parse(usize),
    /// Over the length limit (its length).
    TooLong(usize),
    /// Blank (counted).
    Blank,
}

/// One pass of lines through an adapter and an index (sans-IO core: [`Hunt::line`];
/// [`Hunt::read`] adds a reader).
///
/// [`Hunt::feed`] and [`Hunt::read`] parse up to 32 lines before matching them
/// together ([`Index::match_records`]); hits, counters and error samples are the same
/// as line by line ([`Hunt::line`]), and `on_hits` is still called once per line with
/// hits, in line order. [`Hunt::read`] never holds a line back waiting for more input:
/// what it has read is matched before it asks the reader for more.
pub struct Hunt<'a> {
    adapter: &'a dyn Adapter,
    config: HuntConfig,
    stats: LineStats,
    hits: Vec<Hit>,
    /// The observables vector of the last record, kept empty between lines so its
    /// allocation serves the next one ([`Adapter::parse_into`], [`recycle`]).
    observables: Vec<Observable<'static>>,
    /// The same for the records of a batch.
    pool: Vec<Vec<Observable<'static>>>,
    /// Where each record's hits end in `hits`, for a batch.
    ends: Vec<usize>,
}

/// An empty vector of another lifetime with the same allocation.
///
/// `Observable<'a>` and `Observable<'b>` have the same layout, so collecting an empty
/// `into_iter()` reuses the buffer (std's in-place collection); were it ever not to,
/// this only costs the allocation it was meant to save.
// `filter(|_| false)`, as clippy suggests, would keep the lifetime: the point here.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut v: Vec<Observable<'_>>) -> Vec<Observable<'b>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

impl<'a> Hunt<'a> {
    /// A hunt reading with `adapter`.
    pub fn new(adapter: &'a dyn Adapter, config: HuntConfig) -> Self {
        Hunt {
            adapter,
            config,
            stats: LineStats::default(),
            hits: Vec::new(),
            observables: Vec::new(),
            pool: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &LineStats {
        &self.stats
    }

    fn error(&mut self, message: String) {
        let line = self.stats.lines;
        self.error_at(line, message);
    }

    fn error_at(&mut self, line: u64, message: String) {
        if self.stats.error_sample.len() < self.config.error_sample {
            self.stats.error_sample.push(LineError { line, message });
        }
    }

    /// Counts a line and says what to do with it.
    fn admit(&mut self, line: &[u8]) -> Admit {
        self.stats.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.config.max_line_bytes {
            return Admit::TooLong(line.len());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            self.stats.blank += 1;
            return Admit::Blank;
        }
        Admit::Parse(line.len())
    }

    fn too_long(&mut self, len: usize) {
        self.stats.too_long += 1;
        self.error(format!(
            "line is {} bytes, more than the limit of {}",
            len, self.config.max_line_bytes
        ));
    }

    /// Processes one line (without its terminator; a trailing `\r` is ignored) and
    /// returns its hits. `fallback` is the time of records that carry none.
    pub fn line(&mut self, index: &Index, line: &[u8], fallback: Timestamp) -> &[Hit] {
        self.hits.clear();
        let len = match self.admit(line) {
            Admit::Parse(len) => len,
            Admit::TooLong(len) => {
                self.too_long(len);
                return &self.hits;
            }
            Admit::Blank => return &self.hits,
        };
        let line = &line[..len];
        let mut rec = Record {
            observables: recycle(std::mem::take(&mut self.observables)),
            ..Record::default()
        };
        match self.adapter.parse_into(line, &mut rec) {
            Ok(()) => index.match_record(&rec, fallback, &mut self.hits, &mut self.stats.matching),
            Err(e) => {
                self.stats.malformed += 1;
                self.error(format!("{} adapter: {e}", self.adapter.name()));
            }
        }
        self.observables = recycle(rec.observables);
        &self.hits
    }

    /// Parses and matches the `pending` lines of `bytes` (callers keep them to
    /// [`BATCH`]), calls
    /// `on_hits` for each line with hits, in order, and empties `pending`.
    fn flush(
        &mut self,
        index: &Index,
        bytes: &[u8],
        pending: &mut Vec<Pending>,
        fallback: Timestamp,
        on_hits: &mut dyn FnMut(&[Hit]),
    ) {
        if pending.is_empty() {
            return;
        }
        let mut records: Vec<Record<'_>> = Vec::with_capacity(pending.len());
        for p in pending.iter() {
            let mut rec = Record {
                observables: recycle(self.pool.pop().unwrap_or_default()),
                ..Record::default()
            };
            let line = bytes.get(p.start..p.end).unwrap_or_default();
            match self.adapter.parse_into(line, &mut rec) {
                Ok(()) => records.push(rec),
                Err(e) => {
                    self.stats.malformed += 1;
                    self.error_at(p.line, format!("{} adapter: {e}", self.adapter.name()));
                    self.pool.push(recycle(rec.observables));
                }
            }
        }
        pending.clear();
        self.hits.clear();
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        ends.resize(records.len(), 0);
        index.match_records_each(
            &records,
            fallback,
            &mut self.hits,
            &mut self.stats.matching,
            &mut |k, end| {
                if let Some(e) = ends.get_mut(k) {
                    *e = end;
                }
            },
        );
        let mut start = 0;
        for &end in &ends {
            if let Some(h) = self.hits.get(start..end)
                && !h.is_empty()
            {
                on_hits(h);
            }
            start = end;
        }
        self.ends = ends;
        for r in records {
            self.pool.push(recycle(r.observables));
        }
    }

    /// Processes every line of an in-memory buffer, calling `on_hits` with each line's
    /// hits.
    pub fn feed(
        &mut self,
        index: &Index,
        bytes: &[u8],
        fallback: Timestamp,
        on_hits: &mut dyn FnMut(&[Hit]),
    ) {
        let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], at + i + 1),
                None => (rest, bytes.len()),
            };
            match self.admit(line) {
                Admit::Parse(len) => {
                    let line_no = self.stats.lines;
                    pending.push(Pending {
                        start: at,
                        end: at + len,
                        line: line_no,
                    });
                    if pending.len() == BATCH {
                        self.flush(index, bytes, &mut pending, fallback, on_hits);
                    }
                }
                Admit::TooLong(len) => {
                    // Errors are sampled in line order: the lines before go first.
                    self.flush(index, bytes, &mut pending, fallback, on_hits);
                    self.too_long(len);
                }
                Admit::Blank => {}
            }
            at = next;
        }
        self.flush(index, bytes, &mut pending, fallback, on_hits);
    }

    /// Reads lines until end of input. Lines longer than the limit are skipped without
    /// being held in memory. IO errors end the read (lines so far are counted).
    pub fn read(
        &mut self,
        index: &Index,
        mut reader: impl BufRead,
        fallback: Timestamp,
        on_hits: &mut dyn FnMut(&[Hit]),
    ) -> std::io::Result<()> {
        // Complete lines waiting in `pending`, then the line being read from `line`.
        let mut buf: Vec<u8> = Vec::new();
        let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
        let mut line = 0;
        let mut skipping = false;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) => {
                    self.flush(index, &buf, &mut pending, fallback, on_hits);
                    return Err(e);
                }
            };
            if chunk.is_empty() {
                if skipping {
                    self.flush(index, &buf, &mut pending, fallback, on_hits);
                    self.stats.lines += 1;
                    self.long_line();
                } else if buf.len() > line {
                    self.end_line(index, &mut buf, &mut pending, &mut line, fallback, on_hits);
                }
                self.flush(index, &buf, &mut pending, fallback, on_hits);
                return Ok(());
            }
            let (part, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if !skipping {
                if buf.len() - line + part.len() > self.config.max_line_bytes + 1 {
                    skipping = true;
                    buf.truncate(line);
                } else {
                    buf.extend_from_slice(part);
                }
            }
            let used = end.unwrap_or(chunk.len());
            let exhausted = used == chunk.len();
            reader.consume(used);
            if end.is_some() {
                if skipping {
                    self.flush(index, &buf, &mut pending, fallback, on_hits);
                    self.stats.lines += 1;
                    self.long_line();
                    skipping = false;
                } else {
                    self.end_line(index, &mut buf, &mut pending, &mut line, fallback, on_hits);
                }
            }
            // The next `fill_buf` may wait for input: match what is here first. Waiting
            // lines are also bounded in bytes, so the batch holds at most about
            // `BATCH_BYTES` besides the line being read.
            if exhausted || pending.len() == BATCH || line >= BATCH_BYTES {
                self.flush(index, &buf, &mut pending, fallback, on_hits);
                buf.drain(..line);
                line = 0;
            }
        }
    }

    fn long_line(&mut self) {
        self.stats.too_long += 1;
        let max = self.config.max_line_bytes;
        self.error(format!("line is longer than the limit of {max} bytes"));
    }

    /// [`Hunt::read`]: the line in `buf[*line..]` is complete.
    fn end_line(
        &mut self,
        index: &Index,
        buf: &mut Vec<u8>,
        pending: &mut Vec<Pending>,
        line: &mut usize,
        fallback: Timestamp,
        on_hits: &mut dyn FnMut(&[Hit]),
    ) {
        let start = *line;
        match self.admit(&buf[start..]) {
            Admit::Parse(len) => {
                let line_no = self.stats.lines;
                pending.push(Pending {
                    start,
                    end: start + len,
                    line: line_no,
                });
                *line = buf.len();
            }
            Admit::TooLong(len) => {
                self.flush(index, buf, pending, fallback, on_hits);
                self.too_long(len);
                buf.truncate(start);
            }
            Admit::Blank => buf.truncate(start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards the allocation reuse `Hunt::line` relies on (a failure here costs speed,
    /// not correctness).
    #[test]
    fn recycle_keeps_the_allocation() {
        let mut v: Vec<Observable<'static>> = Vec::with_capacity(12);
        v.push(Observable {
            kind: crate::Kind::Ip,
            value: "10.0.0.1".into(),
        });
        let (ptr, cap) = (v.as_ptr() as usize, v.capacity());
        let line = String::from("x");
        let mut w: Vec<Observable<'_>> = recycle(v);
        assert!(w.is_empty());
        assert_eq!((w.as_ptr() as usize, w.capacity()), (ptr, cap));
        w.push(Observable {
            kind: crate::Kind::Domain,
            value: line.as_str().into(),
        });
        let back: Vec<Observable<'static>> = recycle(w);
        assert_eq!((back.as_ptr() as usize, back.capacity()), (ptr, cap));
    }
}
