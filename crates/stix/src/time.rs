//! STIX timestamps (RFC 3339, UTC, `Z` suffix) without a date-time dependency.
//!
//! STIX 2.1 §3.2: `YYYY-MM-DDTHH:mm:ss[.s+]Z`; no decimal point without a fraction.
//! The parser is strict about that form and keeps how many fraction digits were given, so
//! the validator can enforce millisecond precision on `created`/`modified`.

use std::fmt;

/// A parsed STIX timestamp. Compared and ordered by instant (nanosecond resolution); the
/// number of fraction digits written is kept only for precision checks.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
    frac_digits: u8,
}

/// Why a timestamp string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not of the form `YYYY-MM-DDTHH:mm:ss[.s+]Z`.
    #[error("not a STIX timestamp (expected YYYY-MM-DDTHH:mm:ss[.s+]Z): {0:?}")]
    Syntax(String),
    /// A field is out of range (month 13, 31 April, hour 24, ...).
    #[error("timestamp {value:?} has an out-of-range {field}")]
    Range {
        /// The offending text.
        value: String,
        /// Which field is wrong.
        field: &'static str,
    },
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        (self.secs, self.nanos) == (other.secs, other.nanos)
    }
}

impl Eq for Timestamp {}

impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.secs, self.nanos).hash(state);
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.secs, self.nanos).cmp(&(other.secs, other.nanos))
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Timestamp {
    /// Parses a STIX timestamp. Fraction digits beyond nanoseconds are accepted and
    /// ignored for ordering (the original text is always kept by the caller).
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        let syntax = || TimestampError::Syntax(s.to_owned());
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[b.len() - 1] != b'Z'
        {
            return Err(syntax());
        }
        let year = digits(&b[0..4]).ok_or_else(syntax)?;
        let month = digits(&b[5..7]).ok_or_else(syntax)?;
        let day = digits(&b[8..10]).ok_or_else(syntax)?;
        let hour = digits(&b[11..13]).ok_or_else(syntax)?;
        let min = digits(&b[14..16]).ok_or_else(syntax)?;
        let sec = digits(&b[17..19]).ok_or_else(syntax)?;
        let rest = &b[19..b.len() - 1];
        let (nanos, frac_digits) = if rest.is_empty() {
            (0, 0)
        } else {
            // A decimal point must be followed by at least one digit.
            if rest[0] != b'.' || rest.len() < 2 {
                return Err(syntax());
            }
            let frac = &rest[1..];
            if !frac.iter().all(u8::is_ascii_digit) {
                return Err(syntax());
            }
            let used = &frac[..frac.len().min(9)];
            let mut n = digits(used).ok_or_else(syntax)?;
            for _ in used.len()..9 {
                n *= 10;
            }
            (n, u8::try_from(frac.len()).unwrap_or(u8::MAX))
        };
        let range = |field| TimestampError::Range {
            value: s.to_owned(),
            field,
        };
        let year = i64::from(year);
        if !(1..=12).contains(&month) {
            return Err(range("month"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(range("day"));
        }
        if hour > 23 {
            return Err(range("hour"));
        }
        if min > 59 {
            return Err(range("minute"));
        }
        if sec > 59 {
            return Err(range("second (leap seconds are not supported)"));
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec);
        Ok(Timestamp {
            secs,
            nanos,
            frac_digits,
        })
    }

    /// A timestamp from microseconds since the Unix epoch (how the store keeps `date_added`).
    pub fn from_micros(us: i64) -> Self {
        Timestamp {
            secs: us.div_euclid(1_000_000),
            nanos: (us.rem_euclid(1_000_000) * 1000) as u32,
            frac_digits: 6,
        }
    }

    /// Microseconds since the Unix epoch (sub-microsecond digits are dropped).
    pub fn as_micros(&self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.nanos / 1000)
    }

    /// How many fraction digits the text had (0 when there was no decimal point).
    pub fn fraction_digits(&self) -> u8 {
        self.frac_digits
    }

    /// Formats with exactly `digits` fraction digits (0..=9), as TAXII wants 6.
    pub fn format(&self, digits: u8) -> String {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
        let digits = usize::from(digits.min(9));
        if digits > 0 {
            let frac = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(&frac[..digits]);
        }
        out.push('Z');
        out
    }
}

impl fmt::Display for Timestamp {
    /// Shows the instant with the precision it was written with (at least milliseconds).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(self.frac_digits.clamp(3, 9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a = Timestamp::parse("2016-05-12T08:17:27.000Z").unwrap();
        let b = Timestamp::parse("2016-05-12T08:17:27.001Z").unwrap();
        let c = Timestamp::parse("2016-05-12T08:17:27Z").unwrap();
        assert!(a < b);
        assert_eq!(a, c);
        assert_eq!(a.fraction_digits(), 3);
        assert_eq!(c.fraction_digits(), 0);
        assert_eq!(a.format(6), "2016-05-12T08:17:27.000000Z");
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "2016-05-12T08:17:27.Z",
            "2016-05-12 08:17:27Z",
            "2016-05-12T08:17:27+00:00",
            "2016-13-12T08:17:27Z",
            "2016-02-30T08:17:27Z",
            "2015-02-29T08:17:27Z",
            "2016-05-12T24:00:00Z",
            "2016-05-12T08:17:60Z",
            "2016-05-12T08:17:27.12aZ",
            "",
            "2016-05-12T08:17:27z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(Timestamp::parse("2016-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn micros_round_trip() {
        for us in [0, 1, 1_700_000_000_123_456, -1, 253_402_300_799_999_999] {
            let t = Timestamp::from_micros(us);
            assert_eq!(t.as_micros(), us);
            assert_eq!(Timestamp::parse(&t.format(6)).unwrap().as_micros(), us);
        }
    }
}
