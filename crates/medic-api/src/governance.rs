//! Operator routes: the one set of request/response types (the CLI uses them
//! too), their conversion to the core's [`OperatorCommand`], and the mapping
//! of the engine's answers to HTTP.
//!
//! The API never touches the engine. A handler builds an [`OperatorCommand`]
//! and sends it with the [`Actor`] established at the edge as
//! [`crate::ControlRequest::Operate`]; the daemon, which owns the engine,
//! calls `Engine::operate(now, &actor, cmd)` and sends back its
//! `Result<Ack, OperatorError>`. Reads go as [`crate::ControlRequest::Query`]
//! and come back as the core's views, converted here to wire types.
//!
//! Refusals are mapped by [`OperatorError`]'s variant, never by its text.
use std::time::Duration;

use medic_core::{
    ActionId, ActionKind, ApprovalView, DecisionRecord, Explanation, MonoTime, OperatorCommand,
    OperatorError, PauseView,
};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

// ------------------------------------------------------------- requests

/// `POST /api/v1/mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    pub mode: String,
    #[serde(default)]
    pub service: Option<String>,
}

/// `POST /api/v1/approvals/{id}/approve` and
/// `POST /api/v1/services/{name}/autoheal` (empty object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `POST /api/v1/approvals/{id}/reject`, `POST /api/v1/incidents/{id}/resolve`,
/// `POST /api/v1/actions/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// `POST /api/v1/pause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    #[serde(default)]
    pub service: Option<String>,
    /// Action kind (`restart`, `exec`, `http`); absent or `*` = every kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Absent: until resumed.
    #[serde(default)]
    pub duration_s: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// `POST /api/v1/locks/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLockRequest {
    /// `scope:target`, e.g. `service:web`.
    pub key: String,
    pub reason: String,
}

/// A held lock on the wire (`GET /api/v1/locks`). Times are RFC 3339, or
/// null without a wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    pub key: String,
    pub holder: String,
    pub acquired: Option<String>,
    pub expires: Option<String>,
    /// Services the holder's action affects.
    pub radius: Vec<String>,
}

/// A request waiting for locks, in queue order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWaiter {
    pub holder: String,
    pub keys: Vec<String>,
    pub since: Option<String>,
}

/// `GET /api/v1/locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocksResponse {
    pub locks: Vec<LockEntry>,
    pub waiting: Vec<LockWaiter>,
}

/// The engine's lock table on the wire.
pub fn locks_response(
    held: &[medic_core::Lock],
    waiting: &[(medic_core::LockRequest, MonoTime)],
    clock: &WallSync,
) -> LocksResponse {
    LocksResponse {
        locks: held
            .iter()
            .map(|l| LockEntry {
                key: l.key.to_string(),
                holder: l.holder.clone(),
                acquired: clock.rfc3339(l.acquired),
                expires: clock.rfc3339(l.expires),
                radius: l.radius.clone(),
            })
            .collect(),
        waiting: waiting
            .iter()
            .map(|(r, since)| LockWaiter {
                holder: r.holder.clone(),
                keys: r.keys.iter().map(|k| k.to_string()).collect(),
                since: clock.rfc3339(*since),
            })
            .collect(),
    }
}

/// `POST /api/v1/locks/release` → command.
pub fn release_lock_command(req: &ReleaseLockRequest) -> Result<OperatorCommand, ApiError> {
    let raw = required("key", &req.key)?;
    let key = medic_core::LockKey::parse(&raw).ok_or_else(|| {
        ApiError::invalid_field(
            "key",
            format!("invalid lock key {raw:?} (expected scope:target, scope one of system, service, incident, deployment)"),
        )
    })?;
    Ok(OperatorCommand::ReleaseLock {
        key,
        reason: required("reason", &req.reason)?,
    })
}

/// `POST /api/v1/actions/force`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    pub service: String,
    pub action: String,
    pub reason: String,
}

// ------------------------------------------------------------- responses

/// Answer of every operator POST route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorReply {
    pub message: String,
    /// Who the command was recorded as.
    pub actor: String,
}

/// `POST /api/v1/mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeResponse {
    pub mode: String,
    pub service: Option<String>,
    pub message: String,
    pub actor: String,
}

