#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 5 governance scenarios: approvals, pauses, freezes, overrides,
//! cancels, canaries, gates and explain.
mod common;
use std::time::Duration;

use common::*;
use medic_core::*;

const FAIL3: &str = "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited";

fn with_risk(risk: Risk, gov: GovernanceConfig, mode: Mode) -> Engine {
    let mut svc = web_service(policy());
    svc.actions[0].risk = Some(risk);
    engine_of(1, mode, vec![svc], gov)
}

#[test]
fn conservative_mode_asks_approval_for_medium_and_runs_after_it() {
    check_v(
        engine(Mode::Conservative, policy()),
        &format!(
            "{FAIL3}
         5s approve apr-9 alice
         6s approve apr-1 alice
         7s outcome 1 ok"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=risk_tier
         t=2s audit decision verdict=pending-approval reason_code=risk_tier
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern
         t=5s audit operator.rejected reason_code=approval_not_found by=alice
         t=6s audit approval.approved by=alice
         t=6s audit approval.granted
         t=6s audit action.intent attempt=1 stage=direct
         t=6s run act-1 web restart attempt=0
         t=6s phase executing_heal
         t=7s audit action.outcome status=succeeded stage=direct
         t=7s phase verifying",
    );
}

#[test]
fn two_person_rule_needs_two_distinct_approvers_for_high() {
    let gov = || {
        let mut g = GovernanceConfig::default();
        g.approvals.two_person_high = true;
        g
    };
    // After one approval the action still waits for a second person.
    let mut e = with_risk(Risk::High, gov(), Mode::Aggressive);
    feed(&mut e, &format!("{FAIL3}\n3s approve apr-1 alice"));
    let cmds: Vec<Command> = std::iter::from_fn(|| e.poll_command()).collect();
    assert!(!cmds.iter().any(|c| matches!(c, Command::RunAction(_))));
    let pending = e.pending_approvals();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].required, 2);
    assert_eq!(pending[0].approvers, vec!["alice".to_string()]);
    assert_eq!(pending[0].reason_code, ReasonCode::RiskTier);
    check_v(
        with_risk(Risk::High, gov(), Mode::Aggressive),
        &format!(
            "{FAIL3}
         3s approve apr-1 alice
         4s approve apr-1 alice
         5s approve apr-1 bob"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=risk_tier
         t=2s audit decision verdict=pending-approval reason_code=risk_tier
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern
         t=3s audit approval.approved by=alice
         t=4s audit operator.rejected reason_code=same_approver by=alice
         t=5s audit approval.approved by=bob
         t=5s audit approval.granted
         t=5s audit action.intent attempt=1 stage=direct
         t=5s run act-1 web restart attempt=0
         t=5s phase executing_heal",
    );
}

#[test]
fn critical_actions_are_never_automatic_even_in_aggressive_mode() {
    check_v(
        with_risk(
            Risk::Critical,
            GovernanceConfig::default(),
            Mode::Aggressive,
        ),
        FAIL3,
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=critical_risk
         t=2s audit decision verdict=pending-approval reason_code=critical_risk
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern",
    );
}

