//! medic's own HTTP API. This is the only crate that knows HTTP and the JSON
//! wire types; the daemon talks to it through [`ApiState`] and
//! [`ControlRequest`].
//!
//! # Routes
//!
//! [`ROUTES`] lists every route with the least role that may call it;
//! `docs/api.md` documents each (request, answer, errors). Authentication and
//! the role check happen before any handler runs ([`auth::authenticate`]).
//! Operator commands go to the daemon as [`ControlRequest::Operate`] with the
//! [`Actor`] established by the token (its name, never the body); reads as
//! [`ControlRequest::Query`]. The engine's refusals come back typed and are
//! mapped by [`governance::refusal`].
//!
//! Every error is JSON, see [`error`] and [`CODES`]. Unknown routes give
//! `E0401 route_not_found`, wrong methods `E0405 method_not_allowed`, and the
//! errors no handler writes (body over the limit, unreadable body, ...) are
//! mapped to the table by [`json_errors()`], which routers merged into this
//! one (e.g. the Alertmanager receiver) apply to themselves too.

pub mod auth;
pub mod changes;
pub mod error;
pub mod governance;
pub mod ha;
pub mod json_errors;
pub mod metrics;
pub mod tokens;
pub mod ui;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medic_core::{Ack, Actor, OperatorCommand, OperatorError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

pub use auth::{Auth, RouteInfo, ROUTES};
pub use error::{ApiError, CodeInfo, ErrorBody, ErrorCode, ErrorDetail, CODES};
pub use json_errors::json_errors;
use json_errors::route_not_found;

pub use metrics::{
    CounterSource, EngineState, FamilySource, Metrics, ProbeObserver, SourceFamily, SourceKind,
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long `POST /api/v1/mode` waits for the daemon's reply.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

const INCIDENTS_DEFAULT_LIMIT: u32 = 50;
const INCIDENTS_MAX_LIMIT: u32 = 500;
const AUDIT_DEFAULT_LIMIT: u32 = 100;
const AUDIT_MAX_LIMIT: u32 = 1000;

// ---------------------------------------------------------------- state

/// Requests from the API to the daemon's control loop, which owns the
/// engine. The API never mutates the engine itself.
#[derive(Debug)]
pub enum ControlRequest {
    /// Run an operator command as `actor` (`Engine::operate`).
    Operate {
        actor: Actor,
        cmd: OperatorCommand,
        reply: oneshot::Sender<Result<Ack, OperatorError>>,
    },
    /// Read engine state.
    Query {
        query: governance::Query,
        reply: oneshot::Sender<governance::QueryAnswer>,
    },
    /// Record a change on a service (`POST /api/v1/changes`, issue 9): kept
    /// as evidence for the diagnosis, audited `change.recorded`.
    RecordChange {
        change: changes::Change,
        reply: oneshot::Sender<Result<changes::ChangeReply, changes::ChangeRefusal>>,
    },
}

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: medic_store::Store,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub control: mpsc::Sender<ControlRequest>,
    /// How callers are authenticated ([`auth`]).
    pub auth: Auth,
}

// ---------------------------------------------------------------- wire types

/// One entry of an incident timeline on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntryView {
    pub ts: String,
    pub kind: String,
    pub message: String,
}

/// An incident in a list (no timeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub id: String,
    pub service: String,
    pub state: String,
    pub trigger: String,
    pub opened_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub outcome: Option<String>,
    pub summary: String,
    /// The diagnosed root cause (service, pattern), when it had one.
    #[serde(default)]
    pub diagnosis: Option<medic_store::IncidentCause>,
}

/// `GET /api/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<IncidentSummary>,
}

/// `GET /api/v1/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentSummary,
    pub timeline: Vec<TimelineEntryView>,
    /// Closed incidents like this one and what worked (issue 9).
    #[serde(default)]
    pub similar: Vec<SimilarIncident>,
    /// Services whose incidents were merged into this one (victims of its
    /// service, the diagnosed upstream cause; issue 9), in the order they
    /// joined.
    #[serde(default)]
    pub merged_services: Vec<String>,
}

