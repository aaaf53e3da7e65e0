//! The YAML shape of medic.yaml, as written by operators. Every struct denies
//! unknown fields so a typo is an error with a location, not a silent default.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A humantime duration such as `30s`, `5m`, `1h 30m`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{s}`: {e} (use e.g. 30s, 5m, 250ms)"
            ))
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub mode: Option<Spanned<String>>,
    pub listen: Option<Spanned<String>>,
    /// `tokens` (default) or `none`.
    pub auth: Option<Spanned<String>>,
    pub database: Option<String>,
    /// `store: { url: postgres://… }` instead of the SQLite `database`.
    pub store: Option<crate::store::RawStore>,
    pub notify: Option<RawNotify>,
    pub otlp: Option<crate::otlp::RawOtlp>,
    pub ai: Option<crate::ai::RawAi>,
    pub policy: Option<RawPolicy>,
    pub services: BTreeMap<String, Spanned<RawService>>,
    pub signals: Option<RawSignals>,
    pub governance: Option<crate::governance::RawGovernance>,
    pub drills: Option<crate::drills::RawDrills>,
    pub ha: Option<crate::ha::RawHa>,
    /// Operator pattern files (issue 9), relative to the config file.
    #[serde(default)]
    pub patterns: Vec<String>,
}

pub use crate::notify::RawNotify;

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub cooldown: Option<Dur>,
    pub restart_budget: Option<u32>,
    pub budget_window: Option<Dur>,
    pub max_failed_heals: Option<u32>,
    pub failed_heal_window: Option<Dur>,
    pub verify_window: Option<Dur>,
    pub max_attempts: Option<u32>,
    pub retry_base: Option<Dur>,
    pub retry_cap: Option<Dur>,
    pub retry_jitter: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub mode: Option<Spanned<String>>,
    pub process: Option<RawProcess>,
    #[serde(default)]
    pub probes: BTreeMap<String, Spanned<RawProbe>>,
    #[serde(default)]
    pub actions: BTreeMap<String, Spanned<RawAction>>,
    #[serde(default)]
    pub remediate: Vec<RawRemediate>,
    pub policy: Option<RawPolicy>,
    pub startup: Option<RawStartup>,
    /// Services this one calls (issue 9): names, or `{service, kind}`.
    #[serde(default)]
    pub depends_on: Vec<Spanned<crate::deps::RawDep>>,
    /// Staged canary over the service's instances (issue 10).
    pub canary: Option<crate::canary::RawCanary>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStartup {
    pub grace: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcess {
    pub command: Spanned<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub stop_grace: Option<Dur>,
    pub unresponsive_stop_grace: Option<Dur>,
    pub autostart: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub http: Option<RawHttpProbe>,
    pub tcp: Option<RawTcpProbe>,
    pub exec: Option<RawExecProbe>,
    pub process: Option<RawEmpty>,
    pub docker: Option<RawDockerProbe>,
    pub interval: Option<Dur>,
    pub failure: Option<RawFailure>,
    pub latency: Option<RawLatency>,
    pub recovery: Option<RawRecovery>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProbe {
    pub url: Spanned<String>,
    pub expect_status: Option<u16>,
    pub body_contains: Option<String>,
    pub timeout: Option<Dur>,
    pub keep_alive: Option<bool>,
    pub keep_alive_max_age: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpProbe {
    pub address: Spanned<String>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExecProbe {
    pub command: Spanned<Vec<String>>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDockerProbe {
    pub label: Spanned<String>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailure {
    pub consecutive: Spanned<u32>,
    pub within: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLatency {
    pub over: Dur,
    pub consecutive: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub consecutive: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub restart: Option<RawEmpty>,
    pub signal: Option<RawSignalAction>,
    pub exec: Option<RawExecAction>,
    pub http: Option<RawHttpAction>,
    pub docker: Option<RawDockerAction>,
    pub systemd: Option<RawSystemdAction>,
    pub kubernetes: Option<RawKubernetesAction>,
    pub risk: Option<Spanned<String>>,
    pub revert: Option<RawRevert>,
    /// Verification against the baseline (issue 10).
    pub verify: Option<Spanned<RawVerify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub window: Option<Dur>,
    pub max_latency_ratio: Option<f64>,
    pub max_failure_increase: Option<f64>,
    pub better_latency_ratio: Option<f64>,
    pub latency_slack: Option<Dur>,
    pub min_samples: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignalAction {
    pub signal: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExecAction {
    pub command: Spanned<Vec<String>>,
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystemdAction {
    pub op: Spanned<String>,
    pub unit: Spanned<String>,
    #[serde(default)]
    pub user: bool,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesAction {
    pub op: Spanned<String>,
    pub namespace: Option<Spanned<String>>,
    pub deployment: Option<Spanned<String>>,
    pub pod: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub replicas: Option<Spanned<u32>>,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDockerAction {
    pub op: Spanned<String>,
    pub label: Spanned<String>,
    pub signal: Option<Spanned<String>>,
    pub grace: Option<Dur>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpAction {
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    pub body: Option<String>,
    pub expect_status: Option<u16>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevert {
    pub action: Spanned<String>,
    pub after: Dur,
    pub green_checks: Option<Spanned<u32>>,
    pub probe: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemediate {
    pub when: RawWhen,
    pub action: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub probe: Spanned<String>,
    pub condition: Option<Spanned<String>>,
}

// === signals ===

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSignals {
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<RawSource>>,
    #[serde(default)]
    pub rules: BTreeMap<String, Spanned<RawRule>>,
    pub alertmanager: Option<RawAlertmanager>,
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub prometheus: Option<RawUrlSource>,
    pub scrape: Option<RawUrlSource>,
    pub log: Option<RawLogSource>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlSource {
    pub url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogSource {
    pub path: Spanned<String>,
    pub from_start: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub service: Spanned<String>,
    pub source: Spanned<String>,
    pub query: Option<Spanned<String>>,
    pub metric: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "match")]
    pub matches: Option<Spanned<String>>,
    pub above: Option<Spanned<f64>>,
    pub below: Option<Spanned<f64>>,
    #[serde(rename = "for")]
    pub for_: Option<Dur>,
    pub detector: Option<Spanned<String>>,
    pub threshold: Option<Spanned<f64>>,
    pub no_data: Option<Spanned<String>>,
    pub failure: Option<RawFailure>,
    pub recovery: Option<RawRecovery>,
    pub breaker: Option<RawBreaker>,
    /// The rule's kind of signal in root-cause ranking (issue 9).
    pub kind: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    pub service_label: Option<Spanned<String>>,
    #[serde(default)]
    pub alerts: BTreeMap<String, Spanned<RawAlert>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    pub services: Option<Spanned<Vec<String>>>,
    pub recovery: Option<RawRecovery>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub enabled: Option<bool>,
    pub baseline: Option<Spanned<f64>>,
    pub factor: Option<Spanned<f64>>,
    pub cooldown: Option<Dur>,
}
