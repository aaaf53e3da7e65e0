//! The canary judge (issue 10): compares a canary's samples with the
//! baseline's, metric by metric, and says pass, marginal or fail, with the
//! numbers behind it.
//!
//! Pure: no IO, no clock, no randomness, no hash maps; bounded work (each
//! group is thinned to [`JudgeConfig::max_samples`] before the statistics).
//!
//! Per metric:
//! - **location**: a one-sided Mann-Whitney U test in the metric's bad
//!   direction (canary stochastically greater for higher-is-worse metrics).
//!   Exact null distribution of U when both groups have at most
//!   [`EXACT_MAX_N`] samples and there are no ties; otherwise the normal
//!   approximation with tie correction and continuity correction (as
//!   `scipy.stats.mannwhitneyu(method="asymptotic")`). The metric is worse
//!   when `p < 1 - confidence` **and** the effect exceeds the allowed effect:
//!   Hodges-Lehmann shift (median of all pairwise differences) or difference
//!   of means, against `max(allowed_relative·|baseline centre|,
//!   allowed_absolute)`.
//! - **spread**: a rank Brown-Forsythe test: the absolute deviations of
//!   each group from its own median, compared with the same one-sided U test
//!   (canary deviations larger). It fails when that is significant **and**
//!   the ratio of mean absolute deviations (canary / baseline) exceeds
//!   `max_spread_ratio`. Kayenta's judge compares locations only and misses
//!   a canary that is right on the median but far more erratic.
//! - **data**: a metric with fewer than `min_samples` finite canary (or
//!   baseline) samples fails. Kayenta scores a metric without data as
//!   nothing to compare; here no evidence is never a pass.
//!
//! The verdict: any data or spread failure fails the canary outright; else
//! the score is the share of metrics that pass, `>= pass_score` passes,
//! `>= marginal_score` is marginal, below fails.

use std::cmp::Ordering;
use std::fmt;

use statrs::distribution::{ContinuousCDF, Normal};

/// Largest group size for the exact distribution of U (both groups).
pub const EXACT_MAX_N: usize = 20;

/// Which way a metric gets worse.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Latency, error share: larger is worse.
    HigherIsWorse,
    /// Throughput, success share: smaller is worse.
    LowerIsWorse,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsWorse => "higher_is_worse",
            Direction::LowerIsWorse => "lower_is_worse",
        }
    }
}

/// How the size of a change is measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EffectMeasure {
    /// Median of all pairwise differences canary − baseline (robust; for
    /// continuous metrics such as latency). Relative to the baseline median.
    HodgesLehmann,
    /// Mean(canary) − mean(baseline) (for 0/1 metrics such as "this request
    /// failed", whose medians are 0). Relative to the baseline mean.
    MeanDifference,
}

impl EffectMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectMeasure::HodgesLehmann => "hodges_lehmann",
            EffectMeasure::MeanDifference => "mean_difference",
        }
    }
}

/// One judged metric.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricConfig {
    pub name: String,
    pub direction: Direction,
    pub effect: EffectMeasure,
    /// Allowed worsening as a fraction of the baseline's centre (median for
    /// Hodges-Lehmann, mean for a mean difference): `0.2` = 20 %.
    pub allowed_relative: f64,
    /// Allowed worsening in the metric's unit; the floor when the baseline
    /// centre is 0.
    pub allowed_absolute: f64,
}

impl MetricConfig {
    /// Latency in milliseconds: higher is worse, Hodges-Lehmann shift, 20 %
    /// or 5 ms allowed.
    pub fn latency_ms(name: &str) -> Self {
        MetricConfig {
            name: name.to_string(),
            direction: Direction::HigherIsWorse,
            effect: EffectMeasure::HodgesLehmann,
            allowed_relative: 0.2,
            allowed_absolute: 5.0,
        }
    }

    /// One 0/1 sample per request (1 = failed): higher is worse, difference
    /// of error shares, 2 percentage points allowed.
    pub fn error_share(name: &str) -> Self {
        MetricConfig {
            name: name.to_string(),
            direction: Direction::HigherIsWorse,
            effect: EffectMeasure::MeanDifference,
            allowed_relative: 0.0,
            allowed_absolute: 0.02,
        }
    }
}

/// The judge's thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeConfig {
    /// Confidence of the tests: significant when `p < 1 - confidence`.
    pub confidence: f64,
    /// Share of passing metrics needed to pass.
    pub pass_score: f64,
    /// Share of passing metrics needed for a marginal verdict.
    pub marginal_score: f64,
    /// Fewest finite samples per group and metric.
    pub min_samples: usize,
    /// Largest ratio of mean absolute deviations (canary / baseline) that is
    /// not a failure even when the spread test is significant.
    pub max_spread_ratio: f64,
    /// Each group is thinned (evenly spaced) to at most this many samples.
    pub max_samples: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            confidence: 0.98,
            pass_score: 0.95,
            marginal_score: 0.75,
            min_samples: 10,
            max_spread_ratio: 2.0,
            max_samples: 500,
        }
    }
}

