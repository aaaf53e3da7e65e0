#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Data-driven scenario tables: events with times -> expected commands.
mod common;
use std::time::Duration;

use common::*;
use medic_core::{Engine, GovernanceConfig, Mode, ServicePolicy};

#[test]
fn crash_is_restarted_and_verified() {
    check(
        engine(Mode::Aggressive, policy()),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         4s probe web healthz ok
         5s probe web healthz ok",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded
         t=3s phase verifying
         t=5s audit verify.passed
         t=5s audit incident.resolved outcome=healed
         t=5s phase monitoring",
    );
}

#[test]
fn failures_spread_wider_than_the_window_do_not_open_an_incident() {
    check(
        engine(Mode::Aggressive, policy()),
        "0s probe web healthz fail timeout
         8m probe web healthz fail timeout
         16m probe web healthz fail timeout
         17m probe web healthz ok",
        "t=0s phase detecting_failure
         t=1020s phase monitoring",
    );
}

#[test]
fn dry_run_records_what_it_would_do_and_never_acts() {
    check(
        engine(Mode::DryRun, policy()),
        "0s probe web healthz fail 500
         1s probe web healthz fail 500
         2s probe web healthz fail 500
         3s probe web healthz fail 500
         4s tick
         5s probe web healthz ok
         6s probe web healthz ok",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit decision verdict=would-act
         t=2s notify info web: would-act
         t=2s phase confirming_pattern
         t=6s audit incident.resolved outcome=would-act
         t=6s phase monitoring",
    );
}

#[test]
fn disabled_mode_records_and_warns_only() {
    check(
        engine(Mode::Disabled, policy()),
        "0s probe web healthz fail refused
         1s probe web healthz fail refused
         2s probe web healthz fail refused
         3s probe web healthz fail refused",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit decision verdict=skipped
         t=2s notify warning web: skipped
         t=2s phase confirming_pattern",
    );
}

#[test]
fn switching_from_dry_run_to_aggressive_acts_on_the_open_incident() {
    check(
        engine(Mode::DryRun, policy()),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         10s mode aggressive
         11s outcome 1 ok
         12s probe web healthz ok
         13s probe web healthz ok",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit decision verdict=would-act
         t=2s notify info web: would-act
         t=2s phase confirming_pattern
         t=10s audit mode.changed
         t=10s audit action.intent attempt=1
         t=10s run act-1 web restart attempt=0
         t=10s phase executing_heal
         t=11s audit action.outcome status=succeeded
         t=11s phase verifying
         t=13s audit verify.passed
         t=13s audit incident.resolved outcome=healed
         t=13s phase monitoring",
    );
}

#[test]
fn second_failure_inside_cooldown_is_deferred_then_acted_on() {
    check(
        engine(Mode::Aggressive, policy()),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         4s probe web healthz ok
         5s probe web healthz ok
         60s probe web healthz fail exited
         61s probe web healthz fail exited
         62s probe web healthz fail exited
         63s probe web healthz fail exited
         303s tick
         304s outcome 2 ok
         305s probe web healthz ok
         306s probe web healthz ok",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded
         t=3s phase verifying
         t=5s audit verify.passed
         t=5s audit incident.resolved outcome=healed
         t=5s phase monitoring
         t=60s phase detecting_failure
         t=62s audit incident.opened
         t=62s audit diagnosis
         t=62s audit decision verdict=deferred
         t=62s phase confirming_pattern
         t=303s audit action.intent attempt=1
         t=303s run act-2 web restart attempt=0
         t=303s phase executing_heal
         t=304s audit action.outcome status=succeeded
         t=304s phase verifying
         t=306s audit verify.passed
         t=306s audit incident.resolved outcome=healed
         t=306s phase monitoring",
    );
}

