//! Usage per release, kept in the store: requests per release, type and UTC day, the distinct
//! tokens that called each release per day, and when each release was first and last seen —
//! what `GET /admin/releases` judges retirement by.
//!
//! The edge ([`crate::http`]) calls [`Usage::record`] once per answered request that was
//! served in (or named) a release of the schema set: one mutex and a few map lookups that
//! borrow their keys, no allocation once a (day, release, type, token) was seen. Counts are
//! added up in memory per process and flushed every [`FLUSH_EVERY`] and at shutdown, in one
//! write transaction that *adds* to what the store holds ([`Store::update_settings`]), so
//! every process on one PostgreSQL store contributes to the same rows and a restart loses
//! nothing flushed. A flush that fails puts its counts back, to go with the next one.
//!
//! Stored as node settings:
//! - `usage/day/{release}/{YYYY-MM-DD}` — `{"requests": {type: n}, "tokens": [names],
//!   "anonymous": n}` (requests without a token; `(none)` is the type of a request that names
//!   no type, such as the CouchDB protocol's database routes);
//! - `usage/month/{release}/{YYYY-MM}` — the same, for days older than [`KEEP_DAYS`]: daily
//!   rows past that are rolled up into their month (requests summed, tokens united), never
//!   dropped, so a release's history stays bounded by about a row a month;
//! - `usage/seen/{release}` — `{"first": unix seconds, "last": unix seconds}`.
//!
//! Tokens are kept by their names (tokens are created by an admin, so the set is bounded);
//! every request without a known token counts in one anonymous bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mutatis_lens::calendar;
use mutatis_store::{Backend, Settings, Store, StoreError};
use serde_json::{json, Map, Value};

/// How often each process adds what it counted to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Daily rows older than this many days are rolled up into monthly rows.
pub const KEEP_DAYS: i64 = 90;

/// The type recorded for a request that names none.
pub const NO_TYPE: &str = "(none)";

const SECONDS_PER_DAY: i64 = 86_400;

/// Counts of one release on one day (or month).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests per type ([`NO_TYPE`] for none).
    pub requests: BTreeMap<String, u64>,
    /// The names of the tokens that called.
    pub tokens: BTreeSet<String>,
    /// Requests without a known token.
    pub anonymous: u64,
}

impl Counts {
    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// `other` added to these counts.
    pub fn add(&mut self, other: &Counts) {
        for (t, n) in &other.requests {
            *self.requests.entry(t.clone()).or_default() += n;
        }
        self.tokens.extend(other.tokens.iter().cloned());
        self.anonymous += other.anonymous;
    }

    /// As stored.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "tokens": self.tokens,
            "anonymous": self.anonymous,
        })
    }

    /// From a stored row; what it does not hold reads as zero (a row is only ever written by
    /// [`Counts::to_json`]).
    pub fn from_json(v: &Value) -> Counts {
        let requests = v
            .get("requests")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(t, n)| Some((t.clone(), n.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let tokens = v
            .get("tokens")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let anonymous = v.get("anonymous").and_then(Value::as_u64).unwrap_or(0);
        Counts {
            requests,
            tokens,
            anonymous,
        }
    }
}

/// First and last time a release was seen (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The first request.
    pub first: i64,
    /// The last request.
    pub last: i64,
}

/// What one process counted since its last flush.
#[derive(Debug, Default)]
pub struct Pending {
    /// day number → release → counts.
    days: BTreeMap<i64, BTreeMap<String, Counts>>,
    seen: BTreeMap<String, Seen>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.days.is_empty() && self.seen.is_empty()
    }

    /// `other` added to this (a failed flush's counts put back).
    fn absorb(&mut self, other: Pending) {
        for (day, releases) in other.days {
            let mine = self.days.entry(day).or_default();
            for (release, counts) in releases {
                mine.entry(release).or_default().add(&counts);
            }
        }
        for (release, s) in other.seen {
            merge_seen(self.seen.entry(release).or_insert(s), s);
        }
    }
}

