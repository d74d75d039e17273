//! Acting on the storage the schema set declares (`storage:` in `mutatis.yaml`): what the
//! store must do to keep a type as declared, and doing it.
//!
//! A schema set changes between deploys; the data already stored does not change with it. At
//! start and on a reload, each type's stored state is compared with its declared storage and
//! reconciled ([`Store::reconcile_storage`]): `eager` starts the background migration (or
//! resumes the one in flight, or rolls back onto the kept backup when the declared version is
//! the backup's), `lazy` moves the storage version at once (documents are upgraded when next
//! written), `multi` adds and removes materialised copies and fills the new ones in the
//! background ([`Store::run_fill`]). What cannot be acted on without dropping data (a kept
//! backup in the way, a migration in flight elsewhere) is a [`StoreError::StorageMismatch`]
//! naming the way out, never silence.

use std::collections::BTreeSet;

use mutatis_schema::Strategy;
use serde::{Deserialize, Serialize};

use super::{MigrationOptions, Store};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::migrate::MigrationKind;
use crate::model::TypeState;

/// One thing [`Store::reconcile_storage`] does (or [`Store::storage_plan`] would do) to keep a
/// type as the schema set declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAction {
    /// A migration to the declared version is in flight: run it on.
    Resume {
        /// Its source version.
        from: u32,
        /// The declared version.
        to: u32,
    },
    /// Start migrating to the declared version (`eager`, `multi`); run it in the background.
    Migrate {
        /// The version stored now.
        from: u32,
        /// The declared version.
        to: u32,
    },
    /// The declared version is the kept backup's: roll back onto it.
    Rollback {
        /// The version stored now.
        from: u32,
        /// The backup's (and declared) version.
        to: u32,
    },
    /// `lazy`: the storage version moves at once; documents are upgraded when next written.
    SetVersion {
        /// The version stored before.
        from: u32,
        /// The declared version.
        to: u32,
    },
    /// The strategy changes.
    SetStrategy {
        /// The strategy before.
        from: Strategy,
        /// The declared strategy.
        to: Strategy,
    },
    /// `lazy` → `eager`: documents stored in older versions are rewritten in the storage
    /// version, in the background (an in-place migration).
    Upgrade {
        /// The storage version.
        version: u32,
    },
    /// `multi`: copies added (filled in the background) and removed.
    Copies {
        /// Versions that get a copy.
        added: Vec<u32>,
        /// Versions whose copy goes.
        removed: Vec<u32>,
    },
}

impl std::fmt::Display for StorageAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageAction::Resume { from, to } => {
                write!(f, "resuming the migration from version {from} to {to}")
            }
            StorageAction::Migrate { from, to } => {
                write!(f, "migrating from version {from} to {to} in the background")
            }
            StorageAction::Rollback { from, to } => write!(
                f,
                "rolling back from version {from} onto the kept backup in version {to}"
            ),
            StorageAction::SetVersion { from, to } => write!(
                f,
                "storing new writes in version {to} instead of {from} (lazy: documents are upgraded when next written)"
            ),
            StorageAction::SetStrategy { from, to } => {
                write!(f, "changing the strategy from {from} to {to}")
            }
            StorageAction::Upgrade { version } => write!(
                f,
                "rewriting documents stored in older versions in version {version}, in the background"
            ),
            StorageAction::Copies { added, removed } => {
                let list = |v: &[u32]| {
                    v.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match (added.is_empty(), removed.is_empty()) {
                    (false, true) => write!(f, "building copies in versions {}", list(added)),
                    (true, false) => write!(f, "dropping copies in versions {}", list(removed)),
                    _ => write!(
                        f,
                        "building copies in versions {} and dropping those in {}",
                        list(added),
                        list(removed)
                    ),
                }
            }
        }
    }
}

/// The checkpoint of filling `multi` copies: the primary is read in id order after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CopyFill {
    /// The last id filled (`None`: from the start).
    pub after: Option<String>,
}

/// Primary records read per transaction when copies are filled.
const FILL_BATCH: usize = 500;

