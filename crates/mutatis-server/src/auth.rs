//! Authentication and authorisation, pure: token format and hashing, roles, and the
//! per-document access policy.
//!
//! Tokens are `mutatis_` followed by 64 hex digits of randomness (43 base64url characters are
//! accepted too, for tokens minted elsewhere). Only their SHA-256 is stored, in the store
//! setting `token/<hex hash>` → `{"name", "role", "created"}`, so every process sharing a
//! store accepts the same tokens and a leaked database leaks no token.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// Every token starts with this, so leaked ones are easy to scan for.
pub const TOKEN_PREFIX: &str = "mutatis_";

/// The settings prefix of token records.
pub const TOKEN_SETTING_PREFIX: &str = "token/";

/// What a token may do. Ordered: admin ⊃ writer ⊃ reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read documents, lists and the changes feed.
    Reader,
    /// And write documents.
    Writer,
    /// And everything under `/admin`; bypasses document access policies.
    Admin,
}

impl Role {
    /// The spelling in token records and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role `{s}`; expected reader, writer or admin"
            )),
        }
    }
}

/// Who is calling: the token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (what access policies list). Shared: every request of a token
    /// passes it on (to the handler, to usage counting) without copying it.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
}

impl Principal {
    /// The caller again if its role is at least `role`; else the 403 `forbidden` problem
    /// naming both roles (the one answer of every route, `/couch` included).
    pub fn at_least(self, role: Role) -> Result<Principal, Problem> {
        if self.role >= role {
            return Ok(self);
        }
        Err(Problem::new(
            403,
            "forbidden",
            "Forbidden",
            format!(
                "this needs the {role} role; token {:?} has the {} role",
                self.name, self.role
            ),
        )
        .with("required", role.as_str())
        .with("role", self.role.as_str()))
    }
}

/// The caller a route's authentication found ([`crate::http`]'s `authenticated` layer), kept
/// in the request's extensions so the handler need not look the token up again.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The name of the token a request was authenticated with, kept in the response's
/// extensions for the edge, which counts usage per token without looking it up again.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<str>);

/// A stored token record (the value of `token/<hash>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was created (RFC 3339).
    pub created: String,
}

