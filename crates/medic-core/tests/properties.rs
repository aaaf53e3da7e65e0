#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: random event sequences never break the safety rules.
mod common;
use std::collections::VecDeque;
use std::time::Duration;

use common::*;
use medic_core::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Ev {
    Probe { ok: bool, slow: bool, kind: u8 },
    Outcome { nth_pending: u8, ok: bool },
    Tick,
    Mode(u8),
}

fn ev() -> impl Strategy<Value = (u32, Ev)> {
    let e = prop_oneof![
        6 => (any::<bool>(), any::<bool>(), 0u8..6).prop_map(|(ok, slow, kind)| Ev::Probe { ok, slow, kind }),
        3 => (0u8..3, any::<bool>()).prop_map(|(nth_pending, ok)| Ev::Outcome { nth_pending, ok }),
        2 => Just(Ev::Tick),
        1 => (0u8..4).prop_map(Ev::Mode),
    ];
    (0u32..120_000, e)
}

fn mode_of(i: u8) -> Mode {
    [
        Mode::Disabled,
        Mode::DryRun,
        Mode::Conservative,
        Mode::Aggressive,
    ][usize::from(i % 4)]
}

fn drive(start: Mode, events: &[(u32, Ev)], policy: ServicePolicy) -> Result<(), TestCaseError> {
    drive_with(start, events, policy.clone(), policy)
}

/// Drive an engine running `engine_policy` like a real driver would, checking
/// every emitted command against the rules of `policy`.
fn drive_with(
    start: Mode,
    events: &[(u32, Ev)],
    engine_policy: ServicePolicy,
    policy: ServicePolicy,
) -> Result<(), TestCaseError> {
    let mut e = engine(start, engine_policy);
    let mut now = 0u64;
    let mut pending: VecDeque<ActionId> = VecDeque::new();
    let mut restarts: Vec<u64> = Vec::new();
    let mut inflight = 0usize;
    for (dt, ev) in events {
        now += u64::from(*dt);
        let at = MonoTime(now);
        match ev {
            Ev::Probe { ok, slow, kind } => {
                let failure = match kind {
                    0 => ProbeFailure::Exited,
                    1 => ProbeFailure::Timeout,
                    2 => ProbeFailure::BadStatus(500),
                    3 => ProbeFailure::Refused,
                    4 => ProbeFailure::BodyMismatch,
                    _ => ProbeFailure::Other,
                };
                e.handle_input(
                    at,
                    Input::Probe(ProbeReport {
                        service: "web".into(),
                        probe: "healthz".into(),
                        ok: *ok,
                        latency: if *slow {
                            Duration::from_secs(3)
                        } else {
                            Duration::from_millis(3)
                        },
                        failure: (!ok).then_some(failure),
                        detail: String::new(),
                    }),
                );
            }
            Ev::Outcome { nth_pending, ok } => {
                if pending.is_empty() {
                    continue;
                }
                let idx = usize::from(*nth_pending) % pending.len();
                let Some(id) = pending.remove(idx) else {
                    continue;
                };
                inflight = inflight.saturating_sub(1);
                let result = if *ok {
                    Ok(String::new())
                } else {
                    Err(ActionFailure {
                        kind: ActionFailureKind::Timeout,
                        message: "t".into(),
                    })
                };
                e.handle_input(at, Input::ActionOutcome { id, result });
            }
            Ev::Tick => e.handle_timeout(at),
            Ev::Mode(m) => e.handle_input(
                at,
                Input::Operator(
                    Actor::new("op", Role::Admin),
                    OperatorCommand::SetMode {
                        service: None,
                        mode: mode_of(*m),
                    },
                ),
            ),
        }
        // Fire due timers as a real driver would.
        if let Some(t) = e.poll_timeout() {
            if t <= at {
                e.handle_timeout(at);
            }
        }
        let mut intents: Vec<String> = Vec::new();
        while let Some(n) = e.poll_notice() {
            if let Notice::ActionIntent { action_id, .. } = n {
                intents.push(action_id.to_string());
            }
        }
        while let Some(c) = e.poll_command() {
            if let Command::RunAction(r) = c {
                let mode = e.effective_mode("web").unwrap_or(Mode::DryRun);
                prop_assert!(mode.acts(), "action {r:?} emitted in mode {mode}");
                // The step's notices, recorded before its commands run, hold
                // this action's intent.
                prop_assert!(
                    intents.contains(&r.id.to_string()),
                    "no intent recorded for {} in the same step",
                    r.id
                );
                inflight += 1;
                prop_assert!(inflight <= 1, "two actions in flight on one target");
                if r.kind == ActionKind::Restart {
                    restarts.push(now);
                    let window = policy.budget_window.as_millis() as u64;
                    let in_window = restarts
                        .iter()
                        .filter(|t| now.saturating_sub(**t) < window)
                        .count();
                    prop_assert!(
                        in_window as u32 <= policy.restart_budget,
                        "{in_window} restarts inside the budget window (budget {})",
                        policy.restart_budget
                    );
                }
                pending.push_back(r.id);
            }
        }
    }
    Ok(())
}

