//! `surprise`: a multi-channel, self-calibrating detector with record-based evidence and
//! novelty suppression. It is the `default` detector.
//!
//! Each sample feeds several raw "surprise" channels (robust level deviation, robust change
//! of the short-term mean, one-step jump, daily and weekly seasonal residuals, optionally a
//! shape-memory channel). Each channel's raw value `r` is turned into `log(1 + r)`, averaged
//! over a short window, and compared with the mean and the maximum of that average over a
//! long history: `(a - mean) / (max - mean)`, so 1 means "as surprising as the worst moment
//! of the recent past". This calibrates every channel of every series to one scale. The
//! evidence is the mean of the two strongest channels, raised by all-time records (a value
//! outside the range seen so far, a seasonal residual above its all-time maximum). Evidence
//! that is not a new maximum within the suppression horizon is damped, so an ongoing episode
//! alarms once, early. The score is `e / (e + half)`.

use std::collections::VecDeque;

use crate::util::{squash, RollingStats, SortedWindow};
use crate::Detector;

/// Parameters of [`Surprise`].
#[derive(Debug, Clone, PartialEq)]
pub struct SurpriseParams {
    /// Samples before any score is emitted.
    pub warmup: usize,
    /// Window of the robust level baseline (median/MAD), in samples.
    pub level_window: usize,
    /// Short window whose mean is compared with the level baseline (level shifts), in samples.
    pub shift_window: usize,
    /// Window of the robust scale of one-step differences, in samples.
    pub diff_window: usize,
    /// Short averaging window of each channel's `log(1 + r)`.
    pub avg_window: usize,
    /// History of averaged channel values used to standardise them, in samples.
    pub history: usize,
    /// Recompute the two MADs every this many samples (the medians are exact every sample).
    pub refresh: usize,
    /// Smoothing factor of the seasonal profiles.
    pub season_alpha: f64,
    /// Seasonal profiles need this many full periods before they are used.
    pub season_min_periods: u32,
    /// Channel weights: level, shift, jump, daily, weekly, pattern, drift (0 disables a
    /// channel).
    pub weights: [f64; 7],
    /// Drift channel: the mean of this many recent samples against the level baseline (a slow,
    /// sustained shift such as a doubled request rate), in samples.
    pub drift_window: usize,
    /// Spatial records: a value beyond the all-time range by this fraction of the range
    /// counts as evidence 1 (0 disables).
    pub spatial: f64,
    /// Spatial records use the range of the last this many samples (0 = all time).
    pub spatial_window: usize,
    /// Jump records: a one-step jump (in robust units) larger than every previous one by this
    /// fraction counts as evidence 1 (0 disables).
    pub jump_record: f64,
    /// Seasonal records: as `jump_record`, for the daily seasonal residual.
    pub season_record: f64,
    /// How channels are combined: 0 = maximum, 1 = weighted mean, k ≥ 2 = mean of the k
    /// largest.
    pub combine: usize,
    /// Calibrate channels as a Gaussian z-score against the history (as HTM's anomaly
    /// likelihood does) instead of against the history's maximum.
    pub gauss: bool,
    /// Quantile of the history used as the calibration top (1 = the maximum).
    pub quantile: f64,
    /// Calibrate `log(1 + r)` instead of `r`.
    pub log: bool,
    /// Minimum standard deviation of an averaged channel (avoids blow-ups on flat series).
    pub min_sigma: f64,
    /// Pattern channel: number of block means in a pattern.
    pub pattern_blocks: usize,
    /// Pattern channel: samples per block.
    pub pattern_block: usize,
    /// Pattern channel: maximum number of remembered prototypes.
    pub prototypes: usize,
    /// Pattern channel: a pattern farther than this (mean absolute difference, in units of
    /// the series' range so far) from every prototype becomes a new prototype.
    pub vigilance: f64,
    /// Pattern channel: learning rate of the matched prototype.
    pub proto_rate: f64,
    /// Standardised evidence that scores 0.5.
    pub half: f64,
    /// Novelty horizon: the score is damped unless it exceeds every score of this many
    /// previous samples.
    pub suppress: usize,
    /// Factor applied to a non-novel score.
    pub damp: f64,
}