impl<B: Backend> Store<B> {
    /// What [`Store::reconcile_storage`] would do to `type_name`, without doing it: empty
    /// when the type is stored as declared. A mismatch that cannot be acted on is
    /// [`StoreError::StorageMismatch`].
    pub fn storage_plan(&self, type_name: &str) -> Result<Vec<StorageAction>, StoreError> {
        let state = self.state(type_name)?;
        self.plan_for(type_name, &state)
    }

    fn plan_for(
        &self,
        type_name: &str,
        state: &TypeState,
    ) -> Result<Vec<StorageAction>, StoreError> {
        let declared = self.set.storage(type_name)?;
        let mismatch = |reason: String| StoreError::StorageMismatch {
            type_name: type_name.to_owned(),
            declared: declared.version,
            stored: state.storage_version,
            reason,
        };
        let mut actions = Vec::new();
        if let Some(m) = &state.migration {
            let to = m.to_version;
            if to == declared.version {
                actions.push(StorageAction::Resume {
                    from: m.from_version,
                    to,
                });
                return Ok(actions);
            }
            let what = match m.kind {
                MigrationKind::Forward if m.from_version == m.to_version => "an upgrade",
                MigrationKind::Forward => "a migration",
                MigrationKind::Rollback => "a rollback",
            };
            return Err(mismatch(format!(
                "{what} from version {} to {to} is in flight; let it finish or abort it (`mutatis migrate --abort`), then deploy again",
                m.from_version
            )));
        }
        if state.strategy != declared.strategy {
            actions.push(StorageAction::SetStrategy {
                from: state.strategy,
                to: declared.strategy,
            });
        }
        if state.storage_version != declared.version {
            match declared.strategy {
                Strategy::Lazy => actions.push(StorageAction::SetVersion {
                    from: state.storage_version,
                    to: declared.version,
                }),
                Strategy::Eager | Strategy::Multi => match &state.backup {
                    Some(b) if b.version == declared.version => {
                        actions.push(StorageAction::Rollback {
                            from: state.storage_version,
                            to: b.version,
                        })
                    }
                    Some(b) => {
                        return Err(mismatch(format!(
                            "the backup of the last migration (version {}) is still kept, and migrating again would replace it; drop it first (`mutatis migrate --drop-backup`, or DELETE /admin/migrations/{type_name}/backup), or declare version {} to roll back onto it",
                            b.version, b.version
                        )))
                    }
                    None => actions.push(StorageAction::Migrate {
                        from: state.storage_version,
                        to: declared.version,
                    }),
                },
            }
        } else if state.strategy == Strategy::Lazy && declared.strategy == Strategy::Eager {
            // Lazy documents may be in any version; eager keeps them all in the storage
            // version.
            if state.backup.is_some() {
                return Err(mismatch(
                    "rewriting the lazily stored documents needs a migration, and the backup of the last one is still kept; drop it first (`mutatis migrate --drop-backup`)".to_owned(),
                ));
            }
            actions.push(StorageAction::Upgrade {
                version: declared.version,
            });
        }
        // Copies follow the strategy and the versions served; a migration's switch moves
        // the storage version, so copies are settled once it is done.
        let migrating = actions.iter().any(|a| {
            matches!(
                a,
                StorageAction::Migrate { .. } | StorageAction::Rollback { .. }
            )
        });
        if !migrating {
            let wanted: BTreeSet<u32> = if declared.strategy == Strategy::Multi {
                self.set
                    .supported_versions(type_name)?
                    .into_iter()
                    .filter(|v| *v != declared.version)
                    .collect()
            } else {
                BTreeSet::new()
            };
            let have: BTreeSet<u32> = state.copies.keys().copied().collect();
            let added: Vec<u32> = wanted.difference(&have).copied().collect();
            let removed: Vec<u32> = have.difference(&wanted).copied().collect();
            if !added.is_empty() || !removed.is_empty() {
                actions.push(StorageAction::Copies { added, removed });
            }
        }
        Ok(actions)
    }

