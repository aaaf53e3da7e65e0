//! HTTP routes of the notification path, merged into medic's API router:
//!
//! - `POST /api/v1/incidents/{id}/ack`: acknowledge an incident (stops its
//!   escalation chain; PagerDuty gets `acknowledge`);
//! - `POST /api/v1/notify/pagerduty`: PagerDuty v3 webhook; an
//!   `incident.acknowledged` event for a medic dedup key acknowledges too;
//! - `POST /api/v1/notify/test`: queue a test message per channel (or one
//!   channel) through the real outbox and report what happened to each.
//!
//! The notifier's counters are served by medic's one `/metrics`
//! ([`crate::Stats::families`]).
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Extension;
use axum::{Json, Router};
use medic_api::{ApiError, ApiState, ErrorCode, RouteInfo};
use medic_config::NotifyConfig;
use medic_core::Severity;
use medic_core::{Actor, Role};
use medic_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::deliver::{now_rfc3339, Stats};
use crate::plan;

/// What the routes need.
#[derive(Clone)]
pub struct NotifyApi {
    pub store: Store,
    pub cfg: Option<NotifyConfig>,
    pub wake: Arc<Notify>,
    pub stats: Arc<Stats>,
}

/// Answer of the ack routes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AckReply {
    pub incident: String,
    pub acknowledged_by: String,
    /// Escalation steps that will no longer be sent.
    pub cancelled_steps: u64,
    /// Acknowledge messages queued (e.g. for PagerDuty).
    pub queued: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub channel: Option<String>,
}

/// What happened to one test message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestResult {
    pub channel: String,
    pub msg_id: String,
    /// `delivered` or `pending` (not accepted yet; it stays queued).
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestReply {
    pub results: Vec<TestResult>,
}

/// These routes with the least role for each: the same 401/403 rules as
/// every API route (`medic_api::auth`). PagerDuty's webhook carries no medic
/// token, so it is public like the Alertmanager receiver (keep it on
/// loopback or behind a proxy; docs/api.md).
pub const NOTIFY_ROUTES: &[RouteInfo] = &[
    RouteInfo {
        method: "POST",
        path: "/api/v1/incidents/{id}/ack",
        role: Some(Role::Operator),
        summary: "acknowledge an incident: stops its escalation chain",
    },
    RouteInfo {
        method: "POST",
        path: "/api/v1/notify/pagerduty",
        role: None,
        summary: "PagerDuty v3 webhook (incident.acknowledged)",
    },
    RouteInfo {
        method: "POST",
        path: "/api/v1/notify/test",
        role: Some(Role::Operator),
        summary: "send a test message through the real outbox",
    },
];

pub fn router(state: NotifyApi, api: ApiState) -> Router {
    Router::new()
        .route("/api/v1/incidents/{id}/ack", post(ack))
        .route("/api/v1/notify/pagerduty", post(pagerduty_webhook))
        .route("/api/v1/notify/test", post(test))
        // With `ha:`, only the leader writes the outbox (a follower's write
        // would be fenced): E0476 naming the leader. Inside authentication.
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            medic_api::require_leader,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            (api, NOTIFY_ROUTES),
            medic_api::auth::authenticate_in,
        ))
        .with_state(state)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

/// Acknowledges `incident` for `by`: cancels pending escalation steps and
/// queues an `acknowledge` message per route (PagerDuty acknowledges its
/// incident by dedup key), audited as `notify.acknowledged`.
pub async fn acknowledge(st: &NotifyApi, incident: &str, by: &str) -> Result<AckReply, ApiError> {
    let service = st
        .store
        .outbox_incident_service(incident)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NothingToAcknowledge,
                format!("no notification was queued for incident {incident}"),
            )
        })?;
    let msgs = match &st.cfg {
        Some(cfg) => plan::event_messages(
            cfg,
            &plan::Event {
                event: "acknowledge",
                severity: Severity::Critical,
                service: &service,
                incident: Some(incident),
                title: &format!("{service}: incident {incident} acknowledged by {by}"),
                message: "escalation stopped",
            },
            None,
        ),
        None => Vec::new(),
    };
    let n = st
        .store
        .acknowledge(&now_rfc3339(), incident, by, &msgs)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NothingToAcknowledge,
                format!("no notification was queued for incident {incident}"),
            )
        })?;
    st.wake.notify_one();
    Ok(AckReply {
        incident: incident.to_string(),
        acknowledged_by: by.to_string(),
        cancelled_steps: n,
        queued: msgs.len(),
    })
}

