//! The CouchDB replication protocol's pure parts: document ids (`TYPE:ID`), revs and their
//! `_revisions` histories, the winner rule, document bodies in and out, the error names
//! CouchDB clients read, and HTTP Basic credentials. No I/O: the handlers in `mod.rs` call
//! these around the store.

use std::cmp::Ordering;

use mutatis_store::Rev;
use serde_json::{json, Map, Value};

/// Most documents one `_bulk_docs` request may carry (PouchDB sends `batch_size`, 100 by
/// default).
pub const MAX_BULK_DOCS: usize = 1000;
/// Most `{id, rev}` entries one `_bulk_get` request may ask for.
pub const MAX_BULK_GET: usize = 1000;
/// Most revs (over all ids) one `_revs_diff` request may ask about.
pub const MAX_REVS_DIFF: usize = 5000;
/// Most keys one `_all_docs` request may name, and most rows it answers.
pub const MAX_KEYS: usize = 1000;
/// Most rows one `_changes` response holds (a client asking more gets this many and asks
/// again from `last_seq`, as PouchDB does).
pub const MAX_CHANGES: usize = 1000;
/// Most revs one `open_revs` list may name.
pub const MAX_OPEN_REVS: usize = 100;

/// Why a request's CouchDB-level content is refused (400 `bad_request` unless said).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouchError {
    /// A document id that is not `TYPE:ID`.
    #[error("document id {0:?} is not TYPE:ID (a type name, a colon, then the document's id)")]
    BadId(String),
    /// A rev that does not parse or breaks the store's rules.
    #[error("invalid rev {rev:?}: {reason}")]
    BadRev {
        /// The rev as sent.
        rev: String,
        /// Why it is refused.
        reason: String,
    },
    /// `_revisions` that do not describe the rev's history.
    #[error("invalid _revisions: {0}")]
    BadRevisions(String),
    /// An underscore member this server does not take.
    #[error("Bad special document member: {0}")]
    SpecialMember(String),
    /// Attachments: mutatis documents are JSON only.
    #[error("attachments are not supported: mutatis documents are JSON only (drop _attachments)")]
    Attachments,
    /// A document that is not a JSON object.
    #[error("a document must be a JSON object")]
    NotObject,
}

/// Split a CouchDB document id into type and mutatis id at the first colon: both must be
/// non-empty.
pub fn split_id(couch_id: &str) -> Result<(&str, &str), CouchError> {
    match couch_id.split_once(':') {
        Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok((t, id)),
        _ => Err(CouchError::BadId(couch_id.chars().take(128).collect())),
    }
}

/// The CouchDB id of a mutatis document.
pub fn couch_id(type_name: &str, id: &str) -> String {
    format!("{type_name}:{id}")
}

/// A rev from a client: `N-hex`, mutatis's 16 digits or CouchDB/PouchDB's 32, kept as given
/// (lowercase), under the store's rule ([`Rev::check`]: no generation that cannot grow, no
/// hash over 64 digits).
pub fn parse_rev(s: &str) -> Result<Rev, CouchError> {
    s.parse::<Rev>().map_err(|e| CouchError::BadRev {
        rev: s.chars().take(100).collect(),
        reason: e.to_string(),
    })
}

/// `_revisions` (`{"start": N, "ids": [hash, …]}`, newest first) of a rev with `history`
/// (most recent first): the unbroken run of generations N, N−1, … the history holds. A gap
/// (an ancestor the history skipped) ends it, as a stemmed CouchDB tree does.
pub fn revisions(rev: &Rev, history: &[Rev]) -> Value {
    let mut ids = vec![json!(rev.hash())];
    let mut expected = rev.generation();
    for r in history {
        if expected <= 1 || r.generation() != expected - 1 {
            break;
        }
        ids.push(json!(r.hash()));
        expected = r.generation();
    }
    json!({"start": rev.generation(), "ids": ids})
}

/// The history (most recent first, the rev itself left out) that `_revisions` gives `rev`.
/// `start` must be the rev's generation and `ids[0]` its hash.
pub fn history_from_revisions(rev: &Rev, revisions: &Value) -> Result<Vec<Rev>, CouchError> {
    let bad = |why: &str| CouchError::BadRevisions(why.to_owned());
    let start = revisions
        .get("start")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("`start` must be a positive integer"))?;
    let ids = revisions
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`ids` must be an array of rev hashes"))?;
    if start != rev.generation() {
        return Err(bad("`start` is not the generation of `_rev`"));
    }
    if ids.first().and_then(Value::as_str) != Some(rev.hash()) {
        return Err(bad("`ids[0]` is not the hash of `_rev`"));
    }
    // More ancestors than generations below the rev cannot be.
    if u64::try_from(ids.len()).unwrap_or(u64::MAX) > start {
        return Err(bad("more ids than the generation allows"));
    }
    let mut history = Vec::with_capacity(ids.len().saturating_sub(1));
    for (back, id) in ids.iter().enumerate().skip(1) {
        let hash = id.as_str().ok_or_else(|| bad("an id is not a string"))?;
        let generation = start - u64::try_from(back).unwrap_or(start);
        history.push(parse_rev(&format!("{generation}-{hash}"))?);
    }
    Ok(history)
}

