//! Streaming online anomaly detectors for medic.
//!
//! Every detector consumes one `(timestamp, value)` sample at a time and returns an anomaly
//! score in `[0, 1]` for that sample, without look-ahead, in bounded memory, deterministically
//! (no clock, no IO, seeded randomness only). Non-finite input never panics: it scores 0 and
//! leaves the state unchanged.
//!
//! Detectors are built with sensible defaults by name ([`by_name`], [`NAMES`]) or configured
//! through their plain `*Params` structs.

#![forbid(unsafe_code)]

pub mod ensemble;
pub mod forest;
pub mod seasonal;
pub mod simple;
pub mod surprise;
pub mod synth;
pub mod trend;
pub mod util;

pub use ensemble::{Ensemble, EnsembleParams};
pub use forest::{ForestParams, IsolationForest};
pub use seasonal::{Season, SeasonalBaseline, SeasonalParams};
pub use simple::{
    Ewma, EwmaParams, MadParams, MedianMad, PercentileBands, PercentileParams, RollingZScore,
    StaticThreshold, ThresholdParams, ZScoreParams,
};
pub use surprise::{Surprise, SurpriseParams};
pub use trend::{TrendDetector, TrendParams};

/// A streaming anomaly detector: one sample in, one score in `[0, 1]` out.
pub trait Detector: Send {
    /// Stable short name (one of [`NAMES`]).
    fn name(&self) -> &'static str;
    /// Consumes the sample at `ts_secs` (Unix seconds) and returns its anomaly score in `[0, 1]`.
    fn update(&mut self, ts_secs: i64, value: f64) -> f64;
}

/// Names accepted by [`by_name`]. `default` is the best general-purpose detector.
pub const NAMES: &[&str] = &[
    "default",
    "threshold",
    "zscore",
    "mad",
    "ewma",
    "percentile",
    "seasonal",
    "trend",
    "forest",
    "ensemble",
    "surprise",
];

