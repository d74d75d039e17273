//! Compatibility modes over a version history, as schema registries define them (Confluent
//! Schema Registry, Apicurio): a mode says which earlier versions a new version is checked
//! against, and in which direction.
//!
//! | mode | the newest version is checked against | and must be |
//! |---|---|---|
//! | `NONE` | nothing | — |
//! | `BACKWARD` | the previous version | backward compatible (readers on it accept the previous version's data) |
//! | `FORWARD` | the previous version | forward compatible |
//! | `FULL` | the previous version | both |
//! | `BACKWARD_TRANSITIVE` | every earlier version | backward compatible with each |
//! | `FORWARD_TRANSITIVE` | every earlier version | forward compatible with each |
//! | `FULL_TRANSITIVE` | every earlier version | both, with each |
//!
//! [`check_chain`] checks the newest version as a registry does when it is registered;
//! [`check_history`] replays the whole history, checking every version as it was added. Both
//! report the exact pairs they checked.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use super::decide::Decider;
use super::error::{CompatError, SchemaSide};
use super::schema::{Arena, DocId};
use super::{compare, Compatibility};

/// A compatibility mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatMode {
    /// No check.
    None,
    /// The newest version against the previous one, backward.
    #[default]
    Backward,
    /// The newest version against the previous one, forward.
    Forward,
    /// The newest version against the previous one, both ways.
    Full,
    /// The newest version against every earlier one, backward.
    BackwardTransitive,
    /// The newest version against every earlier one, forward.
    ForwardTransitive,
    /// The newest version against every earlier one, both ways.
    FullTransitive,
}

impl CompatMode {
    /// Every mode, in the order of the table above.
    pub const ALL: [CompatMode; 7] = [
        CompatMode::None,
        CompatMode::Backward,
        CompatMode::Forward,
        CompatMode::Full,
        CompatMode::BackwardTransitive,
        CompatMode::ForwardTransitive,
        CompatMode::FullTransitive,
    ];

    /// The registry spelling (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompatMode::None => "NONE",
            CompatMode::Backward => "BACKWARD",
            CompatMode::Forward => "FORWARD",
            CompatMode::Full => "FULL",
            CompatMode::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatMode::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatMode::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the newest version is checked against every earlier one.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatMode::BackwardTransitive
                | CompatMode::ForwardTransitive
                | CompatMode::FullTransitive
        )
    }

    /// Whether backward compatibility is required.
    pub fn requires_backward(self) -> bool {
        matches!(
            self,
            CompatMode::Backward
                | CompatMode::Full
                | CompatMode::BackwardTransitive
                | CompatMode::FullTransitive
        )
    }

    /// Whether forward compatibility is required.
    pub fn requires_forward(self) -> bool {
        matches!(
            self,
            CompatMode::Forward
                | CompatMode::Full
                | CompatMode::ForwardTransitive
                | CompatMode::FullTransitive
        )
    }

    /// Whether a pairwise verdict satisfies this mode.
    pub fn accepts(self, c: &Compatibility) -> bool {
        (!self.requires_backward() || c.backward) && (!self.requires_forward() || c.forward)
    }

    /// The indexes of the earlier versions the version at `newest` is checked against.
    pub fn earlier(self, newest: usize) -> Vec<usize> {
        match self {
            CompatMode::None => Vec::new(),
            _ if newest == 0 => Vec::new(),
            m if m.is_transitive() => (0..newest).collect(),
            _ => vec![newest - 1],
        }
    }
}

impl fmt::Display for CompatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatMode {
    type Err = CompatError;

    /// Accepts the registry spelling in any case, with `_`, `-` or spaces (`backward-transitive`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| {
                if c == '-' || c == ' ' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        CompatMode::ALL
            .into_iter()
            .find(|m| m.as_str() == norm)
            .ok_or_else(|| CompatError::UnknownMode { mode: s.to_owned() })
    }
}

/// One checked pair of versions.
#[derive(Debug, Clone, PartialEq)]
pub struct PairCheck {
    /// Index of the earlier version.
    pub older: usize,
    /// Index of the later version.
    pub newer: usize,
    /// Whether the pair satisfies the mode.
    pub compatible: bool,
    /// The pairwise verdict (`older` as old, `newer` as new).
    pub result: Compatibility,
}

/// The verdict on a version history under a mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainVerdict {
    /// The mode applied.
    pub mode: CompatMode,
    /// Whether every checked pair satisfies the mode.
    pub compatible: bool,
    /// Every pair checked, in order.
    pub checks: Vec<PairCheck>,
}

