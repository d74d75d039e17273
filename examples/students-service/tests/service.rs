//! The built `students-service` binary over real HTTP: one `POST /students` handler written
//! against `Student@5` serves apps of releases 3, 4 and 5 (named or detected from the body),
//! answers each in its own version of `StudentCreated`, flags the deprecated releases, and
//! tells apps of releases 1 and 2 to update.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// The day the service is started on: releases 3 and 4 are deprecated but before their
/// sunsets, and `referenceYear` is 2026.
const TODAY: &str = "2026-12-01";

/// A running service, killed on drop.
struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start() -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_students-service"))
            .args(["--listen", "127.0.0.1:0", "--reference-date", TODAY])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the students-service binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("it prints its address");
        let addr = line
            .trim()
            .strip_prefix("students-service listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Service { child, addr }
    }

    /// A request over a connection of its own: status, headers (names in lower case), body.
    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (
            status,
            headers,
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// `POST /students` with a JSON body and, if given, `Mutatis-Release`.
    fn create(&self, release: Option<&str>, body: &Value) -> (u16, Vec<(String, String)>, Value) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(r) = release {
            headers.push(("Mutatis-Release", r));
        }
        self.request("POST", "/students", &headers, &body.to_string())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Ada Lovelace, 36 in 2026, as an app of each release sends her.
fn student_of(release: u32) -> Value {
    match release {
        1 => json!({"name": "Ada Lovelace"}),
        2 => json!({"name": "Ada Lovelace", "age": 36}),
        3 => json!({"fistAndLastName": "Ada Lovelace", "age": 36}),
        4 => json!({"firstName": "Ada", "lastName": "Lovelace", "age": 36}),
        _ => json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990}),
    }
}

/// The created student as an app of release 3, 4 or 5 reads it (without the id).
fn created_of(release: u32) -> Value {
    match release {
        3 => json!({"fistAndLastName": "Ada Lovelace", "age": 36}),
        4 => json!({"firstName": "Ada", "lastName": "Lovelace", "age": 36}),
        _ => json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990}),
    }
}

/// Releases 3 to 5 are served in their own versions, named or detected; the deprecated ones
/// are flagged; 1 and 2 are refused with `unsupported-release`, named or detected.
#[test]
fn every_release_with_and_without_a_release_header() {
    let service = Service::start();
    let mut ids = Vec::new();
    for named in [true, false] {
        for release in 1..=5u32 {
            let name = release.to_string();
            let (status, headers, mut body) =
                service.create(named.then_some(name.as_str()), &student_of(release));
            let case = format!("release {release}, named: {named}: {body}");
            if release <= 2 {
                assert_eq!(status, 400, "{case}");
                assert_eq!(
                    header(&headers, "content-type"),
                    Some("application/problem+json")
                );
                assert_eq!(
                    body["type"], "urn:mutatis:problem:unsupported-release",
                    "{case}"
                );
                assert_eq!(body["release"], name, "{case}");
                assert_eq!(body["oldestSupported"], "3", "{case}");
                assert_eq!(body["currentRelease"], "5", "{case}");
                assert_eq!(body["instance"], "/students", "{case}");
                assert_eq!(body.get("detected").is_some(), !named, "{case}");
                continue;
            }
            assert_eq!(status, 201, "{case}");
            assert_eq!(header(&headers, "mutatis-release"), Some(name.as_str()));
            assert_eq!(
                header(&headers, "mutatis-versions"),
                Some(format!("StudentCreated={}", release - 2).as_str()),
                "{case}"
            );
            let id = body
                .as_object_mut()
                .and_then(|o| o.remove("id"))
                .expect("the created student has an id");
            ids.push(id);
            assert_eq!(body, created_of(release), "{case}");
            let (deprecation, sunset) = match release {
                3 => (Some("@1772323200"), Some("Wed, 01 Sep 2027 00:00:00 GMT")),
                4 => (Some("@1788220800"), Some("Wed, 01 Mar 2028 00:00:00 GMT")),
                _ => (None, None),
            };
            assert_eq!(header(&headers, "deprecation"), deprecation, "{case}");
            assert_eq!(header(&headers, "sunset"), sunset, "{case}");
            assert_eq!(header(&headers, "link").is_some(), release < 5, "{case}");
        }
    }
    // Every create got an id of its own.
    let unique: std::collections::BTreeSet<String> = ids.iter().map(Value::to_string).collect();
    assert_eq!((ids.len(), unique.len()), (6, 6), "{ids:?}");
}

