//! `/couch/{release}`: every release as a CouchDB-compatible database, driven over HTTP on
//! the real `mutatis serve` binary serving `examples/todo` (release 4 speaks todo@2 with a
//! `done` flag, release 5 todo@3 with a `status`), on redb and on PostgreSQL
//! (`DATABASE_URL`; without it that half says loudly that it did not run, and under `CI`
//! fails).

mod support;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};
use support::{example, node_on, Store, StoreNode};

fn todo_node(store: &Store) -> StoreNode {
    node_on(store, &example("todo"), &[])
}

/// The JSON of a response with the status expected.
fn json_of(r: Response, status: u16, what: &str) -> Value {
    let got = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    assert_eq!(got, status, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn couch(node: &StoreNode, method: Method, path: &str) -> RequestBuilder {
    node.request(method, &format!("/couch/{path}"))
}

fn for_each_store(what: &str, test: impl Fn(&Store)) {
    for store in Store::all(what) {
        eprintln!("{what} on {}", store.name());
        test(&store);
    }
}

#[test]
fn the_replication_protocol_round_trips() {
    for_each_store("couch protocol round trips", |store| {
        let node = todo_node(store);
        let welcome = json_of(node.get("/couch"), 200, "welcome");
        assert_eq!(welcome["couchdb"], "Welcome");
        assert!(welcome["uuid"].as_str().is_some_and(|u| u.len() == 32));
        let info = json_of(couch(&node, Method::GET, "5/").send().unwrap(), 200, "info");
        assert_eq!(info["db_name"], "5");
        assert_eq!(info["update_seq"], 0);

        // A new edit, read back in both releases' versions.
        let put = json_of(
            couch(&node, Method::PUT, "5/todo:a")
                .json(&json!({"title": "milk", "status": "started", "important": true}))
                .send()
                .unwrap(),
            201,
            "put",
        );
        let rev1 = put["rev"].as_str().unwrap().to_owned();
        let in5 = json_of(
            couch(&node, Method::GET, "5/todo:a?revs=true")
                .send()
                .unwrap(),
            200,
            "get 5",
        );
        assert_eq!(in5["status"], "started");
        assert_eq!(in5["_revisions"]["start"], 1);
        let in4 = json_of(
            couch(&node, Method::GET, "4/todo:a").send().unwrap(),
            200,
            "get 4",
        );
        assert_eq!(
            in4,
            json!({"_id": "todo:a", "_rev": rev1, "title": "milk", "done": false, "important": true})
        );
        // A stale rev is a CouchDB conflict.
        let stale = json_of(
            couch(&node, Method::PUT, "5/todo:a")
                .json(&json!({"title": "x", "status": "open", "important": false}))
                .send()
                .unwrap(),
            409,
            "create over a live document",
        );
        assert_eq!(stale["error"], "conflict");
        assert_eq!(stale["type"], "urn:mutatis:problem:rev-conflict");

        // A PouchDB-made revision with its 32-hex rev and history, as a replicator sends it.
        let r2 = "2-0123456789abcdef0123456789abcdef";
        let hash1 = rev1.split_once('-').unwrap().1;
        let bulk = json_of(
            couch(&node, Method::POST, "4/_bulk_docs")
                .json(&json!({"new_edits": false, "docs": [{
                    "_id": "todo:a", "_rev": r2,
                    "_revisions": {"start": 2, "ids": ["0123456789abcdef0123456789abcdef", hash1]},
                    "title": "oat milk", "done": false, "important": true}]}))
                .send()
                .unwrap(),
            201,
            "bulk_docs new_edits=false",
        );
        assert_eq!(bulk, json!([]));
        let in5 = json_of(
            couch(&node, Method::GET, "5/todo:a?revs=true")
                .send()
                .unwrap(),
            200,
            "get 5",
        );
        assert_eq!(in5["_rev"], r2, "the rev is kept as given");
        assert_eq!(in5["title"], "oat milk");
        assert_eq!(
            in5["status"], "started",
            "the release-4 write kept release 5's status"
        );
        assert_eq!(in5["_revisions"]["ids"][1], hash1);

        // _revs_diff, _bulk_get, _changes, _all_docs, _local.
        let diff = json_of(
            couch(&node, Method::POST, "5/_revs_diff")
                .json(&json!({"todo:a": [rev1, r2, "3-ffff"], "todo:zz": ["1-ab"]}))
                .send()
                .unwrap(),
            200,
            "revs_diff",
        );
        assert_eq!(diff["todo:a"]["missing"], json!(["3-ffff"]));
        assert_eq!(diff["todo:zz"]["missing"], json!(["1-ab"]));
        let got = json_of(
            couch(&node, Method::POST, "4/_bulk_get?revs=true")
                .json(&json!({"docs": [{"id": "todo:a", "rev": r2}, {"id": "todo:a", "rev": rev1}, {"id": "todo:nope", "rev": "1-ab"}]}))
                .send()
                .unwrap(),
            200,
            "bulk_get",
        );
        let results = got["results"].as_array().unwrap();
        assert_eq!(results[0]["docs"][0]["ok"]["done"], false);
        assert_eq!(results[0]["docs"][0]["ok"]["_revisions"]["start"], 2);
        assert_eq!(
            results[1]["docs"][0]["ok"]["title"], "milk",
            "an earlier revision kept"
        );
        assert_eq!(results[2]["docs"][0]["error"]["error"], "not_found");
        let ch = json_of(
            couch(
                &node,
                Method::GET,
                "4/_changes?style=all_docs&include_docs=true",
            )
            .send()
            .unwrap(),
            200,
            "changes",
        );
        assert_eq!(ch["results"].as_array().unwrap().len(), 1);
        assert_eq!(ch["results"][0]["id"], "todo:a");
        assert_eq!(ch["results"][0]["changes"][0]["rev"], r2);
        assert_eq!(ch["results"][0]["doc"]["done"], false);
        let last = ch["last_seq"].as_u64().unwrap();
        let none = json_of(
            couch(&node, Method::GET, &format!("4/_changes?since={last}"))
                .send()
                .unwrap(),
            200,
            "changes since",
        );
        assert_eq!(none["results"], json!([]));
        // A long poll waits for the next write.
        let waiting = {
            let url = format!(
                "{}/couch/5/_changes?feed=longpoll&since={last}&timeout=10000",
                node.url
            );
            let token = node.token.clone();
            std::thread::spawn(move || {
                support::http()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .unwrap()
                    .json::<Value>()
                    .unwrap()
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        json_of(
            couch(&node, Method::POST, "5/_bulk_docs")
                .json(&json!({"docs": [{"_id": "todo:b", "title": "b", "status": "open", "important": false}]}))
                .send()
                .unwrap(),
            201,
            "bulk_docs",
        );
        let woke = waiting.join().unwrap();
        assert_eq!(woke["results"][0]["id"], "todo:b");
        // Streamed feeds: every row, then where to continue (continuous) at the timeout.
        let text = couch(
            &node,
            Method::GET,
            "5/_changes?feed=continuous&timeout=300&heartbeat=1000",
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[1]["id"], "todo:b");
        assert!(lines[2]["last_seq"].as_u64().is_some(), "{text}");
        let events = couch(
            &node,
            Method::GET,
            "5/_changes?feed=eventsource&timeout=300",
        )
        .send()
        .unwrap();
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let events = events.text().unwrap();
        assert_eq!(events.matches("data: ").count(), 2, "{events}");
        let all = json_of(
            couch(&node, Method::POST, "5/_all_docs?include_docs=true")
                .json(&json!({"keys": ["todo:b", "todo:nope", "todo:a"]}))
                .send()
                .unwrap(),
            200,
            "all_docs keys",
        );
        assert_eq!(all["rows"][0]["doc"]["title"], "b");
        assert_eq!(all["rows"][1]["error"], "not_found");
        assert_eq!(all["rows"][2]["value"]["rev"], r2);
        let range = json_of(
            couch(
                &node,
                Method::GET,
                "5/_all_docs?startkey=%22todo:b%22&limit=5",
            )
            .send()
            .unwrap(),
            200,
            "all_docs range",
        );
        assert_eq!(range["rows"].as_array().unwrap().len(), 1);
        let miss = json_of(
            couch(&node, Method::GET, "5/_local/cp").send().unwrap(),
            404,
            "local",
        );
        assert_eq!(miss["error"], "not_found");
        let lput = json_of(
            couch(&node, Method::PUT, "5/_local/cp")
                .json(&json!({"last_seq": 3}))
                .send()
                .unwrap(),
            201,
            "local put",
        );
        assert_eq!(lput["rev"], "0-1");
        let lget = json_of(
            couch(&node, Method::GET, "5/_local/cp").send().unwrap(),
            200,
            "local get",
        );
        assert_eq!(lget["last_seq"], 3);
        // Each token's checkpoints are its own.
        let other = node.new_token("other", "writer");
        let theirs = node
            .request_as(Method::GET, "/couch/5/_local/cp", &other)
            .send()
            .unwrap();
        assert_eq!(theirs.status().as_u16(), 404);
        // Deletes, and a read of the tombstone.
        let del = json_of(
            couch(&node, Method::DELETE, &format!("5/todo:a?rev={r2}"))
                .send()
                .unwrap(),
            200,
            "delete",
        );
        assert!(del["rev"].as_str().unwrap().starts_with("3-"));
        let gone = json_of(
            couch(&node, Method::GET, "4/todo:a").send().unwrap(),
            404,
            "deleted",
        );
        assert_eq!(gone["reason"], "deleted");
        // Attachments are refused with a CouchDB-style error.
        let att = json_of(
            couch(&node, Method::PUT, "5/todo:c")
                .json(&json!({"title": "c", "status": "open", "important": false, "_attachments": {}}))
                .send()
                .unwrap(),
            400,
            "attachments",
        );
        assert_eq!(att["error"], "bad_request");
        assert!(att["reason"].as_str().unwrap().contains("attachments"));
    });
}

/// A release-4 revision made offline on a parent that is no longer the winner (the
/// release-5 app's edit reached the node first) keeps release 5's status too: it is
/// translated onto its parent's body, not onto nothing.
#[test]
fn an_offline_branch_keeps_what_its_release_cannot_see() {
    for_each_store("couch conservation on a conflict branch", |store| {
        let node = todo_node(store);
        let r1 = json_of(
            couch(&node, Method::PUT, "5/todo:k")
                .json(&json!({"title": "k", "status": "started", "important": false}))
                .send()
                .unwrap(),
            201,
            "base",
        )["rev"]
            .as_str()
            .unwrap()
            .to_owned();
        // Release 5 moves on.
        json_of(
            couch(&node, Method::PUT, &format!("5/todo:k?rev={r1}"))
                .json(&json!({"title": "k5", "status": "started", "important": false}))
                .send()
                .unwrap(),
            201,
            "release 5's edit",
        );
        // Release 4's offline edit of r1 arrives.
        let h1 = r1.split_once('-').unwrap().1;
        let r4 = "2-0000000000000000aaaaaaaaaaaaaaaa";
        json_of(
            couch(&node, Method::POST, "4/_bulk_docs")
                .json(
                    &json!({"new_edits": false, "docs": [{"_id": "todo:k", "_rev": r4,
                    "_revisions": {"start": 2, "ids": ["0000000000000000aaaaaaaaaaaaaaaa", h1]},
                    "title": "k4", "done": false, "important": true}]}),
                )
                .send()
                .unwrap(),
            201,
            "release 4's replicated edit",
        );
        let leaf = json_of(
            couch(&node, Method::GET, &format!("5/todo:k?rev={r4}"))
                .send()
                .unwrap(),
            200,
            "the release-4 leaf in release 5",
        );
        assert_eq!(leaf["title"], "k4");
        assert_eq!(leaf["important"], true);
        assert_eq!(
            leaf["status"], "started",
            "translated onto its parent, not reset to open"
        );
    });
}

/// Two concurrent revisions of one generation: the winner is the greater rev string, a
/// 16-hex mutatis rev against a 32-hex PouchDB one included, on the couch routes and on
/// `/docs` alike; a live leaf beats a longer deleted one.
#[test]
fn the_winner_is_couchdbs_and_both_apis_agree() {
    for_each_store("couch winner rule", |store| {
        let node = todo_node(store);
        let base = json_of(
            couch(&node, Method::PUT, "5/todo:w")
                .json(&json!({"title": "w", "status": "open", "important": false}))
                .send()
                .unwrap(),
            201,
            "base",
        )["rev"]
            .as_str()
            .unwrap()
            .to_owned();
        let h1 = base.split_once('-').unwrap().1.to_owned();
        let short = "2-ffffffffffffffff"; // greater as text
        let long = "2-0000000000000000ffffffffffffffff";
        for (rev, title) in [(long, "long"), (short, "short")] {
            let hash = rev.split_once('-').unwrap().1;
            json_of(
                couch(&node, Method::POST, "5/_bulk_docs")
                    .json(
                        &json!({"new_edits": false, "docs": [{"_id": "todo:w", "_rev": rev,
                        "_revisions": {"start": 2, "ids": [hash, h1]},
                        "title": title, "status": "open", "important": false}]}),
                    )
                    .send()
                    .unwrap(),
                201,
                "a conflicting revision",
            );
        }
        let doc = json_of(
            couch(&node, Method::GET, "5/todo:w?conflicts=true")
                .send()
                .unwrap(),
            200,
            "winner",
        );
        assert_eq!(doc["_rev"], short);
        assert_eq!(doc["_conflicts"], json!([long]));
        let conflicts = node.get_json("/docs/todo/w/conflicts?release=5");
        assert_eq!(
            conflicts["rev"], short,
            "the node's own API names the same winner"
        );
        // A deleted leaf of a higher generation does not beat a live one.
        let hl = long.split_once('-').unwrap().1;
        json_of(
            couch(&node, Method::POST, "5/_bulk_docs")
                .json(&json!({"new_edits": false, "docs": [{"_id": "todo:w", "_rev": "3-00aa", "_deleted": true,
                    "_revisions": {"start": 3, "ids": ["00aa", hl, h1]}}]}))
                .send()
                .unwrap(),
            201,
            "a deleted leaf",
        );
        let doc = json_of(
            couch(&node, Method::GET, "5/todo:w?conflicts=true")
                .send()
                .unwrap(),
            200,
            "winner",
        );
        assert_eq!(doc["_rev"], short);
        assert!(
            doc.get("_conflicts").is_none(),
            "the other branch ended in a delete"
        );
        // Poisoned revs stay refused.
        let poisoned = json_of(
            couch(&node, Method::POST, "5/_bulk_docs")
                .json(&json!({"new_edits": false, "docs": [{"_id": "todo:p", "_rev": "9007199254740991-ab",
                    "title": "p", "status": "open", "important": false}]}))
                .send()
                .unwrap(),
            201,
            "a poisoned rev",
        );
        assert_eq!(poisoned[0]["error"], "bad_request");
    });
}

/// Tokens as Bearer or as the Basic password, roles, per-document policies: on every route a
/// hidden document is a missing one.
#[test]
fn auth_roles_and_policies_hold_on_every_route() {
    for_each_store("couch auth", |store| {
        let node = todo_node(store);
        let bob = node.new_token("bob", "writer");
        let reader = node.new_token("rita", "reader");
        // A document only alice may read.
        let rev = node.create_doc_with_access(
            "todo",
            "secret",
            "5",
            r#"{"read": ["alice"], "write": ["alice"]}"#,
            &json!({"title": "s", "status": "open", "important": false}),
        );
        let http = support::http();
        let url = |p: &str| format!("{}/couch/5/{p}", node.url);
        // No credentials, bad ones.
        let none = json_of(http.get(url("")).send().unwrap(), 401, "no token");
        assert_eq!(none["error"], "unauthorized");
        let wrong = http
            .get(url(""))
            .basic_auth("bob", Some("mutatis_nope"))
            .send()
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        // Basic with the token as password, any user name; Bearer.
        let basic = http
            .get(url(""))
            .basic_auth("anyone", Some(&bob))
            .send()
            .unwrap();
        assert_eq!(basic.status().as_u16(), 200);
        assert_eq!(
            http.get(url(""))
                .bearer_auth(&reader)
                .send()
                .unwrap()
                .status()
                .as_u16(),
            200
        );
        // A reader reads, never writes.
        let w = json_of(
            http.put(url("todo:r"))
                .basic_auth("rita", Some(&reader))
                .json(&json!({"title": "r", "status": "open", "important": false}))
                .send()
                .unwrap(),
            403,
            "a reader's write",
        );
        assert_eq!(w["error"], "forbidden");
        json_of(
            http.post(url("_bulk_docs"))
                .basic_auth("rita", Some(&reader))
                .json(&json!({"new_edits": false, "docs": []}))
                .send()
                .unwrap(),
            403,
            "a reader's push",
        );
        // The hidden document, as bob sees it.
        let as_bob = |m: Method, p: &str| http.request(m, url(p)).basic_auth("bob", Some(&bob));
        let get = json_of(
            as_bob(Method::GET, "todo:secret").send().unwrap(),
            404,
            "hidden get",
        );
        assert_eq!(get["error"], "not_found");
        let ch = as_bob(Method::GET, "_changes?include_docs=true")
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(!ch.contains("secret"), "the feed shows the hidden id: {ch}");
        let all = as_bob(Method::GET, "_all_docs")
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            !all.contains("secret"),
            "_all_docs shows the hidden id: {all}"
        );
        let diff = json_of(
            as_bob(Method::POST, "_revs_diff")
                .json(&json!({"todo:secret": [rev]}))
                .send()
                .unwrap(),
            200,
            "hidden revs_diff",
        );
        assert_eq!(
            diff["todo:secret"]["missing"],
            json!([rev]),
            "a hidden rev is not known"
        );
        let bg = as_bob(Method::POST, "_bulk_get")
            .json(&json!({"docs": [{"id": "todo:secret", "rev": rev}]}))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(bg.contains("not_found") && !bg.contains("\"s\""), "{bg}");
        let keys = as_bob(Method::POST, "_all_docs?include_docs=true")
            .json(&json!({"keys": ["todo:secret"]}))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(keys.contains("not_found") && !keys.contains(&rev), "{keys}");
        // Bob cannot overwrite it either, not even as a replicated revision.
        let push = json_of(
            as_bob(Method::POST, "_bulk_docs")
                .json(
                    &json!({"new_edits": false, "docs": [{"_id": "todo:secret", "_rev": "9-ab",
                    "title": "mine", "status": "open", "important": false}]}),
                )
                .send()
                .unwrap(),
            201,
            "bob's replicated write",
        );
        assert_eq!(push[0]["error"], "forbidden");
        assert_eq!(node.get_doc("todo", "secret", "5").unwrap().1["title"], "s");
    });
}

/// A deprecated release's answers say so; a retired one is refused on every route with the
/// server's `unsupported-release` problem, as CouchDB clients read errors too.
#[test]
fn release_policy_applies_to_every_couch_route() {
    for_each_store("couch release policy", |store| {
        let node = todo_node(store);
        let r = couch(&node, Method::GET, "4/_all_docs").send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().get("deprecation").is_some());
        assert!(r.headers().get("sunset").is_some());
        assert!(r.headers().get("link").is_some());
        let r5 = couch(&node, Method::GET, "5/_all_docs").send().unwrap();
        assert!(r5.headers().get("deprecation").is_none());
        for (m, p) in [
            (Method::GET, "3/"),
            (Method::GET, "3/_changes"),
            (Method::POST, "3/_revs_diff"),
            (Method::POST, "3/_bulk_docs"),
            (Method::GET, "3/todo:a"),
            (Method::GET, "3/_local/x"),
        ] {
            let v = json_of(couch(&node, m, p).json(&json!({})).send().unwrap(), 400, p);
            assert_eq!(v["type"], "urn:mutatis:problem:unsupported-release", "{p}");
            assert_eq!(v["error"], "unsupported_release", "{p}");
            assert_eq!(v["oldestSupported"], "4");
        }
        let missing = json_of(
            couch(&node, Method::GET, "nope/").send().unwrap(),
            404,
            "unknown db",
        );
        assert_eq!(missing["error"], "not_found");
        // Past release 4's sunset it is retired too.
        drop(node);
        let late = node_on(store, &example("todo"), &["--reference-date", "2027-03-02"]);
        let v = json_of(
            couch(&late, Method::GET, "4/_changes").send().unwrap(),
            400,
            "past sunset",
        );
        assert_eq!(v["error"], "unsupported_release");
        assert_eq!(v["sunset"], "2027-03-01");
    });
}
