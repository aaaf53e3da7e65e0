//! medic's own HTTP API. This is the only crate that knows HTTP and the JSON
//! wire types; the daemon talks to it through [`ApiState`] and
//! [`ControlRequest`].
//!
//! # Routes
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok` (text) while the process serves |
//! | `GET /readyz` | `200 ok` when [`ApiState::ready`] is set, else `503` `E0503 not_ready` with `Retry-After: 1` |
//! | `GET /metrics` | OpenMetrics text from [`Metrics`] |
//! | `GET /api/v1/incidents?limit=N` | [`IncidentList`], newest first; `limit` 1–500, default 50 |
//! | `GET /api/v1/incidents/{id}` | [`IncidentDetail`] with its timeline; `404` `E0404 incident_not_found` |
//! | `GET /api/v1/audit?after=SEQ&limit=N` | [`AuditPage`]: records with `seq > after`, ascending; `limit` 1–1000, default 100 |
//! | `POST /api/v1/mode` | body [`ModeRequest`] (`application/json`), forwarded as [`ControlRequest::SetMode`]; answers [`ModeResponse`] or the daemon's [`ApiError`] |
//! | `GET /api/v1/approvals` | [`governance::ApprovalList`]: pending approvals (with reason codes), pauses, mass-incident latch |
//! | `POST /api/v1/approvals/{id}/approve` | body [`ApproveRequest`]; [`governance::OperatorReply`]; `E0409` with `approval_not_found:`/`same_approver:` |
//! | `POST /api/v1/approvals/{id}/reject` | body [`RejectRequest`]; [`governance::OperatorReply`] |
//! | `POST /api/v1/pause` | body [`PauseRequest`] (all fields optional); [`governance::OperatorReply`] |
//! | `POST /api/v1/resume` | body [`ResumeRequest`]; an empty scope lifts every pause and the mass-incident latch |
//! | `GET /api/v1/explain/{incident}` | [`governance::ExplainResponse`]: every decision with verdict and `reason_code`; `E0404` when unknown |
//! | `POST /api/v1/actions/{id}/cancel` | body [`CancelRequest`]; asks the executor to cancel a running action |
//! | `POST /api/v1/actions/force` | body [`ForceRequest`]; runs an action past the gates (reason mandatory, audited as an override) |
//!
//! The governance routes are forwarded as [`ControlRequest::Governance`];
//! the daemon answers with [`governance::apply`].
//!
//! Every error is JSON, see [`error`] and [`CODES`]. Unknown routes give
//! `E0401 route_not_found`, wrong methods `E0405 method_not_allowed`, and the
//! errors no handler writes (body over the limit, unreadable body, ...) are
//! mapped to the table by [`json_errors()`], which routers merged into this
//! one (e.g. the Alertmanager receiver) apply to themselves too.

pub mod error;
pub mod governance;
pub mod json_errors;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

pub use error::{ApiError, CodeInfo, ErrorBody, ErrorCode, ErrorDetail, CODES};
pub use json_errors::json_errors;
use json_errors::route_not_found;

/// Content type of `GET /metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long `POST /api/v1/mode` waits for the daemon's reply.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

const INCIDENTS_DEFAULT_LIMIT: u32 = 50;
const INCIDENTS_MAX_LIMIT: u32 = 500;
const AUDIT_DEFAULT_LIMIT: u32 = 100;
const AUDIT_MAX_LIMIT: u32 = 1000;

// ---------------------------------------------------------------- metrics

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    reason: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    service: String,
    probe: String,
}

/// medic's Prometheus metrics, backed by a prometheus-client [`Registry`].
pub struct Metrics {
    registry: Registry,
    actions: Family<ActionLabels, Counter>,
    incidents: Counter,
    probe_failures: Family<ProbeLabels, Counter>,
    audit: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with medic's metrics.
    pub fn new() -> Self {
        Metrics::with_registry(Registry::default())
    }

    /// Adds medic's metrics to `registry` (which may already hold others).
    pub fn with_registry(mut registry: Registry) -> Self {
        let actions = Family::<ActionLabels, Counter>::default();
        let incidents = Counter::default();
        let probe_failures = Family::<ProbeLabels, Counter>::default();
        let audit = Counter::default();
        registry.register(
            "medic_actions",
            "Remediation actions, by action, reason and outcome",
            actions.clone(),
        );
        registry.register("medic_incidents", "Incidents opened", incidents.clone());
        registry.register(
            "medic_probe_failures",
            "Failed probes, by service and probe",
            probe_failures.clone(),
        );
        registry.register(
            "medic_audit_records",
            "Audit records appended",
            audit.clone(),
        );
        Metrics {
            registry,
            actions,
            incidents,
            probe_failures,
            audit,
        }
    }

