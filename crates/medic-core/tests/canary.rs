#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Staged canaries (issue 10) in the engine: 10 % → judge → 50 % → judge →
//! 100 %, a failed judge rolls the changed instances back and escalates,
//! missing samples fail at the deadline.
mod common;
use std::time::Duration;

use medic_core::medic_canary::{MetricSamples, Outcome};
use medic_core::*;

fn names() -> Vec<String> {
    (0..10).map(|i| format!("web-{i}")).collect()
}

fn engine() -> Engine {
    engine_with(|_| {})
}

fn engine_with(tune: impl FnOnce(&mut CanaryPlan)) -> Engine {
    let spec = ServiceSpec {
        name: "web".into(),
        startup: StartupSpec {
            grace: Duration::ZERO,
        },
        mode: None,
        probes: vec![ProbeSpec {
            name: "healthz".into(),
            failure: FailureRule {
                consecutive: 1,
                within: Duration::from_secs(60),
            },
            latency: None,
            recovery: RecoveryRule { consecutive: 1 },
            event: false,
        }],
        actions: vec![
            ActionSpec {
                name: "change".into(),
                kind: ActionKind::Exec,
                risk: Some(Risk::Medium),
                revert: Some(RevertSpec {
                    action: "undo".into(),
                    after: Duration::from_secs(3600),
                    green_checks: None,
                    green_probe: None,
                }),
                verify: None,
            },
            ActionSpec {
                name: "undo".into(),
                kind: ActionKind::Exec,
                risk: Some(Risk::Low),
                revert: None,
                verify: None,
            },
        ],
        remediations: vec![Remediation {
            probe: "healthz".into(),
            condition: Condition::Failing,
            action: "change".into(),
        }],
        policy: ServicePolicy {
            verify_window: Duration::from_secs(30),
            ..ServicePolicy::default()
        },
    };
    let mut gov = GovernanceConfig::default();
    gov.services.insert(
        "web".into(),
        ServiceGovernance {
            instances: 10,
            ..ServiceGovernance::default()
        },
    );
    let mut plan = CanaryPlan::new(names());
    plan.window = Duration::from_secs(5);
    plan.grace = Duration::from_secs(5);
    tune(&mut plan);
    gov.canaries.insert("web".into(), plan);
    common::engine_of(1, Mode::Aggressive, vec![spec], gov)
}

fn drain(e: &mut Engine) -> (Vec<Notice>, Vec<Command>) {
    let mut n = Vec::new();
    while let Some(x) = e.poll_notice() {
        n.push(x);
    }
    let mut c = Vec::new();
    while let Some(x) = e.poll_command() {
        c.push(x);
    }
    (n, c)
}

fn run_action(c: &[Command]) -> ActionRequest {
    c.iter()
        .find_map(|c| match c {
            Command::RunAction(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a RunAction")
}

fn window(c: &[Command]) -> CanaryWindow {
    c.iter()
        .find_map(|c| match c {
            Command::CollectCanary(w) => Some(w.clone()),
            _ => None,
        })
        .expect("a CollectCanary")
}

fn samples(stage: u32, canary_ms: f64) -> CanarySamples {
    let spread = |c: f64, n: usize| -> Vec<f64> {
        (0..n).map(|i| c + ((i * 37) % 11) as f64 - 5.0).collect()
    };
    CanarySamples {
        service: "web".into(),
        stage,
        metrics: vec![
            MetricSamples {
                metric: CanaryPlan::LATENCY.into(),
                canary: spread(canary_ms, 30),
                baseline: spread(20.0, 90),
            },
            MetricSamples {
                metric: CanaryPlan::ERRORS.into(),
                canary: vec![0.0; 30],
                baseline: vec![0.0; 90],
            },
        ],
    }
}

fn at(s: u64) -> MonoTime {
    MonoTime::ZERO.plus(Duration::from_secs(s))
}

fn open_incident(e: &mut Engine) -> ActionRequest {
    e.handle_input(
        at(1),
        Input::Probe(ProbeReport {
            service: "web".into(),
            probe: "healthz".into(),
            ok: false,
            latency: Duration::from_millis(5),
            failure: Some(ProbeFailure::BadStatus(500)),
            detail: "500".into(),
        }),
    );
    let (n, c) = drain(e);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::CanaryStage {
            stage: 1,
            percent: 10,
            ..
        }
    )));
    run_action(&c)
}

