//! Replication between stores in this process, through [`LocalPeer`]s: the loss policies
//! across nodes that know different versions, carried fields coming back, checkpoints.
//! (Over HTTP, between real processes, in `crates/mutatis/tests/replicate_*.rs`.)

use std::path::PathBuf;
use std::sync::Arc;

use mutatis_replication::{replicate, LocalPeer, Options, Outcome, Progress};
use mutatis_schema::SchemaSet;
use mutatis_store::{LossPolicy, RedbBackend, Store};
use serde_json::{json, Value};

/// `note` up to `max` of: v1 `{title}`, v2 adds `tags`, v3 adds `priority`.
fn note_set(max: u32) -> Arc<SchemaSet> {
    let mut ty = String::from(
        "type: note
versions:
  1:
    schema:
      type: object
      properties:
        title: {type: string}
      required: [title]
      additionalProperties: false
",
    );
    if max >= 2 {
        ty.push_str(
            "  2:
    lens:
      - add: {name: tags, type: array, items: {type: string}, required: false}
",
        );
    }
    if max >= 3 {
        ty.push_str(
            "  3:
    lens:
      - add: {name: priority, type: integer, required: false}
",
        );
    }
    let settings = format!(
        "name: notes
releases:
  - {{name: \"r{max}\", types: {{note: {max}}}, status: current}}
storage:
  note: {{version: {max}, strategy: eager}}
"
    );
    Arc::new(
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings),
            (PathBuf::from("types/note.yaml"), ty),
        ])
        .expect("the note set loads"),
    )
}

struct Node {
    peer: LocalPeer<RedbBackend>,
    _dir: tempfile::TempDir,
}

fn node(name: &str, max: u32) -> Node {
    let dir = tempfile::tempdir().expect("a temp dir");
    let backend = RedbBackend::open(
        dir.path().join("n.redb"),
        mutatis_store::RedbOptions::default(),
    )
    .expect("a redb file");
    let store = Arc::new(Store::new(backend, note_set(max)));
    Node {
        peer: LocalPeer::new(store, name, name),
        _dir: dir,
    }
}

impl Node {
    fn store(&self) -> &Store<RedbBackend> {
        self.peer.store()
    }
    fn get(&self, id: &str, version: u32) -> Option<(String, Value)> {
        self.store()
            .get("note", id, version)
            .expect("a read")
            .map(|d| (d.rev.to_string(), d.body))
    }
}

async fn run(from: &Node, to: &Node, policy: LossPolicy) -> Progress {
    let opts = Options {
        policy,
        batch_size: 2,
        ..Options::default()
    };
    replicate(&from.peer, &to.peer, &opts, |_| {})
        .await
        .expect("the replication finishes")
}

