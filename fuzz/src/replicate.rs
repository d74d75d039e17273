//! The replication target's fuzzing harness: a batch from anywhere, applied to a real store.
//!
//! [`replicate`] reads the bytes a fuzzer hands it as a `POST /replication/apply` body
//! ([`ApplyRequest`]) and applies it the way a node does ([`apply_batch`]), to a redb
//! [`Store`] over the todo example's schema set (todo@1..3), then reads the written documents
//! back out as a source would ([`changes_batch`]). It panics only when the target side breaks
//! a promise:
//!
//! - nothing panics, whatever the batch;
//! - a refused batch is refused as the source's fault (never as the node's: a node error
//!   tells the replicator to retry forever), and writes nothing, not even its checkpoint;
//! - an accepted batch answers once per revision sent, appends one feed entry per revision
//!   written, and stores its checkpoint;
//! - applying an accepted batch again writes nothing: every revision is `alreadyKnown`,
//!   `refused` or `forbidden` the second time;
//! - what the batch wrote is on the feed, and the target serves it as a source: read back and
//!   applied to the same store, every revision is already known.
//!
//! The foreign-version path needs a source that knows more than the target: the "source" set
//! is todo@1..4, its manifest already loaded in the [`SourceSets`] cache, as on a node that has
//! replicated from it before. A fuzzer cannot compute SHA-256, so two placeholders stand for
//! the hashes in `source.manifest`: [`TARGET`] (the target's own manifest) and [`SOURCE`]
//! (the source set's). `source.schema` set to the string [`SOURCE`] is the source's manifest
//! itself (loaded afresh, not from the cache). Any other `source.schema` is also applied under
//! its own hash, so that arbitrary JSON reaches the manifest loader and, if it loads, becomes
//! the schema set the batch is translated through.
//!
//! The store is made once per process (the fuzzer runs millions of inputs) and keeps what
//! earlier inputs wrote, as a long-running node does; every property above holds whatever the
//! store already holds. This file is a module of the `mutatis-fuzz` crate (the cargo-fuzz
//! target `replicate` calls it) and is also compiled into
//! `crates/mutatis-replication/tests/fuzz_smoke.rs` with `#[path]`, so every `cargo test` runs
//! the same checks over generated batches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use mutatis_replication::target::read_checkpoint;
use mutatis_replication::wire::is_request_error;
use mutatis_replication::{
    apply_batch, changes_batch, manifest_hash, ApplyError, ApplyRequest, ApplyResponse,
    ChangesRequest, Outcome, SourceSets, MAX_BATCH,
};
use mutatis_schema::SchemaSet;
use mutatis_store::{RedbBackend, RedbOptions, Store};
use serde_json::Value;

/// In `source.manifest`: the target's own manifest hash.
pub const TARGET: &str = "@target";
/// In `source.manifest`: the source set's manifest hash. In `source.schema` (as a string):
/// the source set's manifest.
pub const SOURCE: &str = "@source";

/// The node id the target answers with.
pub const NODE_ID: &str = "fuzz-target";

const TODO_SETTINGS: &str = include_str!("../../examples/todo/mutatis.yaml");
const TODO_TYPE: &str = include_str!("../../examples/todo/types/todo.yaml");

