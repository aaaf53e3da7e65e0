//! Safety governance: risk scoring, safety gates and limits, as pure data and
//! pure functions.
//!
//! [`decide`] is the one place where a planned action is judged. It takes a
//! [`GateInput`] snapshot of plain numbers (built by the engine from its state)
//! and returns a [`Decision`]. It allocates nothing, reads no clock, and is
//! benchmarked by `medic-sim bench` (well under 1 µs per call).
//!
//! Gate order (the first that blocks gives the machine-readable reason):
//!
//! | # | check | on block |
//! | - | --- | --- |
//! | 1 | mode `disabled` | `skip` (`mode_disabled`) |
//! | 2 | automation disabled for the target after consecutive failures | `escalate` (`consecutive_failures`) |
//! | 3 | mode `dry-run` | `hold` (`mode_dry_run`), recorded as "would act" |
//! | 4 | mass incident latch (more than N services affected) | `hold` (`mass_incident`) |
//! | 5 | operator pause (kill switch) | `hold` (`paused`) |
//! | 6 | freeze window | `hold` (`frozen`) |
//! | 6a | diagnosis (issue 9): the target is a victim of an upstream cause diagnosed with confidence ≥ the armed band / in the approval band | `hold` (`upstream_cause`) / approval (`upstream_cause_approval`) |
//! | 6b | diagnosis confidence below the approval band / in it | `escalate` (`confidence_escalate`) / `approval` (`confidence_approval`) |
//! | 7 | CRITICAL risk, tier above the mode (also for retries and rollouts), or risk score > 0.7 (first attempt only) | `approval` (`critical_risk`, `risk_tier`, `risk_score`) |
//! | 8 | one action per target | `defer` (`target_busy`) |
//! | 8a | locks and conflicts (issue 10, `crate::locks`): the target's lock, or a lock on a direct dependency/dependent or with an overlapping blast radius, is held by another action, or an earlier waiter conflicts | `defer` in a bounded FIFO queue (`lock_held`, `conflict_dependency`, `conflict_blast_radius`); `escalate` after `locks.max_wait` (`lock_timeout`) or when the queue is full (`lock_queue_full`) |
//! | 9 | cooldown per target and action | `defer` until it ends (`cooldown`) |
//! | 10 | max concurrent actions | `defer` until a slot frees (`max_concurrent`) |
//! | 11 | max actions per hour | `defer` until the window frees (`max_actions_per_hour`) |
//! | 12 | per-kind budgets (restarts, feature disables, fallbacks) | `escalate` (`restart_budget`, `feature_budget`, `fallback_budget`) |
//! | 13 | failed actions in the last hour | `escalate` (`failed_actions_rate`) |
//! | 14 | incidents opened in the last hour | `escalate` (`incident_rate`) |
//! | 15 | error budget remaining | `escalate` (`error_budget`) |
//! | 16 | blast radius (targets with an action in flight) | `defer` until a slot frees (`blast_radius`) |
//! | 17 | capacity headroom, for actions that remove capacity | `escalate` (`capacity_headroom`) |
//!
//! When nothing blocks: run directly, or as a canary first when the risk score
//! is above 0.4 and the target has more than one instance.
//! A forced action (operator override) skips every gate but the target lock
//! and the lock gate (8a); those two are checked first.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use crate::class::{ActionClass, ClassBudget, ClassFacts, ResolvedAction, CLASS_TABLE};
use crate::spec::{Mode, Risk};
use crate::time::MonoTime;

/// Governance facts about one action of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionGovernance {
    /// `None`: the class implied by the action's kind.
    pub class: Option<ActionClass>,
    /// Change size in `[0, 1]`; `None` derives it from the risk tier
    /// (low 0.2, medium 0.5, high 0.8, critical 1.0).
    pub change_size: Option<f64>,
    /// Overrides [`ActionClass::removes_capacity`].
    pub removes_capacity: Option<bool>,
    /// Whether the executor can apply it to one instance first.
    pub canary: bool,
}

impl Default for ActionGovernance {
    fn default() -> Self {
        ActionGovernance {
            class: None,
            change_size: None,
            removes_capacity: None,
            canary: true,
        }
    }
}

/// Governance facts about one service (target).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceGovernance {
    /// Business criticality in `[0, 1]`.
    pub criticality: f64,
    /// Instances behind the target (signals may update it at run time).
    pub instances: u32,
    /// Per action name.
    pub actions: BTreeMap<String, ActionGovernance>,
}

impl Default for ServiceGovernance {
    fn default() -> Self {
        ServiceGovernance {
            criticality: 0.5,
            instances: 1,
            actions: BTreeMap::new(),
        }
    }
}

/// Hard limits (issue 5 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrent: u32,
    pub max_actions_per_hour: u32,
    /// Feature-flag toggles, fleet-wide, per hour.
    pub feature_disables_per_hour: u32,
    /// Fallbacks per service per hour.
    pub fallbacks_per_service_per_hour: u32,
    /// Consecutive failed actions (execution or verification) on one target
    /// that disable automation for it and escalate.
    pub max_consecutive_failures: u32,
    /// The window of every "per hour" figure.
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 5,
            max_actions_per_hour: 20,
            feature_disables_per_hour: 5,
            fallbacks_per_service_per_hour: 10,
            max_consecutive_failures: 3,
            window: Duration::from_secs(3600),
        }
    }
}

