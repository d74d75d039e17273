//! The replication target's fuzzing harness, run over generated batches on every `cargo test`.
//!
//! `fuzz/` holds the cargo-fuzz target `replicate`, which needs nightly compiler flags and
//! minutes of running. Its checks live in `fuzz/src/replicate.rs` as a plain function over
//! bytes; this test compiles that very file and feeds it the checked-in seeds, byte mutations
//! of them and batches built from the wire format (valid and not), so the target side's
//! promises (no panic, refusals are the source's fault and write nothing, one answer per
//! revision, idempotence, what is stored is served) are checked by every test run.

#[path = "../../../fuzz/src/replicate.rs"]
mod harness;

use std::path::PathBuf;
use std::sync::Arc;

use mutatis_replication::{apply_batch, ApplyError, ApplyRequest, Outcome, SourceSets};
use mutatis_store::{RedbBackend, RedbOptions, Store};
use proptest::prelude::*;
use serde_json::{json, Value};

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
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/replicate");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

/// A target of its own (not the harness's shared one), empty, with the node's cache of
/// source sets holding the source set's manifest.
struct Target {
    store: Store<RedbBackend>,
    sets: SourceSets,
    _dir: tempfile::TempDir,
}

fn target() -> Target {
    let dir = tempfile::tempdir().expect("a temp dir");
    let backend =
        RedbBackend::open(dir.path().join("t.redb"), RedbOptions::default()).expect("a redb file");
    let sets = SourceSets::default();
    let fx = harness::fixture();
    sets.load(&fx.source_hash, &fx.source_manifest)
        .expect("the source manifest loads");
    Target {
        store: Store::new(backend, Arc::new(harness::target_set())),
        sets,
        _dir: dir,
    }
}

/// What applying one prepared request did: each revision's outcome and what it lost, or why
/// the batch was refused.
type Applied = Result<Vec<(Outcome, Vec<String>)>, String>;

/// What one seed does to an empty target, per prepared request.
fn outcomes(bytes: &[u8]) -> Vec<Applied> {
    let req: ApplyRequest = serde_json::from_slice(bytes).expect("a seed is an ApplyRequest");
    let fx = harness::fixture();
    let t = target();
    harness::prepare(fx, req)
        .into_iter()
        .map(|(req, cache)| {
            let fresh = SourceSets::default();
            let sets = match cache {
                harness::Cache::Node => &t.sets,
                harness::Cache::Fresh => &fresh,
            };
            apply_batch(
                &t.store,
                harness::NODE_ID,
                &fx.target_hash,
                sets,
                &req,
                Some(&harness::may_write),
            )
            .map(|r| r.results.into_iter().map(|r| (r.outcome, r.lost)).collect())
            .map_err(|e| match e {
                ApplyError::ManifestRequired { .. } => "manifest required".to_owned(),
                ApplyError::BadManifest(m) => format!("bad manifest: {m}"),
                ApplyError::Store(e) => format!("store: {e}"),
            })
        })
        .collect()
}

/// Every seed passes the harness, and each reaches the path it is there for.
#[test]
fn seeds_pass_the_harness_and_reach_their_paths() {
    let seeds = seeds();
    assert!(
        (5..=12).contains(&seeds.len()),
        "{} replicate seeds",
        seeds.len()
    );
    for (name, bytes) in &seeds {
        harness::replicate(bytes);
        // A seed's outcomes on an empty target. `lost` is only looked at where it matters.
        let got = outcomes(bytes);
        let plain = |got: &[Applied]| -> Vec<Vec<Outcome>> {
            got.iter()
                .map(|r| match r {
                    Ok(o) => o.iter().map(|(o, _)| *o).collect(),
                    Err(e) => panic!("seed {name} is refused: {e}"),
                })
                .collect()
        };
        use Outcome::*;
        match name.as_str() {
            "plain-v3" => assert_eq!(plain(&got), [vec![Stored]]),
            "update-v1-v2" => assert_eq!(plain(&got), [vec![Stored, FastForward]]),
            "conflict-pair" => assert_eq!(plain(&got), [vec![Stored, Conflict]]),
            "delete" => assert_eq!(plain(&got), [vec![Stored, FastForward]]),
            "access" => assert_eq!(plain(&got), [vec![Stored, Forbidden]]),
            "carry-list" => assert_eq!(plain(&got), [vec![Stored]]),
            // A history cut short (3 names only 2): the target still knows 1 afterwards, so
            // the batch applied again is all known (the harness checks that).
            "short-history" => assert_eq!(plain(&got), [vec![Stored, AlreadyKnown, FastForward]]),
            // Through the cached source set: todo@3 cannot hold the due date.
            "v4-cached" => assert_eq!(
                got,
                [Ok(vec![(Refused, vec!["/due".to_owned()])])],
                "seed {name}"
            ),
            // The manifest sent along is loaded; the due date is dropped and reported.
            "v4-with-manifest" => assert_eq!(
                got,
                [Ok(vec![(Stored, vec!["/due".to_owned()])])],
                "seed {name}"
            ),
            "v4-no-manifest" => {
                assert_eq!(got, [Err("manifest required".to_owned())], "seed {name}")
            }
            // As sent the hash does not match; under its own hash the manifest loads and its
            // todo@4 document is handed over at todo@3.
            "arbitrary-schema" => {
                assert!(
                    matches!(&got[..], [Err(bad), Ok(o)]
                        if bad.starts_with("bad manifest") && o.len() == 1 && o[0].0 == Stored),
                    "seed {name}: {got:?}"
                );
            }
            other => panic!("seed {other} is not checked here: say what it is for"),
        }
    }
}

