//! The PostgreSQL backend: plain SQL (no extensions, no LISTEN/NOTIFY for correctness), so that
//! many `mutatis` processes can share one database.
//!
//! It uses the `postgres` crate, the blocking face of `tokio-postgres` (it drives a
//! tokio-postgres connection on its own runtime), which fits the synchronous [`Backend`] trait.
//! Connections come from a bounded pool ([`PoolOptions`], an `r2d2` pool over
//! [`PostgresBackend::new_client`]): many processes on one database stay within its
//! `max_connections`, a request that finds every connection busy for [`PoolOptions::wait`]
//! fails with [`StoreError::Busy`] instead of hanging, and a broken connection is discarded,
//! never handed out again. Every connection carries `application_name` [`application_name`]
//! so an operator can count a store's connections in `pg_stat_activity`. Tables (in a schema
//! of their own):
//!
//! - `documents(type_name, space, id COLLATE "C", record)`: ids compare bytewise, as in redb,
//!   so scans and migrations walk the same order on both backends;
//! - `changes(seq, change)` and `feed_head(seq)`: every write transaction starts by locking
//!   the one `feed_head` row, which serialises writers across processes exactly as redb's single
//!   writer does (so a migration's switch cannot interleave with a write, and sequence numbers
//!   are gap-free and in commit order);
//! - `type_state(type_name, state)`, `quarantine(type_name, id, entry)`, `meta(key, value)`.
//!
//! A write that advances the feed also sends `NOTIFY` on a channel named after the schema
//! (delivered at commit), and [`Backend::follow_commits`] listens on it from a connection
//! of its own: processes wake their feed readers at once on each other's writes. Only a
//! wake-up: correctness never depends on it (readers still poll, slowly), and a database
//! without `pg_notify` (a PostgreSQL-compatible engine) is used without it.
//!
//! Values are the same JSON text the redb backend stores (as `text`, not `jsonb`, which would
//! reorder object keys).

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Row, Statement, Transaction};
use r2d2::PooledConnection;

use crate::backend::{Backend, ReadTxn, WriteTxn};
use crate::error::StoreError;
use crate::model::{Change, Quarantined, Record, SpaceId, SpaceStats, TypeState};
use crate::redb_backend::FORMAT;
use crate::rev::Rev;

/// The default of [`PoolOptions::size`]: what one process may hold of the database's
/// `max_connections` (100 by default on PostgreSQL), leaving room for a few processes.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// The default of [`PoolOptions::wait`].
pub const DEFAULT_POOL_WAIT: Duration = Duration::from_secs(5);

/// The bounds of a backend's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the backend holds at once (at least 1).
    pub size: u32,
    /// How long a transaction waits for a free connection before failing with
    /// [`StoreError::Busy`].
    pub wait: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: DEFAULT_POOL_SIZE,
            wait: DEFAULT_POOL_WAIT,
        }
    }
}

/// The `application_name` of a store's connections: `mutatis/<schema>`.
pub fn application_name(schema: &str) -> String {
    format!("mutatis/{schema}")
}

/// A store in a PostgreSQL schema.
pub struct PostgresBackend {
    url: String,
    schema: String,
    /// The connections; `None` in the connection factory the pool itself holds
    /// ([`Connections`]), which only ever calls [`PostgresBackend::new_client`].
    pool: Option<r2d2::Pool<Connections>>,
    options: PoolOptions,
    /// Whether the database has `pg_notify` (found out on connecting).
    notify: bool,
}

/// What the pool opens connections with: the backend's one-connection function, plus the
/// connection's `application_name`.
struct Connections(PostgresBackend);

