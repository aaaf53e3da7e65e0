//! `medic bench concurrent`: N services whose heals run at the same time
//! (issue 10). A real `medic run` watches N services; each has an HTTP probe
//! on a loopback server of the bench (failing while the service's marker
//! file exists) and an exec action `sleep T; rm marker`. All markers are
//! created at once, so N incidents open and N actions run concurrently
//! (`governance.limits.max_concurrent_actions` is set to N, the other rate
//! gates out of the way).
//!
//! While they run, the bench asks the engine loop for its locks
//! (`GET /api/v1/locks`, answered by the engine task) every 100 ms and
//! times each answer: the loop's latency while executors run. It counts
//! the service locks held (actions in flight), the probe requests the
//! loopback server receives (probing goes on), and samples medic's RSS.
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::{free_port, medic_exe, proc_usage, quantile, wait_until, Group};

#[derive(clap::Args, Debug, Clone)]
pub struct ConcurrentArgs {
    /// Services, each with one action that runs concurrently with the others.
    #[arg(long, default_value_t = 100)]
    pub services: u32,
    /// How long each action runs (`sleep`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub action_time: Duration,
    /// Give up when the actions have not all completed within this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub within: Duration,
    #[arg(long)]
    pub json: bool,
    /// Keep config, database and logs in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct ConcurrentResult {
    pub services: u32,
    pub action_ms: u64,
    /// Actions recorded as `succeeded` (`action.outcome`) in the audit log.
    pub completed: u32,
    /// Markers created → every action's effect seen (all markers removed).
    pub seconds: f64,
    /// Most service locks held at once (actions in flight) in a sample.
    pub max_inflight: u32,
    /// Engine-loop answers (`GET /api/v1/locks`) during the actions.
    pub loop_samples: u32,
    /// Of those, not answered within 10 s.
    pub loop_failures: u32,
    pub loop_p50_ms: f64,
    pub loop_p99_ms: f64,
    pub loop_max_ms: f64,
    /// Probe requests per second the services received during the actions.
    pub probes_per_s: f64,
    /// Probe requests per second expected (services / probe interval).
    pub probes_expected_per_s: f64,
    pub rss_before_mb: f64,
    pub rss_peak_mb: f64,
}

/// Probe interval of every service.
const PROBE_INTERVAL: Duration = Duration::from_millis(1000);

