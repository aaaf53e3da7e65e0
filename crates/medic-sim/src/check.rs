//! Invariant checkers. They keep their own model of the rules, derived from
//! the *configuration* by code of their own (the class → tier table, tier
//! resolution, the risk score, the timing risk, freeze windows, roles), and
//! the facts the simulator feeds in (inputs, operator commands and their
//! answers, the notices and commands the engine emits). They never ask the
//! engine whether it obeyed and call none of its rule functions
//! (`ActionClass::default_risk`, `CLASS_TABLE`, `ResolvedAction`,
//! `risk_score`, `FreezeWindow::covers`, `Mode::allows` are not used here).
//!
//! Checked after every step:
//! - `mode*`: no automatic action in `disabled`/`dry-run`, while paused
//!   (also across medic restarts), frozen or mass-incident-latched (the
//!   latch is modelled here: more open incidents than allowed);
//! - `limit.*`: max concurrent, max per hour, blast radius, per-class budgets
//!   (restarts, feature toggles, fallbacks) and cooldown never exceeded;
//! - `target.busy`: at most one action per target at a time;
//! - `approval.*`: CRITICAL never, a tier above the mode never, and a first
//!   attempt with a risk score above the human threshold never, without
//!   approvals from enough distinct humans who actually approved with an
//!   approver's role; the tier is the action's explicit `risk`, else this
//!   module's own table's default for its class (class from governance, else
//!   restart → `restart_service`, else `other`);
//! - `risk.*`: the tier, class and score an intent records are the ones the
//!   configuration gives;
//! - `canary.skipped`: a first attempt above the canary score on a
//!   multi-instance target that can canary starts as a canary;
//! - `forced.unrequested`: a `forced` action only right after an operator's
//!   accepted force request for that service and action;
//! - `stage.unearned`: a retry only after a failure, a rollout only after a
//!   good canary, of the same action for the same incident;
//! - `revert.unowed`: a revert only after its heal held, a rollback only
//!   after its heal failed verification, each at most once (so one
//!   interrupted by a restart is not run again);
//! - `incident.mismatch`: a heal is for the service's open incident;
//! - `operator.role`: a command is refused exactly when the actor's role is
//!   below what it needs;
//! - `audit.intent` / `audit.outcome`: an `action.intent` notice for every
//!   action run in the same step (and no intent without its action), an
//!   `action.outcome` notice for every delivered outcome;
//! - `explain.missing`: every decision, every action intent of an incident
//!   and every escalation is in `explain(incident)` (checked in its step,
//!   while the incident has fewer decisions than `max_timeline`);
//! - `verify.no_escalation`: a failed verification ends, in the same step, in
//!   a human being told: an escalation, or below the consecutive-failure
//!   limit a `heal.retrying` warning;
//! - `reason.missing`: every decision carries a machine-readable reason code;
//! - `mass.not_paused`: crossing the open-incident threshold is recorded;
//! - `restart.*`: across a medic restart every action in flight is
//!   reconciled (a heal is verified) and never run again for its incident
//!   before its verification ends; its later outcome is unmatched; no action
//!   id is reused; pending approvals stay pending. Budgets, cooldowns,
//!   pauses and the latch are the same model before and after: the checks
//!   above hold across restarts unchanged.
//!
//! At the end of the liveness phase: no incident open except escalated ones,
//! nothing in flight, no approval pending, every intent has an outcome (or
//! was reconciled by a restart).
use std::collections::{BTreeMap, BTreeSet};

use medic_core::{
    Ack, ActionClass, ActionId, ActionKind, ActionSpec, ActionStage, ActionStatus, Actor, Command,
    DecisionRecord, Engine, EngineConfig, FreezeWindow, IncidentId, IncidentOutcome, Input, Mode,
    Notice, OperatorCommand, OperatorError, Phase, Risk, Role, TimingConfig, Verdict,
};

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Stable name of the invariant, e.g. `limit.max_concurrent`.
    pub kind: &'static str,
    pub at_ms: u64,
    pub detail: String,
}

impl Violation {
    pub fn new(kind: &'static str, at_ms: u64, detail: String) -> Violation {
        Violation {
            kind,
            at_ms,
            detail,
        }
    }
}

// === the checker's own copy of the rules ===

/// Default tier of each action class: the table, written out here on
/// purpose (not read from medic-core) so a change there is caught.
pub fn default_tier(class: ActionClass) -> Risk {
    use ActionClass as C;
    match class {
        C::ScaleOut | C::ClearCache | C::RollingRestart | C::RateLimit => Risk::Low,
        C::RestartService
        | C::ResetConnectionPool
        | C::ToggleFeatureFlag
        | C::ReloadConfig
        | C::Fallback
        | C::ScaleIn
        | C::Other => Risk::Medium,
        C::DatabaseFailover | C::TrafficRedirect | C::Deploy | C::Rollback | C::Failover => {
            Risk::High
        }
        C::DataMigration => Risk::Critical,
    }
}

/// Classes verified as changes (issue 10), written out here on purpose.
fn is_change(class: ActionClass) -> bool {
    use ActionClass as C;
    !matches!(
        class,
        C::RestartService | C::RollingRestart | C::ResetConnectionPool | C::ClearCache | C::Other
    )
}

/// Change size by tier, when the configuration states none.
fn change_size(tier: Risk) -> f64 {
    match tier {
        Risk::Low => 0.2,
        Risk::Medium => 0.5,
        Risk::High => 0.8,
        Risk::Critical => 1.0,
    }
}

/// `0.4·criticality + 0.3·change size + 0.2·severity + 0.1·timing`, each in
/// `[0, 1]`, unknown (NaN) counting as 1.
pub fn score(criticality: f64, change: f64, severity: f64, timing: f64) -> f64 {
    let c = |x: f64| if x.is_nan() { 1.0 } else { x.clamp(0.0, 1.0) };
    0.4 * c(criticality) + 0.3 * c(change) + 0.2 * c(severity) + 0.1 * c(timing)
}