/// A pooled connection and the statements prepared on it. A statement given as text costs
/// two round trips (prepare, then execute); one prepared once per connection costs one from
/// then on, which halves the round trips of a write (measured: a PUT's server time on
/// PostgreSQL was mostly waiting on them).
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl std::ops::Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl r2d2::ManageConnection for Connections {
    type Connection = Conn;
    type Error = StoreError;

    fn connect(&self) -> Result<Conn, StoreError> {
        let mut client = self.0.new_client()?;
        // A separate statement, so that however `new_client` connects, its connections are
        // named. The name is a quoted literal: the schema name is `[a-z0-9_]` only.
        client
            .batch_execute(&format!(
                "SET application_name TO '{}'",
                application_name(&self.0.schema)
            ))
            .map_err(err("connect"))?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, client: &mut Conn) -> Result<(), StoreError> {
        client
            .simple_query("")
            .map(drop)
            .map_err(err("check connection"))
    }

    /// A connection whose socket closed (the server went away, or a statement failed in a
    /// way that ended it) is dropped by the pool instead of being handed out again.
    fn has_broken(&self, client: &mut Conn) -> bool {
        client.is_closed()
    }
}

fn err(operation: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Backend {
        backend: PostgresBackend::NAME,
        operation,
        reason: match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        },
    }
}

impl PostgresBackend {
    /// Connect to `url` and use (creating if needed) the tables in `schema`. The schema name is
    /// written into SQL, so only `[a-z_][a-z0-9_]*` is accepted. PostgreSQL's own schemas
    /// (`information_schema`, and `pg_catalog`, `pg_toast` and every other `pg_*` name, which
    /// PostgreSQL reserves) are refused: a superuser could otherwise create the store's tables
    /// among the system catalogs. (`public` is a user schema and is accepted; a schema of the
    /// store's own is better, as its table names are plain.) A schema holding another
    /// program's `meta` table, or another store format, is refused.
    pub fn connect(url: &str, schema: &str) -> Result<PostgresBackend, StoreError> {
        PostgresBackend::connect_with(url, schema, PoolOptions::default())
    }

    /// [`PostgresBackend::connect`] with a pool of these bounds.
    pub fn connect_with(
        url: &str,
        schema: &str,
        options: PoolOptions,
    ) -> Result<PostgresBackend, StoreError> {
        let backend = PostgresBackend::unopened(url, schema, options)?;
        let mut client = backend.take_client()?;
        let ddl = format!(
            r#"
CREATE SCHEMA IF NOT EXISTS {schema};
SET search_path TO {schema};
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    type_name TEXT NOT NULL, space BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL,
    record TEXT NOT NULL, PRIMARY KEY (type_name, space, id));
CREATE TABLE IF NOT EXISTS changes (seq BIGINT PRIMARY KEY, change TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed_head (one INT PRIMARY KEY CHECK (one = 1), seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS type_state (type_name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    type_name TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, entry TEXT NOT NULL,
    PRIMARY KEY (type_name, id));
INSERT INTO feed_head (one, seq) VALUES (1, 0) ON CONFLICT (one) DO NOTHING;
"#
        );
        // Two processes starting on an empty database race on `CREATE … IF NOT EXISTS` (one
        // of them gets a unique violation in the catalog); the loser's retry finds the tables.
        let mut attempt = 0;
        loop {
            match client.batch_execute(&ddl) {
                Ok(()) => break,
                Err(_) if attempt < 2 => attempt += 1,
                Err(e) => return Err(err("create tables")(e)),
            }
        }
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ('format', $1) ON CONFLICT (key) DO NOTHING",
                &[&FORMAT],
            )
            .map_err(err("create tables"))?;
        let format: String = client
            .query_one("SELECT value FROM meta WHERE key = 'format'", &[])
            .map_err(err("read format"))?
            .get(0);
        if format != FORMAT {
            return Err(StoreError::Backend {
                backend: Self::NAME,
                operation: "connect",
                reason: format!(
                    "schema {schema} holds store format {format:?}, this build reads {FORMAT:?}"
                ),
            });
        }
        let backend = backend.probe_notify(&mut client);
        drop(client);
        Ok(backend)
    }

