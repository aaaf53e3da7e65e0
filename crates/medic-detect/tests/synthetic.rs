//! The default detector on synthetic stand-ins for the kinds of data NAB keeps held out
//! (bursty tweet counts, road traffic with irregular sampling, short hourly ad-exchange
//! series; see `medic_detect::synth`): few alarms on anomaly-free series, and injected
//! anomalies detected. The held-out NAB files themselves are never used.

use medic_detect::synth::{ad_exchange, inject, traffic, tweet_counts, Injected, TrafficKind};
use medic_detect::{by_name, Detector};

/// Scores at or above this are alarms (the default's NAB-optimal thresholds are ≈ 0.50).
const ALARM: f64 = 0.5;

fn scores(series: &[(i64, f64)]) -> Vec<f64> {
    let mut d: Box<dyn Detector> = by_name("default").unwrap_or_else(|| panic!("default"));
    series.iter().map(|&(t, v)| d.update(t, v)).collect()
}

/// NAB's learning period: the first 15 % of the rows (at most 750) are not judged.
fn probation(n: usize) -> usize {
    (n * 15 / 100).min(750)
}

/// Alarm episodes after the learning period: runs of alarm rows, rows less than an hour of
/// 5-minute samples (12 rows) apart belonging to one episode.
fn episodes(s: &[f64]) -> usize {
    let mut n = 0;
    let mut last: Option<usize> = None;
    for (i, &x) in s.iter().enumerate().skip(probation(s.len())) {
        if x >= ALARM {
            if last.is_none_or(|l| i - l > 12) {
                n += 1;
            }
            last = Some(i);
        }
    }
    n
}

type Gen = fn(u64) -> Vec<(i64, f64)>;

fn kinds() -> Vec<(&'static str, Gen)> {
    vec![
        ("tweets", |s| tweet_counts(15_000, s)),
        ("speed", |s| traffic(2_500, TrafficKind::Speed, s)),
        ("occupancy", |s| traffic(2_500, TrafficKind::Occupancy, s)),
        ("travel_time", |s| {
            traffic(2_500, TrafficKind::TravelTime, s)
        }),
        ("ad_exchange", |s| ad_exchange(1_500, s)),
    ]
}

#[test]
fn generators_have_the_intended_shape() {
    let t = tweet_counts(3_000, 1);
    assert!(
        t.iter().all(|&(_, v)| v >= 0.0 && v.fract() == 0.0),
        "counts"
    );
    let mean = t.iter().map(|x| x.1).sum::<f64>() / 3_000.0;
    let max = t.iter().map(|x| x.1).fold(0.0, f64::max);
    assert!(max > 3.0 * mean, "bursty: max {max} mean {mean}");
    let s = traffic(2_000, TrafficKind::Speed, 1);
    let gaps = s.windows(2).filter(|w| w[1].0 - w[0].0 > 600).count();
    assert!(gaps > 0, "irregular sampling with gaps");
    assert!(s.windows(2).all(|w| w[1].0 > w[0].0), "time moves forward");
    let a = ad_exchange(1_500, 1);
    assert_eq!(a[1].0 - a[0].0, 3600);
    assert!(a.iter().all(|&(_, v)| v > 0.0));
}

#[test]
fn anomaly_free_series_raise_few_alarms() {
    for (name, g) in kinds() {
        let mut total = 0;
        let mut rows = 0;
        for seed in 1..=4 {
            let s = g(seed);
            let e = episodes(&scores(&s));
            // Never more than 10 alarm episodes in one series (15,000 five-minute rows = 52
            // days of tweets; measured 4-10 there: the largest ordinary bursts alarm) and at
            // most 4 in 2,500 traffic rows or 1,500 ad-exchange hours.
            let bound = if name == "tweets" { 10 } else { 4 };
            assert!(e <= bound, "{name} seed {seed}: {e} alarm episodes");
            total += e;
            rows += s.len() - probation(s.len());
        }
        // And on average at most 1.5 episodes per 1,000 judged rows (regression guard set
        // from the measured behaviour: tweets 25/57,000, speed 10/8,500; see the README).
        println!("{name}: {total} alarm episodes in {rows} judged rows");
        assert!(
            total * 1_000 <= rows * 3 / 2,
            "{name}: {total} episodes in {rows} rows"
        );
    }
}

/// Injects at a daytime row three quarters in; returns (max score in the 30 rows from the
/// injection, max score of the anomaly-free series over the same rows).
fn injected(series: &[(i64, f64)], what: Injected) -> (f64, f64) {
    let n = series.len();
    // Move to 13:00 UTC, when every generator is near its daily peak.
    let mut at = n * 3 / 4;
    while at + 1 < n && (series[at].0.rem_euclid(86_400) / 3600) != 13 {
        at += 1;
    }
    let mut s = series.to_vec();
    inject(&mut s, at, what);
    let max = |v: &[f64]| v[at..(at + 30).min(n)].iter().copied().fold(0.0, f64::max);
    (max(&scores(&s)), max(&scores(series)))
}

#[test]
fn injected_anomalies_are_detected() {
    let cases: Vec<(&str, Gen, Injected)> = vec![
        (
            "tweets ×10 spike",
            |s| tweet_counts(15_000, s),
            Injected::Spike(10.0),
        ),
        (
            "speed ×10 spike",
            |s| traffic(2_500, TrafficKind::Speed, s),
            Injected::Spike(10.0),
        ),
        (
            "speed sensor stuck at 0",
            |s| traffic(2_500, TrafficKind::Speed, s),
            Injected::Dropout(24),
        ),
        // Not asserted, known misses (medic-nab README): a midday speed halved to the rush-hour
        // level (contextual; 0.21 for seed 1), occupancy halved, tweet volume doubled.
        (
            "occupancy ×10 spike",
            |s| traffic(2_500, TrafficKind::Occupancy, s),
            Injected::Spike(10.0),
        ),
        (
            "travel time ×10 spike",
            |s| traffic(2_500, TrafficKind::TravelTime, s),
            Injected::Spike(10.0),
        ),
        (
            "travel time stuck at 0",
            |s| traffic(2_500, TrafficKind::TravelTime, s),
            Injected::Dropout(24),
        ),
        (
            "ad exchange ×10 spike",
            |s| ad_exchange(1_500, s),
            Injected::Spike(10.0),
        ),
        (
            "ad exchange outage",
            |s| ad_exchange(1_500, s),
            Injected::Dropout(24),
        ),
        (
            "ad exchange doubled",
            |s| ad_exchange(1_500, s),
            Injected::Shift(2.0),
        ),
    ];
    let mut failures = Vec::new();
    for (name, g, what) in cases {
        for seed in 1..=4 {
            let (hit, quiet) = injected(&g(seed), what);
            if hit < ALARM || hit <= quiet {
                failures.push(format!("{name} seed {seed}: {hit:.3} (clean {quiet:.3})"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
