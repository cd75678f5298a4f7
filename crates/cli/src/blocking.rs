//! `phalanx export --format suricata|zeek-intel|blocklist`: indicators turned into what
//! blocking and alerting tools load. Only what the sharing policy allows for active use
//! reaches here (purpose export-for-blocking: PAP:CLEAR or PAP:GREEN).
//!
//! An indicator is exported when its pattern is a plain list of values: one observation,
//! or observations joined by `OR`, each a comparison (or an `OR` of comparisons) of the
//! form `path = 'value'` or `path IN (...)` on an observable these tools know
//! (addresses, `ISSUBSET` networks, domains, URLs, file hashes, e-mail addresses, file
//! names). Anything else — `AND`, `FOLLOWEDBY`, qualifiers, other operators — means more
//! than one value at once, which a list cannot express: the indicator is skipped and
//! counted with the reason.

use phalanx_pattern::Pattern;
use phalanx_pattern::ast::{ComparisonExpr, Literal, ObservationExpr, Operator, PathStep};

/// What a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An IPv4 or IPv6 address.
    Address,
    /// An IPv4 or IPv6 network (CIDR).
    Network,
    /// A domain name.
    Domain,
    /// A URL.
    Url,
    /// An MD5 file hash.
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
    /// An e-mail address.
    Email,
    /// A file name.
    FileName,
}

/// One value of an indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// The value as the pattern states it.
    pub value: String,
}

/// The values of an indicator's pattern, or why it cannot be a list of values.
pub fn entries(pattern: &str) -> Result<Vec<Entry>, String> {
    let p = Pattern::parse(pattern).map_err(|e| format!("pattern does not parse: {e}"))?;
    let mut out = Vec::new();
    observation(&p.expr, &mut out)?;
    Ok(out)
}

fn observation(e: &ObservationExpr, out: &mut Vec<Entry>) -> Result<(), String> {
    match e {
        ObservationExpr::Observation(c) => comparisons(c, out),
        ObservationExpr::Or(list) => list.iter().try_for_each(|o| observation(o, out)),
        ObservationExpr::And(_) | ObservationExpr::FollowedBy(_) => {
            Err("several observations together (AND / FOLLOWEDBY)".into())
        }
        ObservationExpr::Qualified(..) => Err("a qualifier (WITHIN, REPEATS, START)".into()),
    }
}

fn comparisons(e: &ComparisonExpr, out: &mut Vec<Entry>) -> Result<(), String> {
    match e {
        ComparisonExpr::Or(list) => list.iter().try_for_each(|c| comparisons(c, out)),
        ComparisonExpr::And(_) => Err("several conditions on one object (AND)".into()),
        ComparisonExpr::Comparison(c) => {
            if c.negated {
                return Err("a negated comparison (NOT)".into());
            }
            let path = path_text(&c.path.object_type, &c.path.steps);
            let values: Vec<&Literal> = match &c.op {
                Operator::Eq(v) => vec![v],
                Operator::In(list) => list.iter().collect(),
                Operator::IsSubset(net)
                    if matches!(path.as_str(), "ipv4-addr:value" | "ipv6-addr:value") =>
                {
                    out.push(Entry {
                        kind: Kind::Network,
                        value: net.clone(),
                    });
                    return Ok(());
                }
                other => return Err(format!("operator {} on {path}", other.symbol())),
            };
            let kind =
                kind_of(&path).ok_or_else(|| format!("{path} is not a blockable observable"))?;
            for v in values {
                let Literal::Str(s) = v else {
                    return Err(format!("a non-string value for {path}"));
                };
                let kind = if kind == Kind::Address && s.contains('/') {
                    Kind::Network
                } else {
                    kind
                };
                out.push(Entry {
                    kind,
                    value: s.clone(),
                });
            }
            Ok(())
        }
    }
}