    /// `medic_actions_total{action,reason,outcome}` += 1.
    pub fn inc_action(&self, action: &str, reason: &str, outcome: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                reason: reason.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `medic_incidents_total` += 1.
    pub fn inc_incident(&self) {
        self.incidents.inc();
    }

    /// `medic_probe_failures_total{service,probe}` += 1.
    pub fn inc_probe_failure(&self, service: &str, probe: &str) {
        self.probe_failures
            .get_or_create(&ProbeLabels {
                service: service.to_string(),
                probe: probe.to_string(),
            })
            .inc();
    }

    /// `medic_audit_records_total` += 1.
    pub fn inc_audit(&self) {
        self.audit.inc();
    }

    /// The registry, e.g. for encoding elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// OpenMetrics text of every metric in the registry (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only
        // truncate the output, which is better than panicking.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

// ---------------------------------------------------------------- state

/// Requests from the API to the daemon's control loop, which owns the receiver.
#[derive(Debug)]
pub enum ControlRequest {
    /// Change the healing mode (e.g. `"dry-run"`) globally (`service: None`)
    /// or for one service. The reply's `Ok` text is returned to the client as
    /// [`ModeResponse::message`].
    SetMode {
        service: Option<String>,
        mode: String,
        reply: oneshot::Sender<Result<String, ApiError>>,
    },
    /// Approvals, pauses, explain, cancel and override. The daemon answers
    /// with [`governance::apply`] on its engine (then drains the engine's
    /// commands) and sends the JSON value back.
    Governance {
        op: governance::GovernanceOp,
        reply: oneshot::Sender<Result<serde_json::Value, ApiError>>,
    },
}

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: medic_store::Store,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub control: mpsc::Sender<ControlRequest>,
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

/// Body of `POST /api/v1/mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    pub mode: String,
    #[serde(default)]
    pub service: Option<String>,
}

/// Answer of `POST /api/v1/mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeResponse {
    pub mode: String,
    pub service: Option<String>,
    pub message: String,
}

/// Body of `POST /api/v1/approvals/{id}/approve`. `by` is audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub by: String,
}

/// Body of `POST /api/v1/approvals/{id}/reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    pub by: String,
    pub reason: String,
}

/// Body of `POST /api/v1/pause`: scope (service, action kind) and duration;
/// absent fields mean "all" and "until resumed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub duration_s: Option<u64>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `POST /api/v1/resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// Body of `POST /api/v1/actions/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/v1/actions/force`. `reason` is mandatory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    pub service: String,
    pub action: String,
    pub by: String,
    pub reason: String,
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
        .route("/api/v1/incidents/{id}/resolve", post(resolve_incident))
        .route("/api/v1/services/{name}/autoheal", post(enable_autoheal))
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
        "ok".into_response()
    } else {
        ApiError::new(ErrorCode::NotReady, "medic is not ready yet")
            .with_retry_after(1)
            .into_response()
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

type RawQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query_map(q: RawQuery) -> Result<HashMap<String, String>, ApiError> {
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

fn limit_param(q: &HashMap<String, String>, default: u32, max: u32) -> Result<u32, ApiError> {
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
        Some(r) => Ok(Json(IncidentDetail::from(r))),
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
fn parse_json<T: serde::de::DeserializeOwned>(
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

async fn set_mode(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ModeResponse>, ApiError> {
    let req: ModeRequest = parse_json(&headers, body)?;
    let mode = req.mode.trim().to_string();
    if mode.is_empty() || mode.len() > 64 {
        return Err(ApiError::invalid_field(
            "mode",
            "mode must be a non-empty string of at most 64 bytes",
        ));
    }
    if let Some(s) = &req.service {
        if s.trim().is_empty() {
            return Err(ApiError::invalid_field(
                "service",
                "service must be null or a non-empty string",
            ));
        }
    }
    let service = req.service.clone();
    let mode_sent = mode.clone();
    let message = control_call(&state, move |reply| ControlRequest::SetMode {
        service,
        mode: mode_sent,
        reply,
    })
    .await?;
    Ok(Json(ModeResponse {
        mode,
        service: req.service,
        message,
    }))
}

// ---------------------------------------------------------------- governance

async fn governance_call(
    state: &ApiState,
    op: governance::GovernanceOp,
) -> Result<Json<serde_json::Value>, ApiError> {
    control_call(state, |reply| ControlRequest::Governance { op, reply })
        .await
        .map(Json)
}

/// Send one request to the daemon's control loop and wait for its answer,
/// both bounded by [`CONTROL_TIMEOUT`].
async fn control_call<T>(
    state: &ApiState,
    request: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> ControlRequest,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            ErrorCode::ControlUnavailable,
            "the control loop is not running",
        )
        .with_retry_after(1)
    };
    state
        .control
        .send_timeout(request(tx), CONTROL_TIMEOUT)
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
        .map_err(|_| unavailable())?
}

fn required(field: &str, v: &str) -> Result<String, ApiError> {
    let t = v.trim();
    if t.is_empty() || t.len() > 256 {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be a non-empty string of at most 256 bytes"),
        ));
    }
    Ok(t.to_string())
}

fn optional(field: &str, v: Option<&String>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => required(field, s).map(Some),
    }
}