fn merge_seen(into: &mut Seen, s: Seen) {
    into.first = into.first.min(s.first);
    into.last = into.last.max(s.last);
}

/// The usage recorder of one process.
#[derive(Debug)]
pub struct Usage {
    enabled: bool,
    pending: Mutex<Pending>,
    /// The day this process last rolled old daily rows up (`i64::MIN`: not yet): once a day
    /// is enough, and it spares each flush a scan of every daily row.
    rolled_up: AtomicI64,
}

/// The counts stay consistent under a panic elsewhere (each update is a few additions).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Usage {
    /// A recorder; `enabled` false records nothing (`mutatis serve --usage off`).
    pub fn new(enabled: bool) -> Usage {
        Usage {
            enabled,
            pending: Mutex::new(Pending::default()),
            rolled_up: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether requests are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Count one request to `release` for `type_name` (`""`: none) by the token named
    /// `token` (`None`: anonymous), at `unix` seconds.
    pub fn record(&self, release: &str, type_name: &str, token: Option<&str>, unix: i64) {
        if !self.enabled {
            return;
        }
        let day = unix.div_euclid(SECONDS_PER_DAY);
        let type_name = if type_name.is_empty() {
            NO_TYPE
        } else {
            type_name
        };
        let mut p = lock(&self.pending);
        let releases = p.days.entry(day).or_default();
        // Borrowed lookups first: the common case allocates nothing.
        let counts = match releases.get_mut(release) {
            Some(c) => c,
            None => releases.entry(release.to_owned()).or_default(),
        };
        match counts.requests.get_mut(type_name) {
            Some(n) => *n += 1,
            None => {
                counts.requests.insert(type_name.to_owned(), 1);
            }
        }
        match token {
            Some(t) if !counts.tokens.contains(t) => {
                counts.tokens.insert(t.to_owned());
            }
            Some(_) => {}
            None => counts.anonymous += 1,
        }
        match p.seen.get_mut(release) {
            Some(s) => merge_seen(
                s,
                Seen {
                    first: unix,
                    last: unix,
                },
            ),
            None => {
                p.seen.insert(
                    release.to_owned(),
                    Seen {
                        first: unix,
                        last: unix,
                    },
                );
            }
        }
    }

    /// Add what was counted since the last flush to `store`, in one write transaction; daily
    /// rows older than [`KEEP_DAYS`] before `today` (a day number) are rolled up into their
    /// months in the same transaction, by the first flush of each day. On failure the counts
    /// are kept for the next flush.
    pub fn flush<B: Backend>(&self, store: &Store<B>, today: i64) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *lock(&self.pending));
        if taken.is_empty() {
            return Ok(());
        }
        let roll = self.rolled_up.load(Ordering::Relaxed) != today;
        let written = store.update_settings(|txn| {
            add_to_store(txn, &taken)?;
            if roll {
                roll_up(txn, today)?;
            }
            Ok(())
        });
        match written {
            Ok(()) if roll => self.rolled_up.store(today, Ordering::Relaxed),
            Ok(()) => {}
            Err(_) => lock(&self.pending).absorb(taken),
        }
        written
    }
}

fn day_key(release: &str, day: i64) -> String {
    let (y, m, d) = calendar::civil_from_days(day);
    format!("usage/day/{release}/{y:04}-{m:02}-{d:02}")
}

fn add_to_store(txn: &mut Settings<'_>, pending: &Pending) -> Result<(), StoreError> {
    for (day, releases) in &pending.days {
        for (release, counts) in releases {
            let key = day_key(release, *day);
            let mut stored = txn
                .get(&key)?
                .map(|v| Counts::from_json(&v))
                .unwrap_or_default();
            stored.add(counts);
            txn.put(&key, Some(&stored.to_json()))?;
        }
    }
    for (release, s) in &pending.seen {
        let key = format!("usage/seen/{release}");
        let mut seen = *s;
        if let Some(v) = txn.get(&key)? {
            if let (Some(first), Some(last)) = (
                v.get("first").and_then(Value::as_i64),
                v.get("last").and_then(Value::as_i64),
            ) {
                merge_seen(&mut seen, Seen { first, last });
            }
        }
        txn.put(&key, Some(&json!({"first": seen.first, "last": seen.last})))?;
    }
    Ok(())
}

