//! Stand-alone `medic-sim` (the same as `medic sim`).
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "medic-sim",
    about = "Deterministic simulation of medic's engine"
)]
struct Cli {
    #[command(flatten)]
    args: medic_sim::cli::SimArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = medic_sim::cli::run(&cli.args)?;
    std::process::exit(code);
}
