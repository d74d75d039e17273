//! Student@1..5 (examples/students) as structs: they match their versions, migrate between
//! every pair, obey the lens laws, and drift is reported by field.

mod common;

use common::{example, params};
use mutatis_versioned::{schemars::JsonSchema, DriftDirection, Versioned, VersionedError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "Student", version = 1)]
pub struct Student1 {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "Student", version = 2)]
pub struct Student2 {
    pub name: String,
    pub age: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 3)]
pub struct Student3 {
    pub fist_and_last_name: String,
    pub age: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 4)]
pub struct Student4 {
    pub first_name: String,
    pub last_name: String,
    pub age: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 5)]
pub struct Student5 {
    pub first_name: String,
    pub last_name: String,
    pub year_of_birth: i64,
}

#[test]
fn every_version_matches_its_struct() {
    let set = example("students");
    mutatis_versioned::assert_matches::<Student1>(&set);
    mutatis_versioned::assert_matches::<Student2>(&set);
    mutatis_versioned::assert_matches::<Student3>(&set);
    mutatis_versioned::assert_matches::<Student4>(&set);
    mutatis_versioned::assert_matches::<Student5>(&set);
}

#[test]
fn up_the_chain_and_back() {
    let set = example("students");
    let p = params(2026);
    let s5 = Student5 {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        year_of_birth: 2006,
    };
    let s4: Student4 = s5.migrate_to(&set, &p).unwrap();
    assert_eq!(
        s4,
        Student4 {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            age: 20
        }
    );
    let s1: Student1 = s5.migrate_to(&set, &p).unwrap();
    assert_eq!(s1.name, "Ada Lovelace");
    // Up from 1: the age is the lens's default, 0, so the year of birth is the reference year.
    let up: Student5 = s1.migrate_to(&set, &p).unwrap();
    assert_eq!(up.year_of_birth, 2026);
    assert_eq!(
        (up.first_name.as_str(), up.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    // Brought back onto the original, the year of birth Student@1 cannot hold is kept.
    assert_eq!(s1.migrate_onto(&s5, &set, &p).unwrap(), s5);
}

/// Every pair of versions, both ways, from a value every version can express exactly.
#[test]
fn every_pair_round_trips() {
    let set = example("students");
    let p = params(2026);
    let s1 = Student1 {
        name: "Ada Lovelace".into(),
    };
    let s2 = Student2 {
        name: "Ada Lovelace".into(),
        age: 0,
    };
    let s3 = Student3 {
        fist_and_last_name: "Ada Lovelace".into(),
        age: 0,
    };
    let s4 = Student4 {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        age: 0,
    };
    let s5 = Student5 {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        year_of_birth: 2026,
    };

    macro_rules! pairs {
        ($($a:ident: $ta:ty),*) => {
            pairs!(@outer [$($a: $ta),*] [$($a: $ta),*]);
        };
        (@outer [$($a:ident: $ta:ty),*] $all:tt) => {
            $( pairs!(@inner $a: $ta, $all); )*
        };
        (@inner $a:ident: $ta:ty, [$($b:ident: $tb:ty),*]) => {
            $(
                let there: $tb = $a.migrate_to(&set, &p)
                    .unwrap_or_else(|e| panic!("{} to {}: {e}", stringify!($ta), stringify!($tb)));
                assert_eq!(there, $b, "{} to {}", stringify!($ta), stringify!($tb));
                let back: $ta = there.migrate_to(&set, &p).unwrap();
                assert_eq!(back, $a, "{} to {} and back", stringify!($ta), stringify!($tb));
            )*
        };
    }
    pairs!(s1: Student1, s2: Student2, s3: Student3, s4: Student4, s5: Student5);
}

#[test]
fn from_any_version() {
    let set = example("students");
    let p = params(2026);
    let s = Student5::from_any(
        serde_json::json!({"name": "Alan Turing", "age": 41}),
        2,
        &set,
        &p,
    )
    .unwrap();
    assert_eq!(
        s,
        Student5 {
            first_name: "Alan".into(),
            last_name: "Turing".into(),
            year_of_birth: 1985
        }
    );
    // And back out as any version's JSON.
    assert_eq!(
        s.to_any(3, &set, &p).unwrap(),
        serde_json::json!({"fistAndLastName": "Alan Turing", "age": 41})
    );
    assert_eq!(
        s.to_any(5, &set, &p).unwrap(),
        serde_json::json!({"firstName": "Alan", "lastName": "Turing", "yearOfBirth": 1985})
    );
    // A document invalid in the version it claims is refused there, naming the field.
    let err = Student5::from_any(
        serde_json::json!({"name": "Alan", "age": "41"}),
        2,
        &set,
        &p,
    )
    .unwrap_err();
    assert!(
        matches!(&err, VersionedError::Invalid { version: 2, pointer, .. } if pointer == "/age"),
        "{err}"
    );
    // An unknown version is a schema error naming it.
    let err = Student5::from_any(serde_json::json!({}), 9, &set, &p).unwrap_err();
    assert!(
        matches!(&err, VersionedError::Schema { version: 9, .. }),
        "{err}"
    );
}

#[test]
fn an_untranslatable_value_is_a_lens_error_with_its_pointer() {
    let set = example("students");
    // No referenceYear: the expression of Student@5's lens cannot be evaluated.
    let s4 = Student4 {
        first_name: "A".into(),
        last_name: "B".into(),
        age: 3,
    };
    let err = s4
        .migrate_to::<Student5>(&set, &mutatis_versioned::Params::new())
        .unwrap_err();
    match &err {
        VersionedError::Lens {
            type_name,
            from: 4,
            to: 5,
            pointer,
            ..
        } => {
            assert_eq!(type_name, "Student");
            assert_eq!(pointer, "/yearOfBirth");
        }
        other => panic!("expected a lens error, got {other}"),
    }
    assert!(err.to_string().contains("Student@4 to @5"), "{err}");
}

// --- Another type's version -------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "todo", version = 1)]
struct Todo1 {
    title: String,
    done: bool,
}

#[test]
fn another_types_version_is_refused() {
    let set = example("students");
    let s1 = Student1 { name: "x".into() };
    let err = s1.migrate_to::<Todo1>(&set, &params(2026)).unwrap_err();
    assert_eq!(
        err,
        VersionedError::TypeMismatch {
            from_type: "Student",
            from: 1,
            to_type: "todo",
            to: 1
        }
    );
    assert!(err.to_string().contains("Student@1 to todo@1"), "{err}");
}

// --- Drift ------------------------------------------------------------------------------------

/// Student@5 with the year of birth as a string.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 5)]
struct StringYear {
    first_name: String,
    last_name: String,
    year_of_birth: String,
}

/// Student@5 without the last name.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 5)]
struct NoLastName {
    first_name: String,
    year_of_birth: i64,
}

/// Student@5 with a required field the version does not have.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 5)]
struct WithEmail {
    first_name: String,
    last_name: String,
    year_of_birth: i64,
    email: String,
}

/// Student@5 whose year of birth is optional: it reads every Student@5 but can write one
/// without the year, which the version requires.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[serde(rename_all = "camelCase")]
#[versioned(type = "Student", version = 5)]
struct OptionalYear {
    first_name: String,
    last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    year_of_birth: Option<i64>,
}

#[test]
fn a_field_of_the_wrong_type_is_reported_both_ways() {
    let report = mutatis_versioned::check::<StringYear>(&example("students"));
    assert!(!report.matches());
    assert!(report.names_field("/yearOfBirth"), "{report}");
    assert!(report
        .in_direction(DriftDirection::Writes)
        .any(|d| d.field == "/yearOfBirth"));
    assert!(report
        .in_direction(DriftDirection::Reads)
        .any(|d| d.field == "/yearOfBirth"));
    assert!(report.to_string().contains("/yearOfBirth"), "{report}");
}

#[test]
fn a_missing_field_is_reported() {
    let report = mutatis_versioned::check::<NoLastName>(&example("students"));
    assert!(report.names_field("/lastName"), "{report}");
    assert!(
        report.drifts.iter().all(|d| d.field == "/lastName"),
        "{report}"
    );
    // It is written by no value of the struct, and dropped from every document read.
    assert!(
        report
            .in_direction(DriftDirection::Writes)
            .any(|d| d.field == "/lastName"),
        "{report}"
    );
    assert!(
        report
            .in_direction(DriftDirection::Reads)
            .any(|d| d.field == "/lastName"),
        "{report}"
    );
}

#[test]
fn an_extra_required_field_is_reported() {
    let report = mutatis_versioned::check::<WithEmail>(&example("students"));
    assert!(report.names_field("/email"), "{report}");
    assert!(
        report.drifts.iter().all(|d| d.field == "/email"),
        "{report}"
    );
    assert!(
        report
            .in_direction(DriftDirection::Writes)
            .any(|d| d.field == "/email"),
        "{report}"
    );
    assert!(
        report
            .in_direction(DriftDirection::Reads)
            .any(|d| d.field == "/email"),
        "{report}"
    );
}

#[test]
fn an_optional_field_the_version_requires_breaks_writes_only() {
    let report = mutatis_versioned::check::<OptionalYear>(&example("students"));
    assert_eq!(
        report.in_direction(DriftDirection::Reads).count(),
        0,
        "{report}"
    );
    let writes: Vec<_> = report.in_direction(DriftDirection::Writes).collect();
    assert_eq!(writes.len(), 1, "{report}");
    assert_eq!(writes[0].field, "/yearOfBirth");
    assert_eq!(
        writes[0].kind,
        mutatis_schema::compat::ChangeKind::RequiredRemoved
    );
}

#[test]
#[should_panic(expected = "/yearOfBirth")]
fn assert_matches_panics_with_the_report() {
    mutatis_versioned::assert_matches::<StringYear>(&example("students"));
}

#[test]
fn a_drifted_struct_fails_at_migration_with_the_pointer() {
    let set = example("students");
    let s = StringYear {
        first_name: "A".into(),
        last_name: "B".into(),
        year_of_birth: "1990".into(),
    };
    let err = s.migrate_to::<Student4>(&set, &params(2026)).unwrap_err();
    assert!(
        matches!(&err, VersionedError::Invalid { version: 5, pointer, .. } if pointer == "/yearOfBirth"),
        "{err}"
    );
    // Reading a valid Student@5 into it fails at deserialisation, naming the serde path.
    let err = StringYear::from_any(
        serde_json::json!({"name": "A B", "age": 3}),
        2,
        &set,
        &params(2026),
    )
    .unwrap_err();
    assert!(
        matches!(&err, VersionedError::Deserialize { path, .. } if path == "yearOfBirth"),
        "{err}"
    );
}

// --- Lens laws on generated values ------------------------------------------------------------

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z][a-z]{0,8}"
}

