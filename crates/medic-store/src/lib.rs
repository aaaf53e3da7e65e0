//! Durable, tamper-evident storage for medic: the audit log and incidents.
//!
//! The store is a SQLite database file opened through `sqlx` in WAL mode
//! with `synchronous=FULL` ([`Store::open`]), or a Postgres database shared by
//! several medic instances ([`Store::open_postgres`]); either way every
//! committed audit record survives a crash and a restarted daemon continues
//! the same hash chain. Every query is written once, in SQL both backends
//! accept (`db.rs`); the tables are the same (64-bit integer columns on
//! Postgres) and so are the audit hashes.
//!
//! # Audit record format
//!
//! ```sql
//! CREATE TABLE audit_log(
//!     seq       INTEGER PRIMARY KEY, -- 1, 2, 3, ... without gaps
//!     ts        TEXT,                -- RFC 3339 timestamp in UTC, e.g. 2026-01-02T03:04:05Z
//!     kind      TEXT,                -- short event kind, e.g. "action.restart"
//!     payload   TEXT,                -- JSON text
//!     prev_hash TEXT,                -- `hash` of record seq-1 (genesis: 64 '0')
//!     hash      TEXT                 -- see below
//! );
//! ```
//!
//! # Hash formula
//!
//! ```text
//! hash = lowercase_hex( SHA-256( prev_hash || seq || ts || kind || payload ) )
//! ```
//!
//! where `||` is plain string concatenation of the UTF-8 bytes with no
//! separators, `seq` is written in decimal without padding or sign, and
//! `prev_hash` of record 1 is the genesis value
//! `0000000000000000000000000000000000000000000000000000000000000000`
//! ([`GENESIS_HASH`], 64 ASCII zeros). For example record 1 with
//! `ts = "2026-01-01T00:00:00Z"`, `kind = "start"`, `payload = "{}"` hashes the
//! string `"0000…0000" + "1" + "2026-01-01T00:00:00Z" + "start" + "{}"`.
//! [`compute_hash`] implements exactly this.
//!
//! Because the fields are concatenated without separators, the store only
//! accepts `kind` values made of `[A-Za-z0-9_.:-]` and payloads that are valid
//! JSON, and [`verify_audit`] re-checks both, so bytes cannot silently be moved
//! from one field into its neighbour.
//!
//! # Appends
//!
//! [`Store::append_audit`] is serialized inside the process by a
//! `tokio::sync::Mutex` holding the cached chain tip `(seq, hash)`; each
//! append is one transaction that takes the chain lock (SQLite: the write
//! lock of `BEGIN IMMEDIATE`; Postgres: `pg_advisory_xact_lock`) and re-reads
//! the tip inside it, so several processes appending to one database keep one
//! chain.
//!
//! # Fencing
//!
//! With [`Store::set_fence`] every audit, step, outbox, snapshot, incident and
//! learning write of the handle presents a token, checked against the `fence`
//! row by compare-and-set in the write's own transaction; an older token than
//! the stored one fails the whole write with [`StoreError::Fenced`] (see
//! docs/ha.md).
//!
//! # Verification semantics
//!
//! [`verify_audit`] opens the file read-only (it never creates it);
//! [`verify_audit_postgres`] connects with read-only transactions. Both walk
//! all rows in `seq` order with the same checks and report the first bad
//! record, if any:
//!
//! * `seq` must be contiguous starting at 1. A deleted row shows up as a gap:
//!   the report names the **missing** seq (reason starts with `missing`).
//! * `prev_hash` must equal the previous record's `hash` (genesis for seq 1).
//!   Reordered rows (contents swapped between seqs) fail here.
//! * `hash` must recompute from the stored fields; an edited `ts`, `kind`,
//!   `payload`, `prev_hash` or `hash` fails here.
//! * columns must be non-NULL text, `ts` RFC 3339, `kind` from the allowed
//!   alphabet and `payload` valid JSON.
//!
//! Removing the *last* records (truncating the tail) cannot be detected from
//! the chain alone; compare [`VerifyReport::records`] with an externally
//! anchored count or hash if that matters.
//!
//! # Incidents
//!
//! Incidents are stored in `incidents` keyed by `id`, upserted whole with the
//! timeline kept as a JSON array column (`timeline`). They are mutable state
//! and not hash-chained; the audit log is the tamper-evident history.
//!
//! # Supervised processes
//!
//! `supervised_process(service PRIMARY KEY, pid, pgid, start_ticks, boot_id,
//! started_unix_ms, command)` holds the process medic currently supervises for
//! each service: written when it is started, removed when medic stops it on
//! purpose. A medic that was killed (and so could not stop its services) finds
//! them here at its next start and adopts those still alive; `start_ticks`
//! (field 22 of `/proc/<pid>/stat`) and `boot_id` tell a live process from a
//! reused pid. `command` is the argv as a JSON array. Mutable state, not
//! hash-chained.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod db;
pub mod outbox;
pub mod record;
pub mod tokens;

pub use tokens::{TokenInfo, TOKEN_PREFIX};

use db::{Arg, Db, DbRow, Tx};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Mutex;

/// `prev_hash` of the first audit record: 64 ASCII zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Environment variable that switches the fencing check off (**tests only**:
/// the deliberate bug that shows a stale leader's writes land without it).
pub const UNSAFE_NO_FENCE_ENV: &str = "MEDIC_HA_UNSAFE_NO_FENCE";

/// Errors from the store. Every variant names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A database call failed.
    #[error("store: {op} failed: {source}")]
    Database {
        /// The store operation, e.g. `"append_audit"`.
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The database file to verify does not exist.
    #[error("store: {op}: database file {} does not exist", path.display())]
    NotFound { op: &'static str, path: PathBuf },
    /// An argument was rejected before touching the database.
    #[error("store: {op}: invalid {field}: {reason}")]
    InvalidInput {
        op: &'static str,
        field: &'static str,
        reason: String,
    },
    /// Stored data could not be decoded (e.g. a corrupt timeline JSON).
    #[error("store: {op}: corrupt data: {reason}")]
    Corrupt { op: &'static str, reason: String },
    /// A fenced write presented a token older than the highest one the
    /// store has seen: a newer leader exists. Nothing was written.
    #[error("store: {op}: fenced: token {presented} is older than the store's token {current} (a newer leader exists); nothing was written")]
    Fenced {
        op: &'static str,
        /// The token this handle presented.
        presented: u64,
        /// The highest token the store has accepted.
        current: u64,
    },
}

impl StoreError {
    fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Database { op, source }
    }

    /// True when SQLite refused the call because another connection held a
    /// lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Database {
                source: sqlx::Error::Database(d),
                ..
            } => matches!(d.code().as_deref(), Some("5" | "6" | "261" | "517")),
            _ => false,
        }
    }

    /// True for [`StoreError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