impl Default for SurpriseParams {
    /// Tuned once on the 35-file NAB subset (one setting for every series; see the README).
    fn default() -> Self {
        Self {
            warmup: 150,
            level_window: 4000,
            shift_window: 12,
            diff_window: 3000,
            avg_window: 15,
            history: 4000,
            refresh: 4,
            season_alpha: 0.3,
            season_min_periods: 1,
            weights: [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
            drift_window: 60,
            spatial: 0.02,
            spatial_window: 0,
            jump_record: 0.0,
            season_record: 0.5,
            combine: 2,
            gauss: false,
            quantile: 1.0,
            log: true,
            min_sigma: 0.4,
            pattern_blocks: 6,
            pattern_block: 4,
            prototypes: 256,
            vigilance: 0.15,
            proto_rate: 0.05,
            half: 1.0,
            suppress: 300,
            damp: 0.25,
        }
    }
}

/// Calibrates a channel against its own past: the short mean `a` of the raw values is compared
/// with the mean `m` and the maximum `M` of the averaged values over the history window, as
/// `(a - m) / (M - m)`, so 1 means "as surprising as the most surprising moment of the recent
/// past" and values above 1 are records, whatever the series' scale or noise.
#[derive(Debug, Clone)]
struct Channel {
    short: VecDeque<f64>,
    short_sum: f64,
    avg_window: usize,
    hist: RollingStats,
    /// Monotonic deque of (index, value) for the sliding maximum.
    maxq: VecDeque<(usize, f64)>,
    history: usize,
    idx: usize,
    log: bool,
    quantile: f64,
    sorted: Option<SortedWindow>,
    gauss: bool,
}

impl Channel {
    fn new(avg_window: usize, history: usize, log: bool, quantile: f64) -> Self {
        Self {
            short: VecDeque::with_capacity(avg_window.max(1)),
            short_sum: 0.0,
            avg_window: avg_window.max(1),
            hist: RollingStats::new(history),
            maxq: VecDeque::new(),
            history: history.max(1),
            idx: 0,
            log,
            quantile,
            sorted: (quantile < 1.0).then(|| SortedWindow::new(history)),
            gauss: false,
        }
    }

    /// Feeds a raw surprise; returns the calibrated evidence (0 while learning).
    fn push(&mut self, raw: f64, min_sigma: f64, ready: bool) -> f64 {
        let raw = if raw.is_finite() { raw.max(0.0) } else { 0.0 };
        let v = if self.log { raw.ln_1p() } else { raw };
        while self.short.len() >= self.avg_window {
            match self.short.pop_front() {
                Some(o) => self.short_sum -= o,
                None => break,
            }
        }
        self.short.push_back(v);
        self.short_sum += v;
        #[allow(clippy::cast_precision_loss)]
        let avg = (self.short_sum / self.short.len() as f64).max(0.0);
        let top = match &self.sorted {
            Some(w) => (!w.is_empty()).then(|| w.quantile(self.quantile)),
            None => self.maxq.front().map(|&(_, x)| x),
        };
        let z = match (ready && self.hist.len() >= 30, top) {
            (true, Some(_)) if self.gauss => {
                (avg - self.hist.mean()) / self.hist.std().max(min_sigma)
            }
            (true, Some(mx)) => {
                let m = self.hist.mean();
                (avg - m) / (mx - m).max(min_sigma)
            }
            _ => 0.0,
        };
        self.hist.push(avg);
        if let Some(w) = &mut self.sorted {
            w.push(avg);
        }
        while self.maxq.back().is_some_and(|&(_, x)| x <= avg) {
            self.maxq.pop_back();
        }
        self.maxq.push_back((self.idx, avg));
        while self
            .maxq
            .front()
            .is_some_and(|&(i, _)| i + self.history <= self.idx)
        {
            self.maxq.pop_front();
        }
        self.idx = self.idx.wrapping_add(1);
        z.max(0.0)
    }
}

/// A seasonal profile of `slots` exponentially weighted means over `period` seconds.
#[derive(Debug, Clone)]
struct Profile {
    period: i64,
    slot_secs: i64,
    means: Vec<f64>,
    seen: Vec<u32>,
    first_ts: Option<i64>,
}

impl Profile {
    fn new(period: i64) -> Self {
        Self {
            period,
            slot_secs: 0,
            means: Vec::new(),
            seen: Vec::new(),
            first_ts: None,
        }
    }

    fn configure(&mut self, step: i64) {
        let step = step.max(1);
        let slots = (self.period / step).clamp(1, 4096);
        self.slot_secs = (self.period / slots).max(1);
        let n = usize::try_from(slots).unwrap_or(1);
        self.means = vec![0.0; n];
        self.seen = vec![0; n];
    }

