//! `medic bench recovery`: kill medic at random failure points in the middle
//! of a real heal and count duplicate and lost actions.
//!
//! One trial, in a fresh directory: `medic run` supervises the fixture
//! (wrapped in `sh`, which appends a line to `starts` before each start),
//! with `MEDIC_FAILPOINT=<random point>`. The fixture's error fault is set;
//! medic opens an incident and restarts it, and kills itself at the point.
//! A second `medic run` (no failpoint) restores the state and must finish the
//! heal. Then:
//! - **duplicate**: the fixture was restarted more than once (one restart
//!   clears the fault: a second one is an action run twice);
//! - **lost**: the fixture was never restarted or is not healthy at the end,
//!   an incident is still open, or an `action.intent` has neither an
//!   `action.outcome` nor an `action.reconciled` record;
//! - **audit_valid**: the audit hash chain verifies after the trial.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use medic_exec::failpoint;
use tokio::process::{Child, Command};

use crate::bench::heal_trial::{medic_run, terminate, unmatched_intents, wait_true, work_dir};
use crate::bench::{free_port, medic_exe};

#[derive(clap::Args, Debug)]
pub struct BenchRecoveryArgs {
    /// Number of trials (one kill each).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Seed of the failure-point choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use this failure point in every trial instead of random ones.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(failpoint::POINTS))]
    pub point: Option<String>,
    /// Print one JSON object `{"trials","duplicate","lost","audit_valid"}`.
    #[arg(long)]
    pub json: bool,
    /// Keep each trial's directory under DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What one trial found.
#[derive(Debug, Default, Clone)]
struct Trial {
    point: &'static str,
    restarts: u32,
    duplicate: bool,
    lost: bool,
    audit_valid: bool,
    why: String,
}

/// splitmix64: a deterministic choice of points from the seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub async fn run(args: &BenchRecoveryArgs) -> anyhow::Result<bool> {
    let exe = medic_exe()?;
    let (base, _tmp) = work_dir(args.dir.as_deref())?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building an HTTP client")?;
    let mut results = Vec::new();
    for i in 0..args.trials {
        let random = failpoint::POINTS
            [(mix(args.seed ^ u64::from(i).wrapping_mul(0x1000_0001)) % 5) as usize];
        let point = args
            .point
            .as_deref()
            .and_then(|p| failpoint::POINTS.iter().copied().find(|q| *q == p))
            .unwrap_or(random);
        let dir = base.join(format!("trial-{i:04}"));
        std::fs::create_dir_all(&dir)?;
        let t = trial(&exe, &dir, point, &http)
            .await
            .with_context(|| format!("trial {i} ({point}) in {}", dir.display()))?;
        if !args.json {
            println!(
                "trial {i:>4} {point:<15} restarts {} {}{}{}",
                t.restarts,
                if t.duplicate { "DUPLICATE " } else { "" },
                if t.lost { "LOST " } else { "" },
                if t.audit_valid { "" } else { "AUDIT-BROKEN " },
            );
            if !t.why.is_empty() {
                println!("      {}", t.why);
            }
        }
        results.push(t);
    }
    let duplicate = results.iter().filter(|t| t.duplicate).count();
    let lost = results.iter().filter(|t| t.lost).count();
    let audit_valid = results.iter().all(|t| t.audit_valid);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "trials": results.len(),
                "duplicate": duplicate,
                "lost": lost,
                "audit_valid": audit_valid,
                "points": failpoint::POINTS
                    .iter()
                    .map(|p| (p.to_string(), serde_json::json!(results.iter().filter(|t| t.point == *p).count())))
                    .collect::<serde_json::Map<_, _>>(),
            })
        );
    } else {
        println!(
            "{} trials: {duplicate} duplicate, {lost} lost, audit chain {} (goal: 0, 0, valid)",
            results.len(),
            if audit_valid {
                "valid after every trial"
            } else {
                "BROKEN"
            }
        );
    }
    Ok(duplicate == 0 && lost == 0 && audit_valid)
}

fn config(exe: &Path, dir: &Path, fport: u16, aport: u16) -> String {
    let starts = dir.join("starts");
    let script = format!(
        "echo start >> '{}'; exec '{}' fixture --port {fport}",
        starts.display(),
        exe.display()
    );
    let command = serde_json::to_string(&["sh", "-c", &script]).unwrap_or_default();
    format!(
        r#"mode: aggressive
auth: none
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 3s, restart_budget: 10 }}
services:
  web:
    process:
      command: {command}
      stop_grace: 2s
    startup: {{ grace: 2s }}
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{fport}/healthz", timeout: 500ms }}
        interval: 200ms
        failure: {{ consecutive: 2 }}
        recovery: {{ consecutive: 2 }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: healthz }}
        action: restart