fn student5() -> impl Strategy<Value = Student5> {
    (word(), word(), 1900i64..2100).prop_map(|(f, l, y)| Student5 {
        first_name: f,
        last_name: l,
        year_of_birth: y,
    })
}

fn student3() -> impl Strategy<Value = Student3> {
    (word(), word(), 0i64..150).prop_map(|(f, l, age)| Student3 {
        fist_and_last_name: format!("{f} {l}"),
        age,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// get-put: a value taken down and put back onto itself is unchanged.
    #[test]
    fn get_put(s in student5(), year in 2000i64..2100) {
        let set = example("students");
        let p = params(year);
        let down: Student1 = s.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(&down.migrate_onto(&s, &set, &p).unwrap(), &s);
        let down: Student3 = s.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(&down.migrate_onto(&s, &set, &p).unwrap(), &s);
    }

    /// put-get: a value put onto any stored value reads back as itself.
    #[test]
    fn put_get(v in student3(), s in student5(), year in 2000i64..2100) {
        let set = example("students");
        let p = params(year);
        let up: Student5 = v.migrate_onto(&s, &set, &p).unwrap();
        prop_assert_eq!(&up.migrate_to::<Student3>(&set, &p).unwrap(), &v);
    }

    /// Up then down without a stored value is the identity from 3 (the name splits at its
    /// one space, the age goes through the year of birth and back).
    #[test]
    fn up_then_down(v in student3(), year in 2000i64..2100) {
        let set = example("students");
        let p = params(year);
        let up: Student5 = v.migrate_to(&set, &p).unwrap();
        prop_assert_eq!(&up.migrate_to::<Student3>(&set, &p).unwrap(), &v);
    }
}

// --- Versions the set does not have -----------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[versioned(type = "Student", version = 9)]
struct Student9 {
    name: String,
}

#[test]
fn a_version_the_set_lacks_is_an_error_not_a_match() {
    let set = example("students");
    let report = mutatis_versioned::check::<Student9>(&set);
    assert!(!report.matches());
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.to_string().contains("Student@9"), "{report}");
    let err = Student1 { name: "x".into() }
        .migrate_to::<Student9>(&set, &params(2026))
        .unwrap_err();
    assert!(
        matches!(&err, VersionedError::Schema { version: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Student@9"), "{err}");
}