/// An approval on the wire. Times are RFC 3339 (UTC), or null when medic
/// has no wall clock yet.
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
    pub requested_at: Option<String>,
    pub expires_at: Option<String>,
}

/// A pause on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseEntry {
    pub service: Option<String>,
    pub kind: Option<String>,
    /// RFC 3339 end; null = until resumed.
    pub until: Option<String>,
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
    pub at: Option<String>,
    pub action: String,
    pub stage: String,
    pub risk: String,
    pub score: f64,
    pub verdict: String,
    pub reason_code: Option<String>,
    /// The freeze window in force, for a `frozen` decision.
    pub window: Option<String>,
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
    /// Ranked root-cause hypotheses (issue 9), best first.
    #[serde(default)]
    pub hypotheses: Vec<HypothesisEntry>,
    /// Services whose incidents were merged into this one: victims of this
    /// incident's service, the diagnosed upstream cause (issue 9).
    #[serde(default)]
    pub merged_services: Vec<String>,
    /// The canary judge's verdicts (issue 10), oldest first.
    #[serde(default)]
    pub canary: Vec<CanaryEntry>,
}

/// One judged stage of a staged canary in `explain` (issue 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryEntry {
    pub at: Option<String>,
    pub action: String,
    pub stage: u32,
    pub percent: u8,
    /// `pass`, `marginal` or `fail`.
    pub outcome: String,
    /// Share of metrics that passed.
    pub score: f64,
    pub explanation: String,
    pub canary: Vec<String>,
    pub baseline: Vec<String>,
    pub metrics: Vec<CanaryMetricEntry>,
}

/// One metric of a canary verdict. Numbers that could not be computed (too
/// few samples) or are infinite are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryMetricEntry {
    pub metric: String,
    pub outcome: String,
    /// `too_few_canary_samples`, `too_few_baseline_samples`, `worse`,
    /// `spread_increase`.
    pub fail: Option<String>,
    pub n_canary: usize,
    pub n_baseline: usize,
    pub dropped: usize,
    /// Mann-Whitney U of the canary.
    pub u: Option<f64>,
    pub p_value: Option<f64>,
    /// `exact`, `normal` or `none`.
    pub method: String,
    pub effect_measure: String,
    pub effect: Option<f64>,
    pub allowed_effect: Option<f64>,
    pub spread_ratio: Option<f64>,
    pub spread_p_value: Option<f64>,
    pub spread_failed: bool,
    pub explanation: String,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

pub fn canary_entry(c: &medic_core::CanaryRecord, clock: &WallSync) -> CanaryEntry {
    CanaryEntry {
        at: clock.rfc3339(c.at),
        action: c.action.clone(),
        stage: c.stage,
        percent: c.percent,
        outcome: c.verdict.outcome.as_str().to_string(),
        score: c.verdict.score,
        explanation: c.verdict.explanation.clone(),
        canary: c.canary.clone(),
        baseline: c.baseline.clone(),
        metrics: c
            .verdict
            .metrics
            .iter()
            .map(|m| CanaryMetricEntry {
                metric: m.metric.clone(),
                outcome: m.outcome.as_str().to_string(),
                fail: m.fail.map(|f| f.as_str().to_string()),
                n_canary: m.n_canary,
                n_baseline: m.n_baseline,
                dropped: m.dropped,
                u: finite(m.test.u),
                p_value: finite(m.test.p_value),
                method: m.test.method.as_str().to_string(),
                effect_measure: m.effect_measure.as_str().to_string(),
                effect: finite(m.effect),
                allowed_effect: finite(m.allowed_effect),
                spread_ratio: finite(m.spread.ratio),
                spread_p_value: finite(m.spread.p_value),
                spread_failed: m.spread.failed,
                explanation: m.explanation.clone(),
            })
            .collect(),
    }
}

/// The pattern of a hypothesis the optional AI endpoint suggested.
pub const AI_SUGGESTED: &str = "ai_suggested";

/// One ranked hypothesis in `explain` (issue 9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypothesisEntry {
    pub rank: u32,
    pub service: String,
    pub signal: String,
    pub pattern: String,
    /// 0–100 = 100 · prior · evidence · learned.
    pub confidence: u8,
    pub prior: f64,
    pub evidence: f64,
    pub learned: f64,
    /// The autonomy band the confidence falls in (the configured bands).
    pub band: String,
    pub victims: Vec<String>,
    pub evidence_text: String,
    /// Why it was not the one acted on (`None` for the first).
    pub not_taken: Option<String>,
}