/// A past incident like this one (issue 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimilarIncident {
    pub id: String,
    pub service: String,
    pub trigger: String,
    pub outcome: Option<String>,
    /// Its diagnosed root cause; similar incidents with the same cause as
    /// this one come first.
    #[serde(default)]
    pub diagnosis: Option<medic_store::IncidentCause>,
    /// The last action of a healed incident (its timeline message).
    pub what_worked: Option<String>,
}

impl From<&medic_store::IncidentRecord> for SimilarIncident {
    fn from(r: &medic_store::IncidentRecord) -> Self {
        SimilarIncident {
            id: r.id.clone(),
            service: r.service.clone(),
            trigger: r.trigger.clone(),
            outcome: r.outcome.clone(),
            diagnosis: r.diagnosis.clone(),
            what_worked: (r.outcome.as_deref() == Some("healed"))
                .then(|| {
                    r.timeline
                        .iter()
                        .rev()
                        .find(|t| t.kind == "action")
                        .map(|t| t.message.clone())
                })
                .flatten(),
        }
    }
}

/// One audit record on the wire. `payload` is the stored JSON text embedded
/// verbatim (so hashes can be recomputed from it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecordView {
    pub seq: u64,
    pub ts: String,
    pub kind: String,
    pub payload: Box<RawValue>,
    pub prev_hash: String,
    pub hash: String,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// Pass as `after` to get the next page (the last seq returned, or the
    /// request's `after` when the page is empty).
    pub next_after: u64,
}

impl From<medic_store::IncidentRecord> for IncidentDetail {
    fn from(r: medic_store::IncidentRecord) -> Self {
        IncidentDetail {
            timeline: r
                .timeline
                .iter()
                .map(|t| TimelineEntryView {
                    ts: t.ts.clone(),
                    kind: t.kind.clone(),
                    message: t.message.clone(),
                })
                .collect(),
            similar: Vec::new(),
            merged_services: r.merged.clone(),
            incident: IncidentSummary::from(r),
        }
    }
}

impl From<medic_store::IncidentRecord> for IncidentSummary {
    fn from(r: medic_store::IncidentRecord) -> Self {
        IncidentSummary {
            id: r.id,
            service: r.service,
            state: r.state,
            trigger: r.trigger,
            opened_at: r.opened_at,
            updated_at: r.updated_at,
            closed_at: r.closed_at,
            outcome: r.outcome,
            summary: r.summary,
            diagnosis: r.diagnosis,
        }
    }
}

impl From<medic_store::AuditRecord> for AuditRecordView {
    fn from(r: medic_store::AuditRecord) -> Self {
        let payload = RawValue::from_string(r.payload.clone())
            .or_else(|_| RawValue::from_string(serde_json::Value::String(r.payload).to_string()))
            .unwrap_or_else(|_| Box::<RawValue>::default());
        AuditRecordView {
            seq: r.seq,
            ts: r.ts,
            kind: r.kind,
            payload,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

// ---------------------------------------------------------------- router

/// Builds the API router.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/mode", post(set_mode))
        .route("/api/v1/approvals", get(list_approvals))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/reject", post(reject))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/explain/{incident}", get(explain))
        .route("/api/v1/actions/{id}/cancel", post(cancel_action))
        .route("/api/v1/actions/force", post(force_action))
        .route("/api/v1/locks", get(list_locks))
        .route("/api/v1/locks/release", post(release_lock))
        .route("/api/v1/incidents/{id}/resolve", post(resolve_incident))
        .route("/api/v1/services/{name}/autoheal", post(enable_autoheal))
        .route("/api/v1/changes", get(changes::list).post(changes::record))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{name}/revoke", post(tokens::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .fallback(route_not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Wrong methods → E0405, and any error no handler wrote → its JSON error.
    json_errors(api).with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        // With `ha:`, ready means "acting": a follower (or a leader that lost
        // its lease or its store) says why not.
        if let Some(v) = state.metrics.ha().get() {
            if !v.acting {
                let reason = v.reason.unwrap_or("follower");
                let leader = v.leader.as_deref().unwrap_or("none known");
                return ApiError::new(
                    ErrorCode::NotActing,
                    format!(
                        "{} does not act: {}; leader: {leader}",
                        v.member,
                        reason.replace('_', " ")
                    ),
                )
                .with_reason_code(reason)
                .with_retry_after(1)
                .into_response();
            }
            return Json(serde_json::json!({
                "status": "ok",
                "acting": true,
                "member": v.member,
                "token": v.token,
            }))
            .into_response();
        }
        "ok".into_response()
    } else {
        ApiError::new(ErrorCode::NotReady, "medic is not ready yet")
            .with_retry_after(1)
            .into_response()
    }
}

