//! Staged canaries (issue 10): which instances each stage changes, the
//! judge window after it, the verdict, and the rollback of a failed canary.
//! The plan and the wire types are in `crate::canary`; the statistics in the
//! `medic-canary` crate.
use super::state::*;
use super::Engine;
use crate::canary::{CanaryRecord, CanarySamples, CanaryWindow};
use crate::governance::ReasonCode;
use crate::notice::*;
use crate::types::*;

/// A staged canary in progress on one service. Durable (in the snapshot),
/// so a restarted medic knows which instances it changed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct CanaryRun {
    pub incident: IncidentId,
    pub action: String,
    /// Index of the stage running or being judged (into the plan's stages).
    pub stage: usize,
    /// Every instance the action was started on, in order.
    pub changed: Vec<String>,
    /// The instances of the stage running now (a retry runs them again).
    pub current: Vec<String>,
    /// Waiting for the samples of `stage`.
    pub judging: bool,
    /// Marginal verdicts judged again in this stage.
    pub marginal: u32,
    /// Stopped (failed or interrupted): its changed instances are being
    /// rolled back; a new heal starts a new canary.
    #[serde(default)]
    pub stopped: bool,
}

impl Svc {
    /// The instances a staged canary of `action` changed (empty: none, or
    /// no staged canary).
    pub(crate) fn canary_changed(&self, action: &str) -> Vec<String> {
        self.canary
            .as_ref()
            .filter(|r| r.action == action)
            .map(|r| r.changed.clone())
            .unwrap_or_default()
    }
}

impl Engine {
    /// The instances `action` runs on now, and the stage it runs as: a stage
    /// of a staged canary (the last one runs as `Rollout`), a retry of one,
    /// the rollback of its changed instances; else nothing (the whole
    /// target) and `stage` unchanged.
    pub(super) fn canary_targets(
        &mut self,
        name: &str,
        action: &str,
        stage: ActionStage,
    ) -> (Vec<String>, ActionStage) {
        let Some(plan) = self.gov.canaries.get(name) else {
            return (Vec::new(), stage);
        };
        if plan.instances.len() < 2 {
            return (Vec::new(), stage);
        }
        let Some(svc) = self.services.get_mut(name) else {
            return (Vec::new(), stage);
        };
        let incident = svc.incident.as_ref().map(|i| i.id.clone());
        let ours = |r: &CanaryRun| Some(&r.incident) == incident.as_ref() && r.action == action;
        match stage {
            ActionStage::Canary | ActionStage::Rollout => {
                let Some(incident) = incident.clone() else {
                    return (Vec::new(), stage);
                };
                // A run that changed every instance is over: a new heal
                // starts a new canary.
                let n = plan.instances.len();
                if !svc
                    .canary
                    .as_ref()
                    .is_some_and(|r| ours(r) && !r.stopped && r.changed.len() < n)
                {
                    if stage == ActionStage::Rollout {
                        return (Vec::new(), stage);
                    }
                    svc.canary = Some(CanaryRun {
                        incident,
                        action: action.to_string(),
                        stage: 0,
                        changed: Vec::new(),
                        current: Vec::new(),
                        judging: false,
                        marginal: 0,
                        stopped: false,
                    });
                }
                let Some(run) = svc.canary.as_mut() else {
                    return (Vec::new(), stage);
                };
                // A stage that would add no instance (few instances) is skipped.
                let before = run.changed.len();
                let mut upto = plan.changed_after(run.stage, before);
                while upto <= before && run.stage + 1 < plan.stages.len() {
                    run.stage += 1;
                    upto = plan.changed_after(run.stage, before);
                }
                let targets: Vec<String> = plan
                    .instances
                    .get(before..upto)
                    .map(<[String]>::to_vec)
                    .unwrap_or_default();
                let baseline: Vec<String> = plan
                    .instances
                    .get(upto..)
                    .map(<[String]>::to_vec)
                    .unwrap_or_default();
                let last = run.stage + 1 >= plan.stages.len();
                let number = u32::try_from(run.stage + 1).unwrap_or(u32::MAX);
                let percent = plan.percent(run.stage);
                run.current = targets.clone();
                run.changed.extend(targets.iter().cloned());
                let incident = run.incident.clone();
                self.notice(Notice::CanaryStage {
                    incident,
                    service: name.to_string(),
                    action: action.to_string(),
                    stage: number,
                    percent,
                    instances: targets.clone(),
                    baseline,
                });
                let stage = if last {
                    ActionStage::Rollout
                } else {
                    ActionStage::Canary
                };
                (targets, stage)
            }
            ActionStage::Retry => match svc.canary.as_ref().filter(|r| ours(r)) {
                Some(r) => (r.current.clone(), stage),
                None => (Vec::new(), stage),
            },
            // An undo of what a staged canary changed (chosen when the undo
            // was planned: a failed stage, a failed verification, a revert).
            ActionStage::Rollback | ActionStage::Revert => match svc
                .pending_revert
                .as_ref()
                .filter(|p| p.action == action && p.stage == stage)
            {
                Some(p) => (p.instances.clone(), stage),
                None => (Vec::new(), stage),
            },
            _ => (Vec::new(), stage),
        }
    }

