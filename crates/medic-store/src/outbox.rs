//! The notification outbox: messages written in the same transaction as the
//! audit records that caused them, delivered later by `medic-notify`.
//!
//! ```sql
//! CREATE TABLE outbox(
//!     id         INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order
//!     msg_id     TEXT UNIQUE,  -- stable id sent to receivers (X-Medic-Id)
//!     dedup_key  TEXT,         -- identical content while pending is suppressed
//!     created_at TEXT,         -- RFC 3339 UTC
//!     due_ms     INTEGER,      -- unix ms before which it is not sent (escalation steps)
//!     severity   TEXT,         -- info | warning | critical
//!     service    TEXT,
//!     incident   TEXT,         -- NULL when not about an incident
//!     event      TEXT,         -- notify | escalate | acknowledge | resolve | test
//!     title      TEXT,
//!     message    TEXT,
//!     channels   TEXT,         -- JSON array of channel names, or NULL (routing decides)
//!     state      TEXT,         -- pending | delivered | dropped | cancelled
//!     attempts   INTEGER,
//!     last_error TEXT,
//!     channel    TEXT,         -- the channel that accepted it
//!     done_at    TEXT
//! );
//! ```
//!
//! Rows leave `pending` exactly once. Finished rows are kept (the newest
//! [`KEEP_FINISHED`]) for `medic notify` diagnostics and then pruned, so the
//! table is bounded by `capacity + KEEP_FINISHED`.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::{check_kind, check_payload, check_ts, compute_hash, AuditRecord, Store, StoreError};

pub(crate) const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL, created_at TEXT NOT NULL, due_ms INTEGER NOT NULL, severity TEXT NOT NULL, service TEXT NOT NULL, incident TEXT, event TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, channels TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, channel TEXT, done_at TEXT)";
pub(crate) const SCHEMA_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id)";

/// `(seq, hash)` of the audit chain's last record.
type Tip = (u64, String);

/// Finished (delivered, dropped, cancelled) rows kept before pruning.
pub const KEEP_FINISHED: u32 = 1000;

/// A message to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub msg_id: String,
    pub dedup_key: String,
    /// Unix ms before which the message is not delivered (0: at once).
    pub due_ms: i64,
    pub severity: String,
    pub service: String,
    pub incident: Option<String>,
    pub event: String,
    pub title: String,
    pub message: String,
    /// Explicit channels (an escalation step); `None`: routing decides.
    pub channels: Option<Vec<String>>,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Row id; delivery order.
    pub id: i64,
    pub msg_id: String,
    pub dedup_key: String,
    pub created_at: String,
    pub due_ms: i64,
    pub severity: String,
    pub service: String,
    pub incident: Option<String>,
    pub event: String,
    pub title: String,
    pub message: String,
    pub channels: Option<Vec<String>>,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub channel: Option<String>,
}

impl OutboxMessage {
    pub fn is_critical(&self) -> bool {
        self.severity == "critical"
    }
}

/// A message dropped because the outbox was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub msg_id: String,
    pub severity: String,
    pub title: String,
}

/// What [`Store::append_step`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepWritten {
    /// The audit records, in order (including `notify.dropped` ones).
    pub records: Vec<AuditRecord>,
    /// msg_ids queued.
    pub queued: Vec<String>,
    /// Messages not queued because an identical one is still pending.
    pub suppressed: u32,
    /// Messages dropped to keep the outbox within its capacity.
    pub dropped: Vec<Dropped>,
}

/// Audit kind of the record written for every message dropped when full.
pub const DROPPED_KIND: &str = "notify.dropped";
/// Audit kind of an acknowledgement.
pub const ACK_KIND: &str = "notify.acknowledged";

const COLUMNS: &str = "id, msg_id, dedup_key, created_at, due_ms, severity, service, incident, event, title, message, channels, state, attempts, last_error, channel";