/// Safety-gate thresholds (issue 5 §3). Restarts per service per hour and
/// the cooldown come from [`crate::ServicePolicy`].
#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// Minimum error budget remaining, as a fraction of the budget.
    pub min_error_budget: f64,
    /// Most targets with an action in flight, as a fraction of all targets
    /// (never fewer than one target).
    pub max_blast_radius: f64,
    pub max_failed_actions_per_hour: u32,
    /// Minimum capacity headroom for actions that remove capacity.
    pub min_headroom: f64,
    pub max_incidents_per_hour: u32,
    /// More services than this with an open incident pause automation and page.
    pub mass_incident_services: u32,
    /// Risk score above which a human must approve.
    pub human_score: f64,
    /// Risk score above which a multi-instance target gets a canary first.
    pub canary_score: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            min_error_budget: 0.02,
            max_blast_radius: 0.2,
            max_failed_actions_per_hour: 3,
            min_headroom: 0.2,
            max_incidents_per_hour: 5,
            mass_incident_services: 10,
            human_score: 0.7,
            canary_score: 0.4,
        }
    }
}

/// Business hours and peaks for the timing part of the risk score, in the
/// local time given by a fixed UTC offset (the driver updates the offset
/// across DST changes with [`crate::Input::WallClock`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimingConfig {
    pub utc_offset_minutes: i32,
    /// Monday first.
    pub business_days: [bool; 7],
    /// Minutes since local midnight, `[start, end)`.
    pub business_hours: (u16, u16),
    /// Peak periods on business days, minutes since local midnight.
    pub peaks: Vec<(u16, u16)>,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            utc_offset_minutes: 0,
            business_days: [true, true, true, true, true, false, false],
            business_hours: (9 * 60, 18 * 60),
            peaks: vec![(11 * 60, 14 * 60)],
        }
    }
}

impl TimingConfig {
    /// Timing risk in `[0, 1]`: 1 at peak, 0.5 in business hours, else 0; 0
    /// when the wall clock is unknown.
    pub fn risk(&self, wall_ms: Option<i64>) -> f64 {
        let Some(ms) = wall_ms else {
            return 0.0;
        };
        let local = ms.saturating_add(i64::from(self.utc_offset_minutes) * 60_000);
        let days = local.div_euclid(86_400_000);
        let minute = (local.rem_euclid(86_400_000) / 60_000) as u16;
        // 1970-01-01 was a Thursday (index 3, Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as usize;
        if !self.business_days[weekday] {
            return 0.0;
        }
        if self.peaks.iter().any(|(s, e)| *s <= minute && minute < *e) {
            1.0
        } else if self.business_hours.0 <= minute && minute < self.business_hours.1 {
            0.5
        } else {
            0.0
        }
    }
}

/// One concrete freeze interval in wall-clock time (unix milliseconds,
/// `[start, end)`). Cron schedules are expanded to these at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeWindow {
    pub name: String,
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
    /// `None` freezes every service.
    pub services: Option<Vec<String>>,
}

impl FreezeWindow {
    pub fn covers(&self, service: &str, wall_ms: i64) -> bool {
        self.start_unix_ms <= wall_ms
            && wall_ms < self.end_unix_ms
            && self
                .services
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == service))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// A pending approval expires (and escalates) after this long.
    pub expiry: Duration,
    /// HIGH and CRITICAL actions need two distinct approvers.
    pub two_person_high: bool,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            expiry: Duration::from_secs(15 * 60),
            two_person_high: false,
        }
    }
}

/// Confidence bands that decide autonomy (issue 9). A confidence (0–100) at
/// or above `act` acts; at or above `armed` acts with a verify window
/// `armed_verify_factor` times longer and the rollback armed; at or above
/// `approve` needs approval; below it escalates with the ranked hypotheses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutonomyBands {
    pub act: u8,
    pub armed: u8,
    pub approve: u8,
    pub armed_verify_factor: u32,
}

impl Default for AutonomyBands {
    fn default() -> Self {
        AutonomyBands {
            act: 90,
            armed: 70,
            approve: 50,
            armed_verify_factor: 2,
        }
    }
}

/// The band a confidence falls in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Band {
    Escalate,
    Approval,
    ActArmed,
    Act,
}

impl Band {
    /// `> act` acts (so 90 itself is armed, as "70–90" reads); `≥ armed`
    /// acts armed; `≥ approve` needs approval; else escalate.
    pub fn of(confidence: u8, b: &AutonomyBands) -> Band {
        if confidence > b.act {
            Band::Act
        } else if confidence >= b.armed {
            Band::ActArmed
        } else if confidence >= b.approve {
            Band::Approval
        } else {
            Band::Escalate
        }
    }

    /// The reason code that names the band.
    pub fn code(self) -> ReasonCode {
        match self {
            Band::Act => ReasonCode::ConfidenceAct,
            Band::ActArmed => ReasonCode::ConfidenceArmed,
            Band::Approval => ReasonCode::ConfidenceApproval,
            Band::Escalate => ReasonCode::ConfidenceEscalate,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Act => "act",
            Band::ActArmed => "act_armed",
            Band::Approval => "approval",
            Band::Escalate => "escalate",
        }
    }
}

