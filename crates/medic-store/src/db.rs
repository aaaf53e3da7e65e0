//! The two database backends behind one small query interface.
//!
//! Every query of the store is written once, as SQL text that both SQLite and
//! Postgres accept (`$1` placeholders, standard upserts, `RETURNING`), with its
//! arguments as [`Arg`]s; [`Db`] and [`Tx`] bind and run it on whichever pool
//! the store was opened with, and [`DbRow`] reads columns back. Only the table
//! definitions ([`SQLITE_SCHEMA`], [`PG_SCHEMA`]), the transaction start and the
//! chain lock differ per backend.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Row, Sqlite, Transaction};

/// Advisory lock key serialising audit-chain appends across processes (Postgres).
const CHAIN_LOCK: i64 = 0x6d65_6469_6301; // "medic" 01
/// Advisory lock key serialising schema creation across processes (Postgres).
const SCHEMA_LOCK: i64 = 0x6d65_6469_6302;

/// One bound argument.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    OptText(Option<&'a str>),
}

macro_rules! bind_all {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query($sql);
        for a in $args {
            q = match *a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(s) => q.bind(s),
                Arg::OptText(s) => q.bind(s),
            };
        }
        q
    }};
}

/// The store's connection pool.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction. SQLite: `BEGIN IMMEDIATE` (the database's write
/// lock). Postgres: `BEGIN` (read committed); appends take [`Tx::lock_chain`].
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A result row of either backend.
pub(crate) enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl DbRow {
    pub(crate) fn int<I>(&self, col: I) -> Result<i64, sqlx::Error>
    where
        I: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow>,
    {
        match self {
            DbRow::Sqlite(r) => r.try_get(col),
            DbRow::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn opt_int<I>(&self, col: I) -> Result<Option<i64>, sqlx::Error>
    where
        I: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow>,
    {
        match self {
            DbRow::Sqlite(r) => r.try_get(col),
            DbRow::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn text<I>(&self, col: I) -> Result<String, sqlx::Error>
    where
        I: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow>,
    {
        match self {
            DbRow::Sqlite(r) => r.try_get(col),
            DbRow::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn opt_text<I>(&self, col: I) -> Result<Option<String>, sqlx::Error>
    where
        I: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow>,
    {
        match self {
            DbRow::Sqlite(r) => r.try_get(col),
            DbRow::Postgres(r) => r.try_get(col),
        }
    }
}

impl Db {
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub(crate) async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => bind_all!(sql, args).execute(p).await?.rows_affected(),
            Db::Postgres(p) => bind_all!(sql, args).execute(p).await?.rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<DbRow>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => bind_all!(sql, args)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect(),
            Db::Postgres(p) => bind_all!(sql, args)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<DbRow>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => bind_all!(sql, args)
                .fetch_optional(p)
                .await?
                .map(DbRow::Sqlite),
            Db::Postgres(p) => bind_all!(sql, args)
                .fetch_optional(p)
                .await?
                .map(DbRow::Postgres),
        })
    }

    pub(crate) async fn fetch_one(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<DbRow, sqlx::Error> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Starts a write transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Creates the tables (idempotent; several processes may do it at once).
    pub(crate) async fn create_schema(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(p) => {
                for stmt in SQLITE_SCHEMA {
                    sqlx::query(stmt).execute(p).await?;
                }
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SCHEMA_LOCK)
                    .execute(&mut *tx)
                    .await?;
                for stmt in PG_SCHEMA {
                    sqlx::query(stmt).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl Tx {
    pub(crate) async fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(t) => bind_all!(sql, args)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::Postgres(t) => bind_all!(sql, args)
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<DbRow>, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(t) => bind_all!(sql, args)
                .fetch_optional(&mut **t)
                .await?
                .map(DbRow::Sqlite),
            Tx::Postgres(t) => bind_all!(sql, args)
                .fetch_optional(&mut **t)
                .await?
                .map(DbRow::Postgres),
        })
    }

    pub(crate) async fn fetch_one(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<DbRow, sqlx::Error> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Serialises audit-chain appends across processes until the transaction
    /// ends: SQLite's `BEGIN IMMEDIATE` already holds the database's write
    /// lock; Postgres takes a transaction-scoped advisory lock.
    pub(crate) async fn lock_chain(&mut self) -> Result<(), sqlx::Error> {
        if let Tx::Postgres(t) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHAIN_LOCK)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// SQLite tables (unchanged from the single-backend store, so existing
/// database files open as before).
pub(crate) const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_log(seq INTEGER PRIMARY KEY, ts TEXT, kind TEXT, payload TEXT, prev_hash TEXT, hash TEXT)",
    "CREATE TABLE IF NOT EXISTS incidents(id TEXT PRIMARY KEY, service TEXT NOT NULL, state TEXT NOT NULL, trigger_text TEXT NOT NULL, opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT, outcome TEXT, summary TEXT NOT NULL, timeline TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS incidents_opened_at ON incidents(opened_at)",
    "CREATE TABLE IF NOT EXISTS incident_merged(incident TEXT NOT NULL, service TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY(incident, service))",
    "CREATE TABLE IF NOT EXISTS incident_diagnosis(incident TEXT PRIMARY KEY, cause_service TEXT NOT NULL, cause_pattern TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS incident_diagnosis_cause ON incident_diagnosis(cause_service, cause_pattern)",
    "CREATE TABLE IF NOT EXISTS engine_state(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, saved_at TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pattern_outcomes(pattern TEXT NOT NULL, action TEXT NOT NULL, successes INTEGER NOT NULL, failures INTEGER NOT NULL, PRIMARY KEY(pattern, action))",
    "CREATE TABLE IF NOT EXISTS candidate_patterns(id INTEGER PRIMARY KEY, incident TEXT NOT NULL, service TEXT NOT NULL, trigger_text TEXT NOT NULL, action TEXT NOT NULL, \"by\" TEXT NOT NULL, note TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL, created_at TEXT NOT NULL, due_ms INTEGER NOT NULL, severity TEXT NOT NULL, service TEXT NOT NULL, incident TEXT, event TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, channels TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, channel TEXT, done_at TEXT)",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id)",
    "CREATE TABLE IF NOT EXISTS supervised_process(service TEXT PRIMARY KEY, pid INTEGER NOT NULL, pgid INTEGER NOT NULL, start_ticks INTEGER NOT NULL, boot_id TEXT NOT NULL, started_unix_ms INTEGER NOT NULL, command TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fence(id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER NOT NULL)",
    "INSERT INTO fence(id, token) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS api_tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_active_name ON api_tokens(name) WHERE revoked_at IS NULL",
];

/// The same tables in Postgres: 64-bit integers (`BIGINT`) where SQLite has
/// `INTEGER`, identity columns where SQLite has a rowid.
pub(crate) const PG_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_log(seq BIGINT PRIMARY KEY, ts TEXT, kind TEXT, payload TEXT, prev_hash TEXT, hash TEXT)",
    "CREATE TABLE IF NOT EXISTS incidents(id TEXT PRIMARY KEY, service TEXT NOT NULL, state TEXT NOT NULL, trigger_text TEXT NOT NULL, opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT, outcome TEXT, summary TEXT NOT NULL, timeline TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS incidents_opened_at ON incidents(opened_at)",
    "CREATE TABLE IF NOT EXISTS incident_merged(incident TEXT NOT NULL, service TEXT NOT NULL, pos BIGINT NOT NULL, PRIMARY KEY(incident, service))",
    "CREATE TABLE IF NOT EXISTS incident_diagnosis(incident TEXT PRIMARY KEY, cause_service TEXT NOT NULL, cause_pattern TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS incident_diagnosis_cause ON incident_diagnosis(cause_service, cause_pattern)",
    "CREATE TABLE IF NOT EXISTS engine_state(id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL, saved_at TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pattern_outcomes(pattern TEXT NOT NULL, action TEXT NOT NULL, successes BIGINT NOT NULL, failures BIGINT NOT NULL, PRIMARY KEY(pattern, action))",
    "CREATE TABLE IF NOT EXISTS candidate_patterns(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, incident TEXT NOT NULL, service TEXT NOT NULL, trigger_text TEXT NOT NULL, action TEXT NOT NULL, \"by\" TEXT NOT NULL, note TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, msg_id TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL, created_at TEXT NOT NULL, due_ms BIGINT NOT NULL, severity TEXT NOT NULL, service TEXT NOT NULL, incident TEXT, event TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, channels TEXT, state TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT, channel TEXT, done_at TEXT)",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id)",
    "CREATE TABLE IF NOT EXISTS supervised_process(service TEXT PRIMARY KEY, pid BIGINT NOT NULL, pgid BIGINT NOT NULL, start_ticks BIGINT NOT NULL, boot_id TEXT NOT NULL, started_unix_ms BIGINT NOT NULL, command TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fence(id BIGINT PRIMARY KEY CHECK (id = 1), token BIGINT NOT NULL)",
    "INSERT INTO fence(id, token) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS api_tokens(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_active_name ON api_tokens(name) WHERE revoked_at IS NULL",
];
