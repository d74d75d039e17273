//! The fuzzing harness of mutatis-lens: pure functions from bytes to checks. (The replication
//! target's harness is the `replicate` module, the HTTP request path's the `http` module.)
//!
//! Each function takes whatever bytes a fuzzer hands it and panics only when the lens engine
//! breaks a promise: a panic inside the engine (nothing may panic on any input), or two paths
//! that must agree and don't. Inputs the engine rejects with an error are fine; the error is
//! rendered, so its `Display` is exercised too.
//!
//! This file is the library of the `mutatis-fuzz` crate (the cargo-fuzz targets call it) and is
//! also compiled into `crates/mutatis-lens/tests/fuzz_smoke.rs` with `#[path]`, so that the same
//! checks run over generated inputs on every `cargo test`, without nightly or cargo-fuzz.

use mutatis_lens::{Direction, Lens, LensError, Params, Plan, Transforms};
use serde_json::{json, Value};

/// The byte that separates the lens from the document in a `translate` input. NUL cannot occur
/// in a useful lens text or JSON document, so a seed is simply `lens NUL document`.
pub const SEPARATOR: u8 = 0;

/// The transforms fuzzed lenses may name: one that inverts itself, and one that always fails
/// (so the error path of a registered transform is reached as well).
pub fn transforms() -> Transforms {
    let mut t = Transforms::new();
    t.register_fn(
        "negate",
        |v: &Value, _: &Value| negate(v),
        |v: &Value, _: &Value| negate(v),
    );
    t.register_fn(
        "reject",
        |_: &Value, _: &Value| Err("rejected by the fuzzing transform".into()),
        |_: &Value, _: &Value| Err("rejected by the fuzzing transform".into()),
    );
    t
}

fn negate(v: &Value) -> Result<Value, String> {
    match v.as_i64().and_then(i64::checked_neg) {
        Some(n) => Ok(Value::from(n)),
        None => Err(format!("cannot negate {v}")),
    }
}

/// The translation parameters fuzzed expressions can read (`referenceYear - value`, …).
pub fn params() -> Params {
    let mut p = Params::new();
    p.insert("referenceYear".into(), json!(2026));
    p.insert("offset".into(), json!(7));
    p
}

/// Exercise an error's rendering: formatting must not panic either.
fn render(e: &LensError) {
    let text = e.to_string();
    assert!(
        !text.is_empty(),
        "an error rendered as an empty message: {e:?}"
    );
}

/// `lens_file` target: arbitrary bytes as a lens file.
///
/// Checks that parsing never panics, that a parsed lens's canonical JSON form parses back to the
/// same lens (from the value and from its text), and that compiling it never panics and agrees
/// between the two directions.
pub fn lens_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_lens_text(text);
    }
}

/// The checks of [`lens_file`] on a text; returns the lens when the text is one.
pub fn check_lens_text(text: &str) -> Option<Lens> {
    let lens = match Lens::from_file_str(text) {
        Ok(lens) => lens,
        Err(e) => {
            render(&e);
            return None;
        }
    };
    // What manifests publish (`to_json`) must load back as the very same lens.
    let canonical = lens.to_json();
    match Lens::from_ops_json(&canonical, "") {
        Ok(again) => assert_eq!(
            again, lens,
            "canonical form {canonical} reads back differently"
        ),
        Err(e) => panic!("canonical form {canonical} of a parsed lens does not parse: {e}"),
    }
    let file = json!({ "lens": canonical }).to_string();
    match Lens::from_file_str(&file) {
        Ok(again) => assert_eq!(again, lens, "lens file {file} reads back differently"),
        Err(e) => panic!("lens file {file} written from a parsed lens does not parse: {e}"),
    }
    let transforms = transforms();
    let forward = Plan::compile(&lens, Direction::Forward, &transforms);
    let backward = Plan::compile(&lens, Direction::Backward, &transforms);
    match (&forward, &backward) {
        (Ok(f), Ok(b)) => {
            // Compiling backward and reversing a forward plan are the same plan.
            assert_eq!(
                f.reverse().ops(),
                b.ops(),
                "reverse() differs from compiling backward"
            );
            assert_eq!(
                b.reverse().ops(),
                f.ops(),
                "reverse() differs from compiling forward"
            );
            let _ = f.touched_fields();
        }
        (Err(f), Err(b)) => {
            render(f);
            render(b);
        }
        // Both directions of every op are compiled up front, so one cannot fail alone.
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
            panic!("the lens compiles in one direction only: {e}")
        }
    }
    Some(lens)
}

/// `translate` target: bytes `lens SEPARATOR document` (without a separator, the document is
/// `{}`). The lens is compiled both ways and each plan runs over the document.
pub fn translate(data: &[u8]) {
    let (lens_bytes, doc) = match data.iter().position(|&b| b == SEPARATOR) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(text) = std::str::from_utf8(lens_bytes) else {
        return;
    };
    let Ok(lens) = Lens::from_file_str(text) else {
        return;
    };
    let (transforms, params) = (transforms(), params());
    for direction in [Direction::Forward, Direction::Backward] {
        if let Ok(plan) = Plan::compile(&lens, direction, &transforms) {
            check_translation(&plan, doc, &params);
        }
    }
}

