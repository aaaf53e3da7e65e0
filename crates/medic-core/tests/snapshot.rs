#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The durable safety state: what limits or holds automation survives a
//! restart of medic (snapshot, a new engine with its clock back at zero,
//! restore), and an action in flight is reconciled, never re-run.
mod common;
use std::time::Duration;

use common::*;
use medic_core::*;

fn cfg(mode: Mode, p: ServicePolicy) -> EngineConfig {
    EngineConfig {
        seed: 42,
        instance: "t".into(),
        mode,
        services: vec![web_service(p)],
        max_timeline: 50,
        governance: GovernanceConfig::default(),
    }
}

fn fail(e: &mut Engine, at: u64) {
    e.handle_input(
        MonoTime(at),
        Input::Probe(ProbeReport {
            service: "web".into(),
            probe: "healthz".into(),
            ok: false,
            latency: Duration::ZERO,
            failure: Some(ProbeFailure::Exited),
            detail: String::new(),
        }),
    );
}

fn ok(e: &mut Engine, at: u64) {
    e.handle_input(
        MonoTime(at),
        Input::Probe(ProbeReport {
            service: "web".into(),
            probe: "healthz".into(),
            ok: true,
            latency: Duration::from_millis(5),
            failure: None,
            detail: String::new(),
        }),
    );
}

/// Everything the engine emitted since the last call.
fn drain(e: &mut Engine) -> (Vec<Notice>, Vec<Command>) {
    (
        std::iter::from_fn(|| e.poll_notice()).collect(),
        std::iter::from_fn(|| e.poll_command()).collect(),
    )
}

fn runs(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::RunAction(_)))
        .count()
}

/// Snapshot, through its on-disk JSON form, into a fresh engine whose clock
/// starts again at zero, after `downtime`.
fn restart(e: &Engine, config: EngineConfig, downtime: Duration) -> Engine {
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    let mut fresh = Engine::new(config, MonoTime::ZERO);
    fresh.restore(snap, downtime).unwrap();
    fresh
}

fn admin() -> Actor {
    Actor::new("alice", Role::Admin)
}

#[test]
fn a_pause_survives_a_restart_and_still_ends_on_time() {
    let c = cfg(Mode::Aggressive, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    e.operate(
        MonoTime(1_000),
        &admin(),
        OperatorCommand::Pause {
            service: None,
            kind: None,
            duration: Some(Duration::from_secs(3600)),
            reason: "maintenance".into(),
        },
    )
    .unwrap();
    drain(&mut e);
    // medic is away for 10 minutes; its new clock starts at zero.
    let mut e = restart(&e, c, Duration::from_secs(600));
    let (n, _) = drain(&mut e);
    assert!(matches!(
        n.as_slice(),
        [Notice::StateRestored { pauses: 1, .. }]
    ));
    let until = e.pauses()[0].until.unwrap();
    // A 3600 s pause from t=1 s; the snapshot was taken at t=1 s and medic
    // was away 600 s, so 3000 s are left when the new clock starts at zero.
    assert_eq!(until, MonoTime(3_000_000));
    for t in [0, 1_000, 2_000] {
        fail(&mut e, 5_000 + t);
    }
    let (_, cmds) = drain(&mut e);
    assert_eq!(
        runs(&cmds),
        0,
        "a paused service was acted on after a restart"
    );
    e.handle_timeout(until);
    let (n, cmds) = drain(&mut e);
    assert!(n.iter().any(|n| matches!(n, Notice::PauseExpired { .. })));
    assert_eq!(runs(&cmds), 1, "the heal runs once the pause ends");
}

#[test]
fn a_pending_approval_survives_a_restart() {
    let c = cfg(Mode::Conservative, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    drain(&mut e);
    assert_eq!(e.pending_approvals().len(), 1);
    let mut e = restart(&e, c, Duration::from_secs(5));
    drain(&mut e);
    let pending = e.pending_approvals();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "apr-1");
    assert_eq!(e.open_incidents().len(), 1, "the incident is carried on");
    e.operate(
        MonoTime(1_000),
        &admin(),
        OperatorCommand::Approve { id: "apr-1".into() },
    )
    .unwrap();
    let (_, cmds) = drain(&mut e);
    assert_eq!(runs(&cmds), 1);
}

#[test]
fn a_spent_budget_stays_spent_across_a_restart() {
    let mut p = policy();
    p.restart_budget = 1;
    p.cooldown = Duration::ZERO;
    p.verify_window = Duration::from_secs(5);
    let c = cfg(Mode::Aggressive, p);
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    e.handle_input(
        MonoTime(2_500),
        Input::ActionOutcome {
            id: ActionId(1),
            result: Ok("restarted".into()),
        },
    );
    ok(&mut e, 3_000);
    ok(&mut e, 3_500);
    let (_, cmds) = drain(&mut e);
    assert_eq!(runs(&cmds), 1);
    assert!(e.open_incidents().is_empty());
    let mut e = restart(&e, c.clone(), Duration::from_secs(60));
    drain(&mut e);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, 1_000 + t);
    }
    let (n, cmds) = drain(&mut e);
    assert_eq!(runs(&cmds), 0, "the budget was spent before the restart");
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::IncidentEscalated {
            reason_code: ReasonCode::RestartBudget,
            ..
        }
    )));
    // Without the snapshot the same failures would have been acted on.
    let mut fresh = Engine::new(c, MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut fresh, 1_000 + t);
    }
    assert_eq!(runs(&drain(&mut fresh).1), 1);
}

