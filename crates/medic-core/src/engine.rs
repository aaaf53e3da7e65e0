//! The healing state machine.
//!
//! Per service the engine keeps probe counters, at most one open incident and
//! at most one action in flight. Incident lifecycle:
//!
//! ```text
//! Monitoring -> DetectingFailure -> ConfirmingPattern -> ExecutingHeal -> Verifying -> Resolved
//!                                          |                  |              |
//!                                          +------------------+--------------+--> EscalatingAlert -> ManualIntervention
//! ```
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::governance::{
    change_size_for, decide, risk_score, ActionClass, ActionGovernance, Block, BudgetUse, Decision,
    FreezeWindow, GateInput, GovernanceConfig, ReasonCode, ServiceGovernance,
};
use crate::rng::SplitMix64;
use crate::spec::{
    ActionKind, ActionSpec, Condition, EngineConfig, Mode, ProbeSpec, Risk, ServiceSpec,
};
use crate::time::MonoTime;

/// Incident identifier, unique per engine instance (`inc-<instance>-<n>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentId(pub String);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifier of one action execution, unique per engine instance.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    fn diagnosis(&self) -> (String, f64) {
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

    fn same_class(&self, other: &ProbeFailure) -> bool {
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

/// Operator commands, audited with who issued them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    SetMode {
        service: Option<String>,
        mode: Mode,
        by: String,
    },
    ResolveIncident {
        id: String,
        by: String,
        reason: String,
    },
    EnableAutoheal {
        service: String,
        by: String,
    },
    /// Kill switch: hold automation for a service (or all), an action kind
    /// (or all), for a duration (or until resumed). Detection, diagnosis and
    /// "would do" records go on.
    Pause {
        service: Option<String>,
        kind: Option<ActionKind>,
        duration: Option<Duration>,
        by: String,
        reason: String,
    },
    /// Lift the pauses with exactly this scope; `None`/`None` lifts every
    /// pause and the mass-incident latch.
    Resume {
        service: Option<String>,
        kind: Option<ActionKind>,
        by: String,
    },
    /// Approve a pending approval (`apr-N` or `N`). HIGH and CRITICAL need two
    /// distinct approvers when the two-person rule is on.
    Approve {
        id: String,
        by: String,
    },
    Reject {
        id: String,
        by: String,
        reason: String,
    },
    /// Ask the driver to cancel a running action ([`Command::CancelAction`]).
    CancelAction {
        id: ActionId,
        by: String,
        reason: String,
    },
    /// Run an action past every gate but the target lock. `reason` is
    /// mandatory; audited as `override`.
    ForceAction {
        service: String,
        action: String,
        by: String,
        reason: String,
    },
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

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Probe(ProbeReport),
    ActionOutcome {
        id: ActionId,
        /// `Ok(output)` or why the execution failed.
        result: Result<String, ActionFailure>,
    },
    Operator(OperatorCommand),
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
}

/// Why an action runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
}

/// A record for the audit log. The store decides the on-disk format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl AuditEvent {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
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

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Monitoring,
    DetectingFailure,
    ConfirmingPattern,
    ExecutingHeal,
    Verifying,
    Resolved,
    EscalatingAlert,
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
            Phase::EscalatingAlert => "escalating_alert",
            Phase::ManualIntervention => "manual_intervention",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineItem {
    pub at: MonoTime,
    pub kind: &'static str,
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
    /// `healed`, `would-act`, `escalated`, `recovered` or `resolved-by-operator`.
    pub outcome: Option<&'static str>,
    pub actions: Vec<String>,
    pub timeline: Vec<TimelineItem>,
}

/// What the engine asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Append to the audit log. Always emitted before the command it explains.
    Audit(AuditEvent),
    RunAction(ActionRequest),
    Notify(Notification),
    /// An incident changed; persist and publish this snapshot.
    IncidentChanged(IncidentView),
    /// Cancel a running action (operator request). The executor stops it if
    /// it can and reports its outcome as usual (`Cancelled` when stopped).
    CancelAction {
        id: ActionId,
        service: String,
        by: String,
        reason: String,
    },
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
    pub reason_code: &'static str,
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
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    pub at: MonoTime,
    pub action: String,
    pub stage: ActionStage,
    pub risk: Risk,
    pub score: f64,
    /// `run`, `run-canary`, `would-act`, `held`, `skipped`, `deferred`,
    /// `pending-approval` or `escalate`.
    pub verdict: &'static str,
    /// Machine-readable reason ([`crate::ReasonCode`]) when not run.
    pub reason_code: Option<&'static str>,
    pub reason: String,
}

/// Why an incident's actions ran or did not: `GET /api/v1/explain/{id}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub incident: IncidentId,
    pub service: String,
    pub phase: Phase,
    pub outcome: Option<&'static str>,
    pub decisions: Vec<DecisionRecord>,
    pub pending_approval: Option<ApprovalView>,
}

/// The answer to the last operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorResult {
    Ok(String),
    Rejected { code: &'static str, message: String },
}

// === state ===

#[derive(Debug, Default)]
struct ProbeState {
    /// Times of the current run of consecutive failures (bounded).
    fail_times: VecDeque<MonoTime>,
    recent_failures: VecDeque<ProbeFailure>,
    slow_run: u32,
    healthy_run: u32,
    seen: bool,
}

#[derive(Debug)]
struct Incident {
    id: IncidentId,
    probe: String,
    condition: Condition,
    cause: String,
    confidence: f64,
    phase: Phase,
    opened_at: MonoTime,
    updated_at: MonoTime,
    /// Execution attempts of the current heal.
    attempt: u32,
    retry_at: Option<MonoTime>,
    verify_until: Option<MonoTime>,
    deferred_until: Option<MonoTime>,
    /// Full rollout due after a good canary.
    rollout_at: Option<MonoTime>,
    /// Last decision recorded while waiting, to avoid repeating it.
    waiting_reason: Option<String>,
    would_act: bool,
    healed_by: Option<String>,
    actions: Vec<String>,
    timeline: VecDeque<TimelineItem>,
    /// A pending approval for this incident's heal.
    approval: Option<u64>,
    /// The action humans approved for this incident, and by whom.
    approved: Option<(String, Vec<String>)>,
    decisions: VecDeque<DecisionRecord>,
}

#[derive(Debug)]
struct InFlight {
    id: ActionId,
    action: String,
    stage: ActionStage,
    /// `Some` when this execution undoes an earlier action.
    revert_of: Option<String>,
    cancel_requested: bool,
}

#[derive(Clone, Debug)]
struct PendingRevert {
    due: MonoTime,
    action: String,
    of: String,
    stage: ActionStage,
    blocked: Option<&'static str>,
}

#[derive(Debug)]
struct Svc {
    spec: ServiceSpec,
    gov: ServiceGovernance,
    mode: Option<Mode>,
    probes: BTreeMap<String, ProbeState>,
    incident: Option<Incident>,
    inflight: Option<InFlight>,
    autoheal_disabled: bool,
    consecutive_failures: u32,
    /// Start times of restarts inside the budget window.
    restarts: VecDeque<MonoTime>,
    fallbacks: VecDeque<MonoTime>,
    /// Times of failed heals inside the failed-heal window.
    failed_heals: VecDeque<MonoTime>,
    last_success: BTreeMap<String, MonoTime>,
    /// An action to undo.
    pending_revert: Option<PendingRevert>,
    error_budget: Option<f64>,
    headroom: Option<f64>,
    dirty: bool,
}

#[derive(Debug)]
struct Approval {
    id: u64,
    incident: IncidentId,
    service: String,
    action: String,
    risk: Risk,
    score: f64,
    reason: Block,
    required: u32,
    approvers: Vec<String>,
    requested_at: MonoTime,
    expires_at: MonoTime,
}

#[derive(Debug, Clone)]
struct Pause {
    service: Option<String>,
    kind: Option<ActionKind>,
    until: Option<MonoTime>,
    by: String,
    reason: String,
}

impl Svc {
    fn probe_spec(&self, name: &str) -> Option<&ProbeSpec> {
        self.spec.probes.iter().find(|p| p.name == name)
    }

    fn action_spec(&self, name: &str) -> Option<&ActionSpec> {
        self.spec.actions.iter().find(|a| a.name == name)
    }

    fn action_gov(&self, action: &ActionSpec) -> ActionGovernance {
        self.gov
            .actions
            .get(&action.name)
            .cloned()
            .unwrap_or_else(|| ActionGovernance {
                class: ActionClass::from_kind(action.kind),
                ..ActionGovernance::default()
            })
    }

    /// The first (probe, condition) whose rule currently fires.
    fn firing(&self) -> Option<(String, Condition)> {
        for p in &self.spec.probes {
            let Some(st) = self.probes.get(&p.name) else {
                continue;
            };
            if failing(p, st) {
                return Some((p.name.clone(), Condition::Failing));
            }
        }
        for p in &self.spec.probes {
            let Some(st) = self.probes.get(&p.name) else {
                continue;
            };
            if slow(p, st) {
                return Some((p.name.clone(), Condition::Slow));
            }
        }
        None
    }

    fn any_suspicious(&self) -> bool {
        self.probes
            .values()
            .any(|st| !st.fail_times.is_empty() || st.slow_run > 0)
    }

