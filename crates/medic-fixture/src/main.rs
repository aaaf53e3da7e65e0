//! `medic-fixture`: runs the fault-injectable demo service.

use std::net::IpAddr;

use clap::Parser;

/// Fault-injectable HTTP service used by medic's demo and tests.
#[derive(Parser, Debug)]
#[command(name = "medic-fixture", version)]
struct Args {
    /// Address to bind.
    #[arg(long, env = "FIXTURE_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to bind (0 picks a free one; the real one is printed).
    #[arg(long, env = "FIXTURE_PORT", default_value_t = 8081)]
    port: u16,
    /// Exit with code 1 immediately, before binding.
    #[arg(long, env = "FIXTURE_CRASH_ON_START")]
    crash_on_start: bool,
    /// Wait this long (e.g. 5s, 800ms) before binding and answering /healthz.
    #[arg(long, env = "FIXTURE_STARTUP_DELAY", value_parser = humantime::parse_duration, default_value = "0s")]
    startup_delay: std::time::Duration,
    /// Base URL of a service this one calls from `/work`.
    #[arg(long, env = "FIXTURE_DOWNSTREAM")]
    downstream: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    medic_fixture::run(medic_fixture::FixtureOptions {
        bind: args.bind,
        port: args.port,
        crash_on_start: args.crash_on_start,
        startup_delay: args.startup_delay,
        downstream: args.downstream,
    })
    .await
}
