//! Invariant checkers. They keep their own model of the rules (mode, pauses,
//! freezes, limits, approvals) from the inputs the simulator sends and the
//! commands the engine emits, and never ask the engine whether it obeyed.
//!
//! Checked after every step:
//! - `mode`: no automatic action in `disabled`/`dry-run`, while paused,
//!   frozen or mass-incident-latched;
//! - `limit.*`: max concurrent, max per hour, blast radius, per-kind budgets
//!   (restarts, feature toggles, fallbacks) and cooldown never exceeded;
//! - `target.busy`: at most one action per target at a time;
//! - `approval.*`: CRITICAL never, and a tier above the mode (e.g. HIGH in
//!   aggressive) never, without approvals from enough distinct humans, and
//!   only humans who actually approved;
//! - `audit.intent` / `audit.outcome`: an intent record right before every
//!   action, an outcome record for every delivered outcome;
//! - `verify.no_escalation`: a failed verification ends, in the same step, in
//!   a human being told: an escalation, or below the consecutive-failure
//!   limit a `heal.retrying` warning (and rollback when the action can be
//!   undone); the limit itself is checked by the liveness phase (no incident
//!   stays open unescalated);
//! - `reason.missing`: every decision, escalation and approval request
//!   carries a machine-readable reason code;
//! - `mass.not_paused`: more services affected than allowed latches automation off.
//!
//! At the end of the liveness phase: no incident open except escalated ones,
//! nothing in flight, no approval pending, every intent has an outcome.
use std::collections::{BTreeMap, BTreeSet};

