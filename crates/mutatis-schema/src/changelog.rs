//! The changelog of a schema set, release by release (as Cadwyn generates one from its version
//! changes): for each release and each type whose version differs from the previous
//! release's, what changed in words, derived from the lens ops along the path between the two
//! versions, and whether it breaks old apps, judged by the JSON Schema compatibility checker
//! ([`crate::compat::check`]) and the lens loss analysis ([`SchemaSet::loss`]), never guessed.
//!
//! Pure: a function of the loaded set. Releases are taken in the order `mutatis.yaml` lists
//! them (oldest first); the first release has nothing to compare with and lists its types.

use std::fmt::Write as _;

use mutatis_lens::{Direction, LensOp, Mapping};
use serde_json::{json, Value};

use crate::error::SchemaError;
use crate::release::ReleaseStatus;
use crate::set::SchemaSet;

/// The changelog of a whole set.
#[derive(Debug, Clone, PartialEq)]
pub struct Changelog {
    /// The set's name.
    pub set: String,
    /// One entry per release, in the order the set lists them.
    pub releases: Vec<ReleaseChanges>,
}

/// What one release changed from the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseChanges {
    /// The release.
    pub release: String,
    /// Its status.
    pub status: ReleaseStatus,
    /// The release compared with (`None` for the first).
    pub previous: Option<String>,
    /// One entry per type whose version changed (or that came or went).
    pub types: Vec<TypeChanges>,
}

/// What changed in one type between two releases.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeChanges {
    /// The type.
    pub type_name: String,
    /// Its version in the previous release (`None`: the type is new).
    pub from: Option<u32>,
    /// Its version in this release (`None`: the release dropped the type).
    pub to: Option<u32>,
    /// The changes in words, one per op (a rename and a conversion of the renamed field are
    /// one change).
    pub changes: Vec<String>,
    /// Every document of the previous version is valid in this one, as it is.
    pub backward_compatible: bool,
    /// Every document of this version is valid in the previous one, as it is.
    pub forward_compatible: bool,
    /// What translating between the two versions loses, either way (the loss analysis'
    /// sentences, `from → to` first).
    pub losses: Vec<String>,
    /// Whether an app of the previous release that does not name its release breaks: its
    /// documents or this version's are not valid in the other version as they are.
    pub breaking: bool,
    /// The verdict in words.
    pub verdict: String,
}

/// `` `name` `` in a sentence.
fn code(s: &str) -> String {
    format!("`{s}`")
}

/// A JSON value in a sentence.
fn value(v: &Value) -> String {
    format!("`{v}`")
}