/// Where a store lives: a SQLite file (the default) or a Postgres database
/// shared by several medic instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget {
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) connection URL.
    Postgres(String),
}

impl StoreTarget {
    /// For messages: the file path, or the URL with any password replaced by `***`.
    pub fn describe(&self) -> String {
        match self {
            StoreTarget::Sqlite(p) => p.display().to_string(),
            StoreTarget::Postgres(url) => redact_url(url),
        }
    }
}

/// `url` with the password of its user-info part (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    match auth.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The pool and connect options of a Postgres store at `url` (checked):
/// what the eager and the lazy open share.
fn pg_options(
    url: &str,
    acquire_timeout: Duration,
    op: &'static str,
) -> Result<(PgPoolOptions, PgConnectOptions), StoreError> {
    check_postgres_url(url).map_err(|reason| StoreError::InvalidInput {
        op,
        field: "url",
        reason,
    })?;
    let opts = PgConnectOptions::from_str(url).map_err(StoreError::db(op))?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(acquire_timeout);
    Ok((pool, opts))
}

/// Checks that `url` is a Postgres connection URL the store can use
/// (`postgres://` or `postgresql://`, parsed by the Postgres driver).
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{:?} is not a Postgres URL (expected postgres://user@host:port/database)",
            redact_url(url)
        ));
    }
    PgConnectOptions::from_str(url)
        .map(|_| ())
        .map_err(|e| format!("{:?} is not a valid Postgres URL: {e}", redact_url(url)))
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub ts: String,
    pub kind: String,
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub ts: String,
    pub kind: String,
    pub message: String,
}

/// An incident as persisted by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub id: String,
    pub service: String,
    pub state: String,
    pub trigger: String,
    pub opened_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub outcome: Option<String>,
    pub summary: String,
    pub timeline: Vec<TimelineEntry>,
    /// Services whose incidents were merged into this one (victims of its
    /// service, issue 9), in the order they joined; table `incident_merged`.
    /// Filled by [`Store::get_incident`] only (empty in lists).
    #[serde(default)]
    pub merged: Vec<String>,
    /// The diagnosed root cause, when the incident had one (issue 9); table
    /// `incident_diagnosis`. Similar incidents are matched on it first.
    #[serde(default)]
    pub diagnosis: Option<IncidentCause>,
}

/// An incident's diagnosed root cause: the top hypothesis's service and
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentCause {
    pub service: String,
    pub pattern: String,
}

/// The first record that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    pub seq: u64,
    pub reason: String,
}

/// Result of [`verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Number of rows present in `audit_log`.
    pub records: u64,
    /// The first bad record in seq order, `None` when the chain is intact.
    pub first_bad: Option<BadRecord>,
}

impl VerifyReport {
    /// True when no bad record was found.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Computes `lowercase_hex(sha256(prev_hash || seq || ts || kind || payload))`.
pub fn compute_hash(prev_hash: &str, seq: u64, ts: &str, kind: &str, payload: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_string().as_bytes());
    h.update(ts.as_bytes());
    h.update(kind.as_bytes());
    h.update(payload.as_bytes());
    hex::encode(h.finalize())
}

/// A candidate pattern learned from a human resolution (issue 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidatePattern {
    pub id: i64,
    pub incident: String,
    pub service: String,
    /// What opened the incident (`work slow`, ...): the candidate's symptom.
    pub trigger: String,
    /// The action the human ran.
    pub action: String,
    pub by: String,
    /// The human's resolution note.
    pub note: String,
    /// `candidate`, `accepted` or `rejected`.
    pub status: String,
    pub created_at: String,
}

/// A process medic supervises, as recorded in `supervised_process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisedProcess {
    pub service: String,
    pub pid: u32,
    pub pgid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot).
    pub start_ticks: u64,
    pub boot_id: String,
    pub started_unix_ms: i64,
    pub command: Vec<String>,
}

const INCIDENT_COLUMNS: &str =
    "id, service, state, trigger_text, opened_at, updated_at, closed_at, outcome, summary, timeline, \
     cause_service, cause_pattern";
/// Incidents with their diagnosed cause (table `incident_diagnosis`, kept
/// apart so that database files made before it open unchanged).
const INCIDENTS_FROM: &str =
    "incidents LEFT JOIN incident_diagnosis ON incident_diagnosis.incident = incidents.id";

/// `fence` value meaning "no token": this handle does not fence.
const NO_FENCE: u64 = u64::MAX;

/// Handle to the store. Cloning is cheap (shares the pool, the chain tip and
/// the fencing token).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Last `(seq, hash)` of the audit chain this handle knows; also
    /// serializes this process's appends (each append re-reads the tip from
    /// the database inside its transaction, so other writers are fine).
    tip: Arc<Mutex<(u64, String)>>,
    /// The fencing token presented with every fenced write ([`NO_FENCE`]: none).
    fence: Arc<AtomicU64>,
    /// [`UNSAFE_NO_FENCE_ENV`] was set when the store was opened (tests only).
    unsafe_no_fence: bool,
}

/// How many times [`Store::open`] tries a SQLite file that is busy.
pub const OPEN_ATTEMPTS: u32 = 5;

