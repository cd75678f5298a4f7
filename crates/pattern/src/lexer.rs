//! Tokens of the patterning language, with byte spans.
//!
//! The lexer follows the reference ANTLR grammar (`stix2patterns/v21`): longest match
//! wins, and on a tie the earlier rule (literals, then keywords, then identifiers).
//! Keywords are upper case only; `true` / `false` lower case only. Whitespace is the
//! grammar's set (ASCII blanks plus U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
//! U+2029, U+202F, U+205F, U+3000); `/* ... */` and `// ...` comments are skipped.

use crate::ast::TimestampLiteral;
use crate::codec;
use crate::error::{ParseError, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    And,
    Or,
    Not,
    FollowedBy,
    Like,
    Matches,
    IsSuperset,
    IsSubset,
    Exists,
    Last,
    In,
    Start,
    Stop,
    Seconds,
    Within,
    Repeats,
    Times,
}

pub(crate) const KEYWORDS: &[(&str, Kw)] = &[
    ("AND", Kw::And),
    ("OR", Kw::Or),
    ("NOT", Kw::Not),
    ("FOLLOWEDBY", Kw::FollowedBy),
    ("LIKE", Kw::Like),
    ("MATCHES", Kw::Matches),
    ("ISSUPERSET", Kw::IsSuperset),
    ("ISSUBSET", Kw::IsSubset),
    ("EXISTS", Kw::Exists),
    ("LAST", Kw::Last),
    ("IN", Kw::In),
    ("START", Kw::Start),
    ("STOP", Kw::Stop),
    ("SECONDS", Kw::Seconds),
    ("WITHIN", Kw::Within),
    ("REPEATS", Kw::Repeats),
    ("TIMES", Kw::Times),
];

/// Whether `s` is a word the lexer would not read as an identifier.
pub(crate) fn is_reserved(s: &str) -> bool {
    s == "true" || s == "false" || KEYWORDS.iter().any(|(k, _)| *k == s)
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `+5`, `0`, `17` (text kept, converted where used).
    IntPos(String),
    IntNeg(String),
    FloatPos(String),
    FloatNeg(String),
    Binary(Vec<u8>),
    Str(String),
    Bool(bool),
    Timestamp(TimestampLiteral),
    Kw(Kw),
    Ident {
        text: String,
        hyphen: bool,
    },
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    Colon,
    Dot,
    Comma,
    LParen,
    RParen,
    LBrack,
    RBrack,
    Star,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

fn is_ws(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\r'
            | '\n'
            | '\u{000B}'
            | '\u{000C}'
            | '\u{0085}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn ident_cont(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `src` into tokens (ending with [`Tok::Eof`]).
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Whitespace (possibly multi-byte).
        if let Some(ch) = src[i..].chars().next()
            && is_ws(ch)
        {
            i += ch.len_utf8();
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match src[i + 2..].find("*/") {
                Some(end) => {
                    i += 2 + end + 2;
                    continue;
                }
                None => {
                    return Err(ParseError::Lex {
                        what: "unterminated comment",
                        span: Span::new(i, b.len()),
                    });
                }
            }
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = src[i..].find(['\r', '\n']).map_or(b.len(), |e| i + e);
            i = end;
            continue;
        }
        let start = i;
        let single = |t: Tok| (t, 1usize);
        let (tok, len) = match c {
            b'(' => single(Tok::LParen),
            b')' => single(Tok::RParen),
            b'[' => single(Tok::LBrack),
            b']' => single(Tok::RBrack),
            b'*' => single(Tok::Star),
            b':' => single(Tok::Colon),
            b',' => single(Tok::Comma),
            b'=' => {
                if b.get(i + 1) == Some(&b'=') {
                    (Tok::Eq, 2)
                } else {
                    (Tok::Eq, 1)
                }
            }
            b'!' if b.get(i + 1) == Some(&b'=') => (Tok::Neq, 2),
            b'<' => match b.get(i + 1) {
                Some(b'=') => (Tok::Le, 2),
                Some(b'>') => (Tok::Neq, 2),
                _ => (Tok::Lt, 1),
            },
            b'>' => match b.get(i + 1) {
                Some(b'=') => (Tok::Ge, 2),
                _ => (Tok::Gt, 1),
            },
            b'\'' => lex_string(src, i)?,
            b'0'..=b'9' | b'+' | b'-' | b'.' => match lex_number(b, i) {
                Some(t) => t,
                None if c == b'.' => (Tok::Dot, 1),
                None => return Err(invalid_char(src, i)),
            },
            _ if ident_start(c) => lex_word(src, i)?,
            _ => return Err(invalid_char(src, i)),
        };
        out.push(Token {
            tok,
            span: Span::new(start, start + len),
        });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(b.len(), b.len()),
    });
    Ok(out)
}

