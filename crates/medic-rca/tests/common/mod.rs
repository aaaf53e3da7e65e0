//! Shared by the scenario tests (`rank.rs`, `units.rs`).

/// A deterministic normal history around `base` (±5 %, no outliers).
pub fn history(base: f64) -> Vec<f64> {
    (0..120)
        .map(|i| base * (1.0 + 0.05 * (((i * 37) % 17) as f64 / 8.0 - 1.0)))
        .collect()
}