// ------------------------------------------------------------- queries

/// Reads of engine state, answered by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Approvals,
    Explain {
        incident: String,
    },
    /// The global mode and each service's effective mode and autoheal state
    /// (the web console's header and service table).
    Status,
    /// Held locks and waiters (issue 10).
    Locks,
}

/// One service in [`QueryAnswer::Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub mode: Option<medic_core::Mode>,
    pub autoheal_disabled: bool,
}

/// The engine's clock: engine time and the wall clock it corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallSync {
    pub mono: MonoTime,
    pub unix_ms: Option<i64>,
}

impl WallSync {
    /// RFC 3339 (UTC) of engine time `t`, when the wall clock is known.
    pub fn rfc3339(&self, t: MonoTime) -> Option<String> {
        let base = self.unix_ms?;
        let ms = i128::from(base) + i128::from(t.0) - i128::from(self.mono.0);
        medic_store::record::rfc3339_ms(i64::try_from(ms).ok()?)
    }
}

/// The daemon's answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub enum QueryAnswer {
    Approvals {
        approvals: Vec<ApprovalView>,
        pauses: Vec<PauseView>,
        mass_paused: bool,
        clock: WallSync,
    },
    Explain {
        explanation: Option<Box<Explanation>>,
        clock: WallSync,
    },
    Status {
        mode: medic_core::Mode,
        services: Vec<ServiceStatus>,
    },
    Locks {
        held: Vec<medic_core::Lock>,
        waiting: Vec<(medic_core::LockRequest, MonoTime)>,
        clock: WallSync,
    },
}

pub fn approval_entry(a: &ApprovalView, clock: &WallSync) -> ApprovalEntry {
    ApprovalEntry {
        id: a.id.clone(),
        incident: a.incident.0.clone(),
        service: a.service.clone(),
        action: a.action.clone(),
        risk: a.risk.as_str().to_string(),
        score: a.score,
        reason_code: a.reason_code.as_str().to_string(),
        reason: a.reason.clone(),
        required: a.required,
        approvers: a.approvers.clone(),
        requested_at: clock.rfc3339(a.requested_at),
        expires_at: clock.rfc3339(a.expires_at),
    }
}

pub fn pause_entry(p: &PauseView, clock: &WallSync) -> PauseEntry {
    PauseEntry {
        service: p.service.clone(),
        kind: p.kind.map(|k| k.as_str().to_string()),
        until: p.until.and_then(|t| clock.rfc3339(t)),
        by: p.by.clone(),
        reason: p.reason.clone(),
    }
}

pub fn decision_entry(d: &DecisionRecord, clock: &WallSync) -> DecisionEntry {
    DecisionEntry {
        at: clock.rfc3339(d.at),
        action: d.action.clone(),
        stage: d.stage.as_str().to_string(),
        risk: d.risk.as_str().to_string(),
        score: d.score,
        verdict: d.verdict.as_str().to_string(),
        reason_code: d.reason_code.map(|c| c.as_str().to_string()),
        window: d.window.clone(),
        reason: d.reason.clone(),
    }
}

pub fn explain_response(e: &Explanation, clock: &WallSync) -> ExplainResponse {
    ExplainResponse {
        incident: e.incident.0.clone(),
        service: e.service.clone(),
        phase: e.phase.as_str().to_string(),
        outcome: e.outcome.map(|o| o.as_str().to_string()),
        decisions: e
            .decisions
            .iter()
            .map(|d| decision_entry(d, clock))
            .collect(),
        pending_approval: e
            .pending_approval
            .as_ref()
            .map(|a| approval_entry(a, clock)),
        hypotheses: hypothesis_entries(&e.hypotheses, &e.bands),
        merged_services: e.merged.clone(),
        canary: e.canary.iter().map(|c| canary_entry(c, clock)).collect(),
    }
}