/// Issue 5: a failed verification ends in escalation (or rollback) at once;
/// the third consecutive failure on the target disables its automation.
#[test]
fn crash_loop_disables_autoheal_and_escalates_after_three_failed_heals() {
    let p = ServicePolicy {
        cooldown: Duration::ZERO,
        restart_budget: 10,
        verify_window: Duration::from_secs(10),
        ..ServicePolicy::default()
    };
    check_v(
        engine(Mode::Aggressive, p),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         13s tick
         14s probe web healthz ok
         15s probe web healthz ok
         20s probe web healthz fail exited
         21s probe web healthz fail exited
         22s probe web healthz fail exited
         23s outcome 2 ok
         33s tick
         34s probe web healthz ok
         35s probe web healthz ok
         40s probe web healthz fail exited
         41s probe web healthz fail exited
         42s probe web healthz fail exited
         43s outcome 3 ok
         53s tick
         54s probe web healthz ok
         55s probe web healthz ok
         60s probe web healthz fail exited
         61s probe web healthz fail exited
         62s probe web healthz fail exited",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1 stage=direct
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded stage=direct
         t=3s phase verifying
         t=13s audit verify.failed
         t=13s audit heal.retrying reason_code=verify_failed
         t=13s audit action.intent attempt=1 stage=direct
         t=13s notify warning web: heal failed, trying again
         t=13s run act-2 web restart attempt=0
         t=13s phase executing_heal
         t=23s audit action.outcome status=succeeded stage=direct
         t=23s phase verifying
         t=33s audit verify.failed
         t=33s audit heal.retrying reason_code=verify_failed
         t=33s audit action.intent attempt=1 stage=direct
         t=33s notify warning web: heal failed, trying again
         t=33s run act-3 web restart attempt=0
         t=33s phase executing_heal
         t=43s audit action.outcome status=succeeded stage=direct
         t=43s phase verifying
         t=53s audit verify.failed
         t=53s audit autoheal.disabled reason_code=consecutive_failures
         t=53s audit incident.escalated reason_code=consecutive_failures
         t=53s notify critical web: escalated to a human
         t=53s phase manual_intervention
         t=55s audit incident.resolved outcome=escalated
         t=55s phase monitoring
         t=60s phase detecting_failure
         t=62s audit incident.opened
         t=62s audit diagnosis
         t=62s audit incident.escalated reason_code=consecutive_failures
         t=62s notify critical web: escalated to a human
         t=62s phase manual_intervention",
    );
}

#[test]
fn restart_budget_exhaustion_escalates() {
    let p = ServicePolicy {
        cooldown: Duration::ZERO,
        restart_budget: 1,
        ..policy()
    };
    check(
        engine(Mode::Aggressive, p),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         4s probe web healthz ok
         5s probe web healthz ok
         10s probe web healthz fail exited
         11s probe web healthz fail exited
         12s probe web healthz fail exited",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded
         t=3s phase verifying
         t=5s audit verify.passed
         t=5s audit incident.resolved outcome=healed
         t=5s phase monitoring
         t=10s phase detecting_failure
         t=12s audit incident.opened
         t=12s audit diagnosis
         t=12s audit incident.escalated
         t=12s notify critical web: escalated to a human
         t=12s phase manual_intervention",
    );
}

/// Issue 5 §4: three consecutive failed actions on a target disable its
/// automation and escalate, before the retry budget (5) is spent.
#[test]
fn failed_executions_retry_with_backoff_until_three_consecutive_failures() {
    check_v(
        engine(Mode::Aggressive, policy()),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 fail
         5s tick
         6s outcome 2 fail
         8s tick
         9s outcome 3 fail
         12s outcome 4 fail",
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
         t=6s audit action.retry_scheduled
         t=8s audit action.intent attempt=3 stage=retry
         t=8s run act-3 web restart attempt=2
         t=9s audit action.outcome status=failed stage=retry
         t=9s audit autoheal.disabled reason_code=consecutive_failures
         t=9s audit incident.escalated reason_code=consecutive_failures
         t=9s notify critical web: escalated to a human
         t=9s phase manual_intervention
         t=12s audit action.outcome_unmatched",
    );
}

#[test]
fn slow_probe_sheds_load_then_reverts_after_the_hold() {
    check(
        engine(Mode::Aggressive, policy()),
        "0s probe web healthz ok 2s
         1s probe web healthz ok 2s
         2s outcome 1 ok
         3s probe web healthz ok 10ms
         4s probe web healthz ok 10ms
         14s tick
         15s outcome 2 ok",
        "t=0s phase detecting_failure
         t=1s audit incident.opened
         t=1s audit diagnosis
         t=1s audit action.intent attempt=1
         t=1s run act-1 web shed attempt=0
         t=1s phase executing_heal
         t=2s audit action.outcome status=succeeded
         t=2s phase verifying
         t=4s audit verify.passed
         t=4s audit incident.resolved outcome=healed
         t=4s phase monitoring
         t=14s audit action.intent attempt=1
         t=14s run act-2 web unshed attempt=0
         t=15s audit action.outcome status=succeeded",
    );
}

