//! Seasonal baseline: one exponentially weighted mean per hour-of-day (or hour-of-week)
//! bucket; the residual is scaled by a global exponentially weighted residual spread.

use crate::simple::dev_score;
use crate::Detector;

/// Which calendar buckets the baseline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    /// 24 buckets: hour of day (UTC).
    HourOfDay,
    /// 168 buckets: hour of week (UTC).
    HourOfWeek,
}

/// Parameters of [`SeasonalBaseline`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalParams {
    /// Bucketing.
    pub season: Season,
    /// Smoothing factor of each bucket's mean.
    pub alpha: f64,
    /// Smoothing factor of the global residual variance.
    pub resid_alpha: f64,
    /// A bucket needs this many samples before it is trusted (the global mean is used before).
    pub min_bucket: u32,
    /// No score before this many samples.
    pub warmup: usize,
    /// |residual z| that scores 0.5.
    pub half: f64,
}

impl Default for SeasonalParams {
    fn default() -> Self {
        Self {
            season: Season::HourOfDay,
            alpha: 0.1,
            resid_alpha: 0.01,
            min_bucket: 3,
            warmup: 100,
            half: 4.0,
        }
    }
}

/// Hour-of-day / day-of-week baseline detector.
#[derive(Debug, Clone)]
pub struct SeasonalBaseline {
    p: SeasonalParams,
    means: Vec<f64>,
    counts: Vec<u32>,
    global: f64,
    resid_var: f64,
    n: usize,
}

impl SeasonalBaseline {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: SeasonalParams) -> Self {
        let buckets = match p.season {
            Season::HourOfDay => 24,
            Season::HourOfWeek => 168,
        };
        Self {
            p,
            means: vec![0.0; buckets],
            counts: vec![0; buckets],
            global: 0.0,
            resid_var: 0.0,
            n: 0,
        }
    }

    fn bucket(&self, ts_secs: i64) -> usize {
        let hour = ts_secs.div_euclid(3600);
        let b = match self.p.season {
            Season::HourOfDay => hour.rem_euclid(24),
            // 1970-01-01 was a Thursday; shift so buckets start on Monday 00:00.
            Season::HourOfWeek => (hour + 72).rem_euclid(168),
        };
        usize::try_from(b).unwrap_or(0)
    }
}

impl Default for SeasonalBaseline {
    fn default() -> Self {
        Self::new(SeasonalParams::default())
    }
}

impl Detector for SeasonalBaseline {
    fn name(&self) -> &'static str {
        "seasonal"
    }

    fn update(&mut self, ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let b = self.bucket(ts_secs);
        if self.n == 0 {
            self.global = value;
        }
        let expected = if self.counts[b] >= self.p.min_bucket {
            self.means[b]
        } else {
            self.global
        };
        let resid = value - expected;
        let score = if self.n >= self.p.warmup {
            dev_score(resid, self.resid_var.sqrt(), expected, self.p.half)
        } else {
            0.0
        };
        #[allow(clippy::cast_precision_loss)]
        let ra = self.p.resid_alpha.max(1.0 / (self.n + 1) as f64);
        self.resid_var = (1.0 - ra) * self.resid_var + ra * resid * resid;
        #[allow(clippy::cast_precision_loss)]
        let ga = 0.01f64.max(1.0 / (self.n + 1) as f64);
        self.global += ga * (value - self.global);
        let c = self.counts[b];
        let a = self.p.alpha.max(1.0 / f64::from(c + 1));
        if c == 0 {
            self.means[b] = value;
        } else {
            self.means[b] += a * (value - self.means[b]);
        }
        self.counts[b] = c.saturating_add(1);
        self.n = self.n.saturating_add(1);
        if !(self.resid_var.is_finite() && self.global.is_finite() && self.means[b].is_finite()) {
            // Overflowed on an absurd (finite) value: start learning afresh.
            *self = Self::new(self.p.clone());
        }
        score
    }
}
