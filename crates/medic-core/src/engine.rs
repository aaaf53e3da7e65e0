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

use crate::rng::SplitMix64;
use crate::spec::{ActionKind, ActionSpec, Condition, EngineConfig, Mode, ProbeSpec, ServiceSpec};
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
    /// Last decision recorded while waiting, to avoid repeating it.
    waiting_reason: Option<String>,
    would_act: bool,
    healed_by: Option<String>,
    actions: Vec<String>,
    timeline: VecDeque<TimelineItem>,
}

#[derive(Debug)]
struct InFlight {
    id: ActionId,
    action: String,
    /// `Some` when this execution undoes an earlier mitigation.
    revert_of: Option<String>,
}

#[derive(Debug)]
struct Svc {
    spec: ServiceSpec,
    mode: Option<Mode>,
    probes: BTreeMap<String, ProbeState>,
    incident: Option<Incident>,
    inflight: Option<InFlight>,
    autoheal_disabled: bool,
    /// Start times of restarts inside the budget window.
    restarts: VecDeque<MonoTime>,
    /// Times of failed heals inside the failed-heal window.
    failed_heals: VecDeque<MonoTime>,
    last_success: BTreeMap<String, MonoTime>,
    /// A mitigation to undo: (due, revert action, mitigation action).
    pending_revert: Option<(MonoTime, String, String)>,
    dirty: bool,
}

impl Svc {
    fn probe_spec(&self, name: &str) -> Option<&ProbeSpec> {
        self.spec.probes.iter().find(|p| p.name == name)
    }