async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (ct, body) = metrics::negotiate(&state.metrics, accept);
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

pub(crate) type RawQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

pub(crate) fn query_map(q: RawQuery) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
}

/// Parses an optional unsigned integer query parameter within `min..=max`.
fn int_param(
    q: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(raw) => {
            let v: u64 = raw.trim().parse().map_err(|_| {
                ApiError::invalid_field(
                    name,
                    format!("{name} must be an unsigned integer, got {raw:?}"),
                )
            })?;
            if v < min || v > max {
                return Err(ApiError::invalid_field(
                    name,
                    format!("{name} must be between {min} and {max}, got {v}"),
                ));
            }
            Ok(v)
        }
    }
}

pub(crate) fn limit_param(
    q: &HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let v = int_param(q, "limit", u64::from(default), 1, u64::from(max))?;
    // Bounded by `max: u32` above.
    Ok(u32::try_from(v).unwrap_or(max))
}

async fn list_incidents(
    State(state): State<ApiState>,
    q: RawQuery,
) -> Result<Json<IncidentList>, ApiError> {
    let q = query_map(q)?;
    let limit = limit_param(&q, INCIDENTS_DEFAULT_LIMIT, INCIDENTS_MAX_LIMIT)?;
    let incidents = state.store.list_incidents(limit).await?;
    Ok(Json(IncidentList {
        incidents: incidents.into_iter().map(IncidentSummary::from).collect(),
    }))
}

async fn get_incident(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let Path(id) =
        id.map_err(|e| ApiError::invalid_field("id", format!("invalid id: {}", e.body_text())))?;
    match state.store.get_incident(&id).await? {
        Some(r) => {
            let similar = state.store.similar_incidents(&r, 5).await?;
            let mut d = IncidentDetail::from(r);
            d.similar = similar.iter().map(SimilarIncident::from).collect();
            Ok(Json(d))
        }
        None => Err(ApiError::new(
            ErrorCode::IncidentNotFound,
            format!("no incident with id {id:?}"),
        )
        .with_field("id")),
    }
}

async fn list_audit(
    State(state): State<ApiState>,
    q: RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query_map(q)?;
    let after = int_param(&q, "after", 0, 0, i64::MAX as u64)?;
    let limit = limit_param(&q, AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT)?;
    let records = state.store.list_audit(after, limit).await?;
    let next_after = records.last().map(|r| r.seq).unwrap_or(after);
    Ok(Json(AuditPage {
        records: records.into_iter().map(AuditRecordView::from).collect(),
        next_after,
    }))
}

/// Parses a JSON body into `T`, mapping every failure to a JSON API error:
/// wrong content type → E0415, too large → E0413, bad syntax → E0400,
/// wrong shape → E0422 naming the field.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected Content-Type application/json, got {ct:?}"),
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("body exceeds {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(format!("could not read body: {}", e.body_text()))
        }
    })?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| json_error(&e))
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    let field = if path != "." {
        Some(path)
    } else {
        missing_or_unknown_field(&msg)
    };
    match field {
        Some(f) => ApiError::invalid_field(f, format!("invalid JSON body: {msg}")),
        None => ApiError::bad_request(format!("invalid JSON body: {msg}")),
    }
}

/// Extracts `x` from serde messages like "missing field `x`" / "unknown field `x`".
fn missing_or_unknown_field(msg: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = msg.split(prefix).nth(1) {
            if let Some(name) = rest.split('`').next() {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// `GET /api/v1/whoami`: the caller as the API sees it.
async fn whoami(Extension(actor): Extension<Actor>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"name": actor.id, "role": actor.role.as_str()}))
}