    /// Use the store that already is in `schema`, creating nothing: a schema without the
    /// store's tables is [`StoreError::NoStore`] (how commands that only read refuse a
    /// mistyped schema name instead of creating an empty store there). The schema name is
    /// checked as by [`PostgresBackend::connect`].
    pub fn open(url: &str, schema: &str) -> Result<PostgresBackend, StoreError> {
        let backend = PostgresBackend::unopened(url, schema, PoolOptions::default())?;
        let mut client = backend.take_client()?;
        // `to_regclass` is NULL for a table that does not exist, where reading it would fail
        // the connection's transaction (and a missing schema is no error either).
        let has_meta: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.meta")],
            )
            .map_err(err("connect"))?
            .get(0);
        let format: Option<String> = if has_meta {
            client
                .query_opt("SELECT value FROM meta WHERE key = 'format'", &[])
                .map_err(err("read format"))?
                .map(|r| r.get(0))
        } else {
            None
        };
        match format.as_deref() {
            Some(FORMAT) => {}
            None => {
                return Err(StoreError::NoStore {
                    location: format!("PostgreSQL schema {schema}"),
                })
            }
            Some(other) => {
                return Err(StoreError::Backend {
                    backend: Self::NAME,
                    operation: "connect",
                    reason: format!(
                        "schema {schema} holds store format {other:?}, this build reads {FORMAT:?}"
                    ),
                })
            }
        }
        let backend = backend.probe_notify(&mut client);
        drop(client);
        Ok(backend)
    }

    /// A backend on `schema` with no connection yet, once the name is checked: only
    /// `[a-z_][a-z0-9_]*` (it is written into SQL), and none of PostgreSQL's own schemas.
    fn unopened(
        url: &str,
        schema: &str,
        options: PoolOptions,
    ) -> Result<PostgresBackend, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(StoreError::Backend {
                backend: Self::NAME,
                operation: "connect",
                reason: format!("invalid schema name {schema:?} (expected [a-z_][a-z0-9_]*)"),
            });
        }
        if schema == "information_schema" || schema.starts_with("pg_") {
            return Err(StoreError::Backend {
                backend: Self::NAME,
                operation: "connect",
                reason: format!(
                    "schema {schema:?} is PostgreSQL's own (information_schema and pg_* are \
                     reserved); name a schema of the store's own"
                ),
            });
        }
        let factory = PostgresBackend::factory(url, schema, options);
        let pool = r2d2::Pool::builder()
            .max_size(options.size.max(1))
            // Connections are opened as needed (and idle ones closed after a while), not
            // `size` of them up front: a command-line run needs one.
            .min_idle(Some(0))
            .connection_timeout(options.wait)
            // No round trip before every transaction: a connection that broke is seen
            // (`has_broken`) when it comes back, and its transaction failed retryably.
            .test_on_check_out(false)
            .build_unchecked(Connections(factory));
        Ok(PostgresBackend {
            url: url.to_owned(),
            schema: schema.to_owned(),
            pool: Some(pool),
            options,
            notify: false,
        })
    }

    /// A backend without a pool: what opens connections ([`PostgresBackend::new_client`]).
    fn factory(url: &str, schema: &str, options: PoolOptions) -> PostgresBackend {
        PostgresBackend {
            url: url.to_owned(),
            schema: schema.to_owned(),
            pool: None,
            options,
            notify: false,
        }
    }

    /// Find out whether the database sends notifications (`pg_notify`); a compatible
    /// engine without it is used without the wake-ups.
    fn probe_notify(mut self, client: &mut Client) -> PostgresBackend {
        self.notify = client
            .batch_execute("SELECT pg_notify('mutatis_probe', '')")
            .is_ok();
        self
    }

    /// The bounds of this backend's pool.
    pub fn pool_options(&self) -> PoolOptions {
        self.options
    }

    fn new_client(&self) -> Result<Client, StoreError> {
        let mut client = crate::postgres_tls::connect(&self.url)?;
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .map_err(err("connect"))?;
        Ok(client)
    }

    /// A connection of the pool (back to it when dropped), waiting up to
    /// [`PoolOptions::wait`] for one.
    fn take_client(&self) -> Result<PooledConnection<Connections>, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Backend {
                backend: Self::NAME,
                operation: "connect",
                reason: "the pool's connection factory has no pool".to_owned(),
            });
        };
        pool.get().map_err(|e| {
            // With no connection open at all, nothing is busy: the database cannot be
            // reached (r2d2's message carries the last connection error), which is what an
            // operator must be told, not to wait for a free connection.
            if pool.state().connections == 0 {
                StoreError::Backend {
                    backend: Self::NAME,
                    operation: "connect",
                    reason: e.to_string(),
                }
            } else {
                StoreError::Busy {
                    backend: Self::NAME,
                    size: self.options.size,
                    waited_ms: u64::try_from(self.options.wait.as_millis()).unwrap_or(u64::MAX),
                    reason: e.to_string(),
                }
            }
        })
    }
}