fn full() -> Value {
    json!({"title": "plan", "tags": ["home", "urgent"], "priority": 2})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_what_an_older_node_keeps() {
    let a = node("a", 3);
    let w = a.store().put("note", "n1", 3, &full(), None).unwrap();
    // Nothing to lose: stored under every policy.
    a.store()
        .put("note", "n2", 3, &json!({"title": "plain"}), None)
        .unwrap();

    // refuse: not stored, reported with what the v1 node cannot hold.
    let refusing = node("b-refuse", 1);
    let p = run(&a, &refusing, LossPolicy::Refuse).await;
    assert_eq!((p.tally.refused, p.tally.stored), (1, 1));
    assert_eq!(refusing.get("n1", 1), None);
    let reported = &p.tally.not_stored[0];
    assert_eq!(
        (reported.id.as_str(), reported.outcome),
        ("n1", Outcome::Refused)
    );
    assert_eq!(
        reported.lost,
        vec!["/tags".to_owned(), "/priority".to_owned()]
    );

    // lossy: stored without them, counted; they do not come back through this node.
    let lossy = node("b-lossy", 1);
    let p = run(&a, &lossy, LossPolicy::Lossy).await;
    assert_eq!((p.tally.lossy, p.tally.stored), (1, 2));
    assert_eq!(
        lossy.get("n1", 1),
        Some((w.rev.to_string(), json!({"title": "plan"})))
    );
    let after_lossy = node("c-lossy", 3);
    run(&lossy, &after_lossy, LossPolicy::Carry).await;
    assert_eq!(
        after_lossy.get("n1", 3).unwrap().1,
        json!({"title": "plan"})
    );

    // carry: stored; the v1 body is what v1 holds; a v3 node gets the document back whole.
    let carrying = node("b-carry", 1);
    let p = run(&a, &carrying, LossPolicy::Carry).await;
    assert_eq!((p.tally.carried, p.tally.stored), (1, 2));
    assert_eq!(carrying.get("n1", 1).unwrap().1, json!({"title": "plan"}));
    let back = node("c-carry", 3);
    run(&carrying, &back, LossPolicy::Carry).await;
    assert_eq!(back.get("n1", 3), Some((w.rev.to_string(), full())));
    assert_eq!(
        serde_json::to_vec(&back.get("n1", 3).unwrap().1).unwrap(),
        serde_json::to_vec(&a.get("n1", 3).unwrap().1).unwrap(),
        "byte-identical after passing through a v1 node"
    );

    // A v2 node in between gets the v2 field back, and passes the v3 one on.
    let middle = node("d-v2", 2);
    run(&carrying, &middle, LossPolicy::Carry).await;
    assert_eq!(
        middle.get("n1", 2).unwrap().1,
        json!({"title": "plan", "tags": ["home", "urgent"]})
    );
    let last = node("e-v3", 3);
    run(&middle, &last, LossPolicy::Carry).await;
    assert_eq!(last.get("n1", 3).unwrap().1, full());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_nodes_edit_keeps_what_it_cannot_see() {
    let a = node("a", 3);
    a.store().put("note", "n1", 3, &full(), None).unwrap();
    let b = node("b", 1);
    run(&a, &b, LossPolicy::Carry).await;
    let (rev, _) = b.get("n1", 1).unwrap();
    b.store()
        .put(
            "note",
            "n1",
            1,
            &json!({"title": "plan B"}),
            Some(&rev.parse().unwrap()),
        )
        .unwrap();
    let p = run(&b, &a, LossPolicy::Carry).await;
    assert_eq!(p.tally.fast_forward, 1);
    assert_eq!(
        a.get("n1", 3).unwrap().1,
        json!({"title": "plan B", "tags": ["home", "urgent"], "priority": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_resumes_from_the_checkpoint() {
    let a = node("a", 3);
    for i in 0..7 {
        a.store()
            .put(
                "note",
                &format!("n{i}"),
                3,
                &json!({"title": format!("t{i}")}),
                None,
            )
            .unwrap();
    }
    let b = node("b", 3);
    let first = run(&a, &b, LossPolicy::Carry).await;
    assert_eq!((first.tally.stored, first.tally.batches), (7, 4));
    let again = run(&a, &b, LossPolicy::Carry).await;
    assert_eq!((again.tally.docs, again.tally.batches), (0, 0));
    assert_eq!(again.resumed_from, first.seq);
    a.store()
        .put("note", "late", 3, &json!({"title": "late"}), None)
        .unwrap();
    let third = run(&a, &b, LossPolicy::Carry).await;
    assert_eq!((third.tally.docs, third.tally.stored), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_converge_with_the_loser_listed() {
    let a = node("a", 3);
    let b = node("b", 3);
    let w = a
        .store()
        .put("note", "n", 3, &json!({"title": "x"}), None)
        .unwrap();
    run(&a, &b, LossPolicy::Carry).await;
    a.store()
        .put("note", "n", 3, &json!({"title": "from a"}), Some(&w.rev))
        .unwrap();
    b.store()
        .put("note", "n", 3, &json!({"title": "from b"}), Some(&w.rev))
        .unwrap();
    let ab = run(&a, &b, LossPolicy::Carry).await;
    let ba = run(&b, &a, LossPolicy::Carry).await;
    assert_eq!((ab.tally.conflicts, ba.tally.conflicts), (1, 1));
    assert_eq!(a.get("n", 3), b.get("n", 3), "the same winner on both");
    let losers = |n: &Node| -> Vec<String> {
        n.store()
            .conflicts("note", "n")
            .unwrap()
            .iter()
            .map(|l| l.rev.to_string())
            .collect()
    };
    assert_eq!(losers(&a), losers(&b));
    assert_eq!(losers(&a).len(), 1);
}
