//! `services.<name>.canary:` staged canaries (issue 10): the instances, the
//! stages, the judge window and the judge's thresholds. See docs/canary.md.
use std::time::Duration;

use medic_core::medic_canary::{JudgeConfig, MetricConfig};
use medic_core::CanaryPlan;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub instances: Spanned<Vec<RawInstance>>,
    pub stages: Option<Spanned<Vec<u8>>>,
    pub window: Option<Dur>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub confidence: Option<Spanned<f64>>,
    pub pass_score: Option<Spanned<f64>>,
    pub marginal_score: Option<Spanned<f64>>,
    pub marginal_rejudge: Option<u32>,
    pub min_samples: Option<Spanned<u32>>,
    pub max_spread_ratio: Option<Spanned<f64>>,
    pub latency: Option<RawEffect>,
    pub errors: Option<RawEffect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEffect {
    pub allowed_relative: Option<Spanned<f64>>,
    pub allowed_absolute: Option<Spanned<f64>>,
}

/// What the daemon needs to sample a service's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryConfig {
    /// `(name, url)` in rollout order.
    pub instances: Vec<(String, String)>,
    /// Time between two samples of one instance.
    pub interval: Duration,
    /// Timeout of one sample request (a timeout is an error sample).
    pub timeout: Duration,
}

impl CanaryConfig {
    pub fn url(&self, instance: &str) -> Option<&str> {
        self.instances
            .iter()
            .find(|(n, _)| n == instance)
            .map(|(_, u)| u.as_str())
    }
}

impl Validator {
    /// A service's canary: the engine's plan and the daemon's sampling.
    pub(crate) fn canary(&mut self, service: &str, raw: RawCanary) -> (CanaryPlan, CanaryConfig) {
        let mut instances: Vec<(String, String)> = Vec::new();
        for i in &raw.instances.value {
            self.url(&i.url);
            if i.name.value.trim().is_empty() {
                self.at(i.name.referenced, "canary instance name must not be empty");
            } else if instances.iter().any(|(n, _)| *n == i.name.value) {
                self.at(
                    i.name.referenced,
                    format!("duplicate canary instance `{}`", i.name.value),
                );
            }
            instances.push((i.name.value.clone(), i.url.value.clone()));
        }
        if instances.len() < 2 {
            self.at(
                raw.instances.referenced,
                format!(
                    "service {service}: canary.instances needs at least 2 instances (got {})",
                    instances.len()
                ),
            );
        }
        let mut plan = CanaryPlan::new(instances.iter().map(|(n, _)| n.clone()).collect());
        if let Some(st) = &raw.stages {
            let ok = !st.value.is_empty()
                && st.value.windows(2).all(|w| w[0] < w[1])
                && st.value.first().is_some_and(|&p| p > 0)
                && st.value.last() == Some(&100);
            if ok {
                plan.stages = st.value.clone();
            } else {
                self.at(
                    st.referenced,
                    format!(
                        "canary.stages must be ascending percents in 1..=100 ending with 100 (got {:?})",
                        st.value
                    ),
                );
            }
        }
        if let Some(w) = raw.window {
            if w.0.is_zero() {
                self.problems.push(crate::Problem {
                    line: raw.instances.referenced.line(),
                    column: raw.instances.referenced.column(),
                    message: format!("service {service}: canary.window must be positive"),
                });
            } else {
                plan.window = w.0;
            }
        }
        plan.grace = plan.window.max(Duration::from_secs(5));
        plan.marginal_rejudge = raw.marginal_rejudge.unwrap_or(plan.marginal_rejudge);
        let d = JudgeConfig::default();
        let confidence = self.open_ratio(&raw.confidence, "canary.confidence", d.confidence);
        let pass = self.ratio(&raw.pass_score, "canary.pass_score", d.pass_score);
        let marginal = self.ratio(
            &raw.marginal_score,
            "canary.marginal_score",
            d.marginal_score,
        );
        if marginal > pass {
            if let Some(m) = &raw.marginal_score {
                self.at(
                    m.referenced,
                    format!(
                        "canary.marginal_score ({marginal}) must not exceed pass_score ({pass})"
                    ),
                );
            }
        }
        let min_samples = match &raw.min_samples {
            Some(m) if m.value == 0 => {
                self.at(m.referenced, "canary.min_samples must be at least 1");
                d.min_samples
            }
            Some(m) => m.value as usize,
            None => d.min_samples,
        };
        let max_spread_ratio = match &raw.max_spread_ratio {
            Some(m) if !(m.value >= 1.0 && m.value.is_finite()) => {
                self.at(
                    m.referenced,
                    format!(
                        "canary.max_spread_ratio must be at least 1 (got {})",
                        m.value
                    ),
                );
                d.max_spread_ratio
            }
            Some(m) => m.value,
            None => d.max_spread_ratio,
        };
        plan.judge = JudgeConfig {
            confidence,
            pass_score: pass,
            marginal_score: marginal,
            min_samples,
            max_spread_ratio,
            max_samples: d.max_samples,
        };
        let mut latency = MetricConfig::latency_ms(CanaryPlan::LATENCY);
        self.effect(&raw.latency, &mut latency);
        let mut errors = MetricConfig::error_share(CanaryPlan::ERRORS);
        self.effect(&raw.errors, &mut errors);
        plan.metrics = vec![latency, errors];
        let interval = raw.interval.map_or(Duration::from_millis(500), |d| d.0);
        let timeout = raw.timeout.map_or(Duration::from_secs(2), |d| d.0);
        (
            plan,
            CanaryConfig {
                instances,
                interval: interval.max(Duration::from_millis(10)),
                timeout,
            },
        )
    }

    /// A number in (0, 1).
    fn open_ratio(&mut self, v: &Option<Spanned<f64>>, name: &str, default: f64) -> f64 {
        match v {
            Some(x) if x.value > 0.0 && x.value < 1.0 => x.value,
            Some(x) => {
                self.at(
                    x.referenced,
                    format!(
                        "{name} must be between 0 and 1, exclusive (got {})",
                        x.value
                    ),
                );
                default
            }
            None => default,
        }
    }

    fn effect(&mut self, raw: &Option<RawEffect>, m: &mut MetricConfig) {
        let Some(r) = raw else {
            return;
        };
        for (v, slot, what) in [
            (
                &r.allowed_relative,
                &mut m.allowed_relative,
                "allowed_relative",
            ),
            (
                &r.allowed_absolute,
                &mut m.allowed_absolute,
                "allowed_absolute",
            ),
        ] {
            if let Some(x) = v {
                if x.value >= 0.0 && x.value.is_finite() {
                    *slot = x.value;
                } else {
                    self.at(
                        x.referenced,
                        format!(
                            "canary {}.{what} must be a number >= 0 (got {})",
                            m.name, x.value
                        ),
                    );
                }
            }
        }
    }
}