async fn ack(
    State(st): State<NotifyApi>,
    Path(id): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<AckReply>, ApiError> {
    acknowledge(&st, &id, &actor.id).await.map(Json)
}

#[derive(Deserialize)]
struct PdWebhook {
    event: PdEvent,
}

#[derive(Deserialize)]
struct PdEvent {
    event_type: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// PagerDuty v3 webhook: `incident.acknowledged` whose incident key is a
/// medic dedup key (`medic-<incident>`) acknowledges that incident. Other
/// events are accepted and ignored.
async fn pagerduty_webhook(
    State(st): State<NotifyApi>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ev: PdWebhook = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("not a PagerDuty webhook: {e}"),
        )
    })?;
    if ev.event.event_type != "incident.acknowledged" {
        return Ok(Json(serde_json::json!({"ignored": ev.event.event_type})));
    }
    let key = ev
        .event
        .data
        .get("incident_key")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    let Some(incident) = key.strip_prefix("medic-") else {
        return Ok(Json(serde_json::json!({"ignored": "not a medic incident"})));
    };
    let reply = acknowledge(&st, incident, "pagerduty").await?;
    Ok(Json(serde_json::to_value(reply).map_err(internal)?))
}

async fn test(State(st): State<NotifyApi>, body: Bytes) -> Result<Json<TestReply>, ApiError> {
    let req: TestRequest = if body.is_empty() {
        TestRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_field("channel", e.to_string()))?
    };
    send_test(&st, req.channel.as_deref(), Duration::from_secs(8))
        .await
        .map(Json)
}

/// Queues one test message per channel (or only `channel`), audited as
/// `notify.test`, and waits up to `wait` for each to leave the outbox.
pub async fn send_test(
    st: &NotifyApi,
    channel: Option<&str>,
    wait: Duration,
) -> Result<TestReply, ApiError> {
    let Some(cfg) = &st.cfg else {
        return Err(ApiError::new(
            ErrorCode::NotifyDisabled,
            "no `notify:` section in the configuration",
        ));
    };
    let names: Vec<String> = match channel {
        Some(c) if cfg.channels.contains_key(c) => vec![c.to_string()],
        Some(c) => {
            return Err(ApiError::new(
                ErrorCode::UnknownChannel,
                format!(
                    "no channel `{c}` (configured: {})",
                    cfg.channels.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_field("channel"))
        }
        None => cfg.channels.keys().cloned().collect(),
    };
    let mut msgs = Vec::new();
    for name in &names {
        msgs.extend(plan::event_messages(
            cfg,
            &plan::Event {
                event: "test",
                severity: Severity::Info,
                service: "medic",
                incident: None,
                title: &format!("medic test message for channel {name}"),
                message: "sent by `medic notify test`; no action needed",
            },
            Some(name),
        ));
    }
    let payload = serde_json::json!({ "channels": names }).to_string();
    st.store
        .append_step(
            &now_rfc3339(),
            &[("notify.test", &payload)],
            &msgs,
            cfg.outbox_capacity,
        )
        .await
        .map_err(internal)?;
    st.wake.notify_one();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut results = Vec::new();
        let mut pending = false;
        for (m, name) in msgs.iter().zip(&names) {
            let row = st.store.outbox_get(&m.msg_id).await.map_err(internal)?;
            let (state, attempts, last_error) = match row {
                Some(r) => (r.state, r.attempts, r.last_error),
                None => ("pruned".to_string(), 0, None),
            };
            pending |= state == "pending";
            results.push(TestResult {
                channel: name.clone(),
                msg_id: m.msg_id.clone(),
                state,
                attempts,
                last_error,
            });
        }
        if !pending || tokio::time::Instant::now() >= deadline {
            return Ok(TestReply { results });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
