//! Replication jobs (`/admin/replications`) and webhooks (`/admin/webhooks`) of
//! `mutatis serve`, driven against real nodes (the binary, each on a free port with its own
//! redb store, serving `examples/students`) and a small HTTP receiver in the test.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use serde_json::{json, Value};
use support::{students_node, Node};

/// How long anything asynchronous may take to show before a test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

fn student(first: &str, last: &str, year: i64) -> Value {
    json!({"firstName": first, "lastName": last, "yearOfBirth": year})
}

/// Wait until `probe` gives something, or fail naming `what`.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(t) = probe() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn send(node: &Node, method: reqwest::Method, path: &str, body: Option<&Value>) -> Response {
    let mut r = node.request(method.clone(), path);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send()
        .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", node.url))
}

/// `POST path` with a JSON body, asserting `status`; the answer.
fn post(node: &Node, path: &str, body: &Value, status: u16) -> Value {
    let r = send(node, reqwest::Method::POST, path, Some(body));
    let got = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(got, status, "POST {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn delete_status(node: &Node, path: &str) -> u16 {
    send(node, reqwest::Method::DELETE, path, None)
        .status()
        .as_u16()
}

/// A continuous job on `target` pulling from `source`; its id.
fn pull_job(target: &Node, source: &Node) -> String {
    let job = post(
        target,
        "/admin/replications",
        &json!({
            "source": source.url,
            "sourceToken": source.token,
            "target": "self",
            "types": ["Student"],
            "continuous": true,
        }),
        201,
    );
    assert_eq!(job["state"], "running", "{job}");
    job["id"].as_str().expect("a job id").to_owned()
}

/// Release `release`'s row of today in `node`'s usage per release.
fn usage_today(node: &Node, release: &str) -> Value {
    let report = node.get_json("/admin/releases?history=true");
    let today = report["today"].as_str().expect("today").to_owned();
    report["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .find(|r| r["release"] == release)
        .map_or(Value::Null, |r| r["history"]["days"][&today].clone())
}

#[test]
fn a_job_s_requests_count_under_the_release_its_node_speaks() {
    let a = students_node();
    let b = students_node();
    a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    // Before any replication: the one write, nothing outside a type.
    let before = usage_today(&a, "5");
    assert_eq!(before["requests"], json!({"Student": 1}), "{before}");

    // B pulls from A with a token of its own: A counts B's requests under release 5, B's
    // current release (students' current), as the caller `node-b`.
    let node_b = a.new_token("node-b", "reader");
    let job = post(
        &b,
        "/admin/replications",
        &json!({"source": a.url, "sourceToken": node_b, "target": "self", "types": ["Student"]}),
        201,
    );
    let id = job["id"].as_str().expect("a job id").to_owned();
    eventually("ada on B", || b.get_doc("Student", "ada", "5"));
    eventually("the job's end", || {
        (b.get_json(&format!("/admin/replications/{id}"))["state"] == "finished").then_some(())
    });
    let after = usage_today(&a, "5");
    let replication = after["requests"]["(none)"].as_u64().unwrap_or(0);
    assert!(
        replication >= 2,
        "node info and at least one batch: {after}"
    );
    assert_eq!(after["requests"]["Student"], 1, "{after}");
    assert!(
        after["tokens"]
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "node-b")),
        "{after}"
    );
}

#[test]
fn a_continuous_job_pulls_new_writes_until_it_is_deleted() {
    let a = students_node();
    let b = students_node();

    // Both ends this node: refused.
    let p = post(
        &b,
        "/admin/replications",
        &json!({"source": "self", "target": "self"}),
        400,
    );
    assert_eq!(p["type"], "urn:mutatis:problem:invalid-job");

    let id = pull_job(&b, &a);
    let job = b.get_json(&format!("/admin/replications/{id}"));
    assert_eq!(job["source"], a.url.as_str());
    assert_eq!(job["target"], "self");
    assert_eq!(job["continuous"], true);
    assert_eq!(job["sourceAuthenticated"], true);
    assert!(
        !job.to_string().contains(&a.token),
        "the token is never shown: {job}"
    );

    // Written on A after the job started: it arrives on B with no CLI run.
    let rev = a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    let (got_rev, body) = eventually("ada on B", || b.get_doc("Student", "ada", "5"));
    assert_eq!(got_rev, rev);
    assert_eq!(body, student("Ada", "Lovelace", 1815));
    let a_head = a.last_seq().expect("A's head");
    let job = eventually("the job's progress", || {
        let j = b.get_json(&format!("/admin/replications/{id}"));
        (j["progress"]["seq"].as_u64() >= Some(a_head)).then_some(j)
    });
    assert_eq!(job["state"], "running");
    assert!(
        job["progress"]["tally"]["stored"].as_u64() >= Some(1),
        "{job}"
    );
    assert!(job["progress"]["head"].as_u64() >= Some(a_head), "{job}");
    let listed = b.get_json("/admin/replications");
    assert_eq!(listed["replications"][0]["id"], id.as_str());

    // Deleted: stopped and forgotten.
    assert_eq!(delete_status(&b, &format!("/admin/replications/{id}")), 204);
    assert_eq!(
        b.get(&format!("/admin/replications/{id}"))
            .status()
            .as_u16(),
        404
    );
    assert_eq!(delete_status(&b, &format!("/admin/replications/{id}")), 404);
    assert_eq!(b.get_json("/admin/replications")["replications"], json!([]));
    a.create_doc("Student", "bob", "5", &student("Bob", "Byron", 1816));
    // A running job brings a write over well within this wait (the write above took one
    // long-poll wake-up); a stopped one never does.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        b.get_doc("Student", "bob", "5"),
        None,
        "the job was stopped"
    );
}