/// Timing risk: 1 in a peak of a business day, 0.5 in business hours, else
/// 0 (and 0 without a wall clock).
pub fn timing(t: &TimingConfig, utc_offset_minutes: i32, wall_ms: Option<i64>) -> f64 {
    const DAY: i64 = 86_400_000;
    let Some(ms) = wall_ms else {
        return 0.0;
    };
    let local = ms + i64::from(utc_offset_minutes) * 60_000;
    let minute = local.rem_euclid(DAY) / 60_000;
    // Day 0 (1970-01-01) was a Thursday; Monday is index 0.
    let weekday = (local.div_euclid(DAY) + 3).rem_euclid(7);
    if !t
        .business_days
        .get(weekday as usize)
        .copied()
        .unwrap_or(false)
    {
        return 0.0;
    }
    let within = |(s, e): (u16, u16)| i64::from(s) <= minute && minute < i64::from(e);
    if t.peaks.iter().any(|p| within(*p)) {
        1.0
    } else if within(t.business_hours) {
        0.5
    } else {
        0.0
    }
}

fn mode_acts(m: Mode) -> bool {
    matches!(m, Mode::Conservative | Mode::Aggressive)
}

/// The highest tier a mode runs without a human.
fn mode_runs(m: Mode, tier: Risk) -> bool {
    match m {
        Mode::Disabled | Mode::DryRun => false,
        Mode::Conservative => tier == Risk::Low,
        Mode::Aggressive => matches!(tier, Risk::Low | Risk::Medium),
    }
}

/// The least role each operator command needs.
fn role_needed(cmd: &OperatorCommand) -> Role {
    match cmd {
        OperatorCommand::SetMode { .. } | OperatorCommand::ForceAction { .. } => Role::Admin,
        OperatorCommand::Approve { .. } | OperatorCommand::Reject { .. } => Role::Approver,
        _ => Role::Operator,
    }
}

fn role_rank(r: Role) -> u8 {
    match r {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Approver => 2,
        Role::Admin => 3,
    }
}

fn freeze_covers(f: &FreezeWindow, service: &str, wall: i64) -> bool {
    f.start_unix_ms <= wall
        && wall < f.end_unix_ms
        && f.services
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == service))
}

// === the model ===

#[derive(Clone, Debug)]
struct Flight {
    service: String,
    /// The incident it was run for (none for a revert).
    incident: Option<String>,
    action: String,
    stage: ActionStage,
}

impl Flight {
    fn is_revert(&self) -> bool {
        matches!(self.stage, ActionStage::Revert | ActionStage::Rollback)
    }
}

#[derive(Clone, Debug)]
struct Pause {
    service: Option<String>,
    kind: Option<ActionKind>,
    until: Option<u64>,
}

#[derive(Clone, Debug)]
struct OpenIncident {
    service: String,
    slow: bool,
    confidence: f64,
}

/// What the configuration says about one action.
struct Resolved {
    kind: ActionKind,
    class: ActionClass,
    tier: Risk,
    /// The tier came from the class (no explicit risk).
    tier_from_class: bool,
    /// A governance entry exists, without a class.
    entry_without_class: bool,
    change: f64,
    canary_capable: bool,
}

/// The checkers' model. See the module docs.
#[derive(Debug)]
pub struct Checker {
    cfg: EngineConfig,
    global_mode: Mode,
    svc_mode: BTreeMap<String, Option<Mode>>,
    pauses: Vec<Pause>,
    mass_latched: bool,
    freeze: Vec<FreezeWindow>,
    wall_sync: Option<(u64, i64)>,
    utc_offset: i32,
    inflight: BTreeMap<u64, Flight>,
    /// Actions in flight when medic stopped: ended by the restart.
    ended: BTreeMap<u64, Flight>,
    /// Ended at the last stop, to be reconciled by the next restore.
    just_ended: Vec<u64>,
    restoring: bool,
    /// Incident → action reconciled by a restart, not yet verified.
    reconciling: BTreeMap<String, String>,
    /// Incident → the heal being verified (its revert is owed on success,
    /// its rollback on failure).
    healed_by: BTreeMap<String, String>,
    /// Incident → how its last action ended (stage, status, action): what
    /// earns a retry (a failure) or a rollout (a good canary).
    ended_as: BTreeMap<String, (ActionStage, ActionStatus, String)>,
    /// Service → the one revert or rollback it is owed (stage, action).
    owed_revert: BTreeMap<String, (ActionStage, String)>,
    ids: BTreeSet<u64>,
    starts: Vec<u64>,
    restarts: BTreeMap<String, Vec<u64>>,
    features: Vec<u64>,
    fallbacks: BTreeMap<String, Vec<u64>>,
    last_success: BTreeMap<(String, String), u64>,
    granted: BTreeMap<(String, String), Vec<String>>,
    /// Approval id → who sent an approve with an approver's role.
    sent_approvals: BTreeMap<String, Vec<String>>,
    pending_approvals: BTreeSet<String>,
    /// Force requests accepted in this step: (service, action).
    force_tokens: Vec<(String, String)>,
    intents: BTreeSet<u64>,
    /// Intents closed by an outcome notice or a reconcile.
    closed: BTreeSet<u64>,
    delivered: Option<u64>,
    late: Option<u64>,
    open: BTreeMap<String, OpenIncident>,
    incidents_seen: u64,
    instances: BTreeMap<String, u32>,
    coverage: BTreeMap<&'static str, u64>,
    records: bool,
}

