#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's own tests: many clean scenarios, injected policy bugs
//! caught and shrunk, exact replay.
use medic_core::governance::PolicyFault;
use medic_sim::cli::{bench_figures, run_parallel};
use medic_sim::{run_events, run_many, shrink, Profile, Scenario};

const SEED: u64 = 0x5EED_2026;

/// Issue 5: at least 10,000 scenarios per `cargo test`, zero violations,
/// and the swarm reaches every governance path (so zero means something).
#[test]
fn ten_thousand_scenarios_have_no_violation() {
    let s = run_parallel(SEED, 10_000, Profile::Lite, PolicyFault::None, 2);
    assert_eq!(s.scenarios, 10_000);
    if let Some((k, v)) = &s.first {
        panic!(
            "scenario {k} of seed {SEED}: {} at {}ms: {}\nreplay: medic sim --seed {SEED} --scenario {k} --trace --profile lite",
            v.kind, v.at_ms, v.detail
        );
    }
    assert_eq!(s.violations, 0);
    assert!(s.actions > 10_000, "only {} actions", s.actions);
    for path in [
        "reason:mode_disabled",
        "reason:mode_dry_run",
        "reason:consecutive_failures",
        "reason:mass_incident",
        "reason:paused",
        "reason:frozen",
        "reason:critical_risk",
        "reason:risk_tier",
        "reason:risk_score",
        "reason:cooldown",
        "reason:max_concurrent",
        "reason:max_actions_per_hour",
        "reason:restart_budget",
        "reason:feature_budget",
        "reason:fallback_budget",
        "reason:failed_actions_rate",
        "reason:incident_rate",
        "reason:error_budget",
        "reason:blast_radius",
        "reason:capacity_headroom",
        "reason:approval_expired",
        "reason:approval_rejected",
        "reason:same_approver",
        "reason:cancelled",
        "reason:verify_failed",
        "audit:approval.granted",
        "audit:override",
        "audit:action.cancel_requested",
        "audit:automation.pause_expired",
        "stage:direct",
        "stage:retry",
        "stage:canary",
        "stage:rollout",
        "stage:revert",
        "stage:rollback",
        "stage:forced",
    ] {
        assert!(
            s.coverage.get(path).copied().unwrap_or(0) > 0,
            "the swarm never reached {path}"
        );
    }
}

/// The simulator can fail: each deliberate policy bug is caught with the
/// right invariant, and the shrunk event list still reproduces it.
#[test]
fn injected_policy_bugs_are_caught_and_shrunk() {
    for (fault, kind) in [
        (PolicyFault::IgnorePause, "mode.paused"),
        (PolicyFault::HighWithoutApproval, "approval.missing"),
        (PolicyFault::SkipConcurrencyLimit, "limit.max_concurrent"),
    ] {
        let s = run_many(SEED, 0..3_000, Profile::Lite, fault, true);
        let (k, v) = s
            .first
            .unwrap_or_else(|| panic!("{fault:?} not caught in 3000 scenarios"));
        assert_eq!(v.kind, kind, "{fault:?}: {v:?}");
        let sc = Scenario::generate(SEED, k, Profile::Lite, fault);
        let shrunk = shrink(&sc, kind);
        assert!(shrunk.len() <= sc.events.len());
        let again = run_events(&sc, &shrunk, None);
        assert_eq!(again.violation.map(|v| v.kind), Some(kind));
        // The same scenario with the bug removed is clean.
        let clean = Scenario::generate(SEED, k, Profile::Lite, PolicyFault::None);
        assert_eq!(run_events(&clean, &clean.events, None).violation, None);
    }
}

/// Same seed and scenario, same trace, byte for byte (madsim's
/// run-twice-and-compare); another scenario differs.
#[test]
fn replay_is_exact() {
    let trace = |k: u64| {
        let sc = Scenario::generate(SEED, k, Profile::Lite, PolicyFault::None);
        let mut t = String::new();
        let out = run_events(&sc, &sc.events, Some(&mut t));
        (t, out.steps)
    };
    for k in [3, 17, 99] {
        let (a, sa) = trace(k);
        let (b, sb) = trace(k);
        assert!(!a.is_empty());
        assert_eq!(sa, sb);
        assert!(a == b, "scenario {k} diverged between two runs");
    }
    assert_ne!(trace(3).0, trace(4).0);
}

/// A violating scenario's trace ends at the violation, and shrinking keeps
/// the report small.
#[test]
fn trace_of_a_violation_shows_it() {
    let s = run_many(
        SEED,
        0..3_000,
        Profile::Lite,
        PolicyFault::IgnorePause,
        true,
    );
    let (k, _) = s.first.unwrap();
    let sc = Scenario::generate(SEED, k, Profile::Lite, PolicyFault::IgnorePause);
    let shrunk = shrink(&sc, "mode.paused");
    let mut t = String::new();
    let out = run_events(&sc, &shrunk, Some(&mut t));
    let v = out.violation.unwrap();
    let last_run = t.lines().rev().find(|l| l.contains("< run ")).unwrap();
    assert!(
        v.detail
            .contains(last_run.split_whitespace().nth(3).unwrap()),
        "{v:?} / {last_run}"
    );
    assert!(
        t.contains("Pause"),
        "the shrunk trace keeps the pause:\n{t}"
    );
}

#[test]
fn summary_does_not_depend_on_thread_count() {
    let a = run_parallel(SEED, 300, Profile::Lite, PolicyFault::None, 1);
    let b = run_parallel(SEED, 300, Profile::Lite, PolicyFault::None, 3);
    assert_eq!(
        (a.scenarios, a.steps, a.actions, a.incidents, a.violations),
        (b.scenarios, b.steps, b.actions, b.incidents, b.violations)
    );
    assert_eq!(a.coverage, b.coverage);
}

/// Issue 5 goal: gate+limit evaluation under 50 µs per planned action
/// (even in a debug build).
#[test]
fn gate_evaluation_is_under_50_microseconds() {
    let f = bench_figures(200_000);
    assert!(f.decide_ns < 50_000.0, "{f:?}");
    assert!(f.engine_plan_ns < 50_000.0, "{f:?}");
}