fn path_param(p: Result<Path<String>, PathRejection>, field: &str) -> Result<String, ApiError> {
    let Path(v) = p.map_err(|e| {
        ApiError::invalid_field(field, format!("invalid {field}: {}", e.body_text()))
    })?;
    required(field, &v)
}

async fn list_approvals(
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    governance_call(&state, governance::GovernanceOp::ListApprovals).await
}

async fn approve(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_param(id, "id")?;
    let req: ApproveRequest = parse_json(&headers, body)?;
    let by = required("by", &req.by)?;
    governance_call(&state, governance::GovernanceOp::Approve { id, by }).await
}

async fn reject(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_param(id, "id")?;
    let req: RejectRequest = parse_json(&headers, body)?;
    let by = required("by", &req.by)?;
    let reason = required("reason", &req.reason)?;
    governance_call(&state, governance::GovernanceOp::Reject { id, by, reason }).await
}

async fn pause(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: PauseRequest = parse_json(&headers, body)?;
    let op = governance::GovernanceOp::Pause {
        service: optional("service", req.service.as_ref())?,
        kind: governance::parse_kind(req.kind.as_deref().unwrap_or(""))?,
        duration: match req.duration_s {
            Some(0) => {
                return Err(ApiError::invalid_field(
                    "duration_s",
                    "duration_s must be positive (omit it to pause until resumed)",
                ))
            }
            d => d.map(Duration::from_secs),
        },
        by: optional("by", req.by.as_ref())?.unwrap_or_else(|| "api".into()),
        reason: optional("reason", req.reason.as_ref())?.unwrap_or_default(),
    };
    governance_call(&state, op).await
}

async fn resume(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: ResumeRequest = parse_json(&headers, body)?;
    let op = governance::GovernanceOp::Resume {
        service: optional("service", req.service.as_ref())?,
        kind: governance::parse_kind(req.kind.as_deref().unwrap_or(""))?,
        by: optional("by", req.by.as_ref())?.unwrap_or_else(|| "api".into()),
    };
    governance_call(&state, op).await
}

async fn explain(
    State(state): State<ApiState>,
    incident: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let incident = path_param(incident, "incident")?;
    governance_call(&state, governance::GovernanceOp::Explain { incident }).await
}

async fn cancel_action(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = path_param(id, "id")?;
    let action_id: u64 = raw
        .strip_prefix("act-")
        .unwrap_or(&raw)
        .parse()
        .map_err(|_| ApiError::invalid_field("id", format!("invalid action id {raw:?}")))?;
    let req: CancelRequest = parse_json(&headers, body)?;
    let by = required("by", &req.by)?;
    governance_call(
        &state,
        governance::GovernanceOp::Cancel {
            action_id,
            by,
            reason: req.reason.trim().to_string(),
        },
    )
    .await
}

async fn resolve_incident(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let incident = path_param(id, "id")?;
    let req: RejectRequest = parse_json(&headers, body)?;
    let op = governance::GovernanceOp::Resolve {
        incident,
        by: required("by", &req.by)?,
        reason: required("reason", &req.reason)?,
    };
    governance_call(&state, op).await
}

async fn enable_autoheal(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let service = path_param(name, "name")?;
    let req: ApproveRequest = parse_json(&headers, body)?;
    let op = governance::GovernanceOp::EnableAutoheal {
        service,
        by: required("by", &req.by)?,
    };
    governance_call(&state, op).await
}

async fn force_action(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: ForceRequest = parse_json(&headers, body)?;
    let op = governance::GovernanceOp::Force {
        service: required("service", &req.service)?,
        action: required("action", &req.action)?,
        by: required("by", &req.by)?,
        reason: required("reason", &req.reason)?,
    };
    governance_call(&state, op).await
}