#[test]
fn expired_and_rejected_approvals_escalate() {
    check_v(
        with_risk(Risk::High, GovernanceConfig::default(), Mode::Aggressive),
        &format!(
            "{FAIL3}
         15m tick
         16m tick"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=risk_tier
         t=2s audit decision verdict=pending-approval reason_code=risk_tier
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern
         t=960s audit approval.expired
         t=960s audit incident.escalated reason_code=approval_expired
         t=960s notify critical web: escalated to a human
         t=960s phase manual_intervention",
    );
    check_v(
        with_risk(Risk::High, GovernanceConfig::default(), Mode::Aggressive),
        &format!(
            "{FAIL3}
         3s reject apr-1 carol"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=risk_tier
         t=2s audit decision verdict=pending-approval reason_code=risk_tier
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern
         t=3s audit approval.rejected by=carol
         t=3s audit incident.escalated reason_code=approval_rejected
         t=3s notify critical web: escalated to a human
         t=3s phase manual_intervention",
    );
}

#[test]
fn pause_holds_automation_and_resume_acts() {
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!(
            "0s pause web restart -
         {}
         10s resume web restart",
            FAIL3.replace("0s probe", "0.5s probe")
        ),
        "t=0s audit automation.paused reason_code=paused by=op
         t=0.5s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit decision verdict=held reason_code=paused
         t=2s phase confirming_pattern
         t=10s audit automation.resumed by=op
         t=10s audit action.intent attempt=1 stage=direct
         t=10s run act-1 web restart attempt=0
         t=10s phase executing_heal",
    );
}

#[test]
fn a_timed_pause_expires_by_itself() {
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!(
            "0s pause * * 30s
         {FAIL3}
         30s tick"
        ),
        "t=0s audit automation.paused reason_code=paused by=op
         t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit decision verdict=held reason_code=paused
         t=2s phase confirming_pattern
         t=30s audit automation.pause_expired
         t=30s audit action.intent attempt=1 stage=direct
         t=30s run act-1 web restart attempt=0
         t=30s phase executing_heal",
    );
}

/// Aggressive, wall clock known, inside the "release" freeze window that
/// ends 60 s after the clock sync.
fn frozen_engine() -> Engine {
    let mut e = engine(Mode::Aggressive, policy());
    e.handle_input(
        MonoTime::ZERO,
        Input::WallClock {
            unix_ms: 1_000_000_000,
            utc_offset_minutes: None,
        },
    );
    e.handle_input(
        MonoTime::ZERO,
        Input::FreezeWindows(vec![FreezeWindow {
            name: "release".into(),
            start_unix_ms: 999_000_000,
            end_unix_ms: 1_000_060_000,
            services: None,
        }]),
    );
    e
}

#[test]
fn freeze_window_holds_then_acts_when_it_ends() {
    let mut e = frozen_engine();
    while e.poll_command().is_some() {}
    let got = run_with(e, FAIL3, true);
    assert!(
        got.contains("t=2s audit decision verdict=held reason_code=frozen"),
        "{got}"
    );
    assert!(!got.contains("run act-1"), "{got}");
    // Re-drive with the timer: the freeze ends 60s after the clock sync.
    let mut e = frozen_engine();
    feed(&mut e, FAIL3);
    while e.poll_command().is_some() {}
    assert_eq!(e.poll_timeout(), Some(MonoTime(60_000)));
    e.handle_timeout(MonoTime(60_000));
    let cmds: Vec<Command> = std::iter::from_fn(|| e.poll_command()).collect();
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::RunAction(r) if r.action == "restart")),
        "{cmds:?}"
    );
}

#[test]
fn override_needs_a_reason_and_is_audited() {
    check_v(
        engine(Mode::Disabled, policy()),
        "0s force web restart
         1s force web restart db is wedged
         2s force web restart again",
        "t=0s audit operator.rejected reason_code=reason_required by=op
         t=1s audit override by=op
         t=1s audit action.intent attempt=1 stage=forced
         t=1s run act-1 web restart attempt=0
         t=2s audit operator.rejected reason_code=target_busy by=op",
    );
}

#[test]
fn cancel_is_passed_to_the_driver_and_escalates() {
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!(
            "{FAIL3}
         3s cancel 7
         4s cancel 1
         5s outcome 1 fail"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1 stage=direct
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit operator.rejected reason_code=action_not_running by=op
         t=4s audit action.cancel_requested by=op
         t=4s cancel act-1
         t=5s audit action.outcome status=failed stage=direct
         t=5s audit incident.escalated reason_code=cancelled
         t=5s notify critical web: escalated to a human
         t=5s phase manual_intervention",
    );
}

#[test]
fn risky_actions_on_multi_instance_targets_go_through_a_canary() {
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!(
            "0s signals web 3 0.5 0.9
         {FAIL3}
         3s outcome 1 ok
         33s tick
         34s outcome 2 ok"
        ),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1 stage=canary
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded stage=canary
         t=33s audit action.intent attempt=1 stage=rollout
         t=33s run act-2 web restart attempt=0
         t=34s audit action.outcome status=succeeded stage=rollout
         t=34s phase verifying",
    );
}

