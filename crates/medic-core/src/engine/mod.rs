//! The healing state machine, split by concern:
//!
//! - `mod.rs`: the [`Engine`] type, routing of inputs, the handle/poll API;
//! - `state.rs`: per-service and per-incident state, and views of it;
//! - `detect.rs`: evidence and detection rules, opening incidents;
//! - `decide.rs`: planning a remediation through governance, running it;
//! - `outcome.rs`: outcomes, verification, retries, escalation, closing;
//! - `timers.rs`: every deadline (the incident's own timer, pauses,
//!   approvals, reverts);
//! - `operate.rs`: operator commands;
//! - `crate::snapshot`: the durable safety state.
//!
//! Incident lifecycle:
//!
//! ```text
//! Monitoring -> DetectingFailure -> ConfirmingPattern -> ExecutingHeal -> Verifying -> Resolved
//!                                          |                  |              |
//!                                          +------------------+--------------+--> ManualIntervention
//! ```
pub(crate) mod canary;
mod decide;
mod detect;
mod drill;
mod locking;
mod operate;
mod outcome;
pub(crate) mod state;
mod timers;

use std::collections::{BTreeMap, VecDeque};

use crate::governance::*;
use crate::notice::*;
use crate::operator::{Ack, Actor, OperatorCommand, OperatorError};
use crate::rng::SplitMix64;
use crate::spec::*;
use crate::time::MonoTime;
use crate::types::*;
use state::*;

pub use drill::DrillBlock;

/// `poll_timeout`'s cached answer (an atomic, so that the engine stays
/// `Sync` behind `&self`): `EMPTY` = not known, `NONE` = no deadline,
/// else the deadline in ms (a deadline at `u64::MAX - 1` or later is simply
/// never cached).
#[derive(Debug)]
pub(crate) struct TimeoutCache(std::sync::atomic::AtomicU64);

impl TimeoutCache {
    const EMPTY: u64 = u64::MAX;
    const NONE: u64 = u64::MAX - 1;

    pub(crate) fn clear(&self) {
        self.0
            .store(Self::EMPTY, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> Option<Option<MonoTime>> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::EMPTY => None,
            Self::NONE => Some(None),
            t => Some(Some(MonoTime(t))),
        }
    }

    fn set(&self, t: Option<MonoTime>) {
        let v = match t {
            None => Self::NONE,
            Some(MonoTime(t)) if t < Self::NONE => t,
            Some(_) => Self::EMPTY,
        };
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Default for TimeoutCache {
    fn default() -> Self {
        TimeoutCache(std::sync::atomic::AtomicU64::new(Self::EMPTY))
    }
}

/// The sans-IO healing engine. See the crate docs for the driving contract.
#[derive(Debug)]
pub struct Engine {
    pub(crate) mode: Mode,
    pub(crate) instance: String,
    pub(crate) max_timeline: usize,
    pub(crate) now: MonoTime,
    pub(crate) rng: SplitMix64,
    pub(crate) services: BTreeMap<String, Svc>,
    pub(crate) next_incident: u64,
    pub(crate) next_action: u64,
    out: VecDeque<Command>,
    notices: VecDeque<Notice>,
    pub(crate) gov: GovernanceConfig,
    /// Wall clock sync point: (mono, unix ms).
    pub(crate) wall: Option<(MonoTime, i64)>,
    pub(crate) pauses: Vec<Pause>,
    pub(crate) mass_paused: bool,
    pub(crate) incident_opens: VecDeque<MonoTime>,
    pub(crate) failed_actions: VecDeque<MonoTime>,
    /// Starts of non-forced actions inside the hour window.
    pub(crate) action_starts: VecDeque<MonoTime>,
    pub(crate) feature_toggles: VecDeque<MonoTime>,
    pub(crate) approvals: BTreeMap<u64, Approval>,
    pub(crate) next_approval: u64,
    pub(crate) explained: BTreeMap<String, Explanation>,
    pub(crate) explained_order: VecDeque<String>,
    /// The latest root-cause diagnosis (issue 9), at most MAX_HYPOTHESES.
    pub(crate) last_diagnosis: crate::types::DiagnosisReport,
    /// Bumped by every change to the durable safety state.
    safety_gen: u64,
    /// `safety_gen` when `publish_dirty` last looked at every service.
    published_gen: Option<u64>,
    /// A deliberate policy bug (simulator self-tests only).
    pub(crate) fault: PolicyFault,
    /// Locks of the actions in flight and the queue of those waiting (issue 10).
    pub(crate) locks: crate::locks::LockTable,
    /// `poll_timeout`'s answer while nothing that holds a deadline changed:
    /// it scans every service, and a driver asks after every step (at
    /// 10,000 probes a second that scan was most of medic's CPU). Cleared by
    /// every input except a probe report that leaves its service without an
    /// incident, an in-flight action or a pending revert before and after.
    pub(crate) timeout_cache: TimeoutCache,
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: MonoTime) -> Engine {
        let gov_cfg = cfg.governance;
        let gov_cfg_locks = gov_cfg.locks.clone();
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
                        diagnosis: None,
                        // A start phase begins when the driver starts the
                        // process (`Input::ProcessStarted`) or a restart
                        // action succeeds, not with the engine.
                        starting_until: None,
                        breakers: BTreeMap::new(),
                        canary: None,
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
            notices: VecDeque::new(),
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
            last_diagnosis: crate::types::DiagnosisReport::default(),
            safety_gen: 0,
            published_gen: None,
            fault: PolicyFault::None,
            locks: crate::locks::LockTable::new(gov_cfg_locks),
            timeout_cache: TimeoutCache::default(),
        }
    }