/// One transaction; `head` is the feed head, locked, in a write transaction.
struct PgTxn<'c> {
    tx: Transaction<'c>,
    head: Option<i64>,
    /// The connection's prepared statements ([`Conn`]).
    statements: &'c mut HashMap<&'static str, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl PgTxn<'_> {
    /// `sql`, prepared on this connection once.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        // Prepared statements outlive the transaction (they belong to the session), so one
        // prepared in a transaction that rolls back stays valid.
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.tx.query(&statement, params)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.tx.query_one(&statement, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.tx.query_opt(&statement, params)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.tx.execute(&statement, params)
    }
}

fn space_param(space: SpaceId) -> i64 {
    i64::from(space)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn seq_param(seq: u64) -> i64 {
    // Sequences come from this backend and stay below i64::MAX; a larger one from a caller
    // means "after everything".
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_value(seq: i64, at: &str) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt {
        what: "change",
        key: at.to_owned(),
        reason: format!("negative sequence {seq}"),
    })
}

/// How long the listener waits for a notification before asking whether it is still wanted.
const LISTEN_TICK: Duration = Duration::from_secs(1);

/// How long the listener waits before connecting again after losing its connection.
const LISTEN_RECONNECT: Duration = Duration::from_secs(1);

/// The listener's loop: a connection of its own (outside the pool, named
/// `mutatis/<schema>/listen`) that `LISTEN`s on the schema's channel, reconnecting when it is
/// lost, until `wake` says it is no longer wanted.
fn listen(factory: &PostgresBackend, wake: &mut dyn FnMut(u64) -> bool) {
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        let connected = factory.new_client().and_then(|mut client| {
            client
                .batch_execute(&format!(
                    "SET application_name TO '{}/listen'; LISTEN {}",
                    application_name(&factory.schema),
                    factory.schema
                ))
                .map_err(err("listen"))?;
            Ok(client)
        });
        let mut client = match connected {
            Ok(c) => c,
            Err(e) => {
                if !wake(0) {
                    return;
                }
                tracing::warn!("listening for other processes' writes: {e} (retrying)");
                std::thread::sleep(LISTEN_RECONNECT);
                continue;
            }
        };
        // Commits made while nobody listened are seen by the readers' next look.
        if !wake(0) {
            return;
        }
        loop {
            let mut notifications = client.notifications();
            let next = notifications.timeout_iter(LISTEN_TICK).next();
            match next {
                Ok(Some(n)) => {
                    if !wake(n.payload().parse().unwrap_or(0)) {
                        return;
                    }
                }
                Ok(None) => {
                    if !wake(0) {
                        return;
                    }
                }
                Err(e) => {
                    let e = err("listen")(e);
                    tracing::warn!("listening for other processes' writes: {e} (reconnecting)");
                    break;
                }
            }
        }
    }
}

impl Backend for PostgresBackend {
    const NAME: &'static str = "postgres";

    fn follow_commits(
        &self,
        mut wake: Box<dyn FnMut(u64) -> bool + Send>,
    ) -> Result<bool, StoreError> {
        if !self.notify {
            return Ok(false);
        }
        let factory = PostgresBackend::factory(&self.url, &self.schema, self.options);
        std::thread::Builder::new()
            .name(format!("{}-listen", self.schema))
            .spawn(move || listen(&factory, &mut *wake))
            .map_err(|e| StoreError::Backend {
                backend: Self::NAME,
                operation: "listen",
                reason: e.to_string(),
            })?;
        Ok(true)
    }

