//! Small numeric helpers shared by the detectors: squashing, a seeded RNG,
//! ring-buffer statistics and a sorted sliding window.

use std::collections::VecDeque;

/// Maps a non-negative deviation `x` to `[0, 1)`: `x / (x + half)`, so `half` scores 0.5.
/// Negative, NaN or infinite inputs are handled (NaN → 0, +inf → 1).
#[must_use]
pub fn squash(x: f64, half: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x.is_infinite() {
        return 1.0;
    }
    let h = if half > 0.0 { half } else { 1.0 };
    clamp01(x / (x + h))
}

/// Clamps to `[0, 1]`, mapping NaN to 0.
#[must_use]
pub fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// SplitMix64: a tiny, seedable, deterministic PRNG.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        // 53 random bits → exact in f64.
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next_u64() >> 11) as f64;
        v / (1u64 << 53) as f64
    }

    /// Uniform index in `0..n` (`n > 0`; returns 0 when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        #[allow(clippy::cast_possible_truncation)]
        let r = (self.next_u64() % (n as u64)) as usize;
        r
    }

    /// Standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Rolling mean / variance over the last `cap` finite values, O(1) per update.
/// Values are stored relative to a reference to limit cancellation, and the sums are
/// recomputed exactly every `cap` updates so rounding errors cannot accumulate.
#[derive(Debug, Clone)]
pub struct RollingStats {
    buf: VecDeque<f64>,
    cap: usize,
    reference: f64,
    sum: f64,
    sumsq: f64,
    since_rebuild: usize,
}

impl RollingStats {
    /// An empty window holding at most `cap` (≥ 1) values.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            buf: VecDeque::with_capacity(cap),
            cap,
            reference: 0.0,
            sum: 0.0,
            sumsq: 0.0,
            since_rebuild: 0,
        }
    }

    /// Number of values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Adds a value, evicting the oldest when full.
    pub fn push(&mut self, x: f64) {
        if self.buf.is_empty() {
            self.reference = x;
        }
        if self.buf.len() == self.cap {
            if let Some(old) = self.buf.pop_front() {
                let d = old - self.reference;
                self.sum -= d;
                self.sumsq -= d * d;
            }
        }
        self.buf.push_back(x);
        let d = x - self.reference;
        self.sum += d;
        self.sumsq += d * d;
        self.since_rebuild += 1;
        if self.since_rebuild >= self.cap {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.since_rebuild = 0;
        #[allow(clippy::cast_precision_loss)]
        let n = self.buf.len().max(1) as f64;
        self.reference = self.buf.iter().sum::<f64>() / n;
        self.sum = 0.0;
        self.sumsq = 0.0;
        for &x in &self.buf {
            let d = x - self.reference;
            self.sum += d;
            self.sumsq += d * d;
        }
    }

    /// Mean of the window (0 when empty).
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.buf.is_empty() {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = self.buf.len() as f64;
        self.reference + self.sum / n
    }

    /// Population variance of the window (0 when fewer than 2 values).
    #[must_use]
    pub fn variance(&self) -> f64 {
        let len = self.buf.len();
        if len < 2 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = len as f64;
        let m = self.sum / n;
        (self.sumsq / n - m * m).max(0.0)
    }

    /// Standard deviation of the window.
    #[must_use]
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }
}

/// A sliding window of the last `cap` values kept both in arrival order and sorted,
/// giving O(log n) order statistics and O(n) (memmove) updates.
#[derive(Debug, Clone)]
pub struct SortedWindow {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    cap: usize,
}

