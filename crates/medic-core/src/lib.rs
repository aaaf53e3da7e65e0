//! medic-core: the sans-IO healing engine.
//!
//! The engine is a pure, deterministic state machine. Drivers (the daemon, the
//! simulator, tests) feed it [`Input`]s and clock ticks, and drain the
//! [`Command`]s it returns. It never reads a clock, opens a socket, spawns a
//! task or touches the file system; time is passed in as [`MonoTime`] and any
//! randomness comes from the seed in [`EngineConfig`].
//!
//! # Driving contract
//! After every [`Engine::handle_input`] or [`Engine::handle_timeout`] call, drain
//! [`Engine::poll_command`] until it returns `None`, then read
//! [`Engine::poll_timeout`] and call `handle_timeout` no later than that time.
//! Times passed in must never go backwards; an earlier time is treated as the
//! last time seen. Extra or early `handle_timeout` calls do nothing harmful.
//!
//! Inputs:
//! - [`Input::Probe`], [`Input::ActionOutcome`] (exactly one per
//!   [`Command::RunAction`], also after a cancel), [`Input::Operator`];
//! - [`Input::WallClock`] at start and whenever the host clock may have
//!   jumped (freeze windows, timing risk; without it no freeze applies);
//! - [`Input::Signals`] for error budget, capacity headroom and instance count
//!   (unknown values never block);
//! - [`Input::FreezeWindows`] with concrete intervals (cron schedules are
//!   expanded at the edge, by `medic_config::FreezeSpec`).
//!
//! Commands, in the order emitted (an [`Command::Audit`] always comes before
//! the command it explains, and `action.intent` right before its
//! `RunAction`):
//! - [`Command::Audit`]: append to the audit log; if that fails, do not run
//!   the following action (report it failed instead);
//! - [`Command::RunAction`]: execute; [`ActionRequest::stage`] says whether it
//!   is a canary (one instance), a rollout, a retry, a revert, a rollback or
//!   an operator override;
//! - [`Command::CancelAction`]: stop that running action if possible; its
//!   outcome is still reported (as `Cancelled` when stopped);
//! - [`Command::Notify`], [`Command::IncidentChanged`].
//!
//! After an [`Input::Operator`] command, [`Engine::last_operator_result`]
//! says whether it was accepted (for API replies).
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

mod engine;
pub mod governance;
mod rng;
mod spec;
mod time;

pub use engine::{
    ActionFailure, ActionFailureKind, ActionId, ActionRequest, ActionStage, ApprovalView,
    AuditEvent, Command, DecisionRecord, Engine, Explanation, IncidentId, IncidentView, Input,
    Notification, OperatorCommand, OperatorResult, PauseView, Phase, ProbeFailure, ProbeReport,
    ServiceSignals, Severity, TimelineItem,
};
pub use governance::{
    decide, risk_score, ActionClass, ActionGovernance, ApprovalPolicy, Block, Decision,
    FreezeWindow, GateConfig, GateInput, GovernanceConfig, Limits, ReasonCode, ServiceGovernance,
    TimingConfig,
};
pub use rng::SplitMix64;
pub use spec::{
    ActionKind, ActionSpec, Condition, EngineConfig, FailureRule, LatencyRule, Mode,
    ParseModeError, ProbeSpec, RecoveryRule, Remediation, RetryPolicy, RevertSpec, Risk,
    ServicePolicy, ServiceSpec,
};
pub use time::MonoTime;
