//! Seeded synthetic series for tests and benchmarks: a daily sine with rare spikes, and
//! stand-ins for the kinds of data NAB keeps held out (bursty tweet counts, road traffic with
//! irregular sampling, short hourly ad-exchange series), generated here from simple models so
//! that the real held-out files are never needed; plus [`inject`] for labelled anomalies.

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

/// Start of every synthetic series (a Monday, 2014-05-12 00:00 UTC).
const START: i64 = 1_399_852_800;

#[allow(clippy::cast_precision_loss)]
fn day_phase(t: i64) -> f64 {
    (t.rem_euclid(86_400)) as f64 / 86_400.0
}

/// Weekday (0 = Monday) of a Unix time.
fn weekday(t: i64) -> i64 {
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    (t.div_euclid(86_400) + 3).rem_euclid(7)
}

/// A Poisson sample (Knuth for small means, a rounded normal for large ones).
fn poisson(rng: &mut SplitMix64, mean: f64) -> f64 {
    if mean.is_nan() || mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * rng.normal()).round().max(0.0);
    }
    let l = (-mean).exp();
    let mut k = 0.0;
    let mut p = 1.0;
    loop {
        p *= rng.next_f64();
        if p <= l {
            return k;
        }
        k += 1.0;
    }
}

/// Tweets-per-5-minutes-like counts: a daily activity cycle, log-normal day-to-day and
/// sample-to-sample variation of the rate, Poisson counts, and ordinary bursts (a news item:
/// the rate multiplied by a heavy-tailed factor, decaying over an hour or two) that are part of
/// normal life for such series. `n` samples every 300 s.
#[must_use]
pub fn tweet_counts(n: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    let base = 4.0 + 20.0 * rng.next_f64();
    let mut day_level = 1.0;
    let mut burst = 0.0f64;
    (0..n)
        .map(|i| {
            let t = START + i64::try_from(i).unwrap_or(0) * 300;
            if t.rem_euclid(86_400) == 0 {
                day_level = (0.25 * rng.normal()).exp();
            }
            let cycle = 1.0 + 0.7 * (std::f64::consts::TAU * (day_phase(t) - 0.3)).sin();
            // About two bursts a day; Pareto(α = 2.5) size, half-life ≈ 40 min.
            if rng.next_f64() < 2.0 / 288.0 {
                burst += 1.5 * (rng.next_f64().max(1e-9).powf(-1.0 / 2.5) - 1.0);
            }
            burst *= 0.92;
            let rate =
                base * day_level * cycle.max(0.05) * (0.2 * rng.normal()).exp() * (1.0 + burst);
            (t, poisson(&mut rng, rate))
        })
        .collect()
}

/// What a road-traffic sensor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficKind {
    /// Speed (mph): free flow ≈ 60, dips at the weekday rush hours.
    Speed,
    /// Occupancy (%): low at night, peaks at the rush hours.
    Occupancy,
    /// Travel time (s) over a segment: inversely related to speed.
    TravelTime,
}

/// Road-traffic-like series: weekday morning and evening rush hours (weaker at weekends),
/// sensor noise, and irregular sampling (about 5 minutes with jitter, with gaps of up to a
/// few hours where the sensor reported nothing).
#[must_use]
pub fn traffic(n: usize, kind: TrafficKind, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    let mut t = START;
    let mut out = Vec::with_capacity(n);
    let rush = |t: i64| -> f64 {
        let h = day_phase(t) * 24.0;
        let peak = |c: f64, w: f64| (-((h - c) / w).powi(2)).exp();
        let weekend = weekday(t) >= 5;
        let k = if weekend { 0.25 } else { 1.0 };
        k * (peak(8.0, 1.2) + 0.8 * peak(17.5, 1.5))
    };
    while out.len() < n {
        let congestion = (rush(t) * (1.0 + 0.15 * rng.normal())).clamp(0.0, 1.5);
        let v = match kind {
            TrafficKind::Speed => 62.0 - 30.0 * congestion + 2.5 * rng.normal(),
            TrafficKind::Occupancy => {
                let night = 0.5 + 0.5 * (std::f64::consts::TAU * (day_phase(t) - 0.25)).sin();
                (3.0 + 4.0 * night + 18.0 * congestion + 1.5 * rng.normal()).max(0.0)
            }
            TrafficKind::TravelTime => {
                let speed = (62.0 - 30.0 * congestion + 2.5 * rng.normal()).max(5.0);
                (600.0 * 60.0 / speed * (1.0 + 0.03 * rng.normal())).round()
            }
        };
        out.push((t, v));
        let gap = if rng.next_f64() < 0.004 {
            300 * (2 + i64::try_from(rng.below(36)).unwrap_or(0))
        } else {
            300
        };
        t += gap + i64::try_from(rng.below(61)).unwrap_or(0) - 30;
    }
    out
}

/// Ad-exchange-like hourly series (cost per click or per thousand impressions): positive,
/// a daily cycle and a weekly one, log-normal noise and slow drift. Typically 1,500 rows.
#[must_use]
pub fn ad_exchange(n: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    let mut level = 0.2 + rng.next_f64();
    (0..n)
        .map(|i| {
            let t = START + i64::try_from(i).unwrap_or(0) * 3600;
            level *= (0.004 * rng.normal()).exp();
            let daily = 1.0 + 0.3 * (std::f64::consts::TAU * (day_phase(t) - 0.2)).sin();
            let weekly = if weekday(t) >= 5 { 0.85 } else { 1.0 };
            let v = level * daily * weekly * (0.12 * rng.normal()).exp();
            (t, (v * 1e4).round() / 1e4)
        })
        .collect()
}

/// An anomaly to inject into a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Injected {
    /// The value at one row multiplied by this factor.
    Spike(f64),
    /// Every value from the row on multiplied by this factor (a level shift).
    Shift(f64),
    /// Zero for this many rows (an outage: nothing counted, sensor stuck at 0).
    Dropout(usize),
}

/// Injects `what` at row `at` (nothing when `at` is past the end).
pub fn inject(series: &mut [(i64, f64)], at: usize, what: Injected) {
    match what {
        Injected::Spike(k) => {
            if let Some(s) = series.get_mut(at) {
                s.1 *= k;
            }
        }
        Injected::Shift(k) => {
            for s in series.iter_mut().skip(at) {
                s.1 *= k;
            }
        }
        Injected::Dropout(len) => {
            for s in series.iter_mut().skip(at).take(len) {
                s.1 = 0.0;
            }
        }
    }
}
