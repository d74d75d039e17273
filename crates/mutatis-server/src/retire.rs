//! Retirement advice (pure): from the releases of a schema set and their recorded usage
//! ([`crate::usage`]), a verdict per release with its reason — whether it can be marked
//! unsupported, or must be kept — for `GET /admin/releases` and `mutatis releases`.

use std::collections::{BTreeMap, BTreeSet};

use mutatis_schema::{Release, ReleaseStatus};
use serde_json::{json, Value};

use crate::usage::{format_day, History};

/// The window a release must have gone without a request to be retired.
pub const QUIET_DAYS: i64 = 30;

/// The short window shares are also reported over.
pub const RECENT_DAYS: i64 = 7;

/// What to do with a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apps call it (or it is the current release): keep serving it.
    Keep,
    /// Too early or too recent to tell: look again later.
    Wait,
    /// No request in [`QUIET_DAYS`] days: it can be marked unsupported.
    Retire,
    /// Already unsupported.
    Retired,
}

impl Verdict {
    /// The spelling in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Keep => "keep",
            Verdict::Wait => "wait",
            Verdict::Retire => "retire",
            Verdict::Retired => "retired",
        }
    }
}

/// One release's figures and verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// The release's name.
    pub release: String,
    /// Its status in the schema set as served.
    pub status: ReleaseStatus,
    /// Deprecated since (`YYYY-MM-DD`).
    pub deprecated: Option<String>,
    /// Sunset date (`YYYY-MM-DD`).
    pub sunset: Option<String>,
    /// Requests over the last [`RECENT_DAYS`] days (today included).
    pub requests_7d: u64,
    /// Requests over the last [`QUIET_DAYS`] days (today included).
    pub requests_30d: u64,
    /// Its share of every release's requests over [`RECENT_DAYS`] days (0–1).
    pub share_7d: f64,
    /// Its share over [`QUIET_DAYS`] days (0–1).
    pub share_30d: f64,
    /// The day of the last request, ever (`None`: never seen).
    pub last_seen: Option<i64>,
    /// Distinct named tokens over [`QUIET_DAYS`] days.
    pub tokens_30d: usize,
    /// Requests without a token over [`QUIET_DAYS`] days.
    pub anonymous_30d: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
}

fn window(h: Option<&History>, today: i64, days: i64) -> (u64, BTreeSet<String>, u64) {
    let mut total = 0;
    let mut tokens = BTreeSet::new();
    let mut anonymous = 0;
    if let Some(h) = h {
        for (_, c) in h.days.range(today - days + 1..=today) {
            total += c.total();
            tokens.extend(c.tokens.iter().cloned());
            anonymous += c.anonymous;
        }
    }
    (total, tokens, anonymous)
}

/// A share as a person reads it: whole percents, `<1%` for a small non-zero share.
pub fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.01 {
        "<1%".to_owned()
    } else {
        format!("{:.0}%", share * 100.0)
    }
}

fn day_words(day: i64, today: i64) -> String {
    match today - day {
        0 => "today".to_owned(),
        1 => "yesterday".to_owned(),
        _ => format_day(day),
    }
}