    fn action_spec(&self, name: &str) -> Option<&ActionSpec> {
        self.spec.actions.iter().find(|a| a.name == name)
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
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: MonoTime) -> Engine {
        let services = cfg
            .services
            .into_iter()
            .map(|spec| {
                let probes = spec
                    .probes
                    .iter()
                    .map(|p| (p.name.clone(), ProbeState::default()))
                    .collect();
                (
                    spec.name.clone(),
                    Svc {
                        mode: spec.mode,
                        spec,
                        probes,
                        incident: None,
                        inflight: None,
                        autoheal_disabled: false,
                        restarts: VecDeque::new(),
                        failed_heals: VecDeque::new(),
                        last_success: BTreeMap::new(),
                        pending_revert: None,
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

    // === input ===

    pub fn handle_input(&mut self, now: MonoTime, input: Input) {
        self.advance(now);
        match input {
            Input::Probe(report) => self.on_probe(report),
            Input::ActionOutcome { id, result } => self.on_outcome(id, result),
            Input::Operator(cmd) => self.on_operator(cmd),
        }
        self.publish_dirty();
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.advance(now);
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            self.timers(&name);
        }
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
            }
            if svc.inflight.is_none() && svc.incident.is_none() {
                consider(svc.pending_revert.as_ref().map(|(t, _, _)| *t));
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
                    self.failed_heal(
                        name,
                        format!("{probe} failing again after the action"),
                        true,
                    );
                } else if svc.recovered(&probe) {
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
            waiting_reason: None,
            would_act: false,
            healed_by: None,
            actions: Vec::new(),
            timeline: VecDeque::new(),
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
    }

    /// Decide what to do about the open incident of `name`, which is waiting
    /// in `ConfirmingPattern` with nothing in flight.
    fn plan(&mut self, name: &str) {
        let now = self.now;
        let global_mode = self.mode;
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
        let mode = svc.mode.unwrap_or(global_mode);

        let Some(rem) = svc
            .spec
            .remediations
            .iter()
            .find(|r| r.probe == probe && r.condition == condition)
            .cloned()
        else {
            self.escalate(
                name,
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
                format!("remediation names unknown action {}", rem.action),
            );
            return;
        };

        if mode == Mode::Disabled {
            self.wait(
                name,
                "skipped",
                format!("automation disabled: would run {} ", action.name)
                    .trim_end()
                    .to_string(),
                Severity::Warning,
            );
            return;
        }
        if svc.autoheal_disabled {
            self.escalate(name, "autoheal disabled for this service".into());
            return;
        }
        if mode == Mode::DryRun {
            if let Some(inc) = svc.incident.as_mut() {
                inc.would_act = true;
            }
            self.wait(
                name,
                "would-act",
                format!(
                    "dry-run: would run {} ({})",
                    action.name,
                    action.kind.as_str()
                ),
                Severity::Info,
            );
            return;
        }
        if !mode.allows(action.risk) {
            self.escalate(
                name,
                format!(
                    "{} is {} risk; mode {mode} does not run it automatically (needs approval)",
                    action.name,
                    action.risk.as_str()
                ),
            );
            return;
        }
        // Cooldown since the last successful run of this action.
        let cooldown = svc.spec.policy.cooldown;
        if let Some(last) = svc.last_success.get(&action.name).copied() {
            let until = last.plus(cooldown);
            if until > now {
                if let Some(inc) = svc.incident.as_mut() {
                    inc.deferred_until = Some(until);
                }
                self.wait(
                    name,
                    "deferred",
                    format!(
                        "cooldown: {} ran {}ms ago; next allowed at {until}",
                        action.name,
                        now.since(last).as_millis()
                    ),
                    Severity::Info,
                );
                return;
            }
        }
        if !self.within_budget(name, &action) {
            return;
        }
        let reason = format!("{incident_id}: {probe} {}", condition.as_str());
        self.run(name, &action, reason, 0);
    }

    /// Restart budget check; escalates when exhausted.
    fn within_budget(&mut self, name: &str, action: &ActionSpec) -> bool {
        if action.kind != ActionKind::Restart {
            return true;
        }
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return false;
        };
        let window = svc.spec.policy.budget_window;
        while svc
            .restarts
            .front()
            .is_some_and(|t| now.since(*t) >= window)
        {
            svc.restarts.pop_front();
        }
        let budget = svc.spec.policy.restart_budget;
        if svc.restarts.len() as u64 >= u64::from(budget) {
            let msg = format!(
                "restart budget exhausted: {} restarts within {}s",
                svc.restarts.len(),
                window.as_secs()
            );
            self.escalate(name, msg);
            return false;
        }
        true
    }

    fn run(&mut self, name: &str, action: &ActionSpec, reason: String, attempt: u32) {
        let now = self.now;
        let id = ActionId(self.next_action);
        self.next_action += 1;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if action.kind == ActionKind::Restart {
            svc.restarts.push_back(now);
        }
        svc.inflight = Some(InFlight {
            id,
            action: action.name.clone(),
            revert_of: None,
        });
        let incident = svc.incident.as_mut().map(|inc| {
            inc.phase = Phase::ExecutingHeal;
            inc.attempt = attempt;
            inc.waiting_reason = None;
            inc.deferred_until = None;
            inc.actions.push(action.name.clone());
            push_timeline(
                inc,
                self.max_timeline,
                now,
                "action",
                format!("running {} (attempt {})", action.name, attempt + 1),
            );
            inc.id.clone()
        });
        svc.dirty = true;
        self.audit(
            "action.intent",
            vec![
                ("action_id", id.to_string()),
                (
                    "incident",
                    incident.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
                ),
                ("service", name.to_string()),
                ("action", action.name.clone()),
                ("kind", action.kind.as_str().to_string()),
                ("risk", action.risk.as_str().to_string()),
                ("attempt", (attempt + 1).to_string()),
                ("reason", reason.clone()),
            ],
        );
        self.out.push_back(Command::RunAction(ActionRequest {
            id,
            incident,
            service: name.to_string(),
            action: action.name.clone(),
            kind: action.kind,
            attempt,
            reason,
        }));
    }

    /// Record a waiting decision once per distinct reason.
    fn wait(&mut self, name: &str, verdict: &'static str, reason: String, severity: Severity) {
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

    fn escalate(&mut self, name: &str, reason: String) {
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
        push_timeline(inc, self.max_timeline, now, "escalated", reason.clone());
        let id = inc.id.clone();
        self.audit(
            "incident.escalated",
            vec![
                ("incident", id.0.clone()),
                ("service", name.to_string()),
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
                    svc.pending_revert =
                        Some((now.plus(rv.after), rv.action.clone(), spec.name.clone()));
                }
            }
        }
        svc.dirty = false;
        let v = view(name, &inc, Some(now), Some(outcome));
        self.audit(
            "incident.resolved",
            vec![
                ("incident", inc.id.0.clone()),
                ("service", name.to_string()),
                ("outcome", outcome.to_string()),
                ("reason", reason),
            ],
        );
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
        let incident = svc
            .incident
            .as_ref()
            .map(|i| i.id.0.clone())
            .unwrap_or_default();
        self.audit(
            "action.outcome",
            vec![
                ("action_id", id.to_string()),
                ("incident", incident),
                ("service", name.clone()),
                ("action", flight.action.clone()),
                ("status", status.to_string()),
                ("detail", detail.clone()),
            ],
        );
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        if result.is_ok() {
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
            return;
        }
        let verify_window = svc.spec.policy.verify_window;
        let retry = svc.spec.policy.retry.clone();
        let Some(inc) = svc.incident.as_mut() else {
            return;
        };
        svc.dirty = true;
        match result {
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
            Err(_) => {
                let failures = inc.attempt + 1;
                if failures >= retry.max_attempts {
                    push_timeline(
                        inc,
                        self.max_timeline,
                        now,
                        "action_failed",
                        format!("{} failed {failures} times: {detail}", flight.action),
                    );
                    let reason = format!("{} failed {failures} times: {detail}", flight.action);
                    // Out of execution attempts: a human has to look, whatever the heal count.
                    self.failed_heal(&name, reason, false);
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
    }

    /// A heal did not work. Too many within the window disables autoheal.
    fn failed_heal(&mut self, name: &str, reason: String, replan: bool) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let window = svc.spec.policy.failed_window;
        svc.failed_heals.push_back(now);
        while svc
            .failed_heals
            .front()
            .is_some_and(|t| now.since(*t) >= window)
        {
            svc.failed_heals.pop_front();
        }
        let n = svc.failed_heals.len();
        let max = svc.spec.policy.max_failed_heals.max(1) as usize;
        if n >= max {
            svc.autoheal_disabled = true;
            self.audit(
                "autoheal.disabled",
                vec![
                    ("service", name.to_string()),
                    ("failed_heals", n.to_string()),
                    ("window_s", window.as_secs().to_string()),
                ],
            );
            self.escalate(
                name,
                format!(
                    "{n} failed heals within {}s; autoheal disabled ({reason})",
                    window.as_secs()
                ),
            );
            return;
        }
        if !replan {
            self.escalate(name, reason);
            return;
        }
        if let Some(inc) = svc.incident.as_mut() {
            inc.phase = Phase::ConfirmingPattern;
            inc.attempt = 0;
            inc.waiting_reason = None;
            push_timeline(inc, self.max_timeline, now, "heal_failed", reason);
        }
        svc.dirty = true;
        self.plan(name);
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
                    true,
                );
                return;
            }
            if inc.retry_at.is_some_and(|t| t <= now) {
                inc.retry_at = None;
                let attempt = inc.attempt;
                let reason = format!("{} {} (retry)", inc.probe, inc.condition.as_str());
                let last = inc.actions.last().cloned();
                let Some(action) = last.and_then(|a| svc.action_spec(&a).cloned()) else {
                    return;
                };
                let mode = svc.mode.unwrap_or(self.mode);
                if !mode.allows(action.risk) {
                    if let Some(inc) = svc.incident.as_mut() {
                        inc.phase = Phase::ConfirmingPattern;
                    }
                    self.plan(name);
                    return;
                }
                if self.within_budget(name, &action) {
                    self.run(name, &action, reason, attempt);
                }
                return;
            }
            if inc.deferred_until.is_some_and(|t| t <= now) {
                inc.deferred_until = None;
                inc.waiting_reason = None;
                self.plan(name);
            }
        } else if svc.inflight.is_none() {
            if let Some((due, action, of)) = svc.pending_revert.clone() {
                if due <= now {
                    svc.pending_revert = None;
                    let mode = svc.mode.unwrap_or(self.mode);
                    if let (true, Some(spec)) = (mode.acts(), svc.action_spec(&action).cloned()) {
                        let id = ActionId(self.next_action);
                        self.next_action += 1;
                        if let Some(svc) = self.services.get_mut(name) {
                            svc.inflight = Some(InFlight {
                                id,
                                action: spec.name.clone(),
                                revert_of: Some(of.clone()),
                            });
                        }
                        let reason = format!("revert {of} after it held");
                        self.audit(
                            "action.intent",
                            vec![
                                ("action_id", id.to_string()),
                                ("incident", String::new()),
                                ("service", name.to_string()),
                                ("action", spec.name.clone()),
                                ("kind", spec.kind.as_str().to_string()),
                                ("risk", spec.risk.as_str().to_string()),
                                ("attempt", "1".into()),
                                ("reason", reason.clone()),
                                ("revert_of", of),
                            ],
                        );
                        self.out.push_back(Command::RunAction(ActionRequest {
                            id,
                            incident: None,
                            service: name.to_string(),
                            action: spec.name,
                            kind: spec.kind,
                            attempt: 0,
                            reason,
                        }));
                    }
                }
            }
        }
    }

    fn on_operator(&mut self, cmd: OperatorCommand) {
        match cmd {
            OperatorCommand::SetMode { service, mode, by } => {
                match &service {
                    Some(s) => match self.services.get_mut(s) {
                        Some(svc) => svc.mode = Some(mode),
                        None => {
                            self.audit(
                                "operator.rejected",
                                vec![("reason", format!("unknown service {s}")), ("by", by)],
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
                                ("incident", id),
                                ("by", by.clone()),
                                ("reason", reason.clone()),
                            ],
                        );
                        self.resolve(&n, "resolved-by-operator", format!("{by}: {reason}"));
                    }
                    None => self.audit(
                        "operator.rejected",
                        vec![("reason", format!("no open incident {id}")), ("by", by)],
                    ),
                }
            }
            OperatorCommand::EnableAutoheal { service, by } => {
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.autoheal_disabled = false;
                    svc.failed_heals.clear();
                    self.audit(
                        "autoheal.enabled",
                        vec![("service", service.clone()), ("by", by)],
                    );
                    self.evaluate(&service);
                }
            }
        }
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