/// Daily rows older than [`KEEP_DAYS`] added to their monthly rows and removed.
fn roll_up(txn: &mut Settings<'_>, today: i64) -> Result<(), StoreError> {
    let oldest_kept = today - KEEP_DAYS;
    for (key, value) in txn.prefixed("usage/day/")? {
        let Some((release, day)) = parse_day_key(&key) else {
            continue;
        };
        if day >= oldest_kept {
            continue;
        }
        let (y, m, _) = calendar::civil_from_days(day);
        let month_key = format!("usage/month/{release}/{y:04}-{m:02}");
        let mut month = txn
            .get(&month_key)?
            .map(|v| Counts::from_json(&v))
            .unwrap_or_default();
        month.add(&Counts::from_json(&value));
        txn.put(&month_key, Some(&month.to_json()))?;
        txn.put(&key, None)?;
    }
    Ok(())
}

/// `usage/day/{release}/{YYYY-MM-DD}` → (release, day number). Release names may hold `/`:
/// the date is the last segment.
fn parse_day_key(key: &str) -> Option<(&str, i64)> {
    let rest = key.strip_prefix("usage/day/")?;
    let (release, date) = rest.rsplit_once('/')?;
    Some((release, parse_date(date)?))
}

/// `YYYY-MM-DD` → day number.
pub fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    calendar::is_date(y, m, d).then(|| calendar::days_from_civil(y, m, d))
}

/// A day number as `YYYY-MM-DD`.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = calendar::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A Unix time as an RFC 3339 UTC timestamp.
pub fn format_time(unix: i64) -> String {
    let (day, secs) = calendar::split_unix(unix);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_day(day),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One release's stored usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Day number → counts (the last [`KEEP_DAYS`] days).
    pub days: BTreeMap<i64, Counts>,
    /// `YYYY-MM` → counts (older days, rolled up).
    pub months: BTreeMap<String, Counts>,
    /// First and last request, if any was ever recorded.
    pub seen: Option<Seen>,
}

/// Every release's stored usage, read from the store's settings.
pub fn read_histories<B: Backend>(
    store: &Store<B>,
) -> Result<BTreeMap<String, History>, StoreError> {
    let mut out: BTreeMap<String, History> = BTreeMap::new();
    for (key, value) in store.settings("usage/")? {
        if let Some((release, day)) = parse_day_key(&key) {
            out.entry(release.to_owned())
                .or_default()
                .days
                .insert(day, Counts::from_json(&value));
        } else if let Some((release, month)) = key
            .strip_prefix("usage/month/")
            .and_then(|r| r.rsplit_once('/'))
        {
            out.entry(release.to_owned())
                .or_default()
                .months
                .insert(month.to_owned(), Counts::from_json(&value));
        } else if let Some(release) = key.strip_prefix("usage/seen/") {
            if let (Some(first), Some(last)) = (
                value.get("first").and_then(Value::as_i64),
                value.get("last").and_then(Value::as_i64),
            ) {
                out.entry(release.to_owned()).or_default().seen = Some(Seen { first, last });
            }
        }
    }
    Ok(out)
}

