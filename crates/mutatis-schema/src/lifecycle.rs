//! What a team should hear about its schema set's lifecycle before it deploys it: releases
//! whose sunset has passed, and releases whose writes the storage version cannot hold whole
//! (they are carried beside the stored documents: nothing is lost, but storage lags behind
//! the apps). Warnings, not errors: the set is valid and a server serves it; `mutatis check`
//! prints them and `/admin/reload` returns them. (Dates that contradict each other, such as a
//! sunset before the deprecation, are errors of the loader, naming the line.)
//!
//! Pure: the caller says what day it is.

use serde_json::{json, Value};

use crate::release::ReleaseStatus;
use crate::set::SchemaSet;

/// What a [`LifecycleWarning`] is about. The names are stable (`--json` output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningKind {
    /// A release's sunset has come: it is answered as unsupported; the file still calls it
    /// served.
    SunsetPassed,
    /// A served release writes a version whose way down to the storage version can lose
    /// something: such writes are carried beside the stored document.
    CarriedWrites,
}

impl WarningKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::SunsetPassed => "sunset-passed",
            WarningKind::CarriedWrites => "carried-writes",
        }
    }
}

/// One warning about a schema set's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleWarning {
    /// What it is about.
    pub kind: WarningKind,
    /// The release concerned.
    pub release: String,
    /// The type concerned, for [`WarningKind::CarriedWrites`].
    pub type_name: Option<String>,
    /// A sentence for people, saying what to do.
    pub message: String,
}

impl LifecycleWarning {
    /// `{"kind", "release", "type"?, "message"}`.
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"kind": self.kind.as_str(), "release": self.release, "message": self.message});
        if let Some(t) = &self.type_name {
            v["type"] = json!(t);
        }
        v
    }
}

impl SchemaSet {
    /// The lifecycle warnings of this set as of `today` (`YYYY-MM-DD`), in release order.
    pub fn lifecycle_warnings(&self, today: &str) -> Vec<LifecycleWarning> {
        let mut out = Vec::new();
        for r in self.releases() {
            let warn = |kind, type_name: Option<&str>, message: String| LifecycleWarning {
                kind,
                release: r.name.clone(),
                type_name: type_name.map(str::to_owned),
                message,
            };
            if let Some(sunset) = &r.sunset {
                if sunset.as_str() <= today && r.status != ReleaseStatus::Unsupported {
                    out.push(warn(
                        WarningKind::SunsetPassed,
                        None,
                        format!(
                            "release {}: its sunset ({sunset}) has passed, so it is answered as unsupported; say `status: unsupported` in mutatis.yaml",
                            r.name
                        ),
                    ));
                }
            }
            if !r.status.is_served() {
                continue;
            }
            for (type_name, &version) in &r.types {
                let Ok(storage) = self.storage(type_name) else {
                    continue;
                };
                if version <= storage.version {
                    continue;
                }
                let Ok(report) = self.loss(type_name, version, storage.version) else {
                    continue;
                };
                if report.is_lossless() {
                    continue;
                }
                let fields: Vec<&str> = report
                    .losses()
                    .map(|(_, l)| l.path.as_str())
                    .take(5)
                    .collect();
                out.push(warn(
                    WarningKind::CarriedWrites,
                    Some(type_name),
                    format!(
                        "release {} writes {type_name}@{version}, which the storage version {type_name}@{} cannot hold whole ({}): those writes are carried beside the stored documents; move storage to {version} when release {} is the main one",
                        r.name,
                        storage.version,
                        fields.join(", "),
                        r.name
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn set(releases: &str, storage: u32) -> SchemaSet {
        SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                format!("name: s\nreleases:\n{releases}\nstorage: {{p: {{version: {storage}, strategy: lazy}}}}\n"),
            ),
            (
                PathBuf::from("types/p.yaml"),
                "type: p\nversions:\n  1: {schema: {type: object, properties: {name: {type: string}}}}\n  2: {lens: [{add: {name: email, type: string, default: ''}}]}\n".to_owned(),
            ),
        ])
        .unwrap()
    }

    fn kinds(w: &[LifecycleWarning]) -> Vec<(&str, &str)> {
        w.iter()
            .map(|w| (w.kind.as_str(), w.release.as_str()))
            .collect()
    }

    #[test]
    fn a_passed_sunset_is_warned_about_from_its_day_on() {
        let s = set(
            "  - {name: a, types: {p: 1}, status: deprecated, deprecated: 2026-01-01, sunset: 2026-03-01}\n  - {name: b, types: {p: 1}, status: current}",
            1,
        );
        assert!(s.lifecycle_warnings("2026-02-28").is_empty());
        assert_eq!(
            kinds(&s.lifecycle_warnings("2026-03-01")),
            [("sunset-passed", "a")]
        );
        // Taken as of that day, the set says so itself: nothing left to warn about.
        assert!(s
            .as_of("2026-03-01")
            .lifecycle_warnings("2026-03-01")
            .is_empty());
    }

    #[test]
    fn releases_above_a_storage_that_cannot_hold_them_are_named() {
        let releases = "  - {name: a, types: {p: 1}, status: supported}\n  - {name: b, types: {p: 2}, status: current}";
        let w = set(releases, 1).lifecycle_warnings("2026-01-01");
        assert_eq!(kinds(&w), [("carried-writes", "b")]);
        assert_eq!(w[0].type_name.as_deref(), Some("p"));
        assert!(w[0].message.contains("/email"), "{}", w[0].message);
        // Storage at the newest version: nothing to carry from above.
        assert!(set(releases, 2).lifecycle_warnings("2026-01-01").is_empty());
    }
}