/// A JSON Schema `type` in words (`integer`, `string or null`).
fn type_words(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

fn mapping_words(m: &Mapping) -> String {
    match m {
        Mapping::Expr { source, .. } => format!("with {}", code(source)),
        Mapping::Table { entries, default } => {
            let mut s = entries
                .iter()
                .map(|(k, v)| format!("{} → {}", code(k), value(v)))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(d) = default {
                let _ = write!(s, ", anything else → {}", value(d));
            }
            s
        }
    }
}

/// One op in words, as its direction reads (`Backward`: the op undone).
fn describe(op: &LensOp, dir: Direction) -> String {
    use Direction::{Backward, Forward};
    match (op, dir) {
        (
            LensOp::Rename {
                source,
                destination,
            },
            Forward,
        ) => {
            format!("{} renamed to {}", code(source), code(destination))
        }
        (
            LensOp::Rename {
                source,
                destination,
            },
            Backward,
        ) => {
            format!("{} renamed back to {}", code(destination), code(source))
        }
        (LensOp::Add(f), Forward) | (LensOp::Remove(f), Backward) => {
            let mut s = format!("{} added", code(&f.name));
            if let Some(t) = f.schema.get("type") {
                let _ = write!(s, " ({})", type_words(t));
            }
            if f.required {
                s.push_str(", required");
                if let Some(v) = f.fill_value() {
                    let _ = write!(s, ", default {}", value(&v));
                }
            } else {
                s.push_str(", optional");
            }
            s
        }
        (LensOp::Add(f), Backward) | (LensOp::Remove(f), Forward) => {
            format!("{} removed", code(&f.name))
        }
        (LensOp::Hoist { host, name }, Forward) | (LensOp::Plunge { host, name }, Backward) => {
            format!("{} moved up out of {}", code(name), code(host))
        }
        (LensOp::Plunge { host, name }, Forward) | (LensOp::Hoist { host, name }, Backward) => {
            format!("{} moved into {}", code(name), code(host))
        }
        (LensOp::Wrap { name }, Forward) | (LensOp::Head { name }, Backward) => {
            format!("{} wrapped in an array", code(name))
        }
        (LensOp::Head { name }, Forward) | (LensOp::Wrap { name }, Backward) => {
            format!("{} reduced to its array's first element", code(name))
        }
        (LensOp::In { name, lens }, d) => {
            let inner: Vec<String> = ordered(lens, d).map(|o| describe(o, d)).collect();
            format!("in {}: {}", code(name), inner.join("; "))
        }
        (LensOp::Map { lens }, d) => {
            let inner: Vec<String> = ordered(lens, d).map(|o| describe(o, d)).collect();
            format!("in every element: {}", inner.join("; "))
        }
        (LensOp::Convert(c), d) => {
            let (from, to) = match d {
                Forward => (&c.source_type, &c.destination_type),
                Backward => (&c.destination_type, &c.source_type),
            };
            let mut s = format!("{} converted", code(&c.name));
            if let (Some(f), Some(t)) = (from, to) {
                if f != t {
                    let _ = write!(s, " from {} to {}", type_words(f), type_words(t));
                }
            }
            let mapping = match d {
                Forward => Some(mapping_words(&c.forward)),
                Backward => c.backward.as_ref().map(mapping_words),
            };
            match mapping {
                Some(m) if m.starts_with("with ") => {
                    let _ = write!(s, " {m}");
                }
                Some(m) => {
                    let _ = write!(s, ": {m}");
                }
                None => s.push_str(" back by the derived inverse"),
            }
            s
        }
        (
            LensOp::Copy {
                source,
                destination,
            },
            Forward,
        ) => {
            format!("{} copied to {}", code(source), code(destination))
        }
        (LensOp::Copy { destination, .. }, Backward) => {
            format!("{} (a copy) removed", code(destination))
        }
        (LensOp::Split(s), Forward) | (LensOp::Join(s), Backward) => format!(
            "{} split into {} at {}",
            code(&s.whole),
            list(&s.parts),
            value(&json!(s.separator))
        ),
        (LensOp::Join(s), Forward) | (LensOp::Split(s), Backward) => format!(
            "{} joined into {} with {}",
            list(&s.parts),
            code(&s.whole),
            value(&json!(s.separator))
        ),
        (LensOp::Set { name, value: v }, Forward) => {
            format!("{} set to {}", code(name), value(v))
        }
        (LensOp::Set { name, .. }, Backward) => {
            format!("{} restored where it was kept", code(name))
        }
        (LensOp::Transform(t), _) => {
            format!(
                "{} converted by the transform {}",
                code(&t.name),
                code(&t.using)
            )
        }
    }
}

/// `` `a` and `b` ``, `` `a`, `b` and `c` ``.
fn list(names: &[String]) -> String {
    let coded: Vec<String> = names.iter().map(|n| code(n)).collect();
    match coded.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// A lens's ops in the order a direction applies them.
fn ordered(ops: &[LensOp], d: Direction) -> Box<dyn Iterator<Item = &LensOp> + '_> {
    match d {
        Direction::Forward => Box::new(ops.iter()),
        Direction::Backward => Box::new(ops.iter().rev()),
    }
}

/// The ops of a path in words: a conversion of a field the previous op renamed joins that
/// rename (`` `age` renamed to `yearOfBirth`, converted with `referenceYear - value` ``).
fn describe_ops<'a>(ops: impl Iterator<Item = (&'a LensOp, Direction)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut renamed_to: Option<String> = None;
    for (op, d) in ops {
        let text = describe(op, d);
        if let (LensOp::Convert(c), Some(r)) = (op, &renamed_to) {
            if &c.name == r {
                if let (Some(last), Some(rest)) = (out.last_mut(), text.strip_prefix(&code(r))) {
                    last.push(',');
                    last.push_str(rest);
                    renamed_to = None;
                    continue;
                }
            }
        }
        renamed_to = match (op, d) {
            (LensOp::Rename { destination, .. }, Direction::Forward) => Some(destination.clone()),
            (LensOp::Rename { source, .. }, Direction::Backward) => Some(source.clone()),
            _ => None,
        };
        out.push(text);
    }
    out
}