    /// The probe met its recovery rule and no other probe of the service is
    /// in a run of failures.
    fn recovered(&self, probe: &str) -> bool {
        let trigger_ok = match (self.probe_spec(probe), self.probes.get(probe)) {
            (Some(p), Some(st)) => st.healthy_run >= p.recovery.consecutive.max(1),
            _ => false,
        };
        trigger_ok
            && self
                .probes
                .iter()
                .all(|(name, st)| name == probe || (st.fail_times.is_empty() && st.slow_run == 0))
    }
}

fn failing(p: &ProbeSpec, st: &ProbeState) -> bool {
    let n = p.failure.consecutive.max(1) as usize;
    if st.fail_times.len() < n {
        return false;
    }
    let last = st.fail_times[st.fail_times.len() - 1];
    let first = st.fail_times[st.fail_times.len() - n];
    last.since(first) <= p.failure.within
}

fn slow(p: &ProbeSpec, st: &ProbeState) -> bool {
    match &p.latency {
        Some(rule) => st.slow_run >= rule.consecutive.max(1),
        None => false,
    }
}

fn prune(q: &mut VecDeque<MonoTime>, now: MonoTime, window: Duration) {
    while q.front().is_some_and(|t| now.since(*t) >= window) {
        q.pop_front();
    }
}

fn parse_approval_id(s: &str) -> Option<u64> {
    s.strip_prefix("apr-").unwrap_or(s).parse().ok()
}

