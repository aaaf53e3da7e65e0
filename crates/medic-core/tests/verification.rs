#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scenario tables for issue 10: a change verified against its baseline
//! (better → resolved; worse → undo + escalate; not better by the end of
//! the window → undo + escalate; the undo fails → escalate and automation
//! off), and the executor circuit breaker.
mod common;
use std::time::Duration;

use common::*;
use medic_core::{Engine, GovernanceConfig, Mode, ServicePolicy, VerifySpec};

/// The `web` service whose slow-latency remediation `shed` is a change
/// verified over a 20s window (undo: `unshed`).
fn change_engine(gov: GovernanceConfig) -> Engine {
    let mut svc = web_service(policy());
    for a in &mut svc.actions {
        if a.name == "shed" {
            a.verify = Some(VerifySpec {
                window: Some(Duration::from_secs(20)),
                ..VerifySpec::default()
            });
        }
    }
    engine_of(42, Mode::Aggressive, vec![svc], gov)
}

/// The trigger: two slow answers (latency rule `over 1s`, 2 in a row).
const SLOW: &str = "0s probe web healthz ok 1500ms
     1s probe web healthz ok 1500ms
     2s outcome 1 ok";

const OPENED: &str = "t=0s phase detecting_failure
     t=1s audit incident.opened
     t=1s audit diagnosis
     t=1s audit action.intent attempt=1 stage=direct
     t=1s audit verify.baseline
     t=1s run act-1 web shed attempt=0
     t=1s phase executing_heal
     t=2s audit action.outcome status=succeeded stage=direct
     t=2s phase verifying";

fn script(rest: &str) -> String {
    format!("{SLOW}\n{rest}")
}

fn want(rest: &str) -> String {
    format!("{OPENED}\n{rest}")
}

#[test]
fn better_than_the_baseline_resolves() {
    check_v(
        change_engine(GovernanceConfig::default()),
        &script(
            "3s probe web healthz ok 100ms
             4s probe web healthz ok 100ms
             14s tick",
        ),
        &want(
            "t=4s audit verify.judged judgement=better
             t=4s audit verify.passed
             t=4s audit incident.resolved outcome=healed
             t=4s phase monitoring
             t=14s audit action.intent attempt=1 stage=revert
             t=14s run act-2 web unshed attempt=0",
        ),
    );
}

#[test]
fn worse_than_the_baseline_is_undone_and_escalated() {
    check_v(
        change_engine(GovernanceConfig::default()),
        &script(
            "3s probe web healthz ok 3000ms
             4s probe web healthz ok 3000ms
             5s probe web healthz ok 3000ms
             6s outcome 2 ok",
        ),
        &want(
            "t=5s audit verify.judged reason_code=verify_worse judgement=worse_latency
             t=5s audit verify.failed
             t=5s audit incident.escalated reason_code=verify_worse
             t=5s audit action.intent attempt=1 stage=rollback
             t=5s notify critical web: escalated to a human
             t=5s run act-2 web unshed attempt=0
             t=5s phase manual_intervention
             t=6s audit action.outcome status=succeeded stage=rollback",
        ),
    );
}

#[test]
fn more_failures_than_the_baseline_are_worse() {
    check_v(
        change_engine(GovernanceConfig::default()),
        &script(
            "3s probe web healthz fail 500
             4s probe web healthz fail 500
             5s probe web healthz fail 500",
        ),
        &want(
            "t=5s audit verify.judged reason_code=verify_worse judgement=worse_failures
             t=5s audit verify.failed
             t=5s audit incident.escalated reason_code=verify_worse
             t=5s audit action.intent attempt=1 stage=rollback
             t=5s notify critical web: escalated to a human
             t=5s run act-2 web unshed attempt=0
             t=5s phase manual_intervention",
        ),
    );
}

#[test]
fn not_better_by_the_end_of_the_window_is_undone_and_escalated() {
    check_v(
        change_engine(GovernanceConfig::default()),
        &script(
            "5s probe web healthz ok 1500ms
             10s probe web healthz ok 1450ms
             15s probe web healthz ok 1500ms
             21s tick
             22s tick",
        ),
        &want(
            "t=22s audit verify.judged reason_code=verify_not_better judgement=not_better
             t=22s audit verify.failed
             t=22s audit incident.escalated reason_code=verify_not_better
             t=22s audit action.intent attempt=1 stage=rollback
             t=22s notify critical web: escalated to a human
             t=22s run act-2 web unshed attempt=0
             t=22s phase manual_intervention",
        ),
    );
}