#[test]
fn an_action_in_flight_is_verified_after_a_restart_not_run_again() {
    let c = cfg(Mode::Aggressive, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    assert_eq!(runs(&drain(&mut e).1), 1);
    // medic dies while the restart runs.
    let mut e = restart(&e, c, Duration::from_secs(3));
    let (n, cmds) = drain(&mut e);
    assert_eq!(runs(&cmds), 0);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::ActionReconciled {
            resolution: "verify",
            ..
        }
    )));
    assert_eq!(e.phase("web"), Some(Phase::Verifying));
    // The old execution's outcome may still arrive: recorded, nothing changes.
    e.handle_input(
        MonoTime(100),
        Input::ActionOutcome {
            id: ActionId(1),
            result: Ok("done".into()),
        },
    );
    let (n, _) = drain(&mut e);
    assert!(matches!(
        n.as_slice(),
        [Notice::ActionOutcomeUnmatched { .. }]
    ));
    ok(&mut e, 1_000);
    ok(&mut e, 2_000);
    let (n, _) = drain(&mut e);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::IncidentResolved {
            outcome: IncidentOutcome::Healed,
            ..
        }
    )));
    // New action ids never collide with those from before the restart.
    for t in [3_000, 4_000, 5_000] {
        fail(&mut e, 400_000 + t);
    }
    let ids: Vec<ActionId> = drain(&mut e)
        .1
        .iter()
        .filter_map(|c| match c {
            Command::RunAction(r) => Some(r.id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![ActionId(2)]);
}

#[test]
fn disabled_autoheal_and_the_mass_latch_survive_a_restart() {
    let mut p = policy();
    p.verify_window = Duration::from_secs(1);
    p.cooldown = Duration::ZERO;
    let c = cfg(Mode::Aggressive, p);
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    let mut t = 0;
    for id in 1..=3u64 {
        for _ in 0..3 {
            fail(&mut e, t);
            t += 100;
        }
        e.handle_input(
            MonoTime(t),
            Input::ActionOutcome {
                id: ActionId(id),
                result: Ok("done".into()),
            },
        );
        t += 2_000;
        e.handle_timeout(MonoTime(t));
    }
    drain(&mut e);
    assert!(e.autoheal_disabled("web"));
    let e = restart(&e, c, Duration::from_secs(1));
    assert!(e.autoheal_disabled("web"));
}

#[test]
fn a_snapshot_of_another_version_is_refused() {
    let c = cfg(Mode::Aggressive, policy());
    let e = Engine::new(c.clone(), MonoTime::ZERO);
    let mut v: serde_json::Value = serde_json::to_value(e.snapshot()).unwrap();
    v["version"] = serde_json::json!(SNAPSHOT_VERSION + 1);
    let snap: Snapshot = serde_json::from_value(v).unwrap();
    let mut fresh = Engine::new(c, MonoTime::ZERO);
    assert!(matches!(
        fresh.restore(snap, Duration::ZERO),
        Err(RestoreError::Version { .. })
    ));
}

#[test]
fn a_restart_keeps_the_more_restrictive_service_mode() {
    let c = cfg(Mode::Aggressive, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    e.operate(
        MonoTime(1),
        &admin(),
        OperatorCommand::SetMode {
            service: Some("web".into()),
            mode: Mode::Conservative,
        },
    )
    .unwrap();
    // Set at run time, no mode in the config: it survives.
    let restored = restart(&e, c.clone(), Duration::ZERO);
    assert_eq!(restored.effective_mode("web"), Some(Mode::Conservative));
    // The config now says dry-run for the service: the stricter one holds.
    let mut stricter = c;
    stricter.services[0].mode = Some(Mode::DryRun);
    let restored = restart(&e, stricter, Duration::ZERO);
    assert_eq!(restored.effective_mode("web"), Some(Mode::DryRun));
}

/// An action's outcome applies to the incident it was run for only: after
/// an operator resolved that incident and a newer one opened, the late
/// outcome is recorded but does not put the newer incident into verification.
#[test]
fn a_late_outcome_does_not_move_a_newer_incident() {
    let mut p = policy();
    p.cooldown = Duration::from_secs(3600);
    let c = cfg(Mode::Aggressive, p);
    let mut e = Engine::new(c, MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    assert_eq!(runs(&drain(&mut e).1), 1);
    e.operate(
        MonoTime(3_000),
        &admin(),
        OperatorCommand::ResolveIncident {
            id: "inc-t-1".into(),
            reason: "fixed by hand".into(),
        },
    )
    .unwrap();
    for t in [4_000, 5_000, 6_000] {
        fail(&mut e, t);
    }
    drain(&mut e);
    assert_eq!(e.open_incidents()[0].id.0, "inc-t-2");
    e.handle_input(
        MonoTime(7_000),
        Input::ActionOutcome {
            id: ActionId(1),
            result: Ok("restarted".into()),
        },
    );
    let (n, _) = drain(&mut e);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::ActionOutcome { incident: Some(i), .. } if i.0 == "inc-t-1"
    )));
    assert_ne!(e.phase("web"), Some(Phase::Verifying));
}