/// The sans-IO healing engine. See the crate docs for the driving contract.
#[derive(Debug)]
pub struct Engine {
    mode: Mode,
    instance: String,
    max_timeline: usize,
    now: MonoTime,
    rng: SplitMix64,
    services: BTreeMap<String, Svc>,
    next_incident: u64,
    next_action: u64,
    out: VecDeque<Command>,
    gov: GovernanceConfig,
    /// Wall clock sync point: (mono, unix ms).
    wall: Option<(MonoTime, i64)>,
    pauses: Vec<Pause>,
    mass_paused: bool,
    incident_opens: VecDeque<MonoTime>,
    failed_actions: VecDeque<MonoTime>,
    /// Starts of non-forced actions inside the hour window.
    action_starts: VecDeque<MonoTime>,
    feature_toggles: VecDeque<MonoTime>,
    approvals: BTreeMap<u64, Approval>,
    next_approval: u64,
    explained: BTreeMap<String, Explanation>,
    explained_order: VecDeque<String>,
    last_operator: Option<OperatorResult>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: MonoTime) -> Engine {
        let gov_cfg = cfg.governance;
        let services = cfg
            .services
            .into_iter()
            .map(|spec| {
                let probes = spec
                    .probes
                    .iter()
                    .map(|p| (p.name.clone(), ProbeState::default()))
                    .collect();
                let gov = gov_cfg
                    .services
                    .get(&spec.name)
                    .cloned()
                    .unwrap_or_default();
                (
                    spec.name.clone(),
                    Svc {
                        mode: spec.mode,
                        spec,
                        gov,
                        probes,
                        incident: None,
                        inflight: None,
                        autoheal_disabled: false,
                        consecutive_failures: 0,
                        restarts: VecDeque::new(),
                        fallbacks: VecDeque::new(),
                        failed_heals: VecDeque::new(),
                        last_success: BTreeMap::new(),
                        pending_revert: None,
                        error_budget: None,
                        headroom: None,
                        dirty: false,
                    },
                )
            })
            .collect();
        Engine {
            mode: cfg.mode,
            instance: cfg.instance,
            max_timeline: cfg.max_timeline.max(1),
            now,
            rng: SplitMix64::new(cfg.seed),
            services,
            next_incident: 1,
            next_action: 1,
            out: VecDeque::new(),
            gov: gov_cfg,
            wall: None,
            pauses: Vec::new(),
            mass_paused: false,
            incident_opens: VecDeque::new(),
            failed_actions: VecDeque::new(),
            action_starts: VecDeque::new(),
            feature_toggles: VecDeque::new(),
            approvals: BTreeMap::new(),
            next_approval: 1,
            explained: BTreeMap::new(),
            explained_order: VecDeque::new(),
            last_operator: None,
        }
    }

    // === getters ===

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The mode in force for `service` (its override, else the global mode).
    pub fn effective_mode(&self, service: &str) -> Option<Mode> {
        self.services
            .get(service)
            .map(|s| s.mode.unwrap_or(self.mode))
    }

    pub fn phase(&self, service: &str) -> Option<Phase> {
        let svc = self.services.get(service)?;
        Some(match &svc.incident {
            Some(inc) => inc.phase,
            None if svc.any_suspicious() => Phase::DetectingFailure,
            None => Phase::Monitoring,
        })
    }

    pub fn autoheal_disabled(&self, service: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|s| s.autoheal_disabled)
    }

    pub fn open_incidents(&self) -> Vec<IncidentView> {
        self.services
            .values()
            .filter_map(|s| {
                s.incident
                    .as_ref()
                    .map(|i| view(&s.spec.name, i, None, None))
            })
            .collect()
    }

    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(|s| s.as_str())
    }

    /// The governance configuration in force.
    pub fn governance(&self) -> &GovernanceConfig {
        &self.gov
    }

    /// Wall clock now (unix ms), extrapolated from the last [`Input::WallClock`].
    pub fn wall_now(&self) -> Option<i64> {
        self.wall.map(|(m, w)| {
            w.saturating_add(i64::try_from(self.now.0.saturating_sub(m.0)).unwrap_or(i64::MAX))
        })
    }

    /// Automation is latched off after a mass incident (until a full resume).
    pub fn mass_paused(&self) -> bool {
        self.mass_paused
    }

    pub fn pending_approvals(&self) -> Vec<ApprovalView> {
        self.approvals.values().map(approval_view).collect()
    }

    pub fn pauses(&self) -> Vec<PauseView> {
        self.pauses
            .iter()
            .map(|p| PauseView {
                service: p.service.clone(),
                kind: p.kind,
                until: p.until,
                by: p.by.clone(),
                reason: p.reason.clone(),
            })
            .collect()
    }

    /// Actions in flight: (id, service, action, stage).
    pub fn inflight_actions(&self) -> Vec<(ActionId, String, String, ActionStage)> {
        self.services
            .iter()
            .filter_map(|(n, s)| {
                s.inflight
                    .as_ref()
                    .map(|f| (f.id, n.clone(), f.action.clone(), f.stage))
            })
            .collect()
    }

    /// Every governance decision about an open or recently closed incident.
    pub fn explain(&self, incident: &str) -> Option<Explanation> {
        for (name, svc) in &self.services {
            if let Some(inc) = svc.incident.as_ref().filter(|i| i.id.0 == incident) {
                return Some(Explanation {
                    incident: inc.id.clone(),
                    service: name.clone(),
                    phase: inc.phase,
                    outcome: view(name, inc, None, None).outcome,
                    decisions: inc.decisions.iter().cloned().collect(),
                    pending_approval: inc
                        .approval
                        .and_then(|a| self.approvals.get(&a))
                        .map(approval_view),
                });
            }
        }
        self.explained.get(incident).cloned()
    }

    /// The result of the last [`Input::Operator`] command, for the API reply.
    pub fn last_operator_result(&self) -> Option<&OperatorResult> {
        self.last_operator.as_ref()
    }

    // === input ===

    pub fn handle_input(&mut self, now: MonoTime, input: Input) {
        self.advance(now);
        match input {
            Input::Probe(report) => self.on_probe(report),
            Input::ActionOutcome { id, result } => self.on_outcome(id, result),
            Input::Operator(cmd) => self.on_operator(cmd),
            Input::WallClock {
                unix_ms,
                utc_offset_minutes,
            } => {
                self.wall = Some((self.now, unix_ms));
                if let Some(o) = utc_offset_minutes {
                    self.gov.timing.utc_offset_minutes = o;
                }
                // A jump may have entered or left a freeze window.
                self.replan_all();
            }
            Input::Signals(s) => {
                if let Some(svc) = self.services.get_mut(&s.service) {
                    if let Some(i) = s.instances {
                        svc.gov.instances = i;
                    }
                    if s.error_budget_remaining.is_some() {
                        svc.error_budget = s.error_budget_remaining;
                    }
                    if s.capacity_headroom.is_some() {
                        svc.headroom = s.capacity_headroom;
                    }
                }
            }
            Input::FreezeWindows(w) => {
                self.audit(
                    "freeze.windows_set",
                    vec![
                        ("count", w.len().to_string()),
                        (
                            "names",
                            w.iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                        ),
                    ],
                );
                self.gov.freeze_windows = w;
                self.replan_all();
            }
        }
        self.publish_dirty();
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.advance(now);
        self.expire_pauses();
        self.expire_approvals();
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in &names {
            self.timers(name);
        }
        // Freeze boundaries and freed limits are level-triggered: look again.
        self.replan_all();
        self.publish_dirty();
    }

    // === output ===

    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// The earliest time at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        let mut best: Option<MonoTime> = None;
        let mut consider = |t: Option<MonoTime>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        for svc in self.services.values() {
            if let Some(inc) = &svc.incident {
                consider(inc.retry_at);
                consider(inc.verify_until);
                consider(inc.deferred_until);
                consider(inc.rollout_at);
            }
            if svc.inflight.is_none() {
                if let Some(pr) = &svc.pending_revert {
                    if svc.incident.is_none() || pr.stage == ActionStage::Rollback {
                        consider(Some(pr.due));
                    }
                }
            }
        }
        for p in &self.pauses {
            consider(p.until);
        }
        for a in self.approvals.values() {
            consider(Some(a.expires_at));
        }
        if let Some(wall) = self.wall_now() {
            let waiting = self.services.values().any(|s| {
                s.incident
                    .as_ref()
                    .is_some_and(|i| i.phase == Phase::ConfirmingPattern)
            });
            if waiting {
                for f in &self.gov.freeze_windows {
                    for edge in [f.start_unix_ms, f.end_unix_ms] {
                        if edge > wall {
                            let d = u64::try_from(edge - wall).unwrap_or(u64::MAX);
                            consider(Some(MonoTime(self.now.0.saturating_add(d))));
                        }
                    }
                }
            }
        }
        best
    }

    // === internals ===

    fn advance(&mut self, now: MonoTime) {
        if now > self.now {
            self.now = now;
        }
    }

    fn audit(&mut self, kind: &'static str, fields: Vec<(&'static str, String)>) {
        self.out
            .push_back(Command::Audit(AuditEvent { kind, fields }));
    }

    fn operator_ok(&mut self, msg: String) {
        self.last_operator = Some(OperatorResult::Ok(msg));
    }

    fn operator_reject(&mut self, code: &'static str, message: String, by: String) {
        self.audit(
            "operator.rejected",
            vec![
                ("reason", message.clone()),
                ("reason_code", code.to_string()),
                ("by", by),
            ],
        );
        self.last_operator = Some(OperatorResult::Rejected { code, message });
    }

    fn on_probe(&mut self, r: ProbeReport) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(&r.service) else {
            return;
        };
        let Some(spec) = svc.spec.probes.iter().find(|p| p.name == r.probe) else {
            return;
        };
        let n_keep = spec.failure.consecutive.max(1) as usize;
        let over = spec.latency.as_ref().map(|l| l.over);
        let Some(st) = svc.probes.get_mut(&r.probe) else {
            return;
        };
        st.seen = true;
        if r.ok {
            st.fail_times.clear();
            st.recent_failures.clear();
            let is_slow = over.is_some_and(|o| r.latency > o);
            if is_slow {
                st.slow_run = st.slow_run.saturating_add(1);
                st.healthy_run = 0;
            } else {
                st.slow_run = 0;
                st.healthy_run = st.healthy_run.saturating_add(1);
            }
        } else {
            st.healthy_run = 0;
            st.slow_run = 0;
            st.fail_times.push_back(now);
            while st.fail_times.len() > n_keep {
                st.fail_times.pop_front();
            }
            st.recent_failures
                .push_back(r.failure.clone().unwrap_or(ProbeFailure::Other));
            while st.recent_failures.len() > n_keep {
                st.recent_failures.pop_front();
            }
        }
        self.evaluate(&r.service);
    }

    /// Level-triggered: look at the service's current state and move it on.
    fn evaluate(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match svc.incident.as_ref().map(|i| (i.phase, i.probe.clone())) {
            None => {
                if let Some((probe, condition)) = svc.firing() {
                    self.open_incident(name, probe, condition);
                    self.plan(name);
                }
            }
            Some((Phase::ConfirmingPattern, probe)) => {
                if svc.recovered(&probe) {
                    let outcome = match svc.incident.as_ref() {
                        Some(i) if i.would_act => "would-act",
                        _ => "recovered",
                    };
                    self.resolve(name, outcome, "probe recovered without action".into());
                } else {
                    self.plan(name);
                }
            }
            Some((Phase::Verifying, probe)) => {
                let failed_again = match (svc.probe_spec(&probe), svc.probes.get(&probe)) {
                    (Some(p), Some(st)) => failing(p, st),
                    _ => false,
                };
                if failed_again {
                    // Clear evidence before the window ends: fail verification now.
                    let id = svc.incident.as_mut().map(|i| {
                        i.verify_until = None;
                        i.id.0.clone()
                    });
                    self.audit(
                        "verify.failed",
                        vec![
                            ("incident", id.unwrap_or_default()),
                            ("service", name.to_string()),
                            ("probe", probe.clone()),
                        ],
                    );
                    self.failed_heal(name, format!("{probe} failing again after the action"));
                } else if svc.recovered(&probe) {
                    svc.consecutive_failures = 0;
                    if let Some(inc) = svc.incident.as_mut() {
                        inc.verify_until = None;
                    }
                    let id = svc
                        .incident
                        .as_ref()
                        .map(|i| i.id.0.clone())
                        .unwrap_or_default();
                    self.audit(
                        "verify.passed",
                        vec![
                            ("incident", id),
                            ("service", name.to_string()),
                            ("probe", probe.clone()),
                        ],
                    );
                    self.resolve(name, "healed", format!("{probe} healthy again"));
                }
            }
            Some((Phase::ManualIntervention, probe)) => {
                if svc.recovered(&probe) {
                    self.resolve(
                        name,
                        "escalated",
                        format!("{probe} healthy again after escalation"),
                    );
                }
            }
            Some((_, _)) => {}
        }
    }

    fn open_incident(&mut self, name: &str, probe: String, condition: Condition) {
        let now = self.now;
        let id = IncidentId(format!("inc-{}-{}", self.instance, self.next_incident));
        self.next_incident += 1;
        let window = self.gov.limits.window;
        prune(&mut self.incident_opens, now, window);
        self.incident_opens.push_back(now);
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (cause, confidence) = match condition {
            Condition::Slow => ("latency degradation".to_string(), 0.7),
            Condition::Failing => {
                let st = svc.probes.get(&probe);
                let last = st.and_then(|s| s.recent_failures.back().cloned());
                match (last, st) {
                    (Some(last), Some(st)) => {
                        let (cause, prior) = last.diagnosis();
                        let agree = st
                            .recent_failures
                            .iter()
                            .filter(|f| f.same_class(&last))
                            .count() as f64;
                        let share = agree / st.recent_failures.len().max(1) as f64;
                        (cause, prior * share)
                    }
                    _ => ("unknown".to_string(), 0.3),
                }
            }
        };
        let trigger = format!("{probe} {}", condition.as_str());
        let mut inc = Incident {
            id: id.clone(),
            probe: probe.clone(),
            condition,
            cause: cause.clone(),
            confidence,
            phase: Phase::DetectingFailure,
            opened_at: now,
            updated_at: now,
            attempt: 0,
            retry_at: None,
            verify_until: None,
            deferred_until: None,
            rollout_at: None,
            waiting_reason: None,
            would_act: false,
            healed_by: None,
            actions: Vec::new(),
            timeline: VecDeque::new(),
            approval: None,
            approved: None,
            decisions: VecDeque::new(),
        };
        push_timeline(
            &mut inc,
            self.max_timeline,
            now,
            "detected",
            trigger.clone(),
        );
        inc.phase = Phase::ConfirmingPattern;
        push_timeline(
            &mut inc,
            self.max_timeline,
            now,
            "diagnosed",
            format!("likely cause: {cause} (confidence {confidence:.2})"),
        );
        svc.incident = Some(inc);
        svc.dirty = true;
        self.audit(
            "incident.opened",
            vec![
                ("incident", id.0.clone()),
                ("service", name.to_string()),
                ("trigger", trigger),
            ],
        );
        self.audit(
            "diagnosis",
            vec![
                ("incident", id.0),
                ("service", name.to_string()),
                ("cause", cause),
                ("confidence", format!("{confidence:.2}")),
            ],
        );
        let affected = self.affected_services();
        let max = self.gov.gates.mass_incident_services;
        if affected > max && !self.mass_paused {
            self.mass_paused = true;
            self.audit(
                "automation.paused",
                vec![
                    ("service", "*".into()),
                    ("kind", "*".into()),
                    ("reason_code", ReasonCode::MassIncident.as_str().into()),
                    ("affected_services", affected.to_string()),
                    ("by", "medic".into()),
                ],
            );
            self.out.push_back(Command::Notify(Notification {
                severity: Severity::Critical,
                service: "*".into(),
                incident: None,
                title: format!("{affected} services affected: automation paused"),
                message: format!(
                    "more than {max} services have open incidents; medic keeps detecting and \
                     recording but will not act until an operator resumes"
                ),
            }));
        }
    }

    fn affected_services(&self) -> u32 {
        self.services
            .values()
            .filter(|s| s.incident.is_some())
            .count() as u32
    }

    /// Severity of the open incident in `[0, 1]`.
    fn severity(inc: &Incident) -> f64 {
        match inc.condition {
            Condition::Failing => 0.5 + 0.5 * inc.confidence.clamp(0.0, 1.0),
            Condition::Slow => 0.3,
        }
    }

    /// Decide what to do about the open incident of `name`, which is waiting
    /// in `ConfirmingPattern` with nothing in flight.
    fn plan(&mut self, name: &str) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_ref() else {
            return;
        };
        if inc.phase != Phase::ConfirmingPattern || svc.inflight.is_some() {
            return;
        }
        if inc.deferred_until.is_some_and(|t| t > now) {
            return;
        }
        let incident_id = inc.id.0.clone();
        let (probe, condition) = (inc.probe.clone(), inc.condition);

        let Some(rem) = svc
            .spec
            .remediations
            .iter()
            .find(|r| r.probe == probe && r.condition == condition)
            .cloned()
        else {
            self.escalate(
                name,
                ReasonCode::NoRemediation.as_str(),
                format!(
                    "no remediation configured for {probe} {}",
                    condition.as_str()
                ),
            );
            return;
        };
        let Some(action) = svc.action_spec(&rem.action).cloned() else {
            self.escalate(
                name,
                ReasonCode::NoRemediation.as_str(),
                format!("remediation names unknown action {}", rem.action),
            );
            return;
        };
        let reason = format!("{incident_id}: {probe} {}", condition.as_str());
        self.act(name, &action, ActionStage::Direct, 0, reason, None);
    }

    /// Build the gate snapshot for `action` on `name`.
    fn gate_input(
        &mut self,
        name: &str,
        action: &ActionSpec,
        stage: ActionStage,
        forced: bool,
    ) -> Option<(GateInput, ActionGovernance)> {
        let now = self.now;
        let window = self.gov.limits.window;
        prune(&mut self.action_starts, now, window);
        prune(&mut self.failed_actions, now, window);
        prune(&mut self.incident_opens, now, window);
        prune(&mut self.feature_toggles, now, window);
        let wall = self.wall_now();
        let timing = self.gov.timing.risk(wall);
        let inflight_total = self
            .services
            .values()
            .filter(|s| s.inflight.is_some())
            .count() as u32;
        let total_targets = self.services.len() as u32;
        let affected = self.affected_services();
        let paused = self.pauses.iter().any(|p| {
            p.until.is_none_or(|t| t > now)
                && p.service.as_deref().is_none_or(|s| s == name)
                && p.kind.is_none_or(|k| k == action.kind)
        });
        let frozen =
            wall.is_some_and(|w| self.gov.freeze_windows.iter().any(|f| f.covers(name, w)));
        let global_mode = self.mode;
        let limits = self.gov.limits.clone();
        let feature_used = self.feature_toggles.len() as u32;
        let actions_last_hour = self.action_starts.len() as u32;
        let actions_window_frees_at = self.action_starts.front().map(|t| t.plus(window));
        let failed_last_hour = self.failed_actions.len() as u32;
        let incidents_last_hour = self.incident_opens.len() as u32;
        let mass_paused = self.mass_paused;
        let svc = self.services.get_mut(name)?;
        let ag = svc.action_gov(action);
        prune(&mut svc.restarts, now, svc.spec.policy.budget_window);
        prune(&mut svc.fallbacks, now, window);
        let budget = match ag.class {
            ActionClass::RestartService => Some(BudgetUse {
                code: ReasonCode::RestartBudget,
                used: svc.restarts.len() as u32,
                limit: svc.spec.policy.restart_budget,
            }),
            ActionClass::ToggleFeatureFlag => Some(BudgetUse {
                code: ReasonCode::FeatureBudget,
                used: feature_used,
                limit: limits.feature_disables_per_hour,
            }),
            ActionClass::Fallback => Some(BudgetUse {
                code: ReasonCode::FallbackBudget,
                used: svc.fallbacks.len() as u32,
                limit: limits.fallbacks_per_service_per_hour,
            }),
            _ => None,
        };
        let (score, approved) = match svc.incident.as_ref() {
            Some(inc) => {
                let size = ag
                    .change_size
                    .unwrap_or_else(|| change_size_for(action.risk));
                let score = risk_score(svc.gov.criticality, size, Engine::severity(inc), timing);
                let approved = inc
                    .approved
                    .as_ref()
                    .is_some_and(|(a, _)| *a == action.name);
                (score, approved)
            }
            None => (
                risk_score(
                    svc.gov.criticality,
                    ag.change_size
                        .unwrap_or_else(|| change_size_for(action.risk)),
                    0.0,
                    timing,
                ),
                false,
            ),
        };
        // Cooldown applies to a fresh heal, not to its retries or rollout.
        let cooldown_until = if stage == ActionStage::Direct {
            svc.last_success
                .get(&action.name)
                .map(|t| t.plus(svc.spec.policy.cooldown))
        } else {
            None
        };
        let input = GateInput {
            now,
            mode: svc.mode.unwrap_or(global_mode),
            risk: action.risk,
            score,
            approved,
            forced,
            continuation: !matches!(stage, ActionStage::Direct),
            consecutive_failures: svc.consecutive_failures,
            autoheal_disabled: svc.autoheal_disabled,
            mass_paused,
            affected_services: affected,
            paused,
            frozen,
            target_busy: svc.inflight.is_some(),
            cooldown_until,
            inflight_total,
            actions_last_hour,
            actions_window_frees_at,
            budget,
            failed_last_hour,
            incidents_last_hour,
            error_budget: svc.error_budget,
            inflight_targets: inflight_total,
            total_targets,
            removes_capacity: ag.removes_capacity.unwrap_or(ag.class.removes_capacity()),
            headroom: svc.headroom,
            instances: svc.gov.instances,
            canary_capable: ag.canary,
        };
        Some((input, ag))
    }

    /// Judge `action` for the incident of `name` and act on the decision.
    fn act(
        &mut self,
        name: &str,
        action: &ActionSpec,
        stage: ActionStage,
        attempt: u32,
        reason: String,
        forced: Option<(String, String)>,
    ) {
        let Some((input, ag)) = self.gate_input(name, action, stage, forced.is_some()) else {
            return;
        };
        let decision = decide(&self.gov, &input);
        let block = decision.reason();
        let message = match (&decision, block) {
            (Decision::Hold(b), _) if b.code == ReasonCode::ModeDryRun => format!(
                "dry-run: would run {} ({})",
                action.name,
                action.kind.as_str()
            ),
            (Decision::Skip(_), _) => format!("automation disabled: would run {}", action.name),
            (Decision::Hold(b), _) => format!("{b}: would run {}", action.name),
            (_, Some(b)) => format!("{}: {b}", action.name),
            (_, None) => format!("running {} ({})", action.name, decision.verdict()),
        };
        self.record_decision(name, action, stage, input.score, &decision, &message);
        match decision {
            Decision::Run { canary } => {
                let stage = if canary { ActionStage::Canary } else { stage };
                self.run(
                    name,
                    action,
                    &ag,
                    reason,
                    attempt,
                    stage,
                    input.score,
                    forced,
                );
            }
            Decision::Skip(b) => {
                self.wait(name, "skipped", b.code.as_str(), message, Severity::Warning);
            }
            Decision::Hold(b) => {
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.would_act = true;
                }
                let verdict = decision.verdict();
                self.wait(name, verdict, b.code.as_str(), message, Severity::Info);
            }
            Decision::Defer { reason: b, until } => {
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.deferred_until = until;
                }
                self.wait(name, "deferred", b.code.as_str(), message, Severity::Info);
            }
            Decision::Escalate(b) => self.escalate(name, b.code.as_str(), message),
            Decision::NeedsApproval {
                reason: b,
                approvers,
            } => {
                self.request_approval(name, action, input.score, b, approvers, message);
            }
        }
    }

    fn record_decision(
        &mut self,
        name: &str,
        action: &ActionSpec,
        stage: ActionStage,
        score: f64,
        decision: &Decision,
        message: &str,
    ) {
        let now = self.now;
        let max = self.max_timeline;
        let Some(inc) = self
            .services
            .get_mut(name)
            .and_then(|s| s.incident.as_mut())
        else {
            return;
        };
        let rec = DecisionRecord {
            at: now,
            action: action.name.clone(),
            stage,
            risk: action.risk,
            score,
            verdict: decision.verdict(),
            reason_code: decision.reason().map(|b| b.code.as_str()),
            reason: message.to_string(),
        };
        // Repeated identical waiting decisions are kept once.
        if inc
            .decisions
            .back()
            .is_some_and(|d| d.verdict == rec.verdict && d.reason == rec.reason)
        {
            return;
        }
        inc.decisions.push_back(rec);
        while inc.decisions.len() > max {
            inc.decisions.pop_front();
        }
    }

    fn request_approval(
        &mut self,
        name: &str,
        action: &ActionSpec,
        score: f64,
        reason: Block,
        required: u32,
        message: String,
    ) {
        let now = self.now;
        let expiry = self.gov.approvals.expiry;
        let Some(inc) = self
            .services
            .get_mut(name)
            .and_then(|s| s.incident.as_mut())
        else {
            return;
        };
        if inc.approval.is_some() {
            return;
        }
        let id = self.next_approval;
        self.next_approval += 1;
        inc.approval = Some(id);
        let incident = inc.id.clone();
        let expires_at = now.plus(expiry);
        self.approvals.insert(
            id,
            Approval {
                id,
                incident: incident.clone(),
                service: name.to_string(),
                action: action.name.clone(),
                risk: action.risk,
                score,
                reason,
                required,
                approvers: Vec::new(),
                requested_at: now,
                expires_at,
            },
        );
        self.audit(
            "approval.requested",
            vec![
                ("approval_id", format!("apr-{id}")),
                ("incident", incident.0.clone()),
                ("service", name.to_string()),
                ("action", action.name.clone()),
                ("risk", action.risk.as_str().to_string()),
                ("score", format!("{score:.3}")),
                ("reason_code", reason.code.as_str().to_string()),
                ("required", required.to_string()),
                ("expires_at_ms", expires_at.0.to_string()),
            ],
        );
        self.wait(
            name,
            "pending-approval",
            reason.code.as_str(),
            format!("{message}; waiting for approval apr-{id}"),
            Severity::Warning,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        name: &str,
        action: &ActionSpec,
        ag: &ActionGovernance,
        reason: String,
        attempt: u32,
        stage: ActionStage,
        score: f64,
        forced: Option<(String, String)>,
    ) {
        let now = self.now;
        let id = ActionId(self.next_action);
        self.next_action += 1;
        let stage = if forced.is_some() {
            ActionStage::Forced
        } else {
            stage
        };
        if forced.is_none() {
            self.action_starts.push_back(now);
            if ag.class == ActionClass::ToggleFeatureFlag {
                self.feature_toggles.push_back(now);
            }
        }
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if ag.class == ActionClass::RestartService {
            svc.restarts.push_back(now);
        }
        if ag.class == ActionClass::Fallback {
            svc.fallbacks.push_back(now);
        }
        let revert_of = match stage {
            ActionStage::Revert | ActionStage::Rollback => svc
                .pending_revert
                .take()
                .map(|p| p.of)
                .or_else(|| Some(String::new())),
            _ => None,
        };
        svc.inflight = Some(InFlight {
            id,
            action: action.name.clone(),
            stage,
            revert_of: revert_of.clone(),
            cancel_requested: false,
        });
        let mut approvers = String::new();
        let incident = if revert_of.is_some() {
            None
        } else {
            svc.incident.as_mut().map(|inc| {
                inc.phase = Phase::ExecutingHeal;
                inc.attempt = attempt;
                inc.waiting_reason = None;
                inc.deferred_until = None;
                inc.rollout_at = None;
                if let Some((_, by)) = &inc.approved {
                    approvers = by.join(",");
                }
                inc.actions.push(action.name.clone());
                push_timeline(
                    inc,
                    self.max_timeline,
                    now,
                    "action",
                    format!(
                        "running {} (attempt {}, {})",
                        action.name,
                        attempt + 1,
                        stage.as_str()
                    ),
                );
                inc.id.clone()
            })
        };
        svc.dirty = true;
        let mut fields = vec![
            ("action_id", id.to_string()),
            (
                "incident",
                incident.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
            ),
            ("service", name.to_string()),
            ("action", action.name.clone()),
            ("kind", action.kind.as_str().to_string()),
            ("class", ag.class.as_str().to_string()),
            ("risk", action.risk.as_str().to_string()),
            ("score", format!("{score:.3}")),
            ("stage", stage.as_str().to_string()),
            ("attempt", (attempt + 1).to_string()),
            ("reason", reason.clone()),
        ];
        if !approvers.is_empty() {
            fields.push(("approved_by", approvers));
        }
        if let Some(of) = &revert_of {
            fields.push(("revert_of", of.clone()));
        }
        if let Some((by, why)) = &forced {
            self.audit(
                "override",
                vec![
                    ("action_id", id.to_string()),
                    ("service", name.to_string()),
                    ("action", action.name.clone()),
                    ("by", by.clone()),
                    ("reason", why.clone()),
                ],
            );
            fields.push(("override_by", by.clone()));
        }
        self.audit("action.intent", fields);
        self.out.push_back(Command::RunAction(ActionRequest {
            id,
            incident,
            service: name.to_string(),
            action: action.name.clone(),
            kind: action.kind,
            attempt,
            reason,
            risk: action.risk,
            stage,
        }));
    }

    /// Record a waiting decision once per distinct reason.
    fn wait(
        &mut self,
        name: &str,
        verdict: &'static str,
        code: &'static str,
        reason: String,
        severity: Severity,
    ) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_mut() else {
            return;
        };
        if inc.waiting_reason.as_deref() == Some(reason.as_str()) {
            return;
        }
        inc.waiting_reason = Some(reason.clone());
        push_timeline(inc, self.max_timeline, now, verdict, reason.clone());
        let id = inc.id.clone();
        svc.dirty = true;
        self.audit(
            "decision",
            vec![
                ("incident", id.0.clone()),
                ("service", name.to_string()),
                ("verdict", verdict.to_string()),
                ("reason_code", code.to_string()),
                ("reason", reason.clone()),
            ],
        );
        if severity > Severity::Info || verdict == "would-act" {
            self.out.push_back(Command::Notify(Notification {
                severity,
                service: name.to_string(),
                incident: Some(id),
                title: format!("{name}: {verdict}"),
                message: reason,
            }));
        }
    }

    fn escalate(&mut self, name: &str, code: &'static str, reason: String) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_mut() else {
            return;
        };
        if inc.phase == Phase::ManualIntervention {
            return;
        }
        inc.phase = Phase::EscalatingAlert;
        inc.retry_at = None;
        inc.verify_until = None;
        inc.deferred_until = None;
        inc.rollout_at = None;
        let approval = inc.approval.take();
        push_timeline(inc, self.max_timeline, now, "escalated", reason.clone());
        let id = inc.id.clone();
        if let Some(a) = approval.and_then(|a| self.approvals.remove(&a)) {
            self.audit(
                "approval.withdrawn",
                vec![
                    ("approval_id", format!("apr-{}", a.id)),
                    ("incident", id.0.clone()),
                ],
            );
        }
        self.audit(
            "incident.escalated",
            vec![
                ("incident", id.0.clone()),
                ("service", name.to_string()),
                ("reason_code", code.to_string()),
                ("reason", reason.clone()),
            ],
        );
        self.out.push_back(Command::Notify(Notification {
            severity: Severity::Critical,
            service: name.to_string(),
            incident: Some(id),
            title: format!("{name}: escalated to a human"),
            message: reason,
        }));
        if let Some(inc) = self
            .services
            .get_mut(name)
            .and_then(|s| s.incident.as_mut())
        {
            inc.phase = Phase::ManualIntervention;
            push_timeline(
                inc,
                self.max_timeline,
                now,
                "manual",
                "waiting for manual intervention".into(),
            );
        }
        if let Some(svc) = self.services.get_mut(name) {
            svc.dirty = true;
        }
    }

    fn resolve(&mut self, name: &str, outcome: &'static str, reason: String) {
        let now = self.now;
        let max = self.max_timeline;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(mut inc) = svc.incident.take() else {
            return;
        };
        inc.phase = Phase::Resolved;
        push_timeline(
            &mut inc,
            max,
            now,
            "resolved",
            format!("{outcome}: {reason}"),
        );
        // A mitigation with a revert is undone after it has held.
        if outcome == "healed" {
            if let Some(spec) = inc.healed_by.as_deref().and_then(|a| svc.action_spec(a)) {
                if let Some(rv) = &spec.revert {
                    svc.pending_revert = Some(PendingRevert {
                        due: now.plus(rv.after),
                        action: rv.action.clone(),
                        of: spec.name.clone(),
                        stage: ActionStage::Revert,
                        blocked: None,
                    });
                }
            }
        }
        svc.dirty = false;
        let v = view(name, &inc, Some(now), Some(outcome));
        if let Some(a) = inc.approval.take().and_then(|a| self.approvals.remove(&a)) {
            self.audit(
                "approval.withdrawn",
                vec![
                    ("approval_id", format!("apr-{}", a.id)),
                    ("incident", inc.id.0.clone()),
                ],
            );
        }
        self.audit(
            "incident.resolved",
            vec![
                ("incident", inc.id.0.clone()),
                ("service", name.to_string()),
                ("outcome", outcome.to_string()),
                ("reason", reason),
            ],
        );
        let ex = Explanation {
            incident: inc.id.clone(),
            service: name.to_string(),
            phase: Phase::Resolved,
            outcome: Some(outcome),
            decisions: inc.decisions.into_iter().collect(),
            pending_approval: None,
        };
        self.explained.insert(inc.id.0.clone(), ex);
        self.explained_order.push_back(inc.id.0);
        while self.explained_order.len() > self.gov.max_explanations.max(1) {
            if let Some(old) = self.explained_order.pop_front() {
                self.explained.remove(&old);
            }
        }
        self.out.push_back(Command::IncidentChanged(v));
    }

    fn on_outcome(&mut self, id: ActionId, result: Result<String, ActionFailure>) {
        let now = self.now;
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.inflight.as_ref().is_some_and(|f| f.id == id))
            .map(|(n, _)| n.clone())
        else {
            // Unknown or duplicate outcome: record it, change nothing.
            self.audit(
                "action.outcome_unmatched",
                vec![("action_id", id.to_string())],
            );
            return;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let Some(flight) = svc.inflight.take() else {
            return;
        };
        let (status, detail) = match &result {
            Ok(out) => ("succeeded", out.clone()),
            Err(f) => ("failed", format!("{}: {}", f.kind.as_str(), f.message)),
        };
        let incident = match flight.revert_of {
            Some(_) => String::new(),
            None => svc
                .incident
                .as_ref()
                .map(|i| i.id.0.clone())
                .unwrap_or_default(),
        };
        self.audit(
            "action.outcome",
            vec![
                ("action_id", id.to_string()),
                ("incident", incident),
                ("service", name.clone()),
                ("action", flight.action.clone()),
                ("stage", flight.stage.as_str().to_string()),
                ("status", status.to_string()),
                ("detail", detail.clone()),
            ],
        );
        let cancelled = flight.cancel_requested
            || matches!(&result, Err(f) if f.kind == ActionFailureKind::Cancelled);
        if result.is_err() && !cancelled {
            let window = self.gov.limits.window;
            prune(&mut self.failed_actions, now, window);
            self.failed_actions.push_back(now);
        }
        let max_consecutive = self.gov.limits.max_consecutive_failures.max(1);
        let bake = self.gov.canary_bake;
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        if result.is_ok() && flight.stage != ActionStage::Canary {
            svc.last_success.insert(flight.action.clone(), now);
        }
        if let Some(of) = flight.revert_of {
            if result.is_err() {
                self.out.push_back(Command::Notify(Notification {
                    severity: Severity::Warning,
                    service: name.clone(),
                    incident: None,
                    title: format!("{name}: revert of {of} failed"),
                    message: detail,
                }));
            }
            self.evaluate(&name);
            self.replan_all();
            return;
        }
        let verify_window = svc.spec.policy.verify_window;
        let retry = svc.spec.policy.retry.clone();
        if result.is_err() && !cancelled {
            svc.consecutive_failures = svc.consecutive_failures.saturating_add(1);
        }
        let consecutive = svc.consecutive_failures;
        let Some(inc) = svc.incident.as_mut() else {
            self.replan_all();
            return;
        };
        svc.dirty = true;
        match result {
            Ok(_) if flight.stage == ActionStage::Canary => {
                let at = now.plus(bake);
                inc.rollout_at = Some(at);
                inc.phase = Phase::ExecutingHeal;
                push_timeline(
                    inc,
                    self.max_timeline,
                    now,
                    "canary_ok",
                    format!(
                        "canary of {} succeeded; full rollout at {at}",
                        flight.action
                    ),
                );
            }
            Ok(_) => {
                inc.phase = Phase::Verifying;
                inc.verify_until = Some(now.plus(verify_window));
                inc.healed_by = Some(flight.action.clone());
                push_timeline(
                    inc,
                    self.max_timeline,
                    now,
                    "verifying",
                    format!(
                        "{} succeeded; watching for {}ms",
                        flight.action,
                        verify_window.as_millis()
                    ),
                );
                // The action changed the world: evidence from before it is stale
                // for every probe of the service, and fresh evidence is needed.
                for st in svc.probes.values_mut() {
                    st.healthy_run = 0;
                    st.slow_run = 0;
                    st.fail_times.clear();
                    st.recent_failures.clear();
                }
            }
            Err(_) if cancelled => {
                push_timeline(
                    inc,
                    self.max_timeline,
                    now,
                    "cancelled",
                    format!("{} cancelled by an operator", flight.action),
                );
                self.escalate(
                    &name,
                    "cancelled",
                    format!("{} cancelled by an operator ({detail})", flight.action),
                );
            }
            Err(_) => {
                let failures = inc.attempt + 1;
                if consecutive >= max_consecutive {
                    push_timeline(
                        inc,
                        self.max_timeline,
                        now,
                        "action_failed",
                        format!("{} failed: {detail}", flight.action),
                    );
                    self.disable_autoheal(&name, consecutive);
                    self.escalate(
                        &name,
                        ReasonCode::ConsecutiveFailures.as_str(),
                        format!(
                            "{consecutive} consecutive failed actions; automation disabled for \
                             {name} ({detail})"
                        ),
                    );
                } else if failures >= retry.max_attempts {
                    push_timeline(
                        inc,
                        self.max_timeline,
                        now,
                        "action_failed",
                        format!("{} failed {failures} times: {detail}", flight.action),
                    );
                    let reason = format!("{} failed {failures} times: {detail}", flight.action);
                    // Out of execution attempts: a human has to look, whatever the heal count.
                    self.escalate(&name, "retries_exhausted", reason);
                } else {
                    let delay = retry.delay(failures, self.rng.unit());
                    let at = now.plus(delay);
                    inc.retry_at = Some(at);
                    inc.attempt = failures;
                    push_timeline(
                        inc,
                        self.max_timeline,
                        now,
                        "retry_scheduled",
                        format!("{} failed ({detail}); retry at {at}", flight.action),
                    );
                    let iid = inc.id.0.clone();
                    self.audit(
                        "action.retry_scheduled",
                        vec![
                            ("incident", iid),
                            ("service", name.clone()),
                            ("action", flight.action.clone()),
                            ("delay_ms", delay.as_millis().to_string()),
                        ],
                    );
                }
            }
        }
        self.replan_all();
    }

    fn disable_autoheal(&mut self, name: &str, consecutive: u32) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.autoheal_disabled {
            return;
        }
        svc.autoheal_disabled = true;
        self.audit(
            "autoheal.disabled",
            vec![
                ("service", name.to_string()),
                (
                    "reason_code",
                    ReasonCode::ConsecutiveFailures.as_str().into(),
                ),
                ("consecutive_failures", consecutive.to_string()),
            ],
        );
    }

    /// A heal did not work (verification failed): roll it back when it can
    /// be undone, and escalate. Too many failures disable automation.
    fn failed_heal(&mut self, name: &str, reason: String) {
        let now = self.now;
        let window = self.gov.limits.window;
        prune(&mut self.failed_actions, now, window);
        self.failed_actions.push_back(now);
        let max_consecutive = self.gov.limits.max_consecutive_failures.max(1);
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let fwindow = svc.spec.policy.failed_window;
        svc.failed_heals.push_back(now);
        prune(&mut svc.failed_heals, now, fwindow);
        svc.consecutive_failures = svc.consecutive_failures.saturating_add(1);
        let consecutive = svc.consecutive_failures;
        let n = svc.failed_heals.len();
        let max = svc.spec.policy.max_failed_heals.max(1) as usize;
        // Roll back what can be undone.
        let rollback = svc
            .incident
            .as_ref()
            .and_then(|i| i.healed_by.clone())
            .and_then(|a| svc.action_spec(&a).cloned())
            .and_then(|spec| spec.revert.map(|rv| (rv.action, spec.name)));
        if let Some((action, of)) = rollback {
            svc.pending_revert = Some(PendingRevert {
                due: now,
                action,
                of,
                stage: ActionStage::Rollback,
                blocked: None,
            });
        }
        if n >= max || consecutive >= max_consecutive {
            self.disable_autoheal(name, consecutive);
            self.escalate(
                name,
                ReasonCode::ConsecutiveFailures.as_str(),
                format!(
                    "{n} failed heals within {}s ({consecutive} consecutive failures); autoheal \
                     disabled ({reason})",
                    fwindow.as_secs()
                ),
            );
        } else {
            self.retry_heal(name, reason, consecutive, max_consecutive);
        }
        self.timers(name);
    }

    /// A failed verification below the limits: a human is told (warning) and
    /// the heal is planned again through every gate, cooldown and budget. The
    /// `max_consecutive_failures`-th failure disables automation and escalates.
    fn retry_heal(&mut self, name: &str, reason: String, consecutive: u32, max: u32) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_mut() else {
            return;
        };
        if inc.phase == Phase::ManualIntervention {
            return;
        }
        inc.phase = Phase::ConfirmingPattern;
        inc.attempt = 0;
        inc.retry_at = None;
        inc.verify_until = None;
        inc.waiting_reason = None;
        inc.healed_by = None;
        let msg =
            format!("heal failed ({consecutive}/{max} before autoheal is disabled): {reason}");
        push_timeline(inc, self.max_timeline, now, "heal_failed", msg.clone());
        let id = inc.id.clone();
        svc.dirty = true;
        self.audit(
            "heal.retrying",
            vec![
                ("incident", id.0.clone()),
                ("service", name.to_string()),
                ("reason_code", "verify_failed".to_string()),
                ("reason", msg.clone()),
                ("consecutive_failures", consecutive.to_string()),
            ],
        );
        self.out.push_back(Command::Notify(Notification {
            severity: Severity::Warning,
            service: name.to_string(),
            incident: Some(id),
            title: format!("{name}: heal failed, trying again"),
            message: msg,
        }));
        self.plan(name);
    }

    /// Plan again for every incident waiting for a decision.
    fn replan_all(&mut self) {
        let names: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| {
                s.inflight.is_none()
                    && s.incident
                        .as_ref()
                        .is_some_and(|i| i.phase == Phase::ConfirmingPattern)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            self.plan(&n);
        }
    }

    fn expire_pauses(&mut self) {
        let now = self.now;
        let (expired, kept): (Vec<Pause>, Vec<Pause>) = std::mem::take(&mut self.pauses)
            .into_iter()
            .partition(|p| p.until.is_some_and(|t| t <= now));
        self.pauses = kept;
        for p in expired {
            self.audit(
                "automation.pause_expired",
                vec![
                    ("service", p.service.unwrap_or_else(|| "*".into())),
                    (
                        "kind",
                        p.kind.map(|k| k.as_str()).unwrap_or("*").to_string(),
                    ),
                ],
            );
            self.clear_waiting_reasons();
        }
    }

    fn clear_waiting_reasons(&mut self) {
        for svc in self.services.values_mut() {
            if let Some(inc) = svc.incident.as_mut() {
                inc.waiting_reason = None;
            }
        }
    }

    fn expire_approvals(&mut self) {
        let now = self.now;
        let due: Vec<u64> = self
            .approvals
            .values()
            .filter(|a| a.expires_at <= now)
            .map(|a| a.id)
            .collect();
        for id in due {
            let Some(a) = self.approvals.remove(&id) else {
                continue;
            };
            self.audit(
                "approval.expired",
                vec![
                    ("approval_id", format!("apr-{id}")),
                    ("incident", a.incident.0.clone()),
                    ("service", a.service.clone()),
                    ("action", a.action.clone()),
                    ("approvers", a.approvers.join(",")),
                ],
            );
            if let Some(inc) = self
                .services
                .get_mut(&a.service)
                .and_then(|s| s.incident.as_mut())
                .filter(|i| i.id == a.incident)
            {
                inc.approval = None;
            }
            self.escalate(
                &a.service,
                ReasonCode::ApprovalExpired.as_str(),
                format!("approval apr-{id} for {} expired", a.action),
            );
        }
    }

    fn timers(&mut self, name: &str) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if let Some(inc) = svc.incident.as_mut() {
            if inc.verify_until.is_some_and(|t| t <= now) {
                inc.verify_until = None;
                let id = inc.id.0.clone();
                let probe = inc.probe.clone();
                self.audit(
                    "verify.failed",
                    vec![
                        ("incident", id),
                        ("service", name.to_string()),
                        ("probe", probe.clone()),
                    ],
                );
                self.failed_heal(
                    name,
                    format!("{probe} still unhealthy after the verify window"),
                );
                return;
            }
            if inc.retry_at.is_some_and(|t| t <= now) {
                inc.retry_at = None;
                inc.phase = Phase::ConfirmingPattern;
                let attempt = inc.attempt;
                let reason = format!("{} {} (retry)", inc.probe, inc.condition.as_str());
                let last = inc.actions.last().cloned();
                let Some(action) = last.and_then(|a| svc.action_spec(&a).cloned()) else {
                    return;
                };
                self.act(name, &action, ActionStage::Retry, attempt, reason, None);
                return;
            }
            if inc.rollout_at.is_some_and(|t| t <= now) {
                inc.rollout_at = None;
                inc.phase = Phase::ConfirmingPattern;
                let reason = format!(
                    "{} {} (rollout after canary)",
                    inc.probe,
                    inc.condition.as_str()
                );
                let last = inc.actions.last().cloned();
                let Some(action) = last.and_then(|a| svc.action_spec(&a).cloned()) else {
                    return;
                };
                self.act(name, &action, ActionStage::Rollout, 0, reason, None);
                return;
            }
            if inc.deferred_until.is_some_and(|t| t <= now) {
                inc.deferred_until = None;
                inc.waiting_reason = None;
                self.plan(name);
                return;
            }
        }
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.inflight.is_some() {
            return;
        }
        let Some(pr) = svc.pending_revert.clone() else {
            return;
        };
        if pr.due > now || (svc.incident.is_some() && pr.stage != ActionStage::Rollback) {
            return;
        }
        let Some(spec) = svc.action_spec(&pr.action).cloned() else {
            svc.pending_revert = None;
            return;
        };
        let Some((input, ag)) = self.gate_input(name, &spec, pr.stage, false) else {
            return;
        };
        let decision = decide(&self.gov, &input);
        match decision {
            Decision::Run { .. } => {
                let reason = format!(
                    "{} {} after it {}",
                    pr.stage.as_str(),
                    pr.of,
                    match pr.stage {
                        ActionStage::Rollback => "failed verification",
                        _ => "held",
                    }
                );
                self.run(name, &spec, &ag, reason, 0, pr.stage, input.score, None);
            }
            Decision::Defer { reason, until } => {
                self.revert_blocked(
                    name,
                    &pr,
                    reason,
                    until.unwrap_or(now.plus(Duration::from_secs(30))),
                );
            }
            Decision::Hold(b) if b.code != ReasonCode::ModeDryRun => {
                self.revert_blocked(name, &pr, b, now.plus(Duration::from_secs(30)));
            }
            other => {
                if let Some(svc) = self.services.get_mut(name) {
                    svc.pending_revert = None;
                }
                let code = other.reason().map(|b| b.code.as_str()).unwrap_or("");
                self.audit(
                    "revert.dropped",
                    vec![
                        ("service", name.to_string()),
                        ("action", pr.action.clone()),
                        ("revert_of", pr.of.clone()),
                        ("reason_code", code.to_string()),
                    ],
                );
                if code != ReasonCode::ModeDryRun.as_str()
                    && code != ReasonCode::ModeDisabled.as_str()
                {
                    self.out.push_back(Command::Notify(Notification {
                        severity: Severity::Warning,
                        service: name.to_string(),
                        incident: None,
                        title: format!("{name}: {} of {} not run", pr.stage.as_str(), pr.of),
                        message: format!("blocked: {code}"),
                    }));
                }
            }
        }
    }

    fn revert_blocked(&mut self, name: &str, pr: &PendingRevert, b: Block, retry_at: MonoTime) {
        let code = b.code.as_str();
        let first = pr.blocked != Some(code);
        if let Some(p) = self
            .services
            .get_mut(name)
            .and_then(|s| s.pending_revert.as_mut())
        {
            p.due = retry_at.max(self.now.plus(Duration::from_millis(1)));
            p.blocked = Some(code);
        }
        if first {
            self.audit(
                "revert.deferred",
                vec![
                    ("service", name.to_string()),
                    ("action", pr.action.clone()),
                    ("revert_of", pr.of.clone()),
                    ("reason_code", code.to_string()),
                    ("reason", b.to_string()),
                ],
            );
        }
    }

    fn on_operator(&mut self, cmd: OperatorCommand) {
        self.last_operator = None;
        match cmd {
            OperatorCommand::SetMode { service, mode, by } => {
                match &service {
                    Some(s) => match self.services.get_mut(s) {
                        Some(svc) => svc.mode = Some(mode),
                        None => {
                            self.operator_reject(
                                "unknown_service",
                                format!("unknown service {s}"),
                                by,
                            );
                            return;
                        }
                    },
                    None => self.mode = mode,
                }
                self.audit(
                    "mode.changed",
                    vec![
                        ("service", service.clone().unwrap_or_else(|| "*".into())),
                        ("mode", mode.as_str().to_string()),
                        ("by", by),
                    ],
                );
                self.operator_ok(format!(
                    "mode of {} set to {mode}",
                    service.as_deref().unwrap_or("*")
                ));
                let names: Vec<String> = match service {
                    Some(s) => vec![s],
                    None => self.services.keys().cloned().collect(),
                };
                for n in names {
                    if let Some(inc) = self.services.get_mut(&n).and_then(|s| s.incident.as_mut()) {
                        inc.waiting_reason = None;
                    }
                    self.evaluate(&n);
                }
            }
            OperatorCommand::ResolveIncident { id, by, reason } => {
                let name = self
                    .services
                    .iter()
                    .find(|(_, s)| s.incident.as_ref().is_some_and(|i| i.id.0 == id))
                    .map(|(n, _)| n.clone());
                match name {
                    Some(n) => {
                        self.audit(
                            "operator.resolve",
                            vec![
                                ("incident", id.clone()),
                                ("by", by.clone()),
                                ("reason", reason.clone()),
                            ],
                        );
                        self.resolve(&n, "resolved-by-operator", format!("{by}: {reason}"));
                        self.operator_ok(format!("incident {id} resolved"));
                    }
                    None => self.operator_reject(
                        "incident_not_open",
                        format!("no open incident {id}"),
                        by,
                    ),
                }
            }
            OperatorCommand::EnableAutoheal { service, by } => {
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.autoheal_disabled = false;
                    svc.consecutive_failures = 0;
                    svc.failed_heals.clear();
                    self.audit(
                        "autoheal.enabled",
                        vec![("service", service.clone()), ("by", by)],
                    );
                    self.operator_ok(format!("autoheal enabled for {service}"));
                    self.evaluate(&service);
                } else {
                    self.operator_reject(
                        "unknown_service",
                        format!("unknown service {service}"),
                        by,
                    );
                }
            }
            OperatorCommand::Pause {
                service,
                kind,
                duration,
                by,
                reason,
            } => {
                if let Some(s) = service.as_ref().filter(|s| !self.services.contains_key(*s)) {
                    self.operator_reject("unknown_service", format!("unknown service {s}"), by);
                    return;
                }
                let until = duration.map(|d| self.now.plus(d));
                self.audit(
                    "automation.paused",
                    vec![
                        ("service", service.clone().unwrap_or_else(|| "*".into())),
                        ("kind", kind.map(|k| k.as_str()).unwrap_or("*").to_string()),
                        ("reason_code", ReasonCode::Paused.as_str().into()),
                        (
                            "until_ms",
                            until.map(|t| t.0.to_string()).unwrap_or_default(),
                        ),
                        ("by", by.clone()),
                        ("reason", reason.clone()),
                    ],
                );
                self.operator_ok(format!(
                    "paused {} {}{}",
                    service.as_deref().unwrap_or("*"),
                    kind.map(|k| k.as_str()).unwrap_or("*"),
                    until.map(|t| format!(" until {t}")).unwrap_or_default()
                ));
                // One pause per scope: a new one replaces the old.
                self.pauses
                    .retain(|p| !(p.service == service && p.kind == kind));
                self.pauses.push(Pause {
                    service,
                    kind,
                    until,
                    by,
                    reason,
                });
                self.clear_waiting_reasons();
                self.replan_all();
            }
            OperatorCommand::Resume { service, kind, by } => {
                let before = self.pauses.len();
                let all = service.is_none() && kind.is_none();
                if all {
                    self.pauses.clear();
                } else {
                    self.pauses
                        .retain(|p| !(p.service == service && p.kind == kind));
                }
                let lifted = before - self.pauses.len();
                let mass = all && self.mass_paused;
                if mass {
                    self.mass_paused = false;
                }
                self.audit(
                    "automation.resumed",
                    vec![
                        ("service", service.clone().unwrap_or_else(|| "*".into())),
                        ("kind", kind.map(|k| k.as_str()).unwrap_or("*").to_string()),
                        ("pauses_lifted", lifted.to_string()),
                        ("mass_incident_latch_lifted", mass.to_string()),
                        ("by", by),
                    ],
                );
                self.operator_ok(format!("{lifted} pauses lifted"));
                self.clear_waiting_reasons();
                self.replan_all();
            }
            OperatorCommand::Approve { id, by } => self.approve(&id, by),
            OperatorCommand::Reject { id, by, reason } => {
                let Some(a) = parse_approval_id(&id).and_then(|n| self.approvals.remove(&n)) else {
                    self.operator_reject(
                        "approval_not_found",
                        format!("no pending approval {id}"),
                        by,
                    );
                    return;
                };
                self.audit(
                    "approval.rejected",
                    vec![
                        ("approval_id", format!("apr-{}", a.id)),
                        ("incident", a.incident.0.clone()),
                        ("service", a.service.clone()),
                        ("action", a.action.clone()),
                        ("by", by.clone()),
                        ("reason", reason.clone()),
                    ],
                );
                if let Some(inc) = self
                    .services
                    .get_mut(&a.service)
                    .and_then(|s| s.incident.as_mut())
                    .filter(|i| i.id == a.incident)
                {
                    inc.approval = None;
                }
                self.operator_ok(format!("apr-{} rejected", a.id));
                self.escalate(
                    &a.service,
                    ReasonCode::ApprovalRejected.as_str(),
                    format!("{by} rejected {}: {reason}", a.action),
                );
            }
            OperatorCommand::CancelAction { id, by, reason } => {
                let found = self.services.iter_mut().find_map(|(n, s)| {
                    s.inflight.as_mut().filter(|f| f.id == id).map(|f| {
                        f.cancel_requested = true;
                        (n.clone(), f.action.clone())
                    })
                });
                let Some((service, action)) = found else {
                    self.operator_reject("action_not_running", format!("{id} is not running"), by);
                    return;
                };
                self.audit(
                    "action.cancel_requested",
                    vec![
                        ("action_id", id.to_string()),
                        ("service", service.clone()),
                        ("action", action),
                        ("by", by.clone()),
                        ("reason", reason.clone()),
                    ],
                );
                self.operator_ok(format!("cancel of {id} requested"));
                self.out.push_back(Command::CancelAction {
                    id,
                    service,
                    by,
                    reason,
                });
            }
            OperatorCommand::ForceAction {
                service,
                action,
                by,
                reason,
            } => {
                if reason.trim().is_empty() {
                    self.operator_reject(
                        "reason_required",
                        "an override needs a reason".into(),
                        by,
                    );
                    return;
                }
                let Some(svc) = self.services.get(&service) else {
                    self.operator_reject(
                        "unknown_service",
                        format!("unknown service {service}"),
                        by,
                    );
                    return;
                };
                let Some(spec) = svc.action_spec(&action).cloned() else {
                    self.operator_reject(
                        "unknown_action",
                        format!("{service} has no action {action}"),
                        by,
                    );
                    return;
                };
                if svc.inflight.is_some() {
                    self.operator_reject(
                        ReasonCode::TargetBusy.as_str(),
                        format!("an action is already running on {service}"),
                        by,
                    );
                    return;
                }
                if let Some(inc) = self
                    .services
                    .get_mut(&service)
                    .and_then(|s| s.incident.as_mut())
                {
                    // A human takes the heal over: it is verified like any other.
                    inc.retry_at = None;
                    inc.rollout_at = None;
                    inc.verify_until = None;
                    inc.deferred_until = None;
                }
                let why = format!("override by {by}: {reason}");
                self.act(
                    &service,
                    &spec,
                    ActionStage::Forced,
                    0,
                    why,
                    Some((by, reason)),
                );
                self.operator_ok(format!("{action} forced on {service}"));
            }
        }
    }

    fn approve(&mut self, id: &str, by: String) {
        let two_person = self.gov.approvals.two_person_high;
        let Some(n) = parse_approval_id(id).filter(|n| self.approvals.contains_key(n)) else {
            self.operator_reject(
                "approval_not_found",
                format!("no pending approval {id}"),
                by,
            );
            return;
        };
        let Some(a) = self.approvals.get_mut(&n) else {
            return;
        };
        if a.approvers.contains(&by) {
            self.operator_reject(
                "same_approver",
                format!("{by} already approved apr-{n}; a second, different approver is needed"),
                by,
            );
            return;
        }
        a.approvers.push(by.clone());
        let done = a.approvers.len() as u32 >= a.required.max(1);
        let (count, required) = (a.approvers.len(), a.required);
        self.audit(
            "approval.approved",
            vec![
                ("approval_id", format!("apr-{n}")),
                ("by", by.clone()),
                ("approvals", count.to_string()),
                ("required", required.to_string()),
                ("two_person_rule", two_person.to_string()),
            ],
        );
        if !done {
            self.operator_ok(format!("apr-{n}: {count} of {required} approvals"));
            return;
        }
        let Some(a) = self.approvals.remove(&n) else {
            return;
        };
        self.audit(
            "approval.granted",
            vec![
                ("approval_id", format!("apr-{n}")),
                ("incident", a.incident.0.clone()),
                ("service", a.service.clone()),
                ("action", a.action.clone()),
                ("risk", a.risk.as_str().to_string()),
                ("approvers", a.approvers.join(",")),
            ],
        );
        self.operator_ok(format!("apr-{n} granted"));
        if let Some(inc) = self
            .services
            .get_mut(&a.service)
            .and_then(|s| s.incident.as_mut())
            .filter(|i| i.id == a.incident)
        {
            inc.approval = None;
            inc.approved = Some((a.action.clone(), a.approvers.clone()));
            inc.waiting_reason = None;
        }
        self.plan(&a.service);
    }

    fn publish_dirty(&mut self) {
        let mut views = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            if svc.dirty {
                svc.dirty = false;
                if let Some(inc) = &svc.incident {
                    views.push(view(name, inc, None, None));
                }
            }
        }
        for v in views {
            self.out.push_back(Command::IncidentChanged(v));
        }
    }
}

