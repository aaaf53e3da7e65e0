//! The engine's view of configuration: plain data, validated by the config
//! crate before it reaches the core. Nothing here knows YAML or IO.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::governance::GovernanceConfig;

/// How much the engine may do on its own.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Mode {
    /// No automation at all: probes run and incidents are recorded.
    Disabled,
    /// Decide and record what would be done; never act.
    #[default]
    DryRun,
    /// Act automatically on low-risk actions only.
    Conservative,
    /// Act automatically on low- and medium-risk actions.
    Aggressive,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disabled => "disabled",
            Mode::DryRun => "dry-run",
            Mode::Conservative => "conservative",
            Mode::Aggressive => "aggressive",
        }
    }

    /// The one of `self` and `other` that lets the engine do less.
    pub fn most_restrictive(self, other: Mode) -> Mode {
        let rank = |m: Mode| match m {
            Mode::Disabled => 0,
            Mode::DryRun => 1,
            Mode::Conservative => 2,
            Mode::Aggressive => 3,
        };
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }

    /// Whether this mode lets the engine run actions at all.
    pub fn acts(self) -> bool {
        matches!(self, Mode::Conservative | Mode::Aggressive)
    }

    /// Whether an action of `risk` may run automatically in this mode.
    pub fn allows(self, risk: Risk) -> bool {
        match self {
            Mode::Disabled | Mode::DryRun => false,
            Mode::Conservative => risk <= Risk::Low,
            Mode::Aggressive => risk <= Risk::Medium,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseModeError(pub String);

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown mode `{}` (expected one of: disabled, dry-run, conservative, aggressive)",
            self.0
        )
    }
}

impl std::error::Error for ParseModeError {}

impl FromStr for Mode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disabled" => Ok(Mode::Disabled),
            "dry-run" | "dryrun" | "dry_run" => Ok(Mode::DryRun),
            "conservative" => Ok(Mode::Conservative),
            "aggressive" => Ok(Mode::Aggressive),
            other => Err(ParseModeError(other.to_string())),
        }
    }
}

/// Risk tier of an action.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// What an action does, as far as the engine's policy is concerned. The
/// executor-specific details (command line, URL, ...) live at the edge, keyed
/// by the action's name.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ActionKind {
    /// Restart the service's supervised process (counts against the restart budget).
    Restart,
    /// Run a command.
    Exec,
    /// Call an HTTP endpoint.
    Http,
    /// Act on the Docker containers of a labelled group (restart, stop,
    /// start, kill); counts as a restart unless a class says otherwise.
    Docker,
    /// Restart, reload, start or stop a systemd unit (`systemctl`).
    Systemd,
    /// A Kubernetes operation: rollout restart, scale, rollout undo, delete
    /// pod, cordon node; counts as a restart unless a class says otherwise.
    Kubernetes,
    /// Send a signal (e.g. `SIGHUP`: reload its config) to the service's
    /// supervised process; class `reload_config` unless one is configured.
    Signal,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Restart => "restart",
            ActionKind::Exec => "exec",
            ActionKind::Http => "http",
            ActionKind::Docker => "docker",
            ActionKind::Systemd => "systemd",
            ActionKind::Kubernetes => "kubernetes",
            ActionKind::Signal => "signal",
        }
    }
}

/// `consecutive` failing results whose span is within `within`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRule {
    pub consecutive: u32,
    pub within: Duration,
}

impl Default for FailureRule {
    fn default() -> Self {
        FailureRule {
            consecutive: 3,
            within: Duration::from_secs(15 * 60),
        }
    }
}

/// Latency above `over` for `consecutive` results in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyRule {
    pub over: Duration,
    pub consecutive: u32,
}

/// `consecutive` healthy results in a row mean recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryRule {
    pub consecutive: u32,
}