/// The samples of one metric during one judge window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSamples {
    pub metric: String,
    pub canary: Vec<f64>,
    pub baseline: Vec<f64>,
}

/// A metric's or the canary's outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Marginal,
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Marginal => "marginal",
            Outcome::Fail => "fail",
        }
    }
}

/// Why a metric failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// Fewer than `min_samples` finite canary samples (none at all included).
    TooFewCanary,
    /// Fewer than `min_samples` finite baseline samples.
    TooFewBaseline,
    /// Significantly worse, by more than the allowed effect.
    Worse,
    /// Significantly more spread, by more than the allowed ratio.
    SpreadIncrease,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::TooFewCanary => "too_few_canary_samples",
            FailReason::TooFewBaseline => "too_few_baseline_samples",
            FailReason::Worse => "worse",
            FailReason::SpreadIncrease => "spread_increase",
        }
    }

    /// Fails the canary whatever the score.
    pub fn is_hard(self) -> bool {
        !matches!(self, FailReason::Worse)
    }
}

/// How a p-value was computed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact null distribution of U (small groups, no ties).
    Exact,
    /// Normal approximation, tie and continuity corrected.
    Normal,
    /// Not computed (too few samples).
    None,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Normal => "normal",
            Method::None => "none",
        }
    }
}

/// A one-sided Mann-Whitney U test.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct UTest {
    /// U of the first group (the canary), as `scipy.stats.mannwhitneyu`
    /// reports it: pairs where it is larger, ties counting one half.
    pub u: f64,
    /// One-sided p-value in the tested direction.
    pub p_value: f64,
    pub method: Method,
}

/// The spread check of one metric.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SpreadCheck {
    /// Mean absolute deviation from the median, canary / baseline
    /// (infinite when only the baseline has none).
    pub ratio: f64,
    /// One-sided p-value that the canary's deviations are larger.
    pub p_value: f64,
    pub failed: bool,
}

/// The verdict on one metric, with everything it rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricVerdict {
    pub metric: String,
    pub outcome: Outcome,
    pub fail: Option<FailReason>,
    /// Finite samples used (after thinning).
    pub n_canary: usize,
    pub n_baseline: usize,
    /// Non-finite samples ignored (both groups).
    pub dropped: usize,
    pub test: UTest,
    pub effect_measure: EffectMeasure,
    /// The change in the bad direction (positive = worse).
    pub effect: f64,
    pub allowed_effect: f64,
    pub spread: SpreadCheck,
    /// One line: what was found.
    pub explanation: String,
}

/// The canary's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Share of metrics that passed, in `[0, 1]`.
    pub score: f64,
    pub metrics: Vec<MetricVerdict>,
    pub explanation: String,
}

impl fmt::Display for MetricVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// Judge a canary: one verdict per configured metric, then the score.
pub fn judge(cfg: &JudgeConfig, metrics: &[MetricConfig], samples: &[MetricSamples]) -> Verdict {
    let empty = MetricSamples::default();
    let verdicts: Vec<MetricVerdict> = metrics
        .iter()
        .map(|m| {
            let s = samples
                .iter()
                .find(|s| s.metric == m.name)
                .unwrap_or(&empty);
            judge_metric(cfg, m, &s.canary, &s.baseline)
        })
        .collect();
    let passed = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Pass)
        .count();
    let score = if verdicts.is_empty() {
        0.0
    } else {
        passed as f64 / verdicts.len() as f64
    };
    let hard = verdicts
        .iter()
        .find(|v| v.fail.is_some_and(FailReason::is_hard) || v.spread.failed);
    let (outcome, why) = if verdicts.is_empty() {
        (Outcome::Fail, "no metrics to judge".to_string())
    } else if let Some(h) = hard {
        (
            Outcome::Fail,
            format!(
                "{} failed ({}), which fails the canary whatever the score",
                h.metric,
                match h.fail {
                    Some(f) if h.spread.failed && f != FailReason::SpreadIncrease =>
                        format!("{}; spread_increase", f.as_str()),
                    Some(f) => f.as_str().to_string(),
                    None => FailReason::SpreadIncrease.as_str().to_string(),
                }
            ),
        )
    } else if score >= cfg.pass_score {
        (
            Outcome::Pass,
            format!("score {:.2} >= pass {:.2}", score, cfg.pass_score),
        )
    } else if score >= cfg.marginal_score {
        (
            Outcome::Marginal,
            format!(
                "score {:.2} < pass {:.2}, >= marginal {:.2}",
                score, cfg.pass_score, cfg.marginal_score
            ),
        )
    } else {
        (
            Outcome::Fail,
            format!("score {:.2} < marginal {:.2}", score, cfg.marginal_score),
        )
    };
    Verdict {
        outcome,
        score,
        explanation: format!(
            "{}: {passed}/{} metrics passed; {why}",
            outcome.as_str(),
            verdicts.len()
        ),
        metrics: verdicts,
    }
}