impl SchemaSet {
    /// The set's changelog (see the module docs).
    pub fn changelog(&self) -> Result<Changelog, SchemaError> {
        let mut releases = Vec::new();
        let mut previous: Option<&crate::Release> = None;
        for r in self.releases() {
            let mut types = Vec::new();
            let names: std::collections::BTreeSet<&String> = r
                .types
                .keys()
                .chain(previous.iter().flat_map(|p| p.types.keys()))
                .collect();
            for name in names {
                let from = previous.and_then(|p| p.types.get(name).copied());
                let to = r.types.get(name).copied();
                if previous.is_some() && from == to {
                    continue;
                }
                types.push(self.type_changes(name, from, to, previous.map(|p| &p.name[..]))?);
            }
            releases.push(ReleaseChanges {
                release: r.name.clone(),
                status: r.status,
                previous: previous.map(|p| p.name.clone()),
                types,
            });
            previous = Some(r);
        }
        Ok(Changelog {
            set: self.name().to_owned(),
            releases,
        })
    }

    fn type_changes(
        &self,
        name: &str,
        from: Option<u32>,
        to: Option<u32>,
        previous: Option<&str>,
    ) -> Result<TypeChanges, SchemaError> {
        let (changes, verdict, compat, losses, breaking) = match (from, to) {
            (Some(from), Some(to)) => {
                let report = self.loss(name, from, to)?;
                let mut ops = Vec::new();
                for step in &report.steps {
                    // The lens of an edge belongs to the version it produces.
                    let declared = match step.direction {
                        Direction::Forward => step.to,
                        Direction::Backward => step.from,
                    };
                    if let Some(lens) = self.version(name, declared)?.lens() {
                        ops.extend(
                            ordered(lens.ops(), step.direction).map(|o| (o, step.direction)),
                        );
                    }
                }
                let changes = describe_ops(ops.into_iter());
                let c = crate::compat::check(self.schema(name, from)?, self.schema(name, to)?)
                    .map_err(|e| {
                        SchemaError::new(crate::error::ErrorKind::InvalidSchema {
                            reason: format!("comparing versions {from} and {to}: {e}"),
                        })
                        .for_type(name)
                    })?;
                let back = self.loss(name, to, from)?;
                let losses: Vec<String> = report
                    .losses()
                    .chain(back.losses())
                    .map(|(s, l)| format!("{} → {}: {}", s.from, s.to, l.detail))
                    .collect();
                let breaking = !(c.backward && c.forward);
                let prev = previous.unwrap_or("the previous release");
                let verdict = if breaking {
                    let why = match (c.backward, c.forward) {
                        (false, false) => format!(
                            "documents of version {from} are not valid in version {to}, nor the \
                             other way round"
                        ),
                        (false, true) => {
                            format!("documents of version {from} are not valid in version {to}")
                        }
                        _ => format!("documents of version {to} are not valid in version {from}"),
                    };
                    let how = if losses.is_empty() {
                        "without loss"
                    } else {
                        "with the losses listed"
                    };
                    format!(
                        "Breaks apps that do not name their release: {why}. Apps of release \
                         {prev} keep working through the lens, {how}."
                    )
                } else {
                    format!(
                        "Compatible: apps of release {prev} read and write version {to} as it is."
                    )
                };
                (changes, verdict, (c.backward, c.forward), losses, breaking)
            }
            (None, Some(to)) => (
                vec![format!("{} added, at version {to}", code(name))],
                match previous {
                    Some(p) => format!("New: apps of release {p} do not use it."),
                    None => "The first release.".to_owned(),
                },
                (true, true),
                Vec::new(),
                false,
            ),
            (Some(from), None) => (
                vec![format!(
                    "{} no longer in the release (was version {from})",
                    code(name)
                )],
                "Breaks apps that use the type: this release does not serve it.".to_owned(),
                (false, false),
                Vec::new(),
                true,
            ),
            (None, None) => (Vec::new(), String::new(), (true, true), Vec::new(), false),
        };
        Ok(TypeChanges {
            type_name: name.to_owned(),
            from,
            to,
            changes,
            backward_compatible: compat.0,
            forward_compatible: compat.1,
            losses,
            breaking,
            verdict,
        })
    }
}