    /// Residual of `value` against the profile (None until trusted), then learns it.
    fn residual(&mut self, ts: i64, value: f64, alpha: f64, min_periods: u32) -> Option<f64> {
        if self.means.is_empty() {
            return None;
        }
        let first = *self.first_ts.get_or_insert(ts);
        let slot = usize::try_from(ts.rem_euclid(self.period) / self.slot_secs)
            .unwrap_or(0)
            .min(self.means.len() - 1);
        let periods = ts.saturating_sub(first) / self.period;
        let trusted = self.seen[slot] >= 1 && periods >= i64::from(min_periods);
        let r = trusted.then(|| value - self.means[slot]);
        if self.seen[slot] == 0 {
            self.means[slot] = value;
        } else {
            self.means[slot] += alpha * (value - self.means[slot]);
        }
        self.seen[slot] = self.seen[slot].saturating_add(1);
        r
    }
}

/// Adaptive-resonance-style memory of recent shapes: the raw surprise is the distance of the
/// current pattern (block means of the last values, scaled by the range seen so far) to the
/// nearest remembered prototype.
#[derive(Debug, Clone)]
struct Patterns {
    blocks: usize,
    block: usize,
    raw: VecDeque<f64>,
    min: f64,
    max: f64,
    protos: Vec<Vec<f64>>,
    used: Vec<u64>,
    clock: u64,
    cur: Vec<f64>,
}

impl Patterns {
    fn new(blocks: usize, block: usize) -> Self {
        let blocks = blocks.max(1);
        let block = block.max(1);
        Self {
            blocks,
            block,
            raw: VecDeque::with_capacity(blocks * block),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            protos: Vec::new(),
            used: Vec::new(),
            clock: 0,
            cur: vec![0.0; blocks],
        }
    }

    fn push(&mut self, value: f64, cap: usize, vigilance: f64, rate: f64) -> f64 {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if self.raw.len() == self.blocks * self.block {
            self.raw.pop_front();
        }
        self.raw.push_back(value);
        if self.raw.len() < self.blocks * self.block {
            return 0.0;
        }
        let range = self.max - self.min;
        if range <= 0.0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let bl = self.block as f64;
        for (b, c) in self.cur.iter_mut().enumerate() {
            let s: f64 = self.raw.range(b * self.block..(b + 1) * self.block).sum();
            *c = (s / bl - self.min) / range;
        }
        #[allow(clippy::cast_precision_loss)]
        let dims = self.blocks as f64;
        let mut best = f64::INFINITY;
        let mut best_i = 0;
        for (i, p) in self.protos.iter().enumerate() {
            let d: f64 = p
                .iter()
                .zip(&self.cur)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / dims;
            if d < best {
                best = d;
                best_i = i;
            }
        }
        self.clock += 1;
        if best > vigilance {
            if self.protos.len() < cap.max(1) {
                self.protos.push(self.cur.clone());
                self.used.push(self.clock);
            } else {
                // Replace the least recently used prototype.
                let lru = self
                    .used
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, u)| **u)
                    .map_or(0, |(i, _)| i);
                self.protos[lru].clone_from(&self.cur);
                self.used[lru] = self.clock;
            }
        } else if let Some(p) = self.protos.get_mut(best_i) {
            for (a, b) in p.iter_mut().zip(&self.cur) {
                *a += rate * (b - *a);
            }
            self.used[best_i] = self.clock;
        }
        if best.is_finite() {
            best
        } else {
            0.0
        }
    }
}

/// Combines weighted channel evidence: 0 = maximum, 1 = weighted mean, k ≥ 2 = mean of the
/// k largest.
fn combine(zs: &mut [f64; 7], how: usize, w: &[f64; 7]) -> f64 {
    match how {
        0 => zs.iter().copied().fold(0.0, f64::max),
        1 => {
            let tw: f64 = w.iter().filter(|x| **x > 0.0).sum();
            if tw > 0.0 {
                zs.iter().sum::<f64>() / tw
            } else {
                0.0
            }
        }
        k => {
            zs.sort_unstable_by(|a, b| b.total_cmp(a));
            let k = k.min(zs.len());
            #[allow(clippy::cast_precision_loss)]
            let kf = k as f64;
            zs[..k].iter().sum::<f64>() / kf
        }
    }
}