/// `type:key.key` for paths of plain keys (hash keys upper-cased, quotes dropped).
fn path_text(ty: &str, steps: &[PathStep]) -> String {
    let mut s = format!("{ty}:");
    for (i, step) in steps.iter().enumerate() {
        match step {
            PathStep::Key(k) => {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathStep::Index(n) => s.push_str(&format!("[{n}]")),
            PathStep::AnyIndex => s.push_str("[*]"),
        }
    }
    s
}

fn kind_of(path: &str) -> Option<Kind> {
    Some(match path {
        "ipv4-addr:value" | "ipv6-addr:value" => Kind::Address,
        "domain-name:value" => Kind::Domain,
        "url:value" => Kind::Url,
        "email-addr:value" => Kind::Email,
        "file:name" => Kind::FileName,
        p => match p
            .strip_prefix("file:hashes.")?
            .to_ascii_uppercase()
            .as_str()
        {
            "MD5" => Kind::Md5,
            "SHA-1" | "SHA1" => Kind::Sha1,
            "SHA-256" | "SHA256" => Kind::Sha256,
            _ => return None,
        },
    })
}

/// The Zeek Intel framework's type of a value.
pub fn zeek_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Address => "Intel::ADDR",
        Kind::Network => "Intel::SUBNET",
        Kind::Domain => "Intel::DOMAIN",
        Kind::Url => "Intel::URL",
        Kind::Md5 | Kind::Sha1 | Kind::Sha256 => "Intel::FILE_HASH",
        Kind::Email => "Intel::EMAIL",
        Kind::FileName => "Intel::FILE_NAME",
    }
}

/// A Zeek Intel line (tab-separated, no tabs or line breaks inside fields). URLs lose
/// their scheme: Zeek's Intel::URL matches `host/path`.
pub fn zeek_line(e: &Entry, indicator: &str, name: &str) -> String {
    let value = match e.kind {
        Kind::Url => e
            .value
            .split_once("://")
            .map_or(e.value.as_str(), |(_, rest)| rest),
        _ => &e.value,
    };
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{}\tphalanx\t{} {}",
        clean(value),
        zeek_type(e.kind),
        indicator,
        clean(name)
    )
}

/// Text for a Suricata `content` or `msg`: `"`, `;`, `\` and control characters as
/// `|xx|` hex (content) — `msg` only has them dropped.
fn content(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if matches!(b, b'"' | b';' | b'\\' | b'|') || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("|{b:02x}|"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn msg(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | ';' | '\\') && !c.is_control())
        .collect()
}