    /// Plant a deliberate policy bug (simulator self-tests only).
    #[doc(hidden)]
    pub fn inject_fault(&mut self, fault: PolicyFault) {
        self.timeout_cache.clear();
        self.fault = fault;
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

    /// Engine time of the last input.
    pub fn now(&self) -> MonoTime {
        self.now
    }

    /// Wall clock now (unix ms), extrapolated from the last [`Input::WallClock`].
    pub fn wall_now(&self) -> Option<i64> {
        self.wall_at(self.now)
    }

    /// The wall clock (unix ms) at engine time `t`, if the wall clock is known.
    pub fn wall_at(&self, t: MonoTime) -> Option<i64> {
        self.wall.map(|(m, w)| {
            let d = i128::from(t.0) - i128::from(m.0);
            i64::try_from(i128::from(w).saturating_add(d)).unwrap_or(i64::MAX)
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
                    hypotheses: inc.hypotheses.clone(),
                    merged: inc.merged.clone(),
                    canary: inc.canary.clone(),
                    bands: self.gov.autonomy.clone(),
                });
            }
        }
        self.explained.get(incident).cloned()
    }

    /// Held locks and the queue of actions waiting for one (issue 10).
    pub fn locks(&self) -> &crate::locks::LockTable {
        &self.locks
    }

    /// A counter that moves whenever the durable safety state changes: the
    /// driver persists [`Engine::snapshot`] when it differs from the last
    /// one it saved.
    pub fn safety_generation(&self) -> u64 {
        self.safety_gen
    }

    // === input ===

    pub fn handle_input(&mut self, now: MonoTime, input: Input) {
        self.advance(now);
        if !matches!(input, Input::Probe(_)) {
            self.timeout_cache.clear();
        }
        match input {
            Input::Probe(report) => {
                // A report about a service with nothing pending that leaves
                // it so (no incident opened) moves no deadline.
                if !self.on_probe(report) {
                    self.timeout_cache.clear();
                }
            }
            Input::ActionOutcome { id, result } => self.on_outcome(id, result),
            Input::Operator(actor, cmd) => {
                // The answer is in the audit log; `operate` returns it.
                let _ = self.operate_recorded(&actor, cmd);
            }
            Input::ProcessStarted { service } => {
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.starting_until = Some(self.now.plus(svc.spec.startup.grace));
                    for st in svc.probes.values_mut() {
                        st.startup_noted = false;
                        st.started = false;
                    }
                }
            }
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
            Input::Diagnosis(report) => self.diagnosed(report),
            Input::CanarySamples(s) => self.canary_samples(s),
            Input::FreezeWindows(w) => {
                let names: Vec<String> = w.iter().map(|f| f.name.clone()).collect();
                if self.gov.freeze_windows != w {
                    self.notice(Notice::FreezeWindowsSet { names });
                    self.gov.freeze_windows = w;
                }
                self.replan_all();
            }
        }
        self.sync_locks();
        self.publish_dirty();
    }

    /// Run an operator command as `actor` and return its answer. Refusals
    /// are recorded (`operator.rejected`) and change nothing.
    pub fn operate(
        &mut self,
        now: MonoTime,
        actor: &Actor,
        cmd: OperatorCommand,
    ) -> Result<Ack, OperatorError> {
        self.timeout_cache.clear();
        self.advance(now);
        let answer = self.operate_recorded(actor, cmd);
        self.sync_locks();
        self.publish_dirty();
        answer
    }

    fn operate_recorded(
        &mut self,
        actor: &Actor,
        cmd: OperatorCommand,
    ) -> Result<Ack, OperatorError> {
        let name = cmd.name();
        let answer = self.apply_operator(actor, cmd);
        if let Err(e) = &answer {
            self.notice(Notice::OperatorRejected {
                by: actor.id.clone(),
                command: name,
                error: e.code(),
                reason: e.to_string(),
            });
        }
        answer
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.timeout_cache.clear();
        self.advance(now);
        self.expire_pauses();
        self.expire_approvals();
        self.sync_locks();
        self.expire_locks();
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in &names {
            self.timers(name);
        }
        // Freeze boundaries and freed limits are level-triggered: look again.
        self.replan_all();
        self.sync_locks();
        self.publish_dirty();
    }

    // === output ===

    /// The next notice: what happened. Record it before running this step's
    /// commands.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// The earliest time at which `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        if let Some(t) = self.timeout_cache.get() {
            // Every debug build (the scenario, property and simulator tests)
            // checks the cache against the scan.
            debug_assert_eq!(t, self.compute_timeout(), "stale poll_timeout cache");
            return t;
        }
        let t = self.compute_timeout();
        self.timeout_cache.set(t);
        t
    }

    /// [`Engine::poll_timeout`] without the cache: every service's timers,
    /// pauses, approvals and freeze-window edges.
    fn compute_timeout(&self) -> Option<MonoTime> {
        let mut best: Option<MonoTime> = None;
        let mut consider = |t: Option<MonoTime>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        for svc in self.services.values() {
            if let Some(inc) = &svc.incident {
                consider(inc.timer.map(|t| t.at()));
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
        consider(self.locks.next_deadline());
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

    /// Record a notice. Every notice but probe-level ones may change what
    /// the durable state holds, so the generation moves.
    pub(crate) fn notice(&mut self, n: Notice) {
        self.safety_gen = self.safety_gen.wrapping_add(1);
        self.notices.push_back(n);
    }

    pub(crate) fn command(&mut self, c: Command) {
        self.out.push_back(c);
    }

    pub(crate) fn notify(&mut self, n: Notification) {
        self.out.push_back(Command::Notify(n));
    }

    /// Publish the incidents that changed. Every change of an incident comes
    /// with a notice, which moves `safety_gen`: a step without one (most
    /// healthy probe reports) has nothing to publish, and the scan over every
    /// service is skipped (it dominated medic's CPU at 10,000 targets).
    fn publish_dirty(&mut self) {
        if self.published_gen == Some(self.safety_gen) {
            return;
        }
        let mut views = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            if svc.dirty {
                svc.dirty = false;
                if let Some(inc) = &svc.incident {
                    views.push(view(name, inc, None, None));
                }
            }
        }
        if !views.is_empty() {
            self.safety_gen = self.safety_gen.wrapping_add(1);
        }
        for v in views {
            self.out.push_back(Command::IncidentChanged(v));
        }
        self.published_gen = Some(self.safety_gen);
    }
}