#[test]
fn a_job_resumes_after_its_node_restarts() {
    let a = students_node();
    let mut b = students_node();
    let id = pull_job(&b, &a);
    // B's webhook is resumed too, from its checkpoint.
    let receiver = Receiver::start(0);
    post(&b, "/admin/webhooks", &json!({"url": receiver.url}), 201);
    a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    eventually("ada on B", || b.get_doc("Student", "ada", "5"));

    b.kill();
    // Written while B is down, and after it is back.
    let rev_bob = a.create_doc("Student", "bob", "5", &student("Bob", "Byron", 1816));
    b.restart();
    // The killed process's lease runs out first (a few seconds): then the new one takes it.
    eventually("the job running on B again", || {
        let job = b.get_json(&format!("/admin/replications/{id}"));
        (job["state"] == "running").then_some(job)
    });
    let rev_cy = a.create_doc("Student", "cy", "5", &student("Cy", "Twombly", 1928));
    let (got, _) = eventually("bob on B", || b.get_doc("Student", "bob", "5"));
    assert_eq!(got, rev_bob);
    let (got, body) = eventually("cy on B", || b.get_doc("Student", "cy", "5"));
    assert_eq!(got, rev_cy);
    assert_eq!(body, student("Cy", "Twombly", 1928));
    let delivered = eventually("cy at B's webhook", || {
        let got = receiver.changes();
        got.iter().any(|c| c["id"] == "cy").then_some(got)
    });
    let ids: Vec<&str> = delivered.iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(ids.contains(&"ada") && ids.contains(&"bob"), "{ids:?}");
    assert_eq!(
        b.get_json("/admin/webhooks")["webhooks"][0]["state"],
        "running"
    );
}

#[test]
fn a_job_pushes_this_nodes_writes_to_another_node() {
    let a = students_node();
    let b = students_node();
    let job = post(
        &a,
        "/admin/replications",
        &json!({"source": "self", "target": b.url, "targetToken": b.token, "continuous": true}),
        201,
    );
    assert_eq!(job["targetAuthenticated"], true);
    // This node's own types are checked.
    let p = post(
        &a,
        "/admin/replications",
        &json!({"source": "self", "target": b.url, "types": ["Nope"]}),
        404,
    );
    assert_eq!(p["type"], "urn:mutatis:problem:unknown-type");
    let rev = a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    let (got, _) = eventually("ada on B", || b.get_doc("Student", "ada", "5"));
    assert_eq!(got, rev);
    let rev = a.create_doc("Student", "bob", "5", &student("Bob", "Byron", 1816));
    let (got, _) = eventually("bob on B", || b.get_doc("Student", "bob", "5"));
    assert_eq!(got, rev);

    // A one-shot job catches up and finishes.
    let c = students_node();
    let once = post(
        &a,
        "/admin/replications",
        &json!({"source": "self", "target": c.url, "targetToken": c.token}),
        201,
    );
    let once_id = once["id"].as_str().expect("an id").to_owned();
    let done = eventually("the one-shot job to finish", || {
        let j = a.get_json(&format!("/admin/replications/{once_id}"));
        (j["state"] != "running").then_some(j)
    });
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["progress"]["tally"]["stored"], 2, "{done}");
    assert_eq!(c.count_docs("Student"), 2);

    // A refusal (a token C does not know) fails a job, saying why.
    let refused = post(
        &a,
        "/admin/replications",
        &json!({"source": "self", "target": c.url, "targetToken": "mutatis_0000000000000000000000000000000000000000000000000000000000000000", "continuous": true}),
        201,
    );
    let refused_id = refused["id"].as_str().expect("an id").to_owned();
    let failed = eventually("the refused job to fail", || {
        let j = a.get_json(&format!("/admin/replications/{refused_id}"));
        (j["state"] != "running").then_some(j)
    });
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("401")),
        "{failed}"
    );
}

