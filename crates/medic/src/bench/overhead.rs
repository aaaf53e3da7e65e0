//! `medic bench overhead`: medic's idle cost while it supervises and watches
//! 10 healthy services (10 fixture processes it started, each with a process
//! probe and an HTTP probe) for a fixed time. CPU time and RSS of the medic
//! process are read from `/proc`, after a warm-up.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::{free_port, medic_exe, proc_usage, wait_until, Group};

#[derive(clap::Args, Debug, Clone)]
pub struct OverheadArgs {
    /// Services to watch.
    #[arg(long, default_value_t = 10)]
    pub services: u32,
    /// HTTP probe interval of each service.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Measuring window (after a warm-up of 3 intervals).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub duration: Duration,
    #[arg(long)]
    pub json: bool,
    /// Keep configs and logs in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct OverheadResult {
    pub services: u32,
    pub interval_ms: u64,
    pub seconds: f64,
    /// medic's CPU time over the window, in % of one core.
    pub cpu_percent: f64,
    pub rss_mb: f64,
}

pub async fn run(args: &OverheadArgs) -> anyhow::Result<OverheadResult> {
    if args.services == 0 || args.services > 1000 {
        bail!("--services must be between 1 and 1000");
    }
    let exe = medic_exe()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("medic-overhead-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let api_port = free_port()?;
    let exe_s = serde_json::Value::String(exe.display().to_string());
    let mut cfg = format!(
        "# medic bench overhead\nmode: aggressive\nlisten: 127.0.0.1:{api_port}\nauth: none\ndatabase: medic.db\nservices:\n"
    );
    let mut ports = Vec::new();
    for k in 0..args.services {
        let p = free_port()?;
        ports.push(p);
        cfg.push_str(&format!(
            "  s{k}:\n    process: {{ command: [{exe_s}, \"fixture\", \"--port\", \"{p}\"] }}\n    probes:\n      alive: {{ process: {{}}, interval: 1s }}\n      healthz: {{ http: {{ url: \"http://127.0.0.1:{p}/healthz\", timeout: 1s }}, interval: {}ms, failure: {{ consecutive: 3 }} }}\n    actions:\n      restart: {{ restart: {{}} }}\n    remediate:\n      - when: {{ probe: alive }}\n        action: restart\n      - when: {{ probe: healthz }}\n        action: restart\n",
            args.interval.as_millis()
        ));
    }
    let path = dir.join("medic.yaml");
    std::fs::write(&path, cfg)?;
    let mut cmd = Command::new(&exe);
    cmd.args(["run", "-c"])
        .arg(&path)
        .env("MEDIC_LOG", "warn")
        .current_dir(&dir);
    let mut medic = Group::spawn(cmd, "medic", &dir.join("medic.out"))?;
    let http = reqwest::Client::new();
    for p in &ports {
        let url = format!("http://127.0.0.1:{p}/healthz");
        let up = wait_until(Duration::from_secs(30), || async {
            let r = http.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        if up.is_none() {
            medic.check_alive()?;
            bail!("service on port {p} did not come up");
        }
    }
    tokio::time::sleep(args.interval * 3).await;
    let pid = medic.pid();
    let u0 = proc_usage(pid)?;
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    let u1 = proc_usage(pid)?;
    let el = t0.elapsed();
    medic.check_alive()?;
    let used = u1.cpu.saturating_sub(u0.cpu).as_secs_f64();
    let r = OverheadResult {
        services: args.services,
        interval_ms: u64::try_from(args.interval.as_millis()).unwrap_or(u64::MAX),
        seconds: (el.as_secs_f64() * 10.0).round() / 10.0,
        cpu_percent: (used / el.as_secs_f64() * 1000.0).round() / 10.0,
        rss_mb: (u1.rss_bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0,
    };
    // medic stops its supervised services on SIGTERM.
    medic.stop(Duration::from_secs(15));
    Ok(r)
}

pub fn render(r: &OverheadResult) -> String {
    format!(
        "medic bench overhead: {} services (each supervised, process probe 1s, HTTP probe {}), {} s window\n\
         medic idle CPU: {:.1} % of one core   RSS: {:.1} MB\n",
        r.services,
        humantime::format_duration(Duration::from_millis(r.interval_ms)),
        r.seconds,
        r.cpu_percent,
        r.rss_mb
    )
}
