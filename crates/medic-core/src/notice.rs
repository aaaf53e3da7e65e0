//! What happened, as a closed set of typed notices.
//!
//! The engine pushes a [`Notice`] for every fact worth recording; the driver
//! drains them with [`crate::Engine::poll_notice`] and appends each to the
//! audit log *before* it executes the commands of the same step. The audit
//! record format (kind string, fields, version) is rendered from these at the
//! store boundary (`medic_store::record`), so a refactor of the engine cannot
//! change it silently: a golden test there covers every [`NoticeKind`].
use std::time::Duration;

use crate::governance::{ActionClass, ReasonCode};
use crate::spec::{ActionKind, Mode, Risk};
use crate::types::{ActionId, ActionStage, IncidentId, IncidentOutcome};

/// The verdict of one governance decision about a planned action.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Verdict {
    Run,
    RunCanary,
    /// Dry-run: recorded, not run.
    WouldAct,
    /// Held by a kill switch, a freeze or a latch.
    Held,
    /// Automation disabled.
    Skipped,
    Deferred,
    PendingApproval,
    Escalate,
}

impl Verdict {
    pub const ALL: [Verdict; 8] = [
        Verdict::Run,
        Verdict::RunCanary,
        Verdict::WouldAct,
        Verdict::Held,
        Verdict::Skipped,
        Verdict::Deferred,
        Verdict::PendingApproval,
        Verdict::Escalate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Run => "run",
            Verdict::RunCanary => "run-canary",
            Verdict::WouldAct => "would-act",
            Verdict::Held => "held",
            Verdict::Skipped => "skipped",
            Verdict::Deferred => "deferred",
            Verdict::PendingApproval => "pending-approval",
            Verdict::Escalate => "escalate",
        }
    }
}

/// Who or what a pause applies to: `None` means every service / every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub service: Option<String>,
    pub kind: Option<ActionKind>,
}

/// How an action ended, as recorded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionStatus {
    Succeeded,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
        }
    }
}

