//! The replication protocol and the conflict routes of `mutatis serve`, driven by hand over
//! HTTP between two real servers (the binary, each on a free port with its own redb store,
//! both serving `examples/students`).

mod support;

use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use support::{students_node, Node};

const ADMIN: &str = support::ADMIN_TOKEN;

/// Students in release 5 and the replication routes, driven by hand on a node.
trait ByHand {
    /// Create a release-5 student as admin, with an access policy if given; its rev.
    fn create(&self, id: &str, doc: &Value, access: Option<&str>) -> String;
    /// Replace a student (release 5) at `rev`; the new rev.
    fn replace(&self, id: &str, rev: &str, doc: &Value) -> String;
    /// A student in release 5: `(rev, body)`, or `None` if it does not exist.
    fn read(&self, id: &str) -> Option<(String, Value)>;
    /// `GET /replication/changes?since=…` with `token`.
    fn changes(&self, since: u64, token: &str) -> Value;
    /// `POST /replication/apply` of `batch` from node `source` (its manifest), with `token`.
    fn apply(&self, source: &Value, batch: &Value, checkpoint: &str, token: &str) -> Response;
    /// A replication checkpoint: 200 with its seq, or a 404 problem (`None`).
    fn stored_checkpoint(&self, id: &str) -> Option<u64>;
    /// `GET /docs/Student/ID/conflicts` in `release`.
    fn conflicts(&self, id: &str, release: &str) -> Value;
}

impl ByHand for Node {
    fn create(&self, id: &str, doc: &Value, access: Option<&str>) -> String {
        match access {
            Some(a) => self.create_doc_with_access("Student", id, "5", a, doc),
            None => self.create_doc("Student", id, "5", doc),
        }
    }

    fn replace(&self, id: &str, rev: &str, doc: &Value) -> String {
        self.update_doc("Student", id, "5", rev, doc)
    }

    fn read(&self, id: &str) -> Option<(String, Value)> {
        self.get_doc("Student", id, "5")
    }

    fn changes(&self, since: u64, token: &str) -> Value {
        let r = self
            .request_as(
                Method::GET,
                &format!("/replication/changes?since={since}"),
                token,
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text());
        r.json().unwrap()
    }

    fn apply(&self, source: &Value, batch: &Value, checkpoint: &str, token: &str) -> Response {
        self.request_as(Method::POST, "/replication/apply", token)
            .json(&json!({
                "source": {"nodeId": source["nodeId"], "manifest": source["manifest"]},
                "checkpoint": {"id": checkpoint, "seq": batch["lastSeq"]},
                "docs": batch["docs"],
            }))
            .send()
            .unwrap()
    }

    fn stored_checkpoint(&self, id: &str) -> Option<u64> {
        let r = self
            .request(Method::GET, &format!("/replication/checkpoints/{id}"))
            .send()
            .unwrap();
        if r.status() == 404 {
            problem(r, 404, "not-found");
            return None;
        }
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        Some(v["seq"].as_u64().unwrap())
    }

    fn conflicts(&self, id: &str, release: &str) -> Value {
        let r = self
            .request(Method::GET, &format!("/docs/Student/{id}/conflicts"))
            .header("Mutatis-Release", release)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text());
        r.json().unwrap()
    }
}

