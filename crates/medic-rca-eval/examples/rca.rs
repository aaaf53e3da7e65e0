//! `medic eval rca` / `medic bench rca` without building the whole binary.
use clap::Parser;

#[derive(Parser)]
enum Cmd {
    Eval(medic_rca_eval::cli::EvalRcaArgs),
    Bench(medic_rca_eval::cli::BenchRcaArgs),
}

fn main() -> anyhow::Result<()> {
    match Cmd::parse() {
        Cmd::Eval(a) => medic_rca_eval::cli::run(&a),
        Cmd::Bench(a) => medic_rca_eval::cli::run_bench(&a),
    }
}
