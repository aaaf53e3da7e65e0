//! Per-service and per-incident state, and the views drivers see of it.
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::governance::*;
use crate::spec::*;
use crate::time::MonoTime;
use crate::types::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub(crate) struct ProbeState {
    /// Times of the current run of consecutive failures (bounded).
    pub fail_times: VecDeque<MonoTime>,
    pub recent_failures: VecDeque<ProbeFailure>,
    pub slow_run: u32,
    pub healthy_run: u32,
    pub seen: bool,
    /// A startup failure of this probe was already recorded in this grace.
    pub startup_noted: bool,
    /// This probe succeeded since the process (re)started: its start phase
    /// is over, its failures count again.
    pub started: bool,
    /// Recent results (at most [`crate::verify::MAX_SAMPLES`]): the
    /// baseline an action is verified against. Not durable.
    pub history: VecDeque<(MonoTime, crate::verify::Sample)>,
}

/// The one deadline an open incident waits for; which one depends on its
/// stage, so they cannot get out of step.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum IncidentTimer {
    /// Re-run the failed action (backoff).
    Retry(MonoTime),
    /// End of the verification window.
    Verify(MonoTime),
    /// A gate said "not now": plan again then.
    Defer(MonoTime),
    /// Full rollout after a good canary.
    Rollout(MonoTime),
    /// Deadline for the samples of a staged canary's stage (issue 10).
    Judge(MonoTime),
}

impl IncidentTimer {
    pub fn at(self) -> MonoTime {
        match self {
            IncidentTimer::Retry(t)
            | IncidentTimer::Verify(t)
            | IncidentTimer::Defer(t)
            | IncidentTimer::Rollout(t)
            | IncidentTimer::Judge(t) => t,
        }
    }

