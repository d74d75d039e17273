//! Every example schema set served by the real `mutatis serve`, driven over plain HTTP (what
//! curl sends) by a client of every release: each served release creates a document, every
//! other served release reads it in its own version (the expected body is computed here with
//! the schema set's own plans), the oldest served release updates it and the newest still sees
//! everything it saw; every unsupported release is refused with the problem that names the
//! oldest supported one; deprecated releases get their headers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mutatis_lens::Params;
use mutatis_schema::{ReleaseStatus, SchemaSet};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str =
    "mutatis_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The server and the expectations translate with the same reference date.
const REFERENCE_DATE: &str = "2026-06-01";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mutatis"))
            .arg("serve")
            .arg(dir)
            .arg("--data")
            .arg(data.path().join("store.redb"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--reference-date",
                REFERENCE_DATE,
            ])
            .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some((_, at)) = line.split_once(" at ") {
                url = Some(at.trim().to_owned());
                break;
            }
        }
        Server {
            child,
            url: url.expect("the server prints its URL"),
            _data: data,
        }
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
    p.insert("referenceYear".into(), json!(2026));
    p
}

fn etag(r: &Response) -> String {
    let tag = r.headers()["etag"].to_str().unwrap().trim_matches('"');
    tag.split(';').next().unwrap().to_owned()
}

/// Drive one example: `sample` is a valid document of the current release's version of
/// `type_name`; `edit_oldest` changes the oldest served release's view of it, and
/// `expect_newest` makes the same change to the newest release's view (what the newest must
/// read afterwards: the edit, and everything else it saw).
fn drive(
    name: &str,
    type_name: &str,
    sample: Value,
    edit_oldest: impl Fn(&mut Value),
    expect_newest: impl Fn(&mut Value),
) {
    let dir = example(name);
    let set = SchemaSet::load(&dir).unwrap();
    let server = Server::start(&dir);
    mutatis_client::tls::install_crypto_provider();
    let http = Client::new();
    let p = params();
    let translate = |body: &Value, from: u32, to: u32| {
        set.plan(type_name, from, to)
            .unwrap()
            .translate(body, &p)
            .unwrap()
    };
    let current = set.current().version_of(type_name).unwrap();
    let served: Vec<(String, u32, ReleaseStatus)> = set
        .releases()
        .iter()
        .filter(|r| r.status != ReleaseStatus::Unsupported)
        .filter_map(|r| Some((r.name.clone(), r.version_of(type_name)?, r.status)))
        .collect();
    assert!(served.len() >= 2, "{name} serves {served:?}");
    let docs = format!("{}/docs/{type_name}", server.url);

    for (creator, cv, _) in &served {
        let id = format!("by-{creator}");
        let body = translate(&sample, current, *cv);
        let created = http
            .put(format!("{docs}/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Mutatis-Release", creator)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(
            created.status().as_u16(),
            201,
            "{name}@{creator}: {:?}",
            created.text()
        );
        let rev = etag(&created);

        for (reader, rv, status) in &served {
            let read = http
                .get(format!("{docs}/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .header("Mutatis-Release", reader)
                .send()
                .unwrap();
            assert_eq!(read.status().as_u16(), 200);
            assert_eq!(etag(&read), rev);
            let h = read.headers();
            assert_eq!(h["mutatis-release"], reader.as_str());
            assert_eq!(
                h["mutatis-versions"].to_str().unwrap(),
                format!("{type_name}={rv}")
            );
            assert_eq!(
                h.contains_key("deprecation"),
                *status == ReleaseStatus::Deprecated,
                "{name}: release {reader} is {status:?}"
            );
            let got: Value = read.json().unwrap();
            assert_eq!(
                got,
                translate(&body, *cv, *rv),
                "{name}: written by release {creator}, read by release {reader}"
            );
        }

        // The oldest served release edits a shared field and writes back what it knows:
        // the newest still has everything else it saw.
        let (oldest, _, _) = &served[0];
        let (newest, _, _) = served.last().unwrap();
        let read = |release: &str| {
            let r = http
                .get(format!("{docs}/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .header("Mutatis-Release", release)
                .send()
                .unwrap();
            let rev = etag(&r);
            (rev, r.json::<Value>().unwrap())
        };
        let (_, before) = read(newest);
        let (rev, mut old_view) = read(oldest);
        edit_oldest(&mut old_view);
        let put = http
            .put(format!("{docs}/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Mutatis-Release", oldest)
            .header("If-Match", rev)
            .json(&old_view)
            .send()
            .unwrap();
        assert_eq!(put.status().as_u16(), 200, "{name}: {:?}", put.text());
        let (_, after) = read(newest);
        let mut expected = before;
        expect_newest(&mut expected);
        assert_eq!(
            after, expected,
            "{name}: release {oldest}'s write must keep what release {newest} sees"
        );
    }

    // Unsupported releases are refused with the release to update to.
    for r in set
        .releases()
        .iter()
        .filter(|r| r.status == ReleaseStatus::Unsupported)
    {
        let refused = http
            .get(format!("{docs}/by-{}", served[0].0))
            .bearer_auth(ADMIN_TOKEN)
            .header("Mutatis-Release", &r.name)
            .send()
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = refused.json().unwrap();
        assert_eq!(
            problem["type"],
            json!("urn:mutatis:problem:unsupported-release")
        );
        assert_eq!(
            problem["oldestSupported"],
            json!(set.oldest_supported().name)
        );
    }
}

#[test]
fn todo_over_http_in_every_release() {
    drive(
        "todo",
        "todo",
        json!({"title": "paint the fence", "status": "started", "important": true}),
        |d| d["title"] = json!("edited by the oldest release"),
        |d| d["title"] = json!("edited by the oldest release"),
    );
}

#[test]
fn students_over_http_in_every_release() {
    drive(
        "students",
        "Student",
        json!({"firstName": "Mary Ann", "lastName": "Smith", "yearOfBirth": 2008}),
        // Release 3 records a birthday; release 5 sees it as a year of birth one earlier, and
        // keeps its split of the name.
        |d| d["age"] = json!(d["age"].as_i64().unwrap() + 1),
        |d| d["yearOfBirth"] = json!(d["yearOfBirth"].as_i64().unwrap() - 1),
    );
}

#[test]
fn dataone_over_http_in_every_release() {
    drive(
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
        |d| d["rightsHolder"] = json!("edited by the oldest release"),
        |d| d["rightsHolder"] = json!("edited by the oldest release"),
    );
}

#[test]
fn syft_over_http_in_every_release() {
    drive(
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
        |d| d["name"] = json!("edited by the oldest release"),
        |d| d["name"] = json!("edited by the oldest release"),
    );
}