    fn refresh_statistics(&self) -> Result<(), StoreError> {
        let mut client = self.take_client()?;
        // Plain ANALYZE (no VACUUM): it samples a bounded number of rows, so it takes about
        // the same time on any size of table, and it may run inside or beside transactions.
        client
            .batch_execute("ANALYZE documents")
            .map_err(err("analyze documents"))
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn ReadTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.take_client()?;
        let Conn { client, statements } = &mut *conn;
        let result = (|| {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(err("begin read"))?;
            let mut txn = PgTxn {
                tx,
                head: None,
                statements,
            };
            let value = f(&mut txn)?;
            txn.tx.commit().map_err(err("end read"))?;
            Ok(value)
        })();
        // The connection goes back to the pool (or, broken, is dropped by it).
        drop(conn);
        result
    }

    fn write<R>(
        &self,
        mut f: impl FnMut(&mut dyn WriteTxn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.take_client()?;
        let Conn { client, statements } = &mut *conn;
        let result = (|| {
            let tx = client.transaction().map_err(err("begin write"))?;
            let mut txn = PgTxn {
                tx,
                head: None,
                statements,
            };
            let head: i64 = txn
                .query_one("SELECT seq FROM feed_head WHERE one = 1 FOR UPDATE", &[])
                .map_err(err("lock feed head"))?
                .get(0);
            txn.head = Some(head);
            let value = f(&mut txn)?;
            if let Some(seq) = txn.head.filter(|&s| s != head) {
                if self.notify {
                    // One round trip for both; the notification is sent at commit.
                    txn.execute(
                        "WITH head AS (UPDATE feed_head SET seq = $1 WHERE one = 1 \
                             RETURNING seq) SELECT pg_notify($2, seq::text) FROM head",
                        &[&seq, &self.schema],
                    )
                    .map_err(err("advance feed head"))?;
                } else {
                    txn.execute("UPDATE feed_head SET seq = $1 WHERE one = 1", &[&seq])
                        .map_err(err("advance feed head"))?;
                }
            }
            txn.tx.commit().map_err(err("commit"))?;
            Ok(value)
        })();
        // On error the transaction was dropped, which rolls it back.
        drop(conn);
        result
    }
}

impl ReadTxn for PgTxn<'_> {
    fn get(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        let row = self
            .query_opt(
                "SELECT record FROM documents WHERE type_name = $1 AND space = $2 AND id = $3",
                &[&type_name, &space_param(space), &id],
            )
            .map_err(err("get document"))?;
        match row {
            Some(row) => {
                let text: &str = row.get(0);
                Ok(Some(Record::decode(
                    text.as_bytes(),
                    format_args!("{type_name}/{space}/{id}"),
                )?))
            }
            None => Ok(None),
        }
    }

    fn get_raw(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .query_opt(
                "SELECT record FROM documents WHERE type_name = $1 AND space = $2 AND id = $3",
                &[&type_name, &space_param(space), &id],
            )
            .map_err(err("get document"))?;
        Ok(row.map(|row| row.get::<_, &str>(0).as_bytes().to_vec()))
    }

