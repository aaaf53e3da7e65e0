//! Public value types of the engine's inputs, commands and views.
use std::fmt;
use std::time::Duration;

use crate::governance::FreezeWindow;
use crate::operator::{Actor, OperatorCommand};
use crate::spec::{ActionKind, Risk};
use crate::time::MonoTime;

/// Incident identifier, unique per engine instance (`inc-<instance>-<n>`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct IncidentId(pub String);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifier of one action execution, unique per engine instance.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "act-{}", self.0)
    }
}

/// Why a probe failed, as classified by the probe adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The supervised process is not running.
    Exited,
    /// Connection refused: nothing listening.
    Refused,
    /// No answer within the probe's timeout.
    Timeout,
    /// An HTTP status other than the expected one.
    BadStatus(u16),
    /// The body did not contain the expected text.
    BodyMismatch,
    /// A check command exited non-zero (or was killed: `None`).
    ExecFailed(Option<i32>),
    /// Anything else (DNS, TLS, IO ...).
    Other,
}

impl ProbeFailure {
    /// A likely cause and the prior confidence in it.
    pub(crate) fn diagnosis(&self) -> (String, f64) {
        match self {
            ProbeFailure::Exited => ("process exited".into(), 0.95),
            ProbeFailure::Refused => (
                "nothing listening (process down or port closed)".into(),
                0.85,
            ),
            ProbeFailure::Timeout => ("unresponsive: requests hang".into(), 0.75),
            ProbeFailure::BadStatus(s) => (format!("application errors (HTTP {s})"), 0.8),
            ProbeFailure::BodyMismatch => ("unexpected health response".into(), 0.6),
            ProbeFailure::ExecFailed(_) => ("health command failing".into(), 0.6),
            ProbeFailure::Other => ("probe error".into(), 0.4),
        }
    }

    pub(crate) fn same_class(&self, other: &ProbeFailure) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// One probe result.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    pub service: String,
    pub probe: String,
    pub ok: bool,
    pub latency: Duration,
    /// Set when `ok` is false.
    pub failure: Option<ProbeFailure>,
    pub detail: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionFailureKind {
    Timeout,
    NonZeroExit,
    Spawn,
    Http,
    Cancelled,
    Other,
}

impl ActionFailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionFailureKind::Timeout => "timeout",
            ActionFailureKind::NonZeroExit => "non_zero_exit",
            ActionFailureKind::Spawn => "spawn",
            ActionFailureKind::Http => "http",
            ActionFailureKind::Cancelled => "cancelled",
            ActionFailureKind::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionFailure {
    pub kind: ActionFailureKind,
    pub message: String,
}

/// Facts about a service from outside the engine (monitoring, SLOs).
/// `None` leaves a value as it was.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServiceSignals {
    pub service: String,
    pub instances: Option<u32>,
    /// Fraction of the error budget left, in `[0, 1]`.
    pub error_budget_remaining: Option<f64>,
    /// Spare capacity, in `[0, 1]`.
    pub capacity_headroom: Option<f64>,
}

/// One ranked root-cause hypothesis (issue 9), computed at the edge by
/// medic-rca and a pattern, with its confidence parts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hypothesis {
    pub service: String,
    /// The signal whose anomaly names it (`latency`, `healthz`, ...).
    pub signal: String,
    /// The matched pattern (`dependency_slow`, ...).
    pub pattern: String,
    /// 0–100.
    pub confidence: u8,
    pub prior: f64,
    pub evidence: f64,
    pub learned: f64,
    /// Services whose symptoms it explains (held back while it is diagnosed).
    pub victims: Vec<String>,
    /// What the evidence was, for `explain`.
    pub evidence_text: String,
}

/// The latest diagnosis across services: hypotheses best first (the engine
/// keeps at most [`MAX_HYPOTHESES`]). An empty list clears the diagnosis.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DiagnosisReport {
    pub hypotheses: Vec<Hypothesis>,
}

/// Most hypotheses kept from one [`DiagnosisReport`].
pub const MAX_HYPOTHESES: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Probe(ProbeReport),
    ActionOutcome {
        id: ActionId,
        /// `Ok(output)` or why the execution failed.
        result: Result<String, ActionFailure>,
    },
    /// An operator command; its answer is dropped (use
    /// [`crate::Engine::operate`] to get it).
    Operator(Actor, OperatorCommand),
    /// The driver started the service's process: its startup grace begins.
    ProcessStarted {
        service: String,
    },
    /// The wall clock at `now` (unix ms), for freeze windows, timing risk and
    /// audit. Send it at start and whenever the host clock may have jumped;
    /// in between the engine extrapolates with monotonic time.
    WallClock {
        unix_ms: i64,
        /// Updates [`crate::TimingConfig::utc_offset_minutes`] (e.g. at DST).
        utc_offset_minutes: Option<i32>,
    },
    Signals(ServiceSignals),
    /// Replace the concrete freeze intervals (expanded from cron at the edge).
    FreezeWindows(Vec<FreezeWindow>),
    /// A root-cause diagnosis across services (issue 9): the top hypothesis's
    /// service is gated by its confidence band, its victims are held back.
    Diagnosis(DiagnosisReport),
    /// The samples of a staged canary's judge window (issue 10), answering
    /// [`Command::CollectCanary`].
    CanarySamples(crate::canary::CanarySamples),
}

/// Why an action runs.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ActionStage {
    /// First execution of a heal.
    Direct,
    /// Re-execution after a failed attempt.
    Retry,
    /// On one instance first; the full rollout follows after the bake time.
    Canary,
    /// The full rollout after a good canary.
    Rollout,
    /// Undo of a mitigation after it held.
    Revert,
    /// Undo of an action whose verification failed.
    Rollback,
    /// Operator override.
    Forced,
}