/// Multi-channel anomaly-likelihood detector (see the module docs).
#[derive(Debug, Clone)]
pub struct Surprise {
    p: SurpriseParams,
    n: usize,
    level: SortedWindow,
    mad: f64,
    recent: VecDeque<f64>,
    recent_sum: f64,
    slow: VecDeque<f64>,
    slow_sum: f64,
    diffs: SortedWindow,
    diff_mad: f64,
    last: Option<f64>,
    last_ts: Option<i64>,
    steps: Vec<i64>,
    daily: Profile,
    weekly: Profile,
    daily_scale: RollingStats,
    weekly_scale: RollingStats,
    channels: Vec<Channel>,
    patterns: Patterns,
    past: VecDeque<(usize, f64)>,
    evidence: f64,
    seen_min: f64,
    seen_max: f64,
    rmin: VecDeque<(usize, f64)>,
    rmax: VecDeque<(usize, f64)>,
    rec_jump: f64,
    rec_season: f64,
}

impl Surprise {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: SurpriseParams) -> Self {
        let channels = (0..7)
            .map(|_| {
                let mut c = Channel::new(p.avg_window, p.history, p.log, p.quantile);
                c.gauss = p.gauss;
                c
            })
            .collect();
        Self {
            level: SortedWindow::new(p.level_window),
            diffs: SortedWindow::new(p.diff_window),
            recent: VecDeque::with_capacity(p.shift_window.max(1)),
            slow: VecDeque::with_capacity(p.drift_window.max(1)),
            slow_sum: 0.0,
            daily_scale: RollingStats::new(p.level_window),
            weekly_scale: RollingStats::new(p.level_window),
            channels,
            patterns: Patterns::new(p.pattern_blocks, p.pattern_block),
            past: VecDeque::with_capacity(p.suppress.max(1)),
            p,
            n: 0,
            mad: 0.0,
            recent_sum: 0.0,
            diff_mad: 0.0,
            last: None,
            last_ts: None,
            steps: Vec::new(),
            daily: Profile::new(86_400),
            weekly: Profile::new(7 * 86_400),
            evidence: 0.0,
            seen_min: f64::INFINITY,
            seen_max: f64::NEG_INFINITY,
            rmin: VecDeque::new(),
            rmax: VecDeque::new(),
            rec_jump: 0.0,
            rec_season: 0.0,
        }
    }

    /// The standardised evidence behind the last score (before squashing and suppression).
    #[must_use]
    pub fn evidence(&self) -> f64 {
        self.evidence
    }

    fn robust_scale(mad: f64, win: &SortedWindow) -> f64 {
        let s = win.sorted();
        let range = match (s.first(), s.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        (1.4826 * mad).max(1e-3 * range).max(1e-12)
    }
}

impl Default for Surprise {
    fn default() -> Self {
        Self::new(SurpriseParams::default())
    }
}

