#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's own tests: many clean scenarios, injected policy bugs
//! caught and shrunk, exact replay.
use medic_core::governance::PolicyFault;
use medic_core::{Mode, Risk, Role};
use medic_sim::check::default_tier;
use medic_sim::cli::run_parallel;
use medic_sim::{
    reproduces, run_events, run_many, shrink, Event, EventKind, FaultKind, OpEvent, Profile,
    Scenario,
};

const SEED: u64 = 0x5EED_2026;

/// Issue 5: at least 10,000 scenarios per `cargo test`, zero violations,
/// and the swarm reaches every governance path, medic restarts with
/// something at stake, and the configurations the checker must resolve
/// itself (so zero means something).
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
    assert!(s.restarts > 10_000, "only {} restarts", s.restarts);
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
        "reason:forbidden",
        "reason:cancelled",
        "reason:verify_failed",
        "audit:approval.granted",
        "audit:override",
        "audit:action.cancel_requested",
        "audit:automation.pause_expired",
        "audit:automation.mass_latched",
        "audit:state.restored",
        "audit:action.reconciled",
        "audit:action.outcome_unmatched",
        "stage:direct",
        "stage:retry",
        "stage:canary",
        "stage:rollout",
        "stage:revert",
        "stage:rollback",
        "stage:forced",
        // What the checkers verified, not just what the engine did.
        "check:explain",
        "check:forced",
        "check:role_refused",
        "check:approval_required_and_given",
        "check:high_by_class_default",
        "check:restart_budget_class_from_kind",
        "check:restart_with_pause",
        "check:restart_with_inflight",
        "check:restart_with_pending_approval",
        "check:late_outcome",
    ] {
        assert!(
            s.coverage.get(path).copied().unwrap_or(0) > 0,
            "the swarm never reached {path}"
        );
    }
}

/// The simulator can fail: each deliberate policy bug is caught within
/// 10,000 scenarios by the invariant it breaks, and shrinking gives a
/// reproducer that still fails when replayed and from which no single event
/// can be removed (so it is strictly shorter whenever the original could be
/// shrunk at all).
#[test]
fn injected_policy_bugs_are_caught_and_shrunk() {
    for (fault, kinds) in [
        (PolicyFault::IgnorePause, &["mode.paused"][..]),
        (PolicyFault::HighWithoutApproval, &["approval.missing"][..]),
        (
            PolicyFault::SkipConcurrencyLimit,
            &["limit.max_concurrent"][..],
        ),
        // The tier an exec failover gets from its class: run without the
        // approvals it needs, or recorded with the kind's tier.
        (
            PolicyFault::TierFromKind,
            &["approval.missing", "risk.tier"][..],
        ),
        (PolicyFault::ForgetPausesOnRestore, &["mode.paused"][..]),
    ] {
        let s = run_many(SEED, 0..10_000, Profile::Lite, fault, true);
        let (k, v) = s
            .first
            .unwrap_or_else(|| panic!("{fault:?} not caught in 10,000 scenarios"));
        assert!(kinds.contains(&v.kind), "{fault:?}: {v:?}");
        eprintln!(
            "{fault:?}: caught by {} in scenario {k} ({} scenarios)",
            v.kind,
            k + 1
        );
        let sc = Scenario::generate(SEED, k, Profile::Lite, fault);
        let shrunk = shrink(&sc, v.kind);
        // A subsequence of the original events ...
        let mut rest = sc.events.iter();
        assert!(
            shrunk.iter().all(|e| rest.any(|o| o == e)),
            "{fault:?}: the shrunk events are not taken from the scenario"
        );
        // ... that still fails the same way ...
        assert!(
            reproduces(&sc, &shrunk, v.kind),
            "{fault:?}: shrunk trace passes"
        );
        // ... and is 1-minimal: without any one of its events it passes.
        for i in 0..shrunk.len() {
            let mut fewer = shrunk.clone();
            let dropped = fewer.remove(i);
            assert!(
                !reproduces(&sc, &fewer, v.kind),
                "{fault:?}: still fails without event {i} ({dropped:?}); not shrunk"
            );
        }
        match fault {
            PolicyFault::ForgetPausesOnRestore => {
                let has = |f: &dyn Fn(&EventKind) -> bool| shrunk.iter().any(|e| f(&e.kind));
                assert!(
                    has(&|k| matches!(k, EventKind::Restart { .. })),
                    "{shrunk:?}"
                );
                assert!(
                    has(&|k| matches!(k, EventKind::Op(OpEvent::Pause(..), _))),
                    "{shrunk:?}"
                );
            }
            PolicyFault::TierFromKind => {
                // Some service's heal is HIGH only through its class.
                let gov = &sc.config.governance;
                assert!(sc.config.services.iter().any(|svc| {
                    svc.actions.iter().any(|a| {
                        a.risk.is_none()
                            && gov
                                .services
                                .get(&svc.name)
                                .and_then(|g| g.actions.get(&a.name))
                                .and_then(|g| g.class)
                                .is_some_and(|c| default_tier(c) >= Risk::High)
                    })
                }));
            }
            _ => {}
        }
        // The same scenario with the bug removed is clean.
        let clean = Scenario::generate(SEED, k, Profile::Lite, PolicyFault::None);
        assert_eq!(run_events(&clean, &clean.events, None).violation, None);
    }
}

