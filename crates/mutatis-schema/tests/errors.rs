//! Every way a schema set can be wrong is reported with the file, line, type, version and
//! JSON pointer that locate it.

use std::path::{Path, PathBuf};

use mutatis_lens::{LensError, Transforms};
use mutatis_schema::{ErrorKind, SchemaError, SchemaSet};
use serde_json::json;

const SETTINGS: &str = "\
name: todo-app
releases:
  - {name: \"1\", types: {todo: 1}, status: supported}
  - {name: \"2\", types: {todo: 2}, status: current}
";

const TODO: &str = "\
type: todo
versions:
  1:
    schema:
      type: object
      properties:
        title: {type: string}
        done: {type: boolean}
      required: [title, done]
      additionalProperties: false
  2:
    lens:
      - add: {name: important, type: boolean, default: false}
";

fn load(files: &[(&str, &str)]) -> Result<SchemaSet, SchemaError> {
    load_with(files, &Transforms::new())
}

fn load_with(files: &[(&str, &str)], transforms: &Transforms) -> Result<SchemaSet, SchemaError> {
    SchemaSet::from_sources_with(
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect(),
        transforms,
    )
}

fn type_err(todo: &str) -> SchemaError {
    load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", todo)]).unwrap_err()
}

fn settings_err(settings: &str) -> SchemaError {
    load(&[("mutatis.yaml", settings), ("types/todo.yaml", TODO)]).unwrap_err()
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"))
}

fn assert_at(err: &SchemaError, file: &str, line: usize, pointer: &str) {
    assert_eq!(err.file(), Some(Path::new(file)), "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    assert_eq!(err.pointer(), Some(pointer), "{err}");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{file}:{line}:")), "{shown}");
}

#[test]
fn the_reference_files_load() {
    let set = load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", TODO)]).unwrap();
    assert_eq!(set.versions("todo").unwrap(), [1, 2]);
}

// ------------------------------------------------------------------------------ type files

#[test]
fn malformed_yaml_names_file_and_line() {
    let bad = TODO.replace("title: {type: string}", "title: {type: string");
    let err = type_err(&bad);
    assert!(matches!(err.kind(), ErrorKind::Yaml { .. }), "{err:?}");
    assert_eq!(err.file(), Some(Path::new("types/todo.yaml")));
    let line = err.line().unwrap();
    // The parser notices the unclosed flow map on that line or just after it.
    let opened = line_of(&bad, "title: {type: string");
    assert!((opened..=opened + 2).contains(&line), "line {line}: {err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("types/todo.yaml:{line}:")),
        "{shown}"
    );
    assert!(shown.contains("malformed YAML"), "{shown}");

    let err = settings_err("name: x\nreleases: [\n");
    assert!(matches!(err.kind(), ErrorKind::Yaml { .. }), "{err:?}");
    assert_eq!(err.file(), Some(Path::new("mutatis.yaml")));
    assert!(err.line().is_some());
}

#[test]
fn yaml_alias_bomb_in_a_type_file_names_file_and_line() {
    // Nine levels of ten aliases each: 10⁹ strings if expanded.
    let mut bomb =
        String::from("x-bomb:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let items = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("  l{i}: &l{i} [{items}]\n"));
    }
    let text = format!("{TODO}{bomb}");
    let err = type_err(&text);
    assert!(matches!(err.kind(), ErrorKind::Yaml { .. }), "{err:?}");
    assert_eq!(err.file(), Some(Path::new("types/todo.yaml")));
    let line = err.line().unwrap();
    let first = line_of(&text, "l1: &l1");
    assert!((first..first + 9).contains(&line), "line {line}: {err}");
    assert!(err.to_string().contains("aliases"), "{err}");
}

#[test]
fn unknown_op_names_file_line_type_version_and_pointer() {
    let bad = format!("{TODO}      - frobnicate: {{name: x}}\n");
    let err = type_err(&bad);
    let ErrorKind::Lens(LensError::UnknownOp { name, .. }) = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(name, "frobnicate");
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "frobnicate"),
        "/versions/2/lens/1",
    );
    assert_eq!(err.type_name(), Some("todo"));
    assert_eq!(err.version(), Some(2));
    assert!(err.to_string().contains("todo@2"), "{err}");
}

