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
