//! Property: however edits, deletes and replications interleave on three nodes, once every
//! node has replicated to every other, all hold the same documents: the same winning rev and
//! body, and the same conflict leaves.

use std::path::PathBuf;
use std::sync::Arc;

use mutatis_replication::{replicate, LocalPeer, Options};
use mutatis_schema::SchemaSet;
use mutatis_store::{LossPolicy, RedbBackend, RedbOptions, Store};
use proptest::prelude::*;
use serde_json::{json, Value};

const NODES: usize = 3;
const DOCS: usize = 3;

fn set() -> Arc<SchemaSet> {
    let ty = "type: note
versions:
  1:
    schema:
      type: object
      properties:
        title: {type: string}
      required: [title]
      additionalProperties: false
";
    let settings = "name: notes
releases:
  - {name: \"1\", types: {note: 1}, status: current}
storage:
  note: {version: 1, strategy: eager}
";
    Arc::new(
        SchemaSet::from_sources(vec![
            (PathBuf::from("mutatis.yaml"), settings.to_owned()),
            (PathBuf::from("types/note.yaml"), ty.to_owned()),
        ])
        .expect("the note set loads"),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Write { node: usize, doc: usize, title: u8 },
    Delete { node: usize, doc: usize },
    Replicate { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NODES, 0..DOCS, any::<u8>()).prop_map(|(node, doc, title)| Op::Write { node, doc, title }),
        1 => (0..NODES, 0..DOCS).prop_map(|(node, doc)| Op::Delete { node, doc }),
        3 => (0..NODES, 0..NODES).prop_map(|(from, to)| Op::Replicate { from, to }),
    ]
}

/// What a node holds of a document: winner rev, deleted, body, conflict revs.
type Held = Option<(String, bool, Value, Vec<String>)>;

fn held(store: &Store<RedbBackend>, id: &str) -> Held {
    let doc = store.replication_doc("note", id, 1).expect("a read")?;
    Some((
        doc.rev.to_string(),
        doc.deleted,
        doc.body,
        doc.conflicts.iter().map(|l| l.rev.to_string()).collect(),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_node_ends_with_the_same_documents(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let nodes: Vec<LocalPeer<RedbBackend>> = (0..NODES)
            .map(|i| {
                let backend = RedbBackend::open(dir.path().join(format!("{i}.redb")), RedbOptions::default())
                    .expect("a redb file");
                LocalPeer::new(Arc::new(Store::new(backend, set())), format!("n{i}"), format!("n{i}"))
            })
            .collect();
        let opts = Options { policy: LossPolicy::Carry, batch_size: 2, ..Options::default() };
        let sync = |from: usize, to: usize| {
            rt.block_on(replicate(&nodes[from], &nodes[to], &opts, |_| {}))
                .expect("a replication");
        };
        for op in &ops {
            match *op {
                Op::Write { node, doc, title } => {
                    let s = nodes[node].store();
                    let id = format!("d{doc}");
                    let rev = s.rev("note", &id).expect("a read");
                    s.put("note", &id, 1, &json!({"title": format!("t{title}")}), rev.as_ref())
                        .expect("a write");
                }
                Op::Delete { node, doc } => {
                    let s = nodes[node].store();
                    let id = format!("d{doc}");
                    if let Some(rev) = s.rev("note", &id).expect("a read") {
                        s.delete("note", &id, &rev).expect("a delete");
                    }
                }
                Op::Replicate { from, to } if from != to => sync(from, to),
                Op::Replicate { .. } => {}
            }
        }
        // Every node to every other, twice: the second round carries what the first brought.
        for _ in 0..2 {
            for from in 0..NODES {
                for to in 0..NODES {
                    if from != to {
                        sync(from, to);
                    }
                }
            }
        }
        for doc in 0..DOCS {
            let id = format!("d{doc}");
            let first = held(nodes[0].store(), &id);
            for n in &nodes[1..] {
                prop_assert_eq!(&held(n.store(), &id), &first, "document {}", id);
            }
        }
    }
}
