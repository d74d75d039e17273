//! Conditional requests on documents (RFC 9110 §8.8.3, §13.1), as pure functions: the entity
//! tag of a representation, `If-None-Match` (weak comparison, lists and `*`) and `If-Match`
//! (strong comparison, one tag).
//!
//! One document revision has a representation per version of its type (an app of release 3
//! reads `Student@3`, one of release 5 `Student@5`), so the tag names both: `"3-abcd;Student@5"`.
//! A cache or an app holding one version's body never takes another's for it. A write is
//! checked against the revision alone: an app knows only its own version's tag, and any
//! version's tag of the current revision — or the bare rev `"3-abcd"` older clients send —
//! says "the revision I last read".

use mutatis_store::{Rev, StoreError};

/// The `Vary` of every answer about a document: the negotiation headers choose the version
/// served, and the caller (its token) decides what it may see at all.
pub const DOCUMENT_VARY: &str = "mutatis-release, mutatis-versions, authorization";

/// The opaque tag (the text between the quotes) of revision `rev` in `type_name`'s `version`.
pub fn representation_tag(rev: &Rev, type_name: &str, version: u32) -> String {
    format!("{rev};{type_name}@{version}")
}

/// The `ETag` value of revision `rev` in `type_name`'s `version`.
pub fn representation_etag(rev: &Rev, type_name: &str, version: u32) -> String {
    use std::fmt::Write as _;
    // A read makes one of these every time: sized once and written piece by piece, where
    // `format!` would guess a small size and grow the string three times over.
    const DIGITS: usize = 20 + 10; // the longest u64 and u32
    let mut etag = String::with_capacity(rev.hash().len() + type_name.len() + DIGITS + 5);
    etag.push('"');
    // Writing a number into a `String` cannot fail.
    let _ = write!(etag, "{}", rev.generation());
    etag.push('-');
    etag.push_str(rev.hash());
    etag.push(';');
    etag.push_str(type_name);
    etag.push('@');
    let _ = write!(etag, "{version}");
    etag.push('"');
    etag
}

/// One entity tag of a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// Between the quotes.
    opaque: &'a str,
}

/// The members of `#entity-tag` (RFC 9110 §5.6.1: empty members and optional white space
/// allowed), or `None` when `value` is not such a list. `etagc` allows commas inside the
/// quotes, so the list is scanned, not split.
fn entity_tags(value: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let body = quoted.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &body[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(EntityTag { weak, opaque });
        rest = body[end + 1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
}

/// Whether the `If-None-Match` field values `values` match the current representation, whose
/// opaque tag is `tag`: then a GET or HEAD is answered 304. Weak comparison (RFC 9110
/// §13.1.2): `W/"x"` matches `"x"`. `*` matches any current representation. A value that is
/// not a list of entity tags matches nothing (the request is answered in full: a wrong
/// validator can only cost a transfer).
pub fn none_match<'a>(values: impl IntoIterator<Item = &'a str>, tag: &str) -> bool {
    values.into_iter().any(|v| {
        v.trim() == "*" || entity_tags(v).is_some_and(|tags| tags.iter().any(|t| t.opaque == tag))
    })
}

/// What an `If-Match` names: one revision, as a representation's tag of some version or as
/// the bare rev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch {
    /// A weak tag never matches (strong comparison, RFC 9110 §13.1.1).
    weak: bool,
    rev: Rev,
    /// The type a representation's tag names (`None`: the bare rev).
    type_name: Option<String>,
}

/// Why an `If-Match` value names no revision.
#[derive(Debug, thiserror::Error)]
pub enum IfMatchError {
    /// `*`, a list, or not an entity tag at all.
    #[error("If-Match: {value}: expected one entity tag, as the ETag gave it (\"N-hash;Type@V\" or \"N-hash\")")]
    NotOneTag {
        /// The value sent.
        value: String,
    },
    /// A tag whose rev is not one.
    #[error(transparent)]
    InvalidRev(StoreError),
}

impl IfMatch {
    /// Read an `If-Match` value: `"N-hash;Type@V"` (a representation's tag), `"N-hash"` or,
    /// as clients before entity tags per version sent it, unquoted `N-hash`.
    pub fn parse(value: &str) -> Result<IfMatch, IfMatchError> {
        let not_one = || IfMatchError::NotOneTag {
            value: value.to_owned(),
        };
        let trimmed = value.trim();
        let tag = match entity_tags(trimmed) {
            Some(tags) if tags.len() == 1 => tags[0],
            Some(_) => return Err(not_one()),
            None if !trimmed.is_empty()
                && !trimmed.contains([',', '"', ' ', '*'])
                && !trimmed.starts_with("W/") =>
            {
                EntityTag {
                    weak: false,
                    opaque: trimmed,
                }
            }
            None => return Err(not_one()),
        };
        let (rev, type_name) = match tag.opaque.split_once(';') {
            None => (tag.opaque, None),
            Some((rev, of)) => {
                let (type_name, version) = of.split_once('@').ok_or_else(not_one)?;
                if type_name.is_empty() || version.parse::<u32>().is_err() {
                    return Err(not_one());
                }
                (rev, Some(type_name.to_owned()))
            }
        };
        Ok(IfMatch {
            weak: tag.weak,
            rev: rev.parse().map_err(IfMatchError::InvalidRev)?,
            type_name,
        })
    }

