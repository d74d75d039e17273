//! The offline replica against the real `mutatis serve` binary: a thousand documents synced
//! down, concurrent edits on both sides synced into the same state with the same conflicts,
//! an old release's app syncing in its own version, and a retired release refused.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use mutatis_client::offline::{OfflineError, OfflineReplica, Resolution, Rev};
use mutatis_client::{Client, Error, RELEASE_HEADER};
use mutatis_lens::Params;
use mutatis_schema::SchemaSet;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str =
    "mutatis_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The server, the replica and the test translate with the same reference date, so ages and
/// years of birth are exact.
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

    /// A client of the server (its HTTP document API), speaking `release` of `set`.
    fn client(&self, set: &Arc<SchemaSet>, release: &str) -> Client {
        Client::builder(&self.url)
            .schema_set(set.clone())
            .release(release)
            .token(ADMIN_TOKEN)
            .params(params())
            .build()
            .unwrap()
    }

    /// A replica at `path` of the app's `set`, on `release`, syncing with this server.
    fn replica(&self, path: &Path, set: &Arc<SchemaSet>, release: &str) -> OfflineReplica {
        OfflineReplica::open(
            path,
            set.clone(),
            release,
            &self.url,
            Some(ADMIN_TOKEN.to_owned()),
        )
        .unwrap()
        .with_params(params())
    }

    /// `GET /docs/{type}/{id}/conflicts` in `release`: the winner's rev and the losing
    /// leaves' revs and bodies.
    async fn conflicts(&self, type_name: &str, id: &str, release: &str) -> (String, Vec<Value>) {
        let resp = mutatis_client::tls::http_client_builder()
            .build()
            .unwrap()
            .get(format!("{}/docs/{type_name}/{id}/conflicts", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .header(RELEASE_HEADER, release)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "conflicts of {id}");
        let body: Value = resp.json().await.unwrap();
        let rev = body["rev"].as_str().unwrap().to_owned();
        (rev, body["conflicts"].as_array().unwrap().clone())
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

fn student(first: &str, last: &str, year: i64) -> Value {
    json!({"firstName": first, "lastName": last, "yearOfBirth": year})
}

/// Every live Student on the server, through its HTTP API: id → (rev, body).
async fn server_docs(client: &Client) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .list("Student", after.as_deref(), Some(500))
            .await
            .unwrap();
        for d in page.docs {
            out.insert(d.id, (d.rev, d.body));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Every live Student in the replica, in the app's version: id → (rev, body).
fn replica_docs(replica: &OfflineReplica) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = replica.list("Student", after.as_deref(), 300).unwrap();
        for d in page.docs {
            out.insert(d.id, (d.rev.to_string(), d.body));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn id(i: usize) -> String {
    format!("s{i:04}")
}

fn rev(text: &str) -> Rev {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_offline_and_server_edits_converge_with_the_same_conflicts() {
    let server = Server::start(&example("students"));
    let set = load(&example("students"));
    let api = server.client(&set, "5");
    for i in 0..1000 {
        let body = student(
            &format!("First{i}"),
            &format!("Last{i}"),
            1990 + (i % 20) as i64,
        );
        api.create("Student", Some(&id(i)), &body).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let replica = server.replica(&dir.path().join("replica.redb"), &set, "5");

    // Down: every document arrives, with the server's revs.
    let first = replica.sync().await.unwrap();
    assert_eq!(first.types, ["Student"]);
    assert_eq!(first.release_status.as_deref(), Some("current"));
    assert_eq!(first.pull.stored, 1000, "{:?}", first.pull);
    assert_eq!(first.pull.conflicts, 0);
    // What came down goes back up as already known: nothing new on the server.
    assert_eq!(first.push.written(), 0, "{:?}", first.push);
    let on_server = server_docs(&api).await;
    assert_eq!(on_server.len(), 1000);
    assert_eq!(replica_docs(&replica), on_server);

    // Offline: the replica makes 1000 writes — 700 edits (s0000..s0699), 50 deletes
    // (s0700..s0749), 250 creates (r0000..r0249) — while the server makes 1000 others: 250
    // edits (s0650..s0699 and s0800..s0999, so s0650..s0699 are edited on both sides), 50
    // deletes (s0750..s0799) and 700 creates (n0000..n0699).
    for i in 0..700 {
        let doc = replica.get("Student", &id(i)).unwrap().unwrap();
        let mut body = doc.body.clone();
        body["lastName"] = json!(format!("Replica{i}"));
        replica.put("Student", &id(i), &body, &doc.rev).unwrap();
    }
    for i in 700..750 {
        let doc = replica.get("Student", &id(i)).unwrap().unwrap();
        replica.delete("Student", &id(i), &doc.rev).unwrap();
    }
    for i in 0..250 {
        let body = student(&format!("Offline{i}"), "New", 2001);
        replica
            .create("Student", &format!("r{i:04}"), &body)
            .unwrap();
    }
    for i in (650..700).chain(750..1000) {
        let doc = api.get("Student", &id(i)).await.unwrap();
        let mut body = doc.body.clone();
        body["lastName"] = json!(format!("Server{i}"));
        if (750..800).contains(&i) {
            api.delete("Student", &id(i), &doc.rev).await.unwrap();
        } else {
            api.put("Student", &id(i), &body, Some(&doc.rev))
                .await
                .unwrap();
        }
    }
    for i in 0..700 {
        let body = student(&format!("Online{i}"), "New", 2002);
        api.create("Student", Some(&format!("n{i:04}")), &body)
            .await
            .unwrap();
    }
    let report = replica.sync().await.unwrap();
    // The 50 documents edited on both sides conflict on each side, once.
    assert_eq!(report.pull.conflicts, 50, "pull {:?}", report.pull);
    assert_eq!(report.push.conflicts, 50, "push {:?}", report.push);
    // The rest: the other side's creates are new, its edits and deletes fast-forwards.
    assert_eq!(
        (report.pull.stored, report.pull.fast_forward),
        (700, 250),
        "pull {:?}",
        report.pull
    );
    assert_eq!(
        (report.push.stored, report.push.fast_forward),
        (250, 700),
        "push {:?}",
        report.push
    );
    assert_eq!(report.pull.refused + report.push.refused, 0);
    assert_eq!(report.pull.forbidden + report.push.forbidden, 0);

    // Both sides hold the same documents, with the same winning rev and body.
    let on_server = server_docs(&api).await;
    let in_replica = replica_docs(&replica);
    assert_eq!(on_server.len(), 1000 + 250 + 700 - 50 - 50);
    assert_eq!(in_replica.len(), on_server.len());
    assert_eq!(in_replica, on_server);
    // Each side's edit survives where only that side made it.
    assert_eq!(on_server[&id(10)].1["lastName"], "Replica10");
    assert_eq!(in_replica[&id(900)].1["lastName"], "Server900");
    assert!(!on_server.contains_key(&id(720)) && !in_replica.contains_key(&id(770)));
    assert!(on_server.contains_key("r0100") && in_replica.contains_key("n0500"));

    // The overlapping documents are conflicts on both sides, with the same winner and the
    // other side's edit as the one losing leaf.
    for i in 650..700 {
        let leaves = replica.conflicts("Student", &id(i)).unwrap();
        assert_eq!(leaves.len(), 1, "replica conflicts of {}", id(i));
        let (winner, server_leaves) = server.conflicts("Student", &id(i), "5").await;
        assert_eq!(winner, in_replica[&id(i)].0, "winner of {}", id(i));
        assert_eq!(server_leaves.len(), 1, "server conflicts of {}", id(i));
        assert_eq!(server_leaves[0]["rev"], leaves[0].rev.to_string());
        assert_eq!(server_leaves[0]["body"], leaves[0].body);
        let names = [
            on_server[&id(i)].1["lastName"].as_str().unwrap().to_owned(),
            leaves[0].body["lastName"].as_str().unwrap().to_owned(),
        ];
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, [format!("Replica{i}"), format!("Server{i}")]);
    }
    // Documents edited on one side only have no conflicts.
    for i in (0..1000).step_by(37).filter(|i| !(650..700).contains(i)) {
        assert!(replica.conflicts("Student", &id(i)).unwrap().is_empty());
    }
    assert!(server.conflicts("Student", &id(10), "5").await.1.is_empty());
    assert!(server
        .conflicts("Student", &id(900), "5")
        .await
        .1
        .is_empty());

    // A second sync finds nothing new in either direction.
    let again = replica.sync().await.unwrap();
    assert_eq!(again.pull.written(), 0, "{:?}", again.pull);
    assert_eq!(again.push.written(), 0, "{:?}", again.push);

    // Resolving offline (keeping the losing leaf) ends the conflict on the server too.
    let target = id(660);
    let winner = rev(&in_replica[&target].0);
    let loser = replica.conflicts("Student", &target).unwrap()[0].clone();
    let resolved = replica
        .resolve(
            "Student",
            &target,
            &winner,
            Resolution::Keep(loser.rev.clone()),
        )
        .unwrap();
    assert!(replica.conflicts("Student", &target).unwrap().is_empty());
    replica.sync().await.unwrap();
    let (server_rev, leaves) = server.conflicts("Student", &target, "5").await;
    assert_eq!(server_rev, resolved.rev.to_string());
    assert!(leaves.is_empty(), "{leaves:?}");
    assert_eq!(api.get("Student", &target).await.unwrap().body, loser.body);
}

/// The students set as an app of release 3 shipped it: versions 1 to 3, release 3 current,
/// stored in version 3. It has never heard of versions 4 and 5.
fn students_at_release_3(into: &Path) -> Arc<SchemaSet> {
    std::fs::create_dir_all(into.join("types")).unwrap();
    std::fs::write(
        into.join("mutatis.yaml"),
        r#"name: student-register
releases:
  - {name: "1", types: {Student: 1}, status: unsupported}
  - {name: "2", types: {Student: 2}, status: unsupported}
  - {name: "3", types: {Student: 3}, status: current}
storage:
  Student: {version: 3, strategy: lazy}
"#,
    )
    .unwrap();
    let ty = std::fs::read_to_string(example("students").join("types/Student.yaml")).unwrap();
    let cut = ty.find("\n  4:").expect("Student.yaml has a version 4");
    std::fs::write(into.join("types/Student.yaml"), &ty[..cut + 1]).unwrap();
    let set = load(into);
    assert_eq!(set.versions("Student").unwrap(), [1, 2, 3]);
    set
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_release_syncs_in_its_own_version() {
    let server = Server::start(&example("students"));
    let server_set = load(&example("students"));
    let api5 = server.client(&server_set, "5");
    let api3 = server.client(&server_set, "3");
    for i in 0..20 {
        let body = student(&format!("First{i}"), &format!("Last{i}"), 1990 + i as i64);
        api5.create("Student", Some(&id(i)), &body).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let app_set = students_at_release_3(&dir.path().join("set"));
    let replica = server.replica(&dir.path().join("replica.redb"), &app_set, "3");
    assert_eq!(replica.version("Student").unwrap(), 3);

    let report = replica.sync().await.unwrap();
    assert_eq!(report.pull.stored, 20, "{:?}", report.pull);
    assert_eq!(report.pull.refused, 0);
    assert_eq!(report.release_status.as_deref(), Some("deprecated"));
    assert_eq!(report.sunset.as_deref(), Some("2027-09-01"));

    // The replica reads Student@3, as the server serves it to release 3.
    for i in 0..20 {
        let local = replica.get("Student", &id(i)).unwrap().unwrap();
        assert_eq!(local.version, 3);
        assert_eq!(
            local.body,
            json!({"fistAndLastName": format!("First{i} Last{i}"), "age": REFERENCE_YEAR - 1990 - i as i64})
        );
        let remote = api3.get("Student", &id(i)).await.unwrap();
        assert_eq!(local.body, remote.body);
        assert_eq!(local.rev.to_string(), remote.rev);
    }

    // Offline edits in Student@3 reach the server, which reads them in Student@5.
    let doc = replica.get("Student", &id(4)).unwrap().unwrap();
    let mut body = doc.body.clone();
    body["fistAndLastName"] = json!("First4 King");
    replica.put("Student", &id(4), &body, &doc.rev).unwrap();
    replica
        .create(
            "Student",
            "grace",
            &json!({"fistAndLastName": "Grace Hopper", "age": 30}),
        )
        .unwrap();
    let report = replica.sync().await.unwrap();
    assert_eq!(report.push.refused, 0, "{:?}", report.push);
    assert!(report.push.written() >= 2, "{:?}", report.push);
    assert_eq!(
        api5.get("Student", &id(4)).await.unwrap().body,
        student("First4", "King", 1994)
    );
    assert_eq!(
        api5.get("Student", "grace").await.unwrap().body,
        student("Grace", "Hopper", REFERENCE_YEAR - 30)
    );
    // And the revs agree: the server stored the replica's revisions.
    let remote = api3.get("Student", "grace").await.unwrap();
    let local = replica.get("Student", "grace").unwrap().unwrap();
    assert_eq!(local.rev.to_string(), remote.rev);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_release_is_told_to_update_and_nothing_syncs() {
    // The server's set: release 3 retired.
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server-set");
    std::fs::create_dir_all(server_dir.join("types")).unwrap();
    let settings = std::fs::read_to_string(example("students").join("mutatis.yaml")).unwrap();
    let retired = settings.replace(
        "status: deprecated, deprecated: 2026-03-01, sunset: 2027-09-01",
        "status: unsupported",
    );
    assert_ne!(retired, settings);
    std::fs::write(server_dir.join("mutatis.yaml"), retired).unwrap();
    std::fs::copy(
        example("students").join("types/Student.yaml"),
        server_dir.join("types/Student.yaml"),
    )
    .unwrap();
    let server = Server::start(&server_dir);
    let api = server.client(&load(&server_dir), "5");
    api.create("Student", Some("ada"), &student("Ada", "Lovelace", 1990))
        .await
        .unwrap();

    let app_set = load(&example("students"));
    let replica = server.replica(&dir.path().join("replica.redb"), &app_set, "3");
    replica
        .create(
            "Student",
            "grace",
            &json!({"fistAndLastName": "Grace Hopper", "age": 30}),
        )
        .unwrap();
    let err = replica.sync().await.unwrap_err();
    assert!(err.is_unsupported(), "{err:?}");
    match &err {
        OfflineError::Server(Error::Unsupported {
            release,
            oldest_supported,
            current_release,
        }) => {
            assert_eq!(release, "3");
            assert_eq!(oldest_supported.as_deref(), Some("4"));
            assert_eq!(current_release.as_deref(), Some("5"));
        }
        other => panic!("not unsupported: {other:?}"),
    }
    // Nothing moved either way.
    assert!(replica.get("Student", "ada").unwrap().is_none());
    assert!(matches!(
        api.get("Student", "grace").await,
        Err(Error::NotFound { .. })
    ));
    // The offline data is still there for the updated app.
    assert!(replica.get("Student", "grace").unwrap().is_some());

    // The same app on a supported release syncs with that server.
    drop(replica);
    let replica = server.replica(&dir.path().join("replica.redb"), &app_set, "4");
    let report = replica.sync().await.unwrap();
    assert_eq!(report.pull.stored, 1, "{:?}", report.pull);
    assert_eq!(
        replica.get("Student", "ada").unwrap().unwrap().body,
        json!({"firstName": "Ada", "lastName": "Lovelace", "age": REFERENCE_YEAR - 1990})
    );
    assert_eq!(
        api.get("Student", "grace").await.unwrap().body,
        student("Grace", "Hopper", REFERENCE_YEAR - 30)
    );
}
