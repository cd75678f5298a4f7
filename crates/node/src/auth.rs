//! Credentials: API tokens (stored as SHA-256), user passwords (argon2id), and the
//! [`Caller`] a request acts as.

use phalanx_store::{Access, Collection, Principal, PrincipalKind};
use sha2::{Digest, Sha256};

/// Who a request acts as, with its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Principal id (`user:NAME` or `tok-…`).
    pub id: String,
    /// User name or token label.
    pub name: String,
    /// Organisation.
    pub org: String,
    /// Readable collections.
    pub read: Access,
    /// Writable collections.
    pub write: Access,
    /// Node administrator.
    pub admin: bool,
}

impl Caller {
    /// The operator of this node on its command line (export, backup): every right.
    pub fn local_operator() -> Caller {
        Caller {
            id: "local:operator".into(),
            name: "local operator".into(),
            org: "local".into(),
            read: Access::All,
            write: Access::All,
            admin: true,
        }
    }

    /// The caller a principal authenticates as.
    pub fn of(p: &Principal) -> Caller {
        Caller {
            id: p.id.clone(),
            name: p.name.clone(),
            org: p.org.clone(),
            read: p.read.clone(),
            write: p.write.clone(),
            admin: p.admin,
        }
    }

    /// Whether the caller may read a collection: the collection is readable at all and
    /// the caller holds a read or write grant on it (writing implies reading).
    pub fn may_read(&self, c: &Collection) -> bool {
        c.can_read && (self.admin || self.read.covers(&c.id) || self.write.covers(&c.id))
    }

    /// Whether the caller is a peer node (authenticated by its TLS client certificate):
    /// what it reads is federated, not read by a person.
    pub fn is_peer(&self) -> bool {
        self.id.starts_with("cert:")
    }

    /// Whether the caller may add to a collection.
    pub fn may_write(&self, c: &Collection) -> bool {
        c.can_write && (self.admin || self.write.covers(&c.id))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex string (either case); `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is not something a node can continue without.
    getrandom::fill(&mut b).expect("operating system random source");
    b
}

/// The stored hash of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new token: `phx_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    format!("phx_{}", hex(&random_bytes::<32>()))
}

/// A new random password for generated accounts (128 bits, URL-safe).
pub fn new_password() -> String {
    hex(&random_bytes::<16>())
}

/// An argon2id PHC hash of a password.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Whether a password matches a stored argon2 PHC hash (constant time).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new principal of the given kind with its secret already hashed.
#[allow(clippy::too_many_arguments)]
pub fn principal(
    kind: PrincipalKind,
    id: String,
    name: &str,
    org: &str,
    secret_hash: String,
    read: Access,
    write: Access,
    admin: bool,
    now_us: i64,
) -> Principal {
    Principal {
        id,
        kind,
        name: name.to_owned(),
        org: org.to_owned(),
        secret_hash,
        // Writing implies reading: record it so listings show the effective rights.
        read: read.union(&write),
        write,
        admin,
        created_us: now_us,
        revoked_us: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(from_hex("000FabfF"), Some(vec![0x00, 0x0f, 0xab, 0xff]));
        assert_eq!(from_hex("0g"), None);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn rights() {
        let c = |id: &str, r, w| Collection {
            id: id.into(),
            api_root: "default".into(),
            title: id.into(),
            description: None,
            alias: None,
            can_read: r,
            can_write: w,
            media_types: vec![],
        };
        let caller = Caller {
            id: "tok-1".into(),
            name: "t".into(),
            org: "o".into(),
            read: Access::Collections(vec!["a".into()]),
            write: Access::Collections(vec!["b".into()]),
            admin: false,
        };
        assert!(caller.may_read(&c("a", true, true)));
        assert!(!caller.may_write(&c("a", true, true)));
        assert!(
            caller.may_read(&c("b", true, true)),
            "writing implies reading"
        );
        assert!(caller.may_write(&c("b", true, true)));
        assert!(
            !caller.may_write(&c("b", true, false)),
            "read-only collection"
        );
        assert!(!caller.may_read(&c("z", true, true)));
    }
}
