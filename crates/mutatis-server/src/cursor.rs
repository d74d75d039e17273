//! Sealed list cursors: where a page of `GET /docs/T` ends, handed to a caller who may not
//! know what is there.
//!
//! A page ends at the last id it scanned. When that document is one the caller may not read,
//! its id must not reach the caller (an id can say a lot: `hidden-payroll-4471`), yet the
//! next page must start after it. So the cursor is sealed: encrypted and authenticated under
//! a key the node keeps in its settings (shared by every process of a PostgreSQL node), and
//! only this node can open it. A cursor that is a readable document's id stays that id, as
//! before, so clients that pass ids back keep working.
//!
//! The construction is HMAC-SHA256 as a pseudo-random function (RFC 2104): a keystream
//! `HMAC(k_enc, nonce ‖ counter)` XORed onto the id, then a tag `HMAC(k_mac, nonce ‖
//! ciphertext)` (encrypt-then-MAC), with a random 16-byte nonce per cursor. Pure: the caller
//! gives the key and the nonce.

use crate::auth::{hex, hmac_sha256};

/// What marks a sealed cursor; ids may start with it too, so a value that does not open is
/// taken as an id.
pub const SEALED_PREFIX: char = '~';

const NONCE: usize = 16;
const TAG: usize = 16;

fn keys(key: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    (
        hmac_sha256(key, b"cursor/enc"),
        hmac_sha256(key, b"cursor/mac"),
    )
}

fn keystream_xor(enc: &[u8; 32], nonce: &[u8], data: &mut [u8]) {
    for (block, chunk) in data.chunks_mut(32).enumerate() {
        let mut input = Vec::with_capacity(NONCE + 8);
        input.extend_from_slice(nonce);
        input.extend_from_slice(&(block as u64).to_be_bytes());
        let stream = hmac_sha256(enc, &input);
        for (b, s) in chunk.iter_mut().zip(stream) {
            *b ^= s;
        }
    }
}

fn tag(mac: &[u8; 32], nonce: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(NONCE + ciphertext.len());
    input.extend_from_slice(nonce);
    input.extend_from_slice(ciphertext);
    hmac_sha256(mac, &input)
}

/// `id` sealed under `key` with `nonce`.
pub fn seal(key: &[u8; 32], nonce: [u8; NONCE], id: &str) -> String {
    let (enc, mac) = keys(key);
    let mut body = id.as_bytes().to_vec();
    keystream_xor(&enc, &nonce, &mut body);
    let t = tag(&mac, &nonce, &body);
    let mut out = Vec::with_capacity(NONCE + body.len() + TAG);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out.extend_from_slice(&t[..TAG]);
    format!("{SEALED_PREFIX}{}", hex(&out))
}

/// The id a sealed cursor holds, if it is one this key sealed.
pub fn open(key: &[u8; 32], cursor: &str) -> Option<String> {
    let text = cursor.strip_prefix(SEALED_PREFIX)?;
    if text.len() % 2 != 0 {
        return None;
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    if bytes.len() < NONCE + TAG {
        return None;
    }
    let (nonce, rest) = bytes.split_at(NONCE);
    let (body, given) = rest.split_at(rest.len() - TAG);
    let (enc, mac) = keys(key);
    let expected = tag(&mac, nonce, body);
    // Compared in full, whatever differs first: a forger learns nothing from the timing.
    let same = expected[..TAG]
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if !same {
        return None;
    }
    let mut id = body.to_vec();
    keystream_xor(&enc, nonce, &mut id);
    String::from_utf8(id).ok()
}

/// Where a list continues after `after` (a `?after=` value): the id a sealed cursor holds, or
/// the value itself.
pub fn resume_after(key: &[u8; 32], after: &str) -> String {
    open(key, after).unwrap_or_else(|| after.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_only_under_its_key_and_hides_the_id() {
        let key = [7u8; 32];
        let id = "zz-hidden-payroll-4471";
        let c = seal(&key, [1; 16], id);
        assert!(c.starts_with('~'));
        assert!(!c.contains("payroll") && !c.contains(&hex(id.as_bytes())));
        assert_eq!(open(&key, &c).as_deref(), Some(id));
        assert_eq!(open(&[8u8; 32], &c), None);
        // Another nonce, another cursor for the same id.
        assert_ne!(seal(&key, [2; 16], id), c);
        // Tampering with any byte is caught.
        let mut bytes: Vec<char> = c.chars().collect();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == '0' { '1' } else { '0' };
        let tampered: String = bytes.into_iter().collect();
        assert_eq!(open(&key, &tampered), None);
        // Long ids (several keystream blocks) round trip.
        let long = "x".repeat(500);
        assert_eq!(open(&key, &seal(&key, [3; 16], &long)), Some(long));
        // Anything else is taken as an id.
        assert_eq!(resume_after(&key, "~not-a-cursor"), "~not-a-cursor");
        assert_eq!(resume_after(&key, "plain"), "plain");
        assert_eq!(resume_after(&key, &c), id);
    }
}