/// A history as JSON (`days` by date, `months`, `firstSeen`/`lastSeen`).
pub fn history_json(h: &History) -> Value {
    let days: Map<String, Value> = h
        .days
        .iter()
        .map(|(d, c)| (format_day(*d), c.to_json()))
        .collect();
    let months: Map<String, Value> = h
        .months
        .iter()
        .map(|(m, c)| (m.clone(), c.to_json()))
        .collect();
    json!({
        "firstSeen": h.seen.map(|s| format_time(s.first)),
        "lastSeen": h.seen.map(|s| format_time(s.last)),
        "days": days,
        "months": months,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_counts_per_day_release_type_and_token() {
        let u = Usage::new(true);
        let t0 = 20_000 * SECONDS_PER_DAY + 10;
        u.record("3", "Student", Some("alice"), t0);
        u.record("3", "Student", Some("alice"), t0 + 5);
        u.record("3", "", None, t0 + 7);
        u.record("5", "Student", Some("bob"), t0 + SECONDS_PER_DAY);
        let p = lock(&u.pending);
        let c3 = &p.days[&20_000]["3"];
        assert_eq!(c3.requests["Student"], 2);
        assert_eq!(c3.requests[NO_TYPE], 1);
        assert_eq!(c3.tokens.len(), 1);
        assert_eq!(c3.anonymous, 1);
        assert_eq!(p.days[&20_001]["5"].total(), 1);
        assert_eq!(
            p.seen["3"],
            Seen {
                first: t0,
                last: t0 + 7
            }
        );
    }

    #[test]
    fn switched_off_records_nothing() {
        let u = Usage::new(false);
        u.record("3", "Student", None, 0);
        assert!(lock(&u.pending).is_empty());
    }

    /// A store on a fresh redb file in the temporary folder (removed when the test ends).
    fn store() -> (Store<mutatis_store::RedbBackend>, std::path::PathBuf) {
        use std::path::PathBuf;
        let set = mutatis_schema::SchemaSet::from_sources(vec![
            (
                PathBuf::from("mutatis.yaml"),
                "name: u\nreleases: [{name: '1', types: {t: 1}, status: current}]\n".into(),
            ),
            (
                PathBuf::from("types/t.yaml"),
                "type: t\nversions:\n  1:\n    schema: {type: object}\n".into(),
            ),
        ])
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("mutatis-usage-{}-{nanos}.redb", std::process::id()));
        let backend =
            mutatis_store::RedbBackend::open(&path, mutatis_store::RedbOptions::default()).unwrap();
        (Store::new(backend, std::sync::Arc::new(set)), path)
    }

    #[test]
    fn flushes_add_and_old_days_roll_up_into_their_month() {
        let (store, path) = store();
        let today = 20_000;
        let old = today - KEEP_DAYS - 5;
        let (y, m, _) = calendar::civil_from_days(old);
        let u = Usage::new(true);
        u.record("1", "t", Some("a"), old * SECONDS_PER_DAY);
        u.record("1", "t", None, today * SECONDS_PER_DAY);
        u.flush(&store, today).unwrap();
        // A second process's counts for the same day and month are added, not overwritten.
        let other = Usage::new(true);
        other.record("1", "t", Some("b"), today * SECONDS_PER_DAY + 1);
        other.record("1", "t", Some("b"), (old + 1) * SECONDS_PER_DAY);
        other.flush(&store, today).unwrap();
        assert!(lock(&other.pending).is_empty());

        let h = &read_histories(&store).unwrap()["1"];
        assert_eq!(h.days.keys().copied().collect::<Vec<_>>(), [today]);
        let day = &h.days[&today];
        assert_eq!((day.total(), day.anonymous), (2, 1));
        assert_eq!(day.tokens, BTreeSet::from(["b".to_owned()]));
        let month_key = format!("{y:04}-{m:02}");
        let expected_month = if calendar::civil_from_days(old + 1).1 == m {
            (2, vec!["a", "b"])
        } else {
            (1, vec!["a"])
        };
        let month = &h.months[&month_key];
        assert_eq!(month.total(), expected_month.0);
        assert_eq!(
            month.tokens.iter().map(String::as_str).collect::<Vec<_>>(),
            expected_month.1
        );
        assert_eq!(
            h.seen,
            Some(Seen {
                first: old * SECONDS_PER_DAY,
                last: today * SECONDS_PER_DAY + 1
            })
        );
        drop(store);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn day_keys_round_trip_with_slashes_in_release_names() {
        let key = day_key("2025/06", 20_000);
        assert_eq!(parse_day_key(&key), Some(("2025/06", 20_000)));
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_date("2026-12-06").map(format_day).as_deref(),
            Some("2026-12-06")
        );
    }
}
