//! Action outcomes, verification failures, retries, escalation and closing incidents.

use super::state::*;
use super::Engine;
use crate::governance::*;
use crate::notice::*;
use crate::spec::*;
use crate::types::*;

impl Engine {
    pub(super) fn on_outcome(&mut self, id: ActionId, result: Result<String, ActionFailure>) {
        let now = self.now;
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.inflight.as_ref().is_some_and(|f| f.id == id))
            .map(|(n, _)| n.clone())
        else {
            // Unknown or duplicate outcome: record it, change nothing.
            self.notice(Notice::ActionOutcomeUnmatched { action_id: id });
            return;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let Some(flight) = svc.inflight.take() else {
            return;
        };
        let (status, detail) = match &result {
            Ok(out) => (ActionStatus::Succeeded, out.clone()),
            Err(f) => (
                ActionStatus::Failed,
                format!("{}: {}", f.kind.as_str(), f.message),
            ),
        };
        let incident = flight.incident.clone();
        // The incident it was started for may have been closed (resolved by
        // an operator, recovered) and a newer one opened: the outcome is
        // recorded, but it does not move an incident it was not run for.
        let stale = flight.revert_of.is_none()
            && svc.incident.as_ref().map(|i| &i.id) != flight.incident.as_ref();
        // A successful restart starts a new process: its startup grace begins.
        let restarted = result.is_ok()
            && svc
                .action_spec(&flight.action)
                .is_some_and(|a| a.kind == ActionKind::Restart);
        if restarted {
            svc.starting_until = Some(now.plus(svc.spec.startup.grace));
            for st in svc.probes.values_mut() {
                st.startup_noted = false;
                st.started = false;
            }
        }
        self.notice(Notice::ActionOutcome {
            action_id: id,
            incident,
            service: name.clone(),
            action: flight.action.clone(),
            stage: flight.stage,
            status,
            detail: detail.clone(),
        });
        let cancelled = flight.cancel_requested
            || matches!(&result, Err(f) if f.kind == ActionFailureKind::Cancelled);
        // The executor target's breaker counts every execution that was not
        // cancelled (issue 10).
        if !cancelled {
            let cfg = self.gov.breaker;
            let moved = self.services.get_mut(&name).and_then(|s| {
                s.breakers.entry(flight.action.clone()).or_default().record(
                    now,
                    result.is_ok(),
                    &cfg,
                )
            });
            if let Some(t) = moved {
                self.breaker_notice(&name, &flight.action, t);
            }
        }
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
        // A failed heal counts towards the service's consecutive failures,
        // whether or not its incident is still open; a revert does not.
        if flight.revert_of.is_none() && result.is_err() && !cancelled {
            svc.consecutive_failures = svc.consecutive_failures.saturating_add(1);
        }
        if stale {
            self.evaluate(&name);
            self.replan_all();
            return;
        }
        if let Some(of) = flight.revert_of {
            if result.is_err() && flight.stage == ActionStage::Rollback && !cancelled {
                // The undo of a change that failed verification failed: the
                // service is in an unknown state, automation stops for it.
                let consecutive = self
                    .services
                    .get(&name)
                    .map_or(0, |s| s.consecutive_failures);
                self.disable_autoheal(&name, consecutive, ReasonCode::UndoFailed);
                let msg = format!(
                    "undo {} of {of} failed ({detail}); automation disabled for {name}",
                    flight.action
                );
                self.escalate(&name, ReasonCode::UndoFailed, msg.clone());
                self.notify(Notification {
                    severity: Severity::Critical,
                    service: name.clone(),
                    incident: None,
                    title: format!("{name}: undo of {of} failed"),
                    message: msg,
                });
                self.evaluate(&name);
                self.replan_all();
                return;
            }
            if result.is_err() {
                self.notify(Notification {
                    severity: Severity::Warning,
                    service: name.clone(),
                    incident: None,
                    title: format!("{name}: revert of {of} failed"),
                    message: detail,
                });
            }
            self.evaluate(&name);
            self.replan_all();
            return;
        }
        // Acting in the armed confidence band verifies longer (issue 9).
        let armed = svc.diagnosis.is_some_and(|d| {
            d.upstream.is_none()
                && crate::governance::Band::of(d.confidence, &self.gov.autonomy)
                    == crate::governance::Band::ActArmed
        });
        // A change watches its own window (default 5m); a heal the policy's.
        let base_window = svc
            .incident
            .as_ref()
            .and_then(|i| i.verify.as_ref())
            .filter(|v| v.action == flight.action)
            .map_or(svc.spec.policy.verify_window, |v| v.window);
        let verify_window = if armed {
            base_window.saturating_mul(self.gov.autonomy.armed_verify_factor.max(1))
        } else {
            base_window
        };
        let retry = svc.spec.policy.retry.clone();
        let consecutive = svc.consecutive_failures;
        let staged = self.canary_staged(&name, &flight.action, flight.stage);
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let Some(inc) = svc.incident.as_mut() else {
            self.replan_all();
            return;
        };
        svc.dirty = true;
        match result {
            // A stage of a staged canary (issue 10): judge it.
            Ok(_) if staged => self.canary_applied(&name),
            Ok(_) if flight.stage == ActionStage::Canary => {
                let at = now.plus(bake);
                inc.timer = Some(IncidentTimer::Rollout(at));
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
                inc.timer = Some(IncidentTimer::Verify(now.plus(verify_window)));
                inc.healed_by = Some(flight.action.clone());
                if let Some(v) = inc.verify.as_mut().filter(|v| v.action == flight.action) {
                    v.since = Some(now);
                    v.observed.clear();
                }
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
                    ReasonCode::Cancelled,
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
                    self.disable_autoheal(&name, consecutive, ReasonCode::ConsecutiveFailures);
                    self.escalate(
                        &name,
                        ReasonCode::ConsecutiveFailures,
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
                    self.escalate(&name, ReasonCode::RetriesExhausted, reason);
                } else {
                    let delay = retry.delay(failures, self.rng.unit());
                    let at = now.plus(delay);
                    inc.timer = Some(IncidentTimer::Retry(at));
                    inc.attempt = failures;
                    push_timeline(
                        inc,
                        self.max_timeline,
                        now,
                        "retry_scheduled",
                        format!("{} failed ({detail}); retry at {at}", flight.action),
                    );
                    let iid = inc.id.clone();
                    self.notice(Notice::ActionRetryScheduled {
                        incident: iid,
                        service: name.clone(),
                        action: flight.action.clone(),
                        delay,
                    });
                }
            }
        }
        self.replan_all();
    }

