//! Robust baseline of one signal: median and scale.
use crate::Direction;

/// Median of the finite values (NaN when there are none).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    median_in_place(&mut v)
}

/// Median of finite `v`, reordering it (linear-time selection, no sort).
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (left, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *mid;
    if n % 2 == 1 {
        hi
    } else {
        let lo = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// The largest |z| a sample gets (far beyond any threshold).
pub const MAX_Z: f64 = 1e9;

/// Median and robust scale of a history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub median: f64,
    pub scale: f64,
}

impl Baseline {
    /// `None` with fewer than `min` finite samples. Scale: `1.4826·MAD`; when
    /// the MAD is zero (most samples equal, e.g. 100 % availability),
    /// `1.2533·mean absolute deviation`; when that is zero too (a constant),
    /// `max(1e-3·|median|, 1e-9)`.
    pub fn of(history: &[f64], min: usize) -> Option<Baseline> {
        let mut finite: Vec<f64> = history.iter().copied().filter(|x| x.is_finite()).collect();
        if finite.len() < min.max(1) {
            return None;
        }
        let med = median_in_place(&mut finite);
        let mut dev: Vec<f64> = finite.iter().map(|x| (x - med).abs()).collect();
        let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
        let mad = median_in_place(&mut dev);
        let scale = if mad > 0.0 {
            1.4826 * mad
        } else {
            if mean_ad > 0.0 {
                1.2533 * mean_ad
            } else {
                (1e-3 * med.abs()).max(1e-9)
            }
        };
        Some(Baseline { median: med, scale })
    }

    /// One-sided robust z of `x`: NaN (missing) for a non-finite `x` (a
    /// source may report ±Inf), and within ±[`MAX_Z`] so that no sum or
    /// ratio of z's overflows.
    pub fn z(&self, x: f64, dir: Direction) -> f64 {
        if !x.is_finite() {
            return f64::NAN;
        }
        let z = ((x - self.median) / self.scale).clamp(-MAX_Z, MAX_Z);
        match dir {
            Direction::Up => z,
            Direction::Down => -z,
            Direction::Both => z.abs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[f64::NAN]).is_nan());
        let b = Baseline::of(&[1.0, 2.0, 3.0, 4.0, 100.0], 1).unwrap();
        assert_eq!(b.median, 3.0);
        assert!((b.scale - 1.4826).abs() < 1e-12);
    }

    #[test]
    fn zero_mad_falls_back_to_mean_deviation_then_a_floor() {
        let mut h = vec![100.0; 9];
        h.push(90.0);
        let b = Baseline::of(&h, 1).unwrap();
        assert!((b.scale - 1.2533).abs() < 1e-9, "{b:?}");
        assert!(b.z(95.0, Direction::Down) > 3.0);
        assert!(b.z(f64::INFINITY, Direction::Up).is_nan());
        assert_eq!(b.z(1e308, Direction::Up), MAX_Z);
        assert_eq!(b.z(-1e308, Direction::Both), MAX_Z);
        let c = Baseline::of(&[5.0; 10], 1).unwrap();
        assert!((c.scale - 0.005).abs() < 1e-12);
        assert!(Baseline::of(&[1.0, f64::NAN], 2).is_none());
    }
}
