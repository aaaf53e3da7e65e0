//! Crash points for recovery tests: `MEDIC_FAILPOINT=<name>` makes medic kill
//! itself with SIGKILL (no destructors, no flush: a real crash) the first time
//! it reaches the named point. A small env-driven hook rather than the `fail`
//! crate: one point name per process and one action (crash) is all the
//! recovery tests need, and it works in release builds without a feature.
//!
//! | name | where |
//! | --- | --- |
//! | `before_intent` | an action's `action.intent` notice is about to be recorded |
//! | `after_intent` | intent and safety state are durable; the action is about to run |
//! | `mid_execution` | a restart has stopped the old process and not started the new one |
//! | `before_outcome` | the executor finished; its outcome has not reached the engine |
//! | `after_outcome` | the `action.outcome` notice has been recorded |
//!
//! Unset (the normal case) costs one cached lookup per point.
use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const VAR: &str = "MEDIC_FAILPOINT";

/// Every point, in the order an action passes them.
pub const POINTS: [&str; 5] = [
    "before_intent",
    "after_intent",
    "mid_execution",
    "before_outcome",
    "after_outcome",
];

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(VAR).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Crash here if `MEDIC_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if armed() == Some(point) {
        eprintln!("{VAR}={point}: killing medic (pid {})", std::process::id());
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; should raise fail, stop anyway.
        std::process::abort();
    }
}
