//! Trend (leak) detector: a rolling least-squares line over the last `window` samples.
//! Sustained growth that is large compared with the residual noise scores high, and with a
//! capacity the detector estimates the time until the fitted line reaches it.

use std::collections::VecDeque;

use crate::util::squash;
use crate::Detector;

/// Parameters of [`TrendDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrendParams {
    /// Regression window in samples (≥ 3).
    pub window: usize,
    /// Resource capacity (e.g. memory limit); enables [`TrendDetector::time_to_exhaustion`]
    /// and raises the score as the projected exhaustion approaches `horizon_secs`.
    pub capacity: Option<f64>,
    /// Exhaustion closer than this (seconds) scores high.
    pub horizon_secs: f64,
    /// Fitted rise over the window, in residual standard deviations, scoring 0.5.
    pub half: f64,
}

impl Default for TrendParams {
    fn default() -> Self {
        Self {
            window: 288,
            capacity: None,
            horizon_secs: 6.0 * 3600.0,
            half: 12.0,
        }
    }
}

/// Rolling-regression growth detector.
#[derive(Debug, Clone)]
pub struct TrendDetector {
    p: TrendParams,
    buf: VecDeque<(f64, f64)>,
    t0: i64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
    since_rebuild: usize,
    slope: f64,
    last_fit: f64,
    last_t: f64,
}

impl TrendDetector {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: TrendParams) -> Self {
        let window = p.window.max(3);
        Self {
            p: TrendParams { window, ..p },
            buf: VecDeque::with_capacity(window),
            t0: 0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            syy: 0.0,
            since_rebuild: 0,
            slope: 0.0,
            last_fit: 0.0,
            last_t: 0.0,
        }
    }

    /// Current fitted slope in value units per second.
    #[must_use]
    pub fn slope_per_sec(&self) -> f64 {
        self.slope
    }

    /// Estimated seconds until the fitted line reaches the capacity, if a capacity is set and
    /// the series is growing. `Some(0.0)` when already at or over capacity.
    #[must_use]
    pub fn time_to_exhaustion(&self) -> Option<f64> {
        let cap = self.p.capacity?;
        if self.buf.len() < 3 {
            return None;
        }
        if self.last_fit >= cap {
            return Some(0.0);
        }
        if self.slope > 0.0 && self.slope.is_finite() {
            Some((cap - self.last_fit) / self.slope)
        } else {
            None
        }
    }

    fn add(&mut self, x: f64, y: f64, sign: f64) {
        self.sx += sign * x;
        self.sy += sign * y;
        self.sxx += sign * x * x;
        self.sxy += sign * x * y;
        self.syy += sign * y * y;
    }

    fn rebuild(&mut self, ts_ref: i64) {
        // Re-reference time to keep the sums well conditioned.
        #[allow(clippy::cast_precision_loss)]
        let shift = ts_ref.saturating_sub(self.t0) as f64;
        self.t0 = ts_ref;
        let pts: Vec<(f64, f64)> = self.buf.iter().map(|&(x, y)| (x - shift, y)).collect();
        self.buf = pts.into_iter().collect();
        self.sx = 0.0;
        self.sy = 0.0;
        self.sxx = 0.0;
        self.sxy = 0.0;
        self.syy = 0.0;
        let items: Vec<(f64, f64)> = self.buf.iter().copied().collect();
        for (x, y) in items {
            self.add(x, y, 1.0);
        }
        self.since_rebuild = 0;
    }
}

impl Default for TrendDetector {
    fn default() -> Self {
        Self::new(TrendParams::default())
    }
}

impl Detector for TrendDetector {
    fn name(&self) -> &'static str {
        "trend"
    }

    fn update(&mut self, ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.buf.is_empty() {
            self.t0 = ts_secs;
        }
        #[allow(clippy::cast_precision_loss)]
        let x = ts_secs.saturating_sub(self.t0) as f64;
        if self.buf.len() == self.p.window {
            if let Some((ox, oy)) = self.buf.pop_front() {
                self.add(ox, oy, -1.0);
            }
        }
        self.buf.push_back((x, value));
        self.add(x, value, 1.0);
        self.since_rebuild += 1;
        if self.since_rebuild >= self.p.window {
            self.rebuild(ts_secs);
        }
        let len = self.buf.len();
        if len < 3 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = len as f64;
        let mx = self.sx / n;
        let my = self.sy / n;
        let vxx = self.sxx / n - mx * mx;
        let vxy = self.sxy / n - mx * my;
        let vyy = (self.syy / n - my * my).max(0.0);
        if vxx <= 0.0 || !vxx.is_finite() {
            return 0.0;
        }
        self.slope = vxy / vxx;
        let lx = self.buf.back().map_or(x, |p| p.0);
        let fx = self.buf.front().map_or(x, |p| p.0);
        self.last_t = lx;
        self.last_fit = my + self.slope * (lx - mx);
        let resid_var = (vyy - self.slope * vxy).max(0.0);
        let rise = self.slope * (lx - fx);
        if len < self.p.window || rise <= 0.0 {
            return 0.0;
        }
        let noise = resid_var.sqrt().max(1e-9 * my.abs()).max(1e-12);
        let mut score = squash(rise / noise, self.p.half);
        if let Some(tte) = self.time_to_exhaustion() {
            let h = self.p.horizon_secs.max(1.0);
            let urgency = (1.0 - tte / h).clamp(0.0, 1.0);
            score = score.max(urgency);
        }
        score
    }
}