/// What a diagnosis says about the target being judged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiagnosisGate {
    /// Confidence (0–100) that acting on this target fixes the incident.
    pub confidence: u8,
    /// The target is a victim of an upstream cause diagnosed with this confidence.
    pub upstream: Option<u8>,
}

/// A deliberate policy bug, for proving that the simulator's checkers can
/// fail. Not part of any configuration: only [`crate::Engine::inject_fault`]
/// sets it, and only the simulator's self-tests call that.
#[doc(hidden)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum PolicyFault {
    #[default]
    None,
    /// Skips the max-concurrent-actions limit.
    SkipConcurrencyLimit,
    /// Ignores operator pauses.
    IgnorePause,
    /// Lets HIGH actions run without approval in aggressive mode.
    HighWithoutApproval,
    /// Takes an action's tier from its kind, ignoring its class (the bug of
    /// an `exec` with `class: database_failover` running unapproved).
    TierFromKind,
    /// Drops pauses when the state is restored (the bug of a restart that
    /// lifted the kill switch).
    ForgetPausesOnRestore,
}

/// All governance configuration of the engine: plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct GovernanceConfig {
    pub limits: Limits,
    pub gates: GateConfig,
    pub timing: TimingConfig,
    pub approvals: ApprovalPolicy,
    /// Per service name; services not listed use [`ServiceGovernance::default`].
    pub services: BTreeMap<String, ServiceGovernance>,
    pub freeze_windows: Vec<FreezeWindow>,
    /// How long a successful canary bakes before the full rollout.
    pub canary_bake: Duration,
    /// Explanations of closed incidents kept for `explain`.
    pub max_explanations: usize,
    /// Confidence bands (issue 9).
    pub autonomy: AutonomyBands,
    /// Lock TTL, wait bound and queue bound (issue 10).
    pub locks: crate::locks::LockConfig,
    /// `depends_on` edges for conflict detection (issue 10).
    pub topology: crate::locks::Topology,
    /// Executor circuit breakers (issue 10).
    pub breaker: crate::breaker::BreakerConfig,
    /// Staged canaries (issue 10), per service name.
    pub canaries: BTreeMap<String, crate::canary::CanaryPlan>,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            limits: Limits::default(),
            gates: GateConfig::default(),
            timing: TimingConfig::default(),
            approvals: ApprovalPolicy::default(),
            services: BTreeMap::new(),
            freeze_windows: Vec::new(),
            canary_bake: Duration::from_secs(30),
            max_explanations: 256,
            autonomy: AutonomyBands::default(),
            locks: crate::locks::LockConfig::default(),
            topology: crate::locks::Topology::default(),
            breaker: crate::breaker::BreakerConfig::default(),
            canaries: BTreeMap::new(),
        }
    }
}

/// Default change size by tier.
pub fn change_size_for(risk: Risk) -> f64 {
    match risk {
        Risk::Low => 0.2,
        Risk::Medium => 0.5,
        Risk::High => 0.8,
        Risk::Critical => 1.0,
    }
}

/// `0.4·criticality + 0.3·change size + 0.2·severity + 0.1·timing`, each
/// clamped to `[0, 1]` (NaN counts as 1: unknown is risky).
pub fn risk_score(criticality: f64, change_size: f64, severity: f64, timing: f64) -> f64 {
    let c = |x: f64| if x.is_nan() { 1.0 } else { x.clamp(0.0, 1.0) };
    0.4 * c(criticality) + 0.3 * c(change_size) + 0.2 * c(severity) + 0.1 * c(timing)
}

