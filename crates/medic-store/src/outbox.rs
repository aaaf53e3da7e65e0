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

use crate::db::{Arg, DbRow, Tx};
use crate::{check_kind, check_payload, check_ts, compute_hash, AuditRecord, Store, StoreError};

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

/// Inserts one chained audit row in `tx` after `tip` (which the caller read
/// under the chain lock, [`crate::lock_tip`]); returns the new record.
pub(crate) async fn insert_chained(
    tx: &mut Tx,
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
    tx.execute(
        "INSERT INTO audit_log (seq, ts, kind, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Arg::Int(seq_i),
            Arg::Text(ts),
            Arg::Text(kind),
            Arg::Text(payload),
            Arg::Text(&prev_hash),
            Arg::Text(&hash),
        ],
    )
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
    tx: &mut Tx,
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
    tx.execute(
        "INSERT INTO outbox (msg_id, dedup_key, created_at, due_ms, severity, service, incident, event, title, message, channels, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending')",
        &[
            Arg::Text(&m.msg_id),
            Arg::Text(&m.dedup_key),
            Arg::Text(ts),
            Arg::Int(m.due_ms),
            Arg::Text(&m.severity),
            Arg::Text(&m.service),
            Arg::OptText(m.incident.as_deref()),
            Arg::Text(&m.event),
            Arg::Text(&m.title),
            Arg::Text(&m.message),
            Arg::OptText(channels.as_deref()),
        ],
    )
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
    /// pending message is suppressed. Fenced (see [`Store::set_fence`]).
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
        let mut out = StepWritten::default();
        let result: Result<Tip, StoreError> = async {
            let mut tx = self.begin_write(OP).await?;
            let mut cur = crate::lock_tip(&mut tx, OP).await?;
            for (kind, payload) in audit {
                let rec = insert_chained(&mut tx, OP, &cur, ts, kind, payload).await?;
                cur = (rec.seq, rec.hash.clone());
                out.records.push(rec);
            }
            for m in messages {
                let exists = tx
                    .fetch_optional(
                        "SELECT id FROM outbox WHERE dedup_key = $1 AND state = 'pending' LIMIT 1",
                        &[Arg::Text(&m.dedup_key)],
                    )
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
                let depth = tx
                    .fetch_one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", &[])
                    .await
                    .and_then(|r| r.int(0))
                    .map_err(StoreError::db(OP))?;
                if depth <= i64::from(capacity) {
                    break;
                }
                let victim = tx
                    .fetch_one(
                        "SELECT id, msg_id, severity, title FROM outbox WHERE state = 'pending' \
                         ORDER BY CASE WHEN severity = 'critical' THEN 1 ELSE 0 END, id LIMIT 1",
                        &[],
                    )
                    .await
                    .map_err(StoreError::db(OP))?;
                let id = victim.int("id").map_err(StoreError::db(OP))?;
                let d = Dropped {
                    msg_id: victim.text("msg_id").map_err(StoreError::db(OP))?,
                    severity: victim.text("severity").map_err(StoreError::db(OP))?,
                    title: victim.text("title").map_err(StoreError::db(OP))?,
                };
                tx.execute(
                    "UPDATE outbox SET state = 'dropped', last_error = 'outbox full', done_at = $2 WHERE id = $1",
                    &[Arg::Int(id), Arg::Text(ts)],
                )
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
            tx.commit().await.map_err(StoreError::db(OP))?;
            Ok(cur)
        }
        .await;
        match result {
            Ok(cur) => {
                *tip = cur;
                Ok(out)
            }
            Err(e) => {
                // A failed commit can be ambiguous: show what is on disk.
                if let Ok(actual) = crate::load_tip(&self.db, OP).await {
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
        let rows = self
            .db
            .fetch_all(&sql, &[Arg::Int(now_ms), Arg::Int(i64::from(limit))])
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
        let rows = self
            .db
            .fetch_all(&sql, &[Arg::Int(now_ms)])
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// The earliest `due_ms` of a pending message, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        const OP: &str = "outbox_next_due";
        self.db
            .fetch_one(
                "SELECT MIN(due_ms) FROM outbox WHERE state = 'pending'",
                &[],
            )
            .await
            .and_then(|r| r.opt_int(0))
            .map_err(StoreError::db(OP))
    }

    /// The newest messages in any state, newest first (diagnostics).
    pub async fn outbox_recent(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_recent";
        let sql = format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1");
        let rows = self
            .db
            .fetch_all(&sql, &[Arg::Int(i64::from(limit))])
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// One message by its msg_id.
    pub async fn outbox_get(&self, msg_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        const OP: &str = "outbox_get";
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE msg_id = $1");
        let row = self
            .db
            .fetch_optional(&sql, &[Arg::Text(msg_id)])
            .await
            .map_err(StoreError::db(OP))?;
        row.as_ref().map(|r| decode(r, OP)).transpose()
    }

    /// Number of pending messages (the outbox depth).
    pub async fn outbox_depth(&self) -> Result<u64, StoreError> {
        const OP: &str = "outbox_depth";
        let n = self
            .db
            .fetch_one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", &[])
            .await
            .and_then(|r| r.int(0))
            .map_err(StoreError::db(OP))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Marks a pending message delivered by `channel`, then prunes old
    /// finished rows. A message no longer pending is left as it is. Fenced.
    pub async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        ts: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "outbox_delivered";
        let mut tx = self.begin_write(OP).await?;
        tx.execute(
            "UPDATE outbox SET state = 'delivered', channel = $2, done_at = $3, attempts = attempts + 1 \
             WHERE id = $1 AND state = 'pending'",
            &[Arg::Int(id), Arg::Text(channel), Arg::Text(ts)],
        )
        .await
        .map_err(StoreError::db(OP))?;
        tx.execute(
            "DELETE FROM outbox WHERE state <> 'pending' AND id NOT IN \
             (SELECT id FROM outbox WHERE state <> 'pending' ORDER BY id DESC LIMIT $1)",
            &[Arg::Int(i64::from(KEEP_FINISHED))],
        )
        .await
        .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))
    }

    /// Records a failed delivery round of a pending message. Fenced.
    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        const OP: &str = "outbox_failed";
        let error: String = error.chars().take(500).collect();
        let mut tx = self.begin_write(OP).await?;
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND state = 'pending'",
            &[Arg::Int(id), Arg::Text(&error)],
        )
        .await
        .map_err(StoreError::db(OP))?;
        tx.commit().await.map_err(StoreError::db(OP))
    }

    /// Acknowledges an incident: cancels its pending escalation steps and
    /// queues `ack` (e.g. a PagerDuty acknowledge), with one
    /// `notify.acknowledged` audit record, all in one transaction. Returns
    /// the number of escalation steps cancelled, or `None` when the outbox
    /// never held a message about this incident. Fenced.
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
    /// `notify.resolved` when the incident closed). Fenced.
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
            let mut tx = self.begin_write(OP).await?;
            // The chain lock first, as in every appending transaction, so
            // two writers never wait on each other in opposite orders.
            let cur = crate::lock_tip(&mut tx, OP).await?;
            let known = tx
                .fetch_one(
                    "SELECT COUNT(*) FROM outbox WHERE incident = $1",
                    &[Arg::Text(incident)],
                )
                .await
                .and_then(|r| r.int(0))
                .map_err(StoreError::db(OP))?;
            if known == 0 {
                return Ok((None, None));
            }
            let cancelled = tx
                .execute(
                    "UPDATE outbox SET state = 'cancelled', done_at = $2, last_error = 'acknowledged' \
                     WHERE incident = $1 AND state = 'pending' AND event = 'escalate'",
                    &[Arg::Text(incident), Arg::Text(ts)],
                )
                .await
                .map_err(StoreError::db(OP))?;
            let payload = serde_json::json!({
                "incident": incident,
                "by": by,
                "cancelled_steps": cancelled,
            })
            .to_string();
            let rec = insert_chained(&mut tx, OP, &cur, ts, kind, &payload).await?;
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
                if let Ok(actual) = crate::load_tip(&self.db, OP).await {
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
        let n = self
            .db
            .fetch_one(
                "SELECT COUNT(*) FROM outbox WHERE incident = $1 AND event = $2",
                &[Arg::Text(incident), Arg::Text(event)],
            )
            .await
            .and_then(|r| r.int(0))
            .map_err(StoreError::db(OP))?;
        Ok(n > 0)
    }

    /// The service of the most recent message about `incident`, if any.
    pub async fn outbox_incident_service(
        &self,
        incident: &str,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "outbox_incident_service";
        let row = self
            .db
            .fetch_optional(
                "SELECT service FROM outbox WHERE incident = $1 ORDER BY id DESC LIMIT 1",
                &[Arg::Text(incident)],
            )
            .await
            .map_err(StoreError::db(OP))?;
        row.map(|r| r.text(0))
            .transpose()
            .map_err(StoreError::db(OP))
    }
}

fn decode(row: &DbRow, op: &'static str) -> Result<OutboxMessage, StoreError> {
    let corrupt = |col: &str, e: String| StoreError::Corrupt {
        op,
        reason: format!("outbox column {col}: {e}"),
    };
    let text = |col: &str| -> Result<String, StoreError> {
        row.text(col).map_err(|e| corrupt(col, e.to_string()))
    };
    let opt = |col: &str| -> Result<Option<String>, StoreError> {
        row.opt_text(col).map_err(|e| corrupt(col, e.to_string()))
    };
    let int = |col: &str| -> Result<i64, StoreError> {
        row.int(col).map_err(|e| corrupt(col, e.to_string()))
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
