//! Development probe (`cargo run --release -p medic-nab --example synth_probe -- SPEC [T]`): how the default detector scores the synthetic held-out-like series.
use medic_detect::synth::{ad_exchange, inject, traffic, tweet_counts, Injected, TrafficKind};
use medic_detect::Detector;
use medic_nab::spec::build_detector as by_name;

fn main() {
    let det = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    let thr: f64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    for seed in 1..=4u64 {
        let kinds: Vec<(&str, Vec<(i64, f64)>)> = vec![
            ("tweets", tweet_counts(15_000, seed)),
            ("speed", traffic(2_500, TrafficKind::Speed, seed)),
            ("occupancy", traffic(2_500, TrafficKind::Occupancy, seed)),
            ("travel", traffic(2_500, TrafficKind::TravelTime, seed)),
            ("adx", ad_exchange(1_500, seed)),
        ];
        for (name, s) in kinds {
            let n = s.len();
            let mut d: Box<dyn Detector> = by_name(&det).unwrap_or_else(|e| panic!("{e}"));
            let sc: Vec<f64> = s.iter().map(|&(t, v)| d.update(t, v)).collect();
            let prob = (n * 15 / 100).min(750);
            let fp = sc[prob..].iter().filter(|x| **x >= thr).count();
            let mx = sc[prob..].iter().copied().fold(0.0, f64::max);
            let mut res = vec![];
            for what in [
                Injected::Spike(3.0),
                Injected::Spike(10.0),
                Injected::Shift(0.5),
                Injected::Shift(2.0),
                Injected::Dropout(24),
            ] {
                let mut s2 = s.clone();
                let at = n * 3 / 4
                    + std::env::var("AT")
                        .ok()
                        .and_then(|s| s.parse::<usize>().ok())
                        .unwrap_or(0);
                inject(&mut s2, at, what);
                let mut d: Box<dyn Detector> = by_name(&det).unwrap_or_else(|e| panic!("{e}"));
                let sc2: Vec<f64> = s2.iter().map(|&(t, v)| d.update(t, v)).collect();
                let hit = sc2[at..(at + 30).min(n)]
                    .iter()
                    .copied()
                    .fold(0.0, f64::max);
                res.push(format!("{hit:.3}"));
            }
            println!("seed {seed} {name:<10} n={n} alarms≥{thr}: {fp:>3} max {mx:.3}  injected spike/shift/dropout max: {}", res.join(" "));
        }
    }
}