/// Machine-readable reason for a decision that does not run an action now.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ReasonCode {
    ModeDisabled,
    ModeDryRun,
    ConsecutiveFailures,
    MassIncident,
    Paused,
    Frozen,
    CriticalRisk,
    RiskTier,
    RiskScore,
    TargetBusy,
    Cooldown,
    MaxConcurrent,
    MaxActionsPerHour,
    RestartBudget,
    FeatureBudget,
    FallbackBudget,
    FailedActionsRate,
    IncidentRate,
    ErrorBudget,
    BlastRadius,
    CapacityHeadroom,
    ApprovalExpired,
    ApprovalRejected,
    NoRemediation,
    /// An operator cancelled the running action.
    Cancelled,
    /// The action failed on every attempt.
    RetriesExhausted,
    /// The action ran but the service did not recover.
    VerifyFailed,
    /// medic stopped while an action ran: its outcome is unknown.
    InterruptedByRestart,
    /// The target is a victim of a diagnosed upstream cause: held back.
    UpstreamCause,
    /// The target is a victim of an upstream cause diagnosed in the approval
    /// band: its own remediation waits for a human too.
    UpstreamCauseApproval,
    /// Diagnosis confidence above the act band: acted.
    ConfidenceAct,
    /// Diagnosis confidence in the armed band: acted with a longer verify window.
    ConfidenceArmed,
    /// Diagnosis confidence in the approval band.
    ConfidenceApproval,
    /// Diagnosis confidence below the approval band: escalated with the hypotheses.
    ConfidenceEscalate,
    /// Another action holds the lock on the target (issue 10).
    LockHeld,
    /// Another action runs on a direct dependency or dependent of the target.
    ConflictDependency,
    /// Another running action's blast radius overlaps this one's.
    ConflictBlastRadius,
    /// Waited for a lock longer than `governance.locks.max_wait`.
    LockTimeout,
    /// The lock wait queue is full.
    LockQueueFull,
    /// A change made the triggering signals worse than its baseline: undone.
    VerifyWorse,
    /// A change did not make the triggering signals better than its
    /// baseline by the end of its verify window: undone.
    VerifyNotBetter,
    /// The undo of a failed change failed: automation disabled.
    UndoFailed,
    /// The executor target's circuit breaker is open.
    BreakerOpen,
    /// The canary judge failed a stage of a staged canary (issue 10).
    CanaryFailed,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::ModeDisabled => "mode_disabled",
            ReasonCode::ModeDryRun => "mode_dry_run",
            ReasonCode::ConsecutiveFailures => "consecutive_failures",
            ReasonCode::MassIncident => "mass_incident",
            ReasonCode::Paused => "paused",
            ReasonCode::Frozen => "frozen",
            ReasonCode::CriticalRisk => "critical_risk",
            ReasonCode::RiskTier => "risk_tier",
            ReasonCode::RiskScore => "risk_score",
            ReasonCode::TargetBusy => "target_busy",
            ReasonCode::Cooldown => "cooldown",
            ReasonCode::MaxConcurrent => "max_concurrent",
            ReasonCode::MaxActionsPerHour => "max_actions_per_hour",
            ReasonCode::RestartBudget => "restart_budget",
            ReasonCode::FeatureBudget => "feature_budget",
            ReasonCode::FallbackBudget => "fallback_budget",
            ReasonCode::FailedActionsRate => "failed_actions_rate",
            ReasonCode::IncidentRate => "incident_rate",
            ReasonCode::ErrorBudget => "error_budget",
            ReasonCode::BlastRadius => "blast_radius",
            ReasonCode::CapacityHeadroom => "capacity_headroom",
            ReasonCode::ApprovalExpired => "approval_expired",
            ReasonCode::ApprovalRejected => "approval_rejected",
            ReasonCode::NoRemediation => "no_remediation",
            ReasonCode::Cancelled => "cancelled",
            ReasonCode::RetriesExhausted => "retries_exhausted",
            ReasonCode::VerifyFailed => "verify_failed",
            ReasonCode::CanaryFailed => "canary_failed",
            ReasonCode::InterruptedByRestart => "interrupted_by_restart",
            ReasonCode::UpstreamCause => "upstream_cause",
            ReasonCode::UpstreamCauseApproval => "upstream_cause_approval",
            ReasonCode::ConfidenceAct => "confidence_act",
            ReasonCode::ConfidenceArmed => "confidence_armed",
            ReasonCode::ConfidenceApproval => "confidence_approval",
            ReasonCode::ConfidenceEscalate => "confidence_escalate",
            ReasonCode::LockHeld => "lock_held",
            ReasonCode::ConflictDependency => "conflict_dependency",
            ReasonCode::ConflictBlastRadius => "conflict_blast_radius",
            ReasonCode::LockTimeout => "lock_timeout",
            ReasonCode::LockQueueFull => "lock_queue_full",
            ReasonCode::VerifyWorse => "verify_worse",
            ReasonCode::VerifyNotBetter => "verify_not_better",
            ReasonCode::UndoFailed => "undo_failed",
            ReasonCode::BreakerOpen => "breaker_open",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A blocking reason with the measured value and the limit it broke.
#[derive(Copy, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    pub code: ReasonCode,
    pub value: f64,
    pub limit: f64,
}