    fn scan(
        &mut self,
        type_name: &str,
        space: SpaceId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        let rows = match after {
            Some(after) => self.query(
                "SELECT id, record FROM documents WHERE type_name = $1 AND space = $2 AND id > $3 \
                 ORDER BY id LIMIT $4",
                &[&type_name, &space_param(space), &after, &limit_param(limit)],
            ),
            None => self.query(
                "SELECT id, record FROM documents WHERE type_name = $1 AND space = $2 \
                 ORDER BY id LIMIT $3",
                &[&type_name, &space_param(space), &limit_param(limit)],
            ),
        }
        .map_err(err("scan documents"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.get(0);
            let text: &str = row.get(1);
            let record = Record::decode(text.as_bytes(), format_args!("{type_name}/{space}/{id}"))?;
            out.push((id, record));
        }
        Ok(out)
    }

    fn changes(&mut self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let rows = self
            .query(
                "SELECT seq, change FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq_param(after), &limit_param(limit)],
            )
            .map_err(err("read changes"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq = seq_value(row.get(0), "changes")?;
            let text: &str = row.get(1);
            out.push(Change::decode(text.as_bytes(), seq)?);
        }
        Ok(out)
    }

    fn last_seq(&mut self) -> Result<u64, StoreError> {
        let head = match self.head {
            Some(head) => head,
            None => self
                .query_one("SELECT seq FROM feed_head WHERE one = 1", &[])
                .map_err(err("read feed head"))?
                .get(0),
        };
        seq_value(head, "feed_head")
    }

    fn state(&mut self, type_name: &str) -> Result<Option<TypeState>, StoreError> {
        let row = self
            .query_opt(
                "SELECT state FROM type_state WHERE type_name = $1",
                &[&type_name],
            )
            .map_err(err("get type state"))?;
        match row {
            Some(row) => {
                let text: &str = row.get(0);
                Ok(Some(TypeState::decode(text.as_bytes(), type_name)?))
            }
            None => Ok(None),
        }
    }

    fn quarantined(&mut self, type_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        let rows = self
            .query(
                "SELECT id, entry FROM quarantine WHERE type_name = $1 ORDER BY id",
                &[&type_name],
            )
            .map_err(err("read quarantine"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: &str = row.get(0);
            let text: &str = row.get(1);
            out.push(Quarantined::decode(
                text.as_bytes(),
                format_args!("{type_name}/{id}"),
            )?);
        }
        Ok(out)
    }

    fn space_stats(&mut self, type_name: &str, space: SpaceId) -> Result<SpaceStats, StoreError> {
        let row = self
            .query_one(
                "SELECT count(*)::BIGINT, \
                 coalesce(sum(octet_length(type_name) + 4 + octet_length(id) + octet_length(record)), 0)::BIGINT \
                 FROM documents WHERE type_name = $1 AND space = $2",
                &[&type_name, &space_param(space)],
            )
            .map_err(err("space statistics"))?;
        let records: i64 = row.get(0);
        let bytes: i64 = row.get(1);
        Ok(SpaceStats {
            records: u64::try_from(records).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(err("read meta"))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn meta_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        // Not LIKE: a prefix may hold `%` or `_`. "C" collation orders by bytes, as redb does.
        let rows = self
            .query(
                "SELECT key, value FROM meta WHERE substr(key, 1, char_length($1)) = $1 \
                 ORDER BY key COLLATE \"C\"",
                &[&prefix],
            )
            .map_err(err("read meta"))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }
}

impl WriteTxn for PgTxn<'_> {
    fn put_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &v],
            ),
            None => self.execute("DELETE FROM meta WHERE key = $1", &[&key]),
        }
        .map_err(err("put meta"))?;
        Ok(())
    }

    fn put(
        &mut self,
        type_name: &str,
        space: SpaceId,
        id: &str,
        record: &Record,
    ) -> Result<(), StoreError> {
        let bytes = record.encode()?;
        let text = String::from_utf8_lossy(&bytes);
        self.execute(
            "INSERT INTO documents (type_name, space, id, record) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (type_name, space, id) DO UPDATE SET record = EXCLUDED.record",
            &[&type_name, &space_param(space), &id, &text.as_ref()],
        )
        .map_err(err("put document"))?;
        Ok(())
    }

