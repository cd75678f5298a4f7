//! IPv4 / IPv6 addresses and CIDR blocks for `ISSUBSET` / `ISSUPERSET`, parsed one way
//! for the evaluator and for indexes built over patterns (`phalanx-detect`).

use std::net::IpAddr;

/// An address block: family, network bits (as u128, IPv4 in the low 32 bits), prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The address bits (IPv4 in the low 32 bits).
    pub addr: u128,
    /// The prefix length (32 or 128 for a bare address).
    pub prefix: u8,
}

impl Block {
    /// `a.b.c.d`, `a.b.c.d/n`, IPv6 and IPv6`/n`. A bare address is a /32 (/128), or
    /// refused when `require_prefix`.
    pub fn parse(s: &str, require_prefix: bool) -> Option<Block> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => {
                if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) || p.len() > 3 {
                    return None;
                }
                (ip, Some(p.parse::<u8>().ok()?))
            }
            None if require_prefix => return None,
            None => (s, None),
        };
        let (v6, addr, max) = match ip.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Block { v6, addr, prefix })
    }

    fn mask(&self) -> u128 {
        let bits = if self.v6 { 128 } else { 32 };
        let host = u32::from(bits - self.prefix);
        let all = if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        if host >= 128 {
            0
        } else {
            (all >> host) << host
        }
    }

    /// The network bits of `addr` for a prefix of `len` bits.
    pub fn network(v6: bool, addr: u128, len: u8) -> u128 {
        let bits: u32 = if v6 { 128 } else { 32 };
        let host = bits - u32::from(len.min(bits as u8));
        if host >= 128 {
            0
        } else {
            (addr >> host) << host
        }
    }

    /// Whether `self` lies inside `outer` (same family, prefix no shorter, same network).
    pub fn within(&self, outer: &Block) -> bool {
        self.v6 == outer.v6
            && self.prefix >= outer.prefix
            && (self.addr & outer.mask()) == (outer.addr & outer.mask())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_table() {
        let cases = [
            ("11.22.33.44", "11.22.41.123/20", true),
            ("11.22.123.41", "11.22.41.123/20", false),
            ("11.22.41.123/29", "11.22.33.44/20", true),
            ("11.22.33.44/13", "11.22.33.44/20", false),
            ("2001:db8::1", "2001:db8::/32", true),
            ("2001:db9::1", "2001:db8::/32", false),
            ("10.0.0.1", "0.0.0.0/0", true),
            ("10.0.0.1", "::/0", false),
        ];
        for (inner, outer, want) in cases {
            let i = Block::parse(inner, false).unwrap();
            let o = Block::parse(outer, true).unwrap();
            assert_eq!(i.within(&o), want, "{inner} in {outer}");
        }
        for bad in ["1.2.3.4/33", "1.2.3", "x", "1.2.3.4/", "::1/129"] {
            assert_eq!(Block::parse(bad, false), None, "{bad}");
        }
        assert_eq!(Block::parse("1.2.3.4", true), None);
    }

    #[test]
    fn network_table() {
        for (s, len, want) in [
            ("10.1.2.3", 8, "10.0.0.0"),
            ("10.1.2.3", 32, "10.1.2.3"),
            ("10.1.2.3", 0, "0.0.0.0"),
        ] {
            let b = Block::parse(s, false).unwrap();
            let n = Block::network(false, b.addr, len);
            assert_eq!(std::net::Ipv4Addr::from(n as u32).to_string(), want);
        }
        assert_eq!(Block::network(true, u128::MAX, 0), 0);
        assert_eq!(Block::parse("1.2.3.4/33", false), None);
        assert_eq!(Block::parse("::1/129", false), None);
    }
}