impl TokenRecord {
    /// The stored JSON.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "role": self.role.as_str(), "created": self.created})
    }

    /// Read a stored record; `None` if it is not one (it is then ignored, never trusted).
    pub fn from_json(v: &Value) -> Option<TokenRecord> {
        Some(TokenRecord {
            name: v.get("name")?.as_str()?.to_owned(),
            role: v.get("role")?.as_str()?.parse().ok()?,
            created: v
                .get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// A new token from 32 random bytes.
pub fn token_from_random(random: &[u8; 32]) -> String {
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 64);
    out.push_str(TOKEN_PREFIX);
    out.push_str(&hex(random));
    out
}

/// Whether `token` has the shape of a mutatis token (prefix + 64 hex or 43 base64url chars).
pub fn is_well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    (rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        || (rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The SHA-256 of a token, in lowercase hex: the only form in which it is stored.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The setting key of a token.
pub fn token_key(token: &str) -> String {
    format!("{TOKEN_SETTING_PREFIX}{}", hash_token(token))
}

/// The SHA-256 of a token as bytes: what the server's token cache is keyed by, so a cached
/// token costs its hash and no hex or key string.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The setting key of a token whose [`token_digest`] is `digest` (the same as
/// [`token_key`] of the token).
pub fn digest_key(digest: &[u8; 32]) -> String {
    format!("{TOKEN_SETTING_PREFIX}{}", hex(digest))
}

/// The bearer token of an `Authorization` header value, if it is `Bearer <token>`.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A document's access policy: who may read and who may write it. `None` lists mean "anyone
/// whose role allows it".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Principals that may read (`"*"`: any authenticated principal). Writers may read too.
    pub read: Option<Vec<String>>,
    /// Principals that may write.
    pub write: Option<Vec<String>>,
}

/// A policy that is not `{"read": [names], "write": [names]}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access policy: {0}")]
pub struct PolicyError(pub String);

impl AccessPolicy {
    /// Parse a policy: `null` (open), or an object with optional `read` and `write` arrays of
    /// principal names. Unknown members are refused, not ignored: a typo must not open a
    /// document.
    pub fn parse(v: &Value) -> Result<AccessPolicy, PolicyError> {
        let map = match v {
            Value::Null => return Ok(AccessPolicy::default()),
            Value::Object(m) => m,
            other => {
                return Err(PolicyError(format!(
                    "expected an object {{\"read\": [..], \"write\": [..]}} or null, found {other}"
                )))
            }
        };
        for k in map.keys() {
            if k != "read" && k != "write" {
                return Err(PolicyError(format!(
                    "unknown member `{k}`; expected read, write"
                )));
            }
        }
        let list = |key: &str| -> Result<Option<Vec<String>>, PolicyError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_owned).ok_or_else(|| {
                            PolicyError(format!("`{key}` must list principal names (strings)"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(PolicyError(format!("`{key}` must be an array of names"))),
            }
        };
        Ok(AccessPolicy {
            read: list("read")?,
            write: list("write")?,
        })
    }

    /// The stored JSON (`null` for an open policy).
    pub fn to_json(&self) -> Value {
        if self.read.is_none() && self.write.is_none() {
            return Value::Null;
        }
        let mut m = serde_json::Map::new();
        if let Some(r) = &self.read {
            m.insert("read".into(), json!(r));
        }
        if let Some(w) = &self.write {
            m.insert("write".into(), json!(w));
        }
        Value::Object(m)
    }

    /// A stored policy, read leniently: a malformed one (written by something else) is treated
    /// as closed to everyone but admins, never as open.
    pub fn stored(v: &Value) -> AccessPolicy {
        AccessPolicy::parse(v).unwrap_or(AccessPolicy {
            read: Some(Vec::new()),
            write: Some(Vec::new()),
        })
    }

    fn lists(list: &Option<Vec<String>>, name: &str) -> bool {
        match list {
            None => true,
            Some(names) => names.iter().any(|n| n == "*" || n == name),
        }
    }

    /// Whether `who` may read a document under this policy (role checks are separate).
    pub fn may_read(&self, who: &Principal) -> bool {
        who.role == Role::Admin
            || Self::lists(&self.read, &who.name)
            // Write implies read; an open write list does not open reading.
            || (self.write.is_some() && Self::lists(&self.write, &who.name))
    }

    /// Whether `who` may write a document under this policy (role checks are separate).
    /// Without a write list, the read list (if any) limits writing too: nobody may write a
    /// document they cannot read.
    pub fn may_write(&self, who: &Principal) -> bool {
        who.role == Role::Admin
            || match &self.write {
                Some(_) => Self::lists(&self.write, &who.name),
                None => Self::lists(&self.read, &who.name),
            }
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`: webhook signatures, sealed cursors.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // Any key length is valid for HMAC: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, role: Role) -> Principal {
        Principal {
            name: name.into(),
            role,
        }
    }

    #[test]
    fn tokens_are_prefixed_hex_and_hashed() {
        let t = token_from_random(&[0xab; 32]);
        assert!(t.starts_with("mutatis_abab"));
        assert_eq!(t.len(), 8 + 64);
        assert!(is_well_formed(&t));
        assert!(is_well_formed(&format!(
            "mutatis_{}",
            "A-_b".repeat(10) + "xyz"
        )));
        assert!(!is_well_formed("mutatis_short"));
        assert!(!is_well_formed(&t.replace("mutatis_", "other___")));
        // SHA-256("abc"), the FIPS 180-2 example.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_key("abc"), format!("token/{}", hash_token("abc")));
        assert_eq!(digest_key(&token_digest("abc")), token_key("abc"));
        assert_ne!(hash_token(&t), t);
    }

    #[test]
    fn bearer_header_is_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Admin > Role::Writer && Role::Writer > Role::Reader);
        assert_eq!("writer".parse::<Role>(), Ok(Role::Writer));
        assert!("root".parse::<Role>().is_err());
        let r = TokenRecord {
            name: "ci".into(),
            role: Role::Reader,
            created: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(TokenRecord::from_json(&r.to_json()), Some(r));
    }

    #[test]
    fn open_policy_lets_every_role_through() {
        let p = AccessPolicy::parse(&Value::Null).unwrap();
        assert!(p.may_read(&who("a", Role::Reader)));
        assert!(p.may_write(&who("a", Role::Writer)));
        assert_eq!(p.to_json(), Value::Null);
    }

    #[test]
    fn lists_restrict_and_write_implies_read() {
        let p = AccessPolicy::parse(&json!({"read": ["bob"], "write": ["alice"]})).unwrap();
        assert!(p.may_read(&who("bob", Role::Reader)));
        assert!(p.may_read(&who("alice", Role::Writer)));
        assert!(!p.may_read(&who("eve", Role::Writer)));
        assert!(p.may_write(&who("alice", Role::Writer)));
        assert!(!p.may_write(&who("bob", Role::Writer)));
        assert!(p.may_write(&who("root", Role::Admin)));
        assert!(p.may_read(&who("root", Role::Admin)));
    }

    #[test]
    fn star_means_any_authenticated_principal() {
        let p = AccessPolicy::parse(&json!({"read": ["*"], "write": ["alice"]})).unwrap();
        assert!(p.may_read(&who("anyone", Role::Reader)));
        assert!(!p.may_write(&who("anyone", Role::Writer)));
        // A read list without a write list limits writing to the readers.
        let p = AccessPolicy::parse(&json!({"read": ["bob"]})).unwrap();
        assert!(!p.may_write(&who("eve", Role::Writer)));
        assert!(!p.may_read(&who("eve", Role::Reader)));
        assert!(p.may_write(&who("bob", Role::Writer)));
    }

    #[test]
    fn malformed_policies_are_refused_or_closed() {
        assert!(AccessPolicy::parse(&json!({"raed": ["bob"]})).is_err());
        assert!(AccessPolicy::parse(&json!({"read": "bob"})).is_err());
        assert!(AccessPolicy::parse(&json!([1])).is_err());
        let closed = AccessPolicy::stored(&json!("garbage"));
        assert!(!closed.may_read(&who("bob", Role::Writer)));
        assert!(closed.may_read(&who("root", Role::Admin)));
    }
}
