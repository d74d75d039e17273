//! The HTTP request path's fuzzing harness, run over the seeds and generated requests on every
//! `cargo test`.
//!
//! `fuzz/` holds the cargo-fuzz target `http`, which needs nightly compiler flags and minutes
//! of running. Its checks live in `fuzz/src/http.rs` as plain functions over bytes; this test
//! compiles that very file and feeds it the checked-in seeds (each of which must still reach
//! the status its name starts with, so a seed that stops doing what it is for fails here),
//! byte mutations of them and requests generated from the API's vocabulary, so the server's
//! promises (no panic, no 5xx, every error an RFC 9457 problem of a `urn:mutatis:problem:`
//! type) are checked by every test run.

#[path = "../../../fuzz/src/http.rs"]
mod harness;

use std::path::PathBuf;

use proptest::prelude::*;

/// `cases` per property, unless `PROPTEST_CASES` asks for a deeper run.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // A failure prints its minimised input; no files are written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/http");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Every seed is a request, passes the harness, and reaches the status its name begins with
/// (`any-` seeds: a feed that may still be waiting, or a write whose answer depends on what
/// earlier inputs stored).
#[test]
fn seeds_pass_the_harness_and_reach_their_status() {
    let seeds = seeds();
    assert!(seeds.len() >= 30, "only {} seeds", seeds.len());
    for (name, bytes) in &seeds {
        let input = harness::parse(bytes).unwrap_or_else(|| panic!("{name} is not a request"));
        assert!(
            harness::request(&input).is_some(),
            "{name}: the harness does not send it"
        );
        let answer = harness::send(&input);
        let Some(expected) = name.split('-').next().and_then(|s| s.parse::<u16>().ok()) else {
            assert!(
                name.starts_with("any-"),
                "{name}: name it STATUS-what or any-what"
            );
            continue;
        };
        let answer = answer.unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(
            answer.status,
            expected,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

/// The harness's format reads back what it writes.
#[test]
fn the_input_format_round_trips() {
    for (name, bytes) in seeds() {
        let input = harness::parse(&bytes).expect("a request");
        assert_eq!(
            harness::parse(&harness::unparse(&input)),
            Some(input),
            "{name}"
        );
    }
    assert_eq!(harness::parse(b""), None);
    assert_eq!(harness::parse(b"GET"), None);
    let bare = harness::parse(b"GET /meta").expect("a request line alone");
    assert!(bare.headers.is_empty() && bare.body.is_empty());
}

/// xorshift64*, seeded: the mutations are the same on every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte-level mutations of every seed (what libFuzzer starts with): flipped, dropped,
/// repeated and inserted bytes, truncations, and pieces of other seeds spliced in.
#[test]
fn mutated_seeds_pass_the_harness() {
    let seeds = seeds();
    let mut dice = Dice(0x005e_ed0f_4775);
    let interesting: &[&[u8]] = &[
        b"\n",
        b"\r\n",
        b": ",
        b"%00",
        b"%ff",
        b"\"",
        b"{",
        b"}",
        b"@admin",
        b"18446744073709551615",
        b"-1",
        b"\xff\xfe",
        b"~",
        b"..",
    ];
    for (_, bytes) in &seeds {
        for _ in 0..12 {
            let mut m = bytes.clone();
            for _ in 0..1 + dice.below(4) {
                let at = dice.below(m.len() + 1);
                match dice.below(6) {
                    0 if at < m.len() => m[at] ^= 1 << dice.below(8),
                    1 if at < m.len() => {
                        m.remove(at);
                    }
                    2 => m.truncate(at),
                    3 => {
                        let piece = interesting[dice.below(interesting.len())];
                        m.splice(at..at, piece.iter().copied());
                    }
                    4 => {
                        let (_, other) = &seeds[dice.below(seeds.len())];
                        let from = dice.below(other.len());
                        let to = (from + dice.below(64)).min(other.len());
                        m.splice(at..at, other[from..to].iter().copied());
                    }
                    _ if at < m.len() => {
                        let end = (at + dice.below(16)).min(m.len());
                        let copy = m[at..end].to_vec();
                        m.splice(at..at, copy);
                    }
                    _ => {}
                }
            }
            harness::http(&m);
        }
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("PUT".to_owned()),
        Just("POST".to_owned()),
        Just("PATCH".to_owned()),
        Just("DELETE".to_owned()),
        Just("HEAD".to_owned()),
        Just("OPTIONS".to_owned()),
        "[A-Z]{1,8}",
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("open-1".to_owned()),
        Just("hidden-1".to_owned()),
        Just("cfl-1".to_owned()),
        Just("%00".to_owned()),
        Just("a%2Fb".to_owned()),
        "[a-z0-9~._-]{1,12}",
    ]
}

fn rev() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("3-0000000000000033".to_owned()),
        Just("2-0000000000000022".to_owned()),
        Just("18446744073709551615-abcdef0123456789".to_owned()),
        Just("9007199254740990-abcdef0123456789".to_owned()),
        "[0-9]{1,3}-[0-9a-f]{1,20}",
        "[ -~]{0,12}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    let query = prop_oneof![
        Just(String::new()),
        rev().prop_map(|r| format!("?rev={r}")),
        Just("?source=backup".to_owned()),
        Just("?release=3".to_owned()),
        Just("?release=99".to_owned()),
        "\\?limit=[0-9-]{0,5}&after=[a-z~0-9-]{0,8}",
        Just("?id=hidden-1".to_owned()),
        "\\?[a-z_]{1,8}=[ -~&&[^ #]]{0,10}",
    ];
    let path = prop_oneof![
        id().prop_map(|i| format!("/docs/Student/{i}")),
        id().prop_map(|i| format!("/docs/Student/{i}/access")),
        id().prop_map(|i| format!("/docs/Student/{i}/conflicts")),
        id().prop_map(|i| format!("/docs/Student/{i}/conflicts/resolve")),
        Just("/docs/Student".to_owned()),
        Just("/docs/Nope".to_owned()),
        Just("/changes".to_owned()),
        Just("/replication".to_owned()),
        Just("/replication/changes".to_owned()),
        Just("/replication/apply".to_owned()),
        id().prop_map(|i| format!("/replication/checkpoints/{i}")),
        Just("/admin/migrations".to_owned()),
        Just("/admin/migrations/Student".to_owned()),
        Just("/admin/import".to_owned()),
        Just("/admin/tokens".to_owned()),
        Just("/admin/reload".to_owned()),
        Just("/meta".to_owned()),
        Just("/compatibility".to_owned()),
        Just("/openapi.json".to_owned()),
        Just("/metrics".to_owned()),
        "/[a-z]{1,8}",
    ];
    (path, query).prop_map(|(p, q)| format!("{p}{q}"))
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("@admin"),
            Just("@alice"),
            Just("@bob"),
            Just("@rita"),
            Just("mutatis_00"),
        ]
        .prop_map(|t| format!("Authorization: Bearer {t}")),
        prop_oneof![
            Just("1"),
            Just("3"),
            Just("4"),
            Just("5"),
            Just(""),
            Just("nope")
        ]
        .prop_map(|r| format!("Mutatis-Release: {r}")),
        prop_oneof![
            Just("Student=3"),
            Just("Student=5"),
            Just("Nope=1"),
            Just("Student=3,"),
            Just("Student=99")
        ]
        .prop_map(|v| format!("Mutatis-Versions: {v}")),
        rev().prop_map(|r| format!("If-Match: \"{r}\"")),
        prop_oneof![
            Just("application/json"),
            Just("application/json-patch+json"),
            Just("text/plain"),
        ]
        .prop_map(|c| format!("Content-Type: {c}")),
        prop_oneof![
            Just(r#"{"read":["alice"]}"#),
            Just(r#"{"read":["*"],"write":["bob"]}"#),
            Just(r#"{"read":"x"}"#),
            Just("null"),
        ]
        .prop_map(|a| format!("Mutatis-Access: {a}")),
        "Content-Length: [0-9]{1,12}",
        "Transfer-Encoding: [a-z]{1,8}",
        "Last-Event-ID: [0-9a-z]{0,4}",
        "X-[A-Za-z]{1,6}: [ -~]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1990}"#.to_owned()),
        Just(r#"{"firstName": "A", "lastName": "B", "age": 30}"#.to_owned()),
        Just(r#"{"fistAndLastName": "A B", "age": 30}"#.to_owned()),
        Just(r#"{"firstName": "A", "lastName": "B", "yearOfBirth": 1e400}"#.to_owned()),
        Just(r#"[{"op": "replace", "path": "/lastName", "value": "X"}]"#.to_owned()),
        Just(r#"[{"op": "remove", "path": "/firstName"}]"#.to_owned()),
        Just(r#"{"winner": "3-0000000000000033", "keep": "2-0000000000000022"}"#.to_owned()),
        Just(r#"{"winner": "3-0000000000000033", "merge": {"firstName": "M", "lastName": "M", "yearOfBirth": 1}}"#.to_owned()),
        Just(r#"{"read": ["*"]}"#.to_owned()),
        Just(r#"{"name": "fuzzed", "role": "reader"}"#.to_owned()),
        Just(r#"{"type": "Student", "to": 4}"#.to_owned()),
        Just(r#"{"type": "Student", "version": 5, "docs": [{"id": "g", "doc": {"firstName": "A", "lastName": "B", "yearOfBirth": 1}}]}"#.to_owned()),
        Just(r#"{"source": {"nodeId": "p", "manifest": "sha256:00"}, "docs": [{"type": "Student", "id": "g", "seq": 1, "revisions": [{"rev": "18446744073709551615-ab", "version": 5, "body": {}}]}]}"#.to_owned()),
        Just(r#"{"seq": 3}"#.to_owned()),
        Just(format!("{}{}", "[".repeat(200), "]".repeat(200))),
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Requests made of the API's own vocabulary, well formed and not, with every token and
    /// none: the harness's promises hold for each.
    #[test]
    fn generated_requests_pass_the_harness(
        method in method(),
        target in target(),
        headers in proptest::collection::vec(header(), 0..6),
        body in body(),
    ) {
        let mut text = format!("{method} {target}\n");
        for h in &headers {
            text.push_str(h);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&body);
        harness::http(text.as_bytes());
    }
}