/// Inserts one chained audit row on `conn`; returns the new record.
pub(crate) async fn insert_chained(
    conn: &mut SqliteConnection,
    op: &'static str,
    tip: &(u64, String),
    ts: &str,
    kind: &str,
    payload: &str,
) -> Result<AuditRecord, StoreError> {
    check_ts(ts).map_err(|reason| StoreError::InvalidInput {
        op,
        field: "ts",
        reason,
    })?;
    check_kind(kind).map_err(|reason| StoreError::InvalidInput {
        op,
        field: "kind",
        reason,
    })?;
    check_payload(payload).map_err(|reason| StoreError::InvalidInput {
        op,
        field: "payload",
        reason,
    })?;
    let overflow = || StoreError::Corrupt {
        op,
        reason: "audit seq overflow".into(),
    };
    let seq = tip.0.checked_add(1).ok_or_else(overflow)?;
    let seq_i = i64::try_from(seq).map_err(|_| overflow())?;
    let prev_hash = tip.1.clone();
    let hash = compute_hash(&prev_hash, seq, ts, kind, payload);
    sqlx::query(
        "INSERT INTO audit_log (seq, ts, kind, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(seq_i)
    .bind(ts)
    .bind(kind)
    .bind(payload)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(op))?;
    Ok(AuditRecord {
        seq,
        ts: ts.to_string(),
        kind: kind.to_string(),
        payload: payload.to_string(),
        prev_hash,
        hash,
    })
}

