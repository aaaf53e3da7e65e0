//! Operator commands: [`Engine::operate`] checks the actor's role, applies
//! the command and returns its answer; every accepted command is recorded
//! with the actor's id.
use super::state::*;
use super::Engine;
use crate::governance::*;
use crate::notice::*;
use crate::operator::*;
use crate::types::*;

impl Engine {
    pub(super) fn apply_operator(
        &mut self,
        actor: &Actor,
        cmd: OperatorCommand,
    ) -> Result<Ack, OperatorError> {
        let needed = cmd.required_role();
        if actor.role < needed {
            return Err(OperatorError::Forbidden {
                needed,
                have: actor.role,
            });
        }
        let by = actor.id.clone();
        let ack = |message: String| Ok(Ack { message });
        match cmd {
            OperatorCommand::SetMode { service, mode } => {
                match &service {
                    Some(s) => match self.services.get_mut(s) {
                        Some(svc) => svc.mode = Some(mode),
                        None => return Err(OperatorError::UnknownService(s.clone())),
                    },
                    None => self.mode = mode,
                }
                self.notice(Notice::ModeChanged {
                    service: service.clone(),
                    mode,
                    by,
                });
                let names: Vec<String> = match &service {
                    Some(s) => vec![s.clone()],
                    None => self.services.keys().cloned().collect(),
                };
                for n in names {
                    if let Some(inc) = self.services.get_mut(&n).and_then(|s| s.incident.as_mut()) {
                        inc.waiting_reason = None;
                    }
                    self.evaluate(&n);
                }
                ack(format!(
                    "mode of {} set to {mode}",
                    service.as_deref().unwrap_or("*")
                ))
            }
            OperatorCommand::ResolveIncident { id, reason } => {
                let name = self
                    .services
                    .iter()
                    .find(|(_, s)| s.incident.as_ref().is_some_and(|i| i.id.0 == id))
                    .map(|(n, _)| n.clone());
                let Some(n) = name else {
                    return Err(OperatorError::IncidentNotOpen(id));
                };
                self.notice(Notice::IncidentResolvedByOperator {
                    incident: IncidentId(id.clone()),
                    by: by.clone(),
                    reason: reason.clone(),
                });
                self.resolve(
                    &n,
                    IncidentOutcome::ResolvedByOperator,
                    format!("{by}: {reason}"),
                );
                ack(format!("incident {id} resolved"))
            }
            OperatorCommand::EnableAutoheal { service } => {
                let Some(svc) = self.services.get_mut(&service) else {
                    return Err(OperatorError::UnknownService(service));
                };
                svc.autoheal_disabled = false;
                svc.consecutive_failures = 0;
                svc.failed_heals.clear();
                self.notice(Notice::AutohealEnabled {
                    service: service.clone(),
                    by,
                });
                self.evaluate(&service);
                ack(format!("autoheal enabled for {service}"))
            }
            OperatorCommand::Pause {
                service,
                kind,
                duration,
                reason,
            } => {
                if let Some(s) = service.as_ref().filter(|s| !self.services.contains_key(*s)) {
                    return Err(OperatorError::UnknownService(s.clone()));
                }
                let until = duration.map(|d| self.now.plus(d));
                self.notice(Notice::AutomationPaused {
                    scope: Scope {
                        service: service.clone(),
                        kind,
                    },
                    until_unix_ms: until.and_then(|t| self.wall_at(t)),
                    duration,
                    by: by.clone(),
                    reason: reason.clone(),
                });
                let msg = format!(
                    "paused {} {}{}",
                    service.as_deref().unwrap_or("*"),
                    kind.map(|k| k.as_str()).unwrap_or("*"),
                    duration
                        .map(|d| format!(" for {}s", d.as_secs()))
                        .unwrap_or_else(|| " until resumed".into())
                );
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
                ack(msg)
            }
            OperatorCommand::Resume { service, kind } => {
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
                self.notice(Notice::AutomationResumed {
                    scope: Scope { service, kind },
                    pauses_lifted: lifted as u32,
                    mass_latch_lifted: mass,
                    by,
                });
                self.clear_waiting_reasons();
                self.replan_all();
                ack(format!("{lifted} pauses lifted"))
            }
            OperatorCommand::Approve { id } => self.approve(&id, by),
            OperatorCommand::Reject { id, reason } => {
                let Some(a) = parse_approval_id(&id).and_then(|n| self.approvals.remove(&n)) else {
                    return Err(OperatorError::ApprovalNotFound(id));
                };
                self.notice(Notice::ApprovalRejected {
                    approval: format!("apr-{}", a.id),
                    incident: a.incident.clone(),
                    service: a.service.clone(),
                    action: a.action.clone(),
                    by: by.clone(),
                    reason: reason.clone(),
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
                    ReasonCode::ApprovalRejected,
                    format!("{by} rejected {}: {reason}", a.action),
                );
                ack(format!("apr-{} rejected", a.id))
            }
            OperatorCommand::CancelAction { id, reason } => {
                let found = self.services.iter_mut().find_map(|(n, s)| {
                    s.inflight.as_mut().filter(|f| f.id == id).map(|f| {
                        f.cancel_requested = true;
                        (n.clone(), f.action.clone())
                    })
                });
                let Some((service, action)) = found else {
                    return Err(OperatorError::ActionNotRunning(id));
                };
                self.notice(Notice::ActionCancelRequested {
                    action_id: id,
                    service: service.clone(),
                    action,
                    by: by.clone(),
                    reason: reason.clone(),
                });
                self.command(Command::CancelAction {
                    id,
                    service,
                    by,
                    reason,
                });
                ack(format!("cancel of {id} requested"))
            }
            OperatorCommand::ReleaseLock { key, reason } => {
                if reason.trim().is_empty() {
                    return Err(OperatorError::ReasonRequired);
                }
                let Some(holder) = self.force_release_lock(&key) else {
                    return Err(OperatorError::LockNotHeld(key.to_string()));
                };
                self.notice(Notice::LockForceReleased {
                    key: key.to_string(),
                    holder: holder.clone(),
                    by,
                    reason,
                });
                // Waiters may go now.
                self.replan_all();
                ack(format!("lock {key} of {holder} released"))
            }
            OperatorCommand::ForceAction {
                service,
                action,
                reason,
            } => {
                if reason.trim().is_empty() {
                    return Err(OperatorError::ReasonRequired);
                }
                let Some(svc) = self.services.get(&service) else {
                    return Err(OperatorError::UnknownService(service));
                };
                let Some(spec) = svc.action_spec(&action).cloned() else {
                    return Err(OperatorError::UnknownAction { service, action });
                };
                if svc.inflight.is_some() {
                    return Err(OperatorError::TargetBusy(service));
                }
                if let Some(inc) = self
                    .services
                    .get_mut(&service)
                    .and_then(|s| s.incident.as_mut())
                {
                    // A human takes the heal over: it is verified like any other.
                    inc.timer = None;
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
                ack(format!("{action} forced on {service}"))
            }
        }
    }

    fn approve(&mut self, id: &str, by: String) -> Result<Ack, OperatorError> {
        let two_person = self.gov.approvals.two_person_high;
        let Some(n) = parse_approval_id(id).filter(|n| self.approvals.contains_key(n)) else {
            return Err(OperatorError::ApprovalNotFound(id.to_string()));
        };
        let Some(a) = self.approvals.get_mut(&n) else {
            return Err(OperatorError::ApprovalNotFound(id.to_string()));
        };
        if a.approvers.contains(&by) {
            return Err(OperatorError::SameApprover {
                approval: format!("apr-{n}"),
                by,
            });
        }
        a.approvers.push(by.clone());
        let done = a.approvers.len() as u32 >= a.required.max(1);
        let (count, required) = (a.approvers.len() as u32, a.required);
        self.notice(Notice::ApprovalApproved {
            approval: format!("apr-{n}"),
            by,
            approvals: count,
            required,
            two_person_rule: two_person,
        });
        if !done {
            return Ok(Ack {
                message: format!("apr-{n}: {count} of {required} approvals"),
            });
        }
        let Some(a) = self.approvals.remove(&n) else {
            return Err(OperatorError::ApprovalNotFound(id.to_string()));
        };
        self.notice(Notice::ApprovalGranted {
            approval: format!("apr-{n}"),
            incident: a.incident.clone(),
            service: a.service.clone(),
            action: a.action.clone(),
            risk: a.risk,
            approvers: a.approvers.clone(),
        });
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
        Ok(Ack {
            message: format!("apr-{n} granted"),
        })
    }
}