/// Byte-level damage to the seeds (what libFuzzer starts with): mostly no longer JSON or no
/// longer an `ApplyRequest`, sometimes a different one.
#[test]
fn mutated_seeds_pass_the_harness() {
    let seeds = seeds();
    let mut runner = proptest::test_runner::TestRunner::new(config(512));
    runner
        .run(
            &(
                0..seeds.len(),
                proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            ),
            |(seed, edits)| {
                let mut bytes = seeds[seed].1.clone();
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                harness::replicate(&bytes);
                Ok(())
            },
        )
        .expect("mutated seeds pass the harness");
}

/// The fuzz target's JSON-aware mutator over the seeds, a few mutations deep, on fixed
/// libFuzzer seeds (so the run is the same every time): its output is JSON, usually still an
/// `ApplyRequest`, and passes the harness.
#[test]
fn json_mutations_of_the_seeds_pass_the_harness() {
    let mut requests = 0;
    let mut runs = 0;
    for (_, seed) in seeds() {
        for start in 0..40u32 {
            let mut data = seed.clone();
            for step in 0..4u32 {
                let max_size = data.len() * 2 + 256;
                let mut buf = data.clone();
                buf.resize(max_size, 0);
                let Some(len) =
                    harness::mutate(&mut buf, data.len(), max_size, start * 7919 + step)
                else {
                    continue;
                };
                buf.truncate(len);
                assert!(
                    serde_json::from_slice::<Value>(&buf).is_ok(),
                    "the mutator wrote text that is not JSON: {}",
                    String::from_utf8_lossy(&buf)
                );
                if serde_json::from_slice::<ApplyRequest>(&buf).is_ok() {
                    requests += 1;
                }
                harness::replicate(&buf);
                runs += 1;
                data = buf;
            }
        }
    }
    assert!(
        requests * 10 > runs,
        "only {requests} of {runs} mutated seeds are apply requests: the mutator no longer keeps the fuzzer among batches"
    );
}

// ---------------------------------------------------------------------------------------------
// Batches built from the wire format

/// A rev and its history, from one rev tree per document: the rev of generation `g` on a
/// path of branch choices is `g-` and the first `g` choices (`a` or `b`, hex digits), so
/// every rev names its ancestors the same way in every batch, as revs from real nodes do.
/// Now and then a history is malformed (the batch is refused then).
///
/// Some histories are cut short (only the parent), as a source's bounded history is: the
/// target keeps the ancestors it knew of the leaf being replaced, so applying the batch again
/// still changes nothing.
fn rev_and_history() -> impl Strategy<Value = (String, Vec<String>)> {
    (1usize..5, "[ab]{4}").prop_flat_map(|(g, path)| {
        let rev = |k: usize| format!("{k}-{}", &path[..k]);
        let history: Vec<String> = (1..g).rev().map(rev).collect();
        prop_oneof![
            32 => Just((rev(g), history.clone())),
            8 => Just((rev(g), history.into_iter().take(1).collect())),
            1 => Just((rev(g), vec![rev(g)])),
            1 => "[0-9a-z-]{0,6}".prop_map(|r| (r, Vec::new())),
        ]
    })
}

fn status() -> impl Strategy<Value = Value> {
    prop::sample::select(vec!["open", "done", "started", ""]).prop_map(Value::from)
}

