//! How the `medic` binary wires the commands (and a stand-in until it does):
//! `cargo run --release -p medic-nab --example eval_nab -- eval-nab --data data/nab --json`
//! `cargo run --release -p medic-nab --example eval_nab -- bench-detect --samples 1000000`

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// `medic eval nab`
    EvalNab(medic_nab::cli::EvalNabArgs),
    /// `medic bench detect`
    BenchDetect(medic_nab::cli::BenchDetectArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::EvalNab(a) => medic_nab::cli::run(&a),
        Cmd::BenchDetect(a) => medic_nab::cli::run_bench(&a),
    }
}