#[test]
fn a_failed_undo_escalates_and_disables_automation() {
    let trace = run_with(
        change_engine(GovernanceConfig::default()),
        &script(
            "3s probe web healthz ok 3000ms
             4s probe web healthz ok 3000ms
             5s probe web healthz ok 3000ms
             6s outcome 2 fail",
        ),
        true,
    );
    let tail: Vec<&str> = trace
        .lines()
        .skip_while(|l| !l.starts_with("t=6s"))
        .collect();
    assert_eq!(
        tail,
        [
            "t=6s audit action.outcome status=failed stage=rollback",
            "t=6s audit autoheal.disabled reason_code=undo_failed",
            "t=6s notify critical web: undo of shed failed",
        ],
        "{trace}"
    );
}

#[test]
fn a_failed_undo_of_a_still_open_incident_escalates_it() {
    // Not better at the end, undo fails: already escalated (once), automation off.
    let trace = run_with(
        change_engine(GovernanceConfig::default()),
        &script(
            "5s probe web healthz ok 1500ms
             22s tick
             23s outcome 2 fail
             24s probe web healthz ok 1500ms
             25s probe web healthz ok 1500ms",
        ),
        true,
    );
    assert_eq!(trace.matches("incident.escalated").count(), 1, "{trace}");
    assert!(
        trace.contains("t=23s audit autoheal.disabled reason_code=undo_failed"),
        "{trace}"
    );
    // No further action is run for the service.
    assert!(!trace.contains("act-3"), "{trace}");
}

/// Consecutive failed executions open the target's breaker; while open,
/// the action is refused with `breaker_open` and escalated; after the
/// cool-down one trial runs (half-open) and its success closes it.
#[test]
fn executor_breaker_opens_refuses_and_closes_after_a_good_trial() {
    let mut gov = GovernanceConfig::default();
    gov.breaker.failures = 2;
    gov.breaker.cooldown = Duration::from_secs(60);
    gov.limits.max_consecutive_failures = 10;
    gov.gates.max_failed_actions_per_hour = 10;
    let p = ServicePolicy {
        restart_budget: 10,
        cooldown: Duration::ZERO,
        ..policy()
    };
    check_v(
        engine_with(Mode::Aggressive, p, gov),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 fail
         5s tick
         6s outcome 2 fail
         10s tick
         11s probe web healthz ok
         12s probe web healthz ok
         20s probe web healthz fail exited
         21s probe web healthz fail exited
         22s probe web healthz fail exited
         30s resolve inc-t-2
         70s probe web healthz fail exited
         71s probe web healthz fail exited
         72s probe web healthz fail exited
         73s outcome 3 ok",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1 stage=direct
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=failed stage=direct
         t=3s audit action.retry_scheduled
         t=5s audit action.intent attempt=2 stage=retry
         t=5s run act-2 web restart attempt=1
         t=6s audit action.outcome status=failed stage=retry
         t=6s audit executor.breaker to=open
         t=6s audit action.retry_scheduled
         t=10s audit incident.escalated reason_code=breaker_open
         t=10s notify critical web: escalated to a human
         t=10s phase manual_intervention
         t=12s audit incident.resolved outcome=escalated
         t=12s phase monitoring
         t=20s phase detecting_failure
         t=22s audit incident.opened
         t=22s audit diagnosis
         t=22s audit incident.escalated reason_code=breaker_open
         t=22s notify critical web: escalated to a human
         t=22s phase manual_intervention
         t=30s audit operator.resolve by=test
         t=30s audit incident.resolved outcome=resolved-by-operator
         t=30s phase detecting_failure
         t=70s audit incident.opened
         t=70s audit diagnosis
         t=70s audit executor.breaker to=half_open
         t=70s audit action.intent attempt=1 stage=direct
         t=70s run act-3 web restart attempt=0
         t=70s phase executing_heal
         t=73s audit action.outcome status=succeeded stage=direct
         t=73s audit executor.breaker to=closed
         t=73s phase verifying",
    );
}