#[test]
fn error_budget_and_headroom_gates_escalate_with_their_reason() {
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!("0s signals web 1 0.01 0.9\n{FAIL3}"),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit incident.escalated reason_code=error_budget
         t=2s notify critical web: escalated to a human
         t=2s phase manual_intervention",
    );
    check_v(
        engine(Mode::Aggressive, policy()),
        &format!("0s signals web 1 0.5 0.1\n{FAIL3}"),
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit incident.escalated reason_code=capacity_headroom
         t=2s notify critical web: escalated to a human
         t=2s phase manual_intervention",
    );
}

#[test]
fn explain_lists_every_decision_with_its_reason() {
    let mut e = engine(Mode::DryRun, policy());
    feed(&mut e, FAIL3);
    e.handle_input(
        MonoTime(3_000),
        Input::Operator(
            Actor::new("op", Role::Admin),
            OperatorCommand::SetMode {
                service: None,
                mode: Mode::Conservative,
            },
        ),
    );
    let ex = e.explain("inc-t-1").unwrap();
    let got: Vec<(&str, Option<&str>)> = ex
        .decisions
        .iter()
        .map(|d| (d.verdict.as_str(), d.reason_code.map(|c| c.as_str())))
        .collect();
    assert_eq!(
        got,
        vec![
            ("would-act", Some("mode_dry_run")),
            ("pending-approval", Some("risk_tier"))
        ]
    );
    assert_eq!(ex.pending_approval.as_ref().unwrap().id, "apr-1");
    assert!(ex.decisions.iter().all(|d| d.score > 0.0 && d.score < 1.0));
    e.handle_input(
        MonoTime(4_000),
        Input::Operator(
            Actor::new("op", Role::Admin),
            OperatorCommand::ResolveIncident {
                id: "inc-t-1".into(),
                reason: "done".into(),
            },
        ),
    );
    let ex = e.explain("inc-t-1").unwrap();
    assert_eq!(ex.outcome, Some(IncidentOutcome::ResolvedByOperator));
    assert_eq!(ex.decisions.len(), 2);
    assert!(e.pending_approvals().is_empty());
    assert!(e.explain("inc-t-2").is_none());
    let answer = e.operate(
        MonoTime(5_000),
        &Actor::new("op", Role::Admin),
        OperatorCommand::ResolveIncident {
            id: "inc-t-1".into(),
            reason: "again".into(),
        },
    );
    assert_eq!(
        answer,
        Err(OperatorError::IncidentNotOpen("inc-t-1".into()))
    );
}

#[test]
fn more_than_ten_affected_services_pause_automation_and_page() {
    let services: Vec<ServiceSpec> = (0..11)
        .map(|i| {
            let mut s = web_service(policy());
            s.name = format!("s{i:02}");
            s
        })
        .collect();
    let mut governance = GovernanceConfig::default();
    // Let the incident-rate gate pass so the blast radius shows.
    governance.gates.max_incidents_per_hour = 100;
    let mut e = Engine::new(
        EngineConfig {
            mode: Mode::DryRun,
            services,
            governance,
            ..EngineConfig::default()
        },
        MonoTime::ZERO,
    );
    let mut t = 0;
    for i in 0..11 {
        for _ in 0..3 {
            t += 10;
            e.handle_input(
                MonoTime(t),
                Input::Probe(ProbeReport {
                    service: format!("s{i:02}"),
                    probe: "healthz".into(),
                    ok: false,
                    latency: Duration::ZERO,
                    failure: Some(ProbeFailure::Exited),
                    detail: String::new(),
                }),
            );
        }
    }
    let cmds: Vec<Command> = std::iter::from_fn(|| e.poll_command()).collect();
    assert!(e.mass_paused());
    assert!(cmds.iter().any(|c| matches!(c, Command::Notify(n) if n.severity == Severity::Critical && n.title.contains("automation paused"))));
    e.handle_input(
        MonoTime(t + 1),
        Input::Operator(
            Actor::new("op", Role::Admin),
            OperatorCommand::SetMode {
                service: None,
                mode: Mode::Aggressive,
            },
        ),
    );
    let cmds: Vec<Command> = std::iter::from_fn(|| e.poll_command()).collect();
    assert!(!cmds.iter().any(|c| matches!(c, Command::RunAction(_))));
    assert_eq!(
        e.explain("inc-0-1")
            .unwrap()
            .decisions
            .last()
            .unwrap()
            .reason_code,
        Some(ReasonCode::MassIncident)
    );
    e.handle_input(
        MonoTime(t + 2),
        Input::Operator(
            Actor::new("op", Role::Admin),
            OperatorCommand::Resume {
                service: None,
                kind: None,
            },
        ),
    );
    let runs = std::iter::from_fn(|| e.poll_command())
        .filter(|c| matches!(c, Command::RunAction(_)))
        .count();
    // Blast radius: at most floor(11 * 20%) = 2 targets at once.
    assert_eq!(runs, 2);
    assert!(!e.mass_paused());
}