/// A body that fits `version` (todo@1..4), or not.
fn body(version: u32) -> BoxedStrategy<Value> {
    let title = prop::sample::select(vec!["milk", "", "é"]).prop_map(Value::from);
    let fitting = match version {
        1 => (title, any::<bool>())
            .prop_map(|(t, d)| json!({"title": t, "done": d}))
            .boxed(),
        2 => (title, any::<bool>(), any::<bool>())
            .prop_map(|(t, d, i)| json!({"title": t, "done": d, "important": i}))
            .boxed(),
        3 => (title, status(), any::<bool>())
            .prop_map(|(t, s, i)| json!({"title": t, "status": s, "important": i}))
            .boxed(),
        _ => (
            title,
            status(),
            any::<bool>(),
            prop::option::of("[0-9-]{0,10}"),
        )
            .prop_map(|(t, s, i, due)| {
                let mut b = json!({"title": t, "status": s, "important": i});
                if let Some(due) = due {
                    b["due"] = Value::from(due);
                }
                b
            })
            .boxed(),
    };
    prop_oneof![
        40 => fitting,
        1 => Just(json!({"title": 1})),
        1 => Just(json!({"title": "x", "done": true, "extra": null})),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// Access data the harness's checks read: a locked document refuses later writes for good,
/// so locking is rare.
fn access() -> impl Strategy<Value = Value> {
    prop_oneof![
        200 => Just(Value::Null),
        1 => Just(json!({"locked": true})),
        10 => Just(json!({"hidden": true})),
        5 => Just(json!({"deny": true})),
        10 => Just(json!({"owner": "ann"})),
    ]
}

/// Mostly versions the target knows, then the source's todo@4, now and then one nobody has.
fn version() -> impl Strategy<Value = u32> {
    prop_oneof![30 => 1u32..4, 8 => Just(4u32), 1 => Just(0u32), 1 => Just(5u32)]
}

fn revision() -> impl Strategy<Value = Value> {
    (version(), rev_and_history(), any::<bool>(), access()).prop_flat_map(
        |(version, (rev, history), deleted, access)| {
            let carry = prop::collection::vec(
                (2u32..5)
                    .prop_flat_map(|v| body(v).prop_map(move |b| json!({"version": v, "body": b}))),
                0..2,
            );
            (body(version), carry).prop_map(move |(body, carry)| {
                let mut r = json!({"rev": rev, "version": version, "body": body});
                if !history.is_empty() {
                    r["history"] = json!(history);
                }
                // A delete usually comes without a body; a few carry one anyway.
                if deleted {
                    r["deleted"] = Value::Bool(true);
                    if r["body"].is_object() && version % 2 == 0 {
                        r["body"] = Value::Null;
                    }
                }
                if !access.is_null() {
                    r["access"] = access.clone();
                }
                if !carry.is_empty() {
                    r["carry"] = Value::Array(carry);
                }
                r
            })
        },
    )
}

fn doc() -> impl Strategy<Value = Value> {
    (
        prop_oneof![40 => Just("todo"), 1 => Just("note")],
        prop_oneof![
            40 => "[a-p]",
            1 => Just(String::new()),
            1 => Just("x\u{1}".to_owned()),
        ],
        prop_oneof![1 => Just(0usize), 20 => 1usize..3]
            .prop_flat_map(|n| prop::collection::vec(revision(), n)),
        0u64..100,
    )
        .prop_map(|(ty, id, revisions, seq)| {
            json!({"type": ty, "id": id, "seq": seq, "revisions": revisions})
        })
}

/// A manifest sent along: the source's (as the placeholder, or edited so that it is a set
/// of its own, or broken), or some JSON.
fn schema() -> impl Strategy<Value = Option<Value>> {
    let manifest = harness::fixture().source_manifest.clone();
    prop_oneof![
        6 => Just(None),
        2 => Just(Some(Value::from(harness::SOURCE))),
        1 => Just(Some(manifest.clone())),
        1 => (any::<prop::sample::Index>(), prop::sample::select(vec![
                Value::Null, json!(5), json!("x"), json!({}), json!([])
            ]))
            .prop_map(move |(at, value)| {
                // Replace one node of the manifest: usually a set that does not load, now and
                // then one that does and differs.
                let mut edited = manifest.clone();
                let pointers = pointers(&edited);
                let p = &pointers[at.index(pointers.len())];
                if let Some(slot) = edited.pointer_mut(p) {
                    *slot = value;
                }
                Some(edited)
            }),
        1 => Just(Some(json!({"name": "other"}))),
    ]
}

/// Every JSON pointer into a value (its root included).
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    walk(
                        c,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    walk(c, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            harness::TARGET.to_owned(),
            harness::SOURCE.to_owned(),
            format!("sha256:{}", "0".repeat(64)),
        ]),
        schema(),
        prop::sample::select(vec!["carry", "lossy", "refuse"]),
        prop::option::of(("[a-c]{1,2}", 0u64..10)),
        prop::collection::vec(doc(), 1..4),
    )
        .prop_map(|(manifest, schema, policy, checkpoint, docs)| {
            let mut source = json!({"nodeId": "gen", "manifest": manifest});
            if let Some(schema) = schema {
                source["schema"] = schema;
            }
            let mut r = json!({"source": source, "policy": policy, "docs": docs});
            if let Some((id, seq)) = checkpoint {
                r["checkpoint"] = json!({"id": id, "seq": seq});
            }
            r
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// Batches of every shape keep the target side's promises, against a store that holds
    /// what the earlier cases wrote.
    #[test]
    fn generated_batches_keep_the_target_promises(req in request()) {
        let bytes = serde_json::to_vec(&req).expect("JSON serializes");
        harness::replicate(&bytes);
    }
}
