//! `POST /api/v1/changes` (issue 9): an operator or a CI pipeline records a
//! change on a service (a deploy, a config change), which the daemon keeps as
//! evidence for the root-cause diagnosis (`error_spike_after_change`) and
//! audits as `change.recorded`.
//!
//! The body is validated here, field by field (`E0422` naming the field); the
//! daemon checks the service exists (`E0482 service_not_found` otherwise).
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use medic_core::Actor;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::{ApiState, ControlRequest};

/// Most audit records (the newest) searched for recorded changes, by
/// `GET /api/v1/changes` and by the daemon reading them back.
pub const AUDIT_SCAN: u64 = 2000;
/// `GET /api/v1/changes`: default and largest `limit`.
pub const LIST_DEFAULT_LIMIT: u32 = 50;
pub const LIST_MAX_LIMIT: u32 = 500;

/// Longest accepted `version` (characters).
pub const MAX_VERSION_CHARS: usize = 128;
/// Longest accepted `note` (characters).
pub const MAX_NOTE_CHARS: usize = 1024;

/// `POST /api/v1/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub service: String,
    /// `deploy` or `config`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What changed on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Deploy,
    Config,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deploy => "deploy",
            ChangeKind::Config => "config",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        match s.trim() {
            "deploy" => Some(ChangeKind::Deploy),
            "config" => Some(ChangeKind::Config),
            _ => None,
        }
    }
}

/// A validated change, as the daemon receives it (`by` is the token's name,
/// never the body's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub kind: ChangeKind,
    pub version: Option<String>,
    pub note: Option<String>,
    pub by: String,
}

/// The daemon's refusal of a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefusal {
    #[error("no service named {0:?} in the config")]
    UnknownService(String),
}

/// Answer of `POST /api/v1/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReply {
    pub service: String,
    pub kind: String,
    pub version: Option<String>,
    pub by: String,
    /// Whether the root-cause diagnosis uses it (false without `depends_on`).
    pub diagnosis: bool,
    pub message: String,
}

fn optional_text(field: &str, v: Option<&String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let t = v.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(Some(t.to_string()))
}

/// Validates the body: `service` non-empty, `kind` `deploy` or `config`,
/// `version` at most [`MAX_VERSION_CHARS`], `note` at most [`MAX_NOTE_CHARS`]
/// (no control characters; empty counts as absent).
pub fn change_from(req: &ChangeRequest, by: &str) -> Result<Change, ApiError> {
    let service = crate::governance::required("service", &req.service)?;
    let kind = ChangeKind::parse(&req.kind).ok_or_else(|| {
        ApiError::invalid_field(
            "kind",
            format!("unknown kind {:?} (expected deploy or config)", req.kind),
        )
    })?;
    Ok(Change {
        service,
        kind,
        version: optional_text("version", req.version.as_ref(), MAX_VERSION_CHARS)?,
        note: optional_text("note", req.note.as_ref(), MAX_NOTE_CHARS)?,
        by: by.to_string(),
    })
}

/// The refusal as an API error.
pub fn refusal(e: &ChangeRefusal) -> ApiError {
    match e {
        ChangeRefusal::UnknownService(_) => {
            ApiError::new(ErrorCode::ServiceNotFound, e.to_string()).with_field("service")
        }
    }
}

pub(crate) async fn record(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ChangeReply>, ApiError> {
    let req: ChangeRequest = crate::parse_json(&headers, body)?;
    let change = change_from(&req, &actor.id)?;
    // Evidence for the leader's diagnosis, audited by the leader.
    crate::leader_only(&state)?;
    let reply = crate::ask(&state.control, |reply| ControlRequest::RecordChange {
        change,
        reply,
    })
    .await?
    .map_err(|e| refusal(&e))?;
    Ok(Json(reply))
}

/// One recorded change (a `change.recorded` audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    pub service: String,
    pub kind: String,
    pub version: Option<String>,
    pub note: Option<String>,
    pub by: String,
    /// When it was recorded (RFC 3339, the audit record's time).
    pub at: String,
}

/// `GET /api/v1/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeList {
    /// Newest first.
    pub changes: Vec<ChangeView>,
}

/// The change an audit record holds; `None` for another kind or a payload
/// that does not parse.
pub fn change_of_record(rec: &medic_store::AuditRecord) -> Option<ChangeView> {
    if rec.kind != "change.recorded" {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&rec.payload).ok()?;
    let text = |k: &str| v[k].as_str().map(String::from);
    Some(ChangeView {
        service: text("service")?,
        kind: text("kind")?,
        version: text("version"),
        note: text("note"),
        by: text("by")?,
        at: rec.ts.clone(),
    })
}

/// The changes among the audit's last [`AUDIT_SCAN`] records, newest first,
/// of `service` when given, at most `limit`.
pub async fn recent(
    store: &medic_store::Store,
    service: Option<&str>,
    limit: usize,
) -> Result<Vec<ChangeView>, medic_store::StoreError> {
    let (tip, _) = store.audit_tip().await;
    let records = store
        .list_audit(
            tip.saturating_sub(AUDIT_SCAN),
            u32::try_from(AUDIT_SCAN).unwrap_or(u32::MAX),
        )
        .await?;
    Ok(records
        .iter()
        .rev()
        .filter_map(change_of_record)
        .filter(|c| service.is_none_or(|s| c.service == s))
        .take(limit)
        .collect())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    q: crate::RawQuery,
) -> Result<Json<ChangeList>, ApiError> {
    let q = crate::query_map(q)?;
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "service" | "limit"))
    {
        return Err(ApiError::invalid_field(
            k,
            format!("unknown query parameter {k:?} (expected service, limit)"),
        ));
    }
    let limit = crate::limit_param(&q, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)?;
    let service = match q.get("service") {
        Some(s) => Some(crate::governance::required("service", s)?),
        None => None,
    };
    let changes = recent(
        &state.store,
        service.as_deref(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await?;
    Ok(Json(ChangeList { changes }))
}
