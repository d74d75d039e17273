//! Releases (named API versions of the whole app), their policy, and storage versions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

/// How a release is treated when a client announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleaseStatus {
    /// The newest release: the one served to a client that names none (unless the schema set
    /// names another `defaultRelease`). Exactly one release is current.
    Current,
    /// Served without remark.
    Supported,
    /// Served, with a warning and an optional sunset date.
    Deprecated,
    /// Refused with a distinct error, so that an old app can lock itself and ask for an update.
    Unsupported,
}

impl ReleaseStatus {
    /// The spelling used in `mutatis.yaml` and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Current => "current",
            ReleaseStatus::Supported => "supported",
            ReleaseStatus::Deprecated => "deprecated",
            ReleaseStatus::Unsupported => "unsupported",
        }
    }

    /// Whether clients of this release are answered at all.
    pub fn is_served(self) -> bool {
        !matches!(self, ReleaseStatus::Unsupported)
    }

    /// The accepted spellings, for error messages.
    pub const NAMES: &'static str = "current, supported, deprecated, unsupported";
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReleaseStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "current" => Ok(ReleaseStatus::Current),
            "supported" => Ok(ReleaseStatus::Supported),
            "deprecated" => Ok(ReleaseStatus::Deprecated),
            "unsupported" => Ok(ReleaseStatus::Unsupported),
            _ => Err(()),
        }
    }
}

/// A named API version of the whole app: which version of each type its clients speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The name clients announce (`"5"`, `"2025-06-01"`).
    pub name: String,
    /// Type → version. A release may leave out a type that did not exist when it shipped.
    pub types: BTreeMap<String, u32>,
    /// How its clients are treated.
    pub status: ReleaseStatus,
    /// The date (`YYYY-MM-DD`) after which a deprecated release stops being served.
    pub sunset: Option<String>,
    /// The date (`YYYY-MM-DD`) since which a deprecated release is deprecated, if recorded
    /// (what the `Deprecation` response header, RFC 9745, reports).
    pub deprecated: Option<String>,
}

impl Release {
    /// The version of `type_name` this release speaks, if it includes the type.
    pub fn version_of(&self, type_name: &str) -> Option<u32> {
        self.types.get(type_name).copied()
    }

    /// The release as the manifest and a node's `GET /meta` publish it:
    /// `{"name", "types", "status", "sunset"?}` (`sunset` only when there is one).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("types".into(), json!(self.types));
        m.insert("status".into(), json!(self.status.as_str()));
        if let Some(s) = &self.deprecated {
            m.insert("deprecated".into(), json!(s));
        }
        if let Some(s) = &self.sunset {
            m.insert("sunset".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// How a node keeps a type at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Migrate every stored document to the storage version, in the background.
    Eager,
    /// Keep what was written; translate on read; upgrade on write.
    Lazy,
    /// Keep a materialised copy per supported version.
    Multi,
}

impl Strategy {
    /// The spelling used in `mutatis.yaml` and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Eager => "eager",
            Strategy::Lazy => "lazy",
            Strategy::Multi => "multi",
        }
    }

    /// The accepted spellings, for error messages.
    pub const NAMES: &'static str = "eager, lazy, multi";
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "eager" => Ok(Strategy::Eager),
            "lazy" => Ok(Strategy::Lazy),
            "multi" => Ok(Strategy::Multi),
            _ => Err(()),
        }
    }
}

/// The version a node keeps a type in, and how it gets there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    /// The storage version.
    pub version: u32,
    /// The migration strategy.
    pub strategy: Strategy,
    /// How many earlier revisions of each document keep their bodies, readable by rev
    /// (`GET /docs/T/ID?rev=R`) until later writes push them out. Conflict leaves are kept
    /// whatever this says, until resolved.
    pub history: u32,
}

impl Storage {
    /// Earlier revisions kept per document unless the schema set says otherwise.
    pub const DEFAULT_HISTORY: u32 = 10;

    /// The most revisions a schema set may ask to keep: as many as a rev history names.
    pub const MAX_HISTORY: u32 = 1000;

    /// A storage at `version` with `strategy`, keeping the default history.
    pub fn new(version: u32, strategy: Strategy) -> Storage {
        Storage {
            version,
            strategy,
            history: Storage::DEFAULT_HISTORY,
        }
    }

    /// The storage as the manifest and a node's `GET /meta` publish it:
    /// `{"version", "strategy", "history"?}` (`history` only when it is not the default, so
    /// that nodes that predate it read the manifest as before).
    pub fn to_json(&self) -> Value {
        let mut out = json!({"version": self.version, "strategy": self.strategy.as_str()});
        if self.history != Storage::DEFAULT_HISTORY {
            out["history"] = json!(self.history);
        }
        out
    }
}

/// Check that `s` is a calendar date written `YYYY-MM-DD`; the reason when it is not.
pub(crate) fn check_date(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return Err(format!("`{s}` is not a date written YYYY-MM-DD"));
    }
    // The shape check guarantees ASCII digits, so these parses cannot fail; map rather than
    // unwrap all the same.
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|e| e.to_string());
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let Some(days) = mutatis_lens::calendar::days_in_month(i64::from(year), month) else {
        return Err(format!("`{s}` has no month {month}"));
    };
    if day == 0 || day > days {
        return Err(format!("`{s}` has no day {day} in month {month}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert!(check_date("2027-03-01").is_ok());
        assert!(check_date("2024-02-29").is_ok());
        assert!(check_date("2000-02-29").is_ok());
        assert!(check_date("1900-02-29").is_err());
        assert!(check_date("2027-02-29").is_err());
        assert!(check_date("2027-13-01").is_err());
        assert!(check_date("2027-04-31").is_err());
        assert!(check_date("2027-3-1").is_err());
        assert!(check_date("next year").is_err());
        assert!(check_date("2027-03-01T00:00").is_err());
    }

    #[test]
    fn releases_and_storage_render_as_published() {
        let mut r = Release {
            name: "4".into(),
            types: BTreeMap::from([("Student".to_owned(), 4), ("todo".to_owned(), 2)]),
            status: ReleaseStatus::Deprecated,
            sunset: Some("2026-09-01".into()),
            deprecated: Some("2026-01-15".into()),
        };
        assert_eq!(
            r.to_json(),
            json!({"name": "4", "types": {"Student": 4, "todo": 2}, "status": "deprecated",
                   "deprecated": "2026-01-15", "sunset": "2026-09-01"})
        );
        r.sunset = None;
        r.deprecated = None;
        assert!(r.to_json().get("sunset").is_none());
        assert!(r.to_json().get("deprecated").is_none());
        let mut s = Storage::new(3, Strategy::Lazy);
        assert_eq!(s.to_json(), json!({"version": 3, "strategy": "lazy"}));
        s.history = 0;
        assert_eq!(
            s.to_json(),
            json!({"version": 3, "strategy": "lazy", "history": 0})
        );
    }

    #[test]
    fn spellings_round_trip() {
        for s in ["current", "supported", "deprecated", "unsupported"] {
            assert_eq!(s.parse::<ReleaseStatus>().map(ReleaseStatus::as_str), Ok(s));
        }
        for s in ["eager", "lazy", "multi"] {
            assert_eq!(s.parse::<Strategy>().map(Strategy::as_str), Ok(s));
        }
        assert!("Current".parse::<ReleaseStatus>().is_err());
    }
}
