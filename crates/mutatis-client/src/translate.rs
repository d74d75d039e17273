//! The client's side of translation, for a type whose [`Route`] is local (the server is
//! older): bodies go down to the server's version before they are sent, come back up after
//! they are read, and patches go down op by op. Pure: a function of the client's schema set.

use mutatis_lens::{LensError, Params};
use mutatis_schema::SchemaSet;
use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::plan::Route;

/// A body the client is about to send, in the version the wire speaks.
///
/// For a local route the body is first checked against the client's version (so errors point
/// into the document the application wrote), then translated down. With `stored` — the
/// server's current document, in the wire version — the translation is merged onto it, so
/// fields the server's version keeps and the client's cannot express are not erased.
pub fn outgoing(
    set: &SchemaSet,
    params: &Params,
    type_name: &str,
    route: Route,
    body: &Value,
    stored: Option<&Value>,
) -> Result<Value, Error> {
    let Route::Local { client, server } = route else {
        return Ok(body.clone());
    };
    set.validate(type_name, client, body)
        .map_err(|issues| Error::Invalid {
            type_name: type_name.to_owned(),
            errors: issues
                .into_iter()
                .map(|i| FieldError {
                    pointer: i.pointer,
                    message: i.message,
                })
                .collect(),
        })?;
    let plan = set.plan(type_name, client, server)?;
    let out = match stored {
        Some(stored) => plan.translate_onto(body, stored, params),
        None => plan.translate(body, params),
    };
    out.map_err(|source| translate_error(type_name, client, server, source))
}

/// A body the client has read, in its own version.
pub fn incoming(
    set: &SchemaSet,
    params: &Params,
    type_name: &str,
    route: Route,
    body: Value,
) -> Result<Value, Error> {
    let Route::Local { client, server } = route else {
        return Ok(body);
    };
    set.plan(type_name, server, client)?
        .translate(&body, params)
        .map_err(|source| translate_error(type_name, server, client, source))
}

/// How a JSON Patch goes to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum OutgoingPatch {
    /// Send this patch (in the wire version).
    Send(Value),
    /// The lenses cannot carry the patch without seeing the document: read the document,
    /// apply the patch on the client's side and write the result back.
    ReadModifyWrite,
}

/// A JSON Patch written in the client's version, for the wire.
pub fn outgoing_patch(
    set: &SchemaSet,
    params: &Params,
    type_name: &str,
    route: Route,
    patch: &Value,
) -> Result<OutgoingPatch, Error> {
    let Route::Local { client, server } = route else {
        return Ok(OutgoingPatch::Send(patch.clone()));
    };
    let schema = set.schema(type_name, client)?;
    match set
        .plan(type_name, client, server)?
        .translate_patch_with_params(patch, Some(schema), params)
    {
        Ok(p) => Ok(OutgoingPatch::Send(p)),
        Err(e) if is_untranslatable(&e) => Ok(OutgoingPatch::ReadModifyWrite),
        Err(source) => Err(translate_error(type_name, client, server, source)),
    }
}

fn is_untranslatable(e: &LensError) -> bool {
    match e {
        LensError::Untranslatable { .. } => true,
        LensError::AtLine { source, .. } => is_untranslatable(source),
        _ => false,
    }
}

fn translate_error(type_name: &str, from: u32, to: u32, source: LensError) -> Error {
    Error::Translate {
        type_name: type_name.to_owned(),
        from,
        to,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// `note@1` has a `legacy` field that `note@2` removes; `note@2` splits `name`.
    fn set() -> SchemaSet {
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "name: notes\nreleases:\n  - {name: a, types: {note: 1}, status: supported}\n  - {name: b, types: {note: 2}, status: current}\nstorage:\n  note: {version: 2, strategy: lazy}\n".to_owned(),
            ),
            (
                PathBuf::from("types/note.yaml"),
                r#"type: note
versions:
  1:
    schema:
      type: object
      properties:
        name: {type: string}
        legacy: {type: string, default: ""}
      required: [name]
      additionalProperties: false
  2:
    lens:
      - remove: {name: legacy, type: string, default: ""}
      - split: {name: name, into: [first, last], separator: " "}
"#
                .to_owned(),
            ),
        ])
        .unwrap()
    }

    const LOCAL: Route = Route::Local {
        client: 2,
        server: 1,
    };

    #[test]
    fn the_server_route_passes_bodies_through() {
        let s = set();
        let body = json!({"anything": 1});
        let route = Route::Server { version: 2 };
        assert_eq!(
            outgoing(&s, &Params::new(), "note", route, &body, None).unwrap(),
            body
        );
        assert_eq!(
            incoming(&s, &Params::new(), "note", route, body.clone()).unwrap(),
            body
        );
    }

    #[test]
    fn local_route_translates_both_ways() {
        let s = set();
        let p = Params::new();
        let v2 = json!({"first": "Ada", "last": "Lovelace"});
        let v1 = outgoing(&s, &p, "note", LOCAL, &v2, None).unwrap();
        assert_eq!(v1["name"], "Ada Lovelace");
        assert_eq!(incoming(&s, &p, "note", LOCAL, v1).unwrap(), v2);
    }

    #[test]
    fn writing_onto_the_stored_document_keeps_what_the_client_cannot_see() {
        let s = set();
        let p = Params::new();
        let stored = json!({"name": "Ada Lovelace", "legacy": "keep me"});
        let v2 = json!({"first": "Ada", "last": "King"});
        let onto = outgoing(&s, &p, "note", LOCAL, &v2, Some(&stored)).unwrap();
        assert_eq!(onto, json!({"name": "Ada King", "legacy": "keep me"}));
        // Without the stored document the field would get its default.
        let plain = outgoing(&s, &p, "note", LOCAL, &v2, None).unwrap();
        assert_ne!(plain.get("legacy"), Some(&json!("keep me")));
    }

    #[test]
    fn local_writes_are_validated_in_the_clients_version() {
        let s = set();
        let err = outgoing(
            &s,
            &Params::new(),
            "note",
            LOCAL,
            &json!({"first": 7, "last": "x"}),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { errors, .. } if errors[0].pointer == "/first"),
            "{err:?}"
        );
    }

    #[test]
    fn patches_translate_or_ask_for_read_modify_write() {
        let s = set();
        let p = Params::new();
        // A write to one part of a split cannot be carried without the other part.
        let patch = json!([{"op": "replace", "path": "/last", "value": "King"}]);
        assert_eq!(
            outgoing_patch(&s, &p, "note", LOCAL, &patch).unwrap(),
            OutgoingPatch::ReadModifyWrite
        );
        let whole = json!([{"op": "test", "path": "/first", "value": "Ada"}]);
        assert!(matches!(
            outgoing_patch(&s, &p, "note", Route::Server { version: 2 }, &whole).unwrap(),
            OutgoingPatch::Send(sent) if sent == whole
        ));
    }
}
