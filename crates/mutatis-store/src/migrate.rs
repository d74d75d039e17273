//! The background migrator as a pure state machine.
//!
//! A migration of one type moves its documents from the primary space (version `from`) into a
//! new space (version `to`) while writers keep writing to the primary:
//!
//! 1. **start**: note the feed's last sequence `S` (the snapshot point) and allocate the target;
//! 2. **restore**: copy the source space in id order, one batch at a time, translating each
//!    document ([`Command::ReadDocs`] → [`Migration::on_docs`]);
//! 3. **replay**: walk the feed after `S` and re-translate every document of the type written
//!    since ([`Command::ReadChanges`] → [`Migration::on_changes`]). Replay reads the source's
//!    *current* record, so it is idempotent: a document restored after a later write and then
//!    replayed ends up the same;
//! 4. **switch**: the replay batch that finds the feed drained is applied in the same
//!    transaction that makes the target primary ([`Batch::switch`]); writers are serialised
//!    with that transaction, so none can slip in between.
//!
//! The machine holds the checkpoint (phase + cursor + counts). The shell (see
//! [`crate::Store`]) runs one command per backend transaction and stores the updated machine in
//! the same transaction as the batch's writes, so a crash loses at most the batch in flight and
//! the next run resumes from the checkpoint. A rollback is the same machine started at the
//! replay phase: the backup is the snapshot, and the changes since the switch are replayed onto
//! it.

use serde::{Deserialize, Serialize};

use crate::model::{Quarantined, Record, SpaceId};

/// What to do with a document that cannot be translated to the target version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the migration and report the document; nothing of the batch is written.
    Stop,
    /// Set the document aside (with its record and the reason) and go on.
    Quarantine,
}

/// Why the migration exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationKind {
    /// To a new storage version.
    Forward,
    /// Back onto the retained backup.
    Rollback,
}

/// Where a migration is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "phase")]
pub enum Phase {
    /// Copying the source space; the last id copied.
    Restore {
        /// Copy the ids after this one next (`None`: from the start).
        after: Option<String>,
    },
    /// Replaying the feed; the last sequence replayed.
    Replay {
        /// Replay the changes after this sequence next.
        after: u64,
    },
}

/// A migration in flight and its durable checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    /// Forward or rollback.
    pub kind: MigrationKind,
    /// Storage version of the source.
    pub from_version: u32,
    /// Storage version of the target.
    pub to_version: u32,
    /// The primary space when the migration started.
    pub from_space: SpaceId,
    /// The space being filled.
    pub to_space: SpaceId,
    /// The feed's last sequence when the snapshot was taken.
    pub snapshot_seq: u64,
    /// Where it is.
    #[serde(flatten)]
    pub phase: Phase,
    /// Stop or quarantine on an untranslatable document.
    pub on_error: OnError,
    /// Documents (or changes) per batch, so per transaction.
    pub batch_size: u32,
    /// Documents to restore (counted at start), plus changes replayed so far.
    pub total: u64,
    /// Documents restored plus changes replayed.
    pub done: u64,
    /// Documents set aside.
    pub quarantined: u64,
}

/// What the shell must read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read up to `limit` records of `space` with ids after `after`, in id order.
    ReadDocs {
        /// The source space.
        space: SpaceId,
        /// Exclusive lower bound.
        after: Option<String>,
        /// Batch size.
        limit: usize,
    },
    /// Read up to `limit` feed entries after sequence `after`.
    ReadChanges {
        /// Exclusive lower bound.
        after: u64,
        /// Batch size.
        limit: usize,
    },
}

/// A document of the type changed since the snapshot, with what the shell read for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayItem {
    /// The id.
    pub id: String,
    /// Its current record in the source space (`None`: it vanished, e.g. a space was emptied).
    pub source: Option<Record>,
    /// Its current record in the target space.
    pub target: Option<Record>,
}

