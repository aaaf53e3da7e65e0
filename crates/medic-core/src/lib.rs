//! medic-core: the sans-IO healing engine.
//!
//! The engine is a pure, deterministic state machine. Drivers (the daemon, the
//! simulator, tests) feed it [`Input`]s and clock ticks, and drain the
//! [`Command`]s it returns. It never reads a clock, opens a socket, spawns a
//! task or touches the file system; time is passed in as [`MonoTime`] and any
//! randomness comes from the seed in [`EngineConfig`].
//!
//! # Driving contract
//! After every [`Engine::handle_input`], [`Engine::handle_timeout`] or
//! [`Engine::operate`] call:
//! 1. drain [`Engine::poll_notice`] and record every [`Notice`] (audit log);
//! 2. drain [`Engine::poll_command`] and execute the commands in order; if
//!    recording a notice of this step failed, do not run this step's
//!    [`Command::RunAction`]s: report them failed instead (every action's
//!    `action.intent` notice is pushed in the same step as its `RunAction`);
//! 3. read [`Engine::poll_timeout`] and call `handle_timeout` no later than
//!    that time.
//!
//! Times passed in must never go backwards; an earlier time is treated as the
//! last time seen. Extra or early `handle_timeout` calls do nothing harmful.
//! [`Engine::snapshot`] returns the durable safety state whenever
//! [`Engine::safety_generation`] has moved; [`Engine::restore`] resumes it.
//!
//! Inputs:
//! - [`Input::Probe`], [`Input::ActionOutcome`] (exactly one per
//!   [`Command::RunAction`], also after a cancel), [`Input::Operator`]
//!   (prefer [`Engine::operate`], which returns the answer);
//! - [`Input::WallClock`] at start and whenever the host clock may have
//!   jumped (freeze windows, timing risk; without it no freeze applies);
//! - [`Input::Signals`] for error budget, capacity headroom and instance count
//!   (unknown values never block);
//! - [`Input::FreezeWindows`] with concrete intervals (cron schedules are
//!   expanded at the edge, by `medic_config::FreezeSpec`).
//!
//! Commands (effects only):
//! - [`Command::RunAction`]: execute; [`ActionRequest::stage`] says whether it
//!   is a canary (one instance), a rollout, a retry, a revert, a rollback or
//!   an operator override;
//! - [`Command::CancelAction`]: stop that running action if possible; its
//!   outcome is still reported (as `Cancelled` when stopped);
//! - [`Command::Notify`], [`Command::IncidentChanged`].
//!
//! # Governance
//! Every planned action is judged by [`governance::decide`] (pure, no
//! allocation): mode, kill switches, freeze windows, risk tier and score,
//! approvals, cooldown, limits and safety gates, in a fixed order; the first
//! gate that blocks gives a machine-readable [`ReasonCode`], recorded in the
//! audit log (`reason_code`), the incident timeline and [`Engine::explain`].
//! See `docs/governance.md` for the rules and the staged rollout.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

mod breaker;
pub mod canary;
mod class;
mod engine;
pub mod governance;
pub mod locks;
mod notice;
mod operator;
mod rng;
mod snapshot;
mod spec;
mod time;
mod types;
mod verify;

pub use breaker::{Breaker, BreakerConfig, BreakerState, Refused, Transition};
pub use canary::{CanaryPlan, CanaryRecord, CanarySamples, CanaryWindow};
pub use class::{Undo, Verification, CHANGE_VERIFY_WINDOW};
pub use engine::{DrillBlock, Engine};
pub use governance::{
    decide, risk_score, ActionClass, ActionGovernance, ApprovalPolicy, AutonomyBands, Band, Block,
    ClassBudget, ClassFacts, Decision, DiagnosisGate, FreezeWindow, GateConfig, GateInput,
    GovernanceConfig, Limits, ReasonCode, ResolvedAction, ServiceGovernance, TimingConfig,
    CLASS_TABLE,
};
pub use locks::{
    Acquire, Conflict, Lock, LockConfig, LockEvent, LockKey, LockReason, LockRequest, LockScope,
    LockTable, OnConflict, Topology,
};
pub use medic_canary;
pub use notice::{ActionStatus, Notice, NoticeKind, Scope, Verdict};
pub use operator::{Ack, Actor, OperatorCommand, OperatorError, OperatorErrorCode, Role};
pub use rng::SplitMix64;
pub use snapshot::{RestoreError, Snapshot, OLDEST_SNAPSHOT_VERSION, SNAPSHOT_VERSION};
pub use spec::{
    ActionKind, ActionSpec, Condition, EngineConfig, FailureRule, LatencyRule, Mode,
    ParseModeError, ProbeSpec, RecoveryRule, Remediation, RetryPolicy, RevertSpec, Risk,
    ServicePolicy, ServiceSpec, StartupSpec,
};
pub use time::MonoTime;
pub use types::{
    ActionFailure, ActionFailureKind, ActionId, ActionRequest, ActionStage, ApprovalView, Command,
    DecisionRecord, DiagnosisReport, Explanation, Hypothesis, IncidentId, IncidentOutcome,
    IncidentView, Input, Notification, PauseView, Phase, ProbeFailure, ProbeReport, ServiceSignals,
    Severity, TimelineItem, MAX_HYPOTHESES,
};
pub use verify::{judge, Judgement, Sample, Stats, VerifySpec, MAX_SAMPLES};