"#
    )
}

fn spawn(exe: &Path, dir: &Path, point: Option<&str>) -> anyhow::Result<Child> {
    let mut cmd = medic_run(Command::new(exe), dir)?;
    match point {
        Some(p) => cmd.env(failpoint::VAR, p),
        None => cmd.env_remove(failpoint::VAR),
    };
    Ok(cmd.spawn()?)
}

async fn get(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let r = http
        .get(url)
        .timeout(Duration::from_millis(800))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// SIGTERM, then wait (medic stops its supervised process on the way out).
async fn stop(child: &mut Child) {
    terminate(child, Duration::from_secs(15)).await;
}

/// Kill the fixture a crashed medic left behind, if a trial fails early.
async fn kill_fixture(http: &reqwest::Client, health: &str) {
    // healthz names the pid also when it answers 500 (error fault).
    let pid = match http
        .get(health)
        .timeout(Duration::from_millis(800))
        .send()
        .await
    {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["pid"].as_i64()),
        Err(_) => None,
    };
    if let Some(pid) = pid {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn trial(
    exe: &Path,
    dir: &Path,
    point: &'static str,
    http: &reqwest::Client,
) -> anyhow::Result<Trial> {
    let (fport, aport) = (free_port()?, free_port()?);
    std::fs::write(dir.join("medic.yaml"), config(exe, dir, fport, aport))?;
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let api = format!("http://127.0.0.1:{aport}");

    let mut first = spawn(exe, dir, Some(point))?;
    if !wait_true(Duration::from_secs(30), || async {
        get(http, &health).await.is_some()
    })
    .await
    {
        stop(&mut first).await;
        bail!("the fixture never answered under the first medic");
    }
    // Past the start phase: medic's probe has seen the fixture healthy.
    let incidents = format!("{api}/api/v1/incidents");
    let up = wait_true(Duration::from_secs(30), || async {
        get(http, &incidents).await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if !up {
        stop(&mut first).await;
        bail!("the first medic's API never answered");
    }
    let fault = http
        .post(format!("http://127.0.0.1:{fport}/fault/error"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .context("setting the error fault")?;
    if !fault.status().is_success() {
        stop(&mut first).await;
        bail!("the fixture refused the error fault: {}", fault.status());
    }
    // medic must die at the failure point during this heal.
    let died = tokio::time::timeout(Duration::from_secs(30), first.wait()).await;
    let killed = match died {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
        }
        _ => false,
    };
    if !killed {
        stop(&mut first).await;
        kill_fixture(http, &health).await;
        bail!("medic did not kill itself at {point} within 30s");
    }

    let mut second = spawn(exe, dir, None)?;
    let settled = wait_true(Duration::from_secs(60), || async {
        let healthy = get(http, &health).await.is_some();
        let open = get(http, &incidents).await.map(|v| {
            v["incidents"].as_array().map_or(usize::MAX, |a| {
                a.iter().filter(|i| i["closed_at"].is_null()).count()
            })
        });
        healthy && open == Some(0)
    })
    .await;
    // A moment more: a duplicate restart would show up now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let healthy = get(http, &health).await.is_some();
    stop(&mut second).await;
    kill_fixture(http, &health).await;

    let starts = std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .count();
    let restarts = u32::try_from(starts.saturating_sub(1)).unwrap_or(u32::MAX);
    let db = dir.join("medic.db");
    let report = medic_store::verify_audit(&db).await?;
    let unmatched = unmatched_intents(&medic_store::StoreTarget::Sqlite(db)).await?;
    let mut why = Vec::new();
    if !settled {
        why.push("not settled (healthy, no open incident) within 60s".to_string());
    }
    if !healthy {
        why.push("fixture unhealthy at the end".into());
    }
    if !unmatched.is_empty() {
        why.push(format!(
            "intents without outcome or reconciliation: {unmatched:?}"
        ));
    }
    Ok(Trial {
        point,
        restarts,
        duplicate: restarts > 1,
        lost: restarts == 0 || !settled || !healthy || !unmatched.is_empty(),
        audit_valid: report.is_ok(),
        why: why.join("; "),
    })
}