/// A write the shell must make in the target space.
// Nearly every write of a batch is a `Put`: boxing the record would cost an allocation per
// migrated document to save space only on the rare `Remove`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TargetWrite {
    /// Store this record under the id.
    Put(String, Record),
    /// Remove the id (a document that became untranslatable after it was restored).
    Remove(String),
}

/// What one command's result turns into: writes, quarantine entries, and whether to switch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Target-space writes.
    pub writes: Vec<TargetWrite>,
    /// Documents set aside.
    pub quarantine: Vec<Quarantined>,
    /// The feed is drained: make the target primary in this same transaction.
    pub switch: bool,
}

/// A document the migration stopped on (with [`OnError::Stop`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The document.
    pub id: String,
    /// Its version.
    pub from: u32,
    /// Why.
    pub reason: String,
}

/// Translates one record to the target version; `onto` is the target's current record, for
/// conservation (a rollback merges onto the backup so fields the newer version lacks survive).
/// Returns the translated body with what it carries, or the reason it cannot be translated.
pub trait Translate {
    /// Translate `record` (live, not a tombstone) to `to`.
    fn translate(
        &self,
        record: &Record,
        to: u32,
        onto: Option<&Record>,
    ) -> Result<Translated, String>;
}

/// A record's body in a migration's target version, and the bodies of other versions it
/// carries because the target version cannot hold them ([`crate::Carried`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The body in the target version.
    pub body: serde_json::Value,
    /// What the document carries beside it.
    pub carry: Vec<crate::replica::Carried>,
}

