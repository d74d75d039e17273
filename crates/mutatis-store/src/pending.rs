//! A document write handed to the store's committer, and its result once durable.
//!
//! Document writes are committed in groups by one committer thread per store
//! (`store.rs`, `Turnstile`). The writer does not need a thread of its own while it waits: an
//! async caller (the server) awaits a [`PendingWrite`] as a future, a synchronous one blocks
//! on [`PendingWrite::wait`]. So a group of n writes from async callers costs the committer's
//! n wake-ups of their tasks, not n blocking threads that each sleep and wake around one
//! commit. A one-shot slot of our own (a mutex, a condvar, a waker) keeps the store free of an
//! async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::StoreError;
use crate::store::Written;

type WriteResult = Result<Written, StoreError>;

struct Slot {
    state: Mutex<SlotState>,
    /// Signalled when the result arrives, for a writer blocked in [`PendingWrite::wait`].
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<WriteResult>,
    /// The reply was dropped without a result (the committer failed in a way that lost it).
    closed: bool,
    /// The task awaiting the result, if it is awaited as a future.
    waker: Option<Waker>,
    /// A thread sleeps in [`PendingWrite::wait`]: only then is the condvar signalled, as a
    /// signal costs a system call even with nobody to wake.
    blocked: bool,
}

/// A document write queued for group commit: resolves to its result once the write's group
/// is durable (or has failed). Await it, or [`PendingWrite::wait`] for it.
#[must_use = "the write's result, including its conflicts, arrives through it"]
pub struct PendingWrite {
    slot: Arc<Slot>,
}

/// The committer's end: delivers one result.
pub(crate) struct Reply {
    slot: Option<Arc<Slot>>,
}

/// A pending write and the reply that completes it.
pub(crate) fn pending() -> (PendingWrite, Reply) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState::default()),
        ready: Condvar::new(),
    });
    (
        PendingWrite {
            slot: Arc::clone(&slot),
        },
        Reply { slot: Some(slot) },
    )
}

impl PendingWrite {
    /// A write that is already decided (refused before it was queued).
    pub(crate) fn ready(result: WriteResult) -> PendingWrite {
        let (pending, reply) = pending();
        reply.send(result);
        pending
    }

    /// Block the calling thread until the write's result is known.
    pub fn wait(self) -> WriteResult {
        let mut state = self.slot.lock();
        loop {
            if let Some(result) = take(&mut state) {
                return result;
            }
            state.blocked = true;
            state = self
                .slot
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn take(state: &mut SlotState) -> Option<WriteResult> {
    if let Some(result) = state.result.take() {
        return Some(result);
    }
    state.closed.then(lost)
}

fn lost() -> WriteResult {
    Err(StoreError::Backend {
        backend: "store",
        operation: "group commit",
        reason: "the committer dropped the write without a result".to_owned(),
    })
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, result: Option<WriteResult>) {
        let mut state = self.lock();
        match result {
            Some(result) => state.result = Some(result),
            None => state.closed = true,
        }
        let waker = state.waker.take();
        let blocked = state.blocked;
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        if blocked {
            self.ready.notify_all();
        }
    }
}

impl Future for PendingWrite {
    type Output = WriteResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WriteResult> {
        let mut state = self.slot.lock();
        if let Some(result) = take(&mut state) {
            return Poll::Ready(result);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Reply {
    /// Deliver the result, waking whoever waits for it.
    pub(crate) fn send(mut self, result: WriteResult) {
        if let Some(slot) = self.slot.take() {
            slot.complete(Some(result));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // A reply dropped unsent (a panic on the committer) must not leave its writer
        // waiting forever.
        if let Some(slot) = self.slot.take() {
            slot.complete(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rev::Rev;
    use serde_json::json;

    fn written(seq: u64) -> Written {
        Written {
            rev: Rev::next(None, &json!({"n": seq}), false),
            seq,
        }
    }

    #[test]
    fn a_blocked_waiter_gets_the_result_sent_from_another_thread() {
        let (pending, reply) = pending();
        let sender = std::thread::spawn(move || reply.send(Ok(written(7))));
        assert_eq!(pending.wait().map(|w| w.seq).ok(), Some(7));
        sender.join().unwrap();
    }

    #[test]
    fn a_reply_dropped_unsent_fails_the_write_instead_of_hanging() {
        let (pending, reply) = pending();
        drop(reply);
        assert!(matches!(pending.wait(), Err(StoreError::Backend { .. })));
    }

    #[test]
    fn polled_as_a_future_it_wakes_its_task() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let (mut pending, reply) = pending();
        assert!(Pin::new(&mut pending).poll(&mut cx).is_pending());
        reply.send(Ok(written(3)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the send woke the task");
        match Pin::new(&mut pending).poll(&mut cx) {
            Poll::Ready(Ok(w)) => assert_eq!(w.seq, 3),
            other => panic!("expected the result, got {:?}", other.is_ready()),
        }
    }
}
