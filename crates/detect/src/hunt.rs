//! Feeding lines through an adapter and the index: line splitting with a length limit,
//! counting and sampling malformed lines, collecting hits. Bad lines never stop the
//! stream.

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

/// One pass of lines through an adapter and an index (sans-IO core: [`Hunt::line`];
/// [`Hunt::read`] adds a reader).
pub struct Hunt<'a> {
    adapter: &'a dyn Adapter,
    config: HuntConfig,
    stats: LineStats,
    hits: Vec<Hit>,
    /// The observables vector of the last record, kept empty between lines so its
    /// allocation serves the next one ([`Adapter::parse_into`], [`recycle`]).
    observables: Vec<Observable<'static>>,
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
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &LineStats {
        &self.stats
    }

    fn error(&mut self, message: String) {
        if self.stats.error_sample.len() < self.config.error_sample {
            self.stats.error_sample.push(LineError {
                line: self.stats.lines,
                message,
            });
        }
    }

    /// Processes one line (without its terminator; a trailing `\r` is ignored) and
    /// returns its hits. `fallback` is the time of records that carry none.
    pub fn line(&mut self, index: &Index, line: &[u8], fallback: Timestamp) -> &[Hit] {
        self.hits.clear();
        self.stats.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.config.max_line_bytes {
            self.stats.too_long += 1;
            self.error(format!(
                "line is {} bytes, more than the limit of {}",
                line.len(),
                self.config.max_line_bytes
            ));
            return &self.hits;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            self.stats.blank += 1;
            return &self.hits;
        }
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

    /// Processes every line of an in-memory buffer, calling `on_hits` with each line's
    /// hits.
    pub fn feed(
        &mut self,
        index: &Index,
        bytes: &[u8],
        fallback: Timestamp,
        on_hits: &mut dyn FnMut(&[Hit]),
    ) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let hits = self.line(index, line, fallback);
            if !hits.is_empty() {
                on_hits(hits);
            }
        }
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
        let mut buf: Vec<u8> = Vec::new();
        let mut skipping = false;
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                if skipping {
                    self.stats.lines += 1;
                    self.stats.too_long += 1;
                    let max = self.config.max_line_bytes;
                    self.error(format!("line is longer than the limit of {max} bytes"));
                } else if !buf.is_empty() {
                    let hits = self.line(index, &buf, fallback);
                    if !hits.is_empty() {
                        on_hits(hits);
                    }
                }
                return Ok(());
            }
            let (part, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if !skipping {
                if buf.len() + part.len() > self.config.max_line_bytes + 1 {
                    skipping = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(part);
                }
            }
            let used = end.unwrap_or(chunk.len());
            reader.consume(used);
            if end.is_some() {
                if skipping {
                    self.stats.lines += 1;
                    self.stats.too_long += 1;
                    let max = self.config.max_line_bytes;
                    self.error(format!("line is longer than the limit of {max} bytes"));
                    skipping = false;
                } else {
                    let hits = self.line(index, &buf, fallback);
                    if !hits.is_empty() {
                        on_hits(hits);
                    }
                }
                buf.clear();
            }
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