    /// Whether this names the document of `type_name` whose current revision is `current`, in
    /// any version.
    pub fn matches(&self, current: &Rev, type_name: &str) -> bool {
        !self.weak
            && self.rev == *current
            && self.type_name.as_deref().is_none_or(|t| t == type_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(s: &str) -> Rev {
        s.parse().unwrap()
    }

    #[test]
    fn a_representation_tag_names_the_revision_and_the_version() {
        let r = rev("3-abcd");
        assert_eq!(representation_tag(&r, "Student", 4), "3-abcd;Student@4");
        assert_eq!(
            representation_etag(&r, "Student", 4),
            "\"3-abcd;Student@4\""
        );
        assert_ne!(
            representation_etag(&r, "Student", 3),
            representation_etag(&r, "Student", 4)
        );
        // The header is the tag quoted, whatever the lengths (the header is written piece
        // by piece, the tag with `format!`).
        for (text, type_name, version) in [
            ("1-0", "T", 0),
            (
                "9007199254740990-ffffffffffffffffffffffffffffffff",
                "Studentλ",
                u32::MAX,
            ),
        ] {
            let r = rev(text);
            assert_eq!(
                representation_etag(&r, type_name, version),
                format!("\"{}\"", representation_tag(&r, type_name, version))
            );
        }
    }

    #[test]
    fn if_none_match_compares_weakly_over_lists_and_star() {
        let tag = "3-abcd;Student@4";
        assert!(none_match(["\"3-abcd;Student@4\""], tag));
        assert!(none_match(["W/\"3-abcd;Student@4\""], tag));
        assert!(none_match(
            ["\"1-aa;Student@4\", W/\"3-abcd;Student@4\""],
            tag
        ));
        assert!(none_match(
            ["\"1-aa;Student@4\"", "\"3-abcd;Student@4\""],
            tag
        ));
        assert!(none_match(["*"], tag));
        assert!(none_match([" , \"x\" ,, \"3-abcd;Student@4\" "], tag));
        // Another version's tag, the bare rev, another rev: the representation differs.
        assert!(!none_match(["\"3-abcd;Student@3\""], tag));
        assert!(!none_match(["\"3-abcd\""], tag));
        assert!(!none_match(["\"4-abcd;Student@4\""], tag));
        // Not a list of entity tags: matches nothing.
        assert!(!none_match(["3-abcd;Student@4"], tag));
        assert!(!none_match(["\"3-abcd;Student@4"], tag));
        assert!(!none_match(["\"3-abcd;Student@4\" x"], tag));
        assert!(!none_match([], tag));
    }

    #[test]
    fn commas_inside_quotes_are_part_of_the_tag() {
        assert_eq!(
            entity_tags("\"a,b\", W/\"c\"").unwrap(),
            vec![
                EntityTag {
                    weak: false,
                    opaque: "a,b"
                },
                EntityTag {
                    weak: true,
                    opaque: "c"
                }
            ]
        );
        assert_eq!(entity_tags("").unwrap(), vec![]);
        assert!(entity_tags("\"a\"\"b\"").is_none());
        assert!(entity_tags("\"a b\"").is_none());
    }

    #[test]
    fn if_match_accepts_any_version_of_the_current_revision_strongly() {
        let current = rev("3-abcd");
        for v in [
            "\"3-abcd;Student@4\"",
            "\"3-abcd;Student@3\"",
            "\"3-abcd\"",
            "3-abcd",
            " \"3-ABCD\" ",
        ] {
            let m = IfMatch::parse(v).unwrap();
            assert!(m.matches(&current, "Student"), "{v}");
        }
        for v in [
            "\"2-abcd;Student@4\"",
            "\"3-abcd;Course@4\"",
            "W/\"3-abcd;Student@4\"",
            "W/\"3-abcd\"",
        ] {
            let m = IfMatch::parse(v).unwrap();
            assert!(!m.matches(&current, "Student"), "{v}");
        }
    }

    #[test]
    fn if_match_names_one_revision() {
        for v in [
            "*",
            "\"3-abcd\", \"3-abcd\"",
            "",
            "\"3-abcd;Student\"",
            "\"3-abcd;@4\"",
            "\"3-abcd;Student@x\"",
            "\"3-abcd",
        ] {
            assert!(
                matches!(IfMatch::parse(v), Err(IfMatchError::NotOneTag { .. })),
                "{v}"
            );
        }
        for v in [
            "\"yesterday\"",
            "\"0-abc;Student@4\"",
            "\"18446744073709551615\"",
        ] {
            assert!(
                matches!(IfMatch::parse(v), Err(IfMatchError::InvalidRev(_))),
                "{v}"
            );
        }
    }
}
