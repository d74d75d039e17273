//! How a caller waits between attempts at an unavailable peer (a replication end, a webhook
//! receiver): exponential back-off with jitter, so that many processes retrying one peer
//! after the same outage spread out instead of arriving together, and the peer's own
//! `Retry-After` when it names one.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The longest `Retry-After` honoured: a peer may ask for a pause, not stall a job for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Delays starting at `first`, doubling up to `max`, each with a random jitter of up to its
/// own length added; never ending.
pub fn backoff(first: Duration, max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The wait a `Retry-After` header value asks for, from now: delay-seconds (the form rate
/// limiters and overloaded servers send) or an HTTP-date, at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    retry_after_at(value, SystemTime::now())
}

/// [`parse_retry_after`] at the moment `now`: a date already past asks for no wait.
pub fn retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The next wait: what the peer asked for, else the back-off's next delay.
pub fn next_wait(backoff: &mut ExponentialBackoff, asked: Option<Duration>) -> Duration {
    // The back-off advances either way: a peer that keeps asking for short pauses and keeps
    // failing is still backed off from once it stops asking.
    let ours = backoff.next().unwrap_or(MAX_RETRY_AFTER);
    asked.unwrap_or(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let at = |v: &str| retry_after_at(v, now);
        assert_eq!(at(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            at("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        // The two obsolete forms RFC 9110 still asks a recipient to read.
        assert_eq!(
            at("Sunday, 06-Nov-94 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at("Sun Nov  6 08:50:07 1994"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(at("Mon, 07 Nov 1994 08:49:37 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(at("-1"), None);
        assert_eq!(at("soon"), None);
    }

    #[test]
    fn delays_grow_with_jitter_up_to_twice_the_bound() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let delays: Vec<Duration> = backoff(first, max).take(12).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = first.saturating_mul(1 << i.min(10)).min(max);
            assert!(
                *d >= base && *d <= base * 2,
                "attempt {i}: {d:?} vs {base:?}"
            );
        }
        // Jittered: two runs do not wait the same.
        let again: Vec<Duration> = backoff(first, max).take(12).collect();
        assert_ne!(delays, again);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("86400"), Some(MAX_RETRY_AFTER));
        // A date in the past asks for no wait.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let mut b = backoff(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(
            next_wait(&mut b, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert!(next_wait(&mut b, None) <= Duration::from_millis(400));
    }
}