/// One batch from `src` to `dst` as admin, resuming from `dst`'s checkpoint `id`: the apply
/// results.
fn replicate(src: &Node, dst: &Node, id: &str) -> Vec<Value> {
    let since = dst.stored_checkpoint(id).unwrap_or(0);
    let batch = src.changes(since, ADMIN);
    let r = dst.apply(&src.node_info(), &batch, id, ADMIN);
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let v: Value = r.json().unwrap();
    assert_eq!(dst.stored_checkpoint(id), batch["lastSeq"].as_u64());
    v["results"].as_array().unwrap().clone()
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Assert a problem+json answer of `status` and kind `name`; returns the body.
fn problem(r: Response, status: u16, name: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let v: Value = r.json().unwrap();
    assert_eq!(v["type"], format!("urn:mutatis:problem:{name}"), "{v}");
    v
}

fn student(first: &str, last: &str, year: u32) -> Value {
    json!({"firstName": first, "lastName": last, "yearOfBirth": year})
}

fn outcomes(results: &[Value], id: &str) -> Vec<String> {
    results
        .iter()
        .filter(|r| r["id"] == id)
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_batch_replicates_by_hand_once_and_idempotently() {
    let (a, b) = (students_node(), students_node());
    let ia = a.node_info();
    let ib = b.node_info();
    assert_ne!(ia["nodeId"], ib["nodeId"]);
    // The same schema set has the same manifest hash on both nodes.
    assert!(ia["manifest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(ia["manifest"], ib["manifest"]);
    let meta: Value = a
        .request(Method::GET, "/meta")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["nodeId"], ia["nodeId"]);

    a.create("ada", &student("Ada", "Lovelace", 1815), None);
    a.create("alan", &student("Alan", "Turing", 1912), None);
    let rev = a.create("grace", &student("Grace", "Hopper", 1906), None);
    a.replace("grace", &rev, &student("Grace", "Hopper", 1907));
    assert_eq!(a.node_info()["lastSeq"], 4);

    let batch = a.changes(0, ADMIN);
    assert_eq!(batch["nodeId"], ia["nodeId"]);
    assert_eq!(batch["manifest"], ia["manifest"]);
    assert_eq!(
        (batch["lastSeq"].as_u64(), batch["head"].as_u64()),
        (Some(4), Some(4))
    );
    // Grace, written twice, travels once, with her history.
    let docs = batch["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 3);
    let grace = docs.iter().find(|d| d["id"] == "grace").unwrap();
    assert_eq!(grace["revisions"][0]["history"][0], rev);
    assert_eq!(grace["revisions"][0]["version"], 5);

    assert_eq!(b.stored_checkpoint("a-to-b"), None);
    let r = b.apply(&ia, &batch, "a-to-b", ADMIN);
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().unwrap();
    assert_eq!(resp["nodeId"], ib["nodeId"]);
    let results = resp["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["outcome"] == "stored"), "{resp}");
    // The checkpoint was stored with the batch.
    assert_eq!(b.stored_checkpoint("a-to-b"), Some(4));
    for id in ["ada", "alan", "grace"] {
        assert_eq!(a.read(id), b.read(id), "{id}");
        assert!(b.read(id).is_some());
    }
    // B's own feed has the replicated documents.
    assert_eq!(b.node_info()["lastSeq"], 3);

    // The same batch again changes nothing.
    let r = b.apply(&ia, &batch, "a-to-b", ADMIN);
    let again: Value = r.json().unwrap();
    let again = again["results"].as_array().unwrap();
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|r| r["outcome"] == "alreadyKnown"),
        "{again:?}"
    );
    assert_eq!(b.node_info()["lastSeq"], 3);

    // Nothing new after the checkpoint: an empty batch at once.
    let empty = a.changes(4, ADMIN);
    assert_eq!(empty["docs"], json!([]));
    assert_eq!(empty["lastSeq"], 4);

    // The source's copy of a checkpoint: PUT then GET.
    let r = a
        .request(Method::PUT, "/replication/checkpoints/a-to-b")
        .json(&json!({"seq": 4}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(a.stored_checkpoint("a-to-b"), Some(4));
    let r = a
        .request(Method::PUT, "/replication/checkpoints/a%2Fb")
        .json(&json!({"seq": 4}))
        .send()
        .unwrap();
    problem(r, 400, "bad-request");
}

#[test]
fn a_waiting_batch_returns_with_the_next_write() {
    let a = students_node();
    a.create("ada", &student("Ada", "Lovelace", 1815), None);
    let head = a.node_info()["lastSeq"].as_u64().unwrap();
    let waiting_request = a.request(
        Method::GET,
        &format!("/replication/changes?since={head}&waitMs=50000"),
    );
    let waiting = std::thread::spawn(move || {
        let r = waiting_request.send().unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().unwrap()
    });
    // Written before or after the request arrives, the write is after `since`.
    a.create("alan", &student("Alan", "Turing", 1912), None);
    let batch = waiting.join().unwrap();
    assert_eq!(batch["lastSeq"], head + 1);
    assert_eq!(batch["docs"][0]["id"], "alan");
}

#[test]
fn access_policies_filter_the_source_and_guard_the_target() {
    let (a, b) = (students_node(), students_node());
    let ia = a.node_info();
    a.create("open", &student("Ada", "Lovelace", 1815), None);
    a.create(
        "secret",
        &student("Alan", "Turing", 1912),
        Some(r#"{"read": ["alice"]}"#),
    );
    a.create("locked", &student("Grace", "Hopper", 1906), None);

    // A reader who may not read `secret` does not get it; it is counted as filtered.
    let carol = a.new_token("carol", "reader");
    let batch = a.changes(0, &carol);
    let ids: Vec<&str> = batch["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["open", "locked"]);
    assert_eq!(batch["filtered"], 1);
    assert_eq!(batch["lastSeq"], 3);
    let alice = a.new_token("alice", "reader");
    let batch = a.changes(0, &alice);
    assert_eq!(batch["docs"].as_array().unwrap().len(), 3);
    assert_eq!(batch["filtered"], 0);

    // On B, `locked` exists and only alice may write it.
    let locked_rev = b.create(
        "locked",
        &student("Grace", "Murray", 1906),
        Some(r#"{"write": ["alice"]}"#),
    );
    let dave = b.new_token("dave", "writer");
    let reader = b.new_token("erin", "reader");
    let r = b.apply(&ia, &batch, "a-to-b", &reader);
    problem(r, 403, "forbidden");
    let r = b.apply(&ia, &batch, "a-to-b", &dave);
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().unwrap();
    let results = resp["results"].as_array().unwrap();
    assert_eq!(outcomes(results, "open"), ["stored"]);
    // A new document comes with its policy, as a create with Mutatis-Access may.
    assert_eq!(outcomes(results, "secret"), ["stored"]);
    assert_eq!(outcomes(results, "locked"), ["forbidden"]);
    let (rev, body) = b.read("locked").unwrap();
    assert_eq!(rev, locked_rev);
    assert_eq!(body["lastName"], "Murray");
    let access: Value = b
        .request(Method::GET, "/docs/Student/secret/access")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(access["access"], json!({"read": ["alice"]}));
    // The target's checkpoint moved with the batch even though one document was refused.
    assert_eq!(b.stored_checkpoint("a-to-b"), Some(3));
}

#[test]
fn concurrent_edits_conflict_alike_and_resolve_everywhere() {
    let (a, b) = (students_node(), students_node());
    let first = a.create("ada", &student("Ada", "Lovelace", 1815), None);
    let results = replicate(&a, &b, "a-to-b");
    assert_eq!(outcomes(&results, "ada"), ["stored"]);
    assert_eq!(b.read("ada").unwrap().0, first);

    // Both edit the same rev.
    let on_a = a.replace("ada", &first, &student("Ada", "King", 1815));
    let on_b = b.replace("ada", &first, &student("Augusta Ada", "Lovelace", 1815));
    assert_ne!(on_a, on_b);
    let to_b = replicate(&a, &b, "a-to-b");
    assert_eq!(outcomes(&to_b, "ada"), ["conflict"]);
    // B sends both leaves: A's own is known there, B's is the conflict.
    let to_a = replicate(&b, &a, "b-to-a");
    let mut back = outcomes(&to_a, "ada");
    back.sort();
    assert_eq!(back, ["alreadyKnown", "conflict"]);

    // The same winner on both nodes, the loser listed on both.
    let ca = a.conflicts("ada", "5");
    let cb = b.conflicts("ada", "5");
    assert_eq!(ca, cb);
    let winner = ca["rev"].as_str().unwrap().to_owned();
    assert!(winner == on_a || winner == on_b);
    let loser = if winner == on_a { &on_b } else { &on_a };
    assert_eq!(ca["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(ca["conflicts"][0]["rev"], loser.as_str());
    assert_eq!(a.read("ada").unwrap().0, winner);
    assert_eq!(b.read("ada").unwrap().0, winner);
    let loser_body = ca["conflicts"][0]["body"].clone();
    assert_eq!(loser_body["yearOfBirth"], 1815);
    // In release 4 the leaves come in release 4's shape.
    let c4 = a.conflicts("ada", "4");
    assert_eq!(c4["conflicts"][0]["body"]["age"], 2026 - 1815);
    assert!(c4["conflicts"][0]["body"].get("yearOfBirth").is_none());

    // A stale winner and an unknown leaf are refused; a bad rev is a 400.
    let resolve = |body: Value| {
        a.request(Method::POST, "/docs/Student/ada/conflicts/resolve")
            .header("Mutatis-Release", "5")
            .json(&body)
            .send()
            .unwrap()
    };
    problem(
        resolve(json!({"winner": first, "keep": loser})),
        412,
        "rev-conflict",
    );
    problem(
        resolve(json!({"winner": winner, "keep": "9-abcdef"})),
        412,
        "rev-conflict",
    );
    problem(
        resolve(json!({"winner": winner, "keep": "nine"})),
        400,
        "invalid-rev",
    );
    // A reader may list but not resolve.
    let reader = a.new_token("carol", "reader");
    let r = a
        .request_as(Method::POST, "/docs/Student/ada/conflicts/resolve", &reader)
        .json(&json!({"winner": winner, "keep": loser}))
        .send()
        .unwrap();
    problem(r, 403, "forbidden");

    // Resolve on A by keeping the loser.
    let r = resolve(json!({"winner": winner, "keep": loser}));
    assert_eq!(r.status(), 200);
    let resolved: Value = r.json().unwrap();
    let new_rev = resolved["rev"].as_str().unwrap().to_owned();
    let after = a.conflicts("ada", "5");
    assert_eq!(after["rev"], new_rev.as_str());
    assert_eq!(after["conflicts"], json!([]));
    let (rev, body) = a.read("ada").unwrap();
    assert_eq!(rev, new_rev);
    assert_eq!(body, loser_body);

    // Replicated to B, the resolution ends B's conflict too.
    let to_b = replicate(&a, &b, "a-to-b");
    assert_eq!(outcomes(&to_b, "ada"), ["fastForward"]);
    let cb = b.conflicts("ada", "5");
    assert_eq!(cb["rev"], new_rev.as_str());
    assert_eq!(cb["conflicts"], json!([]));
    assert_eq!(b.read("ada"), a.read("ada"));

    // A merge, with no conflict left, is a plain write descending from the winner.
    let r = resolve(json!({"winner": new_rev, "merge": student("Ada", "Byron", 1815)}));
    assert_eq!(r.status(), 200);
    assert_eq!(a.read("ada").unwrap().1["lastName"], "Byron");
}

#[test]
fn a_batch_in_an_unknown_version_needs_the_source_manifest() {
    let b = students_node();
    let doc = json!({
        "type": "Student",
        "id": "future",
        "seq": 1,
        "revisions": [{
            "rev": "1-0123456789abcdef0123456789abcdef",
            "version": 99,
            "body": {"fullName": "Ada Lovelace"},
        }],
    });
    let unknown = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let r = b
        .request(Method::POST, "/replication/apply")
        .json(&json!({
            "source": {"nodeId": "elsewhere", "manifest": unknown},
            "docs": [doc],
        }))
        .send()
        .unwrap();
    let p = problem(r, 409, "manifest-required");
    assert_eq!(p["manifest"], unknown);
    assert_eq!(p["version"], 99);
    // A manifest that does not hash to the name it was sent under is refused.
    let schema: Value = b
        .request(Method::GET, "/schema")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let r = b
        .request(Method::POST, "/replication/apply")
        .json(&json!({
            "source": {"nodeId": "elsewhere", "manifest": unknown, "schema": schema},
            "docs": [doc],
        }))
        .send()
        .unwrap();
    problem(r, 400, "bad-manifest");
    // Nothing was written.
    assert_eq!(b.node_info()["lastSeq"], 0);
    assert_eq!(b.read("future"), None);
}

#[test]
fn a_batch_may_be_larger_than_a_document_body() {
    let b = students_node();
    let info = b.node_info();
    // Over the 1 MiB document limit, far under the replication one.
    let big = student(&"A".repeat(2 * 1024 * 1024), "Lovelace", 1815);
    let r = b
        .request(Method::POST, "/docs/Student?id=big")
        .header("Mutatis-Release", "5")
        .json(&big)
        .send()
        .unwrap();
    problem(r, 413, "body-too-large");
    let batch = json!({
        "lastSeq": 1,
        "docs": [{
            "type": "Student",
            "id": "big",
            "seq": 1,
            "revisions": [{"rev": "1-0123456789abcdef0123456789abcdef", "version": 5, "body": big}],
        }],
    });
    let r = b.apply(
        &json!({"nodeId": "elsewhere", "manifest": info["manifest"]}),
        &batch,
        "x",
        ADMIN,
    );
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().unwrap();
    assert_eq!(resp["results"][0]["outcome"], "stored");
    assert_eq!(b.read("big").unwrap().1, big);
}

/// A revision whose access policy is not one the node enforces (`null` or `{"read","write"}`
/// lists) makes the batch invalid: nothing of it is stored. It used to be stored as sent,
/// and `GET /docs/T/ID/access` then showed the malformed policy.
#[test]
fn a_batch_with_a_malformed_access_policy_is_refused_whole() {
    let b = students_node();
    let info = b.node_info();
    let revision = |access: Value| {
        json!({"rev": "1-0123456789abcdef", "version": 5,
               "body": student("Ada", "Lovelace", 1815), "access": access})
    };
    for access in [
        json!(5),
        json!("alice"),
        json!({"read": "alice"}),
        json!({"read": ["alice"], "owner": "alice"}),
    ] {
        let batch = json!({
            "lastSeq": 2,
            "docs": [
                {"type": "Student", "id": "fine", "seq": 1, "revisions": [revision(Value::Null)]},
                {"type": "Student", "id": "odd", "seq": 2, "revisions": [revision(access.clone())]},
            ],
        });
        let r = b.apply(
            &json!({"nodeId": "elsewhere", "manifest": info["manifest"]}),
            &batch,
            "x",
            ADMIN,
        );
        let p = problem(r, 400, "invalid-batch");
        assert!(
            p["detail"].as_str().unwrap().contains("\"odd\""),
            "{access}: {p}"
        );
        assert_eq!(b.read("odd"), None, "{access}");
        assert_eq!(b.read("fine"), None, "{access}: the batch is refused whole");
        assert_eq!(b.stored_checkpoint("x"), None, "{access}");
    }
    // A well-formed policy still travels.
    let batch = json!({
        "lastSeq": 1,
        "docs": [{"type": "Student", "id": "odd", "seq": 1,
                  "revisions": [revision(json!({"read": ["alice"], "write": null}))]}],
    });
    let r = b.apply(
        &json!({"nodeId": "elsewhere", "manifest": info["manifest"]}),
        &batch,
        "x",
        ADMIN,
    );
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let access: Value = b
        .request(Method::GET, "/docs/Student/odd/access")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(access["access"]["read"], json!(["alice"]), "{access}");
}