/// The CouchDB/PouchDB winner rule: a live leaf beats a deleted one, then the higher
/// generation, then the greater rev hash (compared as text, as PouchDB's `winningRev` and
/// CouchDB do). `Greater` means `a` wins. The store's rule must agree: tested against it.
pub fn winner_order(a: (&Rev, bool), b: (&Rev, bool)) -> Ordering {
    (!a.1)
        .cmp(&!b.1)
        .then(a.0.generation().cmp(&b.0.generation()))
        .then_with(|| a.0.hash().cmp(b.0.hash()))
}

/// A document a client sent, its CouchDB members taken apart from its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// `_id`, if given.
    pub id: Option<String>,
    /// `_rev`, if given.
    pub rev: Option<Rev>,
    /// `_deleted: true`.
    pub deleted: bool,
    /// `_revisions`, if given (not yet checked against the rev).
    pub revisions: Option<Value>,
    /// The body: every member that is not a CouchDB one.
    pub body: Value,
}

/// Take a document apart. Members CouchDB answers with and a client may send back
/// (`_conflicts`, `_deleted_conflicts`, `_revs_info`, `_local_seq`) are dropped; any other
/// underscore member is refused, `_attachments` with its own message.
pub fn incoming(doc: Value) -> Result<Incoming, CouchError> {
    let Value::Object(map) = doc else {
        return Err(CouchError::NotObject);
    };
    let mut out = Incoming {
        id: None,
        rev: None,
        deleted: false,
        revisions: None,
        body: Value::Null,
    };
    let mut body = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "_id" => {
                out.id = Some(
                    v.as_str()
                        .ok_or_else(|| CouchError::BadId(v.to_string()))?
                        .to_owned(),
                )
            }
            "_rev" => {
                let s = v.as_str().ok_or_else(|| CouchError::BadRev {
                    rev: v.to_string(),
                    reason: "not a string".to_owned(),
                })?;
                out.rev = Some(parse_rev(s)?);
            }
            "_deleted" => out.deleted = v.as_bool().unwrap_or(false),
            "_revisions" => out.revisions = Some(v),
            "_conflicts" | "_deleted_conflicts" | "_revs_info" | "_local_seq" => {}
            "_attachments" => return Err(CouchError::Attachments),
            other if other.starts_with('_') => {
                return Err(CouchError::SpecialMember(other.chars().take(64).collect()))
            }
            _ => {
                body.insert(k, v);
            }
        }
    }
    out.body = Value::Object(body);
    Ok(out)
}

/// A document as CouchDB clients read it: `_id`, `_rev`, then the body's members (a
/// tombstone is `{_id, _rev, _deleted: true}`). A body that is not an object has no CouchDB
/// form: `None`.
pub fn outgoing(couch_id: &str, rev: &Rev, body: &Value, deleted: bool) -> Option<Value> {
    let mut m = Map::new();
    m.insert("_id".into(), json!(couch_id));
    m.insert("_rev".into(), json!(rev.to_string()));
    if deleted {
        m.insert("_deleted".into(), json!(true));
        return Some(Value::Object(m));
    }
    let Value::Object(b) = body else {
        return None;
    };
    for (k, v) in b {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Some(Value::Object(m))
}

/// The CouchDB `error` name for a problem, from its mutatis name and status.
pub fn error_name(problem_name: &str, status: u16) -> &'static str {
    match problem_name {
        "unsupported-release" => return "unsupported_release",
        "rev-conflict" | "already-exists" => return "conflict",
        "invalid-document" => return "doc_validation",
        _ => {}
    }
    match status {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "too_large",
        415 => "bad_content_type",
        400..=499 => "bad_request",
        _ => "unknown_error",
    }
}

/// The password of an HTTP Basic `Authorization` value (`Basic base64(user:password)`): the
/// token, whatever the user name.
pub fn basic_password(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// Standard base64 (padding optional); `None` on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 || s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if chunk.len() > 2 {
            out.push(b);
        }
        if chunk.len() > 3 {
            out.push(c);
        }
    }
    Some(out)
}

