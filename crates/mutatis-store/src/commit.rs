//! Group commit: who writes next, and which writes share a transaction.
//!
//! A durable commit (an fsync on redb, a WAL flush on PostgreSQL) costs far more than the
//! work of a document write, and write transactions are serialised anyway. So concurrent
//! document writes wait in one queue, and the writer at its head, the *leader*, takes the
//! run of grouped writes queued behind it (up to [`MAX_GROUP`]), runs each in one
//! transaction, commits once, and hands every writer its own result. Writes that must have a
//! transaction of their own (a migration batch, an import, a settings change) queue as
//! *alone* entries: they run in arrival order like the rest, and a group never reaches past
//! one. So a writer waits at most for what arrived before it (one migration batch among it),
//! and a migration batch waits at most for the groups ahead of it.
//!
//! This module is the pure part: the queue as a value, no threads, no backend. The store
//! drives it under a mutex (`store.rs`, `Turnstile`).

use std::collections::{HashMap, VecDeque};

use crate::backend::{ReadTxn, WriteTxn};
use crate::error::StoreError;
use crate::model::{Change, Quarantined, Record, SpaceId, SpaceStats, TypeState};
use crate::rev::Rev;

/// Most writes one group commit takes: bounds how long the last of them waits for the
/// others' work, and how much one failed transaction has to redo one by one.
pub(crate) const MAX_GROUP: usize = 64;

/// A writer's place in the queue.
pub(crate) type Ticket = u64;

/// What a writer at the head of the queue does now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn<J> {
    /// Not its turn yet (someone else's transaction runs, or others are ahead).
    Wait,
    /// Lead a group: run these jobs (the caller's own first, in queue order) in one
    /// transaction, then [`Queue::finish`] with their results.
    Lead(Vec<(Ticket, J)>),
    /// Run its own transaction, then [`Queue::finish`] with no results.
    Alone,
}

/// The writer queue: grouped jobs of type `J` with results of type `R`.
pub(crate) struct Queue<J, R> {
    next: Ticket,
    /// Waiting entries in arrival order: `Some(job)` to be grouped, `None` to run alone.
    waiting: VecDeque<(Ticket, Option<J>)>,
    /// A transaction (a group's or an alone writer's) is running.
    running: bool,
    /// Results of finished groups not yet collected by their writers.
    done: HashMap<Ticket, R>,
    max_group: usize,
}

impl<J, R> Queue<J, R> {
    /// An empty queue whose groups take at most `max_group` jobs.
    pub(crate) fn new(max_group: usize) -> Queue<J, R> {
        Queue {
            next: 0,
            waiting: VecDeque::new(),
            running: false,
            done: HashMap::new(),
            max_group: max_group.max(1),
        }
    }

    /// Queue a job to be grouped with others (`Some`) or a transaction of its own (`None`).
    pub(crate) fn join(&mut self, job: Option<J>) -> Ticket {
        let ticket = self.next;
        self.next = self.next.wrapping_add(1);
        self.waiting.push_back((ticket, job));
        ticket
    }

    /// Whether `ticket` may go now, and how: only the head of the queue goes, and only when
    /// no transaction runs. A grouped head takes the grouped jobs behind it, up to the first
    /// alone entry or the group limit.
    pub(crate) fn turn(&mut self, ticket: Ticket) -> Turn<J> {
        if self.running || self.waiting.front().map(|(t, _)| *t) != Some(ticket) {
            return Turn::Wait;
        }
        self.running = true;
        let Some((_, Some(first))) = self.waiting.pop_front() else {
            return Turn::Alone;
        };
        let mut group = vec![(ticket, first)];
        while group.len() < self.max_group && matches!(self.waiting.front(), Some((_, Some(_)))) {
            if let Some((t, Some(job))) = self.waiting.pop_front() {
                group.push((t, job));
            }
        }
        Turn::Lead(group)
    }

    /// The running transaction ended (committed or not): store the group's results and
    /// return the ticket now at the head, which may go (`None`: nobody waits).
    pub(crate) fn finish(
        &mut self,
        results: impl IntoIterator<Item = (Ticket, R)>,
    ) -> Option<Ticket> {
        self.running = false;
        self.done.extend(results);
        self.head()
    }

    /// The ticket at the head of the queue.
    pub(crate) fn head(&self) -> Option<Ticket> {
        self.waiting.front().map(|(t, _)| *t)
    }

    /// How many writers wait for their turn.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The result of `ticket`'s grouped job, once its group has finished.
    pub(crate) fn take_result(&mut self, ticket: Ticket) -> Option<R> {
        self.done.remove(&ticket)
    }
}

/// A write transaction that notes whether anything was written through it: a grouped write
/// that fails before writing anything leaves the group's transaction as it found it, so the
/// others go on; one that fails after writing cannot be undone alone.
pub(crate) struct Tracked<'t> {
    pub(crate) txn: &'t mut dyn WriteTxn,
    pub(crate) wrote: bool,
}

