//! Shared by the scenario tests (`rank.rs`, `units.rs`, `precedent.rs`,
//! `crosskind.rs`).
#![allow(dead_code)]

use medic_rca::Topology;

/// A deterministic normal history around `base` (±5 %, no outliers).
pub fn history(base: f64) -> Vec<f64> {
    (0..120)
        .map(|i| base * (1.0 + 0.05 * (((i * 37) % 17) as f64 / 8.0 - 1.0)))
        .collect()
}

/// The topology of `names` with `edges` written `a>b c>d` (a calls b).
pub fn topology(names: &[String], edges: &str) -> Topology {
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
    let edges: Vec<(usize, usize)> = edges
        .split_whitespace()
        .map(|e| {
            let (a, b) = e.split_once('>').unwrap();
            (idx(a), idx(b))
        })
        .collect();
    Topology::new(names.to_vec(), &edges).unwrap()
}

/// A window written as multiples of `base` (`"1 1 3 3"`).
pub fn window(base: f64, text: &str) -> Vec<f64> {
    text.split_whitespace()
        .map(|x| base * x.parse::<f64>().unwrap())
        .collect()
}
