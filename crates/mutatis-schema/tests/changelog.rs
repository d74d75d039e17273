//! The changelogs of examples/students and examples/todo, word for word: what each release
//! changed, read off the lens files by hand (the code derives it from the lens ops), and the
//! verdicts of the compatibility checker and the loss analysis.

use std::path::PathBuf;

use mutatis_schema::SchemaSet;
use serde_json::json;

fn example(name: &str) -> SchemaSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    SchemaSet::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// examples/students/types/Student.yaml: 2 adds `age` (default 0), 3 renames `name`, 4 splits
/// it at a space, 5 renames `age` to `yearOfBirth` and converts it with `referenceYear - value`
/// (its inverse derived: nothing lost). Every step changes the schema both ways.
const STUDENTS: &str = r#"# Changelog of student-register

## Release 5 (current)

### Student (version 4 → 5)

- `age` renamed to `yearOfBirth`, converted with `referenceYear - value`

Breaks apps that do not name their release: documents of version 4 are not valid in version 5, nor the other way round. Apps of release 4 keep working through the lens, without loss.

## Release 4 (deprecated)

### Student (version 3 → 4)

- `fistAndLastName` split into `firstName` and `lastName` at `" "`
- loss 3 → 4: `fistAndLastName` is split at " " into `firstName` + `lastName`: a value whose last parts are empty (e.g. one ending in " ") comes back without them
- loss 4 → 3: ``firstName` + `lastName`` is joined with " " into `fistAndLastName`: a `firstName` that contains " " is split differently on the way back

Breaks apps that do not name their release: documents of version 3 are not valid in version 4, nor the other way round. Apps of release 3 keep working through the lens, with the losses listed.

## Release 3 (deprecated)

### Student (version 2 → 3)

- `name` renamed to `fistAndLastName`

Breaks apps that do not name their release: documents of version 2 are not valid in version 3, nor the other way round. Apps of release 2 keep working through the lens, without loss.

## Release 2 (unsupported)

### Student (version 1 → 2)

- `age` added (integer), required, default `0`
- loss 2 → 1: the target version has no `age`: its value is dropped (it comes back as 0)

Breaks apps that do not name their release: documents of version 1 are not valid in version 2, nor the other way round. Apps of release 1 keep working through the lens, with the losses listed.

## Release 1 (unsupported)

### Student (version 1)

- `Student` added, at version 1

The first release.
"#;

/// examples/todo/types/todo.yaml: 2 adds `important` (default false); 3 renames `done` to
/// `status` and converts it by table, whose way back folds "started" into false.
const TODO: &str = r#"# Changelog of todo-app

## Release 5 (current)

### todo (version 2 → 3)

- `done` renamed to `status`, converted from boolean to string: `true` → `"done"`, `false` → `"open"`
- loss 3 → 2: `status` is converted by table and the target version cannot tell these values apart: "started" becomes false, which comes back as "open"; any other value becomes false

Breaks apps that do not name their release: documents of version 2 are not valid in version 3, nor the other way round. Apps of release 4 keep working through the lens, with the losses listed.

## Release 4 (deprecated)

### todo (version 1 → 2)

- `important` added (boolean), required, default `false`
- loss 2 → 1: the target version has no `important`: its value is dropped (it comes back as false)

Breaks apps that do not name their release: documents of version 1 are not valid in version 2, nor the other way round. Apps of release 3 keep working through the lens, with the losses listed.

## Release 3 (unsupported)

### todo (version 1)

- `todo` added, at version 1

The first release.
"#;

#[test]
fn the_students_changelog_word_for_word() {
    let log = example("students").changelog().unwrap();
    assert_eq!(log.to_markdown(), STUDENTS);
    let five = &log.releases[4];
    assert_eq!(
        (five.release.as_str(), five.previous.as_deref()),
        ("5", Some("4"))
    );
    let t = &five.types[0];
    assert_eq!(
        t.changes,
        ["`age` renamed to `yearOfBirth`, converted with `referenceYear - value`"]
    );
    assert!(t.breaking && !t.backward_compatible && !t.forward_compatible);
    assert!(t.losses.is_empty(), "{:?}", t.losses);
}

#[test]
fn the_todo_changelog_word_for_word() {
    let log = example("todo").changelog().unwrap();
    assert_eq!(log.to_markdown(), TODO);
    let json = log.to_json();
    assert_eq!(
        json["releases"][1]["types"][0]["changes"],
        json!(["`important` added (boolean), required, default `false`"])
    );
    assert_eq!(
        json["releases"][2]["types"][0]["losses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(json["releases"][2]["types"][0]["breaking"], true);
}
