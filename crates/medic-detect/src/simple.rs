//! Cheap single-statistic detectors: static threshold, rolling z-score, median/MAD,
//! EWMA/EWMV and percentile bands.

use crate::util::{clamp01, squash, RollingStats, SortedWindow};
use crate::Detector;

// ---------------------------------------------------------------------------------------------
// Static threshold with a `for` duration
// ---------------------------------------------------------------------------------------------

/// Parameters of [`StaticThreshold`].
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdParams {
    /// Fire when the value is above this. `None` (with `lower` also `None`) learns both bounds
    /// from the first `learn_samples` values.
    pub upper: Option<f64>,
    /// Fire when the value is below this.
    pub lower: Option<f64>,
    /// The breach must last this many seconds before the score reaches 1 (Prometheus `for`).
    pub for_secs: i64,
    /// Samples used to learn the bounds when neither is given.
    pub learn_samples: usize,
    /// Learned bounds are widened by this fraction of the learned range.
    pub margin: f64,
}

impl Default for ThresholdParams {
    fn default() -> Self {
        Self {
            upper: None,
            lower: None,
            for_secs: 0,
            learn_samples: 500,
            margin: 0.1,
        }
    }
}

/// Static threshold: 1 once the value has been out of bounds for `for_secs`, a partial score
/// (below 0.5) while a breach is pending, 0 otherwise.
#[derive(Debug, Clone)]
pub struct StaticThreshold {
    p: ThresholdParams,
    upper: Option<f64>,
    lower: Option<f64>,
    learned: usize,
    min: f64,
    max: f64,
    breach_since: Option<i64>,
}

impl StaticThreshold {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: ThresholdParams) -> Self {
        Self {
            upper: p.upper,
            lower: p.lower,
            p,
            learned: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            breach_since: None,
        }
    }
}

impl Default for StaticThreshold {
    fn default() -> Self {
        Self::new(ThresholdParams::default())
    }
}

impl Detector for StaticThreshold {
    fn name(&self) -> &'static str {
        "threshold"
    }

    fn update(&mut self, ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.p.upper.is_none() && self.p.lower.is_none() {
            if self.learned < self.p.learn_samples {
                self.learned += 1;
                self.min = self.min.min(value);
                self.max = self.max.max(value);
                return 0.0;
            }
            if self.upper.is_none() {
                let range = (self.max - self.min).abs();
                let pad = (self.p.margin * range).max(f64::EPSILON * self.max.abs());
                self.upper = Some(self.max + pad);
                self.lower = Some(self.min - pad);
            }
        }
        let above = self.upper.is_some_and(|u| value > u);
        let below = self.lower.is_some_and(|l| value < l);
        if !(above || below) {
            self.breach_since = None;
            return 0.0;
        }
        let since = *self.breach_since.get_or_insert(ts_secs);
        let elapsed = ts_secs.saturating_sub(since);
        if elapsed >= self.p.for_secs {
            1.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let frac = elapsed as f64 / self.p.for_secs.max(1) as f64;
            clamp01(0.25 + 0.25 * frac)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rolling z-score
// ---------------------------------------------------------------------------------------------

/// Parameters of [`RollingZScore`].
#[derive(Debug, Clone, PartialEq)]
pub struct ZScoreParams {
    /// Window length in samples.
    pub window: usize,
    /// No score before this many samples.
    pub min_samples: usize,
    /// |z| that scores 0.5.
    pub half: f64,
}

impl Default for ZScoreParams {
    fn default() -> Self {
        Self {
            window: 720,
            min_samples: 30,
            half: 4.0,
        }
    }
}

/// |z| of the new value against the mean/std of the previous `window` values.
#[derive(Debug, Clone)]
pub struct RollingZScore {
    p: ZScoreParams,
    stats: RollingStats,
}

impl RollingZScore {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: ZScoreParams) -> Self {
        Self {
            stats: RollingStats::new(p.window),
            p,
        }
    }
}

impl Default for RollingZScore {
    fn default() -> Self {
        Self::new(ZScoreParams::default())
    }
}

/// Score of a deviation `dev` against a scale, treating a zero scale as "any change is news".
pub(crate) fn dev_score(dev: f64, scale: f64, reference: f64, half: f64) -> f64 {
    let dev = dev.abs();
    let floor = 1e-9 * reference.abs().max(1e-12);
    if scale > floor {
        squash(dev / scale, half)
    } else if dev > floor {
        1.0
    } else {
        0.0
    }
}

impl Detector for RollingZScore {
    fn name(&self) -> &'static str {
        "zscore"
    }

    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let score = if self.stats.len() >= self.p.min_samples {
            let m = self.stats.mean();
            dev_score(value - m, self.stats.std(), m, self.p.half)
        } else {
            0.0
        };
        self.stats.push(value);
        score
    }
}

// ---------------------------------------------------------------------------------------------
// Median / MAD
// ---------------------------------------------------------------------------------------------

/// Parameters of [`MedianMad`].
#[derive(Debug, Clone, PartialEq)]
pub struct MadParams {
    /// Window length in samples.
    pub window: usize,
    /// No score before this many samples.
    pub min_samples: usize,
    /// Robust |z| (deviation / (1.4826 MAD)) that scores 0.5.
    pub half: f64,
    /// Recompute the MAD every this many samples (the median is exact every sample).
    pub refresh: usize,
}