/// The reproduction of the first safety bug: an `exec` action with
/// `class: database_failover` and no `risk`, in aggressive mode, ran at once.
/// Its tier comes from its class: HIGH, so it waits for approval.
#[test]
fn an_exec_action_of_a_high_class_without_risk_waits_for_approval() {
    let mut svc = web_service(policy());
    svc.actions[0] = ActionSpec {
        name: "failover".into(),
        kind: ActionKind::Exec,
        risk: None,
        revert: None,
        verify: None,
    };
    svc.remediations[0].action = "failover".into();
    let mut gov = GovernanceConfig::default();
    let mut sg = ServiceGovernance::default();
    sg.actions.insert(
        "failover".into(),
        ActionGovernance {
            class: Some(ActionClass::DatabaseFailover),
            ..ActionGovernance::default()
        },
    );
    gov.services.insert("web".into(), sg);
    let e = Engine::new(
        EngineConfig {
            mode: Mode::Aggressive,
            services: vec![svc],
            governance: gov,
            ..EngineConfig::default()
        },
        MonoTime::ZERO,
    );
    check_v(
        e,
        FAIL3,
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit approval.requested reason_code=risk_tier
         t=2s audit decision verdict=pending-approval reason_code=risk_tier
         t=2s notify warning web: pending-approval
         t=2s phase confirming_pattern",
    );
}

/// The related case: a restart action with a governance entry but no class
/// is still a restart and spends the restart budget.
#[test]
fn a_restart_with_a_governance_entry_but_no_class_spends_the_restart_budget() {
    let mut p = policy();
    p.restart_budget = 1;
    p.cooldown = Duration::ZERO;
    let mut gov = GovernanceConfig::default();
    let mut sg = ServiceGovernance::default();
    sg.actions.insert(
        "restart".into(),
        ActionGovernance {
            class: None,
            change_size: Some(0.1),
            ..ActionGovernance::default()
        },
    );
    gov.services.insert("web".into(), sg);
    let e = engine_with(Mode::Aggressive, p, gov);
    check_v(
        e,
        "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         4s probe web healthz ok
         5s probe web healthz ok
         6s probe web healthz fail exited
         7s probe web healthz fail exited
         8s probe web healthz fail exited",
        "t=0s phase detecting_failure
         t=2s audit incident.opened
         t=2s audit diagnosis
         t=2s audit action.intent attempt=1 stage=direct
         t=2s run act-1 web restart attempt=0
         t=2s phase executing_heal
         t=3s audit action.outcome status=succeeded stage=direct
         t=3s phase verifying
         t=5s audit verify.passed
         t=5s audit incident.resolved outcome=healed
         t=5s phase monitoring
         t=6s phase detecting_failure
         t=8s audit incident.opened
         t=8s audit diagnosis
         t=8s audit incident.escalated reason_code=restart_budget
         t=8s notify critical web: escalated to a human
         t=8s phase manual_intervention",
    );
}