impl Migration {
    /// A forward migration that will restore `total` documents of `from_space`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        from_version: u32,
        to_version: u32,
        from_space: SpaceId,
        to_space: SpaceId,
        snapshot_seq: u64,
        total: u64,
        on_error: OnError,
        batch_size: u32,
    ) -> Migration {
        Migration {
            kind: MigrationKind::Forward,
            from_version,
            to_version,
            from_space,
            to_space,
            snapshot_seq,
            phase: Phase::Restore { after: None },
            on_error,
            batch_size: batch_size.max(1),
            total,
            done: 0,
            quarantined: 0,
        }
    }

    /// A rollback from the primary space onto the backup, replaying the feed after
    /// `switched_at` (at most `pending` changes, for progress).
    #[allow(clippy::too_many_arguments)]
    pub fn rollback(
        from_version: u32,
        to_version: u32,
        from_space: SpaceId,
        backup_space: SpaceId,
        switched_at: u64,
        pending: u64,
        on_error: OnError,
        batch_size: u32,
    ) -> Migration {
        Migration {
            kind: MigrationKind::Rollback,
            from_version,
            to_version,
            from_space,
            to_space: backup_space,
            snapshot_seq: switched_at,
            phase: Phase::Replay { after: switched_at },
            on_error,
            batch_size: batch_size.max(1),
            total: pending,
            done: 0,
            quarantined: 0,
        }
    }

    fn limit(&self) -> usize {
        usize::try_from(self.batch_size)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// What to read next.
    pub fn next_command(&self) -> Command {
        match &self.phase {
            Phase::Restore { after } => Command::ReadDocs {
                space: self.from_space,
                after: after.clone(),
                limit: self.limit(),
            },
            Phase::Replay { after } => Command::ReadChanges {
                after: *after,
                limit: self.limit(),
            },
        }
    }

    /// Fold in the result of [`Command::ReadDocs`]: `(id, record)` in id order.
    pub fn on_docs(
        &mut self,
        docs: &[(String, Record)],
        translate: &dyn Translate,
    ) -> Result<Batch, Stopped> {
        let mut batch = Batch::default();
        for (id, record) in docs {
            self.convert(id, record, None, translate, &mut batch, false)?;
        }
        self.done = self.done.saturating_add(docs.len() as u64);
        self.phase = if docs.len() < self.limit() {
            // The source is exhausted: everything written since the snapshot is in the feed.
            Phase::Replay {
                after: self.snapshot_seq,
            }
        } else {
            Phase::Restore {
                after: docs.last().map(|(id, _)| id.clone()),
            }
        };
        Ok(batch)
    }

    /// Fold in the result of [`Command::ReadChanges`]: `read` raw feed entries were read (of any
    /// type), the last with sequence `last_seq`; `items` are this type's documents among them
    /// (each id once), with their source and target records.
    pub fn on_changes(
        &mut self,
        read: usize,
        last_seq: Option<u64>,
        items: &[ReplayItem],
        translate: &dyn Translate,
    ) -> Result<Batch, Stopped> {
        let mut batch = Batch::default();
        for item in items {
            match &item.source {
                Some(record) => self.convert(
                    &item.id,
                    record,
                    item.target.as_ref(),
                    translate,
                    &mut batch,
                    true,
                )?,
                // Nothing left to carry; make sure the target holds nothing stale either.
                None if item.target.is_some() => {
                    batch.writes.push(TargetWrite::Remove(item.id.clone()))
                }
                None => {}
            }
        }
        let n = items.len() as u64;
        self.done = self.done.saturating_add(n);
        if matches!(self.kind, MigrationKind::Forward) {
            // The restore count was exact; replayed changes add to the work as they appear.
            self.total = self.total.saturating_add(n);
        } else {
            self.total = self.total.max(self.done);
        }
        if let (Phase::Replay { after }, Some(seq)) = (&mut self.phase, last_seq) {
            *after = (*after).max(seq);
        }
        batch.switch = read < self.limit();
        Ok(batch)
    }

    fn convert(
        &mut self,
        id: &str,
        record: &Record,
        target: Option<&Record>,
        translate: &dyn Translate,
        batch: &mut Batch,
        replaying: bool,
    ) -> Result<(), Stopped> {
        if record.deleted {
            // A tombstone carries no body to translate; it moves as it is, in the new version.
            batch.writes.push(TargetWrite::Put(
                id.to_owned(),
                Record {
                    version: self.to_version,
                    ..record.clone()
                },
            ));
            return Ok(());
        }
        let onto = match self.kind {
            MigrationKind::Rollback => target.filter(|t| !t.deleted),
            MigrationKind::Forward => None,
        };
        match translate.translate(record, self.to_version, onto) {
            Ok(Translated { body, carry }) => batch.writes.push(TargetWrite::Put(
                id.to_owned(),
                // History and conflict leaves move as they are: a rev names a write, not
                // its storage shape, and each leaf keeps the version it was stored in.
                // Each field named (no `..record.clone()`), so the source body is not copied
                // only to be dropped.
                Record {
                    rev: record.rev.clone(),
                    version: self.to_version,
                    deleted: false,
                    access: record.access.clone(),
                    body,
                    history: record.history.clone(),
                    carry,
                    conflicts: record.conflicts.clone(),
                    seq: record.seq,
                },
            )),
            Err(reason) => match self.on_error {
                OnError::Stop => {
                    return Err(Stopped {
                        id: id.to_owned(),
                        from: record.version,
                        reason,
                    })
                }
                OnError::Quarantine => {
                    if replaying && target.is_some() {
                        // The target holds a translation of an older write; leaving it would
                        // resurrect a stale document after the switch.
                        batch.writes.push(TargetWrite::Remove(id.to_owned()));
                    }
                    self.quarantined = self.quarantined.saturating_add(1);
                    batch.quarantine.push(Quarantined {
                        id: id.to_owned(),
                        from: record.version,
                        to: self.to_version,
                        reason,
                        record: record.clone(),
                    });
                }
            },
        }
        Ok(())
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        Progress {
            kind: self.kind,
            phase: match self.phase {
                Phase::Restore { .. } => "restore",
                Phase::Replay { .. } => "replay",
            },
            from: self.from_version,
            to: self.to_version,
            done: self.done,
            total: self.total.max(self.done),
            quarantined: self.quarantined,
        }
    }
}

