//! `medic bench canary`: the canary judge (issue 10) on seeded synthetic
//! latencies. Prints the time of one judgement (two metrics) per group size,
//! and, for the default thresholds, how often the judge fails an unchanged
//! canary (A/A), a canary 50 % slower, and a canary with three times the
//! spread around the same median (the case Kayenta's location-only judge
//! passes). Figures, not assertions.
use std::time::Instant;

use medic_core::medic_canary::{judge, JudgeConfig, MetricConfig, MetricSamples, Outcome};
use medic_core::SplitMix64;

use crate::codes::{CliError, Code};

#[derive(clap::Args, Debug)]
pub struct BenchCanaryArgs {
    /// Judgements timed per group size.
    #[arg(long, default_value_t = 200)]
    pub iterations: u32,
    /// Simulated canaries per scenario for the failure rates.
    #[arg(long, default_value_t = 1000)]
    pub trials: u32,
    /// Canary samples per trial (baseline: nine times as many, as in a 10 % stage).
    #[arg(long, default_value_t = 30)]
    pub canary: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A latency-like sample: `median · exp(spread · N(0,1))` (log-normal),
/// N(0,1) by Box-Muller from the seeded generator.
fn latency(rng: &mut SplitMix64, median: f64, spread: f64) -> f64 {
    let u1 = rng.unit().max(1e-12);
    let u2 = rng.unit();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (spread * z).exp()
}

/// A symmetric spread around `median`: `median + width · N(0,1)`, floored at 0.
fn jitter(rng: &mut SplitMix64, median: f64, width: f64) -> f64 {
    let u1 = rng.unit().max(1e-12);
    let u2 = rng.unit();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (median + width * z).max(0.0)
}

fn metrics() -> Vec<MetricConfig> {
    vec![
        MetricConfig::latency_ms("latency_ms"),
        MetricConfig::error_share("error"),
    ]
}

fn samples(canary: Vec<f64>, baseline: Vec<f64>) -> Vec<MetricSamples> {
    let (nc, nb) = (canary.len(), baseline.len());
    vec![
        MetricSamples {
            metric: "latency_ms".into(),
            canary,
            baseline,
        },
        MetricSamples {
            metric: "error".into(),
            canary: vec![0.0; nc],
            baseline: vec![0.0; nb],
        },
    ]
}

pub fn run(a: &BenchCanaryArgs) -> Result<(), CliError> {
    if a.iterations == 0 || a.trials == 0 || a.canary == 0 {
        return Err(CliError::new(
            Code::BenchCanary,
            "medic bench canary: --iterations, --trials and --canary must be at least 1",
        ));
    }
    let cfg = JudgeConfig {
        min_samples: JudgeConfig::default().min_samples.min(a.canary),
        ..JudgeConfig::default()
    };
    let ms = metrics();
    let mut rng = SplitMix64::new(a.seed);
    // Timing per size (canary, baseline).
    let sizes = [(10, 10), (20, 20), (30, 270), (150, 150), (500, 4500)];
    let mut timings = Vec::new();
    for (nc, nb) in sizes {
        let s = samples(
            (0..nc).map(|_| latency(&mut rng, 20.0, 0.3)).collect(),
            (0..nb).map(|_| latency(&mut rng, 20.0, 0.3)).collect(),
        );
        let t0 = Instant::now();
        let mut outcome = Outcome::Pass;
        for _ in 0..a.iterations {
            outcome = outcome.max(judge(&cfg, &ms, &s).outcome);
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(a.iterations);
        timings.push((nc, nb, us, outcome));
    }
    // Failure rates.
    let nb = a.canary * 9;
    type Gen = fn(&mut SplitMix64) -> f64;
    let scenarios: [(&str, Gen); 4] = [
        ("unchanged (A/A)", |r| latency(r, 20.0, 0.3)),
        ("50% slower", |r| latency(r, 30.0, 0.3)),
        ("3x spread, same median", |r| jitter(r, 20.0, 18.0)),
        ("same median, 1.2x spread", |r| jitter(r, 20.0, 7.2)),
    ];
    let base: Gen = |r| latency(r, 20.0, 0.3);
    let base_jitter: Gen = |r| jitter(r, 20.0, 6.0);
    let mut rates = Vec::new();
    for (i, (name, gen)) in scenarios.iter().enumerate() {
        let b = if i >= 2 { base_jitter } else { base };
        let mut fails = 0u32;
        let mut marginal = 0u32;
        for _ in 0..a.trials {
            let s = samples(
                (0..a.canary).map(|_| gen(&mut rng)).collect(),
                (0..nb).map(|_| b(&mut rng)).collect(),
            );
            match judge(&cfg, &ms, &s).outcome {
                Outcome::Fail => fails += 1,
                Outcome::Marginal => marginal += 1,
                Outcome::Pass => {}
            }
        }
        rates.push((
            *name,
            f64::from(fails) / f64::from(a.trials),
            f64::from(marginal) / f64::from(a.trials),
        ));
    }
    if a.json {
        let t: Vec<_> = timings
            .iter()
            .map(
                |(c, b, us, _)| serde_json::json!({"canary": c, "baseline": b, "us_per_judge": us}),
            )
            .collect();
        let r: Vec<_> = rates
            .iter()
            .map(|(n, f, m)| serde_json::json!({"scenario": n, "fail_rate": f, "marginal_rate": m}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "iterations": a.iterations, "trials": a.trials, "canary": a.canary,
                "baseline": nb, "seed": a.seed, "confidence": cfg.confidence,
                "timings": t, "rates": r,
            })
        );
        return Ok(());
    }
    println!(
        "canary judge, 2 metrics (latency, error share), confidence {}, seed {}",
        cfg.confidence, a.seed
    );
    println!("{:>8} {:>9} {:>14}", "canary", "baseline", "us/judgement");
    for (c, b, us, _) in &timings {
        println!("{c:>8} {b:>9} {us:>14.1}");
    }
    println!(
        "\n{} trials, {} canary vs {nb} baseline samples (log-normal latency, median 20 ms):",
        a.trials, a.canary
    );
    println!(
        "{:<28} {:>10} {:>14}",
        "canary", "fail rate", "marginal rate"
    );
    for (n, f, m) in &rates {
        println!("{n:<28} {f:>10.3} {m:>14.3}");
    }
    Ok(())
}