fn diagnosis(service: &str, confidence: u8, victims: &[&str]) -> Input {
    Input::Diagnosis(DiagnosisReport {
        hypotheses: vec![
            Hypothesis {
                service: service.into(),
                signal: "latency".into(),
                pattern: "dependency_slow".into(),
                confidence,
                prior: 0.8,
                evidence: 0.7,
                learned: 0.6,
                victims: victims.iter().map(|v| v.to_string()).collect(),
                evidence_text: "latency 12x its median".into(),
            },
            Hypothesis {
                service: "web".into(),
                signal: "healthz".into(),
                pattern: "crash".into(),
                confidence: 20,
                prior: 0.5,
                evidence: 0.2,
                learned: 0.5,
                victims: vec![],
                evidence_text: "exited".into(),
            },
        ],
    })
}

#[test]
fn the_diagnosis_survives_a_restart() {
    let c = cfg(Mode::Conservative, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    e.handle_input(MonoTime(2_500), diagnosis("web", 64, &[]));
    drain(&mut e);
    let id = e.open_incidents()[0].id.0.clone();
    let before = e.explain(&id).unwrap().hypotheses;
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].confidence, 64);
    let snap_before = serde_json::to_value(e.snapshot()).unwrap();
    assert_eq!(snap_before["version"], SNAPSHOT_VERSION);

    let mut e = restart(&e, c.clone(), Duration::from_secs(5));
    drain(&mut e);
    // The ranked hypotheses with their confidence and parts.
    assert_eq!(e.explain(&id).unwrap().hypotheses, before);
    // The engine's latest report and each service's gate.
    let snap_after = serde_json::to_value(e.snapshot()).unwrap();
    assert_eq!(snap_after["last_diagnosis"], snap_before["last_diagnosis"]);
    assert_eq!(
        snap_after["services"][0]["diagnosis"],
        serde_json::json!({"confidence": 64, "upstream": null})
    );

    // A victim's hold survives too: web is explained by an upstream db.
    let mut e2 = Engine::new(c.clone(), MonoTime::ZERO);
    e2.handle_input(MonoTime(0), diagnosis("db", 95, &["web"]));
    let e2 = restart(&e2, c, Duration::from_secs(1));
    let v = serde_json::to_value(e2.snapshot()).unwrap();
    assert_eq!(
        v["services"][0]["diagnosis"],
        serde_json::json!({"confidence": 0, "upstream": 95})
    );
}

#[test]
fn a_version_1_snapshot_without_a_diagnosis_still_restores() {
    let c = cfg(Mode::Conservative, policy());
    let mut e = Engine::new(c.clone(), MonoTime::ZERO);
    for t in [0, 1_000, 2_000] {
        fail(&mut e, t);
    }
    drain(&mut e);
    let mut v = serde_json::to_value(e.snapshot()).unwrap();
    v["version"] = serde_json::json!(1);
    v.as_object_mut().unwrap().remove("last_diagnosis");
    for s in v["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("diagnosis");
        if let Some(inc) = s["incident"].as_object_mut() {
            inc.remove("hypotheses");
        }
    }
    let snap: Snapshot = serde_json::from_value(v).unwrap();
    let mut fresh = Engine::new(c, MonoTime::ZERO);
    fresh.restore(snap, Duration::ZERO).unwrap();
    assert_eq!(fresh.open_incidents().len(), 1);
    assert_eq!(fresh.pending_approvals().len(), 1);
}