/// What the engine records. One variant per audit record kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    IncidentOpened {
        incident: IncidentId,
        service: String,
        trigger: String,
    },
    Diagnosis {
        incident: IncidentId,
        service: String,
        cause: String,
        confidence: f64,
    },
    /// A victim's symptom joined the incident of its diagnosed upstream
    /// cause instead of opening an incident of its own (issue 9: one
    /// incident per cascade).
    IncidentMerged {
        /// The cause's incident.
        incident: IncidentId,
        /// The cause's service.
        cause: String,
        /// The victim whose symptom joined it.
        service: String,
        trigger: String,
    },
    /// A root-cause diagnosis across services (issue 9).
    RootCause {
        /// The top hypothesis's service, or `None` when the report is empty.
        service: Option<String>,
        signal: String,
        pattern: String,
        confidence: u8,
        prior: f64,
        evidence: f64,
        learned: f64,
        band: crate::governance::Band,
        /// Services held back as its victims.
        victims: Vec<String>,
        /// Every hypothesis, best first: `service/signal pattern confidence`.
        ranked: Vec<String>,
        evidence_text: String,
    },
    /// Mass-incident latch: too many services affected at once.
    MassIncidentLatched {
        affected_services: u32,
        limit: u32,
    },
    AutomationPaused {
        scope: Scope,
        /// Wall-clock end (unix ms); `None` until resumed, or no wall clock.
        until_unix_ms: Option<i64>,
        duration: Option<Duration>,
        by: String,
        reason: String,
    },
    AutomationResumed {
        scope: Scope,
        pauses_lifted: u32,
        mass_latch_lifted: bool,
        by: String,
    },
    PauseExpired {
        scope: Scope,
    },
    FreezeWindowsSet {
        names: Vec<String>,
    },
    Decision {
        incident: IncidentId,
        service: String,
        action: String,
        stage: ActionStage,
        verdict: Verdict,
        reason_code: Option<ReasonCode>,
        /// The freeze window in force, when the decision is `frozen`.
        window: Option<String>,
        reason: String,
    },
    ApprovalRequested {
        approval: String,
        incident: IncidentId,
        service: String,
        action: String,
        risk: Risk,
        score: f64,
        reason_code: ReasonCode,
        required: u32,
        expires_at_unix_ms: Option<i64>,
    },
    ApprovalApproved {
        approval: String,
        by: String,
        approvals: u32,
        required: u32,
        two_person_rule: bool,
    },
    ApprovalGranted {
        approval: String,
        incident: IncidentId,
        service: String,
        action: String,
        risk: Risk,
        approvers: Vec<String>,
    },
    ApprovalRejected {
        approval: String,
        incident: IncidentId,
        service: String,
        action: String,
        by: String,
        reason: String,
    },
    ApprovalExpired {
        approval: String,
        incident: IncidentId,
        service: String,
        action: String,
        approvers: Vec<String>,
    },
    ApprovalWithdrawn {
        approval: String,
        incident: IncidentId,
        /// Why (the incident escalated, resolved, or merged into its
        /// upstream cause's).
        reason: String,
    },
    /// An operator forced an action past the gates.
    Override {
        action_id: ActionId,
        service: String,
        action: String,
        by: String,
        reason: String,
    },
    /// Recorded before every [`crate::Command::RunAction`].
    ActionIntent {
        action_id: ActionId,
        incident: Option<IncidentId>,
        service: String,
        action: String,
        kind: ActionKind,
        class: ActionClass,
        risk: Risk,
        score: f64,
        stage: ActionStage,
        /// 1 for the first execution.
        attempt: u32,
        reason: String,
        approved_by: Vec<String>,
        revert_of: Option<String>,
        override_by: Option<String>,
        /// The instances it acts on (a staged canary's stage or rollback);
        /// empty: the whole target.
        instances: Vec<String>,
    },
    ActionOutcome {
        action_id: ActionId,
        incident: Option<IncidentId>,
        service: String,
        action: String,
        stage: ActionStage,
        status: ActionStatus,
        detail: String,
    },
    /// An outcome for an action the engine does not know (duplicate, or
    /// from before a restart).
    ActionOutcomeUnmatched {
        action_id: ActionId,
    },
    ActionRetryScheduled {
        incident: IncidentId,
        service: String,
        action: String,
        delay: Duration,
    },
    ActionCancelRequested {
        action_id: ActionId,
        service: String,
        action: String,
        by: String,
        reason: String,
    },
    /// An action was in flight when medic stopped; its result is judged by
    /// verification, never by running it again.
    ActionReconciled {
        action_id: ActionId,
        incident: Option<IncidentId>,
        service: String,
        action: String,
        stage: ActionStage,
        /// `verify` (a heal, watched again) or `escalate` (a revert: unknown).
        resolution: &'static str,
    },
    VerifyPassed {
        incident: IncidentId,
        service: String,
        probe: String,
    },
    VerifyFailed {
        incident: IncidentId,
        service: String,
        probe: String,
    },
    /// A change's baseline, taken when it starts (issue 10).
    VerifyBaseline {
        incident: IncidentId,
        service: String,
        probe: String,
        action: String,
        window: Duration,
        baseline: Option<crate::verify::Stats>,
    },
    /// A change's verification compared with its baseline: `judgement` is
    /// `better`, `not_better`, `worse_failures` or `worse_latency`;
    /// `reason_code` is set when it failed.
    VerifyJudged {
        incident: IncidentId,
        service: String,
        probe: String,
        action: String,
        judgement: &'static str,
        reason_code: Option<ReasonCode>,
        baseline: Option<crate::verify::Stats>,
        observed: Option<crate::verify::Stats>,
        /// The declared undo that runs now (`None`: none declared or passed).
        undo: Option<String>,
    },
    /// An executor target's circuit breaker changed state (issue 10).
    BreakerChanged {
        service: String,
        action: String,
        from: &'static str,
        to: &'static str,
        consecutive_failures: u32,
    },
    HealRetrying {
        incident: IncidentId,
        service: String,
        reason_code: ReasonCode,
        reason: String,
        consecutive_failures: u32,
    },
    IncidentEscalated {
        incident: IncidentId,
        service: String,
        reason_code: ReasonCode,
        reason: String,
    },
    IncidentResolved {
        incident: IncidentId,
        service: String,
        outcome: IncidentOutcome,
        reason: String,
    },
    AutohealDisabled {
        service: String,
        reason_code: ReasonCode,
        consecutive_failures: u32,
    },
    AutohealEnabled {
        service: String,
        by: String,
    },
    /// An operator removed a lock (issue 10).
    LockForceReleased {
        key: String,
        holder: String,
        by: String,
        reason: String,
    },
    /// A lock outlived its TTL and was reclaimed (issue 10).
    LockReclaimed {
        key: String,
        holder: String,
    },
    RevertDeferred {
        service: String,
        action: String,
        revert_of: String,
        reason_code: ReasonCode,
        reason: String,
    },
    RevertDropped {
        service: String,
        action: String,
        revert_of: String,
        reason_code: Option<ReasonCode>,
    },
    ModeChanged {
        service: Option<String>,
        mode: Mode,
        by: String,
    },
    /// An operator command that was refused, with why.
    OperatorRejected {
        by: String,
        command: &'static str,
        error: crate::operator::OperatorErrorCode,
        reason: String,
    },
    IncidentResolvedByOperator {
        incident: IncidentId,
        by: String,
        reason: String,
    },
    /// Probe failures during a service's startup grace: recorded, no incident.
    StartupProbeFailed {
        service: String,
        probe: String,
        detail: String,
    },
    /// A staged canary starts a stage (issue 10): the action runs on
    /// `instances`, `baseline` stays unchanged.
    CanaryStage {
        incident: IncidentId,
        service: String,
        action: String,
        /// 1-based.
        stage: u32,
        /// Share of instances changed once this stage ran.
        percent: u8,
        instances: Vec<String>,
        baseline: Vec<String>,
    },
    /// The judge's verdict on a canary stage, metric by metric (issue 10).
    CanaryVerdict {
        incident: IncidentId,
        service: String,
        action: String,
        stage: u32,
        percent: u8,
        verdict: medic_canary::Verdict,
    },
    /// The safety state was restored from the store at start.
    StateRestored {
        /// Time medic was away (wall clock), as measured by the driver.
        downtime: Duration,
        incidents: u32,
        approvals: u32,
        pauses: u32,
        inflight: u32,
        mass_latched: bool,
    },
}

