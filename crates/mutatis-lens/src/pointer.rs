//! JSON pointers (RFC 6901) as the engine builds and reads them.

use std::fmt::Write;

/// Append one reference token to `base`, escaping `~` and `/`.
pub fn push(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Append an array index to `base`.
pub fn push_index(base: &str, index: usize) -> String {
    let mut out = String::with_capacity(base.len() + 4);
    out.push_str(base);
    let _ = write!(out, "/{index}");
    out
}

/// Split a pointer into its unescaped reference tokens. `""` is the whole document.
///
/// Returns `None` for a non-empty pointer that does not start with `/`.
pub fn parse(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Join unescaped tokens back into a pointer.
pub fn join<S: AsRef<str>>(tokens: &[S]) -> String {
    tokens
        .iter()
        .fold(String::new(), |acc, t| push(&acc, t.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let p = join(&["a/b", "c~d", "0"]);
        assert_eq!(p, "/a~1b/c~0d/0");
        assert_eq!(parse(&p).unwrap(), vec!["a/b", "c~d", "0"]);
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert!(parse("nope").is_none());
    }
}