impl SortedWindow {
    /// An empty window holding at most `cap` (≥ 1) values.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            order: VecDeque::with_capacity(cap),
            sorted: Vec::with_capacity(cap),
            cap,
        }
    }

    /// Number of values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Adds a finite value, evicting the oldest when full. Non-finite values are ignored.
    /// Eviction and insertion are done in one pass that only shifts the values between the
    /// two positions.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                let i = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
                let j = self.sorted.partition_point(|v| v.total_cmp(&x).is_le());
                if i < self.sorted.len() {
                    if j > i {
                        // Values in (i, j) move one slot left; x goes just before j.
                        self.sorted.copy_within(i + 1..j, i);
                        self.sorted[j - 1] = x;
                    } else {
                        // Values in [j, i) move one slot right; x goes at j.
                        self.sorted.copy_within(j..i, j + 1);
                        self.sorted[j] = x;
                    }
                    self.order.push_back(x);
                    return;
                }
            }
        }
        self.order.push_back(x);
        let i = self.sorted.partition_point(|v| v.total_cmp(&x).is_le());
        self.sorted.insert(i, x);
    }

    /// Linear-interpolated quantile `q` in `[0, 1]` (0 when empty).
    #[must_use]
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        let q = clamp01(q);
        #[allow(clippy::cast_precision_loss)]
        let pos = q * (n - 1) as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        #[allow(clippy::cast_precision_loss)]
        let frac = pos - lo as f64;
        self.sorted[lo] + (self.sorted[hi] - self.sorted[lo]) * frac
    }

    /// Median (0 when empty).
    #[must_use]
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// Median absolute deviation from `center` (the upper median of the deviations for an
    /// even count), in O(log n): the deviations form two sorted sequences (left of `center`
    /// read backwards, right of it read forwards), and their k-th smallest element is found
    /// by binary search.
    #[must_use]
    pub fn mad(&self, center: f64) -> f64 {
        let s = &self.sorted;
        let n = s.len();
        if n == 0 {
            return 0.0;
        }
        let p = s.partition_point(|v| *v < center);
        let a = |i: usize| center - s[p - 1 - i]; // i < p, ascending
        let b = |j: usize| s[p + j] - center; // j < n - p, ascending
        let (la, lb) = (p, n - p);
        let k = n / 2 + 1; // 1-based rank of the median deviation
                           // i = how many of the k smallest come from `a`.
        let (mut lo, mut hi) = (k.saturating_sub(lb), k.min(la));
        while lo < hi {
            let i = (lo + hi) / 2;
            // Too few from `a` when a[i] < b[k - i - 1].
            if a(i) < b(k - i - 1) {
                lo = i + 1;
            } else {
                hi = i;
            }
        }
        let i = lo;
        let from_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
        let from_b = if k > i {
            b(k - i - 1)
        } else {
            f64::NEG_INFINITY
        };
        from_a.max(from_b)
    }

    /// Values in sorted order.
    #[must_use]
    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_maps_to_unit_interval() {
        assert_eq!(squash(0.0, 3.0), 0.0);
        assert!((squash(3.0, 3.0) - 0.5).abs() < 1e-12);
        assert_eq!(squash(f64::NAN, 3.0), 0.0);
        assert_eq!(squash(f64::INFINITY, 3.0), 1.0);
        assert_eq!(squash(-5.0, 3.0), 0.0);
    }

    #[test]
    fn rolling_stats_match_direct_computation() {
        let mut r = RollingStats::new(5);
        for x in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] {
            r.push(x + 1e9);
        }
        // window = 3..=7 (+1e9)
        assert!((r.mean() - (5.0 + 1e9)).abs() < 1e-6);
        assert!((r.variance() - 2.0).abs() < 1e-6);
    }

    #[test]
    fn sorted_window_quantiles_and_mad() {
        let mut w = SortedWindow::new(5);
        for x in [9.0, 1.0, 5.0, 3.0, 7.0, 2.0] {
            w.push(x);
        }
        // holds 1,5,3,7,2 → sorted 1,2,3,5,7
        assert_eq!(w.sorted(), &[1.0, 2.0, 3.0, 5.0, 7.0]);
        assert_eq!(w.median(), 3.0);
        // deviations from 3: 2,1,0,2,4 → sorted 0,1,2,2,4 → median 2
        assert_eq!(w.mad(3.0), 2.0);
        w.push(f64::NAN);
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn sorted_window_stays_sorted_under_churn() {
        let mut rng = SplitMix64::new(99);
        let mut w = SortedWindow::new(37);
        let mut shadow: VecDeque<f64> = VecDeque::new();
        for _ in 0..5000 {
            // Few distinct values so duplicates and ties are exercised.
            #[allow(clippy::cast_precision_loss)]
            let x = (rng.below(20) as f64) - 10.0;
            w.push(x);
            shadow.push_back(x);
            if shadow.len() > 37 {
                shadow.pop_front();
            }
            let mut want: Vec<f64> = shadow.iter().copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(w.sorted(), want.as_slice());
        }
    }

    #[test]
    fn mad_matches_brute_force() {
        let mut rng = SplitMix64::new(5);
        for n in 1..60 {
            let mut w = SortedWindow::new(n);
            for _ in 0..n {
                #[allow(clippy::cast_precision_loss)]
                w.push((rng.below(15) as f64) - 7.0);
            }
            for center in [-8.0, -2.5, 0.0, 1.0, 3.3, 9.0] {
                let mut d: Vec<f64> = w.sorted().iter().map(|v| (v - center).abs()).collect();
                d.sort_by(f64::total_cmp);
                assert_eq!(w.mad(center), d[n / 2], "n={n} center={center}");
            }
        }
    }

    #[test]
    fn rng_is_deterministic() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