impl Default for MadParams {
    fn default() -> Self {
        Self {
            window: 256,
            min_samples: 30,
            half: 5.0,
            refresh: 8,
        }
    }
}

/// Robust z-score: deviation from the rolling median in units of the rolling MAD.
#[derive(Debug, Clone)]
pub struct MedianMad {
    p: MadParams,
    win: SortedWindow,
    mad: f64,
    tick: usize,
}

impl MedianMad {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: MadParams) -> Self {
        Self {
            win: SortedWindow::new(p.window),
            p,
            mad: 0.0,
            tick: 0,
        }
    }
}

impl Default for MedianMad {
    fn default() -> Self {
        Self::new(MadParams::default())
    }
}

impl Detector for MedianMad {
    fn name(&self) -> &'static str {
        "mad"
    }

    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let score = if self.win.len() >= self.p.min_samples {
            let med = self.win.median();
            if self.tick % self.p.refresh.max(1) == 0 {
                self.mad = self.win.mad(med);
            }
            // A MAD of 0 (flat stretches) falls back to a small fraction of the window's range,
            // so a routine step is not scored like a spike from nowhere.
            let s = self.win.sorted();
            let range = s.last().copied().unwrap_or(0.0) - s.first().copied().unwrap_or(0.0);
            dev_score(
                value - med,
                (1.4826 * self.mad).max(0.01 * range),
                med,
                self.p.half,
            )
        } else {
            0.0
        };
        self.tick = self.tick.wrapping_add(1);
        self.win.push(value);
        score
    }
}

// ---------------------------------------------------------------------------------------------
// EWMA / EWMV
// ---------------------------------------------------------------------------------------------

/// Parameters of [`Ewma`].
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaParams {
    /// Smoothing factor of the mean and variance, in (0, 1].
    pub alpha: f64,
    /// No score before this many samples.
    pub warmup: usize,
    /// |z| that scores 0.5.
    pub half: f64,
}

impl Default for EwmaParams {
    fn default() -> Self {
        Self {
            alpha: 0.02,
            warmup: 30,
            half: 4.0,
        }
    }
}

/// Exponentially weighted mean and variance; the score is the |z| of the new value.
#[derive(Debug, Clone)]
pub struct Ewma {
    p: EwmaParams,
    mean: f64,
    var: f64,
    n: usize,
}

impl Ewma {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: EwmaParams) -> Self {
        Self {
            p,
            mean: 0.0,
            var: 0.0,
            n: 0,
        }
    }
}

impl Default for Ewma {
    fn default() -> Self {
        Self::new(EwmaParams::default())
    }
}

impl Detector for Ewma {
    fn name(&self) -> &'static str {
        "ewma"
    }

    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.n == 0 {
            self.mean = value;
            self.n = 1;
            return 0.0;
        }
        let d = value - self.mean;
        let score = if self.n >= self.p.warmup {
            dev_score(d, self.var.sqrt(), self.mean, self.p.half)
        } else {
            0.0
        };
        // Warm-up uses 1/n so early estimates are plain averages.
        #[allow(clippy::cast_precision_loss)]
        let a = self.p.alpha.clamp(1e-6, 1.0).max(1.0 / (self.n + 1) as f64);
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        self.n = self.n.saturating_add(1);
        if !(self.mean.is_finite() && self.var.is_finite()) {
            // Overflowed on an absurd (finite) value: start learning afresh.
            self.n = 0;
            self.var = 0.0;
        }
        score
    }
}

// ---------------------------------------------------------------------------------------------
// Percentile bands
// ---------------------------------------------------------------------------------------------

/// Parameters of [`PercentileBands`].
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileParams {
    /// Window length in samples.
    pub window: usize,
    /// Lower band quantile.
    pub lower_q: f64,
    /// Upper band quantile.
    pub upper_q: f64,
    /// No score before this many samples.
    pub min_samples: usize,
    /// Excursion beyond the band, in band widths, that scores 0.5.
    pub half: f64,
}

impl Default for PercentileParams {
    fn default() -> Self {
        Self {
            window: 1000,
            lower_q: 0.01,
            upper_q: 0.99,
            min_samples: 50,
            half: 0.25,
        }
    }
}

/// Scores how far the value falls outside the rolling `[q_lo, q_hi]` band, in band widths.
#[derive(Debug, Clone)]
pub struct PercentileBands {
    p: PercentileParams,
    win: SortedWindow,
}

impl PercentileBands {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: PercentileParams) -> Self {
        Self {
            win: SortedWindow::new(p.window),
            p,
        }
    }
}

impl Default for PercentileBands {
    fn default() -> Self {
        Self::new(PercentileParams::default())
    }
}

impl Detector for PercentileBands {
    fn name(&self) -> &'static str {
        "percentile"
    }

    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let score = if self.win.len() >= self.p.min_samples {
            let lo = self.win.quantile(self.p.lower_q);
            let hi = self.win.quantile(self.p.upper_q);
            let excess = if value > hi {
                value - hi
            } else if value < lo {
                lo - value
            } else {
                0.0
            };
            dev_score(excess, hi - lo, hi.abs().max(lo.abs()), self.p.half)
        } else {
            0.0
        };
        self.win.push(value);
        score
    }
}