    /// Bring `type_name`'s stored state in line with the storage the schema set declares
    /// (see the module docs) and say what was done. Migrations are started, not run: the
    /// caller runs them ([`Store::run_migration`]) and copies are filled by
    /// [`Store::run_fill`]. Idempotent: a second call finds the first one's work under way
    /// and answers [`StorageAction::Resume`] or nothing.
    pub fn reconcile_storage(
        &self,
        type_name: &str,
        options: MigrationOptions,
    ) -> Result<Vec<StorageAction>, StoreError> {
        let actions = self.write(|txn| {
            let mut state = self.write_state(txn, type_name)?;
            let actions = self.plan_for(type_name, &state)?;
            let mut changed = false;
            for action in &actions {
                match action {
                    StorageAction::SetStrategy { to, .. } => {
                        state.strategy = *to;
                        changed = true;
                    }
                    StorageAction::SetVersion { to, .. } => {
                        state.storage_version = *to;
                        changed = true;
                    }
                    StorageAction::Copies { added, removed } => {
                        for v in removed {
                            if let Some(space) = state.copies.remove(v) {
                                state.garbage.push(space);
                            }
                        }
                        for v in added {
                            let space = state.allocate_space();
                            state.copies.insert(*v, space);
                        }
                        if !added.is_empty() {
                            state.fill = Some(CopyFill::default());
                        }
                        changed = true;
                    }
                    StorageAction::Resume { .. }
                    | StorageAction::Migrate { .. }
                    | StorageAction::Rollback { .. }
                    | StorageAction::Upgrade { .. } => {}
                }
            }
            if changed {
                txn.put_state(type_name, &state)?;
            }
            Ok(actions)
        })?;
        for action in &actions {
            match action {
                StorageAction::Migrate { to, .. } => {
                    self.start_migration(type_name, *to, options)?;
                }
                StorageAction::Rollback { .. } => {
                    self.start_rollback(type_name, options)?;
                }
                StorageAction::Upgrade { .. } => {
                    self.start_upgrade(type_name, options)?;
                }
                _ => {}
            }
        }
        self.collect_garbage(type_name)?;
        Ok(actions)
    }

    /// Whether `multi` copies of `type_name` are being filled.
    pub fn filling(&self, type_name: &str) -> Result<bool, StoreError> {
        Ok(self.state(type_name)?.fill.is_some())
    }

    /// Fill the `multi` copies of `type_name` that [`Store::reconcile_storage`] added, one
    /// batch per transaction with its checkpoint, so writers wait for one batch at most and a
    /// crash resumes where it stopped. A document whose copy is missing is read from the
    /// primary meanwhile, so nothing waits for this. Returns the documents filled.
    pub fn run_fill(
        &self,
        type_name: &str,
        mut on_batch: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let mut done = 0u64;
        loop {
            let step = self.write(|txn| {
                let mut state = self.write_state(txn, type_name)?;
                let Some(fill) = state.fill.clone() else {
                    return Ok(None);
                };
                let records =
                    txn.scan(type_name, state.primary, fill.after.as_deref(), FILL_BATCH)?;
                for (id, record) in &records {
                    let mut missing = false;
                    for &space in state.copies.values() {
                        match txn.get(type_name, space, id)? {
                            Some(copy) if copy.rev == record.rev => {}
                            _ => missing = true,
                        }
                    }
                    if missing {
                        self.write_copies(txn, type_name, id, &state, record)?;
                    }
                }
                let n = records.len();
                state.fill = if n < FILL_BATCH {
                    None
                } else {
                    Some(CopyFill {
                        after: records.last().map(|(id, _)| id.clone()),
                    })
                };
                txn.put_state(type_name, &state)?;
                Ok(Some((n as u64, state.fill.is_none())))
            })?;
            match step {
                None => return Ok(done),
                Some((n, finished)) => {
                    done += n;
                    on_batch(done);
                    if finished {
                        return Ok(done);
                    }
                }
            }
        }
    }
}