async fn insert_message(
    conn: &mut SqliteConnection,
    op: &'static str,
    ts: &str,
    m: &NewMessage,
) -> Result<(), StoreError> {
    let channels = match &m.channels {
        Some(c) => Some(serde_json::to_string(c).map_err(|e| StoreError::Corrupt {
            op,
            reason: format!("channels do not serialize: {e}"),
        })?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO outbox (msg_id, dedup_key, created_at, due_ms, severity, service, incident, event, title, message, channels, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending')",
    )
    .bind(&m.msg_id)
    .bind(&m.dedup_key)
    .bind(ts)
    .bind(m.due_ms)
    .bind(&m.severity)
    .bind(&m.service)
    .bind(&m.incident)
    .bind(&m.event)
    .bind(&m.title)
    .bind(&m.message)
    .bind(channels)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(op))?;
    Ok(())
}

impl Store {
    /// Appends a step's audit records and queues its messages in ONE
    /// transaction: either all of them are durable or none is. When the
    /// pending messages exceed `capacity`, the oldest non-critical pending
    /// message is dropped first (the oldest critical one only when every
    /// pending message is critical); each drop is a `notify.dropped` audit
    /// record in the same transaction. A message whose `dedup_key` matches a
    /// pending message is suppressed.
    pub async fn append_step(
        &self,
        ts: &str,
        audit: &[(&str, &str)],
        messages: &[NewMessage],
        capacity: u32,
    ) -> Result<StepWritten, StoreError> {
        const OP: &str = "append_step";
        if capacity == 0 {
            return Err(StoreError::InvalidInput {
                op: OP,
                field: "capacity",
                reason: "must be at least 1".into(),
            });
        }
        let mut tip = self.tip.lock().await;
        let mut cur = tip.clone();
        let mut out = StepWritten::default();
        let result: Result<(), StoreError> = async {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(StoreError::db(OP))?;
            for (kind, payload) in audit {
                let rec = insert_chained(&mut tx, OP, &cur, ts, kind, payload).await?;
                cur = (rec.seq, rec.hash.clone());
                out.records.push(rec);
            }
            for m in messages {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM outbox WHERE dedup_key = $1 AND state = 'pending' LIMIT 1",
                )
                .bind(&m.dedup_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::db(OP))?;
                if exists.is_some() {
                    out.suppressed += 1;
                    continue;
                }
                insert_message(&mut tx, OP, ts, m).await?;
                out.queued.push(m.msg_id.clone());
            }
            loop {
                let depth: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::db(OP))?;
                if depth <= i64::from(capacity) {
                    break;
                }
                let victim = sqlx::query(
                    "SELECT id, msg_id, severity, title FROM outbox WHERE state = 'pending' \
                     ORDER BY CASE WHEN severity = 'critical' THEN 1 ELSE 0 END, id LIMIT 1",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::db(OP))?;
                let id: i64 = victim.try_get("id").map_err(StoreError::db(OP))?;
                let d = Dropped {
                    msg_id: victim.try_get("msg_id").map_err(StoreError::db(OP))?,
                    severity: victim.try_get("severity").map_err(StoreError::db(OP))?,
                    title: victim.try_get("title").map_err(StoreError::db(OP))?,
                };
                sqlx::query(
                    "UPDATE outbox SET state = 'dropped', last_error = 'outbox full', done_at = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(ts)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(OP))?;
                let payload = serde_json::json!({
                    "msg_id": d.msg_id,
                    "severity": d.severity,
                    "title": d.title,
                    "reason": "outbox full",
                    "capacity": capacity,
                })
                .to_string();
                let rec = insert_chained(&mut tx, OP, &cur, ts, DROPPED_KIND, &payload).await?;
                cur = (rec.seq, rec.hash.clone());
                out.records.push(rec);
                out.dropped.push(d);
            }
            tx.commit().await.map_err(StoreError::db(OP))
        }
        .await;
        match result {
            Ok(()) => {
                *tip = cur;
                Ok(out)
            }
            Err(e) => {
                // A failed commit can be ambiguous: continue what is on disk.
                if let Ok(actual) = crate::load_tip(&self.pool, OP).await {
                    *tip = actual;
                }
                Err(e)
            }
        }
    }

    /// Pending messages due at `now_ms`, in delivery order, at most `limit`.
    pub async fn outbox_due(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_due";
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND due_ms <= $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// The first due pending message of every lane (distinct `channels`),
    /// in delivery order: a blocked lane never hides another lane's head.
    pub async fn outbox_lane_heads(&self, now_ms: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_lane_heads";
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE id IN \
             (SELECT MIN(id) FROM outbox WHERE state = 'pending' AND due_ms <= $1 GROUP BY channels) \
             ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// The earliest `due_ms` of a pending message, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        const OP: &str = "outbox_next_due";
        sqlx::query_scalar("SELECT MIN(due_ms) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db(OP))
    }

    /// The newest messages in any state, newest first (diagnostics).
    pub async fn outbox_recent(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_recent";
        let sql = format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// One message by its msg_id.
    pub async fn outbox_get(&self, msg_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_get";
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE msg_id = $1");
        let row = sqlx::query(&sql)
            .bind(msg_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db(OP))?;
        row.as_ref().map(|r| decode(r, OP)).transpose()
    }

    /// Number of pending messages (the outbox depth).
    pub async fn outbox_depth(&self) -> Result<u64, StoreError> {
        const OP: &str = "outbox_depth";
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db(OP))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Marks a pending message delivered by `channel`, then prunes old
    /// finished rows. A message no longer pending is left as it is.
    pub async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        ts: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "outbox_delivered";
        sqlx::query(
            "UPDATE outbox SET state = 'delivered', channel = $2, done_at = $3, attempts = attempts + 1 \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(channel)
        .bind(ts)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db(OP))?;
        sqlx::query(
            "DELETE FROM outbox WHERE state <> 'pending' AND id NOT IN \
             (SELECT id FROM outbox WHERE state <> 'pending' ORDER BY id DESC LIMIT $1)",
        )
        .bind(i64::from(KEEP_FINISHED))
        .execute(&self.pool)
        .await
        .map_err(StoreError::db(OP))?;
        Ok(())
    }

    /// Records a failed delivery round of a pending message.
    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        const OP: &str = "outbox_failed";
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db(OP))?;
        Ok(())
    }

    /// Acknowledges an incident: cancels its pending escalation steps and
    /// queues `ack` (e.g. a PagerDuty acknowledge), with one
    /// `notify.acknowledged` audit record, all in one transaction. Returns
    /// the number of escalation steps cancelled, or `None` when the outbox
    /// never held a message about this incident.
    pub async fn acknowledge(
        &self,
        ts: &str,
        incident: &str,
        by: &str,
        ack: &[NewMessage],
    ) -> Result<Option<u64>, StoreError> {
        self.close_chain(ts, incident, by, ack, ACK_KIND).await
    }

    /// Like [`Store::acknowledge`] with the audit kind `kind` (e.g.
    /// `notify.resolved` when the incident closed).
    pub async fn close_chain(
        &self,
        ts: &str,
        incident: &str,
        by: &str,
        ack: &[NewMessage],
        kind: &str,
    ) -> Result<Option<u64>, StoreError> {
        const OP: &str = "acknowledge";
        let mut tip = self.tip.lock().await;
        let result: Result<(Option<u64>, Option<Tip>), StoreError> = async {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(StoreError::db(OP))?;
            let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE incident = $1")
                .bind(incident)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::db(OP))?;
            if known == 0 {
                return Ok((None, None));
            }
            let cancelled = sqlx::query(
                "UPDATE outbox SET state = 'cancelled', done_at = $2, last_error = 'acknowledged' \
                 WHERE incident = $1 AND state = 'pending' AND event = 'escalate'",
            )
            .bind(incident)
            .bind(ts)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db(OP))?
            .rows_affected();
            let payload = serde_json::json!({
                "incident": incident,
                "by": by,
                "cancelled_steps": cancelled,
            })
            .to_string();
            let rec = insert_chained(&mut tx, OP, &tip, ts, kind, &payload).await?;
            for m in ack {
                insert_message(&mut tx, OP, ts, m).await?;
            }
            tx.commit().await.map_err(StoreError::db(OP))?;
            Ok((Some(cancelled), Some((rec.seq, rec.hash))))
        }
        .await;
        match result {
            Ok((n, new_tip)) => {
                if let Some(t) = new_tip {
                    *tip = t;
                }
                Ok(n)
            }
            Err(e) => {
                if let Ok(actual) = crate::load_tip(&self.pool, OP).await {
                    *tip = actual;
                }
                Err(e)
            }
        }
    }

    /// Whether a message of `event` about `incident` was ever queued (and
    /// is still kept).
    pub async fn outbox_has_event(&self, incident: &str, event: &str) -> Result<bool, StoreError> {
        const OP: &str = "outbox_has_event";
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE incident = $1 AND event = $2")
                .bind(incident)
                .bind(event)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db(OP))?;
        Ok(n > 0)
    }

    /// The service of the most recent message about `incident`, if any.
    pub async fn outbox_incident_service(
        &self,
        incident: &str,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "outbox_incident_service";
        sqlx::query_scalar(
            "SELECT service FROM outbox WHERE incident = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(incident)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db(OP))
    }
}