fn approval_view(a: &Approval) -> ApprovalView {
    ApprovalView {
        id: format!("apr-{}", a.id),
        incident: a.incident.clone(),
        service: a.service.clone(),
        action: a.action.clone(),
        risk: a.risk,
        score: a.score,
        reason_code: a.reason.code.as_str(),
        reason: a.reason.to_string(),
        required: a.required,
        approvers: a.approvers.clone(),
        requested_at: a.requested_at,
        expires_at: a.expires_at,
    }
}

fn push_timeline(
    inc: &mut Incident,
    max: usize,
    at: MonoTime,
    kind: &'static str,
    message: String,
) {
    inc.updated_at = at;
    inc.timeline.push_back(TimelineItem { at, kind, message });
    while inc.timeline.len() > max {
        inc.timeline.pop_front();
    }
}

fn view(
    service: &str,
    inc: &Incident,
    closed_at: Option<MonoTime>,
    outcome: Option<&'static str>,
) -> IncidentView {
    let outcome = outcome.or(match inc.phase {
        Phase::ManualIntervention | Phase::EscalatingAlert => Some("escalated"),
        _ if inc.would_act => Some("would-act"),
        _ => None,
    });
    IncidentView {
        id: inc.id.clone(),
        service: service.to_string(),
        phase: inc.phase,
        trigger: format!("{} {}", inc.probe, inc.condition.as_str()),
        cause: inc.cause.clone(),
        confidence: inc.confidence,
        opened_at: inc.opened_at,
        updated_at: inc.updated_at,
        closed_at,
        outcome,
        actions: inc.actions.clone(),
        timeline: inc.timeline.iter().cloned().collect(),
    }
}