/// Judge one metric.
pub fn judge_metric(
    cfg: &JudgeConfig,
    m: &MetricConfig,
    canary: &[f64],
    baseline: &[f64],
) -> MetricVerdict {
    let (c, dc) = finite_thinned(canary, cfg.max_samples);
    let (b, db) = finite_thinned(baseline, cfg.max_samples);
    let alpha = (1.0 - cfg.confidence).clamp(0.0, 1.0);
    let min = cfg.min_samples.max(1);
    let mut v = MetricVerdict {
        metric: m.name.clone(),
        outcome: Outcome::Fail,
        fail: None,
        n_canary: c.len(),
        n_baseline: b.len(),
        dropped: dc + db,
        test: UTest {
            u: f64::NAN,
            p_value: f64::NAN,
            method: Method::None,
        },
        effect_measure: m.effect,
        effect: f64::NAN,
        allowed_effect: f64::NAN,
        spread: SpreadCheck {
            ratio: f64::NAN,
            p_value: f64::NAN,
            failed: false,
        },
        explanation: String::new(),
    };
    if c.len() < min || b.len() < min {
        let (reason, n, which) = if c.len() < min {
            (FailReason::TooFewCanary, c.len(), "canary")
        } else {
            (FailReason::TooFewBaseline, b.len(), "baseline")
        };
        v.fail = Some(reason);
        v.explanation = format!(
            "{}: fail, {n} {which} samples (at least {min} needed; {} non-finite dropped)",
            m.name, v.dropped
        );
        return v;
    }
    // Orient so that "greater" is always worse.
    let sign = match m.direction {
        Direction::HigherIsWorse => 1.0,
        Direction::LowerIsWorse => -1.0,
    };
    let test = match m.direction {
        Direction::HigherIsWorse => mann_whitney_greater(&c, &b),
        Direction::LowerIsWorse => {
            let t = mann_whitney_greater(&b, &c);
            // Report the canary's own U (scipy's statistic), p of "less".
            UTest {
                u: (c.len() * b.len()) as f64 - t.u,
                ..t
            }
        }
    };
    let (effect, centre) = match m.effect {
        EffectMeasure::HodgesLehmann => (hodges_lehmann(&c, &b), median(&b)),
        EffectMeasure::MeanDifference => (mean(&c) - mean(&b), mean(&b)),
    };
    let effect = sign * effect;
    let allowed = (m.allowed_relative.abs() * centre.abs()).max(m.allowed_absolute.abs());
    let spread = spread_check(&c, &b, alpha, cfg.max_spread_ratio);
    let worse = test.p_value < alpha && effect > allowed;
    v.test = test;
    v.effect = effect;
    v.allowed_effect = allowed;
    v.spread = spread;
    // A shifted metric usually spreads more in absolute terms too: the
    // shift is named first; the spread failure still fails the canary.
    v.fail = if worse {
        Some(FailReason::Worse)
    } else if spread.failed {
        Some(FailReason::SpreadIncrease)
    } else {
        None
    };
    v.outcome = if v.fail.is_some() {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    v.explanation = format!(
        "{}: {} ({}); U={} p={:.4} ({}, {} vs {} samples, alpha {:.3}); effect {}={:.4} allowed {:.4}; spread ratio {:.2} p={:.4}{}",
        m.name,
        v.outcome.as_str(),
        v.fail.map(FailReason::as_str).unwrap_or("no significant worsening"),
        test.u,
        test.p_value,
        test.method.as_str(),
        c.len(),
        b.len(),
        alpha,
        m.effect.as_str(),
        effect,
        allowed,
        spread.ratio,
        spread.p_value,
        if v.dropped > 0 {
            format!("; {} non-finite dropped", v.dropped)
        } else {
            String::new()
        }
    );
    v
}

/// Finite values, thinned to at most `max` evenly spaced ones; and how many
/// were not finite.
fn finite_thinned(xs: &[f64], max: usize) -> (Vec<f64>, usize) {
    let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let dropped = xs.len() - finite.len();
    let max = max.max(1);
    if finite.len() <= max {
        return (finite, dropped);
    }
    let n = finite.len();
    let thinned = (0..max)
        .filter_map(|i| finite.get(i * n / max).copied())
        .collect();
    (thinned, dropped)
}

/// The rank Brown-Forsythe check: absolute deviations from each group's
/// median, canary's larger?
fn spread_check(c: &[f64], b: &[f64], alpha: f64, max_ratio: f64) -> SpreadCheck {
    let mc = median(c);
    let mb = median(b);
    let dc: Vec<f64> = c.iter().map(|x| (x - mc).abs()).collect();
    let db: Vec<f64> = b.iter().map(|x| (x - mb).abs()).collect();
    let (sc, sb) = (mean(&dc), mean(&db));
    let ratio = if sb > 0.0 {
        sc / sb
    } else if sc > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    let t = mann_whitney_greater(&dc, &db);
    SpreadCheck {
        ratio,
        p_value: t.p_value,
        failed: t.p_value < alpha && ratio > max_ratio,
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    median_in_place(&mut v)
}

fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo + hi) / 2.0
}

