//! The timer hyper is given for one HTTP/1 connection, whose sleeps share one tokio timer
//! entry.
//!
//! Hyper bounds the time a request head may take (`header_read_timeout`, which also bounds
//! how long a kept-alive connection may sit idle) with a sleep it asks its timer for before
//! every head and drops once the head is read. With hyper-util's `TokioTimer` every such
//! sleep is a tokio timer entry of its own: made, inserted into the runtime's timer wheel
//! while the connection waits for the next head, and removed again, for every request.
//!
//! Here every sleep of one connection drives the same entry instead, moved to the sleep's
//! deadline when it is polled. A connection's deadlines only move later (each is the start
//! of a head plus the same timeout), and tokio moves an entry later without touching the
//! wheel: the entry is re-filed only when its old deadline comes, about once per timeout
//! per connection, not once per request. A sleep is still ready exactly when its own
//! deadline has passed: the entry it polls is at that deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The one entry, made at the first poll (a tokio timer is made inside the runtime).
type SharedEntry = Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>;

/// A [`hyper::rt::Timer`] for one connection (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct ConnectionTimer {
    entry: SharedEntry,
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        match Instant::now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            // Too far away to be an instant: never.
            None => Box::pin(Never),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SharedSleep {
            deadline: deadline.into(),
            entry: Arc::clone(&self.entry),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<SharedSleep>() {
            Some(mine) => mine.get_mut().deadline = new_deadline.into(),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One of hyper's sleeps: ready once `deadline` has passed.
struct SharedSleep {
    deadline: tokio::time::Instant,
    entry: SharedEntry,
}

impl hyper::rt::Sleep for SharedSleep {}

impl Future for SharedSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        // Only this connection's task polls its sleeps: the lock is never contended.
        let mut entry = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entry.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if entry.deadline() != deadline {
            // Later (the common case) is a compare-and-swap on the entry; earlier files it
            // again. Either way the entry now fires at this sleep's deadline, not before.
            entry.as_mut().reset(deadline);
        }
        entry.as_mut().poll(cx)
    }
}

/// A hyper sleep that never ends.
struct Never;

impl hyper::rt::Sleep for Never {}

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer as _;

    /// Whether `sleep` is ready when polled now (with a waker that does nothing).
    fn ready(sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        sleep.as_mut().poll(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn a_sleep_ends_at_its_own_deadline_however_many_came_before() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        // As hyper does: a sleep per head, polled while the head is awaited, then dropped.
        for i in 1..=50u64 {
            let mut head = timer.sleep_until(start + Duration::from_millis(400 + i));
            assert!(!ready(&mut head), "sleep {i} ended before its deadline");
        }
        let deadline = start + Duration::from_millis(600);
        let mut last = timer.sleep_until(deadline);
        assert!(!ready(&mut last));
        // The entry was first filed for the first sleep's deadline (401 ms): when that
        // passes, the last sleep is still pending.
        tokio::time::sleep_until((start + Duration::from_millis(450)).into()).await;
        assert!(!ready(&mut last), "ended at an earlier sleep's deadline");
        std::future::poll_fn(|cx| last.as_mut().poll(cx)).await;
        assert!(Instant::now() >= deadline, "ended before its deadline");
    }

    #[tokio::test]
    async fn an_earlier_deadline_moves_the_entry_earlier() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut far = timer.sleep_until(start + Duration::from_secs(3600));
        assert!(!ready(&mut far));
        drop(far);
        let deadline = start + Duration::from_millis(50);
        let mut near = timer.sleep_until(deadline);
        // Would hang for an hour if the entry kept the far deadline.
        tokio::time::timeout(
            Duration::from_secs(60),
            std::future::poll_fn(|cx| near.as_mut().poll(cx)),
        )
        .await
        .expect("the near sleep ended");
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn reset_moves_a_sleep_and_sleep_counts_from_now() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut s = timer.sleep_until(start + Duration::from_secs(3600));
        let deadline = start + Duration::from_millis(50);
        timer.reset(&mut s, deadline);
        std::future::poll_fn(|cx| s.as_mut().poll(cx)).await;
        assert!(Instant::now() >= deadline);
        let mut d = timer.sleep(Duration::from_millis(20));
        std::future::poll_fn(|cx| d.as_mut().poll(cx)).await;
        assert!(Instant::now() >= start + Duration::from_millis(70));
        // A duration past what an instant can hold is a sleep that never ends.
        assert!(!ready(&mut timer.sleep(Duration::MAX)));
    }
}