#[test]
fn lens_that_does_not_fit_names_type_version_and_op() {
    let bad = TODO.replace(
        "      - add: {name: important, type: boolean, default: false}",
        "      - add: {name: important, type: boolean, default: false}\n      - rename: {source: finished, destination: complete}",
    );
    let err = type_err(&bad);
    let ErrorKind::LensMismatch { from, source } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(*from, 1);
    assert!(
        matches!(source, LensError::SchemaMismatch { .. }),
        "{source:?}"
    );
    assert!(err.to_string().contains("finished"), "{err}");
    assert_eq!(err.type_name(), Some("todo"));
    assert_eq!(err.version(), Some(2));
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "source: finished"),
        "/versions/2/lens/1",
    );

    // Adding a field the previous version already has does not fit either.
    let err = type_err(&TODO.replace("name: important", "name: done"));
    assert!(
        matches!(err.kind(), ErrorKind::LensMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn irreversible_ops_fail_at_load() {
    // A `remove` without a type cannot be undone: there is nothing to put back.
    let bad = TODO.replace(
        "      - add: {name: important, type: boolean, default: false}",
        "      - remove: {name: done}",
    );
    let err = type_err(&bad);
    assert!(
        matches!(err.kind(), ErrorKind::Lens(LensError::Irreversible { .. })),
        "{err:?}"
    );
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "remove:"),
        "/versions/2/lens/0",
    );
    // With a type it loads.
    assert!(load(&[
        ("mutatis.yaml", SETTINGS),
        (
            "types/todo.yaml",
            &bad.replace("{name: done}", "{name: done, type: boolean}")
        ),
    ])
    .is_ok());
}

#[test]
fn unregistered_transforms_fail_and_registered_ones_load() {
    let with_transform = TODO.replace(
        "      - add: {name: important, type: boolean, default: false}",
        "      - transform: {name: title, using: upper}",
    );
    let files = [
        ("mutatis.yaml", SETTINGS),
        ("types/todo.yaml", with_transform.as_str()),
    ];
    let err = load(&files).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Lens(LensError::UnknownTransform { .. })
        ),
        "{err:?}"
    );
    let mut transforms = Transforms::new();
    transforms.register_fn(
        "upper",
        |v: &serde_json::Value, _: &serde_json::Value| {
            Ok(json!(v.as_str().unwrap_or("").to_uppercase()))
        },
        |v: &serde_json::Value, _: &serde_json::Value| {
            Ok(json!(v.as_str().unwrap_or("").to_lowercase()))
        },
    );
    let set = load_with(&files, &transforms).unwrap();
    let up = set.plan("todo", 1, 2).unwrap();
    let out = up
        .translate(
            &json!({"title": "milk", "done": false}),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(out["title"], "MILK");
}

#[test]
fn written_schema_that_differs_lists_every_pointer() {
    let bad = format!(
        "{TODO}    schema:
      type: object
      properties:
        title: {{type: string}}
        done: {{type: string}}
        important: {{type: boolean}}
      required: [title, done, important]
      additionalProperties: false
"
    );
    let err = type_err(&bad);
    let ErrorKind::SchemaDiffers { pointers } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(
        pointers,
        &["/properties/done/type", "/properties/important/default"]
    );
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "done: {type: string}"),
        "/versions/2/schema/properties/done/type",
    );
    // Written in another order, the same schema is accepted: `required` is a set.
    let same = format!(
        "{TODO}    schema:
      additionalProperties: false
      required: [important, title, done]
      properties:
        important: {{type: boolean, default: false}}
        done: {{type: boolean}}
        title: {{type: string}}
      type: object
"
    );
    let set = load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", &same)]).unwrap();
    assert!(set.version("todo", 2).unwrap().is_schema_written());
}

#[test]
fn cycles_through_from_are_reported() {
    let bad = format!(
        "{TODO}  3:
    from: 4
    lens:
      - add: {{name: a, type: string}}
  4:
    from: 3
    lens:
      - add: {{name: b, type: string}}
"
    );
    let err = type_err(&bad);
    let ErrorKind::Cycle { cycle } = err.kind() else {
        panic!("{err:?}")
    };
    assert!(
        cycle.contains("3 from 4") && cycle.contains("4 from 3"),
        "{cycle}"
    );
    assert_eq!(err.version(), Some(3));
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "from: 4"),
        "/versions/3/from",
    );
}

