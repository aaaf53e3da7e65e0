#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A drill's fault action is judged by the same gates as any action.
mod common;
use std::time::Duration;

use common::*;
use medic_core::{
    Actor, DrillBlock, FreezeWindow, Input, Mode, MonoTime, OperatorCommand, ReasonCode, Role,
};

fn admin() -> Actor {
    Actor::new("op", Role::Admin)
}

#[test]
fn an_aggressive_engine_lets_a_drill_inject() {
    let mut e = engine(Mode::Aggressive, policy());
    assert_eq!(e.judge_drill("web", "restart"), Ok(()));
    assert_eq!(
        e.judge_drill("nope", "restart"),
        Err(DrillBlock::UnknownService)
    );
    assert_eq!(e.judge_drill("web", "nope"), Err(DrillBlock::UnknownAction));
}

#[test]
fn dry_run_and_disabled_refuse_drills() {
    let mut e = engine(Mode::DryRun, policy());
    assert_eq!(
        e.judge_drill("web", "restart"),
        Err(DrillBlock::Gate(ReasonCode::ModeDryRun))
    );
    let mut e = engine(Mode::Disabled, policy());
    assert_eq!(
        e.judge_drill("web", "restart"),
        Err(DrillBlock::Gate(ReasonCode::ModeDisabled))
    );
}

#[test]
fn the_kill_switch_blocks_a_drill_and_resume_lifts_it() {
    let mut e = engine(Mode::Aggressive, policy());
    let t = MonoTime::from_millis(1000);
    e.operate(
        t,
        &admin(),
        OperatorCommand::Pause {
            service: Some("web".into()),
            kind: None,
            duration: Some(Duration::from_secs(600)),
            reason: "game day off".into(),
        },
    )
    .unwrap();
    assert_eq!(
        e.judge_drill("web", "restart"),
        Err(DrillBlock::Gate(ReasonCode::Paused))
    );
    e.operate(
        t,
        &admin(),
        OperatorCommand::Resume {
            service: Some("web".into()),
            kind: None,
        },
    )
    .unwrap();
    assert_eq!(e.judge_drill("web", "restart"), Ok(()));
}

#[test]
fn a_freeze_window_blocks_a_drill() {
    let mut e = engine(Mode::Aggressive, policy());
    let t = MonoTime::from_millis(1000);
    e.handle_input(
        t,
        Input::WallClock {
            unix_ms: 1_000_000,
            utc_offset_minutes: Some(0),
        },
    );
    e.handle_input(
        t,
        Input::FreezeWindows(vec![FreezeWindow {
            name: "release".into(),
            start_unix_ms: 0,
            end_unix_ms: 10_000_000,
            services: None,
        }]),
    );
    assert_eq!(
        e.judge_drill("web", "restart"),
        Err(DrillBlock::Gate(ReasonCode::Frozen))
    );
}

#[test]
fn no_drill_into_a_service_with_an_open_incident() {
    let mut e = engine(Mode::DryRun, policy());
    for s in 0..3 {
        feed(&mut e, &format!("{s}s probe web healthz fail refused"));
    }
    assert_eq!(
        e.judge_drill("web", "restart"),
        Err(DrillBlock::OpenIncident)
    );
}
