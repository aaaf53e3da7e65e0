//! The durable safety state: everything that limits or holds automation.
//!
//! [`Engine::snapshot`] captures pauses, the mass-incident latch, pending
//! approvals, rate/budget/cooldown ledgers, consecutive failures, disabled
//! autoheal, mode overrides, open incidents and in-flight actions.
//! [`Engine::restore`] puts them back into a freshly built engine after a
//! restart, shifting every time by the engine-time difference and the
//! downtime the driver measured, so a pause of one hour still ends one hour
//! after it began and a spent budget stays spent for its window.
//!
//! An action that was in flight when medic stopped is **reconciled, never
//! re-run**: a heal is judged by verification (the incident goes to
//! `Verifying`), a revert whose outcome is unknown is reported to a human.
//!
//! The latest root-cause diagnosis is kept too (version 2): the ranked
//! hypotheses with their confidence and parts (per open incident and the
//! engine's latest report) and what it says about each service (the gate
//! that holds victims back), so `explain` and the autonomy bands see the
//! same diagnosis after a restart.
//!
//! A staged canary in progress is kept too (version 3): on restore one that
//! was judged is sampled again, any other unfinished one is rolled back
//! (its changed instances, never left unknown).
//!
//! The on-disk form is this type serialised by the store (JSON), versioned by
//! [`SNAPSHOT_VERSION`]; versions 1 (no diagnosis) and 2 (no canary) are still read, any other
//! version is refused, and the driver then starts with a fresh engine and
//! says so.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::state::{Approval, InFlight, Incident, IncidentTimer, Pause, PendingRevert};
use crate::engine::Engine;
use crate::governance::{PolicyFault, ReasonCode};
use crate::notice::Notice;
use crate::spec::Mode;
use crate::time::MonoTime;
use crate::types::{ActionStage, Notification, Phase, Severity};

/// Version of the snapshot format. Bump on any change to its fields.
pub const SNAPSHOT_VERSION: u32 = 3;
/// The oldest version [`Engine::restore`] still reads (its missing fields
/// take their defaults).
pub const OLDEST_SNAPSHOT_VERSION: u32 = 1;

/// A serialisable copy of the engine's safety state. Opaque: persist it and
/// hand it back to [`Engine::restore`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    version: u32,
    taken_at: MonoTime,
    taken_wall_ms: Option<i64>,
    mode: Mode,
    next_incident: u64,
    next_action: u64,
    next_approval: u64,
    pauses: Vec<Pause>,
    mass_paused: bool,
    incident_opens: Vec<MonoTime>,
    failed_actions: Vec<MonoTime>,
    action_starts: Vec<MonoTime>,
    feature_toggles: Vec<MonoTime>,
    approvals: Vec<Approval>,
    services: Vec<ServiceSnapshot>,
    /// Held locks and waiters (issue 10); absent in older snapshots.
    #[serde(default)]
    locks: crate::locks::LockTable,
    /// The latest diagnosis, best first (since version 2).
    #[serde(default)]
    last_diagnosis: Vec<crate::types::Hypothesis>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ServiceSnapshot {
    name: String,
    mode: Option<Mode>,
    autoheal_disabled: bool,
    consecutive_failures: u32,
    restarts: Vec<MonoTime>,
    fallbacks: Vec<MonoTime>,
    failed_heals: Vec<MonoTime>,
    last_success: Vec<(String, MonoTime)>,
    pending_revert: Option<PendingRevert>,
    incident: Option<Incident>,
    inflight: Option<InFlight>,
    /// Executor circuit breakers that are not closed (issue 10).
    #[serde(default)]
    breakers: Vec<(String, crate::breaker::Breaker)>,
    /// What the latest diagnosis says about this service (since version 2).
    #[serde(default)]
    diagnosis: Option<crate::governance::DiagnosisGate>,
    /// The staged canary of this service (issue 10): its stage and the
    /// instances it changed; absent in older snapshots.
    #[serde(default)]
    canary: Option<crate::engine::canary::CanaryRun>,
}

impl Snapshot {
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wall clock (unix ms) when it was taken, if the engine knew it.
    pub fn taken_wall_ms(&self) -> Option<i64> {
        self.taken_wall_ms
    }

    /// Open incidents it holds (ids).
    pub fn incident_ids(&self) -> Vec<String> {
        self.services
            .iter()
            .filter_map(|s| s.incident.as_ref().map(|i| i.id.0.clone()))
            .collect()
    }
}

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    Version { found: u32, expected: u32 },
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Version { found, expected } => write!(
                f,
                "safety state snapshot version {found} is not the supported {expected}"
            ),
        }
    }
}

impl std::error::Error for RestoreError {}