#[test]
fn a_good_change_goes_ten_fifty_hundred_percent() {
    let mut e = engine();
    let r = open_incident(&mut e);
    assert_eq!(r.stage, ActionStage::Canary);
    assert_eq!(r.instances, vec!["web-0".to_string()]);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    let (_, c) = drain(&mut e);
    let w = window(&c);
    assert_eq!((w.stage, w.canary.len(), w.baseline.len()), (1, 1, 9));
    assert_eq!(w.window, Duration::from_secs(5));
    e.handle_input(at(7), Input::CanarySamples(samples(1, 20.0)));
    let (n, c) = drain(&mut e);
    let v = n
        .iter()
        .find_map(|n| match n {
            Notice::CanaryVerdict {
                verdict, stage: 1, ..
            } => Some(verdict.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.explanation);
    let r = run_action(&c);
    assert_eq!(r.stage, ActionStage::Canary);
    assert_eq!(r.instances, names()[1..5].to_vec(), "50 %: four more");
    e.handle_input(
        at(8),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    let (_, c) = drain(&mut e);
    let w = window(&c);
    assert_eq!((w.stage, w.canary.len(), w.baseline.len()), (2, 5, 5));
    e.handle_input(at(13), Input::CanarySamples(samples(2, 20.0)));
    let (_, c) = drain(&mut e);
    let r = run_action(&c);
    assert_eq!(r.stage, ActionStage::Rollout);
    assert_eq!(r.instances, names()[5..].to_vec(), "100 %: the rest");
    e.handle_input(
        at(14),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    let inc = e.open_incidents().into_iter().next().unwrap();
    assert_eq!(inc.phase, Phase::Verifying);
    let ex = e.explain(&inc.id.0).unwrap();
    assert_eq!(ex.canary.len(), 2);
    assert!(ex.canary.iter().all(|c| c.verdict.outcome == Outcome::Pass));
    // Healed; its revert, an hour later, undoes every changed instance.
    e.handle_input(
        at(15),
        Input::Probe(ProbeReport {
            service: "web".into(),
            probe: "healthz".into(),
            ok: true,
            latency: Duration::from_millis(5),
            failure: None,
            detail: String::new(),
        }),
    );
    let (n, _) = drain(&mut e);
    assert!(n
        .iter()
        .any(|n| matches!(n, Notice::IncidentResolved { .. })));
    e.handle_timeout(at(15 + 3600));
    let (_, c) = drain(&mut e);
    let r = run_action(&c);
    assert_eq!((r.action.as_str(), r.stage), ("undo", ActionStage::Revert));
    assert_eq!(r.instances, names());
}

#[test]
fn a_bad_change_stops_at_ten_percent_and_is_rolled_back() {
    let mut e = engine();
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    e.handle_input(at(7), Input::CanarySamples(samples(1, 2020.0)));
    let (n, c) = drain(&mut e);
    let v = n
        .iter()
        .find_map(|n| match n {
            Notice::CanaryVerdict { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(v.outcome, Outcome::Fail);
    let lat = &v.metrics[0];
    assert!(lat.test.p_value < 0.02 && lat.effect > 1900.0, "{lat}");
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::IncidentEscalated {
            reason_code: ReasonCode::CanaryFailed,
            ..
        }
    )));
    let r = run_action(&c);
    assert_eq!(r.action, "undo");
    assert_eq!(r.stage, ActionStage::Rollback);
    assert_eq!(
        r.instances,
        vec!["web-0".to_string()],
        "only the changed instance"
    );
    assert!(
        !c.iter()
            .any(|c| matches!(c, Command::RunAction(r) if r.action == "change")),
        "never reaches 50 %"
    );
}

#[test]
fn no_samples_by_the_deadline_fail_the_canary() {
    let mut e = engine();
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    // Late samples of a stage that is no longer judged are ignored.
    assert_eq!(e.poll_timeout(), Some(at(12)));
    e.handle_timeout(at(12));
    let (n, c) = drain(&mut e);
    let v = n
        .iter()
        .find_map(|n| match n {
            Notice::CanaryVerdict { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(v.metrics.iter().all(|m| m.n_canary == 0));
    assert_eq!(run_action(&c).action, "undo");
    e.handle_input(at(13), Input::CanarySamples(samples(1, 20.0)));
    let (n, c) = drain(&mut e);
    assert!(!n.iter().any(|n| matches!(n, Notice::CanaryVerdict { .. })));
    assert!(c.iter().all(|c| !matches!(c, Command::RunAction(_))));
}

#[test]
fn a_marginal_verdict_is_judged_again_then_fails() {
    // Two metrics; one worse gives a score of 0.5: marginal here.
    let mut e = engine_with(|p| p.judge.marginal_score = 0.5);
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    e.handle_input(at(7), Input::CanarySamples(samples(1, 2020.0)));
    let (n, c) = drain(&mut e);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::CanaryVerdict { verdict, .. } if verdict.outcome == Outcome::Marginal
    )));
    let w = window(&c);
    assert_eq!(
        (w.stage, w.canary.len()),
        (1, 1),
        "the same stage, sampled again"
    );
    assert!(c.iter().all(|c| !matches!(c, Command::RunAction(_))));
    e.handle_input(at(13), Input::CanarySamples(samples(1, 2020.0)));
    let (n, c) = drain(&mut e);
    assert!(n.iter().any(|n| matches!(
        n,
        Notice::IncidentEscalated {
            reason_code: ReasonCode::CanaryFailed,
            ..
        }
    )));
    let r = run_action(&c);
    assert_eq!(
        (r.action.as_str(), r.instances.clone()),
        ("undo", vec!["web-0".to_string()])
    );
}

/// medic restarts: the snapshot through its JSON form, a fresh engine whose
/// clock starts at zero, restore.
fn restart(e: &Engine) -> Engine {
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut fresh = engine();
    fresh
        .restore(serde_json::from_str(&json).unwrap(), Duration::from_secs(3))
        .unwrap();
    fresh
}

#[test]
fn a_restart_mid_stage_rolls_the_changed_instances_back() {
    let mut e = engine();
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    e.handle_input(at(7), Input::CanarySamples(samples(1, 20.0)));
    let (_, c) = drain(&mut e);
    let r = run_action(&c);
    assert_eq!(r.instances, names()[1..5].to_vec(), "stage 2 is running");
    // medic is killed while stage 2 runs on web-1..web-4.
    let mut e = restart(&e);
    let (n, c) = drain(&mut e);
    assert!(
        n.iter().any(|n| matches!(
            n,
            Notice::IncidentEscalated {
                reason_code: ReasonCode::CanaryFailed,
                reason,
                ..
            } if reason.contains("interrupted by a medic restart")
        )),
        "{n:#?}"
    );
    let r = run_action(&c);
    assert_eq!(
        (r.action.as_str(), r.stage),
        ("undo", ActionStage::Rollback)
    );
    assert_eq!(
        r.instances,
        names()[..5].to_vec(),
        "every instance the canary changed, none other"
    );
    assert!(
        !c.iter()
            .any(|c| matches!(c, Command::RunAction(r) if r.action == "change")),
        "the stage is not run again"
    );
    // A second restart during the rollback does not start another one.
    let mut e = restart(&e);
    let (_, c) = drain(&mut e);
    assert!(
        c.iter().all(|c| !matches!(c, Command::RunAction(_))),
        "{c:#?}"
    );
}

#[test]
fn a_restart_while_a_stage_is_judged_samples_it_again() {
    let mut e = engine();
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    let (_, c) = drain(&mut e);
    window(&c);
    // medic restarts before the samples of stage 1 come back.
    let mut e = restart(&e);
    let (_, c) = drain(&mut e);
    let w = window(&c);
    assert_eq!(
        (w.stage, w.canary.clone()),
        (1, vec!["web-0".to_string()]),
        "stage 1 is sampled again"
    );
    assert!(c.iter().all(|c| !matches!(c, Command::RunAction(_))));
    // A bad verdict on the new window rolls web-0 back.
    e.handle_input(at(6), Input::CanarySamples(samples(1, 2020.0)));
    let (_, c) = drain(&mut e);
    let r = run_action(&c);
    assert_eq!(
        (r.action.as_str(), r.instances),
        ("undo", vec!["web-0".to_string()])
    );
}

#[test]
fn a_snapshot_without_the_canary_is_still_read() {
    let mut e = engine();
    open_incident(&mut e);
    let mut json: serde_json::Value = serde_json::to_value(e.snapshot()).unwrap();
    for s in json["services"].as_array_mut().unwrap() {
        assert!(s.as_object_mut().unwrap().remove("canary").is_some());
    }
    let mut fresh = engine();
    fresh
        .restore(serde_json::from_value(json).unwrap(), Duration::ZERO)
        .unwrap();
    assert_eq!(fresh.open_incidents().len(), 1);
}

#[test]
fn a_finished_rollback_is_not_run_again_after_a_restart() {
    let mut e = engine();
    let r = open_incident(&mut e);
    e.handle_input(
        at(2),
        Input::ActionOutcome {
            id: r.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    e.handle_input(at(7), Input::CanarySamples(samples(1, 2020.0)));
    let (_, c) = drain(&mut e);
    let undo = run_action(&c);
    assert_eq!(undo.stage, ActionStage::Rollback);
    e.handle_input(
        at(8),
        Input::ActionOutcome {
            id: undo.id,
            result: Ok(String::new()),
        },
    );
    drain(&mut e);
    let mut e = restart(&e);
    let (_, c) = drain(&mut e);
    assert!(
        c.iter().all(|c| !matches!(c, Command::RunAction(_))),
        "{c:#?}"
    );
}