fn decode(row: &SqliteRow, op: &'static str) -> Result<OutboxMessage, StoreError> {
    let corrupt = |col: &str, e: String| StoreError::Corrupt {
        op,
        reason: format!("outbox column {col}: {e}"),
    };
    let text = |col: &str| -> Result<String, StoreError> {
        row.try_get::<String, _>(col)
            .map_err(|e| corrupt(col, e.to_string()))
    };
    let opt = |col: &str| -> Result<Option<String>, StoreError> {
        row.try_get::<Option<String>, _>(col)
            .map_err(|e| corrupt(col, e.to_string()))
    };
    let int = |col: &str| -> Result<i64, StoreError> {
        row.try_get::<i64, _>(col)
            .map_err(|e| corrupt(col, e.to_string()))
    };
    let channels = match opt("channels")? {
        Some(c) => Some(
            serde_json::from_str(&c)
                .map_err(|e| corrupt("channels", format!("not a JSON list: {e}")))?,
        ),
        None => None,
    };
    let attempts = int("attempts")?;
    Ok(OutboxMessage {
        id: int("id")?,
        msg_id: text("msg_id")?,
        dedup_key: text("dedup_key")?,
        created_at: text("created_at")?,
        due_ms: int("due_ms")?,
        severity: text("severity")?,
        service: text("service")?,
        incident: opt("incident")?,
        event: text("event")?,
        title: text("title")?,
        message: text("message")?,
        channels,
        state: text("state")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: opt("last_error")?,
        channel: opt("channel")?,
    })
}
