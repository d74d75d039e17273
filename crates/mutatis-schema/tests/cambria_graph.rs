//! Cambria's lens-graph cases (`graph`, `graphSchemas` in tests/conformance/cambria/cases.jsonl,
//! recorded from Cambria's own test suite) run through mutatis's version graph.
//!
//! Cambria names versions with strings and starts every graph at a root version `mu`; a
//! registration `{from, to, lens}` requires `from` to exist and adds `to`. The harness maps that
//! onto [`VersionGraph<String, Lens>`] directly: the graph is generic over the version key.
//!
//! One deliberate difference: Cambria silently ignores a second lens registered on an edge that
//! already has one (it keeps the first, "hope it's the same one!"); mutatis reports it as an
//! error, because two lenses between the same versions would make a translation depend on which
//! registration won. `a_second_lens_on_an_edge_is_an_error` tests that.

use std::path::PathBuf;

use mutatis_lens::{Direction, Lens, Plan, Transforms};
use mutatis_schema::{GraphError, VersionGraph};
use serde_json::Value;

fn cases(kinds: &[&str]) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/conformance/cambria/cases.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| kinds.contains(&c["kind"].as_str().unwrap_or("")))
        .collect()
}

/// Cambria's `initLensGraph` + `registerLens`, on mutatis's graph.
fn register(case: &Value) -> VersionGraph<String, Lens> {
    let mut graph = VersionGraph::new();
    graph.add_node("mu".to_owned());
    for reg in case["registrations"].as_array().unwrap() {
        let from = reg["from"].as_str().unwrap().to_owned();
        let to = reg["to"].as_str().unwrap().to_owned();
        assert!(
            graph.contains(&from),
            "{}: unknown schema {from}",
            case["id"]
        );
        let lens = Lens::from_ops_json(&reg["lens"], "").unwrap();
        graph.add_node(to.clone());
        graph.add_edge(from, to, lens).unwrap();
    }
    graph
}

/// The lens from `from` to `to`: the ops of every edge on the path, each edge walked forward
/// (its ops in order) or backward (reversed, as `Plan::compose` does).
fn lens_between(graph: &VersionGraph<String, Lens>, from: &str, to: &str) -> Plan {
    let steps = graph.path(&from.to_owned(), &to.to_owned()).unwrap();
    let labels: Vec<String> = steps
        .iter()
        .map(|s| format!("{}->{}", s.edge.from, s.edge.to))
        .collect();
    Plan::compose(
        steps
            .iter()
            .zip(&labels)
            .map(|(s, label)| (label.as_str(), &s.edge.payload, s.direction)),
        &Transforms::new(),
    )
    .unwrap()
}

#[test]
fn graph_schemas_cases_list_every_version() {
    let cases = cases(&["graphSchemas"]);
    assert_eq!(
        cases.len(),
        2,
        "the recorded suite has two graphSchemas cases"
    );
    for case in cases {
        let graph = register(&case);
        let names: Vec<Value> = graph
            .nodes()
            .iter()
            .map(|n| Value::from(n.as_str()))
            .collect();
        assert_eq!(Value::Array(names), case["expected"], "{}", case["id"]);
    }
}

#[test]
fn graph_cases_compose_the_lens_along_the_path() {
    let cases = cases(&["graph"]);
    assert_eq!(cases.len(), 1, "the recorded suite has one graph case");
    for case in cases {
        let graph = register(&case);
        let (from, to) = (case["from"].as_str().unwrap(), case["to"].as_str().unwrap());
        let plan = lens_between(&graph, from, to);
        assert!(plan.ops().iter().all(|d| d.direction == Direction::Forward));
        let ops: Vec<_> = plan.ops().iter().map(|d| d.op.clone()).collect();
        assert_eq!(Lens::new(ops).to_json(), case["expected"], "{}", case["id"]);
        // Cambria's own assertion spells ops as `{op: add, …}`; that form parses to the same.
        let asserted = &case["asserted"][0]["expected"];
        assert_eq!(
            Lens::from_ops_json(asserted, "").unwrap().to_json(),
            case["expected"]
        );
    }
}

#[test]
fn a_path_against_the_edges_reverses_each_lens() {
    let case = cases(&["graph"]).remove(0);
    let graph = register(&case);
    let up = lens_between(&graph, "V1", "V3");
    let down = lens_between(&graph, "V3", "V1");
    // Walking V3 → V1 runs V2→V3 backward, then V1→V2 backward: the forward path reversed.
    assert!(down
        .ops()
        .iter()
        .all(|d| d.direction == Direction::Backward));
    let down_ops: Vec<_> = down
        .ops()
        .iter()
        .map(|d| (&d.op, d.origin.as_str()))
        .collect();
    let mut up_ops: Vec<_> = up
        .ops()
        .iter()
        .map(|d| (&d.op, d.origin.as_str()))
        .collect();
    up_ops.reverse();
    assert_eq!(down_ops, up_ops);
    assert_eq!(down.ops()[0].origin, "V2->V3/1");
    // mu → V3 goes through every registration.
    assert_eq!(lens_between(&graph, "mu", "V3").ops().len(), 1 + 2 + 2);
}

#[test]
fn a_second_lens_on_an_edge_is_an_error() {
    let case = cases(&["graph"]).remove(0);
    let mut graph = register(&case);
    let other = Lens::from_ops_json(
        &serde_json::json!([{"add": {"name": "somethingElse", "type": "string"}}]),
        "",
    )
    .unwrap();
    // Cambria would keep the first lens and return quietly; mutatis refuses, both ways round.
    assert_eq!(
        graph.add_edge("V1".into(), "V2".into(), other.clone()),
        Err(GraphError::DuplicateEdge {
            from: "V1".into(),
            to: "V2".into()
        })
    );
    assert_eq!(
        graph.add_edge("V2".into(), "V1".into(), other),
        Err(GraphError::DuplicateEdge {
            from: "V2".into(),
            to: "V1".into()
        })
    );
    // The first registration is untouched.
    assert_eq!(graph.edges().len(), 3);
    assert_eq!(
        graph
            .edge_between(&"V1".into(), &"V2".into())
            .map(|e| e.payload.ops().len()),
        Some(2)
    );
}

#[test]
fn registering_from_an_unknown_version_is_an_error() {
    let mut graph: VersionGraph<String, ()> = VersionGraph::new();
    graph.add_node("mu".into());
    assert_eq!(
        graph.add_edge("V9".into(), "mu".into(), ()),
        Err(GraphError::UnknownVersion("V9".into()))
    );
}
