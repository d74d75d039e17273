//! Numbers through the real `mutatis serve` on `examples/students` (`Student@5` keeps
//! `yearOfBirth`; release 3 reads `age` = referenceYear − yearOfBirth through a CEL
//! `convert`): a number is stored exactly as written or refused with 422 naming its JSON
//! pointer, and what release 5 accepts, release 3 reads.

mod support;

use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use support::students_node;

/// A 422 `invalid-document` whose one error names `pointer`.
fn refused_at(r: Response, pointer: &str, number: &str) {
    assert_eq!(r.status().as_u16(), 422);
    let p: Value = r.json().unwrap();
    assert_eq!(p["type"], "urn:mutatis:problem:invalid-document", "{p}");
    assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
    let message = p["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(number), "{p}");
}

#[test]
fn numbers_are_stored_exactly_or_refused_and_every_release_reads_them() {
    let node = students_node();
    let post = |id: &str, body: String| {
        node.request(Method::POST, &format!("/docs/Student?id={id}"))
            .header("Mutatis-Release", "5")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    // Each of these used to be stored as another number.
    for (i, number) in [
        "123456789012345678901234567890",
        "18446744073709551616",
        "-9223372036854775809",
        "2000.0000000000000000001",
        "1e400",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(r#"{{"firstName": "A", "lastName": "B", "yearOfBirth": {number}}}"#);
        refused_at(post(&format!("big{i}"), body), "/yearOfBirth", number);
        assert!(node.get_doc("Student", &format!("big{i}"), "5").is_none());
    }

    // `1990.0` is an integer to JSON Schema, so release 5 accepts it; release 3 reads it.
    let r = post(
        "ada",
        r#"{"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990.0}"#.into(),
    );
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let (_, v5) = node.get_doc("Student", "ada", "5").unwrap();
    assert_eq!(
        v5,
        json!({"firstName": "Ada", "lastName": "Lovelace", "yearOfBirth": 1990})
    );
    let (rev, v3) = node.get_doc("Student", "ada", "3").unwrap();
    assert_eq!(v3, json!({"fistAndLastName": "Ada Lovelace", "age": 36}));

    // Integers at the edge of 64 bits are stored as written, byte for byte.
    let r = post(
        "edge",
        r#"{"firstName": "E", "lastName": "F", "yearOfBirth": -9223372036854775808}"#.into(),
    );
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let raw = node.get_raw("Student", "edge", "5");
    assert!(
        String::from_utf8_lossy(&raw.bytes).contains("\"yearOfBirth\":-9223372036854775808"),
        "{}",
        String::from_utf8_lossy(&raw.bytes)
    );

    // A JSON Patch is read the same way, in any release.
    let r = node
        .request(Method::PATCH, "/docs/Student/ada")
        .header("Mutatis-Release", "3")
        .header("Content-Type", "application/json-patch+json")
        .header("If-Match", format!("\"{rev}\""))
        .body(r#"[{"op": "replace", "path": "/age", "value": 36.00000000000000000001}]"#)
        .send()
        .unwrap();
    refused_at(r, "/0/value", "36.00000000000000000001");
    // …and `37.0` is the age 37.
    let r = node
        .request(Method::PATCH, "/docs/Student/ada")
        .header("Mutatis-Release", "3")
        .header("Content-Type", "application/json-patch+json")
        .header("If-Match", format!("\"{rev}\""))
        .body(r#"[{"op": "replace", "path": "/age", "value": 37.0}]"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    let (_, v5) = node.get_doc("Student", "ada", "5").unwrap();
    assert_eq!(v5["yearOfBirth"], json!(1989));
}
