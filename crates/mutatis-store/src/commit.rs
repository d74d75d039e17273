//! Group commit: who writes next, and which writes share a transaction.
//!
//! A durable commit (an fsync on redb, a WAL flush on PostgreSQL) costs far more than the
//! work of a document write, and write transactions are serialised anyway. So concurrent
//! document writes wait in one queue, and the store's committer takes the run of grouped
//! writes at its head (up to [`MAX_GROUP`]), runs each in one transaction, commits once, and
//! hands every writer its own result. Writes that must have a transaction of their own (a
//! migration batch, an import, a settings change) queue as *alone* entries: they run in
//! arrival order like the rest, on their own thread, and a group never reaches past one. So
//! a writer waits at most for what arrived before it (one migration batch among it), and a
//! migration batch waits at most for the groups ahead of it.
//!
//! This module is the pure part: the queue as a value, no threads, no backend. The store
//! drives it under a mutex (`store.rs`, `Turnstile`).

use std::collections::VecDeque;

use crate::backend::{ReadTxn, WriteTxn};
use crate::error::StoreError;
use crate::model::{Change, Quarantined, Record, SpaceId, SpaceStats, TypeState};
use crate::rev::Rev;

/// Most writes one group commit takes: bounds how long the last of them waits for the
/// others' work, and how much one failed transaction has to redo one by one.
pub(crate) const MAX_GROUP: usize = 64;

/// A writer's place in the queue.
pub(crate) type Ticket = u64;

/// Who may go once no transaction runs: whoever is at the head of the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nobody waits.
    Idle,
    /// Grouped writes: the committer's turn.
    Group,
    /// The writer with this ticket, which runs a transaction of its own.
    Alone(Ticket),
}

/// The writer queue of grouped jobs of type `J`.
pub(crate) struct Queue<J> {
    next: Ticket,
    /// Waiting entries in arrival order: `Some(job)` to be grouped, `None` to run alone.
    waiting: VecDeque<(Ticket, Option<J>)>,
    /// A transaction (a group's or an alone writer's) is running.
    running: bool,
    max_group: usize,
}

impl<J> Queue<J> {
    /// An empty queue whose groups take at most `max_group` jobs.
    pub(crate) fn new(max_group: usize) -> Queue<J> {
        Queue {
            next: 0,
            waiting: VecDeque::new(),
            running: false,
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

    /// Whether the alone writer `ticket` may run its transaction now: only the head of the
    /// queue goes, and only when no transaction runs. If it may, the queue counts its
    /// transaction as running until [`Queue::finish`].
    pub(crate) fn turn(&mut self, ticket: Ticket) -> bool {
        if self.running || self.next_up() != Next::Alone(ticket) {
            return false;
        }
        self.running = true;
        self.waiting.pop_front();
        true
    }

    /// The group the committer runs now, if grouped jobs are at the head and no transaction
    /// runs: the run of grouped jobs there, in queue order, up to the first alone entry or
    /// the group limit. The queue counts its transaction as running until [`Queue::finish`].
    pub(crate) fn lead(&mut self) -> Option<Vec<J>> {
        if self.running || self.next_up() != Next::Group {
            return None;
        }
        self.running = true;
        let mut group = Vec::new();
        while group.len() < self.max_group && matches!(self.waiting.front(), Some((_, Some(_)))) {
            if let Some((_, Some(job))) = self.waiting.pop_front() {
                group.push(job);
            }
        }
        Some(group)
    }

    /// The running transaction ended (committed or not): who goes next.
    pub(crate) fn finish(&mut self) -> Next {
        self.running = false;
        self.next_up()
    }

    /// Who is at the head of the queue (whether or not a transaction runs).
    pub(crate) fn next_up(&self) -> Next {
        match self.waiting.front() {
            None => Next::Idle,
            Some((_, Some(_))) => Next::Group,
            Some((ticket, None)) => Next::Alone(*ticket),
        }
    }

    /// Nothing waits and nothing runs.
    pub(crate) fn is_idle(&self) -> bool {
        !self.running && self.waiting.is_empty()
    }

    /// How many writers wait for their turn.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
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

    #[test]
    fn the_committer_leads_everything_queued() {
        let mut q: Queue<&str> = Queue::new(MAX_GROUP);
        assert_eq!(q.lead(), None, "nothing to lead");
        q.join(Some("a"));
        q.join(Some("b"));
        q.join(Some("c"));
        assert_eq!(q.lead(), Some(vec!["a", "b", "c"]));
        assert_eq!(q.waiting(), 0);
        assert_eq!(q.finish(), Next::Idle);
        assert!(q.is_idle());
    }

    #[test]
    fn nobody_goes_while_a_transaction_runs() {
        let mut q: Queue<&str> = Queue::new(MAX_GROUP);
        q.join(Some("a"));
        assert_eq!(q.lead(), Some(vec!["a"]));
        // Arrive while the group commits: they wait for the next one.
        q.join(Some("b"));
        let m = q.join(None);
        assert_eq!(q.lead(), None);
        assert!(!q.turn(m));
        assert_eq!(q.finish(), Next::Group);
        assert_eq!(q.lead(), Some(vec!["b"]));
        assert!(!q.turn(m), "the group runs");
        assert_eq!(q.finish(), Next::Alone(m));
        assert!(q.turn(m));
    }

    #[test]
    fn a_group_stops_at_a_writer_that_runs_alone() {
        let mut q: Queue<&str> = Queue::new(MAX_GROUP);
        q.join(Some("a"));
        let migration = q.join(None);
        q.join(Some("b"));
        assert_eq!(
            q.lead(),
            Some(vec!["a"]),
            "the group does not pass the migration"
        );
        assert!(!q.turn(migration));
        assert_eq!(q.finish(), Next::Alone(migration));
        assert_eq!(
            q.lead(),
            None,
            "the writer behind the migration waits for it"
        );
        assert!(q.turn(migration));
        assert_eq!(q.lead(), None);
        assert_eq!(q.finish(), Next::Group);
        assert_eq!(q.lead(), Some(vec!["b"]));
    }

    #[test]
    fn an_alone_writer_waits_for_those_ahead_of_it() {
        let mut q: Queue<&str> = Queue::new(MAX_GROUP);
        let first = q.join(None);
        let second = q.join(None);
        assert!(!q.turn(second), "only the head goes");
        assert!(q.turn(first));
        assert_eq!(q.finish(), Next::Alone(second));
        assert!(q.turn(second));
        assert_eq!(q.finish(), Next::Idle);
    }

    #[test]
    fn a_group_is_bounded() {
        let mut q: Queue<u64> = Queue::new(3);
        for i in 0..5 {
            q.join(Some(i));
        }
        assert_eq!(q.lead(), Some(vec![0, 1, 2]));
        assert_eq!(q.finish(), Next::Group);
        assert_eq!(q.lead(), Some(vec![3, 4]));
        assert_eq!(q.finish(), Next::Idle);
    }
}