/// A snapshot of a migration's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Forward or rollback.
    pub kind: MigrationKind,
    /// `restore` or `replay`.
    pub phase: &'static str,
    /// Source version.
    pub from: u32,
    /// Target version.
    pub to: u32,
    /// Documents and changes handled.
    pub done: u64,
    /// Known work (grows while writers write during replay).
    pub total: u64,
    /// Documents set aside.
    pub quarantined: u64,
}

/// Rate and ETA from progress samples taken at caller-supplied times (the core has no clock).
#[derive(Debug, Clone, Default)]
pub struct ProgressMeter {
    first: Option<(u64, f64)>,
    last: Option<(u64, f64)>,
}

impl ProgressMeter {
    /// A meter with no samples.
    pub fn new() -> ProgressMeter {
        ProgressMeter::default()
    }

    /// Record that `done` units were done at `seconds` (any monotonic origin).
    pub fn observe(&mut self, done: u64, seconds: f64) {
        if self.first.is_none() {
            self.first = Some((done, seconds));
        }
        self.last = Some((done, seconds));
    }

    /// Units per second between the first and the last sample, if time has passed.
    pub fn rate(&self) -> Option<f64> {
        let ((d0, t0), (d1, t1)) = (self.first?, self.last?);
        let dt = t1 - t0;
        if dt <= 0.0 {
            return None;
        }
        Some(d1.saturating_sub(d0) as f64 / dt)
    }

