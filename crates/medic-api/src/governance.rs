//! Governance endpoints: approvals, pause/resume, explain, cancel, override.
//!
//! The handlers turn each request into a [`GovernanceOp`] and send it to the
//! daemon as [`crate::ControlRequest::Governance`]. The daemon, which owns the
//! engine, answers with [`apply`] and then drains the engine's commands as
//! after any input:
//!
//! ```text
//! ControlRequest::Governance { op, reply } => {
//!     let r = medic_api::governance::apply(&mut engine, clock.now(), op);
//!     drain(&mut engine).await; // audit, actions, notifications
//!     let _ = reply.send(r);
//! }
//! ```
//!
//! Every refusal carries the engine's machine-readable reason code at the
//! start of the message (`approval_not_found: …`, `same_approver: …`).
use std::time::Duration;

use medic_core::{
    ActionId, ActionKind, ApprovalView, DecisionRecord, Engine, Explanation, Input, MonoTime,
    OperatorCommand, OperatorResult, PauseView,
};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// One governance request from the API to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovernanceOp {
    /// `GET /api/v1/approvals`.
    ListApprovals,
    /// `POST /api/v1/approvals/{id}/approve`.
    Approve { id: String, by: String },
    /// `POST /api/v1/approvals/{id}/reject`.
    Reject {
        id: String,
        by: String,
        reason: String,
    },
    /// `POST /api/v1/pause`.
    Pause {
        service: Option<String>,
        kind: Option<ActionKind>,
        duration: Option<Duration>,
        by: String,
        reason: String,
    },
    /// `POST /api/v1/resume`.
    Resume {
        service: Option<String>,
        kind: Option<ActionKind>,
        by: String,
    },
    /// `GET /api/v1/explain/{incident}`.
    Explain { incident: String },
    /// `POST /api/v1/actions/{id}/cancel`.
    Cancel {
        action_id: u64,
        by: String,
        reason: String,
    },
    /// `POST /api/v1/actions/force`.
    Force {
        service: String,
        action: String,
        by: String,
        reason: String,
    },
    /// `POST /api/v1/incidents/{id}/resolve`.
    Resolve {
        incident: String,
        by: String,
        reason: String,
    },
    /// `POST /api/v1/services/{name}/autoheal`: re-enable automation for a
    /// service after it was disabled by consecutive failures.
    EnableAutoheal { service: String, by: String },
}

/// An approval on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    pub id: String,
    pub incident: String,
    pub service: String,
    pub action: String,
    pub risk: String,
    pub score: f64,
    /// Why a human is needed: `critical_risk`, `risk_tier` or `risk_score`.
    pub reason_code: String,
    pub reason: String,
    pub required: u32,
    pub approvers: Vec<String>,
    pub requested_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A pause on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseEntry {
    pub service: Option<String>,
    pub kind: Option<String>,
    pub until_ms: Option<u64>,
    pub by: String,
    pub reason: String,
}

/// `GET /api/v1/approvals`: pending approvals and the automation state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalEntry>,
    pub pauses: Vec<PauseEntry>,
    /// Automation latched off after a mass incident (lifted by a full resume).
    pub mass_incident_pause: bool,
}

/// One decision on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEntry {
    pub at_ms: u64,
    pub action: String,
    pub stage: String,
    pub risk: String,
    pub score: f64,
    pub verdict: String,
    pub reason_code: Option<String>,
    pub reason: String,
}

/// `GET /api/v1/explain/{incident}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainResponse {
    pub incident: String,
    pub service: String,
    pub phase: String,
    pub outcome: Option<String>,
    pub decisions: Vec<DecisionEntry>,
    pub pending_approval: Option<ApprovalEntry>,
}

/// Answer of the governance POST routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorReply {
    pub message: String,
}

impl From<&ApprovalView> for ApprovalEntry {
    fn from(a: &ApprovalView) -> Self {
        ApprovalEntry {
            id: a.id.clone(),
            incident: a.incident.0.clone(),
            service: a.service.clone(),
            action: a.action.clone(),
            risk: a.risk.as_str().to_string(),
            score: a.score,
            reason_code: a.reason_code.to_string(),
            reason: a.reason.clone(),
            required: a.required,
            approvers: a.approvers.clone(),
            requested_at_ms: a.requested_at.0,
            expires_at_ms: a.expires_at.0,
        }
    }
}

impl From<&PauseView> for PauseEntry {
    fn from(p: &PauseView) -> Self {
        PauseEntry {
            service: p.service.clone(),
            kind: p.kind.map(|k| k.as_str().to_string()),
            until_ms: p.until.map(|t| t.0),
            by: p.by.clone(),
            reason: p.reason.clone(),
        }
    }
}

impl From<&DecisionRecord> for DecisionEntry {
    fn from(d: &DecisionRecord) -> Self {
        DecisionEntry {
            at_ms: d.at.0,
            action: d.action.clone(),
            stage: d.stage.as_str().to_string(),
            risk: d.risk.as_str().to_string(),
            score: d.score,
            verdict: d.verdict.to_string(),
            reason_code: d.reason_code.map(str::to_string),
            reason: d.reason.clone(),
        }
    }
}

