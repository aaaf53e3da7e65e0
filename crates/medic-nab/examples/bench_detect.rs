//! `cargo run --release -p medic-nab --example bench_detect -- [SAMPLES] [--json]`: the same
//! report as `medic bench detect`.

fn main() -> anyhow::Result<()> {
    let mut args = medic_nab::cli::BenchDetectArgs {
        samples: 2_000_000,
        json: false,
    };
    for a in std::env::args().skip(1) {
        if a == "--json" {
            args.json = true;
        } else {
            args.samples = a.parse()?;
        }
    }
    medic_nab::cli::run_bench(&args)
}
