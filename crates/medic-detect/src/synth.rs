//! Seeded synthetic series for tests and benchmarks: daily seasonality, noise, rare spikes.

use crate::util::SplitMix64;

/// `n` samples every `step_secs` seconds: a daily sine of amplitude 10 around 50, Gaussian
/// noise (σ = 1), and with probability `spike_rate` per sample a spike of +20..+40.
#[must_use]
pub fn daily_series(n: usize, step_secs: i64, seed: u64, spike_rate: f64) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    let start = 1_400_000_000i64;
    (0..n)
        .map(|i| {
            let t = start + i64::try_from(i).unwrap_or(i64::MAX / 2) * step_secs;
            #[allow(clippy::cast_precision_loss)]
            let phase = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            let mut v = 50.0 + 10.0 * phase.sin() + rng.normal();
            if rng.next_f64() < spike_rate {
                v += 20.0 + 20.0 * rng.next_f64();
            }
            (t, v)
        })
        .collect()
}