impl Changelog {
    /// As `GET /changelog` and `mutatis changelog --json` give it.
    pub fn to_json(&self) -> Value {
        json!({
            "schemaSet": self.set,
            "releases": self.releases.iter().map(|r| json!({
                "release": r.release,
                "status": r.status.as_str(),
                "previous": r.previous,
                "types": r.types.iter().map(|t| json!({
                    "type": t.type_name,
                    "from": t.from,
                    "to": t.to,
                    "changes": t.changes,
                    "backwardCompatible": t.backward_compatible,
                    "forwardCompatible": t.forward_compatible,
                    "losses": t.losses,
                    "breaking": t.breaking,
                    "verdict": t.verdict,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// As Markdown: a section per release, newest first (as changelogs are read).
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# Changelog of {}\n", self.set);
        for r in self.releases.iter().rev() {
            let _ = write!(out, "\n## Release {} ({})\n", r.release, r.status);
            if r.types.is_empty() {
                let _ = writeln!(
                    out,
                    "\nNo type changed since release {}.",
                    r.previous.as_deref().unwrap_or("-")
                );
            }
            for t in &r.types {
                let versions = match (t.from, t.to) {
                    (Some(f), Some(to)) => format!("version {f} → {to}"),
                    (None, Some(to)) => format!("version {to}"),
                    (Some(f), None) => format!("was version {f}"),
                    (None, None) => String::new(),
                };
                let _ = writeln!(out, "\n### {} ({versions})\n", t.type_name);
                for c in &t.changes {
                    let _ = writeln!(out, "- {c}");
                }
                for l in &t.losses {
                    let _ = writeln!(out, "- loss {l}");
                }
                let _ = writeln!(out, "\n{}", t.verdict);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(lens: Value) -> Vec<String> {
        let ops = mutatis_lens::lens_from_json(&lens, "").unwrap();
        describe_ops(ops.iter().map(|o| (o, Direction::Forward)))
    }

    #[test]
    fn every_op_in_words() {
        let lens = json!([
            {"hoist": {"host": "address", "name": "city"}},
            {"plunge": {"host": "meta", "name": "tags"}},
            {"wrap": {"name": "email"}},
            {"head": {"name": "phones"}},
            {"in": {"name": "address", "lens": [{"rename": {"source": "zip", "destination": "postcode"}}]}},
            {"copy": {"source": "title", "destination": "label"}},
            {"join": {"names": ["first", "last"], "into": "name", "separator": " "}},
            {"set": {"name": "kind", "value": "student"}},
            {"remove": {"name": "legacy", "type": "string"}},
            {"add": {"name": "nickname", "type": "string", "required": false}},
            {"convert": {"name": "kind", "forward": {"student": "s"}, "backward": {"s": "student"}}}
        ]);
        assert_eq!(
            words(lens),
            [
                "`city` moved up out of `address`",
                "`tags` moved into `meta`",
                "`email` wrapped in an array",
                "`phones` reduced to its array's first element",
                "in `address`: `zip` renamed to `postcode`",
                "`title` copied to `label`",
                "`first` and `last` joined into `name` with `\" \"`",
                "`kind` set to `\"student\"`",
                "`legacy` removed",
                "`nickname` added (string), optional",
                "`kind` converted: `student` → `\"s\"`",
            ]
        );
    }

    #[test]
    fn a_backward_path_reads_as_the_ops_undone_in_reverse() {
        let ops = mutatis_lens::lens_from_json(
            &json!([
                {"rename": {"source": "a", "destination": "b"}},
                {"add": {"name": "c", "type": "integer", "default": 1}}
            ]),
            "",
        )
        .unwrap();
        let back =
            describe_ops(ordered(&ops, Direction::Backward).map(|o| (o, Direction::Backward)));
        assert_eq!(back, ["`c` removed", "`b` renamed back to `a`"]);
    }
}
