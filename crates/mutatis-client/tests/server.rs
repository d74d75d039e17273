//! The client against the real `mutatis serve` binary: a server of the same schema set (the
//! server translates), an older server (the client translates), and every served release of
//! each example set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mutatis_client::{ChangesOptions, Client, Deprecation, Error, Route};
use mutatis_lens::Params;
use mutatis_schema::{ReleaseStatus, SchemaSet};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str =
    "mutatis_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Both sides translate with the same reference date, so ages and years of birth are exact.
const REFERENCE_DATE: &str = "2026-06-01";
const REFERENCE_YEAR: i64 = 2026;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// The `mutatis` binary, built once per test run (cargo cannot hand one package's tests
/// another package's binary).
fn mutatis_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test binary lives in target/<profile>/deps; the binary in target/<profile>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-q", "-p", "mutatis"])
            .current_dir(workspace());
        if release {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "cargo build -p mutatis failed");
        let bin = profile_dir.join(format!("mutatis{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// A running `mutatis serve`, killed on drop.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(mutatis_bin())
            .arg("serve")
            .arg(dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data.path().join("store.redb"))
            .arg("--reference-date")
            .arg(REFERENCE_DATE)
            .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = match lines.next() {
                Some(line) => line.unwrap(),
                None => {
                    let status = child.wait().unwrap();
                    panic!("mutatis serve exited before printing its URL: {status}");
                }
            };
            if let Some((_, url)) = line.split_once(" at ") {
                if line.contains(" serving ") {
                    break url.trim().to_owned();
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            url,
            _data: data,
        }
    }

    fn client(&self, set: &Arc<SchemaSet>, release: &str) -> Client {
        self.client_with(set, release, |b| b)
    }

    fn client_with(
        &self,
        set: &Arc<SchemaSet>,
        release: &str,
        configure: impl FnOnce(mutatis_client::ClientBuilder) -> mutatis_client::ClientBuilder,
    ) -> Client {
        let builder = Client::builder(&self.url)
            .schema_set(set.clone())
            .release(release)
            .token(ADMIN_TOKEN)
            .params(params());
        configure(builder).build().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn params() -> Params {
    let mut p = Params::new();
    p.insert("referenceDate".into(), json!(REFERENCE_DATE));
    p.insert("referenceYear".into(), json!(REFERENCE_YEAR));
    p
}

fn load(dir: &Path) -> Arc<SchemaSet> {
    Arc::new(SchemaSet::load(dir).unwrap())
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test(flavor = "multi_thread")]
async fn release_3_and_release_5_clients_share_a_document() {
    let server = Server::start(&example("students"));
    let set = load(&example("students"));
    let notices: Arc<Mutex<Vec<Deprecation>>> = Arc::default();
    let seen = notices.clone();
    let c3 = server.client_with(&set, "3", |b| {
        b.on_deprecation(move |d| seen.lock().unwrap().push(d.clone()))
    });
    let c5_notices: Arc<Mutex<Vec<Deprecation>>> = Arc::default();
    let seen5 = c5_notices.clone();
    let c5 = server.client_with(&set, "5", |b| {
        b.on_deprecation(move |d| seen5.lock().unwrap().push(d.clone()))
    });
    assert_eq!(
        c5.route("Student").await.unwrap(),
        Route::Server { version: 5 }
    );

    let v5 = json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990});
    let created = c5.create("Student", Some("ada"), &v5).await.unwrap();
    assert_eq!(created.id, "ada");

    // Release 3 reads it in Student@3.
    let doc3 = c3.get("Student", "ada").await.unwrap();
    assert_eq!(doc3.rev, created.rev);
    assert_eq!(
        doc3.body,
        json!({"fistAndLastName": "Ada Lovelace", "age": REFERENCE_YEAR - 1990})
    );

    // Release 3 renames her; release 5 still sees her year of birth, in its own shape.
    let mut edit = doc3.body.clone();
    edit["fistAndLastName"] = json!("Ada King");
    let w3 = c3
        .put("Student", "ada", &edit, Some(&doc3.rev))
        .await
        .unwrap();
    let doc5 = c5.get("Student", "ada").await.unwrap();
    assert_eq!(doc5.rev, w3.rev);
    assert_eq!(
        doc5.body,
        json!({"firstName": "Ada", "lastName": "King", "yearOfBirth": 1990})
    );

    // Deprecation: reported once for release 3, with its sunset date; never for release 5.
    let n = notices.lock().unwrap().clone();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].release, "3");
    assert_eq!(n[0].sunset.as_deref(), Some("2027-09-01"));
    assert!(n[0].deprecated_at.is_some());
    assert!(c5_notices.lock().unwrap().is_empty());

    // A JSON Patch from release 3, translated by the server.
    let patch = json!([{"op": "replace", "path": "/age", "value": REFERENCE_YEAR - 1991}]);
    let w = c3.patch("Student", "ada", &patch, &w3.rev).await.unwrap();
    let doc5 = c5.get("Student", "ada").await.unwrap();
    assert_eq!(doc5.rev, w.rev);
    assert_eq!(doc5.body["yearOfBirth"], 1991);
    assert_eq!(doc5.body["lastName"], "King");

    // The feed, in each client's version.
    let opts = ChangesOptions {
        include_docs: true,
        ..ChangesOptions::default()
    };
    let feed3 = c3.changes(0, &opts).await.unwrap();
    let last = feed3.results.last().unwrap();
    assert_eq!(last.id, "ada");
    assert_eq!(last.rev, w.rev);
    assert_eq!(keys(last.doc.as_ref().unwrap()), ["age", "fistAndLastName"]);
    let feed5 = c5.changes(0, &opts).await.unwrap();
    assert_eq!(feed5.last_seq, feed3.last_seq);
    assert_eq!(
        feed5.results.last().unwrap().doc.as_ref().unwrap(),
        &doc5.body
    );
    assert_eq!(notices.lock().unwrap().len(), 1, "still reported only once");

    // A long poll answers with the next write (whether it lands before or during the wait).
    let since = feed5.last_seq;
    let waiter = {
        let c5 = c5.clone();
        tokio::spawn(async move {
            let opts = ChangesOptions {
                include_docs: true,
                longpoll: Some(Duration::from_secs(30)),
                ..ChangesOptions::default()
            };
            c5.changes(since, &opts).await
        })
    };
    let mut edit = c3.get("Student", "ada").await.unwrap();
    edit.body["fistAndLastName"] = json!("Ada Byron");
    let w = c3
        .put("Student", "ada", &edit.body, Some(&edit.rev))
        .await
        .unwrap();
    let woke = waiter.await.unwrap().unwrap();
    assert_eq!(woke.results.len(), 1, "{woke:?}");
    assert_eq!(woke.results[0].rev, w.rev);
    assert_eq!(woke.results[0].doc.as_ref().unwrap()["lastName"], "Byron");
    assert!(woke.last_seq > since);
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_errors() {
    let server = Server::start(&example("students"));
    let set = load(&example("students"));
    let c5 = server.client(&set, "5");

    // A retired release is told to update, with the oldest release still served.
    let c2 = server.client(&set, "2");
    let err = c2.get("Student", "nobody").await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { release, oldest_supported: Some(o), .. } if release == "2" && o == "3"),
        "{err:?}"
    );
    let err = c2
        .create("Student", None, &json!({"name": "x", "age": 3}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    // Schema failure, with the pointer into the client's document.
    let err = c5
        .create(
            "Student",
            None,
            &json!({"firstName": 7, "lastName": "X", "yearOfBirth": 2000}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { errors, .. } if errors.iter().any(|e| e.pointer == "/firstName")),
        "{err:?}"
    );

    // Stale revision.
    let body = json!({"firstName": "Grace", "lastName": "Hopper", "yearOfBirth": 1906});
    let w1 = c5.create("Student", Some("grace"), &body).await.unwrap();
    let mut edit = body.clone();
    edit["lastName"] = json!("Murray");
    let w2 = c5
        .put("Student", "grace", &edit, Some(&w1.rev))
        .await
        .unwrap();
    let err = c5
        .put("Student", "grace", &body, Some(&w1.rev))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { current_rev: Some(r), .. } if *r == w2.rev),
        "{err:?}"
    );
    // Creating over an existing document is a conflict too.
    let err = c5.put("Student", "grace", &body, None).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    // Delete, then not found.
    c5.delete("Student", "grace", &w2.rev).await.unwrap();
    let err = c5.get("Student", "grace").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // No token.
    let anonymous = Client::builder(&server.url)
        .schema_set(set.clone())
        .release("5")
        .build()
        .unwrap();
    let err = anonymous.get("Student", "ada").await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    // /meta answers everyone.
    assert!(anonymous
        .meta()
        .await
        .unwrap()
        .types
        .contains_key("Student"));

    // A reader may not write.
    let http = mutatis_client::tls::http_client_builder().build().unwrap();
    let created: Value = http
        .post(format!("{}/admin/tokens", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "viewer", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = Client::builder(&server.url)
        .schema_set(set.clone())
        .release("5")
        .token(created["token"].as_str().unwrap())
        .build()
        .unwrap();
    let err = reader.create("Student", None, &body).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");

    // Pagination.
    for i in 0..5 {
        let b = json!({"firstName": format!("S{i}"), "lastName": "L", "yearOfBirth": 2000 + i});
        c5.create("Student", Some(&format!("s{i}")), &b)
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = reader
            .list("Student", after.as_deref(), Some(2))
            .await
            .unwrap();
        assert!(page.docs.len() <= 2);
        ids.extend(page.docs.iter().map(|d| d.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["s0", "s1", "s2", "s3", "s4"]);
}

/// `examples/students` without version 5: release 4 is current.
fn students_without_v5(into: &Path) {
    std::fs::create_dir_all(into.join("types")).unwrap();
    let settings = std::fs::read_to_string(example("students").join("mutatis.yaml")).unwrap();
    let mut out = String::new();
    for line in settings.lines() {
        if line.contains("name: \"5\"") {
            continue;
        }
        let line = line
            .replace(
                "status: deprecated, deprecated: 2026-09-01, sunset: 2028-03-01",
                "status: current",
            )
            .replace("Student: {version: 5,", "Student: {version: 4,");
        out.push_str(&line);
        out.push('\n');
    }
    assert!(out.contains("{Student: 4}, status: current"), "{out}");
    std::fs::write(into.join("mutatis.yaml"), out).unwrap();
    let ty = std::fs::read_to_string(example("students").join("types/Student.yaml")).unwrap();
    let cut = ty.find("\n  5:").expect("Student.yaml has a version 5");
    std::fs::write(into.join("types/Student.yaml"), &ty[..cut + 1]).unwrap();
    let check = SchemaSet::load(into).unwrap();
    assert_eq!(check.versions("Student").unwrap(), [1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_5_client_translates_for_an_older_server() {
    let dir = tempfile::tempdir().unwrap();
    students_without_v5(dir.path());
    let server = Server::start(dir.path());
    let ours = load(&example("students"));
    let c5 = server.client(&ours, "5");
    // A release-4 client of the server's own set: it reads what the server stores.
    let theirs = load(dir.path());
    let c4 = server.client(&theirs, "4");

    assert_eq!(
        c5.route("Student").await.unwrap(),
        Route::Local {
            client: 5,
            server: 4
        }
    );

    let v5 = json!({"firstName": "Alan", "lastName": "Turing", "yearOfBirth": 1912});
    let w = c5.create("Student", Some("alan"), &v5).await.unwrap();
    // The server holds Student@4.
    let stored = c4.get("Student", "alan").await.unwrap();
    assert_eq!(stored.rev, w.rev);
    assert_eq!(
        stored.body,
        json!({"firstName": "Alan", "lastName": "Turing", "age": REFERENCE_YEAR - 1912})
    );
    // The release-5 client reads back what it wrote; so does one that loaded its set from a
    // manifest file instead of the folder.
    let back = c5.get("Student", "alan").await.unwrap();
    assert_eq!(back.body, v5);
    let manifest = dir.path().join("client-manifest.json");
    std::fs::write(&manifest, ours.manifest().to_string()).unwrap();
    let from_manifest = Client::builder(&server.url)
        .manifest_file(&manifest)
        .release("5")
        .token(ADMIN_TOKEN)
        .params(params())
        .build()
        .unwrap();
    assert_eq!(from_manifest.get("Student", "alan").await.unwrap(), back);

    // A later write keeps every field Student@4 holds.
    let mut edit = back.body.clone();
    edit["lastName"] = json!("M. Turing");
    let w2 = c5
        .put("Student", "alan", &edit, Some(&back.rev))
        .await
        .unwrap();
    let stored = c4.get("Student", "alan").await.unwrap();
    assert_eq!(stored.rev, w2.rev);
    assert_eq!(
        stored.body,
        json!({"firstName": "Alan", "lastName": "M. Turing", "age": REFERENCE_YEAR - 1912})
    );

    // A write from the server's side, then a patch from ours on that revision (the client
    // has not seen it: it reads it before merging).
    let mut older = stored.body.clone();
    older["firstName"] = json!("Alan Mathison");
    let w3 = c4
        .put("Student", "alan", &older, Some(&stored.rev))
        .await
        .unwrap();
    let patch = json!([{"op": "replace", "path": "/yearOfBirth", "value": 1913}]);
    let w4 = c5.patch("Student", "alan", &patch, &w3.rev).await.unwrap();
    let stored = c4.get("Student", "alan").await.unwrap();
    assert_eq!(stored.rev, w4.rev);
    assert_eq!(
        stored.body,
        json!({"firstName": "Alan Mathison", "lastName": "M. Turing", "age": REFERENCE_YEAR - 1913})
    );
    let back = c5.get("Student", "alan").await.unwrap();
    assert_eq!(
        back.body,
        json!({"firstName": "Alan Mathison", "lastName": "M. Turing", "yearOfBirth": 1913})
    );

    // A stale revision is still the server's call.
    let err = c5
        .put("Student", "alan", &back.body, Some(&w.rev))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { current_rev: Some(r), .. } if *r == w4.rev),
        "{err:?}"
    );

    // A body that is not a valid Student@5 is refused before anything is sent, with the
    // pointer into the client's own document.
    let err = c5
        .create(
            "Student",
            None,
            &json!({"firstName": "A", "lastName": "B", "yearOfBirth": "old"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { errors, .. } if errors[0].pointer == "/yearOfBirth"),
        "{err:?}"
    );

    // Lists and the feed come back in Student@5.
    let page = c5.list("Student", None, None).await.unwrap();
    assert_eq!(page.docs.len(), 1);
    assert_eq!(page.docs[0].body, back.body);
    let feed = c5
        .changes(
            0,
            &ChangesOptions {
                include_docs: true,
                ..ChangesOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(feed.results.last().unwrap().doc.as_ref(), Some(&back.body));
}

/// A type whose version 2 drops a field version 1 has (`legacy`) and splits another (`name`):
/// a client of version 2 against a server of version 1 must write onto the stored document, or
/// `legacy` would be reset, and must apply a patch to one half of the split name itself.
/// Releases are named `{prefix}1` (note@1) and `{prefix}2` (note@2); storage stays at note@1.
fn notes(into: &Path, with_v2: bool, prefix: &str) {
    std::fs::create_dir_all(into.join("types")).unwrap();
    let mut settings = format!(
        "name: notes\nstorage:\n  note: {{version: 1, strategy: lazy}}\nreleases:\n  - {{name: {prefix}1, types: {{note: 1}}, status: current}}\n"
    );
    let mut ty = "type: note\nversions:\n  1:\n    schema:\n      type: object\n      properties:\n        title: {type: string}\n        name: {type: string}\n        legacy: {type: string, default: \"\"}\n      required: [title, name]\n      additionalProperties: false\n".to_owned();
    if with_v2 {
        settings = settings.replace("status: current", "status: supported");
        settings.push_str(&format!(
            "  - {{name: {prefix}2, types: {{note: 2}}, status: current}}\n"
        ));
        ty.push_str("  2:\n    lens:\n      - remove: {name: legacy, type: string, default: \"\"}\n      - split: {name: name, into: [first, last], separator: \" \"}\n");
    }
    std::fs::write(into.join("mutatis.yaml"), settings).unwrap();
    std::fs::write(into.join("types/note.yaml"), ty).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_an_older_server_keep_what_the_client_cannot_see() {
    let server_dir = tempfile::tempdir().unwrap();
    notes(server_dir.path(), false, "r");
    let client_dir = tempfile::tempdir().unwrap();
    notes(client_dir.path(), true, "r");
    let server = Server::start(server_dir.path());
    let old = server.client(&load(server_dir.path()), "r1");
    let new = server.client(&load(client_dir.path()), "r2");
    assert_eq!(
        new.route("note").await.unwrap(),
        Route::Local {
            client: 2,
            server: 1
        }
    );

    let w = old
        .create(
            "note",
            Some("n"),
            &json!({"title": "t", "name": "Ada Lovelace", "legacy": "keep me"}),
        )
        .await
        .unwrap();
    let doc = new.get("note", "n").await.unwrap();
    assert_eq!(
        doc.body,
        json!({"title": "t", "first": "Ada", "last": "Lovelace"})
    );
    assert_eq!(doc.rev, w.rev);
    let mut edit = doc.body.clone();
    edit["title"] = json!("t2");
    let w2 = new.put("note", "n", &edit, Some(&doc.rev)).await.unwrap();
    let stored = old.get("note", "n").await.unwrap();
    assert_eq!(stored.rev, w2.rev);
    assert_eq!(
        stored.body,
        json!({"title": "t2", "name": "Ada Lovelace", "legacy": "keep me"})
    );

    // A fresh client (empty cache) reads the stored document before it writes.
    let fresh = server.client(&load(client_dir.path()), "r2");
    edit["title"] = json!("t3");
    let w3 = fresh.put("note", "n", &edit, Some(&w2.rev)).await.unwrap();
    let stored = old.get("note", "n").await.unwrap();
    assert_eq!(stored.rev, w3.rev);
    assert_eq!(stored.body["legacy"], "keep me");
    assert_eq!(stored.body["title"], "t3");

    // A patch the lenses carry (to `title`) and one they cannot (to one half of the split
    // `name`): the client applies the second itself and writes the result onto the stored
    // document.
    let w4 = fresh
        .patch(
            "note",
            "n",
            &json!([{"op": "replace", "path": "/title", "value": "t4"}]),
            &w3.rev,
        )
        .await
        .unwrap();
    let w5 = fresh
        .patch(
            "note",
            "n",
            &json!([{"op": "replace", "path": "/last", "value": "King"}]),
            &w4.rev,
        )
        .await
        .unwrap();
    let stored = old.get("note", "n").await.unwrap();
    assert_eq!(stored.rev, w5.rev);
    assert_eq!(
        stored.body,
        json!({"title": "t4", "name": "Ada King", "legacy": "keep me"})
    );
    // A patch on a stale revision is a conflict, as the server would say.
    let err = fresh
        .patch(
            "note",
            "n",
            &json!([{"op": "replace", "path": "/last", "value": "Byron"}]),
            &w4.rev,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { current_rev: Some(r), .. } if *r == w5.rev),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_loses_a_version_is_asked_again() {
    let server_dir = tempfile::tempdir().unwrap();
    notes(server_dir.path(), true, "server-");
    let client_dir = tempfile::tempdir().unwrap();
    // The client's releases have other names: it asks by version (`Mutatis-Versions`).
    notes(client_dir.path(), true, "app-");
    let server = Server::start(server_dir.path());
    let client = server.client(&load(client_dir.path()), "app-2");
    assert_eq!(
        client.route("note").await.unwrap(),
        Route::Server { version: 2 }
    );
    let body = json!({"title": "t", "first": "Ada", "last": "Lovelace"});
    client.create("note", Some("n1"), &body).await.unwrap();

    // The server is reloaded without note@2: the cached /meta is stale.
    std::fs::remove_dir_all(server_dir.path()).unwrap();
    notes(server_dir.path(), false, "server-");
    let reload = mutatis_client::tls::http_client_builder()
        .build()
        .unwrap()
        .post(format!("{}/admin/reload?force=true", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(reload.status().is_success(), "{:?}", reload.text().await);

    // The server refuses note=2; the client reads /meta again and translates on its side.
    let doc = client.get("note", "n1").await.unwrap();
    assert_eq!(doc.body, body);
    assert_eq!(
        client.route("note").await.unwrap(),
        Route::Local {
            client: 2,
            server: 1
        }
    );
}

/// Every served release of an example set: create in each, read back in every other, update
/// from the oldest, and check that the newest still sees everything it had.
async fn drive_example(name: &str, type_name: &str, sample: Value, field: &str) {
    let dir = example(name);
    let server = Server::start(&dir);
    let set = load(&dir);
    let served: Vec<String> = set
        .releases()
        .iter()
        .filter(|r| r.status != ReleaseStatus::Unsupported)
        .map(|r| r.name.clone())
        .collect();
    assert!(served.len() >= 2, "{name} serves {served:?}");
    let clients: Vec<(String, u32, Client)> = served
        .iter()
        .map(|r| {
            let v = set.release_version(r, type_name).unwrap();
            (r.clone(), v, server.client(&set, r))
        })
        .collect();
    let current = set.current().version_of(type_name).unwrap();
    let p = params();
    let translate = |body: &Value, from: u32, to: u32| {
        set.plan(type_name, from, to)
            .unwrap()
            .translate(body, &p)
            .unwrap()
    };

    for (creator, cv, client) in &clients {
        let body = translate(&sample, current, *cv);
        let id = format!("made-by-{creator}");
        let w = client
            .create(type_name, Some(&id), &body)
            .await
            .unwrap_or_else(|e| panic!("{name}: release {creator} create: {e}"));
        for (reader, rv, other) in &clients {
            let doc = other.get(type_name, &id).await.unwrap();
            assert_eq!(doc.rev, w.rev);
            assert_eq!(
                doc.body,
                translate(&body, *cv, *rv),
                "{name}: written by release {creator}, read by release {reader}"
            );
        }

        // The oldest served release changes one field it shares with every other.
        let (oldest, _, old_client) = &clients[0];
        let (newest, _, new_client) = clients.last().unwrap();
        let before = new_client.get(type_name, &id).await.unwrap();
        let doc = old_client.get(type_name, &id).await.unwrap();
        let mut edit = doc.body.clone();
        edit[field] = json!("changed by the oldest release");
        old_client
            .put(type_name, &id, &edit, Some(&doc.rev))
            .await
            .unwrap();
        let after = new_client.get(type_name, &id).await.unwrap();
        let mut expected = before.body.clone();
        expected[field] = json!("changed by the oldest release");
        assert_eq!(
            after.body, expected,
            "{name}: release {oldest}'s write must keep what release {newest} sees (made by {creator})"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn todo_through_every_release() {
    // `started` has no release-4 (todo@2) spelling: a release-4 write must keep it.
    drive_example(
        "todo",
        "todo",
        json!({"title": "paint the fence", "status": "started", "important": true}),
        "title",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dataone_through_every_release() {
    drive_example(
        "dataone",
        "SystemMetadata",
        json!({
            "identifier": "doi:10.5063/F1",
            "formatId": "eml://ecoinformatics.org/eml-2.1.1",
            "size": 2048,
            "checksum": {"algorithm": "SHA-256", "value": "ab12"},
            "rightsHolder": "CN=alice",
            "submitter": "CN=alice",
            "seriesId": "series-7",
            "fileName": "data.xml",
            "mediaType": {"name": "text/xml", "property": [{"name": "charset", "value": "utf-8"}]}
        }),
        "rightsHolder",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syft_through_every_release() {
    drive_example(
        "syft",
        "NodeMetadata",
        json!({
            "name": "canada-domain",
            "id": "a1b2",
            "verify_key": "vk",
            "highest_version": 3,
            "lowest_version": 1,
            "syft_version": "0.8.2",
            "node_type": "domain",
            "admin_email": "admin@example.org"
        }),
        "name",
    )
    .await;
}
