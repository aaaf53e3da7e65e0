//! Staged canaries (issue 10): the plan from configuration, the window the
//! driver samples, the samples it answers with, and the recorded verdicts.
//!
//! A heal whose governance decision is `run-canary` on a service with a
//! [`CanaryPlan`] runs stage by stage (default 10 % → 50 % → 100 % of the
//! plan's instances). After each stage but the last the engine asks the
//! driver for samples of the changed instances and of the unchanged ones
//! ([`crate::Command::CollectCanary`]) and judges them with
//! [`medic_canary::judge`] when they arrive ([`crate::Input::CanarySamples`])
//! or, without them, at the deadline (which fails: no canary data). Pass → the
//! next stage, through the gates again; marginal → judged once more
//! (`marginal_rejudge` times), then fail; fail → the changed instances are
//! rolled back with the action's `revert` and the incident escalates
//! (`canary_failed`).
use std::time::Duration;

use crate::time::MonoTime;
use crate::types::IncidentId;

/// How one service's canary runs.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryPlan {
    /// Instance names in rollout order.
    pub instances: Vec<String>,
    /// Percent of instances changed after each stage, ascending; the last
    /// is 100.
    pub stages: Vec<u8>,
    /// How long each stage is sampled before it is judged.
    pub window: Duration,
    /// The samples must arrive within this much after the window.
    pub grace: Duration,
    /// Marginal verdicts judged again (a fresh window) before they count as
    /// a failure.
    pub marginal_rejudge: u32,
    pub judge: medic_canary::JudgeConfig,
    pub metrics: Vec<medic_canary::MetricConfig>,
}

impl CanaryPlan {
    /// Default stages.
    pub const STAGES: [u8; 3] = [10, 50, 100];
    /// The latency (ms) and error-share metrics the daemon samples.
    pub const LATENCY: &'static str = "latency_ms";
    pub const ERRORS: &'static str = "error";

    /// A plan with the defaults: 10/50/100 %, 30 s windows, both metrics.
    pub fn new(instances: Vec<String>) -> Self {
        CanaryPlan {
            instances,
            stages: Self::STAGES.to_vec(),
            window: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            marginal_rejudge: 1,
            judge: medic_canary::JudgeConfig::default(),
            metrics: vec![
                medic_canary::MetricConfig::latency_ms(Self::LATENCY),
                medic_canary::MetricConfig::error_share(Self::ERRORS),
            ],
        }
    }

    /// Instances changed once stage `i` (0-based) is done: at least one more
    /// than before, and all of them only at the last stage.
    pub fn changed_after(&self, i: usize, before: usize) -> usize {
        let n = self.instances.len();
        let last = i + 1 >= self.stages.len();
        if last {
            return n;
        }
        let pct = usize::from(self.stages.get(i).copied().unwrap_or(100).min(100));
        let want = (n * pct).div_ceil(100);
        want.max(before + 1).min(n.saturating_sub(1)).max(before)
    }

    /// Percent of stage `i`.
    pub fn percent(&self, i: usize) -> u8 {
        if i + 1 >= self.stages.len() {
            100
        } else {
            self.stages.get(i).copied().unwrap_or(100)
        }
    }
}

/// What the driver is asked to sample ([`crate::Command::CollectCanary`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryWindow {
    pub service: String,
    pub incident: IncidentId,
    /// 1-based stage being judged.
    pub stage: u32,
    /// Instances already changed.
    pub canary: Vec<String>,
    /// Instances not changed yet.
    pub baseline: Vec<String>,
    /// Sample for this long, then answer.
    pub window: Duration,
}

/// The driver's answer to a [`CanaryWindow`] ([`crate::Input::CanarySamples`]).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CanarySamples {
    pub service: String,
    pub stage: u32,
    /// Per metric, the canary's and the baseline's samples.
    pub metrics: Vec<medic_canary::MetricSamples>,
}

/// A judged stage, kept with its incident for `explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryRecord {
    pub at: MonoTime,
    pub action: String,
    /// 1-based stage.
    pub stage: u32,
    pub percent: u8,
    /// The changed instances it judged.
    pub canary: Vec<String>,
    pub baseline: Vec<String>,
    pub verdict: medic_canary::Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: usize) -> CanaryPlan {
        CanaryPlan::new((0..n).map(|i| format!("i{i}")).collect())
    }

    #[test]
    fn ten_instances_go_one_five_ten() {
        let p = plan(10);
        assert_eq!(p.changed_after(0, 0), 1);
        assert_eq!(p.changed_after(1, 1), 5);
        assert_eq!(p.changed_after(2, 5), 10);
    }

    #[test]
    fn small_targets_still_keep_a_baseline_until_the_last_stage() {
        let p = plan(2);
        assert_eq!(p.changed_after(0, 0), 1);
        assert_eq!(p.changed_after(1, 1), 1, "no baseline left otherwise");
        assert_eq!(p.changed_after(2, 1), 2);
        let p = plan(3);
        assert_eq!(p.changed_after(0, 0), 1);
        assert_eq!(p.changed_after(1, 1), 2);
    }
}