impl Checker {
    pub fn new(cfg: &EngineConfig) -> Checker {
        Checker {
            global_mode: cfg.mode,
            svc_mode: cfg
                .services
                .iter()
                .map(|s| (s.name.clone(), s.mode))
                .collect(),
            cfg: cfg.clone(),
            pauses: Vec::new(),
            mass_latched: false,
            freeze: cfg.governance.freeze_windows.clone(),
            wall_sync: None,
            utc_offset: cfg.governance.timing.utc_offset_minutes,
            inflight: BTreeMap::new(),
            ended: BTreeMap::new(),
            just_ended: Vec::new(),
            restoring: false,
            reconciling: BTreeMap::new(),
            healed_by: BTreeMap::new(),
            ended_as: BTreeMap::new(),
            owed_revert: BTreeMap::new(),
            ids: BTreeSet::new(),
            starts: Vec::new(),
            restarts: BTreeMap::new(),
            features: Vec::new(),
            fallbacks: BTreeMap::new(),
            last_success: BTreeMap::new(),
            granted: BTreeMap::new(),
            sent_approvals: BTreeMap::new(),
            pending_approvals: BTreeSet::new(),
            force_tokens: Vec::new(),
            intents: BTreeSet::new(),
            closed: BTreeSet::new(),
            delivered: None,
            late: None,
            open: BTreeMap::new(),
            incidents_seen: 0,
            instances: cfg
                .services
                .iter()
                .map(|s| {
                    let n = cfg
                        .governance
                        .services
                        .get(&s.name)
                        .map_or(1, |g| g.instances);
                    (s.name.clone(), n)
                })
                .collect(),
            coverage: BTreeMap::new(),
            records: true,
        }
    }

    /// Whether to check what intents record (`risk.*`); on by default.
    pub fn check_records(mut self, on: bool) -> Checker {
        self.records = on;
        self
    }

    pub fn incidents_seen(&self) -> u64 {
        self.incidents_seen
    }