impl Default for RecoveryRule {
    fn default() -> Self {
        RecoveryRule { consecutive: 3 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub name: String,
    pub failure: FailureRule,
    pub latency: Option<LatencyRule>,
    pub recovery: RecoveryRule,
    /// Reported when something changes, not on a schedule (an Alertmanager
    /// alert): its failure is never excused by the start phase, since it may
    /// not be reported again (Alertmanager re-sends a firing alert only
    /// after its `repeat_interval`).
    pub event: bool,
}

/// Undo an action after it has held for `after` (e.g. stop shedding load).
/// With `green_checks`, it is undone earlier: after that many healthy
/// results in a row of `green_probe` (default: the incident's trigger) once
/// the incident resolved; `after` is then the expiry (issue 10: a feature
/// flag restores itself after 3 green checks or at expiry; a circuit to a
/// fallback closes after 3 successes of its half-open probe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevertSpec {
    pub action: String,
    pub after: Duration,
    pub green_checks: Option<u32>,
    pub green_probe: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActionSpec {
    pub name: String,
    pub kind: ActionKind,
    /// The tier stated in config; `None` takes the class's default
    /// ([`crate::governance::CLASS_TABLE`]) via [`crate::ResolvedAction`].
    pub risk: Option<Risk>,
    pub revert: Option<RevertSpec>,
    /// Success criteria of its verification against the baseline (issue 10);
    /// `None`: the class's defaults. Stating it makes any action verified as
    /// a change.
    pub verify: Option<crate::verify::VerifySpec>,
}

/// Which probe condition a remediation answers.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Condition {
    /// The probe's failure rule fired.
    Failing,
    /// The probe's latency rule fired.
    Slow,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Failing => "failing",
            Condition::Slow => "slow",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remediation {
    pub probe: String,
    pub condition: Condition,
    pub action: String,
}

/// Backoff for failed executions: `min(cap, base * 2^attempt) + random(0..jitter)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(60),
            jitter: Duration::from_secs(1),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based count of failures so far).
    pub fn delay(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let factor = 2u128.saturating_pow(attempt.min(64));
        let exp_ms = self.base.as_millis().saturating_mul(factor);
        let capped = exp_ms.min(self.cap.as_millis());
        let jitter_ms = (self.jitter.as_millis() as f64 * jitter_unit.clamp(0.0, 1.0)) as u128;
        Duration::from_millis(u64::try_from(capped + jitter_ms).unwrap_or(u64::MAX))
    }
}

/// Per-service safety limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// No restart within this long after the last one.
    pub cooldown: Duration,
    /// At most this many restarts per `budget_window`.
    pub restart_budget: u32,
    pub budget_window: Duration,
    /// This many failed heals within `failed_window` disable autoheal and escalate.
    pub max_failed_heals: u32,
    pub failed_window: Duration,
    /// How long to watch the triggering probe after an action.
    pub verify_window: Duration,
    pub retry: RetryPolicy,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy {
            cooldown: Duration::from_secs(300),
            restart_budget: 3,
            budget_window: Duration::from_secs(3600),
            max_failed_heals: 3,
            failed_window: Duration::from_secs(1800),
            verify_window: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// The start phase of a service's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartupSpec {
    /// Probe failures before the first success, within this long after a
    /// start, are recorded but open no incident. A process exit is still
    /// acted on at once.
    pub grace: Duration,
}

impl Default for StartupSpec {
    fn default() -> Self {
        StartupSpec {
            grace: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub startup: StartupSpec,
    /// Overrides the global mode for this service.
    pub mode: Option<Mode>,
    pub probes: Vec<ProbeSpec>,
    pub actions: Vec<ActionSpec>,
    pub remediations: Vec<Remediation>,
    pub policy: ServicePolicy,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Seed for every random choice the engine makes (retry jitter).
    pub seed: u64,
    /// Prefix for incident ids, unique per engine run (e.g. a start timestamp).
    pub instance: String,
    pub mode: Mode,
    pub services: Vec<ServiceSpec>,
    /// Most timeline entries kept per incident (oldest dropped beyond it).
    pub max_timeline: usize,
    /// Modes aside, every safety rule: gates, limits, approvals, freezes.
    pub governance: GovernanceConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            instance: "0".to_string(),
            mode: Mode::DryRun,
            services: Vec::new(),
            max_timeline: 200,
            governance: GovernanceConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_matches_formula() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(1300));
        assert_eq!(p.delay(20, 0.0), Duration::from_secs(60));
        assert_eq!(p.delay(200, 0.999), Duration::from_millis(60_999));
    }

    #[test]
    fn mode_parse_roundtrip() {
        for m in [
            Mode::Disabled,
            Mode::DryRun,
            Mode::Conservative,
            Mode::Aggressive,
        ] {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("yolo".parse::<Mode>().is_err());
        assert!(!Mode::DryRun.acts());
        assert!(Mode::Aggressive.acts());
    }
}