/// Run one plan over one input by every path: raw bytes, parsed value, in place, and merged onto
/// stored documents. None may panic; the raw and parsed paths must agree on success and result.
pub fn check_translation(plan: &Plan, input: &[u8], params: &Params) {
    let mut raw_out = Vec::new();
    let raw = plan.translate_bytes(input, params, &mut raw_out);
    if let Err(e) = &raw {
        render(e);
    }
    // The parsed path needs a `Value`, read as mutatis reads documents: a number it cannot
    // hold exactly is refused there, and the raw path (which copies numbers as their bytes)
    // must refuse it too, even in a field the plan never reads.
    let doc = match mutatis_lens::json::from_slice(input) {
        Ok(doc) => doc,
        Err(e) => {
            assert!(
                raw.is_err(),
                "translate_bytes accepted a document the exact reader refuses ({e}): {}",
                String::from_utf8_lossy(input)
            );
            return;
        }
    };
    let parsed = plan.translate(&doc, params);
    match (&parsed, &raw) {
        (Ok(value), Ok(())) => {
            let via_bytes: Value = match serde_json::from_slice(&raw_out) {
                Ok(v) => v,
                Err(e) => panic!(
                    "translate_bytes wrote invalid JSON ({e}): {}",
                    String::from_utf8_lossy(&raw_out)
                ),
            };
            assert!(
                same_json(&via_bytes, value),
                "translate_bytes and translate disagree on {doc}:\n bytes: {via_bytes}\n value: {value}"
            );
        }
        (Err(e), Err(_)) => render(e),
        (Ok(_), Err(e)) => panic!("translate succeeded on {doc} but translate_bytes failed: {e}"),
        (Err(e), Ok(())) => panic!("translate_bytes succeeded on {doc} but translate failed: {e}"),
    }
    let mut in_place = doc.clone();
    let in_place_result = plan.translate_in_place(&mut in_place, params);
    if let Ok(value) = &parsed {
        assert!(
            in_place_result.is_ok(),
            "translate_in_place failed where translate did not"
        );
        assert_eq!(
            &in_place, value,
            "translate_in_place and translate disagree"
        );
    }
    // Conservation: merge onto stored documents, sensible ones and nonsense ones alike.
    let reverse = plan.reverse();
    let mut stored = vec![doc.clone(), Value::Null, json!({})];
    if let Ok(value) = parsed {
        if let Err(e) = reverse.translate_onto(&value, &doc, params) {
            render(&e);
        }
        if let Err(e) = reverse.translate(&value, params) {
            render(&e);
        }
        stored.push(value);
    }
    for s in &stored {
        if let Err(e) = plan.translate_onto(&doc, s, params) {
            render(&e);
        }
    }
}

/// JSON equality up to the last bit of a float. The raw path's output is read back with
/// serde_json, whose default float parser may land one unit in the last place away from the
/// value that was written (serde_json's `float_roundtrip` feature makes it exact); that is the
/// reader's rounding, not a disagreement between the two translation paths.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => {
                        x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                    }
                    _ => false,
                }
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// `patch` target: bytes `document SEPARATOR patch` (both JSON; without a separator the
/// document is `{}`). The RFC 6902 applier (what the server's PATCH and the client run) and the
/// patch translation must not panic on any input. Applying is a function of its inputs, and it
/// is all or nothing: a patch that fails leaves nothing behind, and one that succeeds can be
/// replayed with the same result. The patch is also translated through a small lens both
/// ways, and a translated patch that applies must apply to the translated document too.
pub fn patch(data: &[u8]) {
    let (doc_bytes, patch_bytes) = match data.iter().position(|&b| b == SEPARATOR) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{}"[..], data),
    };
    let (Ok(doc), Ok(patch)) = (
        serde_json::from_slice::<Value>(doc_bytes),
        serde_json::from_slice::<Value>(patch_bytes),
    ) else {
        return;
    };
    let first = mutatis_lens::apply_patch(&doc, &patch);
    let second = mutatis_lens::apply_patch(&doc, &patch);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert!(same_json(a, b), "applying the same patch twice differs"),
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "the same patch fails differently"
            );
            let _ = (a.index(), a.op(), a.pointer(), a.reason());
        }
        _ => panic!("the same patch succeeded once and failed once"),
    }

    let lens = r#"[{"rename": {"source": "a", "destination": "b"}},
                   {"in": {"name": "o", "lens": [{"rename": {"source": "x", "destination": "y"}}]}}]"#;
    let Ok(lens) = Lens::from_file_str(lens) else {
        panic!("the fixed lens parses")
    };
    let (transforms, params) = (transforms(), params());
    for direction in [Direction::Forward, Direction::Backward] {
        let Ok(plan) = Plan::compile(&lens, direction, &transforms) else {
            continue;
        };
        match plan.translate_patch(&patch, None) {
            Ok(translated) => {
                // Whatever the translation produced is a patch the applier reads without
                // panicking, on the translated document.
                if let Ok(moved) = plan.translate(&doc, &params) {
                    let _ = mutatis_lens::apply_patch(&moved, &translated);
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

// The replication and HTTP harnesses need crates the lens crate's test (which compiles this
// file with `#[path]`, under `cfg(test)`) does not have: they are modules of the fuzz crate
// only, and the replication and server crates' own `tests/fuzz_smoke.rs` compile them
// directly.
#[cfg(not(test))]
pub mod http;
#[cfg(not(test))]
pub mod replicate;