    /// How often each checked path was exercised (`check:<what>`).
    pub fn coverage(&self) -> &BTreeMap<&'static str, u64> {
        &self.coverage
    }

    fn hit(&mut self, what: &'static str) {
        *self.coverage.entry(what).or_default() += 1;
    }

    fn mode_of(&self, svc: &str) -> Mode {
        self.svc_mode
            .get(svc)
            .copied()
            .flatten()
            .unwrap_or(self.global_mode)
    }

    fn wall(&self, now: u64) -> Option<i64> {
        self.wall_sync
            .map(|(m, w)| w + i64::try_from(now.saturating_sub(m)).unwrap_or(i64::MAX))
    }

    fn spec(&self, svc: &str, action: &str) -> Option<&ActionSpec> {
        self.cfg
            .services
            .iter()
            .find(|s| s.name == svc)?
            .actions
            .iter()
            .find(|a| a.name == action)
    }

    /// Class, tier, change size of an action, from the configuration.
    fn resolve(&self, svc: &str, action: &str) -> Option<Resolved> {
        let spec = self.spec(svc, action)?;
        let entry = self
            .cfg
            .governance
            .services
            .get(svc)
            .and_then(|g| g.actions.get(action));
        let class = match entry.and_then(|e| e.class) {
            Some(c) => c,
            None if matches!(
                spec.kind,
                ActionKind::Restart
                    | ActionKind::Docker
                    | ActionKind::Systemd
                    | ActionKind::Kubernetes
            ) =>
            {
                ActionClass::RestartService
            }
            None if spec.kind == ActionKind::Signal => ActionClass::ReloadConfig,
            None => ActionClass::Other,
        };
        // Issue 10's catalogue: a change without a declared undo needs a
        // human (at least HIGH) unless the action states its tier.
        let change = spec.verify.is_some() || is_change(class);
        let tier = spec.risk.unwrap_or(if change && spec.revert.is_none() {
            default_tier(class).max(Risk::High)
        } else {
            default_tier(class)
        });
        Some(Resolved {
            kind: spec.kind,
            class,
            tier,
            tier_from_class: spec.risk.is_none(),
            entry_without_class: entry.is_some_and(|e| e.class.is_none()),
            change: entry
                .and_then(|e| e.change_size)
                .unwrap_or(change_size(tier)),
            canary_capable: entry.is_none_or(|e| e.canary),
        })
    }

    /// Severity of the service's open incident, 0 without one.
    fn severity(&self, svc: &str) -> f64 {
        match self.open.values().find(|i| i.service == svc) {
            Some(i) if i.slow => 0.3,
            Some(i) => 0.5 + 0.5 * i.confidence.clamp(0.0, 1.0),
            None => 0.0,
        }
    }

    /// A heal with a revert owes it (on success) or its rollback (on a
    /// failed verification); a newer one replaces an older one.
    fn owe_revert(&mut self, svc: &str, healed: Option<String>, stage: ActionStage) {
        let undo = healed
            .and_then(|a| self.spec(svc, &a).and_then(|s| s.revert.as_ref()))
            .map(|r| r.action.clone());
        if let Some(undo) = undo {
            self.owed_revert.insert(svc.to_string(), (stage, undo));
        }
    }

    fn paused(&self, now: u64, svc: &str, kind: ActionKind) -> bool {
        self.pauses.iter().any(|p| {
            p.until.is_none_or(|t| t > now)
                && p.service.as_deref().is_none_or(|s| s == svc)
                && p.kind.is_none_or(|k| k == kind)
        })
    }

    /// Update the model with an input about to be handed to the engine
    /// (`None`: a timeout).
    pub fn before_input(&mut self, now: u64, input: Option<&Input>) {
        self.delivered = None;
        self.late = None;
        let Some(input) = input else {
            return;
        };
        match input {
            // The simulated world configures no staged canaries (issue 10).
            Input::CanarySamples(_) => {}
            Input::WallClock {
                unix_ms,
                utc_offset_minutes,
            } => {
                self.wall_sync = Some((now, *unix_ms));
                if let Some(o) = utc_offset_minutes {
                    self.utc_offset = *o;
                }
            }
            Input::FreezeWindows(w) => self.freeze = w.clone(),
            Input::Signals(sig) => {
                if let (Some(n), Some(slot)) = (sig.instances, self.instances.get_mut(&sig.service))
                {
                    *slot = n;
                }
            }
            Input::ActionOutcome { id, result } => {
                if let Some(f) = self.inflight.remove(&id.0) {
                    self.delivered = Some(id.0);
                    if result.is_ok() && f.stage != ActionStage::Canary {
                        self.last_success.insert((f.service, f.action), now);
                    }
                } else if self.ended.contains_key(&id.0) {
                    self.late = Some(id.0);
                }
            }
            Input::Operator(actor, cmd) => self.before_operate(now, actor, cmd),
            // The simulator does not send diagnoses (issue 9); its safety
            // model only has to hold without them. A diagnosis can only add
            // holds, approvals and escalations before the gates it models.
            Input::Probe(_) | Input::ProcessStarted { .. } | Input::Diagnosis(_) => {}
        }
    }

    /// Update the model with an operator command about to be issued: only
    /// what the actor's role allows takes effect.
    pub fn before_operate(&mut self, now: u64, actor: &Actor, cmd: &OperatorCommand) {
        self.delivered = None;
        self.late = None;
        if role_rank(actor.role) < role_rank(role_needed(cmd)) {
            return;
        }
        match cmd {
            OperatorCommand::SetMode { service, mode } => match service {
                Some(s) => {
                    if let Some(m) = self.svc_mode.get_mut(s) {
                        *m = Some(*mode);
                    }
                }
                None => self.global_mode = *mode,
            },
            OperatorCommand::Pause {
                service,
                kind,
                duration,
                ..
            } => {
                self.pauses
                    .retain(|p| !(p.service == *service && p.kind == *kind));
                self.pauses.push(Pause {
                    service: service.clone(),
                    kind: *kind,
                    until: duration.map(|d| now + d.as_millis() as u64),
                });
            }
            OperatorCommand::Resume { service, kind } => {
                if service.is_none() && kind.is_none() {
                    self.pauses.clear();
                    self.mass_latched = false;
                } else {
                    self.pauses
                        .retain(|p| !(p.service == *service && p.kind == *kind));
                }
            }
            OperatorCommand::Approve { id } => {
                self.sent_approvals
                    .entry(id.clone())
                    .or_default()
                    .push(actor.id.clone());
            }
            OperatorCommand::ForceAction {
                service,
                action,
                reason,
            } if !reason.trim().is_empty() => {
                self.force_tokens.push((service.clone(), action.clone()));
            }
            _ => {}
        }
    }

    /// The engine's answer must agree with the role rules.
    pub fn after_operate(
        &mut self,
        now: u64,
        actor: &Actor,
        cmd: &OperatorCommand,
        answer: &Result<Ack, OperatorError>,
    ) -> Option<Violation> {
        let allowed = role_rank(actor.role) >= role_rank(role_needed(cmd));
        let forbidden = matches!(answer, Err(OperatorError::Forbidden { .. }));
        if !allowed {
            self.hit("role_refused");
        }
        if allowed == forbidden {
            return Some(Violation::new(
                "operator.role",
                now,
                format!(
                    "{} ({}) {cmd:?}: {}",
                    actor.id,
                    actor.role.as_str(),
                    match answer {
                        Ok(_) => "accepted".to_string(),
                        Err(e) => format!("refused: {e}"),
                    }
                ),
            ));
        }
        None
    }

    /// medic stops: every action in flight is ended by the restart.
    pub fn on_stop(&mut self, now: u64) {
        if !self.inflight.is_empty() {
            self.hit("restart_with_inflight");
        }
        if self.pauses.iter().any(|p| p.until.is_none_or(|t| t > now)) {
            self.hit("restart_with_pause");
        }
        if !self.pending_approvals.is_empty() {
            self.hit("restart_with_pending_approval");
        }
        self.just_ended = self.inflight.keys().copied().collect();
        let flights = std::mem::take(&mut self.inflight);
        self.ended.extend(flights);
        self.force_tokens.clear();
    }

    /// medic starts again; the next step is the restore.
    pub fn on_start(&mut self, _now: u64, freeze: &[FreezeWindow]) {
        self.restoring = true;
        self.freeze = freeze.to_vec();
        self.delivered = None;
        self.late = None;
    }

    /// Check the notices and commands of one step. Returns the first violation.
    pub fn after_step(
        &mut self,
        now: u64,
        notices: &[Notice],
        cmds: &[Command],
        engine: &Engine,
    ) -> Option<Violation> {
        let r = self.judge_step(now, notices, cmds, engine);
        self.force_tokens.clear();
        self.restoring = false;
        r.err()
    }

    fn judge_step(
        &mut self,
        now: u64,
        notices: &[Notice],
        cmds: &[Command],
        engine: &Engine,
    ) -> Result<(), Violation> {
        let fail = |kind: &'static str, detail: String| Err(Violation::new(kind, now, detail));
        let mut verify_failed: BTreeSet<String> = BTreeSet::new();
        let mut newly_latched = false;
        let mut latch_recorded = false;
        let mut restored = false;
        // Intents of this step, to match with the RunAction commands.
        let mut step_intents: Vec<(ActionId, String, String, ActionStage, Risk)> = Vec::new();
        let mut step_outcomes: BTreeSet<u64> = BTreeSet::new();
        let mut step_unmatched: BTreeSet<u64> = BTreeSet::new();
        let mut step_reconciled: BTreeMap<u64, (Option<IncidentId>, &'static str)> =
            BTreeMap::new();
        let max_mass = self.cfg.governance.gates.mass_incident_services as usize;
        for n in notices {
            match n {
                Notice::IncidentOpened {
                    incident,
                    service,
                    trigger,
                } => {
                    self.incidents_seen += 1;
                    self.open.insert(
                        incident.0.clone(),
                        OpenIncident {
                            service: service.clone(),
                            slow: trigger.ends_with("slow"),
                            confidence: 0.0,
                        },
                    );
                    if self.open.len() > max_mass && !self.mass_latched {
                        self.mass_latched = true;
                        newly_latched = true;
                    }
                }
                Notice::Diagnosis {
                    incident,
                    confidence,
                    ..
                } => {
                    if let Some(i) = self.open.get_mut(&incident.0) {
                        i.confidence = *confidence;
                    }
                }
                Notice::MassIncidentLatched { .. } => latch_recorded = true,
                Notice::IncidentResolved {
                    incident,
                    service,
                    outcome,
                    ..
                } => {
                    self.open.remove(&incident.0);
                    self.reconciling.remove(&incident.0);
                    let healed = self.healed_by.remove(&incident.0);
                    if *outcome == IncidentOutcome::Healed {
                        self.owe_revert(service, healed, ActionStage::Revert);
                    }
                }
                Notice::VerifyFailed {
                    incident, service, ..
                } => {
                    verify_failed.insert(incident.0.clone());
                    self.reconciling.remove(&incident.0);
                    let healed = self.healed_by.get(&incident.0).cloned();
                    self.owe_revert(service, healed, ActionStage::Rollback);
                }
                Notice::RevertDropped { service, .. } => {
                    self.owed_revert.remove(service);
                }
                Notice::VerifyPassed { incident, .. } => {
                    self.reconciling.remove(&incident.0);
                }
                Notice::HealRetrying { incident, .. } => {
                    verify_failed.remove(&incident.0);
                    self.healed_by.remove(&incident.0);
                }
                Notice::IncidentEscalated {
                    incident,
                    reason_code,
                    ..
                } => {
                    verify_failed.remove(&incident.0);
                    self.reconciling.remove(&incident.0);
                    let code = *reason_code;
                    let at = engine.now();
                    self.explained(engine, incident, "an escalation", |d| {
                        d.verdict == Verdict::Escalate && d.reason_code == Some(code) && d.at == at
                    })
                    .map_or(Ok(()), |e| fail("explain.missing", e))?;
                }
                Notice::Decision {
                    incident,
                    action,
                    verdict,
                    reason_code,
                    ..
                } => {
                    if reason_code.is_none() {
                        return fail("reason.missing", format!("{n:?}"));
                    }
                    let (v, code) = (*verdict, *reason_code);
                    self.explained(engine, incident, "a decision", |d| {
                        d.verdict == v && d.reason_code == code && d.action == *action
                    })
                    .map_or(Ok(()), |e| fail("explain.missing", e))?;
                }
                Notice::ApprovalRequested { approval, .. } => {
                    self.pending_approvals.insert(approval.clone());
                }
                Notice::ApprovalGranted {
                    approval,
                    incident,
                    action,
                    approvers,
                    ..
                } => {
                    self.pending_approvals.remove(approval);
                    let sent = self
                        .sent_approvals
                        .get(approval)
                        .cloned()
                        .unwrap_or_default();
                    let distinct: BTreeSet<&String> = approvers.iter().collect();
                    if distinct.len() != approvers.len() {
                        return fail("approval.duplicate_approver", format!("{n:?}"));
                    }
                    if let Some(x) = approvers.iter().find(|x| !sent.contains(x)) {
                        return fail(
                            "approval.forged",
                            format!("{x} never approved {approval} with an approver's role"),
                        );
                    }
                    self.granted
                        .insert((incident.0.clone(), action.clone()), approvers.clone());
                }
                Notice::ApprovalRejected { approval, .. }
                | Notice::ApprovalExpired { approval, .. }
                | Notice::ApprovalWithdrawn { approval, .. } => {
                    self.pending_approvals.remove(approval);
                }
                Notice::ActionIntent {
                    action_id,
                    incident,
                    service,
                    action,
                    kind,
                    class,
                    risk,
                    score,
                    stage,
                    ..
                } => {
                    self.intent(
                        now,
                        engine,
                        IntentFacts {
                            id: *action_id,
                            incident: incident.as_ref(),
                            service,
                            action,
                            kind: *kind,
                            class: *class,
                            risk: *risk,
                            score: *score,
                            stage: *stage,
                        },
                    )?;
                    step_intents.push((*action_id, service.clone(), action.clone(), *stage, *risk));
                }
                Notice::ActionOutcome {
                    action_id,
                    incident,
                    action,
                    stage,
                    status,
                    ..
                } => {
                    step_outcomes.insert(action_id.0);
                    self.closed.insert(action_id.0);
                    let heal = !matches!(
                        stage,
                        ActionStage::Canary | ActionStage::Revert | ActionStage::Rollback
                    );
                    if let (true, ActionStatus::Succeeded, Some(i)) = (heal, status, incident) {
                        self.healed_by.insert(i.0.clone(), action.clone());
                    }
                    let revert = matches!(stage, ActionStage::Revert | ActionStage::Rollback);
                    if let (false, Some(i)) = (revert, incident) {
                        self.ended_as
                            .insert(i.0.clone(), (*stage, *status, action.clone()));
                    }
                }
                Notice::ActionOutcomeUnmatched { action_id } => {
                    step_unmatched.insert(action_id.0);
                }
                Notice::ActionReconciled {
                    action_id,
                    incident,
                    action,
                    resolution,
                    ..
                } => {
                    step_reconciled.insert(action_id.0, (incident.clone(), *resolution));
                    self.closed.insert(action_id.0);
                    if let (&"verify", Some(i)) = (resolution, incident) {
                        self.healed_by.insert(i.0.clone(), action.clone());
                    }
                    if let Some(i) = incident {
                        self.ended_as.remove(&i.0);
                    }
                }
                Notice::StateRestored { .. } => restored = true,
                _ => {}
            }
        }
        for c in cmds {
            let Command::RunAction(r) = c else {
                continue;
            };
            let Some(pos) = step_intents.iter().position(|(id, ..)| *id == r.id) else {
                return fail(
                    "audit.intent",
                    format!("{} ran without an action.intent notice in its step", r.id),
                );
            };
            let (_, svc, action, stage, risk) = step_intents.remove(pos);
            if svc != r.service || action != r.action || stage != r.stage || risk != r.risk {
                return fail(
                    "audit.intent",
                    format!(
                        "{} runs {} {} {} {} but its intent said {svc} {action} {} {}",
                        r.id,
                        r.service,
                        r.action,
                        r.stage.as_str(),
                        r.risk.as_str(),
                        stage.as_str(),
                        risk.as_str()
                    ),
                );
            }
        }
        if let Some((id, ..)) = step_intents.first() {
            return fail(
                "audit.intent",
                format!("an action.intent for {id} without its action"),
            );
        }
        if let Some(id) = self.delivered.take() {
            if !step_outcomes.contains(&id) {
                return fail(
                    "audit.outcome",
                    format!("act-{id} delivered without an action.outcome notice"),
                );
            }
        }
        if let Some(id) = self.late.take() {
            self.hit("late_outcome");
            if step_outcomes.contains(&id) || !step_unmatched.contains(&id) {
                return fail(
                    "restart.late_outcome",
                    format!(
                        "act-{id}, ended by a restart, reported late: not recorded as unmatched"
                    ),
                );
            }
        }
        if self.restoring {
            if !restored {
                return fail(
                    "restart.not_recorded",
                    "restore without a state.restored notice".to_string(),
                );
            }
            for id in std::mem::take(&mut self.just_ended) {
                let Some(f) = self.ended.get(&id).cloned() else {
                    continue;
                };
                let Some((incident, resolution)) = step_reconciled.remove(&id) else {
                    return fail(
                        "restart.not_reconciled",
                        format!("act-{id} was in flight at the restart and was not reconciled"),
                    );
                };
                // A reconcile verifies only the incident the action was run
                // for, and only while it is still open.
                let heal = !f.is_revert()
                    && f.incident
                        .as_ref()
                        .is_some_and(|i| self.open.contains_key(i));
                let want = if heal { "verify" } else { "escalate" };
                if resolution != want {
                    return fail(
                        "restart.reconcile",
                        format!(
                            "act-{id} ({}) reconciled as {resolution}, not {want}",
                            f.action
                        ),
                    );
                }
                if let (true, Some(i)) = (heal, incident) {
                    self.reconciling.insert(i.0, f.action.clone());
                }
            }
            if let Some(id) = step_reconciled.keys().next() {
                return fail(
                    "restart.reconcile",
                    format!("act-{id} reconciled but was not in flight"),
                );
            }
            let listed: BTreeSet<String> = engine
                .pending_approvals()
                .into_iter()
                .map(|a| a.id)
                .collect();
            if let Some(a) = self.pending_approvals.iter().find(|a| !listed.contains(*a)) {
                return fail(
                    "restart.approval_lost",
                    format!("{a} was pending before the restart and is gone after it"),
                );
            }
        }
        if let Some(i) = verify_failed.first() {
            return fail(
                "verify.no_escalation",
                format!("{i} failed verification without escalation"),
            );
        }
        if newly_latched && !latch_recorded {
            return fail(
                "mass.not_paused",
                format!(
                    "{} services affected (max {max_mass}) without the mass-incident latch",
                    self.open.len()
                ),
            );
        }
        Ok(())
    }

    /// Whether `explain(incident)` holds a decision `ok` accepts; `Some(why)`
    /// when not. Skipped once the incident has `max_timeline` decisions (the
    /// oldest may have been dropped).
    fn explained(
        &mut self,
        engine: &Engine,
        incident: &IncidentId,
        what: &str,
        ok: impl Fn(&DecisionRecord) -> bool,
    ) -> Option<String> {
        self.hit("explain");
        let Some(ex) = engine.explain(&incident.0) else {
            return Some(format!("explain({incident}) has nothing after {what}"));
        };
        if ex.decisions.len() >= self.cfg.max_timeline.max(1) {
            return None;
        }
        if ex.decisions.iter().any(ok) {
            None
        } else {
            Some(format!(
                "{what} of {incident} is not among its {} explained decisions",
                ex.decisions.len()
            ))
        }
    }

    /// Judge one action the engine is about to run, at its intent notice.
    fn intent(&mut self, now: u64, engine: &Engine, n: IntentFacts<'_>) -> Result<(), Violation> {
        let fail = |kind: &'static str, detail: String| Err(Violation::new(kind, now, detail));
        let id = n.id;
        if !self.ids.insert(id.0) {
            return fail("restart.id_reused", format!("{id} was used before"));
        }
        self.intents.insert(id.0);
        if self.inflight.values().any(|f| f.service == n.service) {
            return fail(
                "target.busy",
                format!("{id} on {} while another action runs there", n.service),
            );
        }
        let Some(a) = self.resolve(n.service, n.action) else {
            return fail(
                "action.unknown",
                format!("{id}: {} has no action {}", n.service, n.action),
            );
        };
        let gov = &self.cfg.governance;
        let (limits, gates, two_person) = (
            gov.limits.clone(),
            gov.gates.clone(),
            gov.approvals.two_person_high,
        );
        let window = limits.window.as_millis() as u64;
        let crit = gov.services.get(n.service).map_or(0.5, |g| g.criticality);
        let own_score = score(
            crit,
            a.change,
            self.severity(n.service),
            timing(&gov.timing, self.utc_offset, self.wall(now)),
        );
        let forced = n.stage == ActionStage::Forced;
        let revert = matches!(n.stage, ActionStage::Revert | ActionStage::Rollback);
        // A heal is for the service's open incident (a revert for none).
        let open_inc = self
            .open
            .iter()
            .find(|(_, i)| i.service == n.service)
            .map(|(id, _)| id.as_str());
        let want = if revert { None } else { open_inc };
        if n.incident.map(|i| i.0.as_str()) != want {
            return fail(
                "incident.mismatch",
                format!(
                    "{id} ({} on {}) is for {:?}; the open incident is {open_inc:?}",
                    n.action,
                    n.service,
                    n.incident.map(|i| &i.0)
                ),
            );
        }
        let mode = self.mode_of(n.service);
        if forced {
            self.hit("forced");
            let want = (n.service.to_string(), n.action.to_string());
            let Some(pos) = self.force_tokens.iter().position(|t| *t == want) else {
                return fail(
                    "forced.unrequested",
                    format!("{id} ran as forced without an accepted force request"),
                );
            };
            self.force_tokens.remove(pos);
            // A human took the heal over: what follows is about this run.
            if let Some(i) = n.incident {
                self.reconciling.remove(&i.0);
            }
        } else {
            // A retry is earned by a failure, a rollout by a good canary,
            // of the same action for the same incident.
            let ended = n.incident.and_then(|i| self.ended_as.get(&i.0));
            let earned = match n.stage {
                ActionStage::Retry => {
                    ended.is_some_and(|(_, st, act)| *st == ActionStatus::Failed && act == n.action)
                }
                ActionStage::Rollout => ended.is_some_and(|(stage, st, act)| {
                    *stage == ActionStage::Canary
                        && *st == ActionStatus::Succeeded
                        && act == n.action
                }),
                _ => true,
            };
            if !earned {
                return fail(
                    "stage.unearned",
                    format!(
                        "{id}: a {} of {} for {:?} after {ended:?}",
                        n.stage.as_str(),
                        n.action,
                        n.incident.map(|i| &i.0)
                    ),
                );
            }
            if let Some(inc) = n.incident {
                if let Some(act) = self.reconciling.get(&inc.0) {
                    return fail(
                        "restart.rerun",
                        format!(
                            "{id} runs {} for {inc} while {act}, interrupted by a restart, \
                             is still being verified",
                            n.action
                        ),
                    );
                }
            }
            if revert {
                // Each revert is owed once: one interrupted by a restart is
                // not run again.
                match self.owed_revert.get(n.service) {
                    Some((st, act)) if *st == n.stage && act == n.action => {
                        self.owed_revert.remove(n.service);
                    }
                    owed => {
                        return fail(
                            "revert.unowed",
                            format!(
                                "{id}: {} {} on {} is not owed (owed: {owed:?})",
                                n.stage.as_str(),
                                n.action,
                                n.service
                            ),
                        )
                    }
                }
            }
            if !mode_acts(mode) {
                return fail("mode", format!("{id} ran in mode {mode}"));
            }
            if self.mass_latched {
                return fail(
                    "mode.mass_incident",
                    format!("{id} ran while the mass-incident latch holds"),
                );
            }
            if self.paused(now, n.service, a.kind) {
                return fail(
                    "mode.paused",
                    format!("{id} ({} on {}) ran while paused", n.action, n.service),
                );
            }
            if let Some(w) = self.wall(now) {
                if self.freeze.iter().any(|f| freeze_covers(f, n.service, w)) {
                    return fail("mode.frozen", format!("{id} ran while frozen"));
                }
            }
            let inflight = self.inflight.len() as u32;
            if inflight >= limits.max_concurrent {
                return fail(
                    "limit.max_concurrent",
                    format!(
                        "{id} started with {inflight} in flight (max {})",
                        limits.max_concurrent
                    ),
                );
            }
            let targets = self.cfg.services.len() as f64;
            let max_targets = ((targets * gates.max_blast_radius).floor() as u32).max(1);
            if inflight + 1 > max_targets {
                return fail(
                    "limit.blast_radius",
                    format!("{} targets at once (max {max_targets})", inflight + 1),
                );
            }
            let recent = |xs: &[u64], w: u64| {
                xs.iter().filter(|t| now.saturating_sub(**t) < w).count() as u32
            };
            if recent(&self.starts, window) >= limits.max_actions_per_hour {
                return fail(
                    "limit.max_actions_per_hour",
                    format!("{id} over {}", limits.max_actions_per_hour),
                );
            }
            let policy = self
                .cfg
                .services
                .iter()
                .find(|s| s.name == n.service)
                .map(|s| s.policy.clone())
                .unwrap_or_default();
            match a.class {
                ActionClass::RestartService => {
                    let bw = policy.budget_window.as_millis() as u64;
                    let used = recent(self.restarts.get(n.service).map_or(&[][..], |v| v), bw);
                    if used >= policy.restart_budget {
                        return fail(
                            "limit.restart_budget",
                            format!(
                                "{id} is restart {} (budget {})",
                                used + 1,
                                policy.restart_budget
                            ),
                        );
                    }
                    if a.entry_without_class {
                        self.hit("restart_budget_class_from_kind");
                    }
                }
                ActionClass::ToggleFeatureFlag
                    if recent(&self.features, window) >= limits.feature_disables_per_hour =>
                {
                    return fail("limit.feature_budget", format!("{id}"));
                }
                ActionClass::Fallback => {
                    let used = recent(self.fallbacks.get(n.service).map_or(&[][..], |v| v), window);
                    if used >= limits.fallbacks_per_service_per_hour {
                        return fail("limit.fallback_budget", format!("{id}"));
                    }
                }
                _ => {}
            }
            // A first attempt (the canary is one) waits out the cooldown and
            // faces the score rules.
            let first = matches!(n.stage, ActionStage::Direct | ActionStage::Canary);
            if first {
                let cooldown = policy.cooldown.as_millis() as u64;
                let key = (n.service.to_string(), n.action.to_string());
                if let Some(last) = self.last_success.get(&key) {
                    if now < last + cooldown {
                        return fail(
                            "limit.cooldown",
                            format!(
                                "{id} {} {}ms after its last success (cooldown {cooldown}ms)",
                                n.action,
                                now - last
                            ),
                        );
                    }
                }
            }
            let key = (
                n.incident.map(|i| i.0.clone()).unwrap_or_default(),
                n.action.to_string(),
            );
            let needs_tier = a.tier == Risk::Critical || !mode_runs(mode, a.tier);
            let needs_score = first && own_score > gates.human_score;
            if needs_tier || needs_score {
                let required = if two_person && a.tier >= Risk::High {
                    2
                } else {
                    1
                };
                let got = self.granted.get(&key).map_or(0, |x| x.len());
                if got < required {
                    let kind = if a.tier == Risk::Critical {
                        "approval.critical"
                    } else if needs_tier {
                        "approval.missing"
                    } else {
                        "approval.score"
                    };
                    return fail(
                        kind,
                        format!(
                            "{id} ({} on {}: {} risk{}, score {own_score:.3}, mode {mode}) ran \
                             with {got} of {required} approvals",
                            n.action,
                            n.service,
                            a.tier.as_str(),
                            if a.tier_from_class {
                                format!(" from class {}", a.class)
                            } else {
                                String::new()
                            }
                        ),
                    );
                }
                self.hit("approval_required_and_given");
                if a.tier_from_class && a.tier >= Risk::High {
                    self.hit("high_by_class_default");
                }
            }
            if n.stage == ActionStage::Direct {
                let instances = self.instances.get(n.service).copied().unwrap_or(1);
                if own_score > gates.canary_score && instances > 1 && a.canary_capable {
                    return fail(
                        "canary.skipped",
                        format!(
                            "{id} (score {own_score:.3}, {instances} instances) ran without a canary"
                        ),
                    );
                }
            }
            self.starts.push(now);
            if a.class == ActionClass::ToggleFeatureFlag {
                self.features.push(now);
            }
        }
        // What the intent records must be what the configuration gives.
        if self.records && n.class != a.class {
            return fail(
                "risk.class",
                format!("{id} recorded class {} (configured: {})", n.class, a.class),
            );
        }
        if self.records && n.risk != a.tier {
            return fail(
                "risk.tier",
                format!(
                    "{id} recorded {} risk; the configuration gives {}",
                    n.risk.as_str(),
                    a.tier.as_str()
                ),
            );
        }
        if self.records && n.kind != a.kind {
            return fail(
                "risk.kind",
                format!("{id} recorded kind {}", n.kind.as_str()),
            );
        }
        if self.records && (n.score - own_score).abs() > 1e-9 {
            return fail(
                "risk.score",
                format!(
                    "{id} recorded score {:.6}; the configuration gives {own_score:.6}",
                    n.score
                ),
            );
        }
        if let Some(inc) = n.incident {
            let at = engine.now();
            let canary = n.stage == ActionStage::Canary;
            let action = n.action;
            if let Some(e) = self.explained(engine, inc, "a run", |d| {
                d.action == action
                    && d.at == at
                    && match d.verdict {
                        Verdict::RunCanary => canary,
                        Verdict::Run => !canary,
                        _ => false,
                    }
            }) {
                return fail("explain.missing", e);
            }
        }
        if a.class == ActionClass::RestartService {
            self.restarts
                .entry(n.service.to_string())
                .or_default()
                .push(now);
        }
        if a.class == ActionClass::Fallback {
            self.fallbacks
                .entry(n.service.to_string())
                .or_default()
                .push(now);
        }
        if let (false, Some(i)) = (revert, n.incident) {
            self.ended_as.remove(&i.0);
        }
        self.inflight.insert(
            id.0,
            Flight {
                service: n.service.to_string(),
                incident: n.incident.map(|i| i.0.clone()),
                action: n.action.to_string(),
                stage: n.stage,
            },
        );
        Ok(())
    }

    /// Nothing left to do: every incident closed or escalated, nothing in
    /// flight, no approval pending.
    pub fn converged(&self, engine: &Engine) -> bool {
        engine
            .open_incidents()
            .iter()
            .all(|i| i.phase == Phase::ManualIntervention)
            && engine.inflight_actions().is_empty()
            && engine.pending_approvals().is_empty()
    }

    /// Liveness and completeness checks after the liveness phase.
    pub fn at_end(&self, now: u64, engine: &Engine) -> Option<Violation> {
        if let Some(i) = engine
            .open_incidents()
            .iter()
            .find(|i| i.phase != Phase::ManualIntervention)
        {
            return Some(Violation::new(
                "liveness.incident_stuck",
                now,
                format!("{} still {} at the liveness bound", i.id, i.phase.as_str()),
            ));
        }
        if let Some(a) = engine.inflight_actions().first() {
            return Some(Violation::new(
                "liveness.action_stuck",
                now,
                format!("{} still in flight", a.0),
            ));
        }
        if let Some(a) = engine.pending_approvals().first() {
            return Some(Violation::new(
                "liveness.approval_stuck",
                now,
                format!("{} still pending", a.id),
            ));
        }
        if let Some(id) = self.intents.iter().find(|i| !self.closed.contains(i)) {
            return Some(Violation::new(
                "audit.outcome_missing",
                now,
                format!("act-{id} has an intent but no outcome record"),
            ));
        }
        None
    }
}

/// The facts of one `action.intent` notice.
struct IntentFacts<'a> {
    id: ActionId,
    incident: Option<&'a IncidentId>,
    service: &'a str,
    action: &'a str,
    kind: ActionKind,
    class: ActionClass,
    risk: Risk,
    score: f64,
    stage: ActionStage,
}
