//! Leases: one process of a cluster (many `mutatis serve` processes on one PostgreSQL
//! store) runs each background task. A task's lease is a setting beside its configuration
//! (`<config key>/lease`: `{"holder","pid","since","expires"}`, times in Unix milliseconds),
//! taken or renewed in a write transaction ([`mutatis_store::Store::update_settings`]), so it
//! is plain SQL on PostgreSQL and works the same on redb.
//!
//! The holder renews it every [`LEASE_RENEW`]; a lease not renewed for [`LEASE_TTL`] (its
//! holder died: SIGKILL releases nothing) is taken by the next process that looks, so a
//! task moves within `LEASE_TTL + LEASE_RENEW` of its holder's death. The holder writes a
//! checkpoint only in a transaction that finds it still holding the lease ([`held`]), so a
//! paused old holder that wakes after a takeover cannot move a checkpoint. Clocks of the
//! processes are assumed to agree to well within `LEASE_TTL`.
//!
//! This module imports nothing of the server: the background tasks use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mutatis_store::{Settings, StoreError};
use serde_json::{json, Value};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// How often a process renews its leases and looks for tasks to take over.
pub const LEASE_RENEW: Duration = Duration::from_secs(2);

/// Who holds leases in this process: a random id drawn at start, and the process id for
/// people reading `/admin/…`.
#[derive(Debug, Clone)]
pub struct Holder {
    /// Random, fresh for every process start.
    pub id: String,
    /// The operating system's process id.
    pub pid: u32,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The settings key of the lease of the task configured at `config_key`.
pub fn lease_key(config_key: &str) -> String {
    format!("{config_key}/lease")
}

fn ttl_ms() -> i64 {
    i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `lease` is `me`'s and has not expired at `now`.
pub fn is_mine(lease: Option<&Value>, me: &Holder, now: i64) -> bool {
    lease.is_some_and(|l| {
        l.get("holder").and_then(Value::as_str) == Some(me.id.as_str())
            && l.get("expires")
                .and_then(Value::as_i64)
                .is_some_and(|e| e > now)
    })
}

/// Take or renew the lease at `key` for `me`, inside a settings transaction: taken when
/// there is none, when it has expired, or when it is already `me`'s. Returns whether `me`
/// holds it now, and the lease as stored.
pub fn claim(
    settings: &mut Settings<'_>,
    key: &str,
    me: &Holder,
    now: i64,
) -> Result<(bool, Value), StoreError> {
    let current = settings.get(key)?;
    let free = match &current {
        None => true,
        Some(l) => {
            l.get("holder").and_then(Value::as_str) == Some(me.id.as_str())
                || l.get("expires")
                    .and_then(Value::as_i64)
                    .is_none_or(|e| e <= now)
        }
    };
    if !free {
        return Ok((false, current.unwrap_or(Value::Null)));
    }
    // A renewal keeps the time it was first taken.
    let since = current
        .as_ref()
        .filter(|l| l.get("holder").and_then(Value::as_str) == Some(me.id.as_str()))
        .and_then(|l| l.get("since").and_then(Value::as_i64))
        .unwrap_or(now);
    let lease = json!({
        "holder": me.id,
        "pid": me.pid,
        "since": since,
        "expires": now.saturating_add(ttl_ms()),
    });
    settings.put(key, Some(&lease))?;
    Ok((true, lease))
}

/// Whether `me` still holds the lease at `key`, inside the transaction that is about to
/// write a checkpoint: the fence against a paused old holder.
pub fn held(settings: &mut Settings<'_>, key: &str, me: &Holder) -> Result<bool, StoreError> {
    Ok(is_mine(settings.get(key)?.as_ref(), me, now_ms()))
}

/// A lease as the API shows it: the holder, its process id, since and until when (RFC 3339,
/// to the second), and whether it has expired (its holder stopped renewing it).
pub fn lease_json(lease: &Value, now: i64) -> Value {
    let time = |k: &str| {
        lease
            .get(k)
            .and_then(Value::as_i64)
            .map_or(Value::Null, |ms| json!(rfc3339_ms(ms)))
    };
    json!({
        "holder": lease.get("holder").cloned().unwrap_or(Value::Null),
        "pid": lease.get("pid").cloned().unwrap_or(Value::Null),
        "since": time("since"),
        "expires": time("expires"),
        "expired": lease.get("expires").and_then(Value::as_i64).is_none_or(|e| e <= now),
    })
}

fn rfc3339_ms(ms: i64) -> String {
    mutatis_negotiate::headers::rfc3339(ms.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mutatis_schema::SchemaSet;
    use mutatis_store::{RedbBackend, RedbOptions, Store};

    use super::*;

    fn store(dir: &tempfile::TempDir) -> Store<RedbBackend> {
        let set = SchemaSet::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/students"
        ))
        .expect("the students example");
        let backend =
            RedbBackend::open(dir.path().join("s.redb"), RedbOptions::default()).expect("a store");
        Store::new(backend, Arc::new(set))
    }

    fn holder(id: &str) -> Holder {
        Holder {
            id: id.into(),
            pid: 1,
        }
    }

    #[test]
    fn a_lease_is_held_by_one_until_it_expires_and_fences_the_old_holder() {
        let dir = tempfile::tempdir().expect("a folder");
        let store = store(&dir);
        let (a, b) = (holder("a"), holder("b"));
        let key = lease_key("webhook/x");
        let claim_at = |who: &Holder, now: i64| {
            store
                .update_settings(|s| claim(s, &key, who, now))
                .expect("a claim")
        };
        let t0 = 1_000_000;
        let (held, first) = claim_at(&a, t0);
        assert!(held);
        // Another process cannot take it while it lasts; its holder renews it, keeping since.
        assert!(!claim_at(&b, t0 + 1000).0);
        let (held, renewed) = claim_at(&a, t0 + 2000);
        assert!(held);
        assert_eq!(renewed["since"], first["since"]);
        assert!(renewed["expires"].as_i64() > first["expires"].as_i64());
        // Not renewed for LEASE_TTL: taken over, and the old holder is fenced off.
        let later = t0 + 2000 + ttl_ms();
        let (held, taken) = claim_at(&b, later);
        assert!(held);
        assert_eq!(taken["holder"], "b");
        assert!(!is_mine(Some(&taken), &a, later));
        assert!(is_mine(Some(&taken), &b, later));
        assert!(!claim_at(&a, later + 1).0);
    }
}
