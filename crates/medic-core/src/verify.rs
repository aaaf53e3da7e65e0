//! Verification against the baseline (issue 10): the triggering probe's
//! samples from before an action are compared with its samples during the
//! verify window. Pure arithmetic, no state of its own.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Most probe samples kept per probe for a baseline, and per verification
/// for the observed side.
pub const MAX_SAMPLES: usize = 64;

/// Success criteria of one action's verification (`verify:` in config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifySpec {
    /// The verify window; `None` takes the class's default
    /// ([`crate::ClassFacts::verify`]).
    pub window: Option<Duration>,
    /// Worse when the observed latency median exceeds the baseline's times
    /// this (and by more than `latency_slack`).
    pub max_latency_ratio: f64,
    /// Worse when the observed failure share exceeds the baseline's plus this.
    pub max_failure_increase: f64,
    /// Better (for latency) when the observed median is at most the
    /// baseline's times this.
    pub better_latency_ratio: f64,
    /// Latency differences below this are noise, never "worse".
    pub latency_slack: Duration,
    /// Fewest observed samples before "worse" can be called early.
    pub min_samples: u32,
}

impl Default for VerifySpec {
    fn default() -> Self {
        VerifySpec {
            window: None,
            max_latency_ratio: 1.2,
            max_failure_increase: 0.1,
            better_latency_ratio: 0.8,
            latency_slack: Duration::from_millis(10),
            min_samples: 3,
        }
    }
}

/// One probe result as verification sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub ok: bool,
    pub latency_ms: u64,
}

/// Summary of a set of samples. Latency figures are over successful samples
/// only (a refused connection is fast, which says nothing good).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub samples: u32,
    pub failure_share: f64,
    pub p50_ms: Option<u64>,
    pub p90_ms: Option<u64>,
}

impl Stats {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Option<Stats> {
        let mut n = 0u32;
        let mut failed = 0u32;
        let mut lat: Vec<u64> = Vec::new();
        for s in samples {
            n += 1;
            if s.ok {
                lat.push(s.latency_ms);
            } else {
                failed += 1;
            }
        }
        if n == 0 {
            return None;
        }
        lat.sort_unstable();
        Some(Stats {
            samples: n,
            failure_share: f64::from(failed) / f64::from(n),
            p50_ms: quantile(&lat, 0.5),
            p90_ms: quantile(&lat, 0.9),
        })
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}ms"));
        write!(
            f,
            "{} samples, {:.0}% failed, p50 {}, p90 {}",
            self.samples,
            self.failure_share * 100.0,
            ms(self.p50_ms),
            ms(self.p90_ms)
        )
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// How the observed samples compare with the baseline.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Fewer failures, or a clearly lower latency median, and nothing worse.
    Better,
    /// Neither better nor worse.
    Same,
    /// More failures than allowed.
    WorseFailures,
    /// Latency median above the allowed ratio.
    WorseLatency,
}

impl Judgement {
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Better => "better",
            Judgement::Same => "not_better",
            Judgement::WorseFailures => "worse_failures",
            Judgement::WorseLatency => "worse_latency",
        }
    }

    pub fn worse(self) -> bool {
        matches!(self, Judgement::WorseFailures | Judgement::WorseLatency)
    }
}

/// Compare `observed` with `baseline` under `spec`.
pub fn judge(baseline: &Stats, observed: &Stats, spec: &VerifySpec) -> Judgement {
    const EPS: f64 = 1e-9;
    if observed.failure_share > baseline.failure_share + spec.max_failure_increase + EPS {
        return Judgement::WorseFailures;
    }
    let slack = u64::try_from(spec.latency_slack.as_millis()).unwrap_or(u64::MAX);
    if let (Some(b), Some(o)) = (baseline.p50_ms, observed.p50_ms) {
        if o as f64 > b as f64 * spec.max_latency_ratio && o.saturating_sub(b) > slack {
            return Judgement::WorseLatency;
        }
    }
    if observed.failure_share + EPS < baseline.failure_share {
        return Judgement::Better;
    }
    let latency_better = match (baseline.p50_ms, observed.p50_ms) {
        (Some(b), Some(o)) => o as f64 <= b as f64 * spec.better_latency_ratio && o < b,
        _ => false,
    };
    if latency_better && observed.failure_share <= baseline.failure_share + EPS {
        Judgement::Better
    } else {
        Judgement::Same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ok: bool, ms: u64) -> Sample {
        Sample { ok, latency_ms: ms }
    }

    #[test]
    fn stats_use_successful_latencies_only() {
        let st = Stats::of(&[s(false, 1), s(true, 100), s(true, 300), s(false, 2)]).unwrap();
        assert_eq!(st.samples, 4);
        assert!((st.failure_share - 0.5).abs() < 1e-9);
        assert_eq!(st.p50_ms, Some(100));
        assert_eq!(st.p90_ms, Some(300));
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn judgements() {
        let spec = VerifySpec::default();
        let base = Stats::of(&[s(true, 400), s(true, 420), s(true, 410)]).unwrap();
        let slower = Stats::of(&[s(true, 1500), s(true, 1490), s(true, 1510)]).unwrap();
        let faster = Stats::of(&[s(true, 5), s(true, 6), s(true, 4)]).unwrap();
        let same = Stats::of(&[s(true, 405), s(true, 415), s(true, 400)]).unwrap();
        assert_eq!(judge(&base, &slower, &spec), Judgement::WorseLatency);
        assert_eq!(judge(&base, &faster, &spec), Judgement::Better);
        assert_eq!(judge(&base, &same, &spec), Judgement::Same);
        let failing = Stats::of(&[s(false, 1), s(false, 1), s(true, 3)]).unwrap();
        assert_eq!(judge(&failing, &faster, &spec), Judgement::Better);
        assert_eq!(judge(&faster, &failing, &spec), Judgement::WorseFailures);
        // A refused connection is fast: a failing baseline has no latency,
        // so a healthy but slower answer is not "worse".
        let refused = Stats::of(&[s(false, 0), s(false, 0)]).unwrap();
        assert_eq!(judge(&refused, &same, &spec), Judgement::Better);
        // Tiny absolute differences are noise.
        let fast = Stats::of(&[s(true, 1), s(true, 1)]).unwrap();
        let fast2 = Stats::of(&[s(true, 4), s(true, 4)]).unwrap();
        assert_eq!(judge(&fast, &fast2, &spec), Judgement::Same);
    }
}