/// The advice for every release of `releases` (in their order), from `histories` (release →
/// recorded usage) as of `today` (a day number, UTC).
///
/// A release nobody called for [`QUIET_DAYS`] days can be retired only once usage has been
/// recorded for that long (the first request recorded, of any release, is when recording
/// began): before that, silence proves nothing and the verdict is to wait.
pub fn advise(
    releases: &[Release],
    histories: &BTreeMap<String, History>,
    today: i64,
) -> Vec<Advice> {
    let recorded_since = histories
        .values()
        .filter_map(|h| {
            let first_day = h.days.keys().next().copied();
            let seen = h.seen.map(|s| s.first.div_euclid(86_400));
            match (first_day, seen) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        })
        .min();
    // Months hold days older than any window: a history with months began long ago.
    let recorded_since = if histories.values().any(|h| !h.months.is_empty()) {
        Some(i64::MIN / 2)
    } else {
        recorded_since
    };
    let all_7: u64 = histories
        .values()
        .map(|h| window(Some(h), today, RECENT_DAYS).0)
        .sum();
    let all_30: u64 = histories
        .values()
        .map(|h| window(Some(h), today, QUIET_DAYS).0)
        .sum();
    let share = |n: u64, all: u64| if all == 0 { 0.0 } else { n as f64 / all as f64 };
    releases
        .iter()
        .map(|r| {
            let h = histories.get(&r.name);
            let (requests_7d, _, _) = window(h, today, RECENT_DAYS);
            let (requests_30d, tokens, anonymous_30d) = window(h, today, QUIET_DAYS);
            let last_seen = h.and_then(|h| h.seen).map(|s| s.last.div_euclid(86_400));
            let share_30d = share(requests_30d, all_30);
            let (verdict, reason) = judge(
                r.status,
                requests_7d,
                requests_30d,
                share_30d,
                tokens.len(),
                last_seen,
                recorded_since,
                today,
            );
            Advice {
                release: r.name.clone(),
                status: r.status,
                deprecated: r.deprecated.clone(),
                sunset: r.sunset.clone(),
                requests_7d,
                requests_30d,
                share_7d: share(requests_7d, all_7),
                share_30d,
                last_seen,
                tokens_30d: tokens.len(),
                anonymous_30d,
                verdict,
                reason,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn judge(
    status: ReleaseStatus,
    requests_7d: u64,
    requests_30d: u64,
    share_30d: f64,
    tokens: usize,
    last_seen: Option<i64>,
    recorded_since: Option<i64>,
    today: i64,
) -> (Verdict, String) {
    let last = |d: Option<i64>| match d {
        Some(d) => format!("last seen {}", day_words(d, today)),
        None => "never seen".to_owned(),
    };
    match status {
        ReleaseStatus::Current => (
            Verdict::Keep,
            "the current release: what apps that name no release get".to_owned(),
        ),
        ReleaseStatus::Unsupported if requests_30d > 0 => (
            Verdict::Retired,
            format!(
                "unsupported, yet {requests_30d} refused request{} in {QUIET_DAYS} days ({}): \
                 apps still call it",
                if requests_30d == 1 { "" } else { "s" },
                last(last_seen)
            ),
        ),
        ReleaseStatus::Unsupported => (
            Verdict::Retired,
            format!("unsupported; no request in {QUIET_DAYS} days"),
        ),
        _ if requests_30d == 0 => {
            let recorded = recorded_since.map_or(0, |since| today - since + 1);
            if recorded < QUIET_DAYS {
                (
                    Verdict::Wait,
                    format!(
                        "no request in the {recorded} days recorded so far: wait until \
                         {QUIET_DAYS} days are recorded"
                    ),
                )
            } else {
                let since = match last_seen {
                    Some(d) => format!(" (last seen {})", format_day(d)),
                    None => String::new(),
                };
                (
                    Verdict::Retire,
                    format!("no request in {QUIET_DAYS} days{since}: safe to mark unsupported"),
                )
            }
        }
        _ if requests_7d == 0 => (
            Verdict::Wait,
            format!(
                "no request in {RECENT_DAYS} days but {requests_30d} in {QUIET_DAYS} ({}): wait",
                last(last_seen)
            ),
        ),
        _ => (
            Verdict::Keep,
            format!(
                "{} of requests, {tokens} token{}, {}: keep",
                percent(share_30d),
                if tokens == 1 { "" } else { "s" },
                last(last_seen)
            ),
        ),
    }
}

/// The advice as `GET /admin/releases` answers it.
pub fn advice_json(a: &Advice) -> Value {
    json!({
        "release": a.release,
        "status": a.status.as_str(),
        "deprecated": a.deprecated,
        "sunset": a.sunset,
        "requests7d": a.requests_7d,
        "requests30d": a.requests_30d,
        "share7d": a.share_7d,
        "share30d": a.share_30d,
        "lastSeen": a.last_seen.map(format_day),
        "tokens30d": a.tokens_30d,
        "anonymous30d": a.anonymous_30d,
        "verdict": a.verdict.as_str(),
        "reason": a.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Counts, Seen};

    const TODAY: i64 = 20_000;

    fn release(name: &str, status: ReleaseStatus) -> Release {
        Release {
            name: name.to_owned(),
            types: BTreeMap::new(),
            status,
            sunset: None,
            deprecated: None,
        }
    }

    /// A history with `n` requests by `tokens` on each of `days` (days before today).
    fn history(days: &[i64], n: u64, tokens: &[&str]) -> History {
        let mut h = History::default();
        for &ago in days {
            let c = Counts {
                requests: BTreeMap::from([("Student".to_owned(), n)]),
                tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
                anonymous: 0,
            };
            h.days.insert(TODAY - ago, c);
        }
        let first = days.iter().max().map(|d| (TODAY - d) * 86_400);
        let last = days.iter().min().map(|d| (TODAY - d) * 86_400 + 60);
        if let (Some(first), Some(last)) = (first, last) {
            h.seen = Some(Seen { first, last });
        }
        h
    }

    fn verdict_of(advice: &[Advice], name: &str) -> (Verdict, String) {
        let a = advice.iter().find(|a| a.release == name).unwrap();
        (a.verdict, a.reason.clone())
    }

    #[test]
    fn a_release_silent_for_thirty_days_can_be_retired() {
        let releases = [
            release("3", ReleaseStatus::Deprecated),
            release("5", ReleaseStatus::Current),
        ];
        let histories = BTreeMap::from([
            ("3".to_owned(), history(&[45, 40], 3, &["old-app"])),
            ("5".to_owned(), history(&[60, 10, 0], 100, &["web"])),
        ]);
        let advice = advise(&releases, &histories, TODAY);
        assert_eq!(
            verdict_of(&advice, "3"),
            (
                Verdict::Retire,
                format!(
                    "no request in 30 days (last seen {}): safe to mark unsupported",
                    format_day(TODAY - 40)
                )
            )
        );
        assert_eq!(verdict_of(&advice, "5").0, Verdict::Keep);
    }

    #[test]
    fn a_release_still_called_is_kept_with_its_share_and_tokens() {
        let releases = [
            release("4", ReleaseStatus::Deprecated),
            release("5", ReleaseStatus::Current),
        ];
        let tokens: Vec<String> = (0..14).map(|i| format!("app-{i}")).collect();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let histories = BTreeMap::from([
            ("4".to_owned(), history(&[0], 2, &tokens)),
            ("5".to_owned(), history(&[0], 98, &["web"])),
        ]);
        let advice = advise(&releases, &histories, TODAY);
        assert_eq!(
            verdict_of(&advice, "4"),
            (
                Verdict::Keep,
                "2% of requests, 14 tokens, last seen today: keep".to_owned()
            )
        );
        let a4 = advice.iter().find(|a| a.release == "4").unwrap();
        assert_eq!((a4.requests_7d, a4.requests_30d), (2, 2));
        assert!((a4.share_7d - 0.02).abs() < 1e-9);
    }

    #[test]
    fn silence_proves_nothing_before_thirty_days_are_recorded() {
        let releases = [
            release("3", ReleaseStatus::Supported),
            release("5", ReleaseStatus::Current),
        ];
        let histories = BTreeMap::from([("5".to_owned(), history(&[9, 0], 10, &[]))]);
        let advice = advise(&releases, &histories, TODAY);
        assert_eq!(
            verdict_of(&advice, "3"),
            (
                Verdict::Wait,
                "no request in the 10 days recorded so far: wait until 30 days are recorded"
                    .to_owned()
            )
        );
    }

    #[test]
    fn quiet_for_a_week_but_called_this_month_waits() {
        let releases = [release("4", ReleaseStatus::Supported)];
        let histories = BTreeMap::from([("4".to_owned(), history(&[50, 12], 5, &["a"]))]);
        let (verdict, reason) = verdict_of(&advise(&releases, &histories, TODAY), "4");
        assert_eq!(verdict, Verdict::Wait);
        assert_eq!(
            reason,
            format!(
                "no request in 7 days but 5 in 30 (last seen {}): wait",
                format_day(TODAY - 12)
            )
        );
    }

    #[test]
    fn an_unsupported_release_still_called_says_so() {
        let releases = [
            release("1", ReleaseStatus::Unsupported),
            release("2", ReleaseStatus::Unsupported),
        ];
        let histories = BTreeMap::from([("1".to_owned(), history(&[1], 4, &[]))]);
        let advice = advise(&releases, &histories, TODAY);
        assert_eq!(
            verdict_of(&advice, "1"),
            (
                Verdict::Retired,
                "unsupported, yet 4 refused requests in 30 days (last seen yesterday): apps \
                 still call it"
                    .to_owned()
            )
        );
        assert_eq!(
            verdict_of(&advice, "2"),
            (
                Verdict::Retired,
                "unsupported; no request in 30 days".to_owned()
            )
        );
    }

    #[test]
    fn rolled_up_months_count_as_a_long_recording() {
        let releases = [release("3", ReleaseStatus::Deprecated)];
        let mut old = History::default();
        old.months.insert("2020-01".to_owned(), Counts::default());
        let histories = BTreeMap::from([("9".to_owned(), old)]);
        let (verdict, reason) = verdict_of(&advise(&releases, &histories, TODAY), "3");
        assert_eq!(verdict, Verdict::Retire);
        assert_eq!(reason, "no request in 30 days: safe to mark unsupported");
        assert_eq!(percent(0.004), "<1%");
        assert_eq!(percent(0.0), "0%");
    }
}