use medic_core::{
    ActionClass, ActionKind, ActionStage, Command, Engine, EngineConfig, FreezeWindow, Input, Mode,
    OperatorCommand, Phase, Risk,
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

#[derive(Clone, Debug)]
struct Flight {
    service: String,
}

#[derive(Clone, Debug)]
struct Pause {
    service: Option<String>,
    kind: Option<ActionKind>,
    until: Option<u64>,
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
    inflight: BTreeMap<u64, Flight>,
    starts: Vec<u64>,
    restarts: BTreeMap<String, Vec<u64>>,
    features: Vec<u64>,
    fallbacks: BTreeMap<String, Vec<u64>>,
    last_success: BTreeMap<(String, String), u64>,
    flight_meta: BTreeMap<u64, (String, String, ActionStage)>,
    granted: BTreeMap<(String, String), Vec<String>>,
    sent_approvals: BTreeMap<String, Vec<String>>,
    intents: BTreeSet<u64>,
    outcomes: BTreeSet<u64>,
    delivered: Option<u64>,
    open: BTreeSet<String>,
    incidents_seen: u64,
    instances: BTreeMap<String, u32>,
}

fn action_num(s: &str) -> Option<u64> {
    s.strip_prefix("act-")?.parse().ok()
}

impl Checker {
    pub fn new(cfg: &EngineConfig, _wall_start_ms: i64) -> Checker {
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
            inflight: BTreeMap::new(),
            starts: Vec::new(),
            restarts: BTreeMap::new(),
            features: Vec::new(),
            fallbacks: BTreeMap::new(),
            last_success: BTreeMap::new(),
            flight_meta: BTreeMap::new(),
            granted: BTreeMap::new(),
            sent_approvals: BTreeMap::new(),
            intents: BTreeSet::new(),
            outcomes: BTreeSet::new(),
            delivered: None,
            open: BTreeSet::new(),
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
        }
    }

    pub fn incidents_seen(&self) -> u64 {
        self.incidents_seen
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

    /// Update the model with an input about to be handed to the engine.
    pub fn before_input(&mut self, now: u64, input: Option<&Input>, _wall_offset: i64) {
        self.delivered = None;
        let Some(input) = input else {
            return;
        };
        match input {
            Input::WallClock { unix_ms, .. } => self.wall_sync = Some((now, *unix_ms)),
            Input::FreezeWindows(w) => self.freeze = w.clone(),
            Input::Signals(sig) => {
                if let (Some(n), Some(slot)) = (sig.instances, self.instances.get_mut(&sig.service))
                {
                    *slot = n;
                }
            }
            Input::ActionOutcome { id, result } if self.inflight.contains_key(&id.0) => {
                self.inflight.remove(&id.0);
                {
                    self.delivered = Some(id.0);
                    if let Some((svc, action, stage)) = self.flight_meta.get(&id.0) {
                        if result.is_ok() && *stage != ActionStage::Canary {
                            self.last_success.insert((svc.clone(), action.clone()), now);
                        }
                    }
                }
            }
            Input::Operator(op) => match op {
                OperatorCommand::SetMode { service, mode, .. } => match service {
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
                OperatorCommand::Resume { service, kind, .. } => {
                    if service.is_none() && kind.is_none() {
                        self.pauses.clear();
                        self.mass_latched = false;
                    } else {
                        self.pauses
                            .retain(|p| !(p.service == *service && p.kind == *kind));
                    }
                }
                OperatorCommand::Approve { id, by } => {
                    self.sent_approvals
                        .entry(id.clone())
                        .or_default()
                        .push(by.clone());
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn class_of(&self, svc: &str, action: &str, kind: ActionKind) -> ActionClass {
        self.cfg
            .governance
            .services
            .get(svc)
            .and_then(|g| g.actions.get(action))
            .map(|a| a.class)
            .unwrap_or(ActionClass::from_kind(kind))
    }

    /// Check the commands of one step. Returns the first violation.
    pub fn after_step(&mut self, now: u64, cmds: &[Command], engine: &Engine) -> Option<Violation> {
        let v = |kind: &'static str, detail: String| Some(Violation::new(kind, now, detail));
        let gov = &self.cfg.governance;
        let window = gov.limits.window.as_millis() as u64;
        let mut prev_intent: Option<u64> = None;
        let mut prev_score: Option<f64> = None;
        let mut verify_failed: BTreeSet<String> = BTreeSet::new();
        let mut opened = false;
        for c in cmds {
            let mut this_intent = None;
            let mut this_score = None;
            match c {
                Command::Audit(a) => {
                    let f = |k: &str| a.field(k).unwrap_or("").to_string();
                    match a.kind {
                        "action.intent" => {
                            this_intent = action_num(&f("action_id"));
                            this_score = f("score").parse::<f64>().ok();
                            if let Some(n) = this_intent {
                                self.intents.insert(n);
                            }
                        }
                        "action.outcome" => {
                            if let Some(n) = action_num(&f("action_id")) {
                                self.outcomes.insert(n);
                            }
                        }
                        "approval.granted" => {
                            let approvers: Vec<String> = f("approvers")
                                .split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect();
                            let sent = self
                                .sent_approvals
                                .get(&f("approval_id"))
                                .cloned()
                                .unwrap_or_default();
                            let distinct: BTreeSet<&String> = approvers.iter().collect();
                            if distinct.len() != approvers.len() {
                                return v("approval.duplicate_approver", format!("{a:?}"));
                            }
                            if let Some(x) = approvers.iter().find(|x| !sent.contains(x)) {
                                return v(
                                    "approval.forged",
                                    format!("{x} never approved {}", f("approval_id")),
                                );
                            }
                            self.granted.insert((f("incident"), f("action")), approvers);
                        }
                        "automation.paused" if a.field("reason_code") == Some("mass_incident") => {
                            self.mass_latched = true;
                        }
                        "incident.opened" => {
                            opened = true;
                            self.open.insert(f("incident"));
                            self.incidents_seen += 1;
                        }
                        "incident.resolved" => {
                            self.open.remove(&f("incident"));
                        }
                        "verify.failed" => {
                            verify_failed.insert(f("incident"));
                        }
                        "incident.escalated" | "heal.retrying" | "decision"
                        | "approval.requested" => {
                            if matches!(a.kind, "incident.escalated" | "heal.retrying") {
                                verify_failed.remove(&f("incident"));
                            }
                            if a.field("reason_code").is_none_or(str::is_empty) {
                                return v("reason.missing", format!("{a:?}"));
                            }
                        }
                        _ => {}
                    }
                }
                Command::RunAction(r) => {
                    if prev_intent != Some(r.id.0) {
                        return v(
                            "audit.intent",
                            format!("{} ran without an intent record right before it", r.id),
                        );
                    }
                    if self.inflight.values().any(|f| f.service == r.service) {
                        return v(
                            "target.busy",
                            format!("{} on {} while another action runs there", r.id, r.service),
                        );
                    }
                    let forced = r.stage == ActionStage::Forced;
                    let class = self.class_of(&r.service, &r.action, r.kind);
                    if !forced {
                        let mode = self.mode_of(&r.service);
                        if !mode.acts() {
                            return v("mode", format!("{} ran in mode {mode}", r.id));
                        }
                        if self.mass_latched {
                            return v("mode.mass_incident", format!("{} ran while latched", r.id));
                        }
                        if self.pauses.iter().any(|p| {
                            p.until.is_none_or(|t| t > now)
                                && p.service.as_deref().is_none_or(|s| s == r.service)
                                && p.kind.is_none_or(|k| k == r.kind)
                        }) {
                            return v("mode.paused", format!("{} ran while paused", r.id));
                        }
                        if let Some(w) = self.wall(now) {
                            if self.freeze.iter().any(|f| f.covers(&r.service, w)) {
                                return v("mode.frozen", format!("{} ran while frozen", r.id));
                            }
                        }
                        let inflight = self.inflight.len() as u32;
                        if inflight >= gov.limits.max_concurrent {
                            return v(
                                "limit.max_concurrent",
                                format!(
                                    "{} started with {inflight} in flight (max {})",
                                    r.id, gov.limits.max_concurrent
                                ),
                            );
                        }
                        let targets = self.cfg.services.len() as f64;
                        let max_targets =
                            ((targets * gov.gates.max_blast_radius).floor() as u32).max(1);
                        if inflight + 1 > max_targets {
                            return v(
                                "limit.blast_radius",
                                format!("{} targets at once (max {max_targets})", inflight + 1),
                            );
                        }
                        let recent = |xs: &[u64], w: u64| {
                            xs.iter().filter(|t| now.saturating_sub(**t) < w).count() as u32
                        };
                        if recent(&self.starts, window) >= gov.limits.max_actions_per_hour {
                            return v(
                                "limit.max_actions_per_hour",
                                format!("{} over {}", r.id, gov.limits.max_actions_per_hour),
                            );
                        }
                        let spec = self.cfg.services.iter().find(|s| s.name == r.service);
                        match class {
                            ActionClass::RestartService => {
                                let (budget, bw) = spec
                                    .map(|s| {
                                        (
                                            s.policy.restart_budget,
                                            s.policy.budget_window.as_millis() as u64,
                                        )
                                    })
                                    .unwrap_or((0, 0));
                                let used = recent(
                                    self.restarts.get(&r.service).map_or(&[][..], |v| v),
                                    bw,
                                );
                                if used >= budget {
                                    return v(
                                        "limit.restart_budget",
                                        format!(
                                            "{} is restart {} (budget {budget})",
                                            r.id,
                                            used + 1
                                        ),
                                    );
                                }
                            }
                            ActionClass::ToggleFeatureFlag
                                if recent(&self.features, window)
                                    >= gov.limits.feature_disables_per_hour =>
                            {
                                return v("limit.feature_budget", format!("{}", r.id));
                            }
                            ActionClass::Fallback => {
                                let used = recent(
                                    self.fallbacks.get(&r.service).map_or(&[][..], |v| v),
                                    window,
                                );
                                if used >= gov.limits.fallbacks_per_service_per_hour {
                                    return v("limit.fallback_budget", format!("{}", r.id));
                                }
                            }
                            _ => {}
                        }
                        if r.stage == ActionStage::Direct {
                            let cooldown = spec
                                .map(|s| s.policy.cooldown.as_millis() as u64)
                                .unwrap_or(0);
                            if let Some(last) = self
                                .last_success
                                .get(&(r.service.clone(), r.action.clone()))
                            {
                                if now < last + cooldown {
                                    return v(
                                        "limit.cooldown",
                                        format!(
                                            "{} {} {}ms after its last success (cooldown {cooldown}ms)",
                                            r.id,
                                            r.action,
                                            now - last
                                        ),
                                    );
                                }
                            }
                        }
                        let key = (
                            r.incident.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
                            r.action.clone(),
                        );
                        let approved = self.granted.contains_key(&key);
                        if r.stage == ActionStage::Direct {
                            // Score rules, from the score the intent record states.
                            let score = prev_score.unwrap_or(1.0);
                            if score > gov.gates.human_score && !approved {
                                return v(
                                    "approval.score",
                                    format!(
                                        "{} with risk score {score} ran without approval",
                                        r.id
                                    ),
                                );
                            }
                            let instances = self.instances.get(&r.service).copied().unwrap_or(1);
                            let canary_capable = gov
                                .services
                                .get(&r.service)
                                .and_then(|g| g.actions.get(&r.action))
                                .is_none_or(|a| a.canary);
                            if score > gov.gates.canary_score && instances > 1 && canary_capable {
                                return v(
                                    "canary.skipped",
                                    format!(
                                        "{} (score {score}, {instances} instances) ran without a canary",
                                        r.id
                                    ),
                                );
                            }
                        }
                        let needs = r.risk == Risk::Critical || !mode.allows(r.risk);
                        if needs {
                            let required = if gov.approvals.two_person_high && r.risk >= Risk::High
                            {
                                2
                            } else {
                                1
                            };
                            let n = self.granted.get(&key).map_or(0, |a| a.len());
                            if n < required {
                                return v(
                                    if r.risk == Risk::Critical {
                                        "approval.critical"
                                    } else {
                                        "approval.missing"
                                    },
                                    format!(
                                        "{} ({} risk, mode {mode}) ran with {n} of {required} approvals",
                                        r.id,
                                        r.risk.as_str()
                                    ),
                                );
                            }
                        }
                        self.starts.push(now);
                        if class == ActionClass::ToggleFeatureFlag {
                            self.features.push(now);
                        }
                    }
                    if class == ActionClass::RestartService {
                        self.restarts
                            .entry(r.service.clone())
                            .or_default()
                            .push(now);
                    }
                    if class == ActionClass::Fallback {
                        self.fallbacks
                            .entry(r.service.clone())
                            .or_default()
                            .push(now);
                    }
                    self.inflight.insert(
                        r.id.0,
                        Flight {
                            service: r.service.clone(),
                        },
                    );
                    self.flight_meta
                        .insert(r.id.0, (r.service.clone(), r.action.clone(), r.stage));
                }
                _ => {}
            }
            prev_intent = this_intent;
            prev_score = this_score;
        }
        if let Some(id) = self.delivered.take() {
            if !self.outcomes.contains(&id) {
                return v(
                    "audit.outcome",
                    format!("act-{id} delivered without an outcome record"),
                );
            }
        }
        if let Some(i) = verify_failed.first() {
            return v(
                "verify.no_escalation",
                format!("{i} failed verification without escalation"),
            );
        }
        let max = self.cfg.governance.gates.mass_incident_services as usize;
        // Crossing the threshold latches automation off (an operator may
        // resume it afterwards).
        if opened && self.open.len() > max && !self.mass_latched {
            return v(
                "mass.not_paused",
                format!("{} services affected (max {max})", self.open.len()),
            );
        }
        let _ = engine;
        None
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
        if let Some(id) = self.intents.iter().find(|i| !self.outcomes.contains(i)) {
            return Some(Violation::new(
                "audit.outcome_missing",
                now,
                format!("act-{id} has an intent but no outcome record"),
            ));
        }
        None
    }
}