impl From<&Explanation> for ExplainResponse {
    fn from(e: &Explanation) -> Self {
        ExplainResponse {
            incident: e.incident.0.clone(),
            service: e.service.clone(),
            phase: e.phase.as_str().to_string(),
            outcome: e.outcome.map(str::to_string),
            decisions: e.decisions.iter().map(DecisionEntry::from).collect(),
            pending_approval: e.pending_approval.as_ref().map(ApprovalEntry::from),
        }
    }
}

/// Parses an action kind filter (`restart`, `exec`, `http`; `*` or empty = all).
pub fn parse_kind(s: &str) -> Result<Option<ActionKind>, ApiError> {
    match s.trim() {
        "" | "*" => Ok(None),
        "restart" => Ok(Some(ActionKind::Restart)),
        "exec" => Ok(Some(ActionKind::Exec)),
        "http" => Ok(Some(ActionKind::Http)),
        other => Err(ApiError::invalid_field(
            "kind",
            format!("unknown action kind {other:?} (expected restart, exec or http)"),
        )),
    }
}

/// Maps the engine's refusal codes to API errors.
fn rejected(code: &str, message: &str) -> ApiError {
    let msg = format!("{code}: {message}");
    match code {
        "approval_not_found" | "incident_not_open" | "action_not_running" | "same_approver"
        | "target_busy" => ApiError::new(ErrorCode::Conflict, msg),
        "unknown_service" => ApiError::invalid_field("service", msg),
        "unknown_action" => ApiError::invalid_field("action", msg),
        "reason_required" => ApiError::invalid_field("reason", msg),
        _ => ApiError::new(ErrorCode::Conflict, msg),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// Apply `op` to the daemon's engine at `now`. Mutations go through
/// [`Engine::handle_input`]; the caller must drain the engine's commands
/// afterwards, exactly as after any other input.
pub fn apply(
    engine: &mut Engine,
    now: MonoTime,
    op: GovernanceOp,
) -> Result<serde_json::Value, ApiError> {
    let cmd = match op {
        GovernanceOp::ListApprovals => {
            return to_json(&ApprovalList {
                approvals: engine
                    .pending_approvals()
                    .iter()
                    .map(ApprovalEntry::from)
                    .collect(),
                pauses: engine.pauses().iter().map(PauseEntry::from).collect(),
                mass_incident_pause: engine.mass_paused(),
            })
        }
        GovernanceOp::Explain { incident } => {
            return match engine.explain(&incident) {
                Some(e) => to_json(&ExplainResponse::from(&e)),
                None => Err(ApiError::new(
                    ErrorCode::IncidentNotFound,
                    format!("no decisions recorded for incident {incident:?}"),
                )
                .with_field("incident")),
            }
        }
        GovernanceOp::Approve { id, by } => OperatorCommand::Approve { id, by },
        GovernanceOp::Reject { id, by, reason } => OperatorCommand::Reject { id, by, reason },
        GovernanceOp::Pause {
            service,
            kind,
            duration,
            by,
            reason,
        } => OperatorCommand::Pause {
            service,
            kind,
            duration,
            by,
            reason,
        },
        GovernanceOp::Resume { service, kind, by } => OperatorCommand::Resume { service, kind, by },
        GovernanceOp::Cancel {
            action_id,
            by,
            reason,
        } => OperatorCommand::CancelAction {
            id: ActionId(action_id),
            by,
            reason,
        },
        GovernanceOp::Force {
            service,
            action,
            by,
            reason,
        } => OperatorCommand::ForceAction {
            service,
            action,
            by,
            reason,
        },
        GovernanceOp::Resolve {
            incident,
            by,
            reason,
        } => OperatorCommand::ResolveIncident {
            id: incident,
            by,
            reason,
        },
        GovernanceOp::EnableAutoheal { service, by } => {
            OperatorCommand::EnableAutoheal { service, by }
        }
    };
    engine.handle_input(now, Input::Operator(cmd));
    match engine.last_operator_result() {
        Some(OperatorResult::Ok(message)) => to_json(&OperatorReply {
            message: message.clone(),
        }),
        Some(OperatorResult::Rejected { code, message }) => Err(rejected(code, message)),
        None => Err(ApiError::internal("the engine gave no answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!(parse_kind("*").ok(), Some(None));
        assert_eq!(parse_kind("restart").ok(), Some(Some(ActionKind::Restart)));
        assert!(parse_kind("reboot").is_err());
    }

    #[test]
    fn refusals_keep_the_engine_code() {
        let e = rejected("same_approver", "alice already approved");
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.starts_with("same_approver: "));
        assert_eq!(
            rejected("reason_required", "x").field.as_deref(),
            Some("reason")
        );
    }
}