impl ChainVerdict {
    /// The verdict as JSON: `{"mode", "compatible", "checks": [{"older", "newer", "compatible",
    /// "result": {...}}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.as_str(),
            "compatible": self.compatible,
            "checks": self.checks.iter().map(|p| json!({
                "older": p.older,
                "newer": p.newer,
                "compatible": p.compatible,
                "result": p.result.to_json(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Check the newest schema of `schemas` (oldest first) against the earlier ones the mode
/// names. Fewer than two schemas, or `NONE`, check nothing and are compatible.
pub fn check_chain(schemas: &[Value], mode: CompatMode) -> Result<ChainVerdict, CompatError> {
    let newest = schemas.len().saturating_sub(1);
    run(schemas, mode, &[newest])
}

/// Replay a history: check every schema of `schemas` (oldest first) against the earlier ones
/// the mode names, as if each had been registered in turn.
pub fn check_history(schemas: &[Value], mode: CompatMode) -> Result<ChainVerdict, CompatError> {
    let all: Vec<usize> = (1..schemas.len()).collect();
    run(schemas, mode, &all)
}

fn run(schemas: &[Value], mode: CompatMode, newest: &[usize]) -> Result<ChainVerdict, CompatError> {
    let mut arena = Arena::default();
    let mut needed: Vec<usize> = Vec::new();
    for &n in newest {
        let earlier = mode.earlier(n);
        if !earlier.is_empty() {
            needed.push(n);
            needed.extend(earlier);
        }
    }
    needed.sort_unstable();
    needed.dedup();
    // Each schema is parsed once, however many pairs it is in.
    let mut docs: Vec<Option<DocId>> = vec![None; schemas.len()];
    for &i in &needed {
        docs[i] = Some(arena.load(&schemas[i], SchemaSide::Version(i))?);
    }
    let mut decider = Decider::new(&arena);
    let mut checks = Vec::new();
    for &n in newest {
        for o in mode.earlier(n) {
            let (Some(od), Some(nd)) = (docs[o], docs[n]) else {
                continue;
            };
            let result = compare(&arena, &mut decider, od, nd);
            checks.push(PairCheck {
                older: o,
                newer: n,
                compatible: mode.accepts(&result),
                result,
            });
        }
    }
    Ok(ChainVerdict {
        mode,
        compatible: checks.iter().all(|p| p.compatible),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in CompatMode::ALL {
            assert_eq!(m.as_str().parse::<CompatMode>().ok(), Some(m));
        }
        assert_eq!(
            "backward-transitive".parse::<CompatMode>().ok(),
            Some(CompatMode::BackwardTransitive)
        );
        assert!(matches!(
            "SIDEWAYS".parse::<CompatMode>(),
            Err(CompatError::UnknownMode { .. })
        ));
    }

    #[test]
    fn pairs_follow_the_registry_definitions() {
        assert_eq!(CompatMode::Backward.earlier(3), vec![2]);
        assert_eq!(CompatMode::FullTransitive.earlier(3), vec![0, 1, 2]);
        assert!(CompatMode::None.earlier(3).is_empty());
        assert!(CompatMode::Forward.earlier(0).is_empty());
    }

    #[test]
    fn transitive_modes_catch_what_adjacent_checks_miss() {
        // v0 -> v1 drops a bound (backward ok), v1 -> v2 adds a looser one (backward ok), but
        // v2 rejects values v0 accepted? No: v0 max 5, v1 none, v2 max 10: each step and the
        // whole history are backward compatible. Forward is the one that breaks transitively.
        let v0 = json!({"type": "integer", "maximum": 5});
        let v1 = json!({"type": "integer"});
        let v2 = json!({"type": "integer", "maximum": 10});
        let schemas = [v0, v1, v2];
        let fwd = check_chain(&schemas, CompatMode::Forward).map_err(|e| e.to_string());
        // v2 ⊆ v1: forward ok for the adjacent pair.
        assert_eq!(fwd.as_ref().map(|v| v.compatible), Ok(true));
        let fwd_t = check_chain(&schemas, CompatMode::ForwardTransitive).map_err(|e| e.to_string());
        // v2 (max 10) ⊄ v0 (max 5).
        assert_eq!(fwd_t.as_ref().map(|v| v.compatible), Ok(false));
        let pairs: Vec<(usize, usize, bool)> = fwd_t
            .map(|v| {
                v.checks
                    .iter()
                    .map(|p| (p.older, p.newer, p.compatible))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(pairs, vec![(0, 2, false), (1, 2, true)]);
        let hist = check_history(&schemas, CompatMode::Full).map_err(|e| e.to_string());
        let pairs: Vec<(usize, usize)> = hist
            .map(|v| v.checks.iter().map(|p| (p.older, p.newer)).collect())
            .unwrap_or_default();
        assert_eq!(pairs, vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn errors_name_the_version() {
        let schemas = [json!({"type": "string"}), json!({"required": 3})];
        let e = check_chain(&schemas, CompatMode::Backward).err();
        assert_eq!(
            e.as_ref().and_then(CompatError::side),
            Some(SchemaSide::Version(1))
        );
        assert_eq!(e.as_ref().and_then(CompatError::pointer), Some("/required"));
    }
}