impl Block {
    fn new(code: ReasonCode, value: f64, limit: f64) -> Block {
        Block { code, value, limit }
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, l) = (self.value, self.limit);
        match self.code {
            ReasonCode::ModeDisabled => write!(f, "automation disabled"),
            ReasonCode::ModeDryRun => write!(f, "dry-run: recording only"),
            ReasonCode::ConsecutiveFailures => {
                write!(
                    f,
                    "{v} consecutive failed actions (max {l}); automation disabled for the target"
                )
            }
            ReasonCode::MassIncident => {
                write!(f, "automation paused: {v} services affected (max {l})")
            }
            ReasonCode::Paused => write!(f, "paused by an operator"),
            ReasonCode::Frozen => write!(f, "inside a freeze window"),
            ReasonCode::CriticalRisk => write!(f, "critical risk: never automatic"),
            ReasonCode::RiskTier => write!(f, "risk tier above what the mode runs automatically"),
            ReasonCode::RiskScore => write!(f, "risk score {v:.2} > {l:.2}"),
            ReasonCode::TargetBusy => write!(f, "another action is running on the target"),
            ReasonCode::Cooldown => write!(f, "cooldown: {v}ms left"),
            ReasonCode::MaxConcurrent => write!(f, "{v} actions in flight (max {l})"),
            ReasonCode::MaxActionsPerHour => write!(f, "{v} actions in the last hour (max {l})"),
            ReasonCode::RestartBudget => write!(f, "restart budget exhausted: {v} of {l}"),
            ReasonCode::FeatureBudget => write!(f, "feature-flag budget exhausted: {v} of {l}"),
            ReasonCode::FallbackBudget => write!(f, "fallback budget exhausted: {v} of {l}"),
            ReasonCode::FailedActionsRate => {
                write!(f, "{v} failed actions in the last hour (max {l})")
            }
            ReasonCode::IncidentRate => write!(f, "{v} incidents in the last hour (max {l})"),
            ReasonCode::ErrorBudget => {
                write!(f, "error budget remaining {v:.3} < {l:.3}")
            }
            ReasonCode::BlastRadius => {
                write!(f, "{v} targets would be acted on at once (max {l})")
            }
            ReasonCode::CapacityHeadroom => {
                write!(f, "capacity headroom {v:.2} < {l:.2}")
            }
            ReasonCode::ApprovalExpired => write!(f, "approval expired"),
            ReasonCode::ApprovalRejected => write!(f, "approval rejected"),
            ReasonCode::NoRemediation => write!(f, "no remediation configured"),
            ReasonCode::Cancelled => write!(f, "cancelled by an operator"),
            ReasonCode::RetriesExhausted => write!(f, "the action failed on every attempt"),
            ReasonCode::VerifyFailed => write!(f, "the service did not recover"),
            ReasonCode::CanaryFailed => write!(f, "the canary judge failed a stage"),
            ReasonCode::InterruptedByRestart => {
                write!(f, "medic stopped while the action ran")
            }
            ReasonCode::UpstreamCause => write!(
                f,
                "held back: a victim of an upstream cause diagnosed with confidence {v} (>= {l})"
            ),
            ReasonCode::UpstreamCauseApproval => write!(
                f,
                "approval required: a victim of an upstream cause diagnosed with confidence {v} (>= {l}, the approval band)"
            ),
            ReasonCode::ConfidenceAct => write!(f, "confidence {v} > {l}: act"),
            ReasonCode::ConfidenceArmed => write!(
                f,
                "confidence {v} >= {l}: act with a longer verify window, rollback armed"
            ),
            ReasonCode::ConfidenceApproval => {
                write!(f, "confidence {v} >= {l}: approval required")
            }
            ReasonCode::ConfidenceEscalate => write!(
                f,
                "confidence {v} < {l}: escalated with the ranked hypotheses"
            ),
            ReasonCode::LockHeld => write!(f, "another action holds the lock on the target"),
            ReasonCode::ConflictDependency => write!(
                f,
                "another action runs on a dependency or dependent of the target"
            ),
            ReasonCode::ConflictBlastRadius => {
                write!(f, "another action's blast radius overlaps this one's")
            }
            ReasonCode::LockTimeout => write!(f, "waited for a lock longer than {l}s"),
            ReasonCode::LockQueueFull => write!(f, "the lock wait queue is full ({l} waiting)"),
            ReasonCode::VerifyWorse => write!(f, "worse than the baseline: undone"),
            ReasonCode::VerifyNotBetter => {
                write!(
                    f,
                    "not better than the baseline by the end of the window: undone"
                )
            }
            ReasonCode::UndoFailed => write!(f, "the undo failed: automation disabled"),
            ReasonCode::BreakerOpen => write!(
                f,
                "executor circuit breaker open after {v} consecutive failures (opens at {l})"
            ),
        }
    }
}

/// Per-kind budget use for the action being judged.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BudgetUse {
    pub code: ReasonCode,
    pub used: u32,
    pub limit: u32,
}

/// Everything [`decide`] looks at: plain numbers, computed by the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct GateInput {
    pub now: MonoTime,
    pub mode: Mode,
    pub risk: Risk,
    pub score: f64,
    /// Approved by enough humans for this incident's heal.
    pub approved: bool,
    /// Operator override: skip every gate but the target lock.
    pub forced: bool,
    /// Retry, canary follow-up, rollback: the risk decision was already made.
    pub continuation: bool,
    pub consecutive_failures: u32,
    pub autoheal_disabled: bool,
    pub mass_paused: bool,
    pub affected_services: u32,
    pub paused: bool,
    pub frozen: bool,
    pub target_busy: bool,
    /// The target's locks are held by, or conflict with, another action's
    /// (a lock reason code), issue 10.
    pub lock: Option<ReasonCode>,
    pub cooldown_until: Option<MonoTime>,
    pub inflight_total: u32,
    pub actions_last_hour: u32,
    /// When the oldest action of the hour leaves the window.
    pub actions_window_frees_at: Option<MonoTime>,
    pub budget: Option<BudgetUse>,
    pub failed_last_hour: u32,
    pub incidents_last_hour: u32,
    pub error_budget: Option<f64>,
    pub inflight_targets: u32,
    pub total_targets: u32,
    pub removes_capacity: bool,
    pub headroom: Option<f64>,
    pub instances: u32,
    pub canary_capable: bool,
    /// The diagnosis of the incident, when one was made (issue 9).
    pub diagnosis: Option<DiagnosisGate>,
}

/// What to do about a planned action.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Decision {
    Run {
        canary: bool,
    },
    /// Automation off: record and do nothing.
    Skip(Block),
    /// Record what would be done (dry-run, paused, frozen, mass incident).
    Hold(Block),
    NeedsApproval {
        reason: Block,
        approvers: u32,
    },
    /// Wait and try again (at `until`, or when an action completes).
    Defer {
        reason: Block,
        until: Option<MonoTime>,
    },
    /// A human must take over.
    Escalate(Block),
}