pub async fn run(args: &ConcurrentArgs) -> anyhow::Result<ConcurrentResult> {
    if args.services == 0 || args.services > 1000 {
        bail!("--services must be between 1 and 1000");
    }
    let n = args.services;
    let exe = medic_exe()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("medic-concurrent-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let markers = dir.join("down");
    std::fs::create_dir_all(&markers)?;

    // The services' health: /s/{k} is 503 while down/s{k} exists.
    let hits = Arc::new(AtomicU64::new(0));
    let app = {
        let (markers, hits) = (markers.clone(), hits.clone());
        axum::Router::new().route(
            "/s/{k}",
            axum::routing::get(move |axum::extract::Path(k): axum::extract::Path<String>| {
                let (markers, hits) = (markers.clone(), hits.clone());
                async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let down =
                        k.chars().all(|c| c.is_ascii_alphanumeric()) && markers.join(&k).exists();
                    if down {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let health = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _server = Abort(server);

    let api_port = free_port()?;
    let secs = args.action_time.as_secs_f64();
    let mut cfg = format!(
        "# medic bench concurrent\nmode: aggressive\nlisten: 127.0.0.1:{api_port}\nauth: none\ndatabase: medic.db\n\
         policy: {{ cooldown: 1s, verify_window: 5s }}\n\
         governance:\n  limits: {{ max_concurrent_actions: {n}, max_actions_per_hour: {} }}\n  \
         gates: {{ max_incidents_per_hour: {}, mass_incident_services: {}, max_blast_radius_ratio: 1.0, max_failed_actions_per_hour: {n} }}\n\
         services:\n",
        n * 10,
        n * 10,
        n * 10
    );
    for k in 0..n {
        cfg.push_str(&format!(
            "  s{k}:\n    probes:\n      up: {{ http: {{ url: \"http://{health}/s/s{k}\", timeout: 2s }}, interval: {}ms, failure: {{ consecutive: 2 }} }}\n    \
             actions:\n      fix: {{ exec: {{ command: [sh, -c, \"sleep {secs}; rm -f \\\"$0\\\"\", {}], timeout: 60s }} }}\n    \
             remediate:\n      - when: {{ probe: up }}\n        action: fix\n",
            PROBE_INTERVAL.as_millis(),
            serde_json::Value::String(markers.join(format!("s{k}")).display().to_string()),
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let api = format!("http://127.0.0.1:{api_port}");
    let ready = wait_until(Duration::from_secs(60), || async {
        let r = http.get(format!("{api}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    if ready.is_none() {
        medic.check_alive()?;
        bail!("medic did not become ready");
    }
    // Every probe's start phase ends with its first success.
    tokio::time::sleep(PROBE_INTERVAL * 3).await;
    let pid = medic.pid();
    let rss_before = proc_usage(pid)?.rss_bytes;

    for k in 0..n {
        std::fs::write(markers.join(format!("s{k}")), "")
            .with_context(|| format!("creating the marker of s{k}"))?;
    }
    let t0 = Instant::now();
    let hits0 = hits.load(Ordering::Relaxed);
    let mut lat_ms: Vec<f64> = Vec::new();
    let mut failures = 0u32;
    let mut max_inflight = 0u32;
    let mut rss_peak = rss_before;
    let done_at = loop {
        let left = std::fs::read_dir(&markers)?.count();
        if left == 0 {
            break t0.elapsed();
        }
        if t0.elapsed() > args.within {
            medic.check_alive()?;
            bail!(
                "{left} of {n} actions did not complete within {}",
                humantime::format_duration(args.within)
            );
        }
        let q = Instant::now();
        match http.get(format!("{api}/api/v1/locks")).send().await {
            Ok(r) if r.status().is_success() => {
                lat_ms.push(q.elapsed().as_secs_f64() * 1000.0);
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let held = v["locks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["key"].as_str())
                    .filter(|k| k.starts_with("service:"))
                    .count();
                max_inflight = max_inflight.max(held as u32);
            }
            _ => failures += 1,
        }
        rss_peak = rss_peak.max(proc_usage(pid)?.rss_bytes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let probes = hits.load(Ordering::Relaxed).saturating_sub(hits0);
    // The outcomes, from the audit log (after the last one is recorded).
    let mut completed = 0u32;
    let count_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < count_until {
        let v: serde_json::Value = http
            .get(format!("{api}/api/v1/audit?limit=1000"))
            .send()
            .await?
            .json()
            .await?;
        completed = v["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["kind"] == "action.outcome" && r["payload"]["status"] == "succeeded")
            .count() as u32;
        if completed >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    medic.check_alive()?;
    medic.stop(Duration::from_secs(15));
    lat_ms.sort_by(f64::total_cmp);
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    let mb = |b: u64| r1(b as f64 / 1_048_576.0);
    Ok(ConcurrentResult {
        services: n,
        action_ms: u64::try_from(args.action_time.as_millis()).unwrap_or(u64::MAX),
        completed,
        seconds: r1(done_at.as_secs_f64()),
        max_inflight,
        loop_samples: lat_ms.len() as u32,
        loop_failures: failures,
        loop_p50_ms: r1(quantile(&lat_ms, 0.5).unwrap_or(0.0)),
        loop_p99_ms: r1(quantile(&lat_ms, 0.99).unwrap_or(0.0)),
        loop_max_ms: r1(lat_ms.last().copied().unwrap_or(0.0)),
        probes_per_s: r1(probes as f64 / done_at.as_secs_f64().max(0.001)),
        probes_expected_per_s: r1(f64::from(n) / PROBE_INTERVAL.as_secs_f64()),
        rss_before_mb: mb(rss_before),
        rss_peak_mb: mb(rss_peak),
    })
}

pub fn render(r: &ConcurrentResult) -> String {
    format!(
        "medic bench concurrent: {} services, one {} ms exec action each, all failing at once\n\
         completed: {}/{} in {:.1} s   most in flight at once: {}\n\
         engine loop (GET /api/v1/locks) during the actions: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples, {} unanswered)\n\
         probes during the actions: {:.1}/s (expected {:.1}/s)\n\
         medic RSS: {:.1} MB before, {:.1} MB peak\n",
        r.services,
        r.action_ms,
        r.completed,
        r.services,
        r.seconds,
        r.max_inflight,
        r.loop_p50_ms,
        r.loop_p99_ms,
        r.loop_max_ms,
        r.loop_samples,
        r.loop_failures,
        r.probes_per_s,
        r.probes_expected_per_s,
        r.rss_before_mb,
        r.rss_peak_mb
    )
}