impl ReadTxn for Tracked<'_> {
    fn get(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        self.txn.get(type_name, space, id)
    }

    fn get_raw(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.txn.get_raw(type_name, space, id)
    }

    fn scan(
        &mut self,
        type_name: &str,
        space: SpaceId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        self.txn.scan(type_name, space, after, limit)
    }

    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.txn.changes(after, limit)
    }

    fn last_seq(&mut self) -> Result<u64, StoreError> {
        self.txn.last_seq()
    }

    fn state(&mut self, type_name: &str) -> Result<Option<TypeState>, StoreError> {
        self.txn.state(type_name)
    }

    fn quarantined(&mut self, type_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        self.txn.quarantined(type_name)
    }

    fn space_stats(&mut self, type_name: &str, space: SpaceId) -> Result<SpaceStats, StoreError> {
        self.txn.space_stats(type_name, space)
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.txn.meta(key)
    }

    fn meta_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.txn.meta_prefix(prefix)
    }
}

impl WriteTxn for Tracked<'_> {
    fn put(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.put(type_name, space, id, record)
    }

    fn put_many(
        &mut self,
        type_name: &str,
        space: SpaceId,
        records: &[(&str, &Record)],
    ) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.put_many(type_name, space, records)
    }

    fn remove(&mut self, type_name: &str, space: SpaceId, id: &str) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.remove(type_name, space, id)
    }

    fn append_change(
        &mut self,
        type_name: &str,
        id: &str,
        rev: &Rev,
        deleted: bool,
    ) -> Result<u64, StoreError> {
        self.wrote = true;
        self.txn.append_change(type_name, id, rev, deleted)
    }

    fn remove_change(&mut self, seq: u64) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.remove_change(seq)
    }

    fn put_state(&mut self, type_name: &str, state: &TypeState) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.put_state(type_name, state)
    }

    fn put_quarantine(&mut self, type_name: &str, entry: &Quarantined) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.put_quarantine(type_name, entry)
    }

    fn remove_quarantine(&mut self, type_name: &str, id: &str) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.remove_quarantine(type_name, id)
    }

    fn put_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.put_meta(key, value)
    }

    fn clear_quarantine(&mut self, type_name: &str) -> Result<(), StoreError> {
        self.wrote = true;
        self.txn.clear_quarantine(type_name)
    }

    fn clear_space(
        &mut self,
        type_name: &str,
        space: SpaceId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.wrote = true;
        self.txn.clear_space(type_name, space, limit)
    }
}

/// Whether a grouped write's error leaves the group's transaction usable: the write's own
/// refusal (a rev conflict, a translation) before it wrote anything does; a backend failure
/// does not (PostgreSQL aborts the whole transaction on a failed statement), nor anything
/// after a write.
pub(crate) fn leaves_group_intact(error: &StoreError, wrote: bool) -> bool {
    !wrote
        && !matches!(
            error,
            StoreError::Backend { .. } | StoreError::Corrupt { .. }
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets<J>(turn: &Turn<J>) -> Vec<Ticket> {
        match turn {
            Turn::Lead(group) => group.iter().map(|(t, _)| *t).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_head_leads_everything_queued_behind_it() {
        let mut q: Queue<&str, u32> = Queue::new(MAX_GROUP);
        let a = q.join(Some("a"));
        let b = q.join(Some("b"));
        let c = q.join(Some("c"));
        assert_eq!(q.turn(b), Turn::Wait, "only the head goes");
        let turn = q.turn(a);
        assert_eq!(tickets(&turn), vec![a, b, c]);
        assert_eq!(q.turn(b), Turn::Wait);
        assert_eq!(q.finish([(a, 1), (b, 2), (c, 3)]), None);
        assert_eq!(q.take_result(b), Some(2));
        assert_eq!(q.take_result(b), None, "a result is handed out once");
    }

    #[test]
    fn nobody_goes_while_a_transaction_runs() {
        let mut q: Queue<&str, u32> = Queue::new(MAX_GROUP);
        let a = q.join(Some("a"));
        assert_eq!(tickets(&q.turn(a)), vec![a]);
        // Arrives while the group commits: it waits for the next one.
        let b = q.join(Some("b"));
        let c = q.join(Some("c"));
        assert_eq!(q.turn(b), Turn::Wait);
        assert_eq!(q.finish([(a, 1)]), Some(b));
        assert_eq!(tickets(&q.turn(b)), vec![b, c]);
    }

    #[test]
    fn a_group_stops_at_a_writer_that_runs_alone() {
        let mut q: Queue<&str, u32> = Queue::new(MAX_GROUP);
        let a = q.join(Some("a"));
        let migration = q.join(None);
        let b = q.join(Some("b"));
        assert_eq!(
            tickets(&q.turn(a)),
            vec![a],
            "the group does not pass the migration"
        );
        assert_eq!(q.turn(migration), Turn::Wait);
        assert_eq!(q.finish([(a, 1)]), Some(migration));
        assert_eq!(
            q.turn(b),
            Turn::Wait,
            "the writer behind the migration waits for it"
        );
        assert_eq!(q.turn(migration), Turn::Alone);
        assert_eq!(q.finish([]), Some(b));
        assert_eq!(tickets(&q.turn(b)), vec![b]);
    }

    #[test]
    fn a_group_is_bounded() {
        let mut q: Queue<u64, u32> = Queue::new(3);
        let all: Vec<Ticket> = (0..5).map(|i| q.join(Some(i))).collect();
        assert_eq!(tickets(&q.turn(all[0])), all[..3].to_vec());
        assert_eq!(q.finish([]), Some(all[3]));
        assert_eq!(tickets(&q.turn(all[3])), all[3..].to_vec());
        assert_eq!(q.finish([]), None);
    }
}