/// The kind of a [`Notice`], with its stable audit name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeKind {
    IncidentOpened,
    Diagnosis,
    IncidentMerged,
    RootCause,
    MassIncidentLatched,
    AutomationPaused,
    AutomationResumed,
    PauseExpired,
    FreezeWindowsSet,
    Decision,
    ApprovalRequested,
    ApprovalApproved,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalExpired,
    ApprovalWithdrawn,
    Override,
    ActionIntent,
    ActionOutcome,
    ActionOutcomeUnmatched,
    ActionRetryScheduled,
    ActionCancelRequested,
    ActionReconciled,
    VerifyPassed,
    VerifyFailed,
    VerifyBaseline,
    VerifyJudged,
    BreakerChanged,
    HealRetrying,
    IncidentEscalated,
    IncidentResolved,
    AutohealDisabled,
    AutohealEnabled,
    LockForceReleased,
    LockReclaimed,
    RevertDeferred,
    RevertDropped,
    ModeChanged,
    OperatorRejected,
    IncidentResolvedByOperator,
    StartupProbeFailed,
    StateRestored,
    CanaryStage,
    CanaryVerdict,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 44] = [
        NoticeKind::IncidentOpened,
        NoticeKind::Diagnosis,
        NoticeKind::IncidentMerged,
        NoticeKind::RootCause,
        NoticeKind::MassIncidentLatched,
        NoticeKind::AutomationPaused,
        NoticeKind::AutomationResumed,
        NoticeKind::PauseExpired,
        NoticeKind::FreezeWindowsSet,
        NoticeKind::Decision,
        NoticeKind::ApprovalRequested,
        NoticeKind::ApprovalApproved,
        NoticeKind::ApprovalGranted,
        NoticeKind::ApprovalRejected,
        NoticeKind::ApprovalExpired,
        NoticeKind::ApprovalWithdrawn,
        NoticeKind::Override,
        NoticeKind::ActionIntent,
        NoticeKind::ActionOutcome,
        NoticeKind::ActionOutcomeUnmatched,
        NoticeKind::ActionRetryScheduled,
        NoticeKind::ActionCancelRequested,
        NoticeKind::ActionReconciled,
        NoticeKind::VerifyPassed,
        NoticeKind::VerifyFailed,
        NoticeKind::VerifyBaseline,
        NoticeKind::VerifyJudged,
        NoticeKind::BreakerChanged,
        NoticeKind::HealRetrying,
        NoticeKind::IncidentEscalated,
        NoticeKind::IncidentResolved,
        NoticeKind::AutohealDisabled,
        NoticeKind::AutohealEnabled,
        NoticeKind::LockForceReleased,
        NoticeKind::LockReclaimed,
        NoticeKind::RevertDeferred,
        NoticeKind::RevertDropped,
        NoticeKind::ModeChanged,
        NoticeKind::OperatorRejected,
        NoticeKind::IncidentResolvedByOperator,
        NoticeKind::StartupProbeFailed,
        NoticeKind::StateRestored,
        NoticeKind::CanaryStage,
        NoticeKind::CanaryVerdict,
    ];

    /// The stable record kind in the audit log. Never change a string here.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::IncidentOpened => "incident.opened",
            NoticeKind::Diagnosis => "diagnosis",
            NoticeKind::IncidentMerged => "incident.merged",
            NoticeKind::RootCause => "rca.diagnosed",
            NoticeKind::MassIncidentLatched => "automation.mass_latched",
            NoticeKind::AutomationPaused => "automation.paused",
            NoticeKind::AutomationResumed => "automation.resumed",
            NoticeKind::PauseExpired => "automation.pause_expired",
            NoticeKind::FreezeWindowsSet => "freeze.windows_set",
            NoticeKind::Decision => "decision",
            NoticeKind::ApprovalRequested => "approval.requested",
            NoticeKind::ApprovalApproved => "approval.approved",
            NoticeKind::ApprovalGranted => "approval.granted",
            NoticeKind::ApprovalRejected => "approval.rejected",
            NoticeKind::ApprovalExpired => "approval.expired",
            NoticeKind::ApprovalWithdrawn => "approval.withdrawn",
            NoticeKind::Override => "override",
            NoticeKind::ActionIntent => "action.intent",
            NoticeKind::ActionOutcome => "action.outcome",
            NoticeKind::ActionOutcomeUnmatched => "action.outcome_unmatched",
            NoticeKind::ActionRetryScheduled => "action.retry_scheduled",
            NoticeKind::ActionCancelRequested => "action.cancel_requested",
            NoticeKind::ActionReconciled => "action.reconciled",
            NoticeKind::VerifyPassed => "verify.passed",
            NoticeKind::VerifyFailed => "verify.failed",
            NoticeKind::VerifyBaseline => "verify.baseline",
            NoticeKind::VerifyJudged => "verify.judged",
            NoticeKind::BreakerChanged => "executor.breaker",
            NoticeKind::HealRetrying => "heal.retrying",
            NoticeKind::IncidentEscalated => "incident.escalated",
            NoticeKind::IncidentResolved => "incident.resolved",
            NoticeKind::AutohealDisabled => "autoheal.disabled",
            NoticeKind::AutohealEnabled => "autoheal.enabled",
            NoticeKind::LockForceReleased => "lock.force_released",
            NoticeKind::LockReclaimed => "lock.reclaimed",
            NoticeKind::RevertDeferred => "revert.deferred",
            NoticeKind::RevertDropped => "revert.dropped",
            NoticeKind::ModeChanged => "mode.changed",
            NoticeKind::OperatorRejected => "operator.rejected",
            NoticeKind::IncidentResolvedByOperator => "operator.resolve",
            NoticeKind::StartupProbeFailed => "probe.startup_failed",
            NoticeKind::StateRestored => "state.restored",
            NoticeKind::CanaryStage => "canary.stage",
            NoticeKind::CanaryVerdict => "canary.verdict",
        }
    }
}