/// With `ha:`, operator writes (commands, acknowledgements, test
/// messages) go to the acting leader: elsewhere `E0476 not_leader` naming
/// the leader (and, on an elected member that cannot act, why).
pub fn leader_only(state: &ApiState) -> Result<(), ApiError> {
    let Some(v) = state.metrics.ha().get() else {
        return Ok(());
    };
    if v.token.is_some() {
        return Ok(());
    }
    let leader = v.leader.as_deref().unwrap_or("none elected yet");
    let message = if v.leader.as_deref() == Some(v.member.as_str()) {
        format!(
            "{} is elected but does not act ({}); retry when its /readyz answers 200",
            v.member,
            v.reason.unwrap_or("follower").replace('_', " ")
        )
    } else {
        format!(
            "{} is not the leader; send operator commands to the leader ({leader})",
            v.member
        )
    };
    Err(ApiError::new(ErrorCode::NotLeader, message))
}

/// Middleware form of [`leader_only`] for routes outside this crate.
pub async fn require_leader(
    State(state): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match leader_only(&state) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn operate(
    state: &ApiState,
    actor: Actor,
    cmd: OperatorCommand,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    // With `ha:`, only the leader's engine is the cluster's: a command given
    // to a follower would be lost at the next takeover.
    leader_only(state)?;
    let id = actor.id.clone();
    let ack = control_call(state, |reply| ControlRequest::Operate { actor, cmd, reply })
        .await?
        .map_err(|e| governance::refusal(&e))?;
    Ok(Json(governance::OperatorReply {
        message: ack.message,
        actor: id,
    }))
}

pub(crate) async fn query(
    state: &ApiState,
    query: governance::Query,
) -> Result<governance::QueryAnswer, ApiError> {
    control_call(state, |reply| ControlRequest::Query { query, reply }).await
}

async fn set_mode(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::ModeResponse>, ApiError> {
    let req: governance::ModeRequest = parse_json(&headers, body)?;
    let mode_text = req.mode.trim().to_string();
    let mode: medic_core::Mode = mode_text
        .parse()
        .map_err(|e: medic_core::ParseModeError| ApiError::invalid_field("mode", e.to_string()))?;
    let service = governance::optional("service", req.service.as_ref())?;
    let Json(reply) = operate(
        &state,
        actor,
        OperatorCommand::SetMode {
            service: service.clone(),
            mode,
        },
    )
    .await?;
    Ok(Json(governance::ModeResponse {
        mode: mode.as_str().to_string(),
        service,
        message: reply.message,
        actor: reply.actor,
    }))
}

// ---------------------------------------------------------------- governance

async fn control_call<T>(
    state: &ApiState,
    request: impl FnOnce(oneshot::Sender<T>) -> ControlRequest,
) -> Result<T, ApiError> {
    ask(&state.control, request).await
}

/// Sends a request that carries its reply channel to a loop (the daemon's
/// control loop, its drill loop) and waits for the answer, both within
/// [`CONTROL_TIMEOUT`]: `E0504` when the queue stays full or no answer
/// comes, `E0502` (with `Retry-After`) when the loop is gone.
pub async fn ask<M, T>(
    to: &mpsc::Sender<M>,
    request: impl FnOnce(oneshot::Sender<T>) -> M,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            ErrorCode::ControlUnavailable,
            "the control loop is not running",
        )
        .with_retry_after(1)
    };
    to.send_timeout(request(tx), CONTROL_TIMEOUT)
        .await
        .map_err(|e| match e {
            mpsc::error::SendTimeoutError::Timeout(_) => ApiError::new(
                ErrorCode::ControlTimeout,
                "the control loop's queue is full",
            ),
            mpsc::error::SendTimeoutError::Closed(_) => unavailable(),
        })?;
    tokio::time::timeout(CONTROL_TIMEOUT, rx)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::ControlTimeout,
                format!(
                    "the control loop did not answer within {}s",
                    CONTROL_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|_| unavailable())
}

fn path_param(p: Result<Path<String>, PathRejection>, field: &str) -> Result<String, ApiError> {
    let Path(v) = p.map_err(|e| {
        ApiError::invalid_field(field, format!("invalid {field}: {}", e.body_text()))
    })?;
    governance::required(field, &v)
}