impl Detector for Surprise {
    fn name(&self) -> &'static str {
        "surprise"
    }

    #[allow(clippy::too_many_lines)]
    fn update(&mut self, ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        // Sampling step from the first samples (median of the first 16 positive steps).
        if let Some(prev) = self.last_ts {
            if self.steps.len() < 16 && ts_secs > prev {
                self.steps.push(ts_secs.saturating_sub(prev));
                if self.steps.len() == 16 {
                    let mut s = self.steps.clone();
                    s.sort_unstable();
                    let step = s[8];
                    self.daily.configure(step);
                    self.weekly.configure(step);
                }
            }
        }
        self.last_ts = Some(ts_secs);
        let ready = self.n >= self.p.warmup;
        let w = self.p.weights;
        let mut raws = [0.0f64; 7];

        // Level and shift against the robust baseline of the previous samples.
        if self.level.len() >= 10 {
            let med = self.level.median();
            if self.n % self.p.refresh.max(1) == 0 {
                self.mad = self.level.mad(med);
            }
            let scale = Self::robust_scale(self.mad, &self.level);
            raws[0] = (value - med).abs() / scale;
            while self.recent.len() >= self.p.shift_window.max(1) {
                match self.recent.pop_front() {
                    Some(o) => self.recent_sum -= o,
                    None => break,
                }
            }
            self.recent.push_back(value);
            self.recent_sum += value;
            #[allow(clippy::cast_precision_loss)]
            let m = self.recent_sum / self.recent.len() as f64;
            #[allow(clippy::cast_precision_loss)]
            let k = (self.recent.len() as f64).sqrt();
            raws[1] = (m - med).abs() / scale * k;
            if w[6] > 0.0 {
                while self.slow.len() >= self.p.drift_window.max(1) {
                    match self.slow.pop_front() {
                        Some(o) => self.slow_sum -= o,
                        None => break,
                    }
                }
                self.slow.push_back(value);
                self.slow_sum += value;
                #[allow(clippy::cast_precision_loss)]
                let n = self.slow.len() as f64;
                raws[6] = (self.slow_sum / n - med).abs() / scale * n.sqrt();
            }
        }
        self.level.push(value);

        // One-step jump against the robust scale of previous jumps.
        if let Some(prev) = self.last {
            let d = value - prev;
            if self.diffs.len() >= 10 {
                let dm = self.diffs.median();
                if self.n % self.p.refresh.max(1) == 0 {
                    self.diff_mad = self.diffs.mad(dm);
                }
                let scale = Self::robust_scale(self.diff_mad, &self.diffs);
                raws[2] = (d - dm).abs() / scale;
            }
            self.diffs.push(d);
        }
        self.last = Some(value);

        // Seasonal residuals, scaled by their own rolling spread.
        let a = self.p.season_alpha;
        let mp = self.p.season_min_periods;
        if let Some(r) = self.daily.residual(ts_secs, value, a, mp) {
            if self.daily_scale.len() >= 30 {
                raws[3] = (r - self.daily_scale.mean()).abs() / self.daily_scale.std().max(1e-12);
            }
            self.daily_scale.push(r);
        }
        if let Some(r) = self.weekly.residual(ts_secs, value, a, mp) {
            if self.weekly_scale.len() >= 30 {
                raws[4] = (r - self.weekly_scale.mean()).abs() / self.weekly_scale.std().max(1e-12);
            }
            self.weekly_scale.push(r);
        }

        if w[5] > 0.0 {
            raws[5] = self.patterns.push(
                value,
                self.p.prototypes,
                self.p.vigilance,
                self.p.proto_rate,
            );
        }

        let mut zs = [0.0f64; 7];
        for (k, ch) in self.channels.iter_mut().enumerate() {
            let z = ch.push(raws[k], self.p.min_sigma, ready);
            zs[k] = if w[k] > 0.0 { w[k] * z } else { 0.0 };
        }
        let mut evidence = combine(&mut zs, self.p.combine, &w);
        // Spatial records: a value beyond every value seen so far by a fraction of the range.
        if self.p.spatial > 0.0 && self.seen_max >= self.seen_min {
            let range = self.seen_max - self.seen_min;
            if range > 0.0 {
                let excess = (value - self.seen_max).max(self.seen_min - value).max(0.0) / range;
                evidence = evidence.max(excess / self.p.spatial);
            }
        }
        // Records of the jump and seasonal-residual magnitudes, relative to their all-time max.
        for (k, tol) in [(2usize, self.p.jump_record), (3, self.p.season_record)] {
            let r = raws[k];
            let slot = if k == 2 {
                &mut self.rec_jump
            } else {
                &mut self.rec_season
            };
            if tol > 0.0 && *slot > 0.0 && ready {
                evidence = evidence.max((r - *slot).max(0.0) / *slot / tol);
            }
            if r.is_finite() {
                *slot = slot.max(r);
            }
        }
        if self.p.spatial_window == 0 {
            self.seen_min = self.seen_min.min(value);
            self.seen_max = self.seen_max.max(value);
        } else {
            // Sliding range over the last `spatial_window` samples (monotonic deques).
            let w = self.p.spatial_window;
            while self.rmax.back().is_some_and(|&(_, x)| x <= value) {
                self.rmax.pop_back();
            }
            self.rmax.push_back((self.n, value));
            while self.rmin.back().is_some_and(|&(_, x)| x >= value) {
                self.rmin.pop_back();
            }
            self.rmin.push_back((self.n, value));
            while self.rmax.front().is_some_and(|&(i, _)| i + w <= self.n) {
                self.rmax.pop_front();
            }
            while self.rmin.front().is_some_and(|&(i, _)| i + w <= self.n) {
                self.rmin.pop_front();
            }
            self.seen_max = self.rmax.front().map_or(value, |&(_, x)| x);
            self.seen_min = self.rmin.front().map_or(value, |&(_, x)| x);
        }
        self.evidence = evidence;

        // Novelty suppression: evidence that does not exceed every evidence of the last
        // `suppress` samples (sliding maximum over a monotonic deque) is damped.
        let prev_max = self.past.front().map_or(0.0, |&(_, e)| e);
        let shown = if evidence > prev_max {
            evidence
        } else {
            evidence * self.p.damp
        };
        let score = if ready {
            squash(shown, self.p.half)
        } else {
            0.0
        };
        if self.p.suppress > 0 {
            while self.past.back().is_some_and(|&(_, e)| e <= evidence) {
                self.past.pop_back();
            }
            self.past.push_back((self.n, evidence));
            while self
                .past
                .front()
                .is_some_and(|&(i, _)| i + self.p.suppress <= self.n)
            {
                self.past.pop_front();
            }
        }
        self.n = self.n.saturating_add(1);
        score.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::daily_series;

    const STEP: i64 = 300;

    fn feed(d: &mut Surprise, series: &[(i64, f64)]) -> Vec<f64> {
        series.iter().map(|&(t, v)| d.update(t, v)).collect()
    }

    #[test]
    fn repeated_alarm_for_one_episode_is_damped() {
        let mut series = daily_series(4000, STEP, 21, 0.0);
        series[3000].1 += 60.0;
        series[3040].1 += 60.0;
        let mut d = Surprise::default();
        let s = feed(&mut d, &series);
        assert!(s[3000] >= 0.5, "first spike {}", s[3000]);
        assert!(
            s[3040] < s[3000],
            "second spike {} vs first {}",
            s[3040],
            s[3000]
        );
    }

    #[test]
    fn level_shift_is_detected_early() {
        let mut series = daily_series(4000, STEP, 22, 0.0);
        for p in &mut series[3000..] {
            p.1 += 15.0;
        }
        let mut d = Surprise::default();
        let s = feed(&mut d, &series);
        let background = s[1000..3000].iter().copied().fold(0.0, f64::max);
        let onset = s[3000..3030].iter().copied().fold(0.0, f64::max);
        assert!(
            onset > background,
            "onset {onset} vs background {background}"
        );
        assert!(onset >= 0.5, "onset {onset}");
    }

    #[test]
    fn broken_daily_pattern_is_detected() {
        // A clean daily sine whose phase flips on day 12: values stay in range, the daily
        // profile does not.
        let day = 288;
        let series: Vec<(i64, f64)> = (0..day * 14)
            .map(|i| {
                let t = 1_400_000_000 + i64::try_from(i).unwrap_or(0) * STEP;
                #[allow(clippy::cast_precision_loss)]
                let ph = (i % day) as f64 / day as f64 * std::f64::consts::TAU;
                let v = if i >= day * 12 { -ph.sin() } else { ph.sin() };
                (t, 50.0 + 10.0 * v)
            })
            .collect();
        let mut d = Surprise::default();
        let s = feed(&mut d, &series);
        let before = s[day * 4..day * 12].iter().copied().fold(0.0, f64::max);
        let after = s[day * 12..day * 13].iter().copied().fold(0.0, f64::max);
        assert!(
            after > before && after >= 0.5,
            "after {after}, before {before}"
        );
    }

    #[test]
    fn scores_do_not_depend_on_units_or_offset() {
        let mut series = daily_series(3000, STEP, 24, 0.002);
        series[2500].1 += 40.0;
        let scaled: Vec<(i64, f64)> = series.iter().map(|&(t, v)| (t, v * 1e6 + 3e7)).collect();
        let a = feed(&mut Surprise::default(), &series);
        let b = feed(&mut Surprise::default(), &scaled);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "max score difference {worst}");
    }

    #[test]
    fn sliding_spatial_range_forgets_old_extremes() {
        // A huge early excursion widens the all-time range; with a sliding range, a later
        // moderate excursion is a record again.
        let mut series = daily_series(6000, STEP, 25, 0.0);
        for p in &mut series[300..310] {
            p.1 += 500.0;
        }
        series[5500].1 += 45.0;
        let only_spatial = SurpriseParams {
            weights: [0.0; 7],
            season_record: 0.0,
            ..SurpriseParams::default()
        };
        let all_time = feed(&mut Surprise::new(only_spatial.clone()), &series);
        let sliding = feed(
            &mut Surprise::new(SurpriseParams {
                spatial_window: 2000,
                ..only_spatial
            }),
            &series,
        );
        assert!(all_time[5500] < 0.5, "all-time range: {}", all_time[5500]);
        assert!(sliding[5500] >= 0.5, "sliding range: {}", sliding[5500]);
    }

    #[test]
    fn learns_nothing_from_non_finite_input() {
        let series = daily_series(1000, STEP, 23, 0.0);
        let mut a = Surprise::default();
        let mut b = Surprise::default();
        for (i, &(t, v)) in series.iter().enumerate() {
            let sa = a.update(t, v);
            if i % 7 == 0 {
                assert_eq!(b.update(t, f64::NAN), 0.0);
            }
            assert_eq!(sa, b.update(t, v));
        }
    }
}