/// `explain` names the reason code and both sets of figures.
#[test]
fn explain_shows_the_baseline_and_the_observed_figures() {
    let mut e = change_engine(GovernanceConfig::default());
    feed(
        &mut e,
        &script(
            "3s probe web healthz ok 3000ms
             4s probe web healthz ok 3000ms
             5s probe web healthz ok 3000ms",
        ),
    );
    let ex = e.explain("inc-t-1").expect("explained");
    let d = ex
        .decisions
        .iter()
        .find(|d| d.reason_code == Some(medic_core::ReasonCode::VerifyWorse))
        .expect("a verify_worse decision");
    assert!(
        d.reason
            .contains("baseline 2 samples, 0% failed, p50 1500ms")
            && d.reason
                .contains("observed 3 samples, 0% failed, p50 3000ms")
            && d.reason.contains("undo unshed runs now"),
        "{}",
        d.reason
    );
}

/// The baseline and the verification survive a medic restart: the
/// restored engine still judges against the first baseline.
#[test]
fn verification_survives_a_restart() {
    let mut e = change_engine(GovernanceConfig::default());
    feed(&mut e, &script("3s probe web healthz ok 3000ms"));
    let snap = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e2 = change_engine(GovernanceConfig::default());
    e2.restore(serde_json::from_str(&snap).unwrap(), Duration::from_secs(1))
        .unwrap();
    while e2.poll_notice().is_some() {}
    while e2.poll_command().is_some() {}
    let trace = run_with(
        e2,
        "1s probe web healthz ok 3000ms
         2s probe web healthz ok 3000ms
         3s probe web healthz ok 3000ms",
        true,
    );
    assert!(
        trace.contains("audit verify.judged reason_code=verify_worse judgement=worse_latency"),
        "{trace}"
    );
}

/// The baseline is the evidence that opened the incident, not the healthy
/// time before it: a change that brings latency from 1.5s to 100ms is
/// better, though 100ms is slower than the 5ms before the incident.
#[test]
fn the_baseline_starts_with_the_evidence() {
    let mut e = change_engine(GovernanceConfig::default());
    feed(
        &mut e,
        "0s probe web healthz ok 5ms
         1s probe web healthz ok 5ms
         2s probe web healthz ok 5ms
         3s probe web healthz ok 1500ms
         4s probe web healthz ok 1500ms",
    );
    let mut baseline = None;
    while let Some(n) = e.poll_notice() {
        if let medic_core::Notice::VerifyBaseline { baseline: b, .. } = n {
            baseline = b;
        }
    }
    let b = baseline.expect("a baseline");
    assert_eq!((b.samples, b.p50_ms), (2, Some(1500)));
    while e.poll_command().is_some() {}
    let trace = run_with(
        e,
        "5s outcome 1 ok
         6s probe web healthz ok 100ms
         7s probe web healthz ok 100ms",
        true,
    );
    assert!(
        trace.contains("t=7s audit verify.judged judgement=better"),
        "{trace}"
    );
}

/// A flag (or circuit) restores itself after 3 green checks once the
/// incident resolved, before its expiry; a bad result restarts the count.
#[test]
fn a_revert_with_green_checks_runs_after_three_healthy_results() {
    let mut svc = web_service(policy());
    for a in &mut svc.actions {
        if a.name == "shed" {
            a.verify = Some(VerifySpec {
                window: Some(Duration::from_secs(20)),
                ..VerifySpec::default()
            });
            if let Some(r) = a.revert.as_mut() {
                r.after = Duration::from_secs(600);
                r.green_checks = Some(3);
            }
        }
    }
    let e = engine_of(42, Mode::Aggressive, vec![svc], GovernanceConfig::default());
    check_v(
        e,
        &script(
            "3s probe web healthz ok 100ms
             4s probe web healthz ok 100ms
             5s probe web healthz ok 100ms
             6s probe web healthz ok 1500ms
             7s probe web healthz ok 100ms
             8s probe web healthz ok 100ms
             9s probe web healthz ok 100ms",
        ),
        &want(
            "t=4s audit verify.judged judgement=better
             t=4s audit verify.passed
             t=4s audit incident.resolved outcome=healed
             t=4s phase monitoring
             t=6s phase detecting_failure
             t=7s phase monitoring
             t=9s audit action.intent attempt=1 stage=revert
             t=9s run act-2 web unshed attempt=0",
        ),
    );
}