impl ActionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStage::Direct => "direct",
            ActionStage::Retry => "retry",
            ActionStage::Canary => "canary",
            ActionStage::Rollout => "rollout",
            ActionStage::Revert => "revert",
            ActionStage::Rollback => "rollback",
            ActionStage::Forced => "forced",
        }
    }
}

/// Ask the driver to execute an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRequest {
    pub id: ActionId,
    pub incident: Option<IncidentId>,
    pub service: String,
    pub action: String,
    pub kind: ActionKind,
    /// 0 for the first execution, then one more per retry.
    pub attempt: u32,
    pub reason: String,
    pub risk: Risk,
    pub stage: ActionStage,
    /// The instances to act on, in order (a stage of a staged canary, or
    /// its rollback); empty: the whole target.
    pub instances: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub severity: Severity,
    pub service: String,
    pub incident: Option<IncidentId>,
    pub title: String,
    pub message: String,
}

#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    Monitoring,
    DetectingFailure,
    ConfirmingPattern,
    ExecutingHeal,
    Verifying,
    Resolved,
    /// Escalated: a human has to act.
    ManualIntervention,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Monitoring => "monitoring",
            Phase::DetectingFailure => "detecting_failure",
            Phase::ConfirmingPattern => "confirming_pattern",
            Phase::ExecutingHeal => "executing_heal",
            Phase::Verifying => "verifying",
            Phase::Resolved => "resolved",
            Phase::ManualIntervention => "manual_intervention",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimelineItem {
    pub at: MonoTime,
    pub kind: String,
    pub message: String,
}

/// A snapshot of an incident for the store and API.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentView {
    pub id: IncidentId,
    pub service: String,
    pub phase: Phase,
    pub trigger: String,
    pub cause: String,
    pub confidence: f64,
    pub opened_at: MonoTime,
    pub updated_at: MonoTime,
    pub closed_at: Option<MonoTime>,
    pub outcome: Option<IncidentOutcome>,
    pub actions: Vec<String>,
    pub timeline: Vec<TimelineItem>,
    /// Services whose incidents were merged into this one (victims of its
    /// service, issue 9), in the order they joined.
    pub merged: Vec<String>,
    /// The diagnosed root cause (service, pattern): the top hypothesis the
    /// incident last had, never an AI suggestion (issue 9).
    pub diagnosis: Option<(String, String)>,
}

/// What the engine asks its driver to do: effects only. What happened is
/// told by [`crate::Notice`]s; the notices of a step are recorded before its
/// commands run.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    RunAction(ActionRequest),
    Notify(Notification),
    /// An incident changed; persist and publish this snapshot.
    IncidentChanged(IncidentView),
    /// Sample the canary and baseline instances of a staged canary for
    /// `window` and answer with [`Input::CanarySamples`] (issue 10).
    CollectCanary(crate::canary::CanaryWindow),
    /// Cancel a running action (operator request). The executor stops it if
    /// it can and reports its outcome as usual (`Cancelled` when stopped).
    CancelAction {
        id: ActionId,
        service: String,
        by: String,
        reason: String,
    },
}

/// How an incident ended (or, while open, what it is heading for).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentOutcome {
    Healed,
    /// Dry-run: medic would have acted.
    WouldAct,
    Escalated,
    /// The probe recovered without an action.
    Recovered,
    ResolvedByOperator,
    /// A victim's incident joined the incident of its diagnosed upstream
    /// cause (issue 9: one incident per cascade).
    Merged,
}

impl IncidentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentOutcome::Healed => "healed",
            IncidentOutcome::WouldAct => "would-act",
            IncidentOutcome::Escalated => "escalated",
            IncidentOutcome::Recovered => "recovered",
            IncidentOutcome::ResolvedByOperator => "resolved-by-operator",
            IncidentOutcome::Merged => "merged",
        }
    }
}

/// A pending approval, for the API.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalView {
    pub id: String,
    pub incident: IncidentId,
    pub service: String,
    pub action: String,
    pub risk: Risk,
    pub score: f64,
    pub reason_code: crate::ReasonCode,
    pub reason: String,
    pub required: u32,
    pub approvers: Vec<String>,
    pub requested_at: MonoTime,
    pub expires_at: MonoTime,
}

/// An active pause, for the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseView {
    pub service: Option<String>,
    pub kind: Option<ActionKind>,
    pub until: Option<MonoTime>,
    pub by: String,
    pub reason: String,
}

/// One governance decision about a planned action.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecisionRecord {
    pub at: MonoTime,
    pub action: String,
    pub stage: ActionStage,
    pub risk: Risk,
    pub score: f64,
    pub verdict: crate::Verdict,
    /// Machine-readable reason when not run.
    pub reason_code: Option<crate::ReasonCode>,
    /// The freeze window in force, for a `frozen` decision.
    pub window: Option<String>,
    pub reason: String,
}

/// Why an incident's actions ran or did not: `GET /api/v1/explain/{id}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub incident: IncidentId,
    pub service: String,
    pub phase: Phase,
    pub outcome: Option<IncidentOutcome>,
    pub decisions: Vec<DecisionRecord>,
    pub pending_approval: Option<ApprovalView>,
    /// Ranked hypotheses of the diagnosis that concerned it (issue 9).
    pub hypotheses: Vec<Hypothesis>,
    /// Services whose incidents were merged into this one (issue 9).
    pub merged: Vec<String>,
    /// The canary judge's verdicts (issue 10), oldest first.
    pub canary: Vec<crate::canary::CanaryRecord>,
    /// The autonomy bands in force (`governance.autonomy`), which the
    /// hypotheses' confidences are read against.
    pub bands: crate::governance::AutonomyBands,
}