impl Engine {
    /// The durable safety state now. Cheap enough to take after every step
    /// whose [`Engine::safety_generation`] moved.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            taken_at: self.now,
            taken_wall_ms: self.wall_now(),
            mode: self.mode,
            next_incident: self.next_incident,
            next_action: self.next_action,
            next_approval: self.next_approval,
            pauses: self.pauses.clone(),
            mass_paused: self.mass_paused,
            incident_opens: self.incident_opens.iter().copied().collect(),
            failed_actions: self.failed_actions.iter().copied().collect(),
            action_starts: self.action_starts.iter().copied().collect(),
            feature_toggles: self.feature_toggles.iter().copied().collect(),
            approvals: self.approvals.values().cloned().collect(),
            services: self
                .services
                .iter()
                .map(|(name, s)| ServiceSnapshot {
                    name: name.clone(),
                    mode: s.mode,
                    autoheal_disabled: s.autoheal_disabled,
                    consecutive_failures: s.consecutive_failures,
                    restarts: s.restarts.iter().copied().collect(),
                    fallbacks: s.fallbacks.iter().copied().collect(),
                    failed_heals: s.failed_heals.iter().copied().collect(),
                    last_success: s
                        .last_success
                        .iter()
                        .map(|(a, t)| (a.clone(), *t))
                        .collect(),
                    pending_revert: s.pending_revert.clone(),
                    incident: s.incident.clone(),
                    inflight: s.inflight.clone(),
                    breakers: s
                        .breakers
                        .iter()
                        .filter(|(_, b)| **b != crate::breaker::Breaker::default())
                        .map(|(a, b)| (a.clone(), *b))
                        .collect(),
                    diagnosis: s.diagnosis,
                    canary: s.canary.clone(),
                })
                .collect(),
            locks: self.locks.clone(),
            last_diagnosis: self.last_diagnosis.hypotheses.clone(),
        }
    }

    /// Put a snapshot's safety state into this (freshly built) engine.
    /// `downtime` is how long medic was away, by the wall clock; it ages
    /// every ledger and deadline. Services no longer configured are dropped;
    /// their incidents are not carried on.
    pub fn restore(&mut self, snap: Snapshot, downtime: Duration) -> Result<(), RestoreError> {
        self.timeout_cache.clear();
        if !(OLDEST_SNAPSHOT_VERSION..=SNAPSHOT_VERSION).contains(&snap.version) {
            return Err(RestoreError::Version {
                found: snap.version,
                expected: SNAPSHOT_VERSION,
            });
        }
        let now = self.now;
        let away = i128::try_from(downtime.as_millis()).unwrap_or(i128::MAX);
        // new = old + delta, where the snapshot's `taken_at` maps to
        // `now - downtime`.
        let delta = i128::from(now.0) - away - i128::from(snap.taken_at.0);
        let shift = |t: MonoTime| -> MonoTime {
            let v = i128::from(t.0).saturating_add(delta);
            MonoTime(u64::try_from(v.max(0)).unwrap_or(u64::MAX))
        };
        let shift_all = |v: Vec<MonoTime>| v.into_iter().map(shift).collect();

        self.mode = snap.mode;
        self.next_incident = self.next_incident.max(snap.next_incident);
        self.next_action = self.next_action.max(snap.next_action);
        self.next_approval = self.next_approval.max(snap.next_approval);
        let mut pauses: Vec<Pause> = snap
            .pauses
            .into_iter()
            .filter(|p| {
                p.service
                    .as_ref()
                    .is_none_or(|s| self.services.contains_key(s))
            })
            .map(|mut p| {
                p.until = p.until.map(shift);
                p
            })
            .collect();
        if self.fault == PolicyFault::ForgetPausesOnRestore {
            pauses.clear();
        }
        self.pauses = pauses;
        self.mass_paused = snap.mass_paused;
        self.incident_opens = shift_all(snap.incident_opens);
        self.failed_actions = shift_all(snap.failed_actions);
        self.action_starts = shift_all(snap.action_starts);
        self.feature_toggles = shift_all(snap.feature_toggles);
        // The saved locks on the new clock, under this config's limits. The
        // locks of actions that were in flight are released after this step
        // (they are reconciled, never re-run).
        let mut locks = snap.locks;
        locks.map_times(shift);
        self.locks = locks.with_config(self.gov.locks.clone());

        let mut n_incidents = 0u32;
        let mut n_inflight = 0u32;
        let mut reconciled = Vec::new();
        for ss in snap.services {
            let Some(svc) = self.services.get_mut(&ss.name) else {
                continue;
            };
            // A per-service mode set at run time survives; if the config
            // now sets one too, the more restrictive of the two holds.
            svc.mode = match (svc.mode, ss.mode) {
                (Some(config), Some(saved)) => Some(config.most_restrictive(saved)),
                (config, None) => config,
                (None, saved) => saved,
            };
            svc.autoheal_disabled = ss.autoheal_disabled;
            svc.consecutive_failures = ss.consecutive_failures;
            svc.restarts = shift_all(ss.restarts);
            svc.fallbacks = shift_all(ss.fallbacks);
            svc.failed_heals = shift_all(ss.failed_heals);
            svc.last_success = ss
                .last_success
                .into_iter()
                .map(|(a, t)| (a, shift(t)))
                .collect();
            svc.pending_revert = ss.pending_revert.map(|mut p| {
                p.due = shift(p.due);
                p
            });
            svc.incident = ss.incident.map(|mut inc| {
                n_incidents += 1;
                inc.opened_at = shift(inc.opened_at);
                inc.updated_at = shift(inc.updated_at);
                inc.timer = inc.timer.map(|t| t.map(shift));
                for item in inc.timeline.iter_mut() {
                    item.at = shift(item.at);
                }
                for d in inc.decisions.iter_mut() {
                    d.at = shift(d.at);
                }
                if let Some(v) = inc.verify.as_mut() {
                    v.since = v.since.map(shift);
                }
                inc.evidence_since = inc.evidence_since.map(shift);
                inc
            });
            svc.breakers = ss
                .breakers
                .into_iter()
                .map(|(a, mut b)| {
                    b.state = match b.state {
                        crate::breaker::BreakerState::Open { until } => {
                            crate::breaker::BreakerState::Open {
                                until: shift(until),
                            }
                        }
                        // A trial whose outcome was lost with the restart:
                        // the breaker lets the next call be the trial.
                        crate::breaker::BreakerState::HalfOpen { .. } => {
                            crate::breaker::BreakerState::HalfOpen { trial: false }
                        }
                        s => s,
                    };
                    (a, b)
                })
                .collect();
            if let Some(flight) = ss.inflight {
                n_inflight += 1;
                reconciled.push((ss.name.clone(), flight));
            }
            svc.diagnosis = ss.diagnosis;
            svc.canary = ss.canary;
            svc.dirty = svc.incident.is_some();
        }
        let mut last = snap.last_diagnosis;
        last.truncate(crate::types::MAX_HYPOTHESES);
        self.last_diagnosis = crate::types::DiagnosisReport { hypotheses: last };
        let mut n_approvals = 0u32;
        for mut a in snap.approvals {
            let open = self
                .services
                .get(&a.service)
                .and_then(|s| s.incident.as_ref())
                .is_some_and(|i| i.id == a.incident && i.approval == Some(a.id));
            if !open {
                continue;
            }
            n_approvals += 1;
            a.requested_at = shift(a.requested_at);
            a.expires_at = shift(a.expires_at);
            self.approvals.insert(a.id, a);
        }
        self.notice(Notice::StateRestored {
            downtime,
            incidents: n_incidents,
            approvals: n_approvals,
            pauses: self.pauses.len() as u32,
            inflight: n_inflight,
            mass_latched: self.mass_paused,
        });
        let canaries: Vec<(String, Option<ActionStage>)> = self
            .services
            .iter()
            .filter(|(_, s)| s.canary.is_some())
            .map(|(n, _)| {
                let flight = reconciled.iter().find(|(r, _)| r == n);
                (n.clone(), flight.map(|(_, f)| f.stage))
            })
            .collect();
        for (name, flight) in reconciled {
            self.reconcile(&name, flight);
        }
        // A canary interrupted mid-stage: judged again, or its changed
        // instances rolled back; never left unknown.
        for (name, was_running) in canaries {
            self.canary_restored(&name, was_running);
        }
        Ok(())
    }

    /// An action was running when medic stopped. Its outcome is unknown:
    /// a heal is verified like any finished one; a revert is reported.
    fn reconcile(&mut self, name: &str, flight: InFlight) {
        let now = self.now;
        let max_timeline = self.max_timeline;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        // A change watches its own window against its baseline.
        let verify_window = svc
            .incident
            .as_ref()
            .and_then(|i| i.verify.as_ref())
            .filter(|v| v.action == flight.action)
            .map_or(svc.spec.policy.verify_window, |v| v.window);
        let incident = svc.incident.as_ref().map(|i| i.id.clone());
        // Verified only against the incident it was run for.
        let heal = flight.revert_of.is_none() && incident.is_some() && flight.incident == incident;
        if heal {
            if let Some(inc) = svc.incident.as_mut() {
                inc.phase = Phase::Verifying;
                inc.timer = Some(IncidentTimer::Verify(now.plus(verify_window)));
                inc.healed_by = Some(flight.action.clone());
                if let Some(v) = inc.verify.as_mut().filter(|v| v.action == flight.action) {
                    v.since = Some(now);
                    v.observed.clear();
                }
                crate::engine::state::push_timeline(
                    inc,
                    max_timeline,
                    now,
                    "reconciled",
                    format!(
                        "{} was running when medic stopped; verifying its effect instead of \
                         running it again",
                        flight.action
                    ),
                );
            }
            svc.dirty = true;
        }
        self.notice(Notice::ActionReconciled {
            action_id: flight.id,
            incident: flight.incident.clone(),
            service: name.to_string(),
            action: flight.action.clone(),
            stage: flight.stage,
            resolution: if heal { "verify" } else { "escalate" },
        });
        if !heal {
            let what = match flight.stage {
                ActionStage::Revert | ActionStage::Rollback => "revert",
                _ => "action",
            };
            self.notify(Notification {
                severity: Severity::Warning,
                service: name.to_string(),
                incident: None,
                title: format!(
                    "{name}: {what} {} interrupted by a medic restart",
                    flight.action
                ),
                message: format!(
                    "{} ({}) was running when medic stopped; its outcome is unknown and it \
                     was not run again: check {name} ({})",
                    flight.action,
                    flight.id,
                    ReasonCode::InterruptedByRestart.as_str()
                ),
            });
        }
    }
}