#[test]
fn operator_can_resolve_an_escalated_incident_and_reenable_autoheal() {
    let p = ServicePolicy {
        restart_budget: 0,
        ..policy()
    };
    check(
        engine(Mode::Aggressive, p),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s resolve inc-t-1
         4s enable web
         5s resolve inc-t-9",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit incident.escalated
         t=2s notify critical web: escalated to a human
         t=2s phase manual_intervention
         t=3s audit operator.resolve
         t=3s audit incident.resolved outcome=resolved-by-operator
         t=3s phase detecting_failure
         t=4s audit autoheal.enabled
         t=4s audit incident.opened
         t=4s audit diagnosis
         t=4s audit incident.escalated
         t=4s notify critical web: escalated to a human
         t=4s phase manual_intervention
         t=5s audit operator.rejected",
    );
}

#[test]
fn unknown_and_duplicate_outcomes_change_nothing() {
    check(
        engine(Mode::Aggressive, policy()),
        "0s outcome 7 ok
         1s probe nope healthz fail exited
         2s probe web nope fail exited",
        "t=0s audit action.outcome_unmatched",
    );
}

/// With the consecutive-failure and failed-action limits raised, the retry
/// budget (5 attempts) is what escalates.
#[test]
fn five_failed_executions_escalate_when_limits_allow_them() {
    let p = ServicePolicy {
        restart_budget: 10,
        ..policy()
    };
    let mut gov = GovernanceConfig::default();
    gov.limits.max_consecutive_failures = 10;
    gov.gates.max_failed_actions_per_hour = 10;
    check_v(
        engine_with(Mode::Aggressive, p, gov),
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 fail
         5s tick
         6s outcome 2 fail
         8s tick
         9s outcome 3 fail
         11s tick
         12s outcome 4 fail
         15s tick
         16s outcome 5 fail
         20s tick",
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
         t=6s audit action.retry_scheduled
         t=8s audit action.intent attempt=3 stage=retry
         t=8s run act-3 web restart attempt=2
         t=9s audit action.outcome status=failed stage=retry
         t=9s audit action.retry_scheduled
         t=11s audit action.intent attempt=4 stage=retry
         t=11s run act-4 web restart attempt=3
         t=12s audit action.outcome status=failed stage=retry
         t=12s audit action.retry_scheduled
         t=15s audit action.intent attempt=5 stage=retry
         t=15s run act-5 web restart attempt=4
         t=16s audit action.outcome status=failed stage=retry
         t=16s audit executor.breaker to=open
         t=16s audit incident.escalated reason_code=retries_exhausted
         t=16s notify critical web: escalated to a human
         t=16s phase manual_intervention",
    );
}

fn with_grace(grace: Duration) -> Engine {
    let mut svc = web_service(policy());
    svc.startup.grace = grace;
    engine_of(42, Mode::Aggressive, vec![svc], GovernanceConfig::default())
}

#[test]
fn a_slow_start_is_recorded_but_opens_no_incident_within_the_grace() {
    check(
        with_grace(Duration::from_secs(10)),
        "0s started web
         1s probe web healthz fail refused
         3s probe web healthz fail refused
         5s probe web healthz fail refused
         7s probe web healthz fail refused
         8s probe web healthz ok
         9s probe web healthz fail refused
         10s probe web healthz fail refused
         11s probe web healthz fail refused",
        "t=1s audit probe.startup_failed
         t=9s phase detecting_failure
         t=11s audit incident.opened
         t=11s audit diagnosis
         t=11s audit action.intent attempt=1
         t=11s run act-1 web restart attempt=0
         t=11s phase executing_heal",
    );
}

#[test]
fn a_process_exit_is_acted_on_at_once_even_within_the_grace() {
    check(
        with_grace(Duration::from_secs(30)),
        "0s started web
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s probe web healthz fail exited",
        "t=1s phase detecting_failure
         t=3s audit incident.opened
         t=3s audit diagnosis
         t=3s audit action.intent attempt=1
         t=3s run act-1 web restart attempt=0
         t=3s phase executing_heal",
    );
}

#[test]
fn failures_after_the_grace_count_as_usual() {
    check(
        with_grace(Duration::from_secs(5)),
        "0s started web
         1s probe web healthz fail refused
         6s probe web healthz fail refused
         7s probe web healthz fail refused
         8s probe web healthz fail refused",
        "t=1s audit probe.startup_failed
         t=6s phase detecting_failure
         t=8s audit incident.opened
         t=8s audit diagnosis
         t=8s audit action.intent attempt=1
         t=8s run act-1 web restart attempt=0
         t=8s phase executing_heal",
    );
}