    /// Whether a successful execution at `stage` is a stage of a staged
    /// canary that is judged next (a canary stage or its retry, not the
    /// last stage): then [`Engine::canary_applied`] takes it.
    pub(super) fn canary_staged(&self, name: &str, action: &str, stage: ActionStage) -> bool {
        let Some(plan) = self.gov.canaries.get(name) else {
            return false;
        };
        let Some(svc) = self.services.get(name) else {
            return false;
        };
        let incident = svc.incident.as_ref().map(|i| &i.id);
        matches!(stage, ActionStage::Canary | ActionStage::Retry)
            && svc.canary.as_ref().is_some_and(|r| {
                !r.judging
                    && r.action == action
                    && Some(&r.incident) == incident
                    && r.stage + 1 < plan.stages.len()
            })
    }

    /// A stage ran: sample it against the unchanged instances.
    pub(super) fn canary_applied(&mut self, name: &str) {
        let now = self.now;
        let max = self.max_timeline;
        let Some(plan) = self.gov.canaries.get(name) else {
            return;
        };
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(run) = svc.canary.as_mut() else {
            return;
        };
        run.judging = true;
        let canary = run.changed.clone();
        let baseline: Vec<String> = plan
            .instances
            .iter()
            .filter(|i| !canary.contains(i))
            .cloned()
            .collect();
        let stage = u32::try_from(run.stage + 1).unwrap_or(u32::MAX);
        let window = plan.window;
        let deadline = now.plus(plan.window).plus(plan.grace);
        let incident = run.incident.clone();
        let action = run.action.clone();
        if let Some(inc) = svc.incident.as_mut() {
            inc.phase = Phase::ExecutingHeal;
            inc.timer = Some(IncidentTimer::Judge(deadline));
            push_timeline(
                inc,
                max,
                now,
                "canary_judging",
                format!(
                    "{action} stage {stage} on {}; judging {}ms against {}",
                    canary.join(","),
                    window.as_millis(),
                    baseline.join(",")
                ),
            );
        }
        svc.dirty = true;
        self.command(Command::CollectCanary(CanaryWindow {
            service: name.to_string(),
            incident,
            stage,
            canary,
            baseline,
            window,
        }));
    }

    /// The samples of a judge window arrived.
    pub(super) fn canary_samples(&mut self, s: CanarySamples) {
        let waiting = self.services.get(&s.service).is_some_and(|svc| {
            svc.canary
                .as_ref()
                .is_some_and(|r| r.judging && r.stage + 1 == s.stage as usize)
                && svc
                    .incident
                    .as_ref()
                    .is_some_and(|i| matches!(i.timer, Some(IncidentTimer::Judge(_))))
        });
        if waiting {
            self.canary_judge(&s.service, &s.metrics);
        }
    }

