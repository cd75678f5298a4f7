//! Hex and base64 (RFC 4648 standard alphabet) without a dependency.

/// Decodes hex digits (either case); `None` on an odd length or a non-hex digit.
pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16);
    b.chunks(2)
        .map(|p| Some((nib(p[0])? * 16 + nib(p[1])?) as u8))
        .collect()
}

/// Lower-case hex.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &x in bytes {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
}

fn b64_val(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Padded standard base64: length a multiple of 4, `=` only as the last one or two
/// characters. Bits after the last full byte are ignored (as the reference does).
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let groups = b.len() / 4;
    for (gi, g) in b.chunks(4).enumerate() {
        let last = gi + 1 == groups;
        let pad = match (g[2], g[3]) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let mut acc = 0u32;
        for &c in &g[..4 - pad] {
            acc = (acc << 6) | b64_val(c)?;
        }
        acc <<= 6 * pad as u32;
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// A `b'..'` literal body: padded base64 as [`b64_decode`], and not empty (the reference
/// grammar needs at least one group).
pub(crate) fn b64_decode_literal(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    b64_decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("YWxpY2U=", Some(b"alice")),
            ("AQIDBA==", Some(&[1, 2, 3, 4])),
            ("YWJj", Some(b"abc")),
            ("YR==", Some(b"a")),
            ("YQ=", None),
            ("Y", None),
            ("====", None),
            ("YQ==YQ==", None),
            ("", Some(b"")),
        ];
        for (text, want) in cases {
            assert_eq!(b64_decode(text).as_deref(), *want, "{text}");
        }
        assert_eq!(b64_decode_literal(""), None);
    }

    #[test]
    fn hex_table() {
        assert_eq!(hex_decode("ffD8"), Some(vec![0xff, 0xd8]));
        assert_eq!(hex_decode(""), Some(vec![]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_encode(&[0xff, 0x01]), "ff01");
    }
}