    /// Seconds left to reach `total` at the current rate.
    pub fn eta(&self, total: u64) -> Option<f64> {
        let rate = self.rate()?;
        let (done, _) = self.last?;
        if rate <= 0.0 {
            return None;
        }
        Some(total.saturating_sub(done) as f64 / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rev::Rev;
    use serde_json::{json, Value};

    /// Doubles `n`; fails on documents marked `bad`.
    struct Doubler;

    impl Translate for Doubler {
        fn translate(
            &self,
            r: &Record,
            _to: u32,
            onto: Option<&Record>,
        ) -> Result<Translated, String> {
            if r.body.get("bad").is_some() {
                return Err("bad document".to_owned());
            }
            let n = r.body["n"].as_i64().ok_or("no n")?;
            let mut out = json!({"n2": n * 2});
            if let Some(extra) = onto.and_then(|o| o.body.get("extra")) {
                out["extra"] = extra.clone();
            }
            Ok(Translated {
                body: out,
                carry: Vec::new(),
            })
        }
    }

    fn rec(body: Value) -> Record {
        Record {
            rev: Rev::next(None, &body, false),
            version: 1,
            deleted: false,
            access: Value::Null,
            body,
            history: Vec::new(),
            carry: Vec::new(),
            conflicts: Vec::new(),
            seq: 0,
        }
    }

    fn docs(range: std::ops::Range<i64>) -> Vec<(String, Record)> {
        range
            .map(|i| (format!("d{i:03}"), rec(json!({"n": i}))))
            .collect()
    }

    #[test]
    fn restores_in_batches_then_replays_then_switches() {
        let mut m = Migration::forward(1, 2, 0, 1, 10, 5, OnError::Stop, 2);
        assert_eq!(
            m.next_command(),
            Command::ReadDocs {
                space: 0,
                after: None,
                limit: 2
            }
        );
        let b = m.on_docs(&docs(0..2), &Doubler).unwrap();
        assert_eq!(b.writes.len(), 2);
        assert!(
            matches!(&b.writes[1], TargetWrite::Put(id, r) if id == "d001" && r.body == json!({"n2": 2}) && r.version == 2)
        );
        assert_eq!(
            m.next_command(),
            Command::ReadDocs {
                space: 0,
                after: Some("d001".into()),
                limit: 2
            }
        );
        m.on_docs(&docs(2..4), &Doubler).unwrap();
        // A short batch ends the restore; replay starts at the snapshot.
        m.on_docs(&docs(4..5), &Doubler).unwrap();
        assert_eq!(
            m.next_command(),
            Command::ReadChanges {
                after: 10,
                limit: 2
            }
        );
        assert_eq!(m.progress().done, 5);
        let item = ReplayItem {
            id: "d003".into(),
            source: Some(rec(json!({"n": 30}))),
            target: None,
        };
        let b = m.on_changes(2, Some(12), &[item], &Doubler).unwrap();
        assert!(!b.switch, "a full batch may not be the end of the feed");
        assert_eq!(
            m.next_command(),
            Command::ReadChanges {
                after: 12,
                limit: 2
            }
        );
        let b = m.on_changes(0, None, &[], &Doubler).unwrap();
        assert!(b.switch);
        assert_eq!(m.progress().total, 6);
    }

    #[test]
    fn stop_reports_the_document_and_quarantine_sets_it_aside() {
        let mut batch = docs(0..2);
        batch.push(("d002".into(), rec(json!({"bad": true}))));
        let mut m = Migration::forward(1, 2, 0, 1, 0, 3, OnError::Stop, 10);
        let stopped = m.on_docs(&batch, &Doubler).unwrap_err();
        assert_eq!(stopped.id, "d002");
        assert_eq!(stopped.reason, "bad document");

        let mut m = Migration::forward(1, 2, 0, 1, 0, 3, OnError::Quarantine, 10);
        let b = m.on_docs(&batch, &Doubler).unwrap();
        assert_eq!(b.writes.len(), 2);
        assert_eq!(b.quarantine.len(), 1);
        assert_eq!(b.quarantine[0].record.body, json!({"bad": true}));
        assert_eq!(m.progress().quarantined, 1);
    }

    #[test]
    fn replay_removes_a_stale_target_when_the_new_write_is_untranslatable() {
        let mut m = Migration::forward(1, 2, 0, 1, 0, 0, OnError::Quarantine, 10);
        m.on_docs(&[], &Doubler).unwrap();
        let item = ReplayItem {
            id: "x".into(),
            source: Some(rec(json!({"bad": 1}))),
            target: Some(rec(json!({"n2": 2}))),
        };
        let b = m.on_changes(1, Some(1), &[item], &Doubler).unwrap();
        assert_eq!(b.writes, vec![TargetWrite::Remove("x".into())]);
        assert!(b.switch);
    }

    #[test]
    fn rollback_starts_at_replay_and_merges_onto_the_backup() {
        let mut m = Migration::rollback(2, 1, 1, 0, 7, 3, OnError::Stop, 10);
        assert_eq!(
            m.next_command(),
            Command::ReadChanges {
                after: 7,
                limit: 10
            }
        );
        let item = ReplayItem {
            id: "a".into(),
            source: Some(rec(json!({"n": 4}))),
            target: Some(rec(json!({"n2": 0, "extra": "kept"}))),
        };
        let b = m.on_changes(1, Some(8), &[item], &Doubler).unwrap();
        assert!(
            matches!(&b.writes[0], TargetWrite::Put(_, r) if r.body == json!({"n2": 8, "extra": "kept"}))
        );
    }

    #[test]
    fn tombstones_move_without_translation() {
        let mut m = Migration::forward(1, 2, 0, 1, 0, 1, OnError::Stop, 10);
        let mut t = rec(Value::Null);
        t.deleted = true;
        let b = m.on_docs(&[("gone".into(), t.clone())], &Doubler).unwrap();
        assert!(
            matches!(&b.writes[0], TargetWrite::Put(_, r) if r.deleted && r.rev == t.rev && r.version == 2)
        );
    }

    #[test]
    fn meter_computes_rate_and_eta_from_given_times() {
        let mut meter = ProgressMeter::new();
        assert_eq!(meter.rate(), None);
        meter.observe(100, 1.0);
        meter.observe(300, 3.0);
        assert_eq!(meter.rate(), Some(100.0));
        assert_eq!(meter.eta(1300), Some(10.0));
    }
}