async fn list_approvals(
    State(state): State<ApiState>,
) -> Result<Json<governance::ApprovalList>, ApiError> {
    match query(&state, governance::Query::Approvals).await? {
        governance::QueryAnswer::Approvals {
            approvals,
            pauses,
            mass_paused,
            clock,
        } => Ok(Json(governance::ApprovalList {
            approvals: approvals
                .iter()
                .map(|a| governance::approval_entry(a, &clock))
                .collect(),
            pauses: pauses
                .iter()
                .map(|p| governance::pause_entry(p, &clock))
                .collect(),
            mass_incident_pause: mass_paused,
        })),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

async fn explain(
    State(state): State<ApiState>,
    incident: Result<Path<String>, PathRejection>,
) -> Result<Json<governance::ExplainResponse>, ApiError> {
    let incident = path_param(incident, "incident")?;
    let q = governance::Query::Explain {
        incident: incident.clone(),
    };
    match query(&state, q).await? {
        governance::QueryAnswer::Explain {
            explanation: Some(e),
            clock,
        } => {
            let mut r = governance::explain_response(&e, &clock);
            // The merged services are durable in the store (the engine's
            // memory of a closed incident is not, across a restart).
            if r.merged_services.is_empty() {
                if let Some(rec) = state.store.get_incident(&incident).await? {
                    r.merged_services = rec.merged;
                }
            }
            Ok(Json(r))
        }
        governance::QueryAnswer::Explain {
            explanation: None, ..
        } => Err(ApiError::new(
            ErrorCode::IncidentNotFound,
            format!("no decisions recorded for incident {incident:?}"),
        )
        .with_field("incident")),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

async fn approve(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let id = path_param(id, "id")?;
    let _: governance::EmptyRequest = parse_json(&headers, body)?;
    operate(&state, actor, OperatorCommand::Approve { id }).await
}

async fn reject(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let id = path_param(id, "id")?;
    let req: governance::ReasonRequest = parse_json(&headers, body)?;
    let reason = governance::required("reason", &req.reason)?;
    operate(&state, actor, OperatorCommand::Reject { id, reason }).await
}

async fn pause(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let req: governance::PauseRequest = parse_json(&headers, body)?;
    let cmd = governance::pause_command(&req)?;
    operate(&state, actor, cmd).await
}

async fn resume(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let req: governance::ResumeRequest = parse_json(&headers, body)?;
    let cmd = governance::resume_command(&req)?;
    operate(&state, actor, cmd).await
}

async fn cancel_action(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let raw = path_param(id, "id")?;
    let id = governance::parse_action_id(&raw)?;
    let req: governance::ReasonRequest = parse_json(&headers, body)?;
    let reason = governance::required("reason", &req.reason)?;
    operate(&state, actor, OperatorCommand::CancelAction { id, reason }).await
}

async fn resolve_incident(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let id = path_param(id, "id")?;
    let req: governance::ReasonRequest = parse_json(&headers, body)?;
    let reason = governance::required("reason", &req.reason)?;
    operate(
        &state,
        actor,
        OperatorCommand::ResolveIncident { id, reason },
    )
    .await
}

async fn enable_autoheal(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let service = path_param(name, "name")?;
    let _: governance::EmptyRequest = parse_json(&headers, body)?;
    operate(&state, actor, OperatorCommand::EnableAutoheal { service }).await
}

async fn list_locks(
    State(state): State<ApiState>,
) -> Result<Json<governance::LocksResponse>, ApiError> {
    match query(&state, governance::Query::Locks).await? {
        governance::QueryAnswer::Locks {
            held,
            waiting,
            clock,
        } => Ok(Json(governance::locks_response(&held, &waiting, &clock))),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

async fn release_lock(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let req: governance::ReleaseLockRequest = parse_json(&headers, body)?;
    let cmd = governance::release_lock_command(&req)?;
    operate(&state, actor, cmd).await
}

async fn force_action(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<governance::OperatorReply>, ApiError> {
    let req: governance::ForceRequest = parse_json(&headers, body)?;
    let cmd = governance::force_command(&req)?;
    operate(&state, actor, cmd).await
}