/// The source's release: todo@4 adds an optional due date, which todo@3 cannot hold (so a v4
/// document with one is carried, dropped or refused on the target, as the policy says).
const SOURCE_SETTINGS: &str = "name: todo-app
releases:
  - {name: \"5\", types: {todo: 3}, status: deprecated, sunset: 2027-03-01}
  - {name: \"6\", types: {todo: 4}, status: current}
storage:
  todo: {version: 4, strategy: eager}
";
const SOURCE_V4: &str = "
  4:
    description: Items can have a due date.
    lens:
      - add: {name: due, type: string, required: false}
";

/// The store and schema sets every input runs against.
pub struct Fixture {
    /// The target node's store: todo@1..3, stored at 3.
    pub store: Store<RedbBackend>,
    /// The target's manifest hash.
    pub target_hash: String,
    /// The source set's manifest.
    pub source_manifest: Value,
    /// Its hash.
    pub source_hash: String,
    /// The node's cache of source sets, holding the source set's.
    pub sets: SourceSets,
    /// Held while a batch is checked: the checks read the feed the batch appended to, so
    /// batches run one at a time (the test suite runs its tests on several threads).
    one_at_a_time: Mutex<()>,
}

/// The target's schema set: the todo example as it is checked in.
pub fn target_set() -> SchemaSet {
    load_set(TODO_SETTINGS, TODO_TYPE.to_owned())
}

/// The source's schema set: the todo example and one version more.
pub fn source_set() -> SchemaSet {
    load_set(SOURCE_SETTINGS, format!("{TODO_TYPE}{SOURCE_V4}"))
}

fn load_set(settings: &str, todo: String) -> SchemaSet {
    SchemaSet::from_sources(vec![
        (PathBuf::from("mutatis.yaml"), settings.to_owned()),
        (PathBuf::from("types/todo.yaml"), todo),
    ])
    .unwrap_or_else(|e| panic!("the fuzzing schema set does not load: {e}"))
}

/// The fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("mutatis-fuzz-replicate-{}", std::process::id()));
    // A directory left by an earlier process with this id is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let backend = RedbBackend::open(dir.join("target.redb"), RedbOptions::default())
        .unwrap_or_else(|e| panic!("opening a store in {}: {e}", dir.display()));
    // redb keeps working on the open file; unlinking it now leaves nothing behind when the
    // fuzzer exits or is killed (on systems that refuse to unlink an open file, it stays).
    let _ = std::fs::remove_dir_all(&dir);
    let target = Arc::new(target_set());
    let target_hash = manifest_hash(&target.manifest());
    let source = source_set();
    let source_manifest = source.manifest();
    let source_hash = manifest_hash(&source_manifest);
    let sets = SourceSets::default();
    // As a node that has replicated from the source before: its set is cached.
    if let Err(e) = sets.load(&source_hash, &source_manifest) {
        panic!("the source manifest does not load back: {e}");
    }
    Fixture {
        store: Store::new(backend, target),
        target_hash,
        source_manifest,
        source_hash,
        sets,
        one_at_a_time: Mutex::new(()),
    }
}

/// Write access on the target: a document whose local access data says `"locked": true`
/// may not be written, nor may a revision that says `"deny": true`. (A revision may lock
/// a new document, so later batches meet a locked one.)
pub fn may_write(local: Option<&Value>, incoming: &Value) -> bool {
    let flag = |access: &Value, name: &str| access.get(name) == Some(&Value::Bool(true));
    !local.is_some_and(|l| flag(l, "locked")) && !flag(incoming, "deny")
}

/// Read access on the target as a source: `"hidden": true` hides a document.
pub fn may_read(access: &Value) -> bool {
    access.get("hidden") != Some(&Value::Bool(true))
}

/// Which source-set cache a prepared request is applied with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// The node's, which holds the source set's manifest.
    Node,
    /// A new, empty one: the manifest the request sends is loaded.
    Fresh,
}

/// `replicate` target: arbitrary bytes, read as an [`ApplyRequest`] when they are one.
pub fn replicate(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<ApplyRequest>(data) else {
        return;
    };
    check_wire(&req);
    let fx = fixture();
    for (req, cache) in prepare(fx, req) {
        let fresh;
        let sets = match cache {
            Cache::Node => &fx.sets,
            Cache::Fresh => {
                fresh = SourceSets::default();
                &fresh
            }
        };
        check_apply(fx, sets, &req);
    }
}

/// The requests an input stands for, with the placeholders ([`TARGET`], [`SOURCE`]) replaced:
/// the request itself, and for one that sends a manifest of its own, the same under that
/// manifest's hash.
pub fn prepare(fx: &Fixture, mut req: ApplyRequest) -> Vec<(ApplyRequest, Cache)> {
    match req.source.manifest.as_str() {
        TARGET => req.source.manifest.clone_from(&fx.target_hash),
        SOURCE => req.source.manifest.clone_from(&fx.source_hash),
        _ => {}
    }
    match &req.source.schema {
        None => vec![(req, Cache::Node)],
        Some(Value::String(s)) if s == SOURCE => {
            // The source's manifest, sent along to a node that has not cached it.
            req.source.schema = Some(fx.source_manifest.clone());
            vec![(req, Cache::Fresh)]
        }
        Some(schema) => {
            // As sent (under a hash that rarely matches: refused, unless the cache answers
            // first), then under its own hash, so the manifest is loaded and used.
            let mut own = req.clone();
            own.source.manifest = manifest_hash(schema);
            vec![(req, Cache::Node), (own, Cache::Fresh)]
        }
    }
}