impl Notice {
    pub fn kind(&self) -> NoticeKind {
        use NoticeKind as K;
        match self {
            Notice::IncidentOpened { .. } => K::IncidentOpened,
            Notice::IncidentMerged { .. } => K::IncidentMerged,
            Notice::Diagnosis { .. } => K::Diagnosis,
            Notice::RootCause { .. } => K::RootCause,
            Notice::MassIncidentLatched { .. } => K::MassIncidentLatched,
            Notice::AutomationPaused { .. } => K::AutomationPaused,
            Notice::AutomationResumed { .. } => K::AutomationResumed,
            Notice::PauseExpired { .. } => K::PauseExpired,
            Notice::FreezeWindowsSet { .. } => K::FreezeWindowsSet,
            Notice::Decision { .. } => K::Decision,
            Notice::ApprovalRequested { .. } => K::ApprovalRequested,
            Notice::ApprovalApproved { .. } => K::ApprovalApproved,
            Notice::ApprovalGranted { .. } => K::ApprovalGranted,
            Notice::ApprovalRejected { .. } => K::ApprovalRejected,
            Notice::ApprovalExpired { .. } => K::ApprovalExpired,
            Notice::ApprovalWithdrawn { .. } => K::ApprovalWithdrawn,
            Notice::Override { .. } => K::Override,
            Notice::ActionIntent { .. } => K::ActionIntent,
            Notice::ActionOutcome { .. } => K::ActionOutcome,
            Notice::ActionOutcomeUnmatched { .. } => K::ActionOutcomeUnmatched,
            Notice::ActionRetryScheduled { .. } => K::ActionRetryScheduled,
            Notice::ActionCancelRequested { .. } => K::ActionCancelRequested,
            Notice::ActionReconciled { .. } => K::ActionReconciled,
            Notice::VerifyPassed { .. } => K::VerifyPassed,
            Notice::VerifyFailed { .. } => K::VerifyFailed,
            Notice::VerifyBaseline { .. } => K::VerifyBaseline,
            Notice::VerifyJudged { .. } => K::VerifyJudged,
            Notice::BreakerChanged { .. } => K::BreakerChanged,
            Notice::HealRetrying { .. } => K::HealRetrying,
            Notice::IncidentEscalated { .. } => K::IncidentEscalated,
            Notice::IncidentResolved { .. } => K::IncidentResolved,
            Notice::AutohealDisabled { .. } => K::AutohealDisabled,
            Notice::AutohealEnabled { .. } => K::AutohealEnabled,
            Notice::LockForceReleased { .. } => K::LockForceReleased,
            Notice::LockReclaimed { .. } => K::LockReclaimed,
            Notice::RevertDeferred { .. } => K::RevertDeferred,
            Notice::RevertDropped { .. } => K::RevertDropped,
            Notice::ModeChanged { .. } => K::ModeChanged,
            Notice::OperatorRejected { .. } => K::OperatorRejected,
            Notice::IncidentResolvedByOperator { .. } => K::IncidentResolvedByOperator,
            Notice::StartupProbeFailed { .. } => K::StartupProbeFailed,
            Notice::StateRestored { .. } => K::StateRestored,
            Notice::CanaryStage { .. } => K::CanaryStage,
            Notice::CanaryVerdict { .. } => K::CanaryVerdict,
        }
    }
}
