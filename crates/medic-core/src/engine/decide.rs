//! Remediation planning: judge a planned action through governance and run it.

use super::state::*;
use super::Engine;
use crate::governance::*;
use crate::notice::*;
use crate::spec::*;
use crate::types::*;

impl Engine {
    /// Decide what to do about the open incident of `name`, which is waiting
    /// in `ConfirmingPattern` with nothing in flight.
    pub(super) fn plan(&mut self, name: &str) {
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
        if inc.deferred(now) {
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
                ReasonCode::NoRemediation,
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
                ReasonCode::NoRemediation,
                format!("remediation names unknown action {}", rem.action),
            );
            return;
        };
        let reason = format!("{incident_id}: {probe} {}", condition.as_str());
        self.act(name, &action, ActionStage::Direct, 0, reason, None);
    }

    /// Build the gate snapshot for `action` on `name`.
    pub(super) fn gate_input(
        &mut self,
        name: &str,
        action: &ActionSpec,
        stage: ActionStage,
        forced: bool,
    ) -> Option<(GateInput, ResolvedAction)> {
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
        let fault = self.fault;
        let lock = self.lock_gate(name).map(|(code, _)| code);
        let svc = self.services.get_mut(name)?;
        let mut ag = svc.resolved(action);
        if fault == PolicyFault::TierFromKind {
            // The planted bug: the tier comes from the kind, not the class.
            ag.risk = action
                .risk
                .unwrap_or(ActionClass::from_kind(action.kind).default_risk());
        }
        prune(&mut svc.restarts, now, svc.spec.policy.budget_window);
        prune(&mut svc.fallbacks, now, window);
        let budget = match ag.class.budget() {
            Some(ClassBudget::Restart) => Some(BudgetUse {
                code: ReasonCode::RestartBudget,
                used: svc.restarts.len() as u32,
                limit: svc.spec.policy.restart_budget,
            }),
            Some(ClassBudget::FeatureFlag) => Some(BudgetUse {
                code: ReasonCode::FeatureBudget,
                used: feature_used,
                limit: limits.feature_disables_per_hour,
            }),
            Some(ClassBudget::Fallback) => Some(BudgetUse {
                code: ReasonCode::FallbackBudget,
                used: svc.fallbacks.len() as u32,
                limit: limits.fallbacks_per_service_per_hour,
            }),
            None => None,
        };
        let (score, approved) = match svc.incident.as_ref() {
            Some(inc) => {
                let score = risk_score(
                    svc.gov.criticality,
                    ag.change_size,
                    Engine::severity(inc),
                    timing,
                );
                let approved = inc
                    .approved
                    .as_ref()
                    .is_some_and(|(a, _)| *a == action.name);
                (score, approved)
            }
            None => (
                risk_score(svc.gov.criticality, ag.change_size, 0.0, timing),
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
            risk: ag.risk,
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
            lock,
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
            removes_capacity: ag.removes_capacity,
            headroom: svc.headroom,
            instances: svc.gov.instances,
            canary_capable: ag.canary,
            diagnosis: svc.diagnosis,
        };
        Some((input, ag))
    }

    /// A root-cause diagnosis across services (issue 9): the top hypothesis's
    /// service is gated by its confidence band, the services it explains are
    /// held back as victims, every other service is gated as before.
    pub(super) fn diagnosed(&mut self, mut report: crate::types::DiagnosisReport) {
        report.hypotheses.truncate(crate::types::MAX_HYPOTHESES);
        let top = report.hypotheses.first();
        for (name, svc) in self.services.iter_mut() {
            let concerned = report
                .hypotheses
                .iter()
                .any(|h| &h.service == name || h.victims.iter().any(|v| v == name));
            if let Some(inc) = svc.incident.as_mut().filter(|_| concerned) {
                inc.hypotheses = report.hypotheses.clone();
            }
            svc.diagnosis = match top {
                Some(h) if &h.service == name => Some(crate::governance::DiagnosisGate {
                    confidence: h.confidence,
                    upstream: None,
                }),
                Some(h) if h.victims.iter().any(|v| v == name) => {
                    Some(crate::governance::DiagnosisGate {
                        confidence: 0,
                        upstream: Some(h.confidence),
                    })
                }
                _ => None,
            };
        }
        let bands = self.gov.autonomy.clone();
        let n = match top {
            Some(h) => Notice::RootCause {
                service: Some(h.service.clone()),
                signal: h.signal.clone(),
                pattern: h.pattern.clone(),
                confidence: h.confidence,
                prior: h.prior,
                evidence: h.evidence,
                learned: h.learned,
                band: crate::governance::Band::of(h.confidence, &bands),
                // Held back (armed band and above) or waiting for the
                // approval asked about the cause (approval band).
                victims: if h.confidence >= bands.approve {
                    h.victims.clone()
                } else {
                    Vec::new()
                },
                ranked: report
                    .hypotheses
                    .iter()
                    .map(|h| format!("{}/{} {} {}", h.service, h.signal, h.pattern, h.confidence))
                    .collect(),
                evidence_text: h.evidence_text.clone(),
            },
            None => Notice::RootCause {
                service: None,
                signal: String::new(),
                pattern: String::new(),
                confidence: 0,
                prior: 0.0,
                evidence: 0.0,
                learned: 0.0,
                band: crate::governance::Band::Escalate,
                victims: Vec::new(),
                ranked: Vec::new(),
                evidence_text: String::new(),
            },
        };
        self.notice(n);
        self.last_diagnosis = report;
        self.merge_victims();
        self.replan_all();
    }

    /// Judge `action` for the incident of `name` and act on the decision.
    pub(super) fn act(
        &mut self,
        name: &str,
        action: &ActionSpec,
        stage: ActionStage,
        attempt: u32,
        reason: String,
        forced: Option<(String, String)>,
    ) {
        // Locks of actions that are no longer in flight are free.
        self.sync_locks();
        let Some((input, ag)) = self.gate_input(name, action, stage, forced.is_some()) else {
            return;
        };
        // An open executor breaker refuses the action and escalates (issue
        // 10); an operator's override is not refused.
        if forced.is_none() {
            if let Some(b) = self.breaker_refuses(name, &action.name) {
                self.escalate(
                    name,
                    ReasonCode::BreakerOpen,
                    format!("{}: {b}", action.name),
                );
                return;
            }
        }
        let decision = decide_with(&self.gov, &input, self.fault);
        // A run under a diagnosis records the band that let it run.
        let band_block = match (&decision, input.diagnosis) {
            (Decision::Run { .. }, Some(d)) if !input.continuation && d.upstream.is_none() => {
                let band = crate::governance::Band::of(d.confidence, &self.gov.autonomy);
                Some(crate::governance::Block {
                    code: band.code(),
                    value: f64::from(d.confidence),
                    limit: f64::from(match band {
                        crate::governance::Band::Act => self.gov.autonomy.act,
                        _ => self.gov.autonomy.armed,
                    }),
                })
            }
            _ => None,
        };
        let block = decision.reason();
        let window = match block {
            Some(b) if b.code == ReasonCode::Frozen => self.freeze_window_for(name),
            _ => None,
        };
        let message = match (&decision, block) {
            (Decision::Hold(b), _) if b.code == ReasonCode::ModeDryRun => {
                let needs = self.real_mode_needs(input.risk);
                format!(
                    "dry-run: would run {} ({}, {} risk){needs}",
                    action.name,
                    action.kind.as_str(),
                    input.risk.as_str()
                )
            }
            (Decision::Skip(_), _) => format!("automation disabled: would run {}", action.name),
            (Decision::Hold(b), _) if b.code == ReasonCode::Frozen => format!(
                "inside freeze window {}: would run {}",
                window.as_deref().unwrap_or("?"),
                action.name
            ),
            (Decision::Hold(b), _) => format!("{b}: would run {}", action.name),
            (Decision::Defer { .. }, Some(b)) if input.lock.is_some() => {
                let detail = self.lock_gate(name).map(|(_, d)| d).unwrap_or_default();
                format!("{}: {b}: {detail}", action.name)
            }
            (_, Some(b)) => format!("{}: {b}", action.name),
            (_, None) => match band_block {
                Some(b) => format!(
                    "running {} ({}): {b}",
                    action.name,
                    decision.verdict().as_str()
                ),
                None => format!("running {} ({})", action.name, decision.verdict().as_str()),
            },
        };
        let rec = DecisionRecord {
            at: self.now,
            action: action.name.clone(),
            stage,
            risk: input.risk,
            score: input.score,
            verdict: decision.verdict(),
            reason_code: block.or(band_block).map(|b| b.code),
            window: window.clone(),
            reason: message.clone(),
        };
        self.record_decision(name, rec);
        let w = Waiting {
            action: &action.name,
            stage,
            window,
        };
        match decision {
            Decision::Run { canary } => {
                if let (Some(b), Some(id)) = (
                    band_block,
                    self.services
                        .get(name)
                        .and_then(|s| s.incident.as_ref())
                        .map(|i| i.id.clone()),
                ) {
                    // The band that let it run, in the audit (issue 9).
                    self.notice(Notice::Decision {
                        incident: id,
                        service: name.to_string(),
                        action: action.name.clone(),
                        stage,
                        verdict: decision.verdict(),
                        reason_code: Some(b.code),
                        window: None,
                        reason: message.clone(),
                    });
                }
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
                self.wait(
                    name,
                    w,
                    Verdict::Skipped,
                    b.code,
                    message,
                    Severity::Warning,
                );
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
                self.wait(name, w, verdict, b.code, message, Severity::Info);
            }
            Decision::Defer { reason: b, until } => {
                if input.lock.is_some() && !self.lock_wait(name) {
                    return;
                }
                if let Some(inc) = self
                    .services
                    .get_mut(name)
                    .and_then(|s| s.incident.as_mut())
                {
                    inc.timer = until.map(IncidentTimer::Defer);
                }
                self.wait(name, w, Verdict::Deferred, b.code, message, Severity::Info);
            }
            Decision::Escalate(b) => self.escalate(name, b.code, message),
            Decision::NeedsApproval {
                reason: b,
                approvers,
            } => {
                self.request_approval(name, action, &input, b, approvers, message);
            }
        }
    }

    /// For a dry-run record: what a real mode would need first.
    fn real_mode_needs(&self, risk: Risk) -> String {
        match risk {
            Risk::Critical => "; never automatic in any mode (critical)".to_string(),
            Risk::High => {
                let n = if self.gov.approvals.two_person_high {
                    2
                } else {
                    1
                };
                format!("; a real mode would first need {n} approval(s) (high risk)")
            }
            Risk::Medium => "; a real mode runs it in aggressive mode, or after approval".into(),
            Risk::Low => String::new(),
        }
    }

    /// The name of the freeze window covering `name` now.
    fn freeze_window_for(&self, name: &str) -> Option<String> {
        let w = self.wall_now()?;
        self.gov
            .freeze_windows
            .iter()
            .find(|f| f.covers(name, w))
            .map(|f| f.name.clone())
    }

    /// Keep a decision for `explain`. A repeated identical *waiting* decision
    /// is kept once; every run and every escalation is kept.
    pub(super) fn record_decision(&mut self, name: &str, rec: DecisionRecord) {
        let max = self.max_timeline;
        let Some(inc) = self
            .services
            .get_mut(name)
            .and_then(|s| s.incident.as_mut())
        else {
            return;
        };
        let waiting = !matches!(
            rec.verdict,
            Verdict::Run | Verdict::RunCanary | Verdict::Escalate
        );
        if waiting
            && inc
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
        input: &GateInput,
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
                risk: input.risk,
                score: input.score,
                reason,
                required,
                approvers: Vec::new(),
                requested_at: now,
                expires_at,
            },
        );
        let expires_at_unix_ms = self.wall_at(expires_at);
        self.notice(Notice::ApprovalRequested {
            approval: format!("apr-{id}"),
            incident,
            service: name.to_string(),
            action: action.name.clone(),
            risk: input.risk,
            score: input.score,
            reason_code: reason.code,
            required,
            expires_at_unix_ms,
        });
        let w = Waiting {
            action: &action.name,
            stage: ActionStage::Direct,
            window: None,
        };
        self.wait(
            name,
            w,
            Verdict::PendingApproval,
            reason.code,
            format!("{message}; waiting for approval apr-{id}"),
            Severity::Warning,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &mut self,
        name: &str,
        action: &ActionSpec,
        ag: &ResolvedAction,
        reason: String,
        attempt: u32,
        stage: ActionStage,
        score: f64,
        forced: Option<(String, String)>,
    ) {
        self.lock_take(name);
        let now = self.now;
        let id = ActionId(self.next_action);
        self.next_action += 1;
        // A staged canary (issue 10) picks the instances and the stage.
        let (instances, stage) = if forced.is_some() {
            (Vec::new(), stage)
        } else {
            self.canary_targets(name, &action.name, stage)
        };
        let stage = if forced.is_some() {
            ActionStage::Forced
        } else {
            stage
        };
        if forced.is_none() {
            self.action_starts.push_back(now);
            if ag.class.budget() == Some(ClassBudget::FeatureFlag) {
                self.feature_toggles.push_back(now);
            }
        }
        let max_timeline = self.max_timeline;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if ag.class.budget() == Some(ClassBudget::Restart) {
            svc.restarts.push_back(now);
        }
        if ag.class.budget() == Some(ClassBudget::Fallback) {
            svc.fallbacks.push_back(now);
        }
        let revert_of = match stage {
            ActionStage::Revert | ActionStage::Rollback => Some(
                svc.pending_revert
                    .take()
                    .map(|p| p.of)
                    .unwrap_or_else(|| action.name.clone()),
            ),
            _ => None,
        };
        let for_incident = match revert_of {
            Some(_) => None,
            None => svc.incident.as_ref().map(|i| i.id.clone()),
        };
        // The executor target's breaker: a half-open one lets this run as
        // its one trial (an override bypasses it; its result still counts).
        let mut breaker_moved = None;
        if forced.is_none() {
            let (_, moved) = svc
                .breakers
                .entry(action.name.clone())
                .or_default()
                .admit(now);
            breaker_moved = moved;
        }
        // A change is verified against the baseline from before it (issue
        // 10): taken now, over one verify window of the triggering probe. A
        // retry or the rollout after a canary keeps the first baseline.
        let mut baseline_notice = None;
        if revert_of.is_none() {
            let change = svc.verified_as_change(action);
            let keep = matches!(stage, ActionStage::Retry | ActionStage::Rollout)
                && svc
                    .incident
                    .as_ref()
                    .and_then(|i| i.verify.as_ref())
                    .is_some_and(|v| v.action == action.name);
            let probe = svc.incident.as_ref().map(|i| i.probe.clone());
            match probe {
                Some(probe) if change && !keep => {
                    let spec = action.verify.clone().unwrap_or_default();
                    let window = spec.window.unwrap_or(crate::class::CHANGE_VERIFY_WINDOW);
                    let since = svc.incident.as_ref().and_then(|i| i.evidence_since);
                    let baseline = svc.baseline(&probe, since, now, window);
                    if let Some(inc) = svc.incident.as_mut() {
                        baseline_notice = Some(Notice::VerifyBaseline {
                            incident: inc.id.clone(),
                            service: name.to_string(),
                            probe: probe.clone(),
                            action: action.name.clone(),
                            window,
                            baseline,
                        });
                        push_timeline(
                            inc,
                            max_timeline,
                            now,
                            "baseline",
                            format!(
                                "baseline of {probe} before {}: {}",
                                action.name,
                                baseline.map_or("no samples".to_string(), |b| b.to_string())
                            ),
                        );
                        inc.verify = Some(VerifyState {
                            action: action.name.clone(),
                            probe,
                            spec,
                            window,
                            baseline,
                            since: None,
                            observed: std::collections::VecDeque::new(),
                        });
                    }
                }
                Some(_) if !change => {
                    if let Some(inc) = svc.incident.as_mut() {
                        inc.verify = None;
                    }
                }
                _ => {}
            }
        }
        svc.inflight = Some(InFlight {
            id,
            incident: for_incident,
            action: action.name.clone(),
            stage,
            revert_of: revert_of.clone(),
            cancel_requested: false,
        });
        let mut approved_by = Vec::new();
        let incident = if revert_of.is_some() {
            None
        } else {
            svc.incident.as_mut().map(|inc| {
                inc.phase = Phase::ExecutingHeal;
                inc.attempt = attempt;
                inc.waiting_reason = None;
                inc.timer = None;
                if let Some((_, by)) = &inc.approved {
                    approved_by = by.clone();
                }
                inc.actions.push(action.name.clone());
                push_timeline(
                    inc,
                    max_timeline,
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
        if let Some((by, why)) = &forced {
            self.notice(Notice::Override {
                action_id: id,
                service: name.to_string(),
                action: action.name.clone(),
                by: by.clone(),
                reason: why.clone(),
            });
        }
        if let Some(t) = breaker_moved {
            self.breaker_notice(name, &action.name, t);
        }
        self.notice(Notice::ActionIntent {
            action_id: id,
            incident: incident.clone(),
            service: name.to_string(),
            action: action.name.clone(),
            kind: action.kind,
            class: ag.class,
            risk: ag.risk,
            score,
            stage,
            attempt: attempt + 1,
            reason: reason.clone(),
            approved_by,
            revert_of,
            override_by: forced.map(|(by, _)| by),
            instances: instances.clone(),
        });
        if let Some(n) = baseline_notice {
            self.notice(n);
        }
        self.command(Command::RunAction(ActionRequest {
            id,
            incident,
            service: name.to_string(),
            action: action.name.clone(),
            kind: action.kind,
            attempt,
            reason,
            risk: ag.risk,
            stage,
            instances,
        }));
    }

    /// Why the breaker of `action` on `name` refuses a call now, if it does.
    pub(super) fn breaker_refuses(&self, name: &str, action: &str) -> Option<Block> {
        let b = self.services.get(name)?.breakers.get(action)?;
        if b.would_admit(self.now) {
            return None;
        }
        Some(Block {
            code: ReasonCode::BreakerOpen,
            value: f64::from(b.consecutive_failures),
            limit: f64::from(self.gov.breaker.failures.max(1)),
        })
    }

    pub(super) fn breaker_notice(
        &mut self,
        name: &str,
        action: &str,
        t: crate::breaker::Transition,
    ) {
        self.notice(Notice::BreakerChanged {
            service: name.to_string(),
            action: action.to_string(),
            from: t.from.as_str(),
            to: t.to.as_str(),
            consecutive_failures: t.consecutive_failures,
        });
    }

    /// Record a waiting decision once per distinct reason.
    fn wait(
        &mut self,
        name: &str,
        w: Waiting<'_>,
        verdict: Verdict,
        code: ReasonCode,
        reason: String,
        severity: Severity,
    ) {
        let now = self.now;
        let max_timeline = self.max_timeline;
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
        push_timeline(inc, max_timeline, now, verdict.as_str(), reason.clone());
        let id = inc.id.clone();
        svc.dirty = true;
        self.notice(Notice::Decision {
            incident: id.clone(),
            service: name.to_string(),
            action: w.action.to_string(),
            stage: w.stage,
            verdict,
            reason_code: Some(code),
            window: w.window,
            reason: reason.clone(),
        });
        if severity > Severity::Info || verdict == Verdict::WouldAct {
            self.notify(Notification {
                severity,
                service: name.to_string(),
                incident: Some(id),
                title: format!("{name}: {}", verdict.as_str()),
                message: reason,
            });
        }
    }
}

/// What a waiting decision is about.
struct Waiting<'a> {
    action: &'a str,
    stage: ActionStage,
    window: Option<String>,
}