/// `TierFromKind` is caught by the approval rule alone (the recorded-tier
/// check switched off): an action HIGH or CRITICAL by its class runs without
/// the approvals its tier needs.
#[test]
fn tier_from_kind_is_caught_by_the_approval_rule_alone() {
    let fault = PolicyFault::TierFromKind;
    let found = (0..10_000u64).find_map(|k| {
        let mut sc = Scenario::generate(SEED, k, Profile::Lite, fault);
        sc.opts.check_records = false;
        let v = run_events(&sc, &sc.events, None).violation?;
        Some((k, sc, v))
    });
    let (k, sc, v) = found.unwrap_or_else(|| panic!("not caught in 10,000 scenarios"));
    eprintln!(
        "TierFromKind (records unchecked): caught by {} in scenario {k} ({} scenarios): {}",
        v.kind,
        k + 1,
        v.detail
    );
    assert!(v.kind.starts_with("approval."), "{v:?}");
    assert!(v.detail.contains("from class"), "{v:?}");
    let shrunk = shrink(&sc, v.kind);
    assert!(reproduces(&sc, &shrunk, v.kind));
    for i in 0..shrunk.len() {
        let mut fewer = shrunk.clone();
        fewer.remove(i);
        assert!(!reproduces(&sc, &fewer, v.kind), "not 1-minimal at {i}");
    }
}

/// A pause set before a restart holds after it: a hand-made scenario
/// (pause for an hour, a crash, medic away for 30 s with a fresh clock) is
/// clean, and with pauses dropped on restore the fix runs while paused.
#[test]
fn a_pause_holds_across_a_restart() {
    let make = |fault: PolicyFault| {
        let mut sc = Scenario::generate(SEED, 0, Profile::Lite, fault);
        sc.opts.safety_ms = 1_800_000;
        sc.opts.noise = 0.0;
        sc.config.mode = Mode::Aggressive;
        let gov = &mut sc.config.governance;
        gov.gates.mass_incident_services = 10;
        for svc in sc.config.services.iter_mut() {
            svc.mode = None;
            for a in svc.actions.iter_mut() {
                a.risk = Some(Risk::Low);
            }
            if let Some(g) = gov.services.get_mut(&svc.name) {
                g.criticality = 0.1;
                g.instances = 1;
            }
        }
        sc.events = vec![
            Event {
                at: 60_000,
                kind: EventKind::Op(OpEvent::Pause(None, None, Some(3_600_000)), Role::Operator),
            },
            Event {
                at: 120_000,
                kind: EventKind::Fault(0, FaultKind::Crash),
            },
            Event {
                at: 600_000,
                kind: EventKind::Restart {
                    downtime_ms: 30_000,
                    epoch_ms: Some(0),
                },
            },
        ];
        sc
    };
    let clean = make(PolicyFault::None);
    let mut trace = String::new();
    let out = run_events(&clean, &clean.events, Some(&mut trace));
    assert_eq!(out.violation, None, "{trace}");
    assert_eq!(out.restarts, 1);
    assert!(trace.contains(" held paused"), "{trace}");
    // Nothing runs until the liveness phase resumes automation at 1800 s.
    let first_run = trace
        .lines()
        .find(|l| l.contains("< run "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| {
            t.trim_start_matches("t=")
                .trim_end_matches('s')
                .parse::<f64>()
                .ok()
        });
    assert!(
        first_run.is_some_and(|t| t >= 1800.0),
        "{first_run:?}\n{trace}"
    );
    let buggy = make(PolicyFault::ForgetPausesOnRestore);
    let v = run_events(&buggy, &buggy.events, None).violation;
    assert_eq!(v.map(|v| v.kind), Some("mode.paused"));
}

/// The checker's own class table agrees with the tiers as medic-core
/// states them (a disagreement is also caught by `risk.tier` in the swarm).
#[test]
fn the_checker_table_matches_the_documented_tiers() {
    for row in medic_core::CLASS_TABLE {
        assert_eq!(default_tier(row.class), row.default_risk, "{}", row.name);
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