    pub fn map(self, f: impl Fn(MonoTime) -> MonoTime) -> IncidentTimer {
        match self {
            IncidentTimer::Retry(t) => IncidentTimer::Retry(f(t)),
            IncidentTimer::Verify(t) => IncidentTimer::Verify(f(t)),
            IncidentTimer::Defer(t) => IncidentTimer::Defer(f(t)),
            IncidentTimer::Rollout(t) => IncidentTimer::Rollout(f(t)),
            IncidentTimer::Judge(t) => IncidentTimer::Judge(f(t)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Incident {
    pub id: IncidentId,
    pub probe: String,
    pub condition: Condition,
    pub cause: String,
    pub confidence: f64,
    pub phase: Phase,
    pub opened_at: MonoTime,
    pub updated_at: MonoTime,
    /// Execution attempts of the current heal.
    pub attempt: u32,
    pub timer: Option<IncidentTimer>,
    /// Last decision recorded while waiting, to avoid repeating it.
    pub waiting_reason: Option<String>,
    pub would_act: bool,
    pub healed_by: Option<String>,
    pub actions: Vec<String>,
    pub timeline: VecDeque<TimelineItem>,
    /// A pending approval for this incident's heal.
    pub approval: Option<u64>,
    /// The action humans approved for this incident, and by whom.
    pub approved: Option<(String, Vec<String>)>,
    pub decisions: VecDeque<DecisionRecord>,
    /// The ranked hypotheses of the diagnosis that concerned this incident
    /// (issue 9), for `explain`; kept in the snapshot (version 2), so they
    /// survive a restart.
    #[serde(default)]
    pub hypotheses: Vec<crate::types::Hypothesis>,
    /// Judged canary stages (issue 10), for `explain`; not durable.
    #[serde(skip)]
    pub canary: Vec<crate::canary::CanaryRecord>,
    /// Victims whose symptoms joined this incident (its service is their
    /// diagnosed upstream cause): one incident per cascade. Bounded by the
    /// number of services.
    #[serde(default)]
    pub merged: Vec<String>,
    /// Verification of a change against its baseline (issue 10).
    #[serde(default)]
    pub verify: Option<VerifyState>,
    /// The first sample of the run of results that opened the incident: a
    /// change's baseline starts here (not in the healthy time before).
    #[serde(default)]
    pub evidence_since: Option<MonoTime>,
}

/// A change's verification: the baseline from before the action, the
/// samples seen since it succeeded, and the criteria.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VerifyState {
    pub action: String,
    pub probe: String,
    pub spec: crate::verify::VerifySpec,
    pub window: Duration,
    pub baseline: Option<crate::verify::Stats>,
    /// When the action succeeded (the window's start); `None` while it runs.
    pub since: Option<MonoTime>,
    pub observed: VecDeque<crate::verify::Sample>,
}

impl Incident {
    pub fn deferred(&self, now: MonoTime) -> bool {
        matches!(self.timer, Some(IncidentTimer::Defer(t)) if t > now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InFlight {
    pub id: ActionId,
    /// The incident the action was started for (`None`: a revert, or a
    /// forced run with no incident). Its outcome applies only to it.
    #[serde(default)]
    pub incident: Option<IncidentId>,
    pub action: String,
    pub stage: ActionStage,
    /// `Some` when this execution undoes an earlier action.
    pub revert_of: Option<String>,
    pub cancel_requested: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingRevert {
    pub due: MonoTime,
    pub action: String,
    pub of: String,
    pub stage: ActionStage,
    pub blocked: Option<ReasonCode>,
    /// The instances to undo (those a staged canary changed); empty: the
    /// whole target.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Undo earlier, after this many healthy results of a probe (issue 10).
    #[serde(default)]
    pub green: Option<GreenChecks>,
}

/// Healthy results in a row of `probe` that make a revert due now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct GreenChecks {
    pub probe: String,
    pub needed: u32,
    pub seen: u32,
}

#[derive(Debug)]
pub(crate) struct Svc {
    pub spec: ServiceSpec,
    pub gov: ServiceGovernance,
    pub mode: Option<Mode>,
    pub probes: BTreeMap<String, ProbeState>,
    pub incident: Option<Incident>,
    pub inflight: Option<InFlight>,
    pub autoheal_disabled: bool,
    pub consecutive_failures: u32,
    /// Start times of restarts inside the budget window.
    pub restarts: VecDeque<MonoTime>,
    pub fallbacks: VecDeque<MonoTime>,
    /// Times of failed heals inside the failed-heal window.
    pub failed_heals: VecDeque<MonoTime>,
    pub last_success: BTreeMap<String, MonoTime>,
    /// An action to undo.
    pub pending_revert: Option<PendingRevert>,
    pub error_budget: Option<f64>,
    pub headroom: Option<f64>,
    /// Startup grace: until the first success or this time, probe failures
    /// are recorded but open no incident (a process exit still does).
    pub starting_until: Option<MonoTime>,
    /// What the latest root-cause diagnosis says about this service (issue 9).
    pub diagnosis: Option<crate::governance::DiagnosisGate>,
    /// Executor circuit breakers, per action (executor target) (issue 10).
    pub breakers: BTreeMap<String, crate::breaker::Breaker>,
    /// The staged canary in progress (issue 10); in the snapshot.
    pub canary: Option<super::canary::CanaryRun>,
    pub dirty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Approval {
    pub id: u64,
    pub incident: IncidentId,
    pub service: String,
    pub action: String,
    pub risk: Risk,
    pub score: f64,
    pub reason: Block,
    pub required: u32,
    pub approvers: Vec<String>,
    pub requested_at: MonoTime,
    pub expires_at: MonoTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pause {
    pub service: Option<String>,
    pub kind: Option<ActionKind>,
    pub until: Option<MonoTime>,
    pub by: String,
    pub reason: String,
}

impl Svc {
    pub fn probe_spec(&self, name: &str) -> Option<&ProbeSpec> {
        self.spec.probes.iter().find(|p| p.name == name)
    }

    pub fn action_spec(&self, name: &str) -> Option<&ActionSpec> {
        self.spec.actions.iter().find(|a| a.name == name)
    }

    pub fn resolved(&self, action: &ActionSpec) -> ResolvedAction {
        ResolvedAction::of(action, self.gov.actions.get(&action.name))
    }

    /// Whether `action` is verified as a change (against the baseline): its
    /// class says so, or it states `verify:` criteria.
    pub fn verified_as_change(&self, action: &ActionSpec) -> bool {
        action.verify.is_some()
            || self.resolved(action).class.verification() == crate::class::Verification::Change
    }

    /// The baseline of `probe`: its samples from `since` (the start of the
    /// evidence that opened the incident) to `now`, at most `window` old.
    pub fn baseline(
        &self,
        probe: &str,
        since: Option<MonoTime>,
        now: MonoTime,
        window: Duration,
    ) -> Option<crate::verify::Stats> {
        let st = self.probes.get(probe)?;
        crate::verify::Stats::of(
            st.history
                .iter()
                .filter(|(t, _)| now.since(*t) <= window && since.is_none_or(|s| *t >= s))
                .map(|(_, s)| s),
        )
    }

    /// When the run of results that makes `probe`'s `condition` fire began.
    pub fn evidence_since(&self, probe: &str, condition: Condition) -> Option<MonoTime> {
        let (spec, st) = (self.probe_spec(probe)?, self.probes.get(probe)?);
        match condition {
            Condition::Failing => {
                let n = spec.failure.consecutive.max(1) as usize;
                st.fail_times
                    .len()
                    .checked_sub(n)
                    .and_then(|i| st.fail_times.get(i))
                    .copied()
            }
            Condition::Slow => st
                .history
                .iter()
                .rev()
                .nth(st.slow_run.max(1) as usize - 1)
                .map(|(t, _)| *t),
        }
    }

    /// The first (probe, condition) whose rule currently fires.
    /// Nothing pending: no incident, no action in flight, no revert.
    pub fn quiet(&self) -> bool {
        self.incident.is_none() && self.inflight.is_none() && self.pending_revert.is_none()
    }

    pub fn firing(&self) -> Option<(String, Condition)> {
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

    pub fn any_suspicious(&self) -> bool {
        self.probes
            .values()
            .any(|st| !st.fail_times.is_empty() || st.slow_run > 0)
    }

    /// The probe met its recovery rule and no other probe of the service is
    /// in a run of failures.
    pub fn recovered(&self, probe: &str) -> bool {
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

pub(crate) fn failing(p: &ProbeSpec, st: &ProbeState) -> bool {
    let n = p.failure.consecutive.max(1) as usize;
    if st.fail_times.len() < n {
        return false;
    }
    let last = st.fail_times[st.fail_times.len() - 1];
    let first = st.fail_times[st.fail_times.len() - n];
    last.since(first) <= p.failure.within
}

pub(crate) fn slow(p: &ProbeSpec, st: &ProbeState) -> bool {
    match &p.latency {
        Some(rule) => st.slow_run >= rule.consecutive.max(1),
        None => false,
    }
}

pub(crate) fn prune(q: &mut VecDeque<MonoTime>, now: MonoTime, window: Duration) {
    while q.front().is_some_and(|t| now.since(*t) >= window) {
        q.pop_front();
    }
}

pub(crate) fn parse_approval_id(s: &str) -> Option<u64> {
    s.strip_prefix("apr-").unwrap_or(s).parse().ok()
}

pub(crate) fn approval_view(a: &Approval) -> ApprovalView {
    ApprovalView {
        id: format!("apr-{}", a.id),
        incident: a.incident.clone(),
        service: a.service.clone(),
        action: a.action.clone(),
        risk: a.risk,
        score: a.score,
        reason_code: a.reason.code,
        reason: a.reason.to_string(),
        required: a.required,
        approvers: a.approvers.clone(),
        requested_at: a.requested_at,
        expires_at: a.expires_at,
    }
}

pub(crate) fn push_timeline(
    inc: &mut Incident,
    max: usize,
    at: MonoTime,
    kind: &'static str,
    message: String,
) {
    inc.updated_at = at;
    inc.timeline.push_back(TimelineItem {
        at,
        kind: kind.to_string(),
        message,
    });
    while inc.timeline.len() > max {
        inc.timeline.pop_front();
    }
}

pub(crate) fn view(
    service: &str,
    inc: &Incident,
    closed_at: Option<MonoTime>,
    outcome: Option<IncidentOutcome>,
) -> IncidentView {
    let outcome = outcome.or(match inc.phase {
        Phase::ManualIntervention => Some(IncidentOutcome::Escalated),
        _ if inc.would_act => Some(IncidentOutcome::WouldAct),
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
        merged: inc.merged.clone(),
        diagnosis: inc
            .hypotheses
            .first()
            .filter(|h| h.pattern != "ai_suggested")
            .map(|h| (h.service.clone(), h.pattern.clone())),
    }
}