    /// Judge the current stage on `samples` (none: the deadline passed).
    pub(super) fn canary_judge(&mut self, name: &str, samples: &[medic_canary::MetricSamples]) {
        let now = self.now;
        let max = self.max_timeline;
        let Some(plan) = self.gov.canaries.get(name).cloned() else {
            return;
        };
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Some(run) = svc.canary.as_mut().filter(|r| r.judging) else {
            // A judge deadline with no canary (medic restarted meanwhile).
            if let Some(inc) = svc.incident.as_mut() {
                inc.timer = None;
            }
            self.escalate(
                name,
                ReasonCode::CanaryFailed,
                "a staged canary was interrupted (medic restarted while it was judged); \
                 its instances are in an unknown state"
                    .into(),
            );
            return;
        };
        run.judging = false;
        let verdict = medic_canary::judge(&plan.judge, &plan.metrics, samples);
        let stage = u32::try_from(run.stage + 1).unwrap_or(u32::MAX);
        let percent = plan.percent(run.stage);
        let action = run.action.clone();
        let incident = run.incident.clone();
        let canary = run.changed.clone();
        let baseline: Vec<String> = plan
            .instances
            .iter()
            .filter(|i| !canary.contains(i))
            .cloned()
            .collect();
        let outcome = verdict.outcome;
        let rejudge =
            outcome == medic_canary::Outcome::Marginal && run.marginal < plan.marginal_rejudge;
        if outcome == medic_canary::Outcome::Pass {
            run.stage += 1;
            run.marginal = 0;
        } else if rejudge {
            run.marginal += 1;
        }
        let line = verdict.explanation.clone();
        if let Some(inc) = svc.incident.as_mut() {
            inc.timer = None;
            push_timeline(
                inc,
                max,
                now,
                "canary_verdict",
                format!("{action} stage {stage} ({percent}%): {line}"),
            );
            inc.canary.push(CanaryRecord {
                at: now,
                action: action.clone(),
                stage,
                percent,
                canary,
                baseline,
                verdict: verdict.clone(),
            });
            while inc.canary.len() > max {
                inc.canary.remove(0);
            }
        }
        svc.dirty = true;
        let spec = svc.action_spec(&action).cloned();
        self.notice(Notice::CanaryVerdict {
            incident,
            service: name.to_string(),
            action: action.clone(),
            stage,
            percent,
            verdict,
        });
        match outcome {
            medic_canary::Outcome::Pass => {
                let Some(spec) = spec else {
                    return;
                };
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.phase = Phase::ConfirmingPattern;
                    inc.waiting_reason = None;
                }
                let reason = format!("canary stage {stage} passed; next stage of {action}");
                // The next stage goes through the gates again.
                self.act(name, &spec, ActionStage::Canary, 0, reason, None);
            }
            // Marginal: sample the same stage once more.
            _ if rejudge => self.canary_applied(name),
            _ => self.canary_failed(name, &action, stage, &line),
        }
    }

    /// Stop: roll the changed instances back (the action's `revert`) and
    /// escalate.
    fn canary_failed(&mut self, name: &str, action: &str, stage: u32, why: &str) {
        let now = self.now;
        let window = self.gov.limits.window;
        prune(&mut self.failed_actions, now, window);
        self.failed_actions.push_back(now);
        if let Some(svc) = self.services.get_mut(name) {
            svc.consecutive_failures = svc.consecutive_failures.saturating_add(1);
        }
        self.canary_stop(
            name,
            action,
            format!("canary of {action} failed at stage {stage}: {why}"),
        );
    }

    /// After a restore: a staged canary of the open incident that was not
    /// finished is not left with its changed instances unknown. One that
    /// waited for its judge samples (and whose stage is not in doubt) is
    /// judged again on a fresh window (the sampling task died with medic);
    /// any other (a stage was running, or the next stage not yet started)
    /// is stopped and its changed instances rolled back, and a human is
    /// told. A finished canary stays as it is (a later undo targets its
    /// instances).
    pub(crate) fn canary_restored(&mut self, name: &str, reconciled: Option<ActionStage>) {
        let Some(plan) = self.gov.canaries.get(name) else {
            return;
        };
        let n = plan.instances.len();
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Some(run) = svc.canary.as_ref() else {
            return;
        };
        let open = svc.incident.as_ref().is_some_and(|i| i.id == run.incident);
        let unfinished = run.changed.len() < n || run.judging;
        let undoing = svc
            .pending_revert
            .as_ref()
            .is_some_and(|p| p.of == run.action && p.stage == ActionStage::Rollback);
        // An undo that was running is reconciled (reported, never re-run).
        let undo_ran = matches!(
            reconciled,
            Some(ActionStage::Rollback | ActionStage::Revert)
        );
        if !open || !unfinished || run.changed.is_empty() || run.stopped || undoing || undo_ran {
            return;
        }
        let judging = run.judging
            && reconciled.is_none()
            && svc
                .incident
                .as_ref()
                .is_some_and(|i| matches!(i.timer, Some(IncidentTimer::Judge(_))));
        let action = run.action.clone();
        let stage = run.stage + 1;
        let changed = run.changed.join(",");
        if judging {
            let now = self.now;
            let max = self.max_timeline;
            if let Some(inc) = self
                .services
                .get_mut(name)
                .and_then(|s| s.incident.as_mut())
            {
                push_timeline(
                    inc,
                    max,
                    now,
                    "canary_resumed",
                    format!(
                        "medic restarted while stage {stage} of {action} on {changed} was \
                         judged; sampling it again"
                    ),
                );
            }
            self.canary_applied(name);
            return;
        }
        self.canary_stop(
            name,
            &action,
            format!(
                "canary of {action} interrupted by a medic restart at stage {stage} ({}): \
                 its changed instances {changed} are not judged",
                ReasonCode::InterruptedByRestart.as_str()
            ),
        );
    }

    /// Roll the changed instances of `action`'s canary back (its `revert`)
    /// and escalate with `what` and the undo.
    fn canary_stop(&mut self, name: &str, action: &str, what: String) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let changed = svc
            .canary
            .as_ref()
            .map(|r| r.changed.join(","))
            .unwrap_or_default();
        let revert = svc
            .action_spec(action)
            .and_then(|a| a.revert.as_ref())
            .map(|r| r.action.clone());
        let undo = match &revert {
            Some(rv) => {
                if let Some(run) = svc.canary.as_mut() {
                    run.stopped = true;
                    run.judging = false;
                }
                svc.pending_revert = Some(PendingRevert {
                    due: now,
                    action: rv.clone(),
                    of: action.to_string(),
                    stage: ActionStage::Rollback,
                    blocked: None,
                    green: None,
                    instances: svc.canary_changed(action),
                });
                format!("rolling {changed} back with {rv}")
            }
            None => {
                svc.canary = None;
                format!("{action} has no revert: {changed} stay changed")
            }
        };
        self.escalate(name, ReasonCode::CanaryFailed, format!("{what}; {undo}"));
        self.timers(name);
    }
}