/// Hodges-Lehmann estimate of the shift canary − baseline: the median of all
/// pairwise differences.
pub fn hodges_lehmann(c: &[f64], b: &[f64]) -> f64 {
    let mut d: Vec<f64> = Vec::with_capacity(c.len().saturating_mul(b.len()));
    for x in c {
        for y in b {
            d.push(x - y);
        }
    }
    median_in_place(&mut d)
}

/// One-sided Mann-Whitney U test that `x` is stochastically greater than `y`
/// (`scipy.stats.mannwhitneyu(x, y, alternative="greater")`). Exact when both
/// groups have at most [`EXACT_MAX_N`] values and there are no ties, else
/// the normal approximation with tie and continuity correction. Non-finite
/// values must be removed first; empty groups give `p = 1`.
pub fn mann_whitney_greater(x: &[f64], y: &[f64]) -> UTest {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return UTest {
            u: 0.0,
            p_value: 1.0,
            method: Method::None,
        };
    }
    // Ranks of the pooled sample, ties sharing their average rank.
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut r1 = 0.0;
    let mut tie_term = 0.0;
    let mut ties = false;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0.total_cmp(&pooled[i].0) == Ordering::Equal {
            j += 1;
        }
        let t = (j - i) as f64;
        if j - i > 1 {
            ties = true;
            tie_term += t * t * t - t;
        }
        // Ranks i+1 ..= j, average:
        let rank = (i + 1 + j) as f64 / 2.0;
        let in_x = pooled[i..j].iter().filter(|p| p.1).count();
        r1 += rank * in_x as f64;
        i = j;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u = r1 - f1 * (f1 + 1.0) / 2.0;
    if !ties && n1 <= EXACT_MAX_N && n2 <= EXACT_MAX_N {
        // U is an integer without ties.
        let k = u.round() as usize;
        return UTest {
            u,
            p_value: exact_sf(k, n1, n2),
            method: Method::Exact,
        };
    }
    let mu = f1 * f2 / 2.0;
    let nn = n as f64;
    let var = f1 * f2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    let p = if var > 0.0 {
        let z = (u - mu - 0.5) / var.sqrt();
        Normal::standard().sf(z)
    } else {
        // Every value tied: no evidence either way.
        1.0
    };
    UTest {
        u,
        p_value: p.clamp(0.0, 1.0),
        method: Method::Normal,
    }
}

/// `P(U >= k)` under the null for groups of `m` and `n` values without ties:
/// the counts of U are the coefficients of the Gaussian binomial
/// `[m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)`.
fn exact_sf(k: usize, m: usize, n: usize) -> f64 {
    let counts = u_counts(m, n);
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if total <= 0.0 {
        return 1.0;
    }
    let tail: f64 = counts.iter().skip(k).map(|&c| c as f64).sum();
    (tail / total).clamp(0.0, 1.0)
}

/// Number of arrangements for each U in `0..=m·n` (m, n ≤ [`EXACT_MAX_N`]:
/// at most C(40, 20) ≈ 1.4e11 in total, exact in i128).
fn u_counts(m: usize, n: usize) -> Vec<i128> {
    let len = m * n + 1;
    let mut c = vec![0i128; len];
    c[0] = 1;
    for i in 1..=m {
        // Multiply by (1 - q^(n+i)), from the top down.
        let s = n + i;
        for k in (s..len).rev() {
            c[k] -= c[k - s];
        }
        // Divide by (1 - q^i): a running sum with stride i.
        for k in i..len {
            c[k] += c[k - i];
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_counts_sum_to_the_binomial() {
        let c = u_counts(3, 4);
        assert_eq!(c.iter().sum::<i128>(), 35);
        assert_eq!(c, vec![1, 1, 2, 3, 4, 4, 5, 4, 4, 3, 2, 1, 1]);
        let big = u_counts(20, 20);
        assert_eq!(big.iter().sum::<i128>(), 137_846_528_820);
        assert!(big.iter().all(|&x| x > 0));
    }
}
