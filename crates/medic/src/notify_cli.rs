//! `medic ack`, `medic notify test`, `medic bench notify` (issue 12).
use std::process::ExitCode;

use crate::client::ApiClient;
use crate::codes::{CliError, Code};

#[derive(clap::Args)]
pub struct AckArgs {
    /// The incident to acknowledge (stops its escalation chain).
    pub incident: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum NotifyCmd {
    /// Send a test message through the real outbox and report, per channel,
    /// whether it was delivered.
    Test {
        /// Only this channel (a name under notify.channels).
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct BenchNotifyArgs {
    /// Kill/restart cycles of the loopback receivers.
    #[arg(long, default_value_t = 50)]
    pub cycles: u32,
    /// Notifications queued per cycle (every other one critical).
    #[arg(long, default_value_t = 4)]
    pub per_cycle: u32,
    /// Instead of kill/restart cycles: every channel down for this long
    /// (e.g. `10m`) while notifications keep coming, then all back; reports
    /// delivered/lost/duplicate/out-of-order and how soon delivery resumed
    /// (with the default retry backoff).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub outage: Option<std::time::Duration>,
    /// With `--outage`: one notification queued every INTERVAL during it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub interval: std::time::Duration,
    /// Print `{"cycles","sent","lost","duplicate",...}` (with `--outage`:
    /// `{"outage_s","sent","delivered","lost","duplicate","out_of_order","resume_s",...}`).
    #[arg(long)]
    pub json: bool,
}

pub async fn ack(api: &str, args: &AckArgs) -> Result<ExitCode, CliError> {
    let path = format!("/api/v1/incidents/{}/ack", args.incident);
    let v = ApiClient::new(api)
        .post(&path, &serde_json::json!({}))
        .await?;
    if args.json {
        println!("{v}");
    } else {
        println!(
            "incident {} acknowledged by {}: {} escalation step(s) cancelled, {} acknowledgement(s) queued",
            v["incident"].as_str().unwrap_or("?"),
            v["acknowledged_by"].as_str().unwrap_or("?"),
            v["cancelled_steps"],
            v["queued"],
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn notify(api: &str, cmd: &NotifyCmd) -> Result<ExitCode, CliError> {
    let NotifyCmd::Test { channel, json } = cmd;
    let v = ApiClient::new(api)
        .post(
            "/api/v1/notify/test",
            &serde_json::json!({ "channel": channel }),
        )
        .await?;
    let results = v["results"].as_array().cloned().unwrap_or_default();
    if *json {
        println!("{v}");
    } else {
        for r in &results {
            let state = r["state"].as_str().unwrap_or("?");
            let channel = r["channel"].as_str().unwrap_or("?");
            match state {
                "delivered" => println!(
                    "{channel}: delivered (attempts: {}, id {})",
                    r["attempts"],
                    r["msg_id"].as_str().unwrap_or("")
                ),
                _ => println!(
                    "{channel}: NOT delivered yet ({state}, attempts: {}): {}; it stays queued and is retried",
                    r["attempts"],
                    r["last_error"].as_str().unwrap_or("no answer yet")
                ),
            }
        }
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r["state"].as_str() != Some("delivered"))
        .filter_map(|r| r["channel"].as_str())
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::new(
            Code::NotifyFailed,
            format!("not delivered by: {}", failed.join(", ")),
        ))
    }
}

pub async fn bench(args: &BenchNotifyArgs) -> Result<ExitCode, CliError> {
    if args.cycles == 0 || args.per_cycle == 0 {
        return Err(CliError::new(
            Code::Usage,
            "--cycles and --per-cycle must be at least 1",
        ));
    }
    if let Some(outage) = args.outage {
        return bench_outage(args, outage).await;
    }
    let started = std::time::Instant::now();
    let r = medic_notify::bench::run(args.cycles, args.per_cycle)
        .await
        .map_err(|e| CliError::new(Code::NotifyBench, e.to_string()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| CliError::new(Code::Io, e.to_string()))?
        );
    } else {
        println!(
            "cycles {}  sent {}  lost {}  duplicate {}  out-of-order {}  retried {}  failovers {}  ({:.1}s)",
            r.cycles,
            r.sent,
            r.lost,
            r.duplicate,
            r.out_of_order,
            r.retried,
            r.failovers,
            started.elapsed().as_secs_f64()
        );
    }
    if r.lost > 0 || r.duplicate > 0 || r.out_of_order > 0 {
        return Err(CliError::new(
            Code::NotifyBench,
            format!(
                "{} lost, {} duplicated, {} out of order",
                r.lost, r.duplicate, r.out_of_order
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn bench_outage(
    args: &BenchNotifyArgs,
    outage: std::time::Duration,
) -> Result<ExitCode, CliError> {
    if outage.is_zero() || args.interval.is_zero() {
        return Err(CliError::new(
            Code::Usage,
            "--outage and --interval must be more than 0",
        ));
    }
    let r = medic_notify::bench::run_outage(outage, args.interval)
        .await
        .map_err(|e| CliError::new(Code::NotifyBench, e.to_string()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| CliError::new(Code::Io, e.to_string()))?
        );
    } else {
        println!(
            "outage {}s (every channel down)  sent {} ({} during the outage)  delivered {}  lost {}  duplicate {}  out-of-order {}\n\
             retry backoff: base {}s cap {}s jitter {}s  delivery resumed {:.1}s after the channels came back, outbox empty after {:.1}s",
            r.outage_s,
            r.sent,
            r.sent_during_outage,
            r.delivered,
            r.lost,
            r.duplicate,
            r.out_of_order,
            r.retry_base_s,
            r.retry_cap_s,
            r.retry_jitter_s,
            r.resume_s,
            r.drain_s
        );
    }
    // Resumed within one capped retry (plus a little for the round itself).
    let bound = r.retry_cap_s + r.retry_jitter_s + 5.0;
    if r.lost > 0 || r.duplicate > 0 || r.out_of_order > 0 || r.resume_s > bound {
        return Err(CliError::new(
            Code::NotifyBench,
            format!(
                "{} lost, {} duplicated, {} out of order; delivery resumed after {:.1}s (bound {bound:.0}s)",
                r.lost, r.duplicate, r.out_of_order, r.resume_s
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