/// Suricata rules for a value, numbered from `sid`; `Err` for values Suricata rules
/// cannot carry (file hashes need hash list files; e-mail addresses and file names have
/// no sticky buffer here).
pub fn suricata_rules(
    e: &Entry,
    indicator: &str,
    name: &str,
    sid: &mut u32,
) -> Result<Vec<String>, &'static str> {
    let m = msg(&format!("Phalanx {name} ({indicator})"));
    let mut next = || {
        let s = *sid;
        *sid += 1;
        s
    };
    Ok(match e.kind {
        Kind::Address | Kind::Network => {
            if e.value.parse::<std::net::IpAddr>().is_err()
                && phalanx_pattern::net::Block::parse(&e.value, true).is_none()
            {
                return Err("not an address or network");
            }
            vec![format!(
                "alert ip any any <> [{}] any (msg:\"{m}\"; sid:{}; rev:1;)",
                e.value,
                next()
            )]
        }
        Kind::Domain => {
            let c = content(&e.value);
            vec![
                format!(
                    "alert dns any any -> any any (msg:\"{m}\"; dns.query; content:\"{c}\"; nocase; startswith; endswith; sid:{}; rev:1;)",
                    next()
                ),
                format!(
                    "alert tls any any -> any any (msg:\"{m}\"; tls.sni; content:\"{c}\"; nocase; startswith; endswith; sid:{}; rev:1;)",
                    next()
                ),
            ]
        }
        Kind::Url => {
            let rest = e
                .value
                .split_once("://")
                .map_or(e.value.as_str(), |(_, r)| r);
            let (host, path) = rest
                .split_once('/')
                .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
            vec![format!(
                "alert http any any -> any any (msg:\"{m}\"; http.host; content:\"{}\"; nocase; startswith; endswith; http.uri; content:\"{}\"; startswith; endswith; sid:{}; rev:1;)",
                content(host),
                content(&path),
                next()
            )]
        }
        Kind::Md5 | Kind::Sha1 | Kind::Sha256 => {
            return Err(
                "file hashes: Suricata reads them from hash list files (use --format blocklist)",
            );
        }
        Kind::Email | Kind::FileName => return Err("no Suricata keyword for this observable"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_to_values() {
        let ok: &[(&str, &[(Kind, &str)])] = &[
            (
                "[ipv4-addr:value = '198.51.100.7']",
                &[(Kind::Address, "198.51.100.7")],
            ),
            (
                "[ipv4-addr:value = '198.51.100.0/24']",
                &[(Kind::Network, "198.51.100.0/24")],
            ),
            (
                "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
                &[(Kind::Network, "10.0.0.0/8")],
            ),
            (
                "[domain-name:value IN ('a.example', 'b.example')]",
                &[(Kind::Domain, "a.example"), (Kind::Domain, "b.example")],
            ),
            (
                "[url:value = 'http://x.example/a'] OR [file:hashes.'SHA-256' = 'aa']",
                &[(Kind::Url, "http://x.example/a"), (Kind::Sha256, "aa")],
            ),
            (
                "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' OR email-addr:value = 'x@y.example']",
                &[
                    (Kind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
                    (Kind::Email, "x@y.example"),
                ],
            ),
        ];
        for (p, want) in ok {
            let got = entries(p).unwrap();
            let got: Vec<(Kind, &str)> = got.iter().map(|e| (e.kind, e.value.as_str())).collect();
            assert_eq!(&got, want, "{p}");
        }
        let skipped: &[(&str, &str)] = &[
            (
                "[ipv4-addr:value = '1.2.3.4' AND ipv4-addr:value = '1.2.3.5']",
                "AND",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'x']",
                "AND / FOLLOWEDBY",
            ),
            ("[ipv4-addr:value = '1.2.3.4'] REPEATS 2 TIMES", "qualifier"),
            ("[domain-name:value LIKE '%.x']", "operator LIKE"),
            ("[ipv4-addr:value != '1.2.3.4']", "operator !="),
            (
                "[network-traffic:dst_port = 443]",
                "not a blockable observable",
            ),
            ("[domain-name:value NOT = 'x']", "negated"),
            ("[ipv4-addr:value = ", "does not parse"),
        ];
        for (p, why) in skipped {
            let e = entries(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }

    #[test]
    fn tool_formats() {
        let d = Entry {
            kind: Kind::Domain,
            value: "evil\"x;.example".into(),
        };
        let mut sid = 100;
        let rules = suricata_rules(&d, "indicator--1", "bad \"domain\"", &mut sid).unwrap();
        assert_eq!(sid, 102);
        assert_eq!(
            rules[0],
            "alert dns any any -> any any (msg:\"Phalanx bad domain (indicator--1)\"; dns.query; content:\"evil|22|x|3b|.example\"; nocase; startswith; endswith; sid:100; rev:1;)"
        );
        assert!(rules[1].starts_with("alert tls") && rules[1].contains("sid:101;"));
        let u = Entry {
            kind: Kind::Url,
            value: "https://x.example/p?q=1".into(),
        };
        assert_eq!(
            zeek_line(&u, "indicator--2", "n\tm"),
            "x.example/p?q=1\tIntel::URL\tphalanx\tindicator--2 n m"
        );
        let r = suricata_rules(&u, "indicator--2", "u", &mut sid).unwrap();
        assert!(
            r[0].contains("http.host; content:\"x.example\"")
                && r[0].contains("http.uri; content:\"/p?q=1\""),
            "{}",
            r[0]
        );
        let h = Entry {
            kind: Kind::Sha256,
            value: "aa".into(),
        };
        assert!(suricata_rules(&h, "i", "n", &mut sid).is_err());
        let bad = Entry {
            kind: Kind::Address,
            value: "not-an-ip".into(),
        };
        assert!(suricata_rules(&bad, "i", "n", &mut sid).is_err());
    }
}