impl Decision {
    pub fn reason(&self) -> Option<Block> {
        match self {
            Decision::Run { .. } => None,
            Decision::Skip(b) | Decision::Hold(b) | Decision::Escalate(b) => Some(*b),
            Decision::NeedsApproval { reason, .. } | Decision::Defer { reason, .. } => {
                Some(*reason)
            }
        }
    }

    pub fn verdict(&self) -> crate::Verdict {
        use crate::Verdict as V;
        match self {
            Decision::Run { canary: true } => V::RunCanary,
            Decision::Run { canary: false } => V::Run,
            Decision::Skip(_) => V::Skipped,
            Decision::Hold(b) if b.code == ReasonCode::ModeDryRun => V::WouldAct,
            Decision::Hold(_) => V::Held,
            Decision::NeedsApproval { .. } => V::PendingApproval,
            Decision::Defer { .. } => V::Deferred,
            Decision::Escalate(_) => V::Escalate,
        }
    }
}

/// Judge one planned action. Pure; see the module docs for the gate order.
pub fn decide(cfg: &GovernanceConfig, g: &GateInput) -> Decision {
    decide_with(cfg, g, PolicyFault::None)
}

/// [`decide`] with a deliberate bug, for the simulator's self-tests.
#[doc(hidden)]
pub fn decide_with(cfg: &GovernanceConfig, g: &GateInput, fault: PolicyFault) -> Decision {
    use ReasonCode as R;
    let lim = &cfg.limits;
    let gates = &cfg.gates;
    if g.target_busy {
        return Decision::Defer {
            reason: Block::new(R::TargetBusy, 1.0, 0.0),
            until: None,
        };
    }
    // Locks bind operator overrides too: serialised, never run at once.
    if let Some(code) = g.lock {
        return Decision::Defer {
            reason: Block::new(code, 1.0, 0.0),
            until: None,
        };
    }
    if g.forced {
        return Decision::Run { canary: false };
    }
    if g.mode == Mode::Disabled {
        return Decision::Skip(Block::new(R::ModeDisabled, 0.0, 0.0));
    }
    if g.autoheal_disabled {
        return Decision::Escalate(Block::new(
            R::ConsecutiveFailures,
            f64::from(g.consecutive_failures),
            f64::from(lim.max_consecutive_failures),
        ));
    }
    if g.mode == Mode::DryRun {
        return Decision::Hold(Block::new(R::ModeDryRun, 0.0, 0.0));
    }
    if g.mass_paused {
        return Decision::Hold(Block::new(
            R::MassIncident,
            f64::from(g.affected_services),
            f64::from(gates.mass_incident_services),
        ));
    }
    if g.paused && fault != PolicyFault::IgnorePause {
        return Decision::Hold(Block::new(R::Paused, 0.0, 0.0));
    }
    if g.frozen {
        return Decision::Hold(Block::new(R::Frozen, 0.0, 0.0));
    }
    if let (Some(d), false) = (g.diagnosis, g.continuation) {
        let bands = &cfg.autonomy;
        match d.upstream {
            Some(up) if up >= bands.armed => {
                return Decision::Hold(Block::new(
                    R::UpstreamCause,
                    f64::from(up),
                    f64::from(bands.armed),
                ));
            }
            // A victim of a cause in the approval band: the human asked
            // about the cause decides about the victim too (restarting the
            // callers of a probably failing database is noise at best).
            Some(up) if up >= bands.approve => {
                if !g.approved {
                    return Decision::NeedsApproval {
                        reason: Block::new(
                            R::UpstreamCauseApproval,
                            f64::from(up),
                            f64::from(bands.approve),
                        ),
                        approvers: 1,
                    };
                }
            }
            // A victim of a weak upstream diagnosis (escalated) is gated as
            // without one.
            Some(_) => {}
            None => match Band::of(d.confidence, bands) {
                Band::Escalate => {
                    return Decision::Escalate(Block::new(
                        R::ConfidenceEscalate,
                        f64::from(d.confidence),
                        f64::from(bands.approve),
                    ));
                }
                Band::Approval if !g.approved => {
                    return Decision::NeedsApproval {
                        reason: Block::new(
                            R::ConfidenceApproval,
                            f64::from(d.confidence),
                            f64::from(bands.approve),
                        ),
                        approvers: 1,
                    };
                }
                _ => {}
            },
        }
    }
    if !g.approved {
        let two = if cfg.approvals.two_person_high && g.risk >= Risk::High {
            2
        } else {
            1
        };
        if g.risk == Risk::Critical {
            return Decision::NeedsApproval {
                reason: Block::new(R::CriticalRisk, 0.0, 0.0),
                approvers: two,
            };
        }
        let high_leak = fault == PolicyFault::HighWithoutApproval
            && g.mode == Mode::Aggressive
            && g.risk == Risk::High;
        // Tier rules hold for retries and rollouts too (the mode may have
        // changed since the first attempt).
        if !g.mode.allows(g.risk) && !high_leak {
            return Decision::NeedsApproval {
                reason: Block::new(R::RiskTier, 0.0, 0.0),
                approvers: two,
            };
        }
        if !g.continuation && g.score > gates.human_score {
            return Decision::NeedsApproval {
                reason: Block::new(R::RiskScore, g.score, gates.human_score),
                approvers: two,
            };
        }
    }
    if let Some(until) = g.cooldown_until {
        if until > g.now {
            return Decision::Defer {
                reason: Block::new(R::Cooldown, (until.0 - g.now.0) as f64, 0.0),
                until: Some(until),
            };
        }
    }
    if g.inflight_total >= lim.max_concurrent && fault != PolicyFault::SkipConcurrencyLimit {
        return Decision::Defer {
            reason: Block::new(
                R::MaxConcurrent,
                f64::from(g.inflight_total),
                f64::from(lim.max_concurrent),
            ),
            until: None,
        };
    }
    if g.actions_last_hour >= lim.max_actions_per_hour {
        return Decision::Defer {
            reason: Block::new(
                R::MaxActionsPerHour,
                f64::from(g.actions_last_hour),
                f64::from(lim.max_actions_per_hour),
            ),
            until: g.actions_window_frees_at,
        };
    }
    if let Some(b) = g.budget {
        if b.used >= b.limit {
            return Decision::Escalate(Block::new(b.code, f64::from(b.used), f64::from(b.limit)));
        }
    }
    if g.failed_last_hour >= gates.max_failed_actions_per_hour {
        return Decision::Escalate(Block::new(
            R::FailedActionsRate,
            f64::from(g.failed_last_hour),
            f64::from(gates.max_failed_actions_per_hour),
        ));
    }
    if g.incidents_last_hour > gates.max_incidents_per_hour {
        return Decision::Escalate(Block::new(
            R::IncidentRate,
            f64::from(g.incidents_last_hour),
            f64::from(gates.max_incidents_per_hour),
        ));
    }
    if let Some(eb) = g.error_budget {
        if eb.is_nan() || eb < gates.min_error_budget {
            return Decision::Escalate(Block::new(R::ErrorBudget, eb, gates.min_error_budget));
        }
    }
    let max_targets = ((f64::from(g.total_targets) * gates.max_blast_radius).floor() as u32).max(1);
    if g.inflight_targets + 1 > max_targets {
        return Decision::Defer {
            reason: Block::new(
                R::BlastRadius,
                f64::from(g.inflight_targets + 1),
                f64::from(max_targets),
            ),
            until: None,
        };
    }
    if g.removes_capacity {
        if let Some(h) = g.headroom {
            if h.is_nan() || h < gates.min_headroom {
                return Decision::Escalate(Block::new(R::CapacityHeadroom, h, gates.min_headroom));
            }
        }
    }
    let canary =
        !g.continuation && g.canary_capable && g.instances > 1 && g.score > gates.canary_score;
    Decision::Run { canary }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn open_input() -> GateInput {
        GateInput {
            now: MonoTime(1_000_000),
            mode: Mode::Aggressive,
            risk: Risk::Low,
            score: 0.3,
            approved: false,
            forced: false,
            continuation: false,
            consecutive_failures: 0,
            autoheal_disabled: false,
            mass_paused: false,
            affected_services: 1,
            paused: false,
            frozen: false,
            target_busy: false,
            lock: None,
            cooldown_until: None,
            inflight_total: 0,
            actions_last_hour: 0,
            actions_window_frees_at: None,
            budget: None,
            failed_last_hour: 0,
            incidents_last_hour: 1,
            error_budget: Some(0.5),
            inflight_targets: 0,
            total_targets: 10,
            removes_capacity: true,
            headroom: Some(0.5),
            instances: 1,
            canary_capable: true,
            diagnosis: None,
        }
    }

    fn code(d: Decision) -> &'static str {
        d.reason()
            .map(|b| b.code.as_str())
            .unwrap_or(d.verdict().as_str())
    }

    #[test]
    fn each_gate_blocks_with_its_reason() {
        let cfg = GovernanceConfig::default();
        assert_eq!(decide(&cfg, &open_input()), Decision::Run { canary: false });
        type Tweak = Box<dyn Fn(&mut GateInput)>;
        let cases: Vec<(&str, Tweak)> = vec![
            ("mode_disabled", Box::new(|g| g.mode = Mode::Disabled)),
            ("mode_dry_run", Box::new(|g| g.mode = Mode::DryRun)),
            (
                "consecutive_failures",
                Box::new(|g| g.autoheal_disabled = true),
            ),
            ("mass_incident", Box::new(|g| g.mass_paused = true)),
            ("paused", Box::new(|g| g.paused = true)),
            ("frozen", Box::new(|g| g.frozen = true)),
            ("critical_risk", Box::new(|g| g.risk = Risk::Critical)),
            ("risk_tier", Box::new(|g| g.risk = Risk::High)),
            ("risk_score", Box::new(|g| g.score = 0.71)),
            ("target_busy", Box::new(|g| g.target_busy = true)),
            (
                "cooldown",
                Box::new(|g| g.cooldown_until = Some(MonoTime(1_000_001))),
            ),
            ("max_concurrent", Box::new(|g| g.inflight_total = 5)),
            (
                "max_actions_per_hour",
                Box::new(|g| g.actions_last_hour = 20),
            ),
            (
                "restart_budget",
                Box::new(|g| {
                    g.budget = Some(BudgetUse {
                        code: ReasonCode::RestartBudget,
                        used: 3,
                        limit: 3,
                    })
                }),
            ),
            ("failed_actions_rate", Box::new(|g| g.failed_last_hour = 3)),
            ("incident_rate", Box::new(|g| g.incidents_last_hour = 6)),
            ("error_budget", Box::new(|g| g.error_budget = Some(0.019))),
            ("blast_radius", Box::new(|g| g.inflight_targets = 2)),
            ("capacity_headroom", Box::new(|g| g.headroom = Some(0.19))),
        ];
        for (want, f) in cases {
            let mut g = open_input();
            f(&mut g);
            assert_eq!(code(decide(&cfg, &g)), want, "{g:?}");
        }
    }

    #[test]
    fn thresholds_are_inclusive_where_the_issue_says_so() {
        let cfg = GovernanceConfig::default();
        let mut g = open_input();
        g.error_budget = Some(0.02);
        g.headroom = Some(0.2);
        g.incidents_last_hour = 5;
        g.failed_last_hour = 2;
        g.inflight_total = 4;
        g.actions_last_hour = 19;
        g.inflight_targets = 1;
        g.score = 0.7;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
        g.headroom = None;
        g.removes_capacity = false;
        g.error_budget = None;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
    }

    #[test]
    fn canary_only_above_score_and_with_several_instances() {
        let cfg = GovernanceConfig::default();
        let mut g = open_input();
        g.score = 0.41;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
        g.instances = 3;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: true });
        g.score = 0.4;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
    }

    #[test]
    fn approval_and_override_paths() {
        let mut cfg = GovernanceConfig::default();
        let mut g = open_input();
        g.risk = Risk::High;
        assert!(matches!(
            decide(&cfg, &g),
            Decision::NeedsApproval { approvers: 1, .. }
        ));
        cfg.approvals.two_person_high = true;
        assert!(matches!(
            decide(&cfg, &g),
            Decision::NeedsApproval { approvers: 2, .. }
        ));
        g.approved = true;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
        // Approval does not lift pauses, freezes or limits.
        g.paused = true;
        assert_eq!(code(decide(&cfg, &g)), "paused");
        // An override skips every gate but the target lock.
        g.forced = true;
        g.mode = Mode::Disabled;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
        g.target_busy = true;
        assert_eq!(code(decide(&cfg, &g)), "target_busy");
        // Conservative: medium needs approval, low runs.
        let mut g = open_input();
        g.mode = Mode::Conservative;
        g.risk = Risk::Medium;
        assert_eq!(code(decide(&cfg, &g)), "risk_tier");
        g.risk = Risk::Low;
        assert_eq!(decide(&cfg, &g), Decision::Run { canary: false });
    }

    #[test]
    fn risk_score_weights() {
        assert!((risk_score(1.0, 1.0, 1.0, 1.0) - 1.0).abs() < 1e-12);
        assert!((risk_score(1.0, 0.0, 0.0, 0.0) - 0.4).abs() < 1e-12);
        assert!((risk_score(0.0, 1.0, 0.0, 0.0) - 0.3).abs() < 1e-12);
        assert!((risk_score(0.0, 0.0, 1.0, 0.0) - 0.2).abs() < 1e-12);
        assert!((risk_score(0.0, 0.0, 0.0, 1.0) - 0.1).abs() < 1e-12);
        assert!((risk_score(f64::NAN, 2.0, -1.0, 0.0) - 0.7).abs() < 1e-12);
    }

    #[test]
    fn timing_risk_follows_business_hours_and_peaks() {
        let t = TimingConfig::default();
        // 1970-01-05 was a Monday; four weeks later is one too.
        let day = 86_400_000i64;
        let mon0 = (4 + 28) * day;
        let h = 3_600_000i64;
        assert_eq!(t.risk(Some(mon0 + 12 * h)), 1.0);
        assert_eq!(t.risk(Some(mon0 + 10 * h)), 0.5);
        assert_eq!(t.risk(Some(mon0 + 20 * h)), 0.0);
        assert_eq!(t.risk(Some(mon0 + 5 * day + 12 * h)), 0.0, "saturday");
        assert_eq!(t.risk(None), 0.0);
        let shifted = TimingConfig {
            utc_offset_minutes: 120,
            ..TimingConfig::default()
        };
        assert_eq!(shifted.risk(Some(mon0 + 10 * h)), 1.0, "12:00 local");
    }

    #[test]
    fn classes_have_the_issue_tiers() {
        for (i, c) in ActionClass::ALL.iter().enumerate() {
            assert_eq!(CLASS_TABLE[i].class, *c, "CLASS_TABLE row {i} out of order");
            assert_eq!(c.as_str().parse::<ActionClass>(), Ok(*c));
        }
        assert_eq!(ActionClass::ScaleOut.default_risk(), Risk::Low);
        assert_eq!(ActionClass::RestartService.default_risk(), Risk::Medium);
        assert_eq!(ActionClass::DatabaseFailover.default_risk(), Risk::High);
        assert_eq!(ActionClass::DataMigration.default_risk(), Risk::Critical);
        for c in ActionClass::ALL {
            assert_eq!(c.as_str().parse::<ActionClass>(), Ok(c));
        }
    }
}
