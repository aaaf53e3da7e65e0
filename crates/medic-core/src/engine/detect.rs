//! Evidence: probe results, detection rules, opening and diagnosing incidents.

use super::state::*;
use super::Engine;
use crate::notice::*;
use crate::spec::*;
use crate::types::*;
use std::collections::VecDeque;

impl Engine {
    /// One probe report. True when its service had nothing pending (no
    /// incident, action or revert) and still has nothing: no deadline
    /// moved. Looked up once here and once in `evaluate` (at 10,000
    /// services each look-up of the ordered map costs).
    pub(super) fn on_probe(&mut self, r: ProbeReport) -> bool {
        let now = self.now;
        let Some(svc) = self.services.get_mut(&r.service) else {
            return false;
        };
        let before = svc.quiet();
        // Startup grace: until a probe's own first success, its failures
        // within the grace are recorded once but count for nothing. Each
        // probe's start phase ends with its own success: a process probe
        // says "running" the moment the process is spawned, which says
        // nothing about whether it answers HTTP yet (issue 14: that ended
        // the HTTP probe's grace, so a refusal while the new process bound
        // its port failed the verification and restarted it again). An exit
        // is never excused.
        let event = svc.spec.probes.iter().any(|p| p.name == r.probe && p.event);
        match svc.starting_until {
            Some(t) if now >= t => svc.starting_until = None,
            Some(_) if r.ok => {
                if let Some(st) = svc.probes.get_mut(&r.probe) {
                    st.started = true;
                }
                // Event-driven probes (alerts) may never report: the start
                // phase ends with the scheduled probes' first successes.
                let spec = &svc.spec.probes;
                let scheduled = |n: &String| spec.iter().any(|p| &p.name == n && !p.event);
                if svc.probes.iter().all(|(n, st)| st.started || !scheduled(n)) {
                    svc.starting_until = None;
                }
            }
            Some(_) if r.failure != Some(ProbeFailure::Exited) && !event => {
                if let Some(st) = svc.probes.get_mut(&r.probe) {
                    if !st.started {
                        st.seen = true;
                        if !st.startup_noted {
                            st.startup_noted = true;
                            self.notice(Notice::StartupProbeFailed {
                                service: r.service.clone(),
                                probe: r.probe.clone(),
                                detail: r.detail.clone(),
                            });
                        }
                        return before;
                    }
                }
            }
            Some(_) | None => {}
        }
        let Some(spec) = svc.spec.probes.iter().find(|p| p.name == r.probe) else {
            return before;
        };
        let n_keep = spec.failure.consecutive.max(1) as usize;
        let over = spec.latency.as_ref().map(|l| l.over);
        let Some(st) = svc.probes.get_mut(&r.probe) else {
            return before;
        };
        st.seen = true;
        let sample = crate::verify::Sample {
            ok: r.ok,
            latency_ms: u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX),
        };
        st.history.push_back((now, sample));
        while st.history.len() > crate::verify::MAX_SAMPLES {
            st.history.pop_front();
        }
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
        // A revert waiting for green checks (a flag restoring itself, a
        // circuit's half-open probe): count healthy results in a row.
        let healthy = r.ok && over.is_none_or(|o| r.latency <= o);
        let mut green_due = false;
        if svc.incident.is_none() {
            if let Some(g) = svc
                .pending_revert
                .as_mut()
                .filter(|p| p.stage == ActionStage::Revert)
                .and_then(|p| p.green.as_mut())
                .filter(|g| g.probe == r.probe)
            {
                g.seen = if healthy { g.seen.saturating_add(1) } else { 0 };
                green_due = g.seen >= g.needed.max(1);
            }
            if green_due {
                if let Some(p) = svc.pending_revert.as_mut() {
                    p.due = p.due.min(now);
                    p.green = None;
                }
            }
        }
        // A change under verification: this is an observed sample.
        if let Some(v) = svc
            .incident
            .as_mut()
            .filter(|i| i.phase == Phase::Verifying)
            .and_then(|i| i.verify.as_mut())
            .filter(|v| v.since.is_some() && v.probe == r.probe)
        {
            v.observed.push_back(sample);
            while v.observed.len() > crate::verify::MAX_SAMPLES {
                v.observed.pop_front();
            }
        }
        self.evaluate(&r.service);
        if green_due {
            self.timers(&r.service);
        }
        before && self.services.get(&r.service).is_some_and(|s| s.quiet())
    }

    /// Level-triggered: look at the service's current state and move it on.
    pub(super) fn evaluate(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match svc.incident.as_ref().map(|i| (i.phase, i.probe.clone())) {
            None => {
                if let Some((probe, condition)) = svc.firing() {
                    if self.merge_into_cause(name, &probe, condition) {
                        return;
                    }
                    self.open_incident(name, probe, condition);
                    self.plan(name);
                    // The cause's incident is open now: victims' incidents
                    // opened before it join it.
                    self.merge_victims();
                }
            }
            Some((Phase::ConfirmingPattern, probe)) => {
                if svc.recovered(&probe) {
                    let outcome = match svc.incident.as_ref() {
                        Some(i) if i.would_act => IncidentOutcome::WouldAct,
                        _ => IncidentOutcome::Recovered,
                    };
                    self.resolve(name, outcome, "probe recovered without action".into());
                } else {
                    self.plan(name);
                }
            }
            Some((Phase::Verifying, _))
                if svc
                    .incident
                    .as_ref()
                    .is_some_and(|i| i.verify.as_ref().is_some_and(|v| v.since.is_some())) =>
            {
                self.judge_change(name, false);
            }
            Some((Phase::Verifying, probe)) => {
                let failed_again = match (svc.probe_spec(&probe), svc.probes.get(&probe)) {
                    (Some(p), Some(st)) => failing(p, st),
                    _ => false,
                };
                if failed_again {
                    // Clear evidence before the window ends: fail verification now.
                    let Some(id) = svc.incident.as_mut().map(|i| {
                        i.timer = None;
                        i.id.clone()
                    }) else {
                        return;
                    };
                    self.notice(Notice::VerifyFailed {
                        incident: id,
                        service: name.to_string(),
                        probe: probe.clone(),
                    });
                    self.failed_heal(name, format!("{probe} failing again after the action"));
                } else if svc.recovered(&probe) {
                    svc.consecutive_failures = 0;
                    let Some(id) = svc.incident.as_mut().map(|i| {
                        i.timer = None;
                        i.id.clone()
                    }) else {
                        return;
                    };
                    self.notice(Notice::VerifyPassed {
                        incident: id,
                        service: name.to_string(),
                        probe: probe.clone(),
                    });
                    self.resolve(
                        name,
                        IncidentOutcome::Healed,
                        format!("{probe} healthy again"),
                    );
                }
            }
            Some((Phase::ManualIntervention, probe)) => {
                if svc.recovered(&probe) {
                    self.resolve(
                        name,
                        IncidentOutcome::Escalated,
                        format!("{probe} healthy again after escalation"),
                    );
                }
            }
            Some((_, _)) => {}
        }
    }

    /// A cascade makes one incident (issue 9): when the latest diagnosis
    /// names an upstream cause with confidence at or above the armed band,
    /// `name` is one of its victims and the cause has an open incident, the
    /// victim's symptom joins that incident (timeline `merged`, notice
    /// `IncidentMerged`, once per victim) instead of opening its own. The
    /// victim is not acted on; once the cause's incident closes, a symptom
    /// that remains opens an incident as usual.
    fn merge_into_cause(&mut self, name: &str, probe: &str, condition: Condition) -> bool {
        let Some(top) = self.last_diagnosis.hypotheses.first() else {
            return false;
        };
        if top.confidence < self.gov.autonomy.armed
            || top.service == name
            || !top.victims.iter().any(|v| v == name)
        {
            return false;
        }
        let cause = top.service.clone();
        let max_timeline = self.max_timeline;
        let now = self.now;
        let Some(inc) = self
            .services
            .get_mut(&cause)
            .and_then(|s| s.incident.as_mut())
        else {
            return false;
        };
        if inc.merged.iter().any(|m| m == name) {
            return true;
        }
        let trigger = format!("{probe} {}", condition.as_str());
        inc.merged.push(name.to_string());
        push_timeline(
            inc,
            max_timeline,
            now,
            "merged",
            format!("{name}: {trigger} (a victim of {cause})"),
        );
        let id = inc.id.clone();
        if let Some(s) = self.services.get_mut(&cause) {
            s.dirty = true;
        }
        self.notice(Notice::IncidentMerged {
            incident: id,
            cause,
            service: name.to_string(),
            trigger,
        });
        true
    }

    /// Victims of the diagnosed upstream cause (confidence at or above the
    /// armed band) whose incidents opened before the cause's: each is closed
    /// as `merged` and its trigger joins the cause's incident (see
    /// [`Engine::merge_into_cause`]). A victim's pending approval is
    /// withdrawn (`ApprovalWithdrawn`, the reason naming the cause's
    /// incident) and so is any action it was waiting to run; a victim with
    /// an action in flight is left alone (it cannot be taken back).
    pub(super) fn merge_victims(&mut self) {
        let Some(top) = self.last_diagnosis.hypotheses.first() else {
            return;
        };
        if top.confidence < self.gov.autonomy.armed {
            return;
        }
        let cause = top.service.clone();
        let cause_open = self
            .services
            .get(&cause)
            .is_some_and(|s| s.incident.is_some());
        if !cause_open {
            return;
        }
        let victims: Vec<(String, String, Condition)> = top
            .victims
            .iter()
            .filter(|v| **v != cause)
            .filter_map(|v| {
                let s = self.services.get(v)?;
                let inc = s.incident.as_ref()?;
                s.inflight
                    .is_none()
                    .then(|| (v.clone(), inc.probe.clone(), inc.condition))
            })
            .collect();
        for (victim, probe, condition) in victims {
            let cause_id = self
                .services
                .get(&cause)
                .and_then(|s| s.incident.as_ref())
                .map(|i| i.id.0.clone())
                .unwrap_or_default();
            self.resolve(
                &victim,
                IncidentOutcome::Merged,
                format!("merged into {cause_id} (a victim of {cause})"),
            );
            self.merge_into_cause(&victim, &probe, condition);
        }
    }

    pub(super) fn open_incident(&mut self, name: &str, probe: String, condition: Condition) {
        let now = self.now;
        let id = IncidentId(format!("inc-{}-{}", self.instance, self.next_incident));
        self.next_incident += 1;
        let window = self.gov.limits.window;
        prune(&mut self.incident_opens, now, window);
        self.incident_opens.push_back(now);
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
        let evidence_since = svc.evidence_since(&probe, condition);
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
            timer: None,
            waiting_reason: None,
            would_act: false,
            healed_by: None,
            actions: Vec::new(),
            timeline: VecDeque::new(),
            approval: None,
            approved: None,
            decisions: VecDeque::new(),
            hypotheses: if self
                .last_diagnosis
                .hypotheses
                .iter()
                .any(|h| h.service == name || h.victims.iter().any(|v| v == name))
            {
                self.last_diagnosis.hypotheses.clone()
            } else {
                Vec::new()
            },
            verify: None,
            evidence_since,
            merged: Vec::new(),
            canary: Vec::new(),
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
        self.notice(Notice::IncidentOpened {
            incident: id.clone(),
            service: name.to_string(),
            trigger,
        });
        self.notice(Notice::Diagnosis {
            incident: id,
            service: name.to_string(),
            cause,
            confidence,
        });
        let affected = self.affected_services();
        let max = self.gov.gates.mass_incident_services;
        if affected > max && !self.mass_paused {
            self.mass_paused = true;
            self.notice(Notice::MassIncidentLatched {
                affected_services: affected,
                limit: max,
            });
            self.notify(Notification {
                severity: Severity::Critical,
                service: "*".into(),
                incident: None,
                title: format!("{affected} services affected: automation paused"),
                message: format!(
                    "more than {max} services have open incidents; medic keeps detecting and \
                     recording but will not act until an operator resumes"
                ),
            });
        }
    }

    pub(super) fn affected_services(&self) -> u32 {
        self.services
            .values()
            .filter(|s| s.incident.is_some())
            .count() as u32
    }

    /// Severity of the open incident in `[0, 1]`.
    pub(super) fn severity(inc: &Incident) -> f64 {
        match inc.condition {
            Condition::Failing => 0.5 + 0.5 * inc.confidence.clamp(0.0, 1.0),
            Condition::Slow => 0.3,
        }
    }
}