/// A freeze decision names its window, in explain and in the audit record.
#[test]
fn a_freeze_decision_names_its_window() {
    let mut e = frozen_engine();
    feed(&mut e, FAIL3);
    let notices: Vec<Notice> = std::iter::from_fn(|| e.poll_notice()).collect();
    assert!(notices.iter().any(|n| matches!(
        n,
        Notice::Decision { reason_code: Some(ReasonCode::Frozen), window: Some(w), reason, .. }
            if w == "release" && reason.contains("freeze window release")
    )));
    let ex = e.explain("inc-t-1").unwrap();
    assert_eq!(ex.decisions[0].window.as_deref(), Some("release"));
}

/// Dry-run says what a real mode would need first for a HIGH action.
#[test]
fn dry_run_of_a_high_action_says_it_would_need_approvals() {
    let mut gov = GovernanceConfig::default();
    gov.approvals.two_person_high = true;
    let mut e = with_risk(Risk::High, gov, Mode::DryRun);
    feed(&mut e, FAIL3);
    let reason = std::iter::from_fn(|| e.poll_notice())
        .find_map(|n| match n {
            Notice::Decision {
                verdict: Verdict::WouldAct,
                reason,
                ..
            } => Some(reason),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.contains("would first need 2 approval(s)"),
        "{reason}"
    );
}

/// Every decision is in explain: both runs after a failed verification, and
/// the escalations on an expired or rejected approval.
#[test]
fn explain_keeps_every_run_and_every_escalation() {
    let mut p = policy();
    p.cooldown = Duration::ZERO;
    p.verify_window = Duration::from_secs(5);
    let mut e = engine(Mode::Aggressive, p);
    let script = "0s probe web healthz fail exited
         1s probe web healthz fail exited
         2s probe web healthz fail exited
         3s outcome 1 ok
         4s probe web healthz fail exited
         5s probe web healthz fail exited
         6s probe web healthz fail exited";
    feed(&mut e, script);
    let runs: Vec<Verdict> = e
        .explain("inc-t-1")
        .unwrap()
        .decisions
        .iter()
        .map(|d| d.verdict)
        .collect();
    assert_eq!(runs, vec![Verdict::Run, Verdict::Run], "{runs:?}");

    // An approval that expires escalates, and explain says so.
    let mut gov = GovernanceConfig::default();
    gov.approvals.expiry = Duration::from_secs(60);
    let mut e = with_risk(Risk::High, gov.clone(), Mode::Aggressive);
    feed(&mut e, FAIL3);
    e.handle_timeout(MonoTime(70_000));
    let last = e
        .explain("inc-t-1")
        .unwrap()
        .decisions
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        (last.verdict, last.reason_code),
        (Verdict::Escalate, Some(ReasonCode::ApprovalExpired))
    );

    // A rejected one too.
    let mut e = with_risk(Risk::High, gov, Mode::Aggressive);
    feed(&mut e, FAIL3);
    e.operate(
        MonoTime(3_000),
        &Actor::new("bob", Role::Approver),
        OperatorCommand::Reject {
            id: "apr-1".into(),
            reason: "not now".into(),
        },
    )
    .unwrap();
    let last = e
        .explain("inc-t-1")
        .unwrap()
        .decisions
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        (last.verdict, last.reason_code),
        (Verdict::Escalate, Some(ReasonCode::ApprovalRejected))
    );
}

/// Roles order what an actor may do; a refusal is typed and recorded.
#[test]
fn a_viewer_cannot_change_the_mode() {
    let mut e = engine(Mode::DryRun, policy());
    let r = e.operate(
        MonoTime(1),
        &Actor::new("eve", Role::Viewer),
        OperatorCommand::SetMode {
            service: None,
            mode: Mode::Aggressive,
        },
    );
    assert_eq!(
        r,
        Err(OperatorError::Forbidden {
            needed: Role::Admin,
            have: Role::Viewer
        })
    );
    assert_eq!(e.mode(), Mode::DryRun);
    assert!(matches!(
        e.poll_notice(),
        Some(Notice::OperatorRejected {
            error: OperatorErrorCode::Forbidden,
            ..
        })
    ));
}
