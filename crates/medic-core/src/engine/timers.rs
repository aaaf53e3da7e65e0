//! Deadlines: pauses and approvals that expire, incident timers, reverts.
use std::time::Duration;

use super::state::*;
use super::Engine;
use crate::governance::*;
use crate::notice::*;
use crate::time::MonoTime;
use crate::types::*;

impl Engine {
    pub(super) fn expire_pauses(&mut self) {
        let now = self.now;
        let (expired, kept): (Vec<Pause>, Vec<Pause>) = std::mem::take(&mut self.pauses)
            .into_iter()
            .partition(|p| p.until.is_some_and(|t| t <= now));
        self.pauses = kept;
        for p in expired {
            self.notice(Notice::PauseExpired {
                scope: Scope {
                    service: p.service,
                    kind: p.kind,
                },
            });
            self.clear_waiting_reasons();
        }
    }

    pub(super) fn clear_waiting_reasons(&mut self) {
        for svc in self.services.values_mut() {
            if let Some(inc) = svc.incident.as_mut() {
                inc.waiting_reason = None;
            }
        }
    }

    pub(super) fn expire_approvals(&mut self) {
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
            self.notice(Notice::ApprovalExpired {
                approval: format!("apr-{id}"),
                incident: a.incident.clone(),
                service: a.service.clone(),
                action: a.action.clone(),
                approvers: a.approvers.clone(),
            });
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
                ReasonCode::ApprovalExpired,
                format!("approval apr-{id} for {} expired", a.action),
            );
        }
    }

    pub(super) fn timers(&mut self, name: &str) {
        let now = self.now;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if let Some(inc) = svc.incident.as_mut() {
            match inc.timer {
                Some(t) if t.at() > now => {}
                None => {}
                Some(IncidentTimer::Verify(_))
                    if inc.verify.as_ref().is_some_and(|v| v.since.is_some()) =>
                {
                    self.judge_change(name, true);
                    return;
                }
                Some(IncidentTimer::Verify(_)) => {
                    inc.timer = None;
                    let id = inc.id.clone();
                    let probe = inc.probe.clone();
                    self.notice(Notice::VerifyFailed {
                        incident: id,
                        service: name.to_string(),
                        probe: probe.clone(),
                    });
                    self.failed_heal(
                        name,
                        format!("{probe} still unhealthy after the verify window"),
                    );
                    return;
                }
                Some(IncidentTimer::Retry(_)) => {
                    inc.timer = None;
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
                Some(IncidentTimer::Rollout(_)) => {
                    inc.timer = None;
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
                Some(IncidentTimer::Judge(_)) => {
                    inc.timer = None;
                    // No samples in time: judged without canary data (fails).
                    self.canary_judge(name, &[]);
                    return;
                }
                Some(IncidentTimer::Defer(_)) => {
                    inc.timer = None;
                    inc.waiting_reason = None;
                    self.plan(name);
                    return;
                }
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
        if let Some(b) = self.breaker_refuses(name, &spec.name) {
            let until = self
                .services
                .get(name)
                .and_then(|s| s.breakers.get(&spec.name))
                .and_then(|b| match b.state {
                    crate::breaker::BreakerState::Open { until } => Some(until),
                    _ => None,
                });
            self.revert_blocked(
                name,
                &pr,
                b,
                until.unwrap_or(now.plus(Duration::from_secs(30))),
            );
            return;
        }
        let Some((input, ag)) = self.gate_input(name, &spec, pr.stage, false) else {
            return;
        };
        let decision = decide_with(&self.gov, &input, self.fault);
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
                let code = other.reason().map(|b| b.code);
                self.notice(Notice::RevertDropped {
                    service: name.to_string(),
                    action: pr.action.clone(),
                    revert_of: pr.of.clone(),
                    reason_code: code,
                });
                if !matches!(
                    code,
                    Some(ReasonCode::ModeDryRun | ReasonCode::ModeDisabled)
                ) {
                    self.notify(Notification {
                        severity: Severity::Warning,
                        service: name.to_string(),
                        incident: None,
                        title: format!("{name}: {} of {} not run", pr.stage.as_str(), pr.of),
                        message: format!(
                            "blocked: {}",
                            code.map(|c| c.as_str()).unwrap_or("unknown")
                        ),
                    });
                }
            }
        }
    }

    pub(super) fn revert_blocked(
        &mut self,
        name: &str,
        pr: &PendingRevert,
        b: Block,
        retry_at: MonoTime,
    ) {
        let code = b.code;
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
            self.notice(Notice::RevertDeferred {
                service: name.to_string(),
                action: pr.action.clone(),
                revert_of: pr.of.clone(),
                reason_code: code,
                reason: b.to_string(),
            });
        }
    }
}