/// The bench's sensitive setup: a process probe `alive` and an HTTP probe
/// `healthz`, both acting on one failure, a 1 s cooldown, a 5 s startup grace.
fn sensitive_with_process_probe() -> Engine {
    use medic_core::{Condition, FailureRule, ProbeSpec, RecoveryRule, Remediation};
    let mut svc = web_service(ServicePolicy {
        cooldown: Duration::from_secs(1),
        ..policy()
    });
    svc.startup.grace = Duration::from_secs(5);
    svc.probes[0].failure.consecutive = 1;
    svc.probes[0].recovery.consecutive = 1;
    svc.probes.insert(
        0,
        ProbeSpec {
            name: "alive".into(),
            failure: FailureRule {
                consecutive: 1,
                within: Duration::from_secs(60),
            },
            latency: None,
            recovery: RecoveryRule { consecutive: 1 },
            event: false,
        },
    );
    svc.remediations.insert(
        0,
        Remediation {
            probe: "alive".into(),
            condition: Condition::Failing,
            action: "restart".into(),
        },
    );
    engine_of(42, Mode::Aggressive, vec![svc], GovernanceConfig::default())
}

/// Issue 14's oddity (`kill -9` healed in ~1 s with `failure.consecutive: 1`
/// instead of ~50 ms): the HTTP probe saw the crash first (refused), so the
/// incident is about `healthz`. After the restart the process probe says
/// "running" at once; that must not end the HTTP probe's start phase, or its
/// refusal while the new process binds its port fails the verification, and
/// the second restart (deferred by the cooldown to ~1 s) kills the process
/// that was just coming up. Each probe's start phase ends with its own first
/// success.
#[test]
fn a_process_probe_ok_does_not_end_the_http_probes_start_phase() {
    check(
        sensitive_with_process_probe(),
        "0s started web
         1s probe web alive ok
         1s probe web healthz ok
         10s probe web healthz fail refused
         10010ms probe web alive fail exited
         10030ms outcome 1 ok
         10031ms probe web alive ok
         10040ms probe web healthz fail refused
         11s probe web healthz ok",
        "t=10s audit incident.opened
         t=10s audit diagnosis
         t=10s audit action.intent attempt=1
         t=10s run act-1 web restart attempt=0
         t=10s phase executing_heal
         t=10.03s audit action.outcome status=succeeded
         t=10.03s phase verifying
         t=10.04s audit probe.startup_failed
         t=11s audit verify.passed
         t=11s audit incident.resolved outcome=healed
         t=11s phase monitoring",
    );
}

/// A service with an Alertmanager alert (an event-driven probe) beside its
/// scheduled HTTP probe, a 30 s start phase.
fn with_alert_in_start_phase() -> Engine {
    use medic_core::{Condition, FailureRule, ProbeSpec, RecoveryRule, Remediation};
    let mut svc = web_service(policy());
    svc.startup.grace = Duration::from_secs(30);
    svc.probes.push(ProbeSpec {
        name: "FixtureSlow".into(),
        failure: FailureRule {
            consecutive: 1,
            within: Duration::from_secs(60),
        },
        latency: None,
        recovery: RecoveryRule { consecutive: 1 },
        event: true,
    });
    svc.remediations.push(Remediation {
        probe: "FixtureSlow".into(),
        condition: Condition::Failing,
        action: "restart".into(),
    });
    engine_of(42, Mode::Aggressive, vec![svc], GovernanceConfig::default())
}

/// Issue 14 (found in the real-stack test): Alertmanager sends a firing
/// alert once (again only after its repeat_interval), so an alert that fires
/// in the start phase must not be excused like a failing scheduled probe, or
/// the incident never opens. The HTTP probe's failure in the same phase still
/// is excused.
#[test]
fn an_alert_firing_in_the_start_phase_is_not_excused() {
    check(
        with_alert_in_start_phase(),
        "0s started web
         1s probe web healthz fail refused
         2s probe web FixtureSlow fail other",
        "t=1s audit probe.startup_failed
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal",
    );
}

/// With an alert configured that never reports, the scheduled probe's start
/// phase still ends with its first success, and its later failures count as
/// usual.
#[test]
fn an_alert_that_never_fired_does_not_prolong_the_start_phase() {
    check(
        with_alert_in_start_phase(),
        "0s started web
         1s probe web healthz fail refused
         2s probe web healthz ok
         3s probe web healthz fail refused
         4s probe web healthz fail refused
         5s probe web healthz fail refused",
        "t=1s audit probe.startup_failed
         t=3s phase detecting_failure
         t=5s audit incident.opened
         t=5s audit diagnosis
         t=5s audit action.intent attempt=1
         t=5s run act-1 web restart attempt=0
         t=5s phase executing_heal",
    );
}