fn invalid_char(src: &str, i: usize) -> ParseError {
    let ch = src[i..].chars().next().unwrap_or('\u{FFFD}');
    ParseError::InvalidCharacter {
        ch,
        span: Span::new(i, i + ch.len_utf8()),
    }
}

/// `'...'` with only `\'` and `\\` escapes. Returns the token and its byte length.
fn lex_string(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let (s, len) = read_quoted(src, start)?;
    Ok((Tok::Str(s), len))
}

/// Reads a quoted string starting at the quote at `start`.
fn read_quoted(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        match ch {
            '\'' => return Ok((out, off + 2)),
            '\\' => match chars.next() {
                Some((_, c @ ('\'' | '\\'))) => out.push(c),
                Some((o2, c)) => {
                    let at = start + 1 + off;
                    return Err(ParseError::Lex {
                        what: "invalid escape in string (only \\' and \\\\ are allowed)",
                        span: Span::new(at, start + 1 + o2 + c.len_utf8()),
                    });
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseError::Lex {
        what: "unterminated string",
        span: Span::new(start, src.len()),
    })
}

/// Numbers: `IntPos: '+'? ('0' | [1-9][0-9]*)`, `IntNeg: '-' ...`,
/// `FloatPos: '+'? [0-9]* '.' [0-9]+`, `FloatNeg: '-' [0-9]* '.' [0-9]+`; longest wins.
fn lex_number(b: &[u8], start: usize) -> Option<(Tok, usize)> {
    let mut i = start;
    let neg = match b[i] {
        b'-' => {
            i += 1;
            true
        }
        b'+' => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = &b[digits_start..i];
    // Float candidate.
    let mut float_len = None;
    if b.get(i) == Some(&b'.') {
        let mut j = i + 1;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > i + 1 {
            float_len = Some(j - start);
        }
    }
    // Int candidate: '0' alone or a non-zero-led run.
    let int_len = match int_digits.first() {
        Some(b'0') => Some(digits_start + 1 - start),
        Some(_) => Some(i - start),
        None => None,
    };
    let text = |len: usize| String::from_utf8_lossy(&b[start..start + len]).into_owned();
    match (int_len, float_len) {
        (_, Some(f)) if int_len.is_none_or(|n| f > n) => Some((
            if neg {
                Tok::FloatNeg(text(f))
            } else {
                Tok::FloatPos(text(f))
            },
            f,
        )),
        (Some(n), _) => Some((
            if neg {
                Tok::IntNeg(text(n))
            } else {
                Tok::IntPos(text(n))
            },
            n,
        )),
        _ => None,
    }
}

/// Identifiers, keywords, booleans and the prefixed literals `h'..'`, `b'..'`, `t'..'`.
fn lex_word(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = src.as_bytes();
    if b.get(start + 1) == Some(&b'\'') && matches!(b[start], b'h' | b'b' | b't') {
        let kind = b[start];
        // A prefixed literal can only be followed by its quoted body; an identifier
        // `h` directly followed by a string is never valid, so a bad body is an error.
        let body_start = start + 2;
        let end = src[body_start..].find('\'').map(|e| body_start + e);
        let Some(end) = end else {
            return Err(ParseError::Lex {
                what: "unterminated literal",
                span: Span::new(start, src.len()),
            });
        };
        let body = &src[body_start..end];
        let span = Span::new(start, end + 1);
        let tok = match kind {
            b'h' => Tok::Binary(codec::hex_decode(body).ok_or(ParseError::Literal {
                what: "hex literal (an even number of hex digits)",
                span,
            })?),
            b'b' => Tok::Binary(codec::b64_decode_literal(body).ok_or(ParseError::Literal {
                what: "binary literal (padded base64)",
                span,
            })?),
            _ => Tok::Timestamp(TimestampLiteral::new(body).ok_or(ParseError::Literal {
                what: "timestamp literal (YYYY-MM-DDTHH:MM:SS[.s+]Z)",
                span,
            })?),
        };
        return Ok((tok, end + 1 - start));
    }
    let mut i = start;
    while b.get(i).copied().is_some_and(ident_cont) {
        i += 1;
    }
    let plain_end = i;
    while b
        .get(i)
        .copied()
        .is_some_and(|c| ident_cont(c) || c == b'-')
    {
        i += 1;
    }
    if i > plain_end {
        return Ok((
            Tok::Ident {
                text: src[start..i].to_owned(),
                hyphen: true,
            },
            i - start,
        ));
    }
    let word = &src[start..i];
    let tok = match word {
        "true" => Tok::Bool(true),
        "false" => Tok::Bool(false),
        _ => match KEYWORDS.iter().find(|(k, _)| *k == word) {
            Some((_, kw)) => Tok::Kw(*kw),
            None => Tok::Ident {
                text: word.to_owned(),
                hyphen: false,
            },
        },
    };
    Ok((tok, i - start))
}