/// Builds a detector with default parameters by name; `None` for an unknown name.
#[must_use]
pub fn by_name(name: &str) -> Option<Box<dyn Detector>> {
    Some(match name {
        "default" => Box::new(Surprise::default()),
        "threshold" => Box::new(StaticThreshold::default()),
        "zscore" => Box::new(RollingZScore::default()),
        "mad" => Box::new(MedianMad::default()),
        "ewma" => Box::new(Ewma::default()),
        "percentile" => Box::new(PercentileBands::default()),
        "seasonal" => Box::new(SeasonalBaseline::default()),
        "trend" => Box::new(TrendDetector::default()),
        "forest" => Box::new(IsolationForest::default()),
        "ensemble" => Box::new(Ensemble::default()),
        "surprise" => Box::new(Surprise::default()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::daily_series;

    const STEP: i64 = 300;

    fn run(d: &mut dyn Detector, series: &[(i64, f64)]) -> Vec<f64> {
        series.iter().map(|&(t, v)| d.update(t, v)).collect()
    }

    #[test]
    fn every_name_builds_and_reports_its_name() {
        for n in NAMES {
            let d = by_name(n);
            assert!(d.is_some(), "{n}");
            if let Some(d) = d {
                if *n != "default" {
                    assert_eq!(d.name(), *n);
                }
            }
        }
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn flat_series_is_quiet_for_every_detector() {
        let series: Vec<(i64, f64)> = (0..3000).map(|i| (i * STEP, 42.0)).collect();
        for n in NAMES {
            let Some(mut d) = by_name(n) else { continue };
            let s = run(d.as_mut(), &series);
            let max = s.iter().copied().fold(0.0, f64::max);
            assert!(max < 0.05, "{n}: flat series scored {max}");
        }
    }

    #[test]
    fn spike_is_detected_by_every_point_detector() {
        let mut series = daily_series(3000, STEP, 11, 0.0);
        let spike_at = 2500;
        series[spike_at].1 += 100.0;
        for n in NAMES {
            if *n == "trend" {
                continue; // a single spike is not a trend; see trend tests
            }
            let Some(mut d) = by_name(n) else { continue };
            let s = run(d.as_mut(), &series);
            let before = s[2000..spike_at].iter().copied().fold(0.0, f64::max);
            let at = s[spike_at..spike_at + 3]
                .iter()
                .copied()
                .fold(0.0, f64::max);
            assert!(at > before, "{n}: spike {at} not above background {before}");
            assert!(at >= 0.5, "{n}: spike scored only {at}");
        }
    }

    #[test]
    fn scores_stay_in_unit_interval_and_bad_input_does_not_panic() {
        let mut series = daily_series(2000, STEP, 3, 0.0);
        series[500].1 = f64::NAN;
        series[600].1 = f64::INFINITY;
        series[700].1 = f64::NEG_INFINITY;
        series[800].1 = 1e300;
        series[801].1 = -1e300;
        series[900].0 = series[899].0; // duplicate timestamp
        series[901].0 = 0; // time going backwards
        series[950].0 = i64::MIN; // absurd timestamps
        series[951].0 = i64::MAX;
        series[952].0 = i64::MIN;
        for n in NAMES {
            let Some(mut d) = by_name(n) else { continue };
            for (i, &(t, v)) in series.iter().enumerate() {
                let s = d.update(t, v);
                assert!((0.0..=1.0).contains(&s), "{n}: row {i} scored {s}");
                if !v.is_finite() {
                    assert_eq!(s, 0.0, "{n}: non-finite input must score 0");
                }
            }
        }
    }

    #[test]
    fn random_bit_patterns_never_panic() {
        let mut rng = util::SplitMix64::new(0xf00d);
        for n in NAMES {
            let Some(mut d) = by_name(n) else { continue };
            let mut t = 0i64;
            for i in 0..3000 {
                // Mostly sane samples with bursts of arbitrary bit patterns and time jumps.
                let v = if i % 97 < 5 {
                    f64::from_bits(rng.next_u64())
                } else {
                    rng.normal() * 10.0
                };
                t = if i % 211 == 0 {
                    i64::from_ne_bytes(rng.next_u64().to_ne_bytes())
                } else {
                    t.saturating_add(60)
                };
                let s = d.update(t, v);
                assert!((0.0..=1.0).contains(&s), "{n}: {s}");
            }
        }
    }

    #[test]
    fn ewma_and_seasonal_recover_from_an_absurd_value() {
        let series = daily_series(3000, STEP, 8, 0.0);
        for mut d in [
            Box::new(Ewma::default()) as Box<dyn Detector>,
            Box::new(SeasonalBaseline::default()),
        ] {
            for (i, &(t, v)) in series.iter().enumerate() {
                d.update(t, if i == 1000 { 1e300 } else { v });
            }
            let (t, v) = series[series.len() - 1];
            assert!(
                d.update(t + STEP, v + 100.0) > 0.5,
                "{} stayed poisoned",
                d.name()
            );
        }
    }

    #[test]
    fn detectors_are_deterministic() {
        let series = daily_series(3000, STEP, 5, 0.01);
        for n in NAMES {
            let (Some(mut a), Some(mut b)) = (by_name(n), by_name(n)) else {
                continue;
            };
            assert_eq!(run(a.as_mut(), &series), run(b.as_mut(), &series), "{n}");
        }
    }

    #[test]
    fn static_threshold_honours_for_duration() {
        let mut d = StaticThreshold::new(ThresholdParams {
            upper: Some(10.0),
            for_secs: 600,
            ..ThresholdParams::default()
        });
        assert_eq!(d.update(0, 5.0), 0.0);
        let first = d.update(300, 11.0);
        assert!(first > 0.0 && first < 0.5);
        assert!(d.update(600, 12.0) < 0.5);
        assert_eq!(d.update(900, 12.0), 1.0);
        assert_eq!(d.update(1200, 9.0), 0.0);
    }

    #[test]
    fn trend_detects_leak_and_estimates_exhaustion() {
        let mut d = TrendDetector::new(TrendParams {
            window: 100,
            capacity: Some(1000.0),
            ..TrendParams::default()
        });
        let mut rng = util::SplitMix64::new(1);
        // Flat noisy phase: quiet.
        let mut quiet_max: f64 = 0.0;
        for i in 0..300 {
            let s = d.update(i * 60, 100.0 + rng.normal());
            if i > 100 {
                quiet_max = quiet_max.max(s);
            }
        }
        assert!(quiet_max < 0.5, "flat noise scored {quiet_max}");
        // Leak: +1 per minute.
        let mut last = 0.0;
        for i in 300..500 {
            last = d.update(
                i * 60,
                100.0 + f64::from(i32::try_from(i - 300).unwrap_or(0)) + rng.normal(),
            );
        }
        assert!(last > 0.8, "leak scored {last}");
        let tte = d.time_to_exhaustion().unwrap_or(f64::NAN);
        // value ≈ 300 at t=499 min, slope 1/60 per s → (1000-300)*60 s ≈ 42000 s.
        assert!((tte - 42_000.0).abs() < 3_000.0, "tte {tte}");
        assert!((d.slope_per_sec() - 1.0 / 60.0).abs() < 0.002);
    }

    #[test]
    fn seasonal_learns_the_daily_pattern() {
        // Strong daily sine with little noise: after a few days a value that is normal for
        // another hour but wrong for this one must score higher than the normal profile.
        let series = daily_series(288 * 8, STEP, 9, 0.0);
        let mut d = SeasonalBaseline::default();
        let s = run(&mut d, &series);
        let late = s[288 * 6..].iter().copied().fold(0.0, f64::max);
        let (t, v) = series[series.len() - 1];
        let wrong = d.update(t + 12 * 3600, v); // same value, twelve hours later
        assert!(wrong > late, "off-phase {wrong} vs in-phase max {late}");
    }

    #[test]
    fn ensemble_hard_vote_counts_weights() {
        let p = EnsembleParams {
            members: vec![("threshold", 1.0), ("zscore", 3.0)],
            vote_threshold: Some(0.5),
        };
        let mut e = Ensemble::new(&p);
        let mut last = 0.0;
        for i in 0..600 {
            last = e.update(i * 60, if i % 2 == 0 { 1.0 } else { 1.5 });
        }
        assert_eq!(last, 0.0);
        let s = e.update(600 * 60, 1000.0);
        assert!((s - 1.0).abs() < 1e-12, "both vote: {s}");
    }
}