/// Ranked hypotheses with their confidence parts, their band under the
/// configured `bands`, and why the others were not taken.
pub fn hypothesis_entries(
    h: &[medic_core::Hypothesis],
    bands: &medic_core::AutonomyBands,
) -> Vec<HypothesisEntry> {
    let top = h.first();
    h.iter()
        .enumerate()
        .map(|(i, x)| HypothesisEntry {
            rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
            service: x.service.clone(),
            signal: x.signal.clone(),
            pattern: x.pattern.clone(),
            confidence: x.confidence,
            prior: x.prior,
            evidence: x.evidence,
            learned: x.learned,
            band: medic_core::Band::of(x.confidence, bands).as_str().to_string(),
            victims: x.victims.clone(),
            evidence_text: x.evidence_text.clone(),
            not_taken: match top {
                Some(_) if i > 0 && x.pattern == AI_SUGGESTED => Some(format!(
                    "suggested by the AI endpoint: shown, never acted on (its confidence is capped below the approval band, {})",
                    bands.approve
                )),
                Some(t) if i > 0 => Some(if t.victims.iter().any(|v| v == &x.service) {
                    format!(
                        "a victim of {} (ranked first, confidence {}): its symptoms follow from that cause",
                        t.service, t.confidence
                    )
                } else {
                    format!(
                        "ranked below {} (confidence {} < {})",
                        t.service, x.confidence, t.confidence
                    )
                }),
                _ => None,
            },
        })
        .collect()
}

// ------------------------------------------------------------- commands

/// Parses an action kind filter (`restart`, `signal`, `exec`, `http`, `docker`, `systemd`; `*` or empty = all).
pub fn parse_kind(s: &str) -> Result<Option<ActionKind>, ApiError> {
    match s.trim() {
        "" | "*" => Ok(None),
        "restart" => Ok(Some(ActionKind::Restart)),
        "exec" => Ok(Some(ActionKind::Exec)),
        "http" => Ok(Some(ActionKind::Http)),
        "docker" => Ok(Some(ActionKind::Docker)),
        "systemd" => Ok(Some(ActionKind::Systemd)),
        "kubernetes" => Ok(Some(ActionKind::Kubernetes)),
        "signal" => Ok(Some(ActionKind::Signal)),
        other => Err(ApiError::invalid_field(
            "kind",
            format!("unknown action kind {other:?} (expected restart, signal, exec, http, docker or systemd)"),
        )),
    }
}

/// `POST /api/v1/pause` → command.
pub fn pause_command(req: &PauseRequest) -> Result<OperatorCommand, ApiError> {
    Ok(OperatorCommand::Pause {
        service: optional("service", req.service.as_ref())?,
        kind: parse_kind(req.kind.as_deref().unwrap_or(""))?,
        duration: match req.duration_s {
            Some(0) => {
                return Err(ApiError::invalid_field(
                    "duration_s",
                    "duration_s must be positive (omit it to pause until resumed)",
                ))
            }
            d => d.map(Duration::from_secs),
        },
        reason: optional("reason", req.reason.as_ref())?.unwrap_or_default(),
    })
}

/// `POST /api/v1/resume` → command.
pub fn resume_command(req: &ResumeRequest) -> Result<OperatorCommand, ApiError> {
    Ok(OperatorCommand::Resume {
        service: optional("service", req.service.as_ref())?,
        kind: parse_kind(req.kind.as_deref().unwrap_or(""))?,
    })
}

/// `POST /api/v1/actions/force` → command.
pub fn force_command(req: &ForceRequest) -> Result<OperatorCommand, ApiError> {
    Ok(OperatorCommand::ForceAction {
        service: required("service", &req.service)?,
        action: required("action", &req.action)?,
        reason: required("reason", &req.reason)?,
    })
}

/// `act-7` or `7` → action id.
pub fn parse_action_id(raw: &str) -> Result<ActionId, ApiError> {
    raw.strip_prefix("act-")
        .unwrap_or(raw)
        .parse()
        .map(ActionId)
        .map_err(|_| ApiError::invalid_field("id", format!("invalid action id {raw:?}")))
}