// ------------------------------------------------------------------------------ receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// The status it answered.
    answered: u16,
    /// Headers, names lower-cased.
    headers: BTreeMap<String, String>,
    /// The body.
    body: Vec<u8>,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON delivery")
    }
}

/// A minimal HTTP/1.1 server: one request per connection, answering 500 to the first
/// `failures` requests and 200 afterwards.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    fn start(failures: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = log.lock().unwrap().len();
                let answer = if n < failures { 500 } else { 200 };
                if let Some((headers, body)) = read_request(&stream) {
                    log.lock().unwrap().push(Delivery {
                        answered: answer,
                        headers,
                        body,
                    });
                    let reason = if answer == 200 {
                        "OK"
                    } else {
                        "Internal Server Error"
                    };
                    let mut s = &stream;
                    let _ = write!(
                        s,
                        "HTTP/1.1 {answer} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.flush();
                }
            }
        });
        Receiver { url, got }
    }

    /// The deliveries it acknowledged (2xx), in order.
    fn accepted(&self) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.answered == 200)
            .collect()
    }

    fn all(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The changes of the acknowledged deliveries, in order.
    fn changes(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .flat_map(|d| d.json()["changes"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

fn read_request(stream: &TcpStream) -> Option<(BTreeMap<String, String>, Vec<u8>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if !line.starts_with("POST ") {
        return None;
    }
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// `{seq, type, id, rev, deleted}` of A's own feed after `since`, as its admin sees it.
fn feed(node: &Node, since: u64) -> Vec<Value> {
    let page = node.get_json(&format!("/changes?since={since}&limit=1000"));
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| json!({"seq": c["seq"], "type": c["type"], "id": c["id"], "rev": c["rev"], "deleted": c["deleted"]}))
        .collect()
}

fn without_doc(change: &Value) -> Value {
    let mut c = change.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("doc");
    }
    c
}

#[test]
fn a_webhook_delivers_every_change_in_order_in_its_release_signed() {
    let a = students_node();
    a.create_doc("Student", "before", "5", &student("Old", "Timer", 1900));
    let start = a.last_seq().expect("a head");
    let receiver = Receiver::start(2);
    let hook = post(
        &a,
        "/admin/webhooks",
        &json!({"url": receiver.url, "types": ["Student"], "release": "3", "secret": "s3cret"}),
        201,
    );
    let id = hook["id"].as_str().expect("an id").to_owned();
    assert_eq!(hook["release"], "3");
    assert_eq!(hook["signed"], true);
    assert_eq!(hook["seq"], start, "it starts at the feed's head");
    assert!(!hook.to_string().contains("s3cret"), "{hook}");

    let ada = a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    let ada = a.update_doc("Student", "ada", "5", &ada, &student("Ada", "King", 1815));
    a.create_doc("Student", "bob", "5", &student("Bob", "Byron", 1816));
    let r = a
        .request(reqwest::Method::DELETE, "/docs/Student/bob")
        .header(
            "If-Match",
            format!("\"{}\"", a.get_doc("Student", "bob", "5").unwrap().0),
        )
        .send()
        .unwrap();
    assert!(r.status().is_success(), "delete bob: {}", r.status());
    let head = a.last_seq().expect("a head");

    // The feed lists each document once, at its latest change.
    let expected = feed(&a, start);
    assert_eq!(expected.len(), 2, "{expected:?}");
    let got = eventually("every change delivered", || {
        let got = receiver.changes();
        got.last()
            .is_some_and(|c| c["seq"].as_u64() == Some(head))
            .then_some(got)
    });
    // In feed order, each delivered once (the receiver acknowledged each delivery), every
    // document's latest change among them; an earlier change is there only if it was read
    // before the next one superseded it.
    let got_plain: Vec<Value> = got.iter().map(without_doc).collect();
    assert!(
        got_plain
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()),
        "{got_plain:?}"
    );
    for e in &expected {
        assert!(got_plain.contains(e), "{e} not delivered: {got_plain:?}");
    }
    // Documents in release 3's version (Student@3), as A itself serves release 3.
    let (_, ada_v3) = a.get_doc("Student", "ada", "3").expect("ada in release 3");
    assert!(ada_v3.get("fistAndLastName").is_some(), "{ada_v3}");
    for c in &got {
        match (c["id"].as_str(), c["deleted"].as_bool()) {
            // A batch carries its documents as they were when it was read: the last write
            // of ada is shown as A shows it in release 3; an earlier one in that version's
            // shape (its body is then the one of its rev, or of a later one), or `null` when
            // deleted since.
            (Some("ada"), Some(false)) if c["rev"] == ada.as_str() => {
                assert_eq!(c["doc"], ada_v3, "{c}")
            }
            // Bob was deleted right after: read after that, his creation carries no body.
            (Some("bob"), Some(false)) if c["doc"].is_null() => {}
            (Some(_), Some(false)) => {
                let mut fields: Vec<&String> =
                    c["doc"].as_object().expect("a document").keys().collect();
                fields.sort();
                assert_eq!(fields, ["age", "fistAndLastName"], "{c}");
            }
            (Some(_), Some(true)) => assert_eq!(c["doc"], Value::Null, "{c}"),
            _ => panic!("not a change: {c}"),
        }
    }
    assert!(got.iter().any(|c| c["rev"] == ada.as_str()));

    // The first two attempts failed and the same batch was sent again; every request was
    // signed over its body with the secret.
    let all = receiver.all();
    assert_eq!(all[0].answered, 500);
    assert_eq!(all[1].answered, 500);
    assert_eq!(all[2].answered, 200);
    assert_eq!(all[0].body, all[1].body);
    assert_eq!(all[0].body, all[2].body);
    for d in &all {
        let expected_sig = format!(
            "sha256={}",
            mutatis_server::auth::hex(&mutatis_server::webhooks::hmac_sha256(b"s3cret", &d.body))
        );
        assert_eq!(d.headers.get("mutatis-signature"), Some(&expected_sig));
        assert_eq!(d.json()["webhook"], id.as_str());
        assert_eq!(d.json()["release"], "3");
    }

    let status = eventually("the webhook's checkpoint", || {
        let s = a.get_json(&format!("/admin/webhooks/{id}"));
        (s["seq"].as_u64() == Some(head)).then_some(s)
    });
    assert_eq!(status["failures"], 2, "{status}");
    assert!(
        status["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{status}"
    );
    assert_eq!(
        a.get_json("/admin/webhooks")["webhooks"][0]["id"],
        id.as_str()
    );
    assert_eq!(delete_status(&a, &format!("/admin/webhooks/{id}")), 204);
    assert_eq!(
        a.get(&format!("/admin/webhooks/{id}")).status().as_u16(),
        404
    );

    // A release this schema set does not have is refused.
    let p = post(
        &a,
        "/admin/webhooks",
        &json!({"url": receiver.url, "release": "99"}),
        400,
    );
    assert_eq!(p["type"], "urn:mutatis:problem:unknown-release");
}

#[test]
fn a_replicated_access_change_reaches_the_targets_webhook_as_an_update() {
    let a = students_node();
    let b = students_node();
    let receiver = Receiver::start(0);
    post(&b, "/admin/webhooks", &json!({"url": receiver.url}), 201);
    pull_job(&b, &a);

    let rev = a.create_doc("Student", "ada", "5", &student("Ada", "Lovelace", 1815));
    eventually("ada's creation at B's webhook", || {
        receiver
            .changes()
            .into_iter()
            .find(|c| c["id"] == "ada" && c["rev"] == rev.as_str())
    });

    let r = a
        .request(reqwest::Method::PUT, "/docs/Student/ada/access")
        .header("If-Match", format!("\"{rev}\""))
        .json(&json!({"read": ["alice"]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let new_rev = r.json::<Value>().unwrap()["rev"]
        .as_str()
        .expect("a rev")
        .to_owned();
    assert_ne!(new_rev, rev);

    let change = eventually("the access change at B's webhook", || {
        receiver
            .changes()
            .into_iter()
            .find(|c| c["id"] == "ada" && c["rev"] == new_rev.as_str())
    });
    assert_eq!(change["type"], "Student");
    assert_eq!(change["deleted"], false);
    // The body did not change; the document is still there, in release 5 (the default).
    assert_eq!(change["doc"], student("Ada", "Lovelace", 1815));
    let b_access = b.get_json("/docs/Student/ada/access");
    assert_eq!(b_access["access"], json!({"read": ["alice"]}));
}