#[test]
fn from_must_name_another_existing_version() {
    for (from, what) in [("9", "missing"), ("3", "itself")] {
        let bad = format!("{TODO}  3:\n    from: {from}\n    lens: []\n");
        let err = type_err(&bad);
        assert!(
            matches!(err.kind(), ErrorKind::BadFrom { .. }),
            "{what}: {err:?}"
        );
        assert_at(
            &err,
            "types/todo.yaml",
            line_of(&bad, "from:"),
            "/versions/3/from",
        );
    }
}

#[test]
fn branches_load_and_translate_across() {
    let branched = format!(
        "{TODO}  3:
    from: 1
    lens:
      - rename: {{source: done, destination: finished}}
"
    );
    let set = load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", &branched)]).unwrap();
    assert_eq!(set.version("todo", 3).unwrap().from(), Some(1));
    // 2 → 3 goes back through 1: drop `important`, then rename.
    let plan = set.plan("todo", 2, 3).unwrap();
    let origins: Vec<&str> = plan.ops().iter().map(|d| d.origin.as_str()).collect();
    assert_eq!(origins, ["todo@2/0", "todo@3/0"]);
    let out = plan
        .translate(
            &json!({"title": "t", "done": true, "important": true}),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(out, json!({"title": "t", "finished": true}));
}

#[test]
fn version_structure_errors() {
    // The lowest version needs a schema.
    let err = type_err("type: todo\nversions:\n  1:\n    lens: []\n");
    assert!(
        matches!(err.kind(), ErrorKind::RootNeedsSchema { version: 1 }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/versions/1"));
    // The line of the version's key (`1:`), where a reader looks for it.
    assert_eq!(err.line(), Some(3));
    // Every other version needs a lens.
    let err = type_err(&format!("{TODO}  3:\n    description: nothing\n"));
    assert!(
        matches!(
            err.kind(),
            ErrorKind::MissingLens {
                version: 3,
                from: 2
            }
        ),
        "{err:?}"
    );
    // Versions are positive integers without leading zeros.
    for key in ["01", "x", "0", "-1"] {
        let err = type_err(&TODO.replace("  2:", &format!("  {key}:")));
        assert!(
            matches!(err.kind(), ErrorKind::BadVersion { .. }),
            "{key}: {err:?}"
        );
        // A bad version key is reported at the key's own line.
        assert_eq!(err.line(), Some(line_of(TODO, "  2:")));
    }
    // A type with no versions.
    let err = type_err("type: todo\nversions: {}\n");
    assert!(matches!(err.kind(), ErrorKind::NoVersions), "{err:?}");
    // `lens` and `lensFile` together.
    let err = type_err(&TODO.replace("    lens:\n", "    lensFile: x.yaml\n    lens:\n"));
    assert!(matches!(err.kind(), ErrorKind::Shape(_)), "{err:?}");
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    let cases = [
        (
            TODO.replace("type: todo", "type: todo\ncolour: red"),
            "/colour",
        ),
        (
            TODO.replace("  2:\n", "  2:\n    lense: []\n"),
            "/versions/2/lense",
        ),
    ];
    for (bad, pointer) in cases {
        let err = type_err(&bad);
        assert!(
            matches!(err.kind(), ErrorKind::UnknownKey { .. }),
            "{err:?}"
        );
        assert_eq!(err.pointer(), Some(pointer));
        assert!(err.line().is_some());
    }
    let cases = [
        (format!("{SETTINGS}colour: red\n"), "/colour"),
        (
            SETTINGS.replace("status: current", "status: current, when: now"),
            "/releases/1/when",
        ),
        (
            format!("{SETTINGS}storage:\n  todo: {{version: 2, mode: eager}}\n"),
            "/storage/todo/mode",
        ),
    ];
    for (bad, pointer) in cases {
        let err = settings_err(&bad);
        assert!(
            matches!(err.kind(), ErrorKind::UnknownKey { .. }),
            "{err:?}"
        );
        assert_eq!(err.pointer(), Some(pointer));
        assert_eq!(err.file(), Some(Path::new("mutatis.yaml")));
    }
}

#[test]
fn invalid_schemas_are_located() {
    let bad = TODO.replace("done: {type: boolean}", "done: {type: bool}");
    let err = type_err(&bad);
    assert!(
        matches!(err.kind(), ErrorKind::InvalidSchema { .. }),
        "{err:?}"
    );
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&bad, "type: bool}"),
        "/versions/1/schema/properties/done/type",
    );
    // Nothing is fetched: a remote reference is an error at load.
    let remote = TODO.replace(
        "done: {type: boolean}",
        "done: {$ref: 'https://example.invalid/bool.json'}",
    );
    assert!(matches!(
        type_err(&remote).kind(),
        ErrorKind::InvalidSchema { .. }
    ));
}

#[test]
fn duplicate_types_and_missing_files() {
    let err = load(&[
        ("mutatis.yaml", SETTINGS),
        ("types/todo.yaml", TODO),
        ("types/todo2.yaml", TODO),
    ])
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::DuplicateType { .. }),
        "{err:?}"
    );
    assert_eq!(err.file(), Some(Path::new("types/todo2.yaml")));
    assert_eq!(err.line(), Some(1));

    let err = load(&[("types/todo.yaml", TODO)]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MissingFile { .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------------------------ lens files

#[test]
fn lens_files_are_read_and_their_errors_located() {
    let todo = TODO.replace(
        "    lens:\n      - add: {name: important, type: boolean, default: false}\n",
        "    lensFile: ../lenses/important.yaml\n",
    );
    let cambria = "schemaName: todo\nlens:\n  - add:\n      name: important\n      type: boolean\n";
    let set = load(&[
        ("mutatis.yaml", SETTINGS),
        ("types/todo.yaml", &todo),
        ("lenses/important.yaml", cambria),
    ])
    .unwrap();
    assert_eq!(
        set.version("todo", 2).unwrap().lens_file(),
        Some(Path::new("lenses/important.yaml"))
    );

    let bad = format!("{cambria}  - frobnicate: {{}}\n");
    let err = load(&[
        ("mutatis.yaml", SETTINGS),
        ("types/todo.yaml", &todo),
        ("lenses/important.yaml", &bad),
    ])
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Lens(LensError::UnknownOp { .. })),
        "{err:?}"
    );
    assert_at(&err, "lenses/important.yaml", 6, "/lens/1");
    assert_eq!((err.type_name(), err.version()), (Some("todo"), Some(2)));

    let err = load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", &todo)]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MissingFile { .. }),
        "{err:?}"
    );
    assert_at(
        &err,
        "types/todo.yaml",
        line_of(&todo, "lensFile"),
        "/versions/2/lensFile",
    );

    let escaping = todo.replace("../lenses/important.yaml", "../../elsewhere.yaml");
    let err = load(&[("mutatis.yaml", SETTINGS), ("types/todo.yaml", &escaping)]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MissingFile { .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------------------------- settings

#[test]
fn release_naming_a_missing_version_names_file_and_line() {
    let bad = SETTINGS.replace("types: {todo: 2}", "types: {todo: 7}");
    let err = settings_err(&bad);
    assert!(
        matches!(err.kind(), ErrorKind::UnknownVersion { version: 7, .. }),
        "{err:?}"
    );
    assert_at(
        &err,
        "mutatis.yaml",
        line_of(&bad, "todo: 7"),
        "/releases/1/types/todo",
    );
    assert_eq!((err.type_name(), err.version()), (Some("todo"), Some(7)));

    let bad = SETTINGS.replace("types: {todo: 2}", "types: {todo: 2, user: 1}");
    let err = settings_err(&bad);
    assert!(
        matches!(err.kind(), ErrorKind::UnknownType { .. }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/releases/1/types/user"));
}

#[test]
fn release_rules() {
    // Duplicate names.
    let err = settings_err(&SETTINGS.replace("name: \"2\"", "name: \"1\""));
    assert!(
        matches!(err.kind(), ErrorKind::DuplicateRelease { .. }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/releases/1/name"));
    // Exactly one current.
    let err = settings_err(&SETTINGS.replace("status: supported", "status: current"));
    assert_eq!(err.kind(), &ErrorKind::CurrentCount { count: 2 });
    let err = settings_err(&SETTINGS.replace("status: current", "status: supported"));
    assert_eq!(err.kind(), &ErrorKind::CurrentCount { count: 0 });
    assert_eq!(err.line(), Some(line_of(SETTINGS, "releases:")));
    // Sunset only on deprecated releases, and a real date.
    let err = settings_err(
        &SETTINGS.replace("status: supported", "status: supported, sunset: 2027-03-01"),
    );
    assert!(matches!(err.kind(), ErrorKind::Sunset { .. }), "{err:?}");
    assert_eq!(err.pointer(), Some("/releases/0/sunset"));
    let err = settings_err(&SETTINGS.replace(
        "status: supported",
        "status: deprecated, sunset: 2027-02-30",
    ));
    assert!(matches!(err.kind(), ErrorKind::Sunset { .. }), "{err:?}");
    assert!(err.to_string().contains("2027-02-30"), "{err}");
    // A bad status.
    let err = settings_err(&SETTINGS.replace("status: supported", "status: retired"));
    assert!(matches!(err.kind(), ErrorKind::Shape(_)), "{err:?}");
    assert!(err.to_string().contains("deprecated"), "{err}");
    // A name that could not travel in a header.
    let err = settings_err(&SETTINGS.replace("name: \"1\"", "name: \"one, two\""));
    assert!(matches!(err.kind(), ErrorKind::Shape(_)), "{err:?}");
}

#[test]
fn storage_and_default_release_rules() {
    let err = settings_err(&format!(
        "{SETTINGS}storage:\n  todo: {{version: 5, strategy: eager}}\n"
    ));
    assert!(
        matches!(err.kind(), ErrorKind::UnknownVersion { version: 5, .. }),
        "{err:?}"
    );
    assert_eq!(err.pointer(), Some("/storage/todo/version"));
    assert_eq!(err.line(), Some(6));
    let err = settings_err(&format!("{SETTINGS}storage:\n  user: {{version: 1}}\n"));
    assert!(
        matches!(err.kind(), ErrorKind::UnknownType { .. }),
        "{err:?}"
    );
    let err = settings_err(&format!(
        "{SETTINGS}storage:\n  todo: {{version: 1, strategy: soon}}\n"
    ));
    assert!(err.to_string().contains("eager, lazy, multi"), "{err}");

    let err = settings_err(&format!("{SETTINGS}defaultRelease: \"9\"\n"));
    assert!(
        matches!(err.kind(), ErrorKind::UnknownRelease { .. }),
        "{err:?}"
    );
    let unsupported = SETTINGS.replace("status: supported", "status: unsupported");
    let err = settings_err(&format!("{unsupported}defaultRelease: \"1\"\n"));
    assert!(err.to_string().contains("unsupported"), "{err}");
}

// -------------------------------------------------------------------------- the folder shell

#[test]
fn load_names_files_under_the_folder() {
    let dir = std::env::temp_dir().join(format!("mutatis-schema-errors-{}", std::process::id()));
    let types = dir.join("types");
    std::fs::create_dir_all(&types).unwrap();
    std::fs::write(dir.join("mutatis.yaml"), SETTINGS).unwrap();
    let bad = format!("{TODO}      - frobnicate: {{}}\n");
    std::fs::write(types.join("todo.yaml"), &bad).unwrap();
    // Hidden files and other extensions are not read.
    std::fs::write(types.join(".draft.yaml"), "not: [valid").unwrap();
    std::fs::write(types.join("notes.txt"), "not: [valid").unwrap();
    let err = SchemaSet::load(&dir).unwrap_err();
    assert_eq!(err.file(), Some(types.join("todo.yaml").as_path()));
    assert_eq!(err.line(), Some(line_of(&bad, "frobnicate")));
    std::fs::write(types.join("todo.yaml"), TODO).unwrap();
    let set = SchemaSet::load(&dir).unwrap();
    assert_eq!(set.versions("todo").unwrap(), [1, 2]);
    std::fs::remove_dir_all(&dir).unwrap();

    let err = SchemaSet::load(dir.join("nope")).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
}