    pub(super) fn disable_autoheal(&mut self, name: &str, consecutive: u32, code: ReasonCode) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.autoheal_disabled {
            return;
        }
        svc.autoheal_disabled = true;
        self.notice(Notice::AutohealDisabled {
            service: name.to_string(),
            reason_code: code,
            consecutive_failures: consecutive,
        });
    }

    /// Counts a failed heal or change of `name` (the global and per-service
    /// ledgers, consecutive failures) and arms the rollback of the action
    /// that healed its incident when it declares an undo. Returns the
    /// counts and whether a limit is now reached; `None` for an unknown
    /// service.
    fn count_failed_heal(&mut self, name: &str) -> Option<FailedHeals> {
        let now = self.now;
        let window = self.gov.limits.window;
        prune(&mut self.failed_actions, now, window);
        self.failed_actions.push_back(now);
        let max_consecutive = self.gov.limits.max_consecutive_failures.max(1);
        let svc = self.services.get_mut(name)?;
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
            let instances = svc.canary_changed(&of);
            svc.pending_revert = Some(PendingRevert {
                due: now,
                action,
                of,
                stage: ActionStage::Rollback,
                blocked: None,
                green: None,
                instances,
            });
        }
        Some(FailedHeals {
            consecutive,
            max_consecutive,
            in_window: n,
            window: fwindow,
            over_limit: n >= max || consecutive >= max_consecutive,
        })
    }

    /// A heal did not work (verification failed): roll it back when it can
    /// be undone, and escalate. Too many failures disable automation.
    pub(super) fn failed_heal(&mut self, name: &str, reason: String) {
        let Some(FailedHeals {
            consecutive,
            max_consecutive,
            in_window: n,
            window: fwindow,
            over_limit,
        }) = self.count_failed_heal(name)
        else {
            return;
        };
        if over_limit {
            self.disable_autoheal(name, consecutive, ReasonCode::ConsecutiveFailures);
            self.escalate(
                name,
                ReasonCode::ConsecutiveFailures,
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

    /// Judge a change against its baseline (issue 10): worse (with enough
    /// samples) fails at once; better with the trigger recovered passes at
    /// once; at the end of the window (`at_end`) it passes only if better
    /// and the trigger's rule no longer fires, else it fails as not better.
    pub(super) fn judge_change(&mut self, name: &str, at_end: bool) {
        use crate::verify::{judge, Judgement, Stats};
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_ref() else {
            return;
        };
        let Some(v) = inc.verify.as_ref().filter(|v| v.since.is_some()) else {
            return;
        };
        let observed = Stats::of(&v.observed);
        let judgement = match (v.baseline, observed) {
            (Some(b), Some(o)) => Some(judge(&b, &o, &v.spec)),
            _ => None,
        };
        let enough = observed.is_some_and(|o| o.samples >= v.spec.min_samples.max(1));
        let probe = inc.probe.clone();
        let firing = match (svc.probe_spec(&probe), svc.probes.get(&probe)) {
            (Some(p), Some(st)) => failing(p, st) || slow(p, st),
            _ => false,
        };
        let recovered = svc.recovered(&probe);
        // No baseline (nothing seen before the action): the recovery rule.
        let better = match judgement {
            Some(j) => j == Judgement::Better,
            None => v.baseline.is_none() && observed.is_some(),
        };
        let verdict = match judgement {
            Some(j) if j.worse() && enough => Some(Err((ReasonCode::VerifyWorse, j))),
            _ if better && recovered => Some(Ok(())),
            _ if !at_end => None,
            _ if better && !firing => Some(Ok(())),
            _ => Some(Err((
                ReasonCode::VerifyNotBetter,
                judgement.unwrap_or(Judgement::Same),
            ))),
        };
        let Some(verdict) = verdict else {
            return;
        };
        let (action, baseline, window) = (v.action.clone(), v.baseline, v.window);
        let undo = svc
            .action_spec(&action)
            .and_then(|a| a.revert.as_ref())
            .map(|r| r.action.clone());
        let id = inc.id.clone();
        let now = self.now;
        let max_timeline = self.max_timeline;
        let fmt = |s: Option<Stats>| s.map_or("no samples".to_string(), |s| s.to_string());
        let figures = format!("baseline {}; observed {}", fmt(baseline), fmt(observed));
        match verdict {
            Ok(()) => {
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.timer = None;
                    push_timeline(
                        inc,
                        max_timeline,
                        now,
                        "verify_judged",
                        format!("{action}: better than the baseline ({figures})"),
                    );
                }
                self.notice(Notice::VerifyJudged {
                    incident: id.clone(),
                    service: name.to_string(),
                    probe: probe.clone(),
                    action: action.clone(),
                    judgement: Judgement::Better.as_str(),
                    reason_code: None,
                    baseline,
                    observed,
                    undo: None,
                });
                if let Some(svc) = self.services.get_mut(name) {
                    svc.consecutive_failures = 0;
                }
                self.notice(Notice::VerifyPassed {
                    incident: id,
                    service: name.to_string(),
                    probe: probe.clone(),
                });
                self.resolve(
                    name,
                    IncidentOutcome::Healed,
                    format!("{probe} better than before {action}"),
                );
            }
            Err((code, j)) => {
                let what = match code {
                    ReasonCode::VerifyWorse => {
                        format!("{action} made {probe} worse than before ({})", j.as_str())
                    }
                    _ => format!(
                        "{probe} not better than before {action} by the end of its {}s window",
                        window.as_secs()
                    ),
                };
                let then = match &undo {
                    Some(u) => format!("undo {u} runs now"),
                    None => "no undo declared: not reversible".to_string(),
                };
                let reason = format!("{what}: {figures}; {then}");
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.timer = None;
                    push_timeline(inc, max_timeline, now, "verify_judged", reason.clone());
                }
                self.notice(Notice::VerifyJudged {
                    incident: id.clone(),
                    service: name.to_string(),
                    probe: probe.clone(),
                    action: action.clone(),
                    judgement: j.as_str(),
                    reason_code: Some(code),
                    baseline,
                    observed,
                    undo: undo.clone(),
                });
                self.notice(Notice::VerifyFailed {
                    incident: id,
                    service: name.to_string(),
                    probe,
                });
                self.change_failed(name, code, reason);
            }
        }
    }

    /// A change failed its verification: count it as a failed heal, run its
    /// declared undo now (a rollback, through the gates) and escalate; too
    /// many failures also disable automation.
    pub(super) fn change_failed(&mut self, name: &str, code: ReasonCode, reason: String) {
        let Some(FailedHeals {
            consecutive,
            over_limit,
            ..
        }) = self.count_failed_heal(name)
        else {
            return;
        };
        if over_limit {
            self.disable_autoheal(name, consecutive, ReasonCode::ConsecutiveFailures);
        }
        self.escalate(name, code, reason);
        self.timers(name);
    }

    /// A failed verification below the limits: a human is told (warning) and
    /// the heal is planned again through every gate, cooldown and budget. The
    /// `max_consecutive_failures`-th failure disables automation and escalates.
    pub(super) fn retry_heal(&mut self, name: &str, reason: String, consecutive: u32, max: u32) {
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
        inc.timer = None;
        inc.waiting_reason = None;
        inc.healed_by = None;
        let msg =
            format!("heal failed ({consecutive}/{max} before autoheal is disabled): {reason}");
        push_timeline(inc, self.max_timeline, now, "heal_failed", msg.clone());
        let id = inc.id.clone();
        svc.dirty = true;
        self.notice(Notice::HealRetrying {
            incident: id.clone(),
            service: name.to_string(),
            reason_code: ReasonCode::VerifyFailed,
            reason: msg.clone(),
            consecutive_failures: consecutive,
        });
        self.notify(Notification {
            severity: Severity::Warning,
            service: name.to_string(),
            incident: Some(id),
            title: format!("{name}: heal failed, trying again"),
            message: msg,
        });
        self.plan(name);
    }

    pub(super) fn escalate(&mut self, name: &str, code: ReasonCode, reason: String) {
        let now = self.now;
        let max_timeline = self.max_timeline;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(inc) = svc.incident.as_mut() else {
            return;
        };
        if inc.phase == Phase::ManualIntervention {
            return;
        }
        inc.phase = Phase::ManualIntervention;
        inc.timer = None;
        let approval = inc.approval.take();
        push_timeline(inc, max_timeline, now, "escalated", reason.clone());
        let action = inc.actions.last().cloned().unwrap_or_default();
        let id = inc.id.clone();
        svc.dirty = true;
        self.record_decision(
            name,
            DecisionRecord {
                at: now,
                action,
                stage: ActionStage::Direct,
                risk: Risk::Low,
                score: 0.0,
                verdict: Verdict::Escalate,
                reason_code: Some(code),
                window: None,
                reason: reason.clone(),
            },
        );
        if let Some(a) = approval.and_then(|a| self.approvals.remove(&a)) {
            self.notice(Notice::ApprovalWithdrawn {
                approval: format!("apr-{}", a.id),
                incident: id.clone(),
                reason: format!("escalated: {reason}"),
            });
        }
        self.notice(Notice::IncidentEscalated {
            incident: id.clone(),
            service: name.to_string(),
            reason_code: code,
            reason: reason.clone(),
        });
        self.notify(Notification {
            severity: Severity::Critical,
            service: name.to_string(),
            incident: Some(id),
            title: format!("{name}: escalated to a human"),
            message: reason,
        });
    }

    pub(super) fn resolve(&mut self, name: &str, outcome: IncidentOutcome, reason: String) {
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
            format!("{}: {reason}", outcome.as_str()),
        );
        // A mitigation with a revert is undone after it has held.
        if outcome == IncidentOutcome::Healed {
            if let Some(spec) = inc.healed_by.as_deref().and_then(|a| svc.action_spec(a)) {
                if let Some(rv) = &spec.revert {
                    svc.pending_revert = Some(PendingRevert {
                        due: now.plus(rv.after),
                        action: rv.action.clone(),
                        of: spec.name.clone(),
                        stage: ActionStage::Revert,
                        blocked: None,
                        green: rv.green_checks.map(|needed| GreenChecks {
                            probe: rv.green_probe.clone().unwrap_or_else(|| inc.probe.clone()),
                            needed,
                            seen: 0,
                        }),
                        instances: svc.canary_changed(&spec.name),
                    });
                }
            }
        }
        svc.dirty = false;
        let v = view(name, &inc, Some(now), Some(outcome));
        if let Some(a) = inc.approval.take().and_then(|a| self.approvals.remove(&a)) {
            self.notice(Notice::ApprovalWithdrawn {
                approval: format!("apr-{}", a.id),
                incident: inc.id.clone(),
                reason: format!("{}: {reason}", outcome.as_str()),
            });
        }
        self.notice(Notice::IncidentResolved {
            incident: inc.id.clone(),
            service: name.to_string(),
            outcome,
            reason,
        });
        let ex = Explanation {
            incident: inc.id.clone(),
            service: name.to_string(),
            phase: Phase::Resolved,
            outcome: Some(outcome),
            decisions: inc.decisions.into_iter().collect(),
            pending_approval: None,
            hypotheses: inc.hypotheses,
            merged: inc.merged,
            canary: inc.canary,
            bands: self.gov.autonomy.clone(),
        };
        self.explained.insert(inc.id.0.clone(), ex);
        self.explained_order.push_back(inc.id.0);
        while self.explained_order.len() > self.gov.max_explanations.max(1) {
            if let Some(old) = self.explained_order.pop_front() {
                self.explained.remove(&old);
            }
        }
        self.command(Command::IncidentChanged(v));
    }

    /// Plan again for every incident waiting for a decision.
    pub(super) fn replan_all(&mut self) {
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
}

/// What [`Engine::count_failed_heal`] counted.
struct FailedHeals {
    consecutive: u32,
    max_consecutive: u32,
    /// Failed heals within `window` (the service's `failed_window`).
    in_window: usize,
    window: std::time::Duration,
    over_limit: bool,
}