    fn put_many(
        &mut self,
        type_name: &str,
        space: SpaceId,
        records: &[(&str, &Record)],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(records.len());
        let mut texts = Vec::with_capacity(records.len());
        for (id, record) in records {
            ids.push(*id);
            texts.push(String::from_utf8_lossy(&record.encode()?).into_owned());
        }
        // One statement for the batch: the round trips, not the rows, are what costs.
        self.execute(
            "INSERT INTO documents (type_name, space, id, record) \
                 SELECT $1, $2, i, r FROM unnest($3::text[], $4::text[]) AS t(i, r) \
                 ON CONFLICT (type_name, space, id) DO UPDATE SET record = EXCLUDED.record",
            &[&type_name, &space_param(space), &ids, &texts],
        )
        .map_err(err("put documents"))?;
        Ok(())
    }

    fn remove(&mut self, type_name: &str, space: SpaceId, id: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM documents WHERE type_name = $1 AND space = $2 AND id = $3",
            &[&type_name, &space_param(space), &id],
        )
        .map_err(err("remove document"))?;
        Ok(())
    }

    fn append_change(
        &mut self,
        type_name: &str,
        id: &str,
        rev: &Rev,
        deleted: bool,
    ) -> Result<u64, StoreError> {
        let head = self.head.ok_or(StoreError::Backend {
            backend: PostgresBackend::NAME,
            operation: "append change",
            reason: "not in a write transaction".to_owned(),
        })?;
        let seq = head.checked_add(1).ok_or(StoreError::Backend {
            backend: PostgresBackend::NAME,
            operation: "append change",
            reason: "the feed's sequence numbers are exhausted".to_owned(),
        })?;
        let change = Change {
            seq: seq_value(seq, "feed_head")?,
            type_name: type_name.to_owned(),
            id: id.to_owned(),
            rev: rev.clone(),
            deleted,
        };
        let bytes = change.encode()?;
        let text = String::from_utf8_lossy(&bytes);
        self.execute(
            "INSERT INTO changes (seq, change) VALUES ($1, $2)",
            &[&seq, &text.as_ref()],
        )
        .map_err(err("append change"))?;
        self.head = Some(seq);
        Ok(change.seq)
    }

    fn remove_change(&mut self, seq: u64) -> Result<(), StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            // Never written: sequences are stored as BIGINT.
            return Ok(());
        };
        self.execute("DELETE FROM changes WHERE seq = $1", &[&seq])
            .map_err(err("remove change"))?;
        Ok(())
    }

    fn put_state(&mut self, type_name: &str, state: &TypeState) -> Result<(), StoreError> {
        let bytes = state.encode()?;
        let text = String::from_utf8_lossy(&bytes);
        self.execute(
            "INSERT INTO type_state (type_name, state) VALUES ($1, $2) \
                 ON CONFLICT (type_name) DO UPDATE SET state = EXCLUDED.state",
            &[&type_name, &text.as_ref()],
        )
        .map_err(err("put type state"))?;
        Ok(())
    }

    fn put_quarantine(&mut self, type_name: &str, entry: &Quarantined) -> Result<(), StoreError> {
        let bytes = entry.encode()?;
        let text = String::from_utf8_lossy(&bytes);
        self.execute(
            "INSERT INTO quarantine (type_name, id, entry) VALUES ($1, $2, $3) \
                 ON CONFLICT (type_name, id) DO UPDATE SET entry = EXCLUDED.entry",
            &[&type_name, &entry.id, &text.as_ref()],
        )
        .map_err(err("put quarantine"))?;
        Ok(())
    }

    fn remove_quarantine(&mut self, type_name: &str, id: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM quarantine WHERE type_name = $1 AND id = $2",
            &[&type_name, &id],
        )
        .map_err(err("remove quarantine"))?;
        Ok(())
    }

    fn clear_quarantine(&mut self, type_name: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM quarantine WHERE type_name = $1", &[&type_name])
            .map_err(err("clear quarantine"))?;
        Ok(())
    }

    fn clear_space(
        &mut self,
        type_name: &str,
        space: SpaceId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM documents WHERE type_name = $1 AND space = $2 AND id IN \
                 (SELECT id FROM documents WHERE type_name = $1 AND space = $2 ORDER BY id LIMIT $3)",
                &[&type_name, &space_param(space), &limit_param(limit)],
            )
            .map_err(err("clear space"))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