/// `since` of a changes request: a sequence number, or `now` (`None`: the caller puts the
/// feed's head).
pub fn parse_since(s: &str) -> Result<Option<u64>, String> {
    if s == "now" {
        return Ok(None);
    }
    // CouchDB 2+ sends opaque strings such as `"12-g1AAAA…"`: this server's are numbers, and
    // a client echoes them back, possibly JSON-quoted.
    let t = s.trim().trim_matches('"');
    t.parse::<u64>()
        .map(Some)
        .map_err(|_| format!("since={s}: expected a sequence number this server gave, or now"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(s: &str) -> Rev {
        parse_rev(s).unwrap()
    }

    #[test]
    fn ids_split_at_the_first_colon() {
        assert_eq!(split_id("todo:a:b").unwrap(), ("todo", "a:b"));
        assert!(split_id("todo").is_err());
        assert!(split_id(":x").is_err());
        assert!(split_id("todo:").is_err());
        assert_eq!(couch_id("todo", "a:b"), "todo:a:b");
    }

    #[test]
    fn couchdb_and_mutatis_revs_are_both_kept_as_given() {
        let pouch = "3-0123456789abcdef0123456789abcdef";
        assert_eq!(rev(pouch).to_string(), pouch);
        assert_eq!(rev("1-0123456789abcdef").to_string(), "1-0123456789abcdef");
        // Poisoned revs stay refused.
        assert!(parse_rev("9007199254740991-ab").is_err());
        assert!(parse_rev("0-ab").is_err());
        assert!(parse_rev(&format!("1-{}", "a".repeat(65))).is_err());
        assert!(parse_rev("1-xyz").is_err());
    }

    #[test]
    fn revisions_round_trip_and_stop_at_gaps() {
        let r = rev("3-cc");
        let h = vec![rev("2-bb"), rev("1-aa")];
        let v = revisions(&r, &h);
        assert_eq!(v, json!({"start": 3, "ids": ["cc", "bb", "aa"]}));
        assert_eq!(history_from_revisions(&r, &v).unwrap(), h);
        let gap = revisions(&r, &[rev("1-aa")]);
        assert_eq!(gap, json!({"start": 3, "ids": ["cc"]}));
        assert!(history_from_revisions(&r, &json!({"start": 2, "ids": ["cc"]})).is_err());
        assert!(history_from_revisions(&r, &json!({"start": 3, "ids": ["dd"]})).is_err());
        assert!(
            history_from_revisions(&r, &json!({"start": 3, "ids": ["cc", "b", "a", "z"]})).is_err()
        );
    }

    #[test]
    fn the_winner_is_live_then_longest_then_greatest_hash() {
        let (a, b) = (rev("2-aa"), rev("3-00"));
        assert_eq!(winner_order((&b, false), (&a, false)), Ordering::Greater);
        assert_eq!(winner_order((&a, false), (&b, true)), Ordering::Greater);
        // Mixed hash lengths compare as text, as PouchDB compares them.
        let short = rev("1-ffffffffffffffff");
        let long = rev("1-0000000000000000ffffffffffffffff");
        assert_eq!(
            winner_order((&short, false), (&long, false)),
            Ordering::Greater
        );
    }

    #[test]
    fn bodies_lose_their_couchdb_members_and_attachments_are_refused() {
        let d = incoming(json!({"_id": "todo:1", "_rev": "1-ab", "_revisions": {"start": 1, "ids": ["ab"]}, "_conflicts": [], "title": "x"})).unwrap();
        assert_eq!(d.id.as_deref(), Some("todo:1"));
        assert_eq!(d.body, json!({"title": "x"}));
        assert_eq!(
            incoming(json!({"_attachments": {}})),
            Err(CouchError::Attachments)
        );
        assert!(matches!(
            incoming(json!({"_foo": 1})),
            Err(CouchError::SpecialMember(_))
        ));
        assert_eq!(incoming(json!([1])), Err(CouchError::NotObject));
        let out = outgoing("todo:1", &rev("1-ab"), &json!({"title": "x"}), false).unwrap();
        assert_eq!(out, json!({"_id": "todo:1", "_rev": "1-ab", "title": "x"}));
        let del = outgoing("todo:1", &rev("2-ab"), &Value::Null, true).unwrap();
        assert_eq!(del["_deleted"], true);
    }

    #[test]
    fn basic_credentials_give_the_password() {
        // "any:mutatis_tok"
        assert_eq!(
            basic_password("Basic YW55Om11dGF0aXNfdG9r").as_deref(),
            Some("mutatis_tok")
        );
        assert_eq!(basic_password("Bearer x"), None);
        assert_eq!(basic_password("Basic !!!"), None);
        assert_eq!(basic_password("Basic YW55"), None);
    }

    #[test]
    fn since_is_a_number_or_now() {
        assert_eq!(parse_since("12"), Ok(Some(12)));
        assert_eq!(parse_since("\"12\""), Ok(Some(12)));
        assert_eq!(parse_since("now"), Ok(None));
        assert!(parse_since("12-g1AA").is_err());
    }

    #[test]
    fn errors_have_couchdb_names() {
        assert_eq!(error_name("not-found", 404), "not_found");
        assert_eq!(error_name("rev-conflict", 412), "conflict");
        assert_eq!(error_name("unauthenticated", 401), "unauthorized");
        assert_eq!(
            error_name("unsupported-release", 400),
            "unsupported_release"
        );
    }
}