/// The engine's refusal as an API error, by variant: the field at fault, a
/// status, and the stable `reason_code`.
pub fn refusal(e: &OperatorError) -> ApiError {
    let msg = e.to_string();
    let api = match e {
        OperatorError::Forbidden { .. } => ApiError::new(ErrorCode::Forbidden, msg),
        OperatorError::UnknownService(_) => ApiError::invalid_field("service", msg),
        OperatorError::UnknownAction { .. } => ApiError::invalid_field("action", msg),
        OperatorError::ReasonRequired => ApiError::invalid_field("reason", msg),
        OperatorError::IncidentNotOpen(_)
        | OperatorError::ApprovalNotFound(_)
        | OperatorError::SameApprover { .. }
        | OperatorError::ActionNotRunning(_)
        | OperatorError::TargetBusy(_) => ApiError::new(ErrorCode::Conflict, msg),
        OperatorError::LockNotHeld(_) => {
            ApiError::new(ErrorCode::LockNotHeld, msg).with_field("key")
        }
    };
    api.with_reason_code(e.code().as_str())
}

pub(crate) fn required(field: &str, v: &str) -> Result<String, ApiError> {
    let t = v.trim();
    if t.is_empty() || t.len() > 256 {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be a non-empty string of at most 256 bytes"),
        ));
    }
    Ok(t.to_string())
}

pub(crate) fn optional(field: &str, v: Option<&String>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => required(field, s).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{OperatorErrorCode, Role};

    #[test]
    fn hypotheses_are_read_against_the_configured_bands_and_say_why_not_taken() {
        let h = |service: &str, pattern: &str, confidence: u8, victims: &[&str]| {
            medic_core::Hypothesis {
                service: service.into(),
                signal: "latency".into(),
                pattern: pattern.into(),
                confidence,
                prior: 0.9,
                evidence: 1.0,
                learned: 0.9,
                victims: victims.iter().map(|v| v.to_string()).collect(),
                evidence_text: String::new(),
            }
        };
        let list = [
            h("db", "dependency_slow", 60, &["api"]),
            h("api", "dependency_slow", 30, &[]),
            h("cache", "overload", 20, &[]),
            h("web", AI_SUGGESTED, 40, &[]),
        ];
        let default = hypothesis_entries(&list, &medic_core::AutonomyBands::default());
        assert_eq!(default[0].band, "approval");
        assert_eq!(default[0].not_taken, None);
        assert!(default[1]
            .not_taken
            .as_deref()
            .unwrap()
            .starts_with("a victim of db"));
        assert!(default[2]
            .not_taken
            .as_deref()
            .unwrap()
            .starts_with("ranked below db"));
        assert!(default[3]
            .not_taken
            .as_deref()
            .unwrap()
            .starts_with("suggested by the AI endpoint"));
        // With the bands lowered, 60 is in the act band.
        let low = medic_core::AutonomyBands {
            act: 50,
            armed: 40,
            approve: 10,
            armed_verify_factor: 3,
        };
        let entries = hypothesis_entries(&list, &low);
        assert_eq!(entries[0].band, "act");
        assert_eq!(default[1].band, "escalate");
        assert_eq!(entries[1].band, "approval");
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(parse_kind("*").ok(), Some(None));
        assert_eq!(parse_kind("restart").ok(), Some(Some(ActionKind::Restart)));
        assert!(parse_kind("reboot").is_err());
    }

    #[test]
    fn refusals_are_mapped_by_variant_with_their_code() {
        let e = refusal(&OperatorError::SameApprover {
            approval: "apr-1".into(),
            by: "alice".into(),
        });
        assert_eq!(e.code, ErrorCode::Conflict);
        assert_eq!(e.reason_code.as_deref(), Some("same_approver"));
        assert_eq!(
            refusal(&OperatorError::ReasonRequired).field.as_deref(),
            Some("reason")
        );
        let f = refusal(&OperatorError::Forbidden {
            needed: Role::Admin,
            have: Role::Viewer,
        });
        assert_eq!(f.code, ErrorCode::Forbidden);
        // Every refusal code has a distinct wire string.
        let mut names: Vec<&str> = OperatorErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OperatorErrorCode::ALL.len());
    }

    #[test]
    fn wall_times_are_rfc3339() {
        let c = WallSync {
            mono: MonoTime(10_000),
            unix_ms: Some(1_767_225_600_000),
        };
        assert_eq!(
            c.rfc3339(MonoTime(3_610_000)).as_deref(),
            Some("2026-01-01T01:00:00Z")
        );
        let none = WallSync {
            mono: MonoTime(0),
            unix_ms: None,
        };
        assert_eq!(none.rfc3339(MonoTime(5)), None);
    }
}