/// The handler sees the head version: a release 3 body asked back as `StudentCreated@3`
/// comes back with the first and last names apart and the age turned into a year of birth.
#[test]
fn bodies_are_translated_up_to_the_head_and_back_down() {
    let service = Service::start();
    let (status, headers, mut body) = service.request(
        "POST",
        "/students",
        &[
            ("Content-Type", "application/json"),
            ("Mutatis-Release", "3"),
            ("Mutatis-Versions", "StudentCreated=3"),
        ],
        &student_of(3).to_string(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        header(&headers, "mutatis-versions"),
        Some("StudentCreated=3")
    );
    body.as_object_mut().unwrap().remove("id");
    assert_eq!(body, created_of(5));
    // `?release=` names the release as the header does.
    let (status, _, mut body) = service.request(
        "POST",
        "/students?release=4",
        &[("Content-Type", "application/json")],
        &student_of(4).to_string(),
    );
    assert_eq!(status, 201, "{body}");
    body.as_object_mut().unwrap().remove("id");
    assert_eq!(body, created_of(4));
}

/// Invalid bodies are RFC 9457 problems: 422 with the pointers when the release is known,
/// detection failing when it is not, 415 and 400 for what is not JSON.
#[test]
fn invalid_bodies_are_problems() {
    let service = Service::start();
    let wrong_type = json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": "1990"});
    let (status, _, body) = service.create(Some("5"), &wrong_type);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:mutatis:problem:invalid-document");
    assert_eq!(body["errors"][0]["pointer"], "/yearOfBirth");
    // A body of another release's shape under a named release.
    let (status, _, body) = service.create(Some("3"), &student_of(5));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"], "the body is not a valid Student@3");
    // Without a release: no served release's shape fits.
    let (status, _, body) = service.create(None, &wrong_type);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:mutatis:problem:release-detection-failed");
    assert_eq!(body["tried"].as_array().map(Vec::len), Some(3));
    let (status, _, body) =
        service.request("POST", "/students", &[("Content-Type", "text/plain")], "{}");
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["type"], "urn:mutatis:problem:unsupported-media-type");
    let (status, _, body) = service.request(
        "POST",
        "/students",
        &[("Content-Type", "application/json")],
        "{\"firstName\": ",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:mutatis:problem:malformed-json");
    let (status, _, body) = service.create(Some("9"), &student_of(5));
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("urn:mutatis:problem:unknown-release"))
    );
}

/// Each release's OpenAPI document describes the route in that release's versions.
#[test]
fn openapi_per_release() {
    let service = Service::start();
    for (release, student, created) in [
        ("3", "Student_v3", "StudentCreated_v1"),
        ("4", "Student_v4", "StudentCreated_v2"),
        ("5", "Student_v5", "StudentCreated_v3"),
    ] {
        let (status, _, doc) =
            service.request("GET", &format!("/openapi.json?release={release}"), &[], "");
        assert_eq!(status, 200);
        assert_eq!(doc["info"]["version"], release);
        let op = &doc["paths"]["/students"]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{student}")
        );
        assert_eq!(
            op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{created}")
        );
        assert!(doc["components"]["schemas"][student].is_object());
    }
    // Releases 1 and 2 have no StudentCreated: the route is not theirs.
    let (_, _, doc) = service.request("GET", "/openapi.json?release=2", &[], "");
    assert_eq!(doc["paths"], json!({}));
}