/// A request reads back from its own wire form unchanged (what a source sends is what the
/// target reads).
fn check_wire(req: &ApplyRequest) {
    let text = match serde_json::to_string(req) {
        Ok(t) => t,
        Err(e) => panic!("an apply request does not serialize: {e}"),
    };
    match serde_json::from_str::<ApplyRequest>(&text) {
        Ok(back) => assert_eq!(
            &back, req,
            "an apply request reads back differently: {text}"
        ),
        Err(e) => panic!("an apply request's wire form {text} does not read back: {e}"),
    }
}

/// How many revisions a request sends.
fn revisions(req: &ApplyRequest) -> usize {
    req.docs.iter().map(|d| d.revisions.len()).sum()
}

/// Whether an outcome wrote the document (and appended it to the feed).
fn written(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Stored | Outcome::FastForward | Outcome::Conflict
    )
}

/// Apply `req` twice to the fixture's store and check the target side's promises.
pub fn check_apply(fx: &Fixture, sets: &SourceSets, req: &ApplyRequest) {
    // A panic in another check leaves the lock poisoned; the store is still consistent.
    let _turn = fx
        .one_at_a_time
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let store = &fx.store;
    let before = last_seq(store);
    let checkpoint_before = req.checkpoint.as_ref().map(|c| checkpoint(store, &c.id));
    let first = apply_batch(store, NODE_ID, &fx.target_hash, sets, req, Some(&may_write));
    let response = match first {
        Ok(r) => r,
        Err(e) => {
            check_refusal(&e, req, sets);
            assert_eq!(last_seq(store), before, "a refused batch wrote to the feed");
            if let (Some(c), Some(was)) = (&req.checkpoint, checkpoint_before) {
                assert_eq!(
                    checkpoint(store, &c.id),
                    was,
                    "a refused batch moved checkpoint {:?}",
                    c.id
                );
            }
            return;
        }
    };
    check_response(req, &response);
    let writes = response
        .results
        .iter()
        .filter(|r| written(r.outcome))
        .count();
    let after = last_seq(store);
    assert_eq!(
        after - before,
        writes as u64,
        "the feed grew by {} for {writes} written revisions",
        after - before
    );
    if let Some(c) = &req.checkpoint {
        assert_eq!(
            checkpoint(store, &c.id),
            Some(c.seq),
            "an applied batch did not store its checkpoint {:?}",
            c.id
        );
    }
    check_served(fx, req, &response, before);

    // Idempotence: the same batch again writes nothing.
    let again = match apply_batch(store, NODE_ID, &fx.target_hash, sets, req, Some(&may_write)) {
        Ok(r) => r,
        Err(e) => panic!("a batch applied once is refused the second time: {e}"),
    };
    check_response(req, &again);
    for r in &again.results {
        assert!(
            matches!(
                r.outcome,
                Outcome::AlreadyKnown | Outcome::Refused | Outcome::Forbidden
            ),
            "{} {:?} rev {}: {:?} when applied a second time (first: {:?})",
            r.type_name,
            r.id,
            r.rev,
            r.outcome,
            response
                .results
                .iter()
                .filter(|f| f.type_name == r.type_name && f.id == r.id && f.rev == r.rev)
                .map(|f| f.outcome)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        last_seq(store),
        after,
        "a batch applied a second time wrote to the feed"
    );
}

/// A refused batch is the source's fault, and says why.
fn check_refusal(e: &ApplyError, req: &ApplyRequest, sets: &SourceSets) {
    assert!(
        !e.to_string().is_empty(),
        "an apply error renders empty: {e:?}"
    );
    match e {
        ApplyError::ManifestRequired { manifest, .. } => {
            assert!(
                req.source.schema.is_none(),
                "the manifest was sent and asked for again: {e}"
            );
            assert!(
                sets.get(manifest).is_none(),
                "the manifest is cached and asked for: {e}"
            );
        }
        ApplyError::BadManifest(_) => assert!(
            req.source.schema.is_some(),
            "no manifest was sent, yet it is called unusable: {e}"
        ),
        ApplyError::Store(se) => assert!(
            is_request_error(se),
            "a batch is refused as the node's fault (a replicator would retry it forever): {se}"
        ),
    }
}

/// An answer: one result per revision sent, for the revisions sent, and its wire form reads
/// back unchanged.
fn check_response(req: &ApplyRequest, response: &ApplyResponse) {
    assert_eq!(response.node_id, NODE_ID);
    assert_eq!(
        response.results.len(),
        revisions(req),
        "{} results for {} revisions",
        response.results.len(),
        revisions(req)
    );
    // The same revisions, as a multiset (forbidden documents are answered after the others).
    let mut sent: BTreeMap<(&str, &str, String), usize> = BTreeMap::new();
    for d in &req.docs {
        for r in &d.revisions {
            *sent
                .entry((d.type_name.as_str(), d.id.as_str(), r.rev.to_string()))
                .or_default() += 1;
        }
    }
    for r in &response.results {
        let key = (r.type_name.as_str(), r.id.as_str(), r.rev.to_string());
        match sent.get_mut(&key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => panic!("a result for a revision not sent (or answered twice): {key:?}"),
        }
        assert_eq!(
            r.winner.is_some(),
            r.outcome == Outcome::Conflict,
            "{key:?}: {:?} with winner {:?}",
            r.outcome,
            r.winner
        );
    }
    let text = match serde_json::to_string(response) {
        Ok(t) => t,
        Err(e) => panic!("an apply response does not serialize: {e}"),
    };
    match serde_json::from_str::<ApplyResponse>(&text) {
        Ok(back) => assert_eq!(&back, response, "an apply response reads back differently"),
        Err(e) => panic!("an apply response's wire form {text} does not read back: {e}"),
    }
}

/// What a batch wrote is on the feed after `before`, and the target serves it as a source:
/// read back and applied to the same store under its own manifest, it is all known.
fn check_served(fx: &Fixture, req: &ApplyRequest, response: &ApplyResponse, before: u64) {
    let store = &fx.store;
    let wrote: std::collections::BTreeSet<(&str, &str)> = response
        .results
        .iter()
        .filter(|r| written(r.outcome))
        .map(|r| (r.type_name.as_str(), r.id.as_str()))
        .collect();
    let changes = ChangesRequest {
        since: before,
        limit: MAX_BATCH,
        ..ChangesRequest::default()
    };
    let batch = match changes_batch(store, NODE_ID, &fx.target_hash, &changes, &may_read) {
        Ok(b) => b,
        Err(e) => panic!("the target cannot serve what it just stored: {e}"),
    };
    // A batch reads at most MAX_BATCH feed entries; a larger write is read in part.
    if response
        .results
        .iter()
        .filter(|r| written(r.outcome))
        .count()
        <= MAX_BATCH
    {
        assert_eq!(
            batch.docs.len() as u64 + batch.filtered,
            wrote.len() as u64,
            "the feed after the batch does not hold the {} documents it wrote",
            wrote.len()
        );
    }
    for d in &batch.docs {
        assert!(
            wrote.contains(&(d.type_name.as_str(), d.id.as_str())),
            "{} {:?} is on the feed but the batch did not write it",
            d.type_name,
            d.id
        );
    }
    if batch.docs.is_empty() {
        return;
    }
    let echo = ApplyRequest {
        source: mutatis_replication::SourceRef {
            node_id: NODE_ID.to_owned(),
            manifest: fx.target_hash.clone(),
            schema: None,
        },
        policy: req.policy,
        checkpoint: None,
        docs: batch.docs,
    };
    let seq = last_seq(store);
    match apply_batch(store, NODE_ID, &fx.target_hash, &fx.sets, &echo, None) {
        Ok(r) => {
            for result in &r.results {
                assert_eq!(
                    result.outcome,
                    Outcome::AlreadyKnown,
                    "{} {:?} rev {} served by the target is not known to it",
                    result.type_name,
                    result.id,
                    result.rev
                );
            }
        }
        Err(e) => panic!(
            "the target refuses what it serves: {e}\n{}",
            serde_json::to_string(&echo).unwrap_or_default()
        ),
    }
    assert_eq!(
        last_seq(store),
        seq,
        "re-applying the target's own feed wrote"
    );
}

fn last_seq(store: &Store<RedbBackend>) -> u64 {
    store
        .last_seq()
        .unwrap_or_else(|e| panic!("reading the feed head: {e}"))
}

fn checkpoint(store: &Store<RedbBackend>, id: &str) -> Option<u64> {
    read_checkpoint(store, id)
        .unwrap_or_else(|e| panic!("reading checkpoint {id:?}: {e}"))
        .map(|c| c.seq)
}

// ---------------------------------------------------------------------------------------------
// Structure-aware mutation

/// Mutate an input that is JSON as JSON: replace, add, drop or copy one node, from a palette
/// of the wire format's keys and values (revs of one small rev tree, versions, bodies of each
/// todo version, access data, placeholders). Byte-level mutation of JSON mostly yields text
/// that no longer parses, so on its own the fuzzer spends its time in the JSON reader's
/// error paths; this keeps it among batches. Writes the result into `data` and returns its
/// length; `None` when the input is not JSON or the result would not fit in `max_size` (the
/// caller falls back to byte-level mutation).
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> Option<usize> {
    let mut value: Value = serde_json::from_slice(data.get(..size)?).ok()?;
    let mut rng = Rng(u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let steps = 1 + rng.below(3);
    for _ in 0..steps {
        mutate_once(&mut value, &mut rng);
    }
    let bytes = serde_json::to_vec(&value).ok()?;
    if bytes.len() > max_size || bytes.len() > data.len() {
        return None;
    }
    data[..bytes.len()].copy_from_slice(&bytes);
    Some(bytes.len())
}

/// A small deterministic generator (xorshift64*): the mutation is a function of libFuzzer's
/// seed, so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: [&str; 24] = [
    "rev",
    "history",
    "version",
    "deleted",
    "body",
    "access",
    "carry",
    "revisions",
    "type",
    "id",
    "seq",
    "schema",
    "manifest",
    "checkpoint",
    "policy",
    "title",
    "done",
    "status",
    "important",
    "due",
    "locked",
    "hidden",
    "deny",
    "storage",
];

fn palette(rng: &mut Rng) -> Value {
    let texts = [
        "1-a",
        "2-ab",
        "2-aa",
        "3-aba",
        "3-abb",
        "4-abab",
        "1-b",
        "2-ba",
        "0-a",
        "1-",
        "x",
        "@source",
        "@target",
        "todo",
        "note",
        "carry",
        "lossy",
        "refuse",
        "open",
        "done",
        "started",
        "",
        "\u{1}",
        "2027-01-10",
    ];
    match rng.below(12) {
        0..=3 => Value::from(*rng.pick(&texts)),
        4 => Value::from(rng.below(6) as u64),
        5 => rng
            .pick(&[
                Value::Null,
                Value::Bool(true),
                Value::Bool(false),
                Value::from(-1),
                Value::from(u64::MAX),
                Value::from(1.5),
            ])
            .clone(),
        6 => {
            // A history: the ancestors of a rev of the small tree, or the newest few of them.
            let path = ["a", "b", "a", "b"];
            let g = 1 + rng.below(4);
            let keep = 1 + rng.below(g);
            Value::Array(
                (1..g)
                    .rev()
                    .take(keep)
                    .map(|k| Value::from(format!("{k}-{}", path[..k].concat())))
                    .collect(),
            )
        }
        7 => rng
            .pick(&[
                serde_json::json!({"title": "x", "done": true}),
                serde_json::json!({"title": "x", "done": false, "important": true}),
                serde_json::json!({"title": "x", "status": "started", "important": false}),
                serde_json::json!({"title": "x", "status": "open", "important": true, "due": "2027-01-10"}),
            ])
            .clone(),
        8 => rng
            .pick(&[
                serde_json::json!({"locked": true}),
                serde_json::json!({"hidden": true}),
                serde_json::json!({"deny": true}),
                serde_json::json!([{"version": 4, "body": {"title": "x", "status": "open", "important": false, "due": "soon"}}]),
            ])
            .clone(),
        9 => serde_json::json!({}),
        10 => serde_json::json!([]),
        _ => Value::from(*rng.pick(&KEYS)),
    }
}

/// Every JSON pointer into a value, its root included.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(c, format!("{at}/{key}"), out);
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

fn mutate_once(value: &mut Value, rng: &mut Rng) {
    let all = pointers(value);
    let target = rng.pick(&all).clone();
    let donor = value
        .pointer(rng.pick(&all).as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let Some(node) = value.pointer_mut(&target) else {
        return;
    };
    match (rng.below(6), node) {
        // Copy a node from elsewhere in the input (a revision into another document, …).
        (0, node) => *node = donor,
        (1, Value::Array(items)) if !items.is_empty() => {
            let i = rng.below(items.len());
            let copy = items[i].clone();
            items.insert(rng.below(items.len() + 1), copy);
        }
        (2, Value::Array(items)) if !items.is_empty() => {
            items.remove(rng.below(items.len()));
        }
        (2, Value::Object(map)) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            map.remove(rng.pick(&keys));
        }
        (3, Value::Object(map)) => {
            let key = (*rng.pick(&KEYS)).to_owned();
            map.insert(key, palette(rng));
        }
        (3, Value::Array(items)) => items.push(palette(rng)),
        (_, node) => *node = palette(rng),
    }
}
