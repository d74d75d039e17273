//! The compatibility policy of a deployment diff: which [`CompatMode`] each type must keep.
//!
//! A policy file is YAML (or JSON):
//!
//! ```yaml
//! default: BACKWARD            # every type not named below (this is the default default)
//! types:
//!   todo: FULL_TRANSITIVE
//!   audit-log: NONE
//! ```
//!
//! Mode names are the schema registries' (`NONE`, `BACKWARD`, `BACKWARD_TRANSITIVE`,
//! `FORWARD`, `FORWARD_TRANSITIVE`, `FULL`, `FULL_TRANSITIVE`), case-insensitive. Every type
//! of a schema set is stored by a node, so every type defaults to `BACKWARD`: a reader on the
//! new version accepts every document valid under the deployed one.

use std::collections::BTreeMap;

use mutatis_lens::pointer;
use mutatis_lens::yaml::parse_yaml;
use serde_json::Value;
use thiserror::Error;

use crate::compat::CompatMode;

/// Where a policy is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}(at {}): {reason}", .line.map(|l| format!("line {l} ")).unwrap_or_default(), if .pointer.is_empty() { "the top" } else { .pointer.as_str() })]
pub struct PolicyError {
    /// 1-based line in the policy text, when known.
    pub line: Option<usize>,
    /// JSON pointer of the offending node.
    pub pointer: String,
    /// What is wrong.
    pub reason: String,
}

/// The required compatibility mode per type.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The mode of every type not named in `types`.
    pub default: CompatMode,
    /// Modes by type name.
    pub types: BTreeMap<String, CompatMode>,
}

impl Default for Policy {
    /// `BACKWARD` for every type.
    fn default() -> Self {
        Policy {
            default: CompatMode::Backward,
            types: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// The mode `type_name` must keep.
    pub fn mode(&self, type_name: &str) -> CompatMode {
        self.types.get(type_name).copied().unwrap_or(self.default)
    }

    /// Read a policy file's text (YAML or JSON). Unknown keys are errors, so that a typo never
    /// silently relaxes a check.
    pub fn from_yaml_str(text: &str) -> Result<Policy, PolicyError> {
        let (value, map) = parse_yaml(text).map_err(|e| PolicyError {
            line: None,
            pointer: String::new(),
            reason: format!("malformed YAML: {e}"),
        })?;
        let err = |at: &str, reason: String| PolicyError {
            line: map.locate(at).map(|(l, _)| l),
            pointer: at.to_owned(),
            reason,
        };
        let Value::Object(top) = &value else {
            return Err(err(
                "",
                "a policy is a map: {default: MODE, types: {NAME: MODE}}".into(),
            ));
        };
        let mut policy = Policy::default();
        for (key, v) in top {
            let at = pointer::push("", key);
            match key.as_str() {
                "default" => policy.default = mode(v).map_err(|r| err(&at, r))?,
                "types" => {
                    let Value::Object(types) = v else {
                        return Err(err(&at, "`types` is a map of type name to mode".into()));
                    };
                    for (name, m) in types {
                        let tat = pointer::push(&at, name);
                        policy
                            .types
                            .insert(name.clone(), mode(m).map_err(|r| err(&tat, r))?);
                    }
                }
                other => {
                    return Err(err(
                        &at,
                        format!("unknown key `{other}`; a policy has `default` and `types`"),
                    ))
                }
            }
        }
        Ok(policy)
    }
}

/// A mode name, as a policy or a flag gives it.
pub fn parse_mode(name: &str) -> Result<CompatMode, String> {
    name.parse::<CompatMode>().map_err(|e| e.to_string())
}

fn mode(v: &Value) -> Result<CompatMode, String> {
    match v {
        Value::String(s) => parse_mode(s),
        other => Err(format!("a mode is a name such as BACKWARD, found {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_names_modes_per_type() {
        let p =
            Policy::from_yaml_str("default: forward\ntypes:\n  todo: FULL_TRANSITIVE\n").unwrap();
        assert_eq!(p.mode("todo"), CompatMode::FullTransitive);
        assert_eq!(p.mode("other"), CompatMode::Forward);
        assert_eq!(Policy::default().mode("x"), CompatMode::Backward);
    }

    #[test]
    fn mistakes_are_located() {
        let e = Policy::from_yaml_str("default: BACKWARD\ntypes:\n  todo: SIDEWAYS\n").unwrap_err();
        assert_eq!(e.pointer, "/types/todo");
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("SIDEWAYS"), "{e}");
        let e = Policy::from_yaml_str("defualt: BACKWARD\n").unwrap_err();
        assert!(e.reason.contains("unknown key `defualt`"), "{e}");
    }
}