fn quick_policy() -> ServicePolicy {
    ServicePolicy {
        cooldown: Duration::from_secs(5),
        restart_budget: 3,
        budget_window: Duration::from_secs(600),
        verify_window: Duration::from_secs(10),
        ..ServicePolicy::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_acts_in_dry_run_or_disabled(events in prop::collection::vec(ev().prop_filter("no mode change", |(_, e)| !matches!(e, Ev::Mode(_))), 1..200), disabled in any::<bool>()) {
        let start = if disabled { Mode::Disabled } else { Mode::DryRun };
        let mut e = engine(start, quick_policy());
        let mut now = 0u64;
        for (dt, ev) in &events {
            now += u64::from(*dt);
            match ev {
                Ev::Probe { ok, slow, .. } => e.handle_input(MonoTime(now), Input::Probe(ProbeReport {
                    service: "web".into(), probe: "healthz".into(), ok: *ok,
                    latency: if *slow { Duration::from_secs(3) } else { Duration::ZERO },
                    failure: (!ok).then_some(ProbeFailure::Exited), detail: String::new() })),
                _ => e.handle_timeout(MonoTime(now)),
            }
            while let Some(c) = e.poll_command() {
                prop_assert!(!matches!(c, Command::RunAction(_)), "acted in {start}: {c:?}");
            }
        }
    }

    #[test]
    fn restarts_never_exceed_budget_and_only_in_acting_modes(
        start in 0u8..4,
        events in prop::collection::vec(ev(), 1..300),
    ) {
        drive(mode_of(start), &events, quick_policy())?;
    }
}

/// The checker itself can fail: a policy with a budget the engine is not told
/// about (a deliberate mismatch) must be caught.
#[test]
fn checker_detects_a_budget_violation() {
    let engine_policy = ServicePolicy {
        restart_budget: 5,
        cooldown: Duration::ZERO,
        ..quick_policy()
    };
    let mut events = Vec::new();
    for _ in 0..4 {
        for _ in 0..3 {
            events.push((
                1000,
                Ev::Probe {
                    ok: false,
                    slow: false,
                    kind: 0,
                },
            ));
        }
        events.push((
            1000,
            Ev::Outcome {
                nth_pending: 0,
                ok: true,
            },
        ));
        for _ in 0..3 {
            events.push((
                1000,
                Ev::Probe {
                    ok: true,
                    slow: false,
                    kind: 0,
                },
            ));
        }
    }
    // Checker believes the budget is 3 while the engine allows 5.
    let mut e_pol = engine_policy.clone();
    e_pol.restart_budget = 3;
    let result =
        std::panic::catch_unwind(|| drive_with(Mode::Aggressive, &events, engine_policy, e_pol));
    assert!(
        matches!(result, Ok(Err(_))),
        "checker missed 4 restarts against a budget of 3"
    );
}