impl Store {
    /// Opens (creating if missing) the SQLite database at `path` in WAL mode
    /// with `synchronous=FULL`, creates the tables and loads the chain tip so
    /// new appends continue an existing chain.
    ///
    /// Several processes opening a new file at once can be refused with
    /// `SQLITE_BUSY` without SQLite's busy handler being tried (switching the
    /// file to WAL, creating the tables: a lock upgrade SQLite refuses at once
    /// to avoid a deadlock); such an open is tried again, up to
    /// [`OPEN_ATTEMPTS`] times, 50–250 ms apart.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let mut attempt = 1;
        loop {
            match Store::open_once(path).await {
                Err(e) if attempt < OPEN_ATTEMPTS && e.is_busy() => {
                    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn open_once(path: &Path) -> Result<Store, StoreError> {
        const OP: &str = "open";
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(StoreError::db(OP))?;
        Store::start(Db::Sqlite(pool), OP).await
    }

    /// Connects to the Postgres database at `url` (`postgres://…`), creates
    /// the tables if they do not exist (several instances may start at once)
    /// and loads the chain tip.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        const OP: &str = "open";
        let (pool, opts) = pg_options(url, Duration::from_secs(10), OP)?;
        let pool = pool.connect_with(opts).await.map_err(StoreError::db(OP))?;
        Store::start(Db::Postgres(pool), OP).await
    }

    /// A handle on the Postgres database at `url` that does not connect yet
    /// (issue 13, fail safe: an HA member starts while the shared store is
    /// unreachable). Every operation connects on demand and fails after
    /// `acquire_timeout` while the server is down; [`Store::prepare`] creates
    /// the tables and loads the chain tip once it answers.
    pub fn open_postgres_lazy(url: &str, acquire_timeout: Duration) -> Result<Store, StoreError> {
        let (pool, opts) = pg_options(url, acquire_timeout, "open")?;
        let pool = pool.connect_lazy_with(opts);
        Ok(Store {
            db: Db::Postgres(pool),
            tip: Arc::new(Mutex::new((0, GENESIS_HASH.to_string()))),
            fence: Arc::new(AtomicU64::new(NO_FENCE)),
            unsafe_no_fence: std::env::var(UNSAFE_NO_FENCE_ENV).is_ok_and(|v| v == "1"),
        })
    }

    /// Creates the tables if missing (idempotent, several instances may run
    /// it at once) and reloads the chain tip: what opening does, for a handle
    /// from [`Store::open_postgres_lazy`] once the server answers.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        const OP: &str = "prepare";
        self.db.create_schema().await.map_err(StoreError::db(OP))?;
        let t = load_tip(&self.db, OP).await?;
        *self.tip.lock().await = t;
        Ok(())
    }

    /// Opens the store at `target` ([`Store::open`] or [`Store::open_postgres`]).
    pub async fn open_target(target: &StoreTarget) -> Result<Store, StoreError> {
        match target {
            StoreTarget::Sqlite(path) => Store::open(path).await,
            StoreTarget::Postgres(url) => Store::open_postgres(url).await,
        }
    }

    async fn start(db: Db, op: &'static str) -> Result<Store, StoreError> {
        db.create_schema().await.map_err(StoreError::db(op))?;
        let tip = load_tip(&db, op).await?;
        let unsafe_no_fence = std::env::var(UNSAFE_NO_FENCE_ENV).is_ok_and(|v| v == "1");
        Ok(Store {
            db,
            tip: Arc::new(Mutex::new(tip)),
            fence: Arc::new(AtomicU64::new(NO_FENCE)),
            unsafe_no_fence,
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.db.backend()
    }

    /// Sets the fencing token every later write of this handle (and of its
    /// clones) presents: audit appends, steps, outbox changes, snapshots,
    /// incidents and learning. `None` (the default) is a single instance:
    /// no check. Tokens above `i64::MAX` are rejected at write time.
    pub fn set_fence(&self, token: Option<u64>) {
        self.fence
            .store(token.unwrap_or(NO_FENCE), Ordering::SeqCst);
    }

    /// The token this handle presents, if any.
    pub fn fence(&self) -> Option<u64> {
        match self.fence.load(Ordering::SeqCst) {
            NO_FENCE => None,
            t => Some(t),
        }
    }

    /// The highest fencing token the store has accepted (0 before any).
    pub async fn fence_current(&self) -> Result<u64, StoreError> {
        const OP: &str = "fence_current";
        let row = self
            .db
            .fetch_one("SELECT token FROM fence WHERE id = 1", &[])
            .await
            .map_err(StoreError::db(OP))?;
        let t = row.int(0).map_err(StoreError::db(OP))?;
        Ok(u64::try_from(t).unwrap_or(0))
    }

    /// Presents `token` without writing anything else: a new leader claims
    /// the store at once, so a stale leader's next write is rejected even
    /// before the new leader writes. Returns the stored token (= `token`).
    pub async fn claim_fence(&self, token: u64) -> Result<u64, StoreError> {
        const OP: &str = "claim_fence";
        let mut tx = self.db.begin().await.map_err(StoreError::db(OP))?;
        self.check_fence_with(&mut tx, OP, Some(token)).await?;
        tx.commit().await.map_err(StoreError::db(OP))?;
        Ok(token)
    }

    /// Begins a write transaction and checks this handle's fence in it.
    pub(crate) async fn begin_write(&self, op: &'static str) -> Result<Tx, StoreError> {
        let mut tx = self.db.begin().await.map_err(StoreError::db(op))?;
        self.check_fence_with(&mut tx, op, self.fence()).await?;
        Ok(tx)
    }

    /// Compare-and-set of the store's token inside `tx`: accepted when
    /// `token` ≥ the stored one (which becomes `token`), otherwise
    /// [`StoreError::Fenced`] and the caller drops (rolls back) `tx`.
    async fn check_fence_with(
        &self,
        tx: &mut Tx,
        op: &'static str,
        token: Option<u64>,
    ) -> Result<(), StoreError> {
        let Some(token) = token else { return Ok(()) };
        if self.unsafe_no_fence {
            return Ok(());
        }
        let t = i64::try_from(token).map_err(|_| StoreError::InvalidInput {
            op,
            field: "fence",
            reason: format!("token {token} is above {}", i64::MAX),
        })?;
        let n = tx
            .execute(
                "UPDATE fence SET token = $1 WHERE id = 1 AND token <= $1",
                &[Arg::Int(t)],
            )
            .await
            .map_err(StoreError::db(op))?;
        if n == 1 {
            return Ok(());
        }
        let current = tx
            .fetch_one("SELECT token FROM fence WHERE id = 1", &[])
            .await
            .and_then(|r| r.int(0))
            .map_err(StoreError::db(op))?;
        Err(StoreError::Fenced {
            op,
            presented: token,
            current: u64::try_from(current).unwrap_or(0),
        })
    }

    /// Appends one audit record. `ts` must be RFC 3339 in UTC, `kind` a
    /// non-empty string of `[A-Za-z0-9_.:-]`, `payload` valid JSON text.
    /// Fenced (see [`Store::set_fence`]).
    pub async fn append_audit(
        &self,
        ts: &str,
        kind: &str,
        payload: &str,
    ) -> Result<AuditRecord, StoreError> {
        const OP: &str = "append_audit";
        let mut tip = self.tip.lock().await;
        let written = async {
            let mut tx = self.begin_write(OP).await?;
            let cur = lock_tip(&mut tx, OP).await?;
            let rec = outbox::insert_chained(&mut tx, OP, &cur, ts, kind, payload).await?;
            tx.commit().await.map_err(StoreError::db(OP))?;
            Ok::<_, StoreError>(rec)
        }
        .await;
        match written {
            Ok(rec) => {
                *tip = (rec.seq, rec.hash.clone());
                Ok(rec)
            }
            Err(e) => Err(self.reload_tip_after(&mut tip, OP, e).await),
        }
    }

    /// Runs `sql` and, when it changed a row, appends one audit record
    /// (`ts`, `kind`, `payload` as for [`Store::append_audit`]) in the same
    /// transaction: both are stored or neither. `Ok(None)`, nothing written,
    /// when `sql` changed no row. Fenced.
    pub(crate) async fn write_audited(
        &self,
        op: &'static str,
        sql: &str,
        args: &[Arg<'_>],
        record: (&str, &str, &str),
    ) -> Result<Option<AuditRecord>, StoreError> {
        let (ts, kind, payload) = record;
        let mut tip = self.tip.lock().await;
        let written = async {
            let mut tx = self.begin_write(op).await?;
            let cur = lock_tip(&mut tx, op).await?;
            let n = tx.execute(sql, args).await.map_err(StoreError::db(op))?;
            if n == 0 {
                // Dropping `tx` rolls it back.
                return Ok(None);
            }
            let rec = outbox::insert_chained(&mut tx, op, &cur, ts, kind, payload).await?;
            tx.commit().await.map_err(StoreError::db(op))?;
            Ok::<_, StoreError>(Some(rec))
        }
        .await;
        match written {
            Ok(rec) => {
                if let Some(r) = &rec {
                    *tip = (r.seq, r.hash.clone());
                }
                Ok(rec)
            }
            Err(e) => Err(self.reload_tip_after(&mut tip, op, e).await),
        }
    }

    /// After a failed chained write: a database error (whose commit may or
    /// may not have happened) re-reads the tip so `audit_tip` shows what is
    /// really stored. Returns `e`.
    async fn reload_tip_after(
        &self,
        tip: &mut (u64, String),
        op: &'static str,
        e: StoreError,
    ) -> StoreError {
        if matches!(e, StoreError::Database { .. }) {
            if let Ok(actual) = load_tip(&self.db, op).await {
                *tip = actual;
            }
        }
        e
    }

    /// Lists up to `limit` audit records with `seq > after_seq`, ascending.
    pub async fn list_audit(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        const OP: &str = "list_audit";
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let rows = self
            .db
            .fetch_all(
                "SELECT seq, ts, kind, payload, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq ASC LIMIT $2",
                &[Arg::Int(after), Arg::Int(i64::from(limit))],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter()
            .map(|row| decode_audit(row).map_err(|reason| StoreError::Corrupt { op: OP, reason }))
            .collect()
    }

    /// Inserts the incident or replaces every field of the existing one with
    /// the same `id`. Fenced.
    pub async fn upsert_incident(&self, incident: &IncidentRecord) -> Result<(), StoreError> {
        const OP: &str = "upsert_incident";
        if incident.id.is_empty() {
            return Err(StoreError::InvalidInput {
                op: OP,
                field: "id",
                reason: "must not be empty".into(),
            });
        }
        let timeline =
            serde_json::to_string(&incident.timeline).map_err(|e| StoreError::Corrupt {
                op: OP,
                reason: format!("timeline does not serialize: {e}"),
            })?;
        let mut tx = self.begin_write(OP).await?;
        tx.execute(
            "INSERT INTO incidents (id, service, state, trigger_text, opened_at, updated_at, closed_at, outcome, summary, timeline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET service = excluded.service, state = excluded.state, \
             trigger_text = excluded.trigger_text, opened_at = excluded.opened_at, updated_at = excluded.updated_at, \
             closed_at = excluded.closed_at, outcome = excluded.outcome, summary = excluded.summary, \
             timeline = excluded.timeline",
            &[
                Arg::Text(&incident.id),
                Arg::Text(&incident.service),
                Arg::Text(&incident.state),
                Arg::Text(&incident.trigger),
                Arg::Text(&incident.opened_at),
                Arg::Text(&incident.updated_at),
                Arg::OptText(incident.closed_at.as_deref()),
                Arg::OptText(incident.outcome.as_deref()),
                Arg::Text(&incident.summary),
                Arg::Text(&timeline),
            ],
        )
        .await
        .map_err(StoreError::db(OP))?;
        if let Some(d) = &incident.diagnosis {
            tx.execute(
                "INSERT INTO incident_diagnosis (incident, cause_service, cause_pattern) VALUES ($1, $2, $3) \
                 ON CONFLICT (incident) DO UPDATE SET cause_service = excluded.cause_service, \
                 cause_pattern = excluded.cause_pattern",
                &[
                    Arg::Text(&incident.id),
                    Arg::Text(&d.service),
                    Arg::Text(&d.pattern),
                ],
            )
            .await
            .map_err(StoreError::db(OP))?;
        }
        for (pos, service) in incident.merged.iter().enumerate() {
            tx.execute(
                "INSERT INTO incident_merged (incident, service, pos) VALUES ($1, $2, $3) \
                 ON CONFLICT (incident, service) DO NOTHING",
                &[
                    Arg::Text(&incident.id),
                    Arg::Text(service),
                    Arg::Int(i64::try_from(pos).unwrap_or(i64::MAX)),
                ],
            )
            .await
            .map_err(StoreError::db(OP))?;
        }
        tx.commit().await.map_err(StoreError::db(OP))
    }

    /// Lists up to `limit` incidents, newest `opened_at` first.
    pub async fn list_incidents(&self, limit: u32) -> Result<Vec<IncidentRecord>, StoreError> {
        const OP: &str = "list_incidents";
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM {INCIDENTS_FROM} ORDER BY opened_at DESC, id DESC LIMIT $1"
        );
        let rows = self
            .db
            .fetch_all(&sql, &[Arg::Int(i64::from(limit))])
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|row| decode_incident(row, OP)).collect()
    }

    /// Closed incidents like `of` (issue 9), newest first within each rank:
    /// the same diagnosed cause (service and pattern) first, then the same
    /// service and trigger, then the same trigger elsewhere or the same
    /// service.
    pub async fn similar_incidents(
        &self,
        of: &IncidentRecord,
        limit: u32,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        const OP: &str = "similar_incidents";
        let (cs, cp) = of
            .diagnosis
            .as_ref()
            .map_or(("", ""), |d| (d.service.as_str(), d.pattern.as_str()));
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM {INCIDENTS_FROM} \
             WHERE id != $1 AND closed_at IS NOT NULL \
             AND (service = $2 OR trigger_text = $3 OR (cause_service = $5 AND cause_pattern = $6)) \
             ORDER BY CASE WHEN cause_service = $5 AND cause_pattern = $6 THEN 1 ELSE 0 END DESC, \
             CASE WHEN service = $2 AND trigger_text = $3 THEN 1 ELSE 0 END DESC, \
             opened_at DESC, id DESC LIMIT $4"
        );
        let rows = self
            .db
            .fetch_all(
                &sql,
                &[
                    Arg::Text(&of.id),
                    Arg::Text(&of.service),
                    Arg::Text(&of.trigger),
                    Arg::Int(i64::from(limit)),
                    Arg::Text(cs),
                    Arg::Text(cp),
                ],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|row| decode_incident(row, OP)).collect()
    }

    /// Fetches one incident by id.
    pub async fn get_incident(&self, id: &str) -> Result<Option<IncidentRecord>, StoreError> {
        const OP: &str = "get_incident";
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM {INCIDENTS_FROM} WHERE id = $1");
        let row = self
            .db
            .fetch_optional(&sql, &[Arg::Text(id)])
            .await
            .map_err(StoreError::db(OP))?;
        let Some(mut rec) = row.as_ref().map(|r| decode_incident(r, OP)).transpose()? else {
            return Ok(None);
        };
        let merged = self
            .db
            .fetch_all(
                "SELECT service FROM incident_merged WHERE incident = $1 ORDER BY pos, service",
                &[Arg::Text(id)],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rec.merged = merged
            .iter()
            .map(|r| {
                r.text("service").map_err(|e| StoreError::Corrupt {
                    op: OP,
                    reason: format!("incident_merged column service: {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(rec))
    }

    /// Persists the engine's safety state (one row, replaced each time).
    /// `saved_at` is RFC 3339 UTC. Fenced.
    pub async fn save_snapshot(
        &self,
        snap: &medic_core::Snapshot,
        saved_at: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "save_snapshot";
        let body = serde_json::to_string(snap).map_err(|e| StoreError::Corrupt {
            op: OP,
            reason: format!("cannot serialise the safety state: {e}"),
        })?;
        let mut tx = self.begin_write(OP).await?;
        tx.execute(
            "INSERT INTO engine_state (id, version, saved_at, body) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, saved_at = excluded.saved_at, body = excluded.body",
            &[
                Arg::Int(i64::from(snap.version())),
                Arg::Text(saved_at),
                Arg::Text(&body),
            ],
        )
        .await
        .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))
    }

    /// Records (or replaces) the process supervised for `p.service`.
    /// Not fenced: the supervised process is the local host's fact.
    pub async fn put_supervised(&self, p: &SupervisedProcess) -> Result<(), StoreError> {
        const OP: &str = "put_supervised";
        let invalid = |field: &'static str, reason: &str| StoreError::InvalidInput {
            op: OP,
            field,
            reason: reason.to_string(),
        };
        if p.service.is_empty() {
            return Err(invalid("service", "must not be empty"));
        }
        let ticks =
            i64::try_from(p.start_ticks).map_err(|_| invalid("start_ticks", "too large"))?;
        let command = serde_json::to_string(&p.command).map_err(|e| StoreError::Corrupt {
            op: OP,
            reason: format!("command does not serialize: {e}"),
        })?;
        self.db
            .execute(
                "INSERT INTO supervised_process (service, pid, pgid, start_ticks, boot_id, started_unix_ms, command) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (service) DO UPDATE SET pid = excluded.pid, pgid = excluded.pgid, \
                 start_ticks = excluded.start_ticks, boot_id = excluded.boot_id, \
                 started_unix_ms = excluded.started_unix_ms, command = excluded.command",
                &[
                    Arg::Text(&p.service),
                    Arg::Int(i64::from(p.pid)),
                    Arg::Int(i64::from(p.pgid)),
                    Arg::Int(ticks),
                    Arg::Text(&p.boot_id),
                    Arg::Int(p.started_unix_ms),
                    Arg::Text(&command),
                ],
            )
            .await
            .map_err(StoreError::db(OP))?;
        Ok(())
    }

    /// The last saved safety state with its `saved_at`, if any. A body that
    /// does not parse is an error (the caller decides how to start safely).
    pub async fn load_snapshot(
        &self,
    ) -> Result<Option<(medic_core::Snapshot, String)>, StoreError> {
        const OP: &str = "load_snapshot";
        let row = self
            .db
            .fetch_optional("SELECT saved_at, body FROM engine_state WHERE id = 1", &[])
            .await
            .map_err(StoreError::db(OP))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let saved_at = row.text("saved_at").map_err(StoreError::db(OP))?;
        let body = row.text("body").map_err(StoreError::db(OP))?;
        let snap = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
            op: OP,
            reason: format!("the saved safety state does not parse: {e}"),
        })?;
        Ok(Some((snap, saved_at)))
    }

    /// Forgets the process supervised for `service` (no error if none).
    pub async fn delete_supervised(&self, service: &str) -> Result<(), StoreError> {
        const OP: &str = "delete_supervised";
        self.db
            .execute(
                "DELETE FROM supervised_process WHERE service = $1",
                &[Arg::Text(service)],
            )
            .await
            .map_err(StoreError::db(OP))?;
        Ok(())
    }

    /// Every recorded supervised process, by service name.
    pub async fn list_supervised(&self) -> Result<Vec<SupervisedProcess>, StoreError> {
        const OP: &str = "list_supervised";
        let rows = self
            .db
            .fetch_all(
                "SELECT service, pid, pgid, start_ticks, boot_id, started_unix_ms, command \
                 FROM supervised_process ORDER BY service",
                &[],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode_supervised(r, OP)).collect()
    }

    /// Learning (issue 9): one verified outcome of `action` run for a
    /// diagnosis matching `pattern`; success reinforces the pair, a failed
    /// verification or a rollback weakens it. Fenced.
    pub async fn record_pattern_outcome(
        &self,
        pattern: &str,
        action: &str,
        success: bool,
    ) -> Result<(), StoreError> {
        const OP: &str = "record_pattern_outcome";
        let (s, f) = if success { (1i64, 0i64) } else { (0, 1) };
        let mut tx = self.begin_write(OP).await?;
        tx.execute(
            "INSERT INTO pattern_outcomes(pattern, action, successes, failures) VALUES ($1, $2, $3, $4) \
             ON CONFLICT(pattern, action) DO UPDATE SET successes = pattern_outcomes.successes + excluded.successes, \
             failures = pattern_outcomes.failures + excluded.failures",
            &[Arg::Text(pattern), Arg::Text(action), Arg::Int(s), Arg::Int(f)],
        )
        .await
        .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))
    }

    /// Learning (issue 9): an incident no pattern matched, resolved by a human
    /// after running `action`, becomes a *candidate* pattern (never automatic:
    /// only `medic patterns accept` changes its status). Returns its id. Fenced.
    pub async fn add_candidate_pattern(&self, c: &CandidatePattern) -> Result<i64, StoreError> {
        const OP: &str = "add_candidate_pattern";
        let mut tx = self.begin_write(OP).await?;
        let id = tx
            .fetch_one(
                "INSERT INTO candidate_patterns(incident, service, trigger_text, action, \"by\", note, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'candidate', $7) RETURNING id",
                &[
                    Arg::Text(&c.incident),
                    Arg::Text(&c.service),
                    Arg::Text(&c.trigger),
                    Arg::Text(&c.action),
                    Arg::Text(&c.by),
                    Arg::Text(&c.note),
                    Arg::Text(&c.created_at),
                ],
            )
            .await
            .and_then(|r| r.int(0))
            .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))?;
        Ok(id)
    }

    /// Every candidate pattern, oldest first.
    pub async fn candidate_patterns(&self) -> Result<Vec<CandidatePattern>, StoreError> {
        const OP: &str = "candidate_patterns";
        let rows = self
            .db
            .fetch_all(
                "SELECT id, incident, service, trigger_text, action, \"by\", note, status, created_at \
                 FROM candidate_patterns ORDER BY id",
                &[],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter()
            .map(|r| {
                let t = |i: usize| r.text(i).map_err(StoreError::db(OP));
                Ok(CandidatePattern {
                    id: r.int(0).map_err(StoreError::db(OP))?,
                    incident: t(1)?,
                    service: t(2)?,
                    trigger: t(3)?,
                    action: t(4)?,
                    by: t(5)?,
                    note: t(6)?,
                    status: t(7)?,
                    created_at: t(8)?,
                })
            })
            .collect()
    }

    /// `accepted` or `rejected` by an operator; `false` when no candidate has `id`.
    /// Fenced.
    pub async fn set_candidate_status(&self, id: i64, status: &str) -> Result<bool, StoreError> {
        const OP: &str = "set_candidate_status";
        let mut tx = self.begin_write(OP).await?;
        let n = tx
            .execute(
                "UPDATE candidate_patterns SET status = $1 WHERE id = $2",
                &[Arg::Text(status), Arg::Int(id)],
            )
            .await
            .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))?;
        Ok(n > 0)
    }

    /// Every learned (pattern, action) pair: `(pattern, action, successes, failures)`.
    pub async fn pattern_outcomes(&self) -> Result<Vec<(String, String, u32, u32)>, StoreError> {
        const OP: &str = "pattern_outcomes";
        let rows = self
            .db
            .fetch_all(
                "SELECT pattern, action, successes, failures FROM pattern_outcomes ORDER BY pattern, action",
                &[],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter()
            .map(|r| {
                let get =
                    |i: usize| -> Result<i64, StoreError> { r.int(i).map_err(StoreError::db(OP)) };
                Ok((
                    r.text(0).map_err(StoreError::db(OP))?,
                    r.text(1).map_err(StoreError::db(OP))?,
                    u32::try_from(get(2)?).unwrap_or(u32::MAX),
                    u32::try_from(get(3)?).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    /// Last `(seq, hash)` of the audit chain as this handle last wrote or
    /// read it (`(0, GENESIS_HASH)` when empty). With several writers, other
    /// processes may have appended since.
    pub async fn audit_tip(&self) -> (u64, String) {
        self.tip.lock().await.clone()
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

const TIP_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/// Reads the last `(seq, hash)` of the audit chain.
async fn load_tip(db: &Db, op: &'static str) -> Result<(u64, String), StoreError> {
    let row = db
        .fetch_optional(TIP_SQL, &[])
        .await
        .map_err(StoreError::db(op))?;
    decode_tip(row, op)
}

/// Takes the chain lock in `tx` and reads the tip there, so the append that
/// follows continues whatever any writer committed before it.
pub(crate) async fn lock_tip(tx: &mut Tx, op: &'static str) -> Result<(u64, String), StoreError> {
    tx.lock_chain().await.map_err(StoreError::db(op))?;
    let row = tx
        .fetch_optional(TIP_SQL, &[])
        .await
        .map_err(StoreError::db(op))?;
    decode_tip(row, op)
}

fn decode_tip(row: Option<DbRow>, op: &'static str) -> Result<(u64, String), StoreError> {
    let Some(row) = row else {
        return Ok((0, GENESIS_HASH.to_string()));
    };
    let seq = row.int("seq").map_err(StoreError::db(op))?;
    let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt {
        op,
        reason: format!("last audit seq {seq} is negative"),
    })?;
    let hash = match row.opt_text("hash") {
        Ok(Some(h)) => h,
        _ => {
            return Err(StoreError::Corrupt {
                op,
                reason: format!("audit record {seq} has no text hash"),
            })
        }
    };
    Ok((seq, hash))
}

fn decode_incident(row: &DbRow, op: &'static str) -> Result<IncidentRecord, StoreError> {
    let get = |col: &str| -> Result<String, StoreError> {
        row.text(col).map_err(|e| StoreError::Corrupt {
            op,
            reason: format!("incident column {col}: {e}"),
        })
    };
    let get_opt = |col: &str| -> Result<Option<String>, StoreError> {
        row.opt_text(col).map_err(|e| StoreError::Corrupt {
            op,
            reason: format!("incident column {col}: {e}"),
        })
    };
    let id = get("id")?;
    let timeline_text = get("timeline")?;
    let timeline = serde_json::from_str(&timeline_text).map_err(|e| StoreError::Corrupt {
        op,
        reason: format!("incident {id}: timeline is not a valid JSON timeline: {e}"),
    })?;
    Ok(IncidentRecord {
        service: get("service")?,
        state: get("state")?,
        trigger: get("trigger_text")?,
        opened_at: get("opened_at")?,
        updated_at: get("updated_at")?,
        closed_at: get_opt("closed_at")?,
        outcome: get_opt("outcome")?,
        summary: get("summary")?,
        timeline,
        merged: Vec::new(),
        diagnosis: match (get_opt("cause_service")?, get_opt("cause_pattern")?) {
            (Some(service), Some(pattern)) => Some(IncidentCause { service, pattern }),
            _ => None,
        },
        id,
    })
}

fn decode_supervised(row: &DbRow, op: &'static str) -> Result<SupervisedProcess, StoreError> {
    let corrupt = |col: &str, e: String| StoreError::Corrupt {
        op,
        reason: format!("supervised_process column {col}: {e}"),
    };
    let int = |col: &str| -> Result<i64, StoreError> {
        row.int(col).map_err(|e| corrupt(col, e.to_string()))
    };
    let text = |col: &str| -> Result<String, StoreError> {
        row.text(col).map_err(|e| corrupt(col, e.to_string()))
    };
    let id = |col: &str| -> Result<u32, StoreError> {
        let v = int(col)?;
        u32::try_from(v).map_err(|_| corrupt(col, format!("{v} is not a pid")))
    };
    let ticks = int("start_ticks")?;
    let command = text("command")?;
    Ok(SupervisedProcess {
        service: text("service")?,
        pid: id("pid")?,
        pgid: id("pgid")?,
        start_ticks: u64::try_from(ticks)
            .map_err(|_| corrupt("start_ticks", format!("{ticks} is negative")))?,
        boot_id: text("boot_id")?,
        started_unix_ms: int("started_unix_ms")?,
        command: serde_json::from_str(&command)
            .map_err(|e| corrupt("command", format!("not a JSON argv: {e}")))?,
    })
}

/// Decodes an audit row; any type/NULL problem is returned as a reason.
fn decode_audit(row: &DbRow) -> Result<AuditRecord, String> {
    let seq = row
        .int("seq")
        .map_err(|e| format!("column seq unreadable: {e}"))?;
    let seq = u64::try_from(seq).map_err(|_| format!("seq {seq} is negative"))?;
    let text = |col: &str| -> Result<String, String> {
        match row.opt_text(col) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!("column {col} is NULL")),
            Err(e) => Err(format!("column {col} is not text: {e}")),
        }
    };
    Ok(AuditRecord {
        seq,
        ts: text("ts")?,
        kind: text("kind")?,
        payload: text("payload")?,
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

fn check_ts(ts: &str) -> Result<(), String> {
    let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{ts:?} is not RFC 3339: {e}"))?;
    if parsed.offset() != time::UtcOffset::UTC {
        return Err(format!("{ts:?} is not in UTC"));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), String> {
    if kind.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = kind
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "{kind:?} contains {c:?}; allowed: A-Z a-z 0-9 _ . : -"
        ));
    }
    Ok(())
}

fn check_payload(payload: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON: {e}"))
}

/// Verifies the audit chain in the SQLite database at `path`, opened
/// read-only.
///
/// Fails with [`StoreError::NotFound`] if the file does not exist (it is never
/// created). See the crate docs for what is checked.
pub async fn verify_audit(path: &Path) -> Result<VerifyReport, StoreError> {
    const OP: &str = "verify_audit";
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => {}
        _ => {
            return Err(StoreError::NotFound {
                op: OP,
                path: path.to_path_buf(),
            })
        }
    }
    let opts = SqliteConnectOptions::from_str("sqlite:")
        .map_err(StoreError::db(OP))?
        .filename(path)
        .create_if_missing(false)
        .read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(StoreError::db(OP))?;
    walk_chain(Db::Sqlite(pool), OP).await
}

/// Verifies the audit chain of the Postgres database at `url` in read-only
/// transactions (`default_transaction_read_only`); creates nothing.
pub async fn verify_audit_postgres(url: &str) -> Result<VerifyReport, StoreError> {
    const OP: &str = "verify_audit";
    check_postgres_url(url).map_err(|reason| StoreError::InvalidInput {
        op: OP,
        field: "url",
        reason,
    })?;
    let opts = PgConnectOptions::from_str(url)
        .map_err(StoreError::db(OP))?
        .options([("default_transaction_read_only", "on")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(StoreError::db(OP))?;
    walk_chain(Db::Postgres(pool), OP).await
}

/// [`verify_audit`] or [`verify_audit_postgres`] for `target`.
pub async fn verify_audit_target(target: &StoreTarget) -> Result<VerifyReport, StoreError> {
    match target {
        StoreTarget::Sqlite(path) => verify_audit(path).await,
        StoreTarget::Postgres(url) => verify_audit_postgres(url).await,
    }
}

/// Walks the whole chain page by page (the one verification for both backends).
async fn walk_chain(db: Db, op: &'static str) -> Result<VerifyReport, StoreError> {
    const PAGE: i64 = 1000;
    let mut records: u64 = 0;
    let mut first_bad: Option<BadRecord> = None;
    let mut expected_seq: u64 = 1;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut after: i64 = i64::MIN;
    let walked: Result<(), StoreError> = async {
        loop {
            let rows = db
                .fetch_all(
                    "SELECT seq, ts, kind, payload, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq ASC LIMIT $2",
                    &[Arg::Int(after), Arg::Int(PAGE)],
                )
                .await
                .map_err(StoreError::db(op))?;
            let Some(last) = rows.last() else { break };
            after = last.int("seq").map_err(StoreError::db(op))?;
            for row in &rows {
                records += 1;
                if first_bad.is_some() {
                    continue;
                }
                match check_row(row, expected_seq, &prev_hash) {
                    Ok(rec) => {
                        expected_seq = rec.seq.saturating_add(1);
                        prev_hash = rec.hash;
                    }
                    Err(bad) => first_bad = Some(bad),
                }
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }
    .await;
    db.close().await;
    walked?;
    Ok(VerifyReport { records, first_bad })
}

fn check_row(row: &DbRow, expected_seq: u64, prev_hash: &str) -> Result<AuditRecord, BadRecord> {
    let seq_hint = row
        .int("seq")
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(expected_seq);
    let rec = decode_audit(row).map_err(|reason| BadRecord {
        seq: seq_hint,
        reason,
    })?;
    if rec.seq != expected_seq {
        return Err(BadRecord {
            seq: expected_seq,
            reason: if rec.seq > expected_seq {
                format!(
                    "missing record: expected seq {expected_seq}, next present is seq {}",
                    rec.seq
                )
            } else {
                format!("seq {} out of order, expected {expected_seq}", rec.seq)
            },
        });
    }
    let bad = |reason: String| BadRecord {
        seq: rec.seq,
        reason,
    };
    if rec.prev_hash != prev_hash {
        return Err(bad(format!(
            "prev_hash {} does not match hash of previous record {}",
            rec.prev_hash, prev_hash
        )));
    }
    let recomputed = compute_hash(&rec.prev_hash, rec.seq, &rec.ts, &rec.kind, &rec.payload);
    if recomputed != rec.hash {
        return Err(bad(format!(
            "hash mismatch: stored {}, recomputed {recomputed}",
            rec.hash
        )));
    }
    check_ts(&rec.ts).map_err(|r| bad(format!("ts: {r}")))?;
    check_kind(&rec.kind).map_err(|r| bad(format!("kind: {r}")))?;
    check_payload(&rec.payload).map_err(|r| bad(format!("payload: {r}")))?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn pool_connections_use_wal_and_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).await.unwrap();
        for _ in 0..3 {
            let db::Db::Sqlite(pool) = &store.db else {
                panic!("not sqlite")
            };
            let mut conn = pool.acquire().await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            // 2 = FULL
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(sync, 2);
        }
    }

    #[tokio::test]
    async fn supervised_processes_survive_reopening_and_leave_the_audit_chain_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let store = Store::open(&path).await.unwrap();
        store
            .append_audit("2026-01-01T00:00:00Z", "a", "{}")
            .await
            .unwrap();
        let web = SupervisedProcess {
            service: "web".into(),
            pid: 4242,
            pgid: 4242,
            start_ticks: 1_234_567,
            boot_id: "b00t".into(),
            started_unix_ms: 1_790_000_000_000,
            command: vec![
                "medic".into(),
                "fixture".into(),
                "--port".into(),
                "1".into(),
            ],
        };
        store.put_supervised(&web).await.unwrap();
        let moved = SupervisedProcess {
            pid: 4343,
            pgid: 4343,
            ..web.clone()
        };
        store.put_supervised(&moved).await.unwrap();
        let db = SupervisedProcess {
            service: "db".into(),
            ..web.clone()
        };
        store.put_supervised(&db).await.unwrap();
        store.close().await;
        let store = Store::open(&path).await.unwrap();
        assert_eq!(
            store.list_supervised().await.unwrap(),
            vec![db.clone(), moved]
        );
        store.delete_supervised("web").await.unwrap();
        store.delete_supervised("nosuch").await.unwrap();
        assert_eq!(store.list_supervised().await.unwrap(), vec![db]);
        let bad = SupervisedProcess {
            service: String::new(),
            ..web
        };
        assert!(matches!(
            store.put_supervised(&bad).await,
            Err(StoreError::InvalidInput {
                field: "service",
                ..
            })
        ));
        store.close().await;
        let report = verify_audit(&path).await.unwrap();
        assert!(report.is_ok() && report.records == 1, "{report:?}");
    }

    #[tokio::test]
    async fn a_stale_cached_tip_does_not_fork_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let store = Store::open(&path).await.unwrap();
        store
            .append_audit("2026-01-01T00:00:00Z", "a", "{}")
            .await
            .unwrap();
        // Another writer (or an ambiguous commit) left this handle's cached
        // tip behind: the append re-reads the tip inside its transaction.
        *store.tip.lock().await = (0, GENESIS_HASH.to_string());
        let rec = store
            .append_audit("2026-01-01T00:00:02Z", "c", "{}")
            .await
            .unwrap();
        assert_eq!(rec.seq, 2);
        let all = store.list_audit(0, 10).await.unwrap();
        assert_eq!(all[1].prev_hash, all[0].hash);
        assert_eq!(store.audit_tip().await, (2, rec.hash));
        store.close().await;
        assert!(verify_audit(&path).await.unwrap().is_ok());
    }
}
