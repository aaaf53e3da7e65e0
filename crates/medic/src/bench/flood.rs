//! `medic bench flood`: issue 12's self-protection goal, measured from
//! outside. medic supervises a fixture (`web`, restart on a process probe)
//! and receives Alertmanager webhooks. After a warm-up at the *normal* alert
//! rate, the bench posts `factor ×` that rate for `duration` (batches of 100
//! alerts, 5 % critical, 10 % high, 85 % low), kills the fixture half way
//! through, and meanwhile samples medic's RSS and the latency of an API
//! read (`GET /api/v1/incidents`). At the end it reads `/metrics`: every
//! critical and high alert sent must have reached the engine's queue
//! (`medic_signal_alerts_admitted_total{priority}`), low ones may be shed
//! (counted), the fixture must be healed, RSS must stay under the bound
//! and the API must have answered every request.
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::{free_port, kill_fixture_pid, medic_exe, proc_usage, quantile, wait_until, Group};

/// Alerts per webhook POST.
const BATCH: u64 = 100;
/// Of every 20 alerts of a batch: 1 critical, 2 high, 17 low.
const CRITICAL_PER_20: u64 = 1;
const HIGH_PER_20: u64 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    /// How long the flood lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// The normal alert rate (alerts per second) that the flood multiplies;
    /// also the rate of the warm-up.
    #[arg(long, default_value_t = 10)]
    pub normal_rate: u64,
    /// The flood's rate is `factor × normal_rate`.
    #[arg(long, default_value_t = 100)]
    pub factor: u64,
    /// The RSS bound medic must stay under during the run, in MiB.
    #[arg(long, default_value_t = 256)]
    pub rss_bound_mb: u64,
    /// Warm-up at the normal rate before the flood.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub warmup: Duration,
    #[arg(long)]
    pub json: bool,
    /// Keep the config, database and logs in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Counts by priority.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByPriority {
    pub critical: u64,
    pub high: u64,
    pub low: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct FloodResult {
    pub duration_s: f64,
    /// Alerts per second taken as normal.
    pub normal_rate: u64,
    pub factor: u64,
    /// `normal_rate × factor`, alerts per second.
    pub flood_rate: u64,
    /// Alerts medic accepted (answered 200) per second of flood.
    pub achieved_rate: f64,
    /// Alerts in batches medic answered 200 (warm-up and flood).
    pub sent: ByPriority,
    /// Alerts that reached the engine's queue, from `/metrics`.
    pub admitted: ByPriority,
    /// Low-priority alerts shed (`medic_signal_alerts_shed_total`).
    pub shed: u64,
    /// Webhook batches medic did not answer 200 (or not within 10 s).
    pub refused_batches: u64,
    /// Batches not posted because 16 were already in flight (the sender was
    /// held back by medic's backpressure).
    pub held_back_batches: u64,
    /// The fixture killed half way through was running again (new pid,
    /// healthy) within the run.
    pub fault_healed: bool,
    /// From the kill to the new fixture answering healthy.
    pub heal_s: Option<f64>,
    pub rss_before_mb: f64,
    /// Highest RSS sampled (every 250 ms) during the flood.
    pub rss_peak_mb: f64,
    pub rss_bound_mb: u64,
    pub rss_samples: u64,
    /// medic's CPU time during the flood, in % of one core.
    pub cpu_percent: f64,
    /// `GET /api/v1/incidents` every 200 ms during the flood.
    pub api_requests: u64,
    pub api_errors: u64,
    pub api_p50_ms: f64,
    pub api_p99_ms: f64,
    pub api_max_ms: f64,
    /// Every goal held: critical and high all admitted, fault healed, RSS
    /// under the bound, no API error, no refused batch.
    pub ok: bool,
}

fn alerts(batch: u64) -> (serde_json::Value, ByPriority) {
    let mut n = ByPriority::default();
    let list: Vec<serde_json::Value> = (0..BATCH)
        .map(|i| {
            let slot = i % 20;
            let (name, severity) = if slot < CRITICAL_PER_20 {
                n.critical += 1;
                ("Page", "critical")
            } else if slot < CRITICAL_PER_20 + HIGH_PER_20 {
                n.high += 1;
                ("Warn", "high")
            } else {
                n.low += 1;
                ("Noise", "info")
            };
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": name, "service": "api", "severity": severity},
                "annotations": {"summary": format!("flood batch {batch} alert {i}")},
            })
        })
        .collect();
    (
        serde_json::json!({"version": "4", "status": "firing", "alerts": list}),
        n,
    )
}

#[derive(Default)]
struct SendCounts {
    critical: AtomicU64,
    high: AtomicU64,
    low: AtomicU64,
    refused: AtomicU64,
    in_flight: AtomicU64,
}

/// Posts batches at `rate` alerts/s until `stop`; returns batches held back.
async fn drive(
    http: reqwest::Client,
    url: String,
    rate: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<SendCounts>,
    first_batch: u64,
) -> u64 {
    let every = Duration::from_secs_f64(BATCH as f64 / rate.max(1) as f64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut batch = first_batch;
    let mut held_back = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        while tasks.try_join_next().is_some() {}
        if counts.in_flight.load(Ordering::Relaxed) >= 16 {
            held_back += 1;
            continue;
        }
        let (body, n) = alerts(batch);
        batch += 1;
        let (http, url, counts) = (http.clone(), url.clone(), counts.clone());
        counts.in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let ok = http
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                counts.critical.fetch_add(n.critical, Ordering::Relaxed);
                counts.high.fetch_add(n.high, Ordering::Relaxed);
                counts.low.fetch_add(n.low, Ordering::Relaxed);
            } else {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            counts.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while tasks.join_next().await.is_some() {}
    held_back
}

/// The value of the sample `name` (with its labels, e.g.
/// `x_total{priority="critical"}`) in Prometheus text.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse::<f64>().ok())?
        })
        .map_or(0, |v| v as u64)
}

async fn fixture_pid(http: &reqwest::Client, url: &str) -> Option<u64> {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    (v["status"] == "ok").then(|| v["pid"].as_u64())?
}

pub async fn run(args: &FloodArgs) -> anyhow::Result<FloodResult> {
    if args.normal_rate == 0 || args.factor == 0 {
        bail!("--normal-rate and --factor must be at least 1");
    }
    if args.duration < Duration::from_secs(2) {
        bail!("--duration must be at least 2s");
    }
    let exe = medic_exe()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("medic-flood-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let (port, api_port) = (free_port()?, free_port()?);
    let exe_s = serde_json::Value::String(exe.display().to_string());
    // The alerts are about `api` (no actions): a critical alert for `web`
    // would rightly escalate web's incident to a human instead of healing.
    let cfg = format!(
        r#"# medic bench flood
mode: aggressive
listen: 127.0.0.1:{api_port}
auth: none
database: medic.db
policy: {{ cooldown: 1s, verify_window: 2s }}
services:
  web:
    startup: {{ grace: 0s }}
    process:
      command: [{exe_s}, "fixture", "--port", "{port}"]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 200ms }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
  api:
    probes:
      up: {{ http: {{ url: "http://127.0.0.1:{port}/healthz" }}, interval: 1s }}
signals:
  alertmanager:
    alerts:
      Noise: {{ services: [api] }}
      Warn: {{ services: [api] }}
      Page: {{ services: [api] }}
"#
    );
    let path = dir.join("medic.yaml");
    std::fs::write(&path, cfg)?;
    let mut cmd = Command::new(&exe);
    cmd.args(["run", "-c"])
        .arg(&path)
        .env("MEDIC_LOG", "warn")
        .current_dir(&dir);
    let mut medic = Group::spawn(cmd, "medic", &dir.join("medic.out"))?;
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let api = format!("http://127.0.0.1:{api_port}");
    let Some(pid0) = wait_until(Duration::from_secs(30), || fixture_pid(&http, &health)).await
    else {
        medic.check_alive()?;
        bail!("the supervised fixture did not come up");
    };
    let mut seen_pids = vec![pid0];
    let medic_pid = medic.pid();
    let url = format!("{api}/api/v1/alerts/alertmanager");
    let counts = Arc::new(SendCounts::default());

    // Warm-up at the normal rate.
    let stop = Arc::new(AtomicBool::new(false));
    let warm = tokio::spawn(drive(
        http.clone(),
        url.clone(),
        args.normal_rate,
        stop.clone(),
        counts.clone(),
        0,
    ));
    tokio::time::sleep(args.warmup).await;
    stop.store(true, Ordering::Relaxed);
    let mut held_back = warm.await.context("warm-up sender")?;
    let rss_before = proc_usage(medic_pid)?.rss_bytes;
    let accepted_before = counts.critical.load(Ordering::Relaxed)
        + counts.high.load(Ordering::Relaxed)
        + counts.low.load(Ordering::Relaxed);

    // The flood, with the samplers.
    let flood_rate = args.normal_rate.saturating_mul(args.factor);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(drive(
        http.clone(),
        url.clone(),
        flood_rate,
        stop.clone(),
        counts.clone(),
        1_000_000,
    ));
    let rss_task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut peak, mut n) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(u) = proc_usage(medic_pid) {
                    peak = peak.max(u.rss_bytes);
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (peak, n)
        })
    };
    let api_task = {
        let (stop, http, url) = (
            stop.clone(),
            http.clone(),
            format!("{api}/api/v1/incidents"),
        );
        tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (lat, errors)
        })
    };
    let cpu0 = proc_usage(medic_pid)?.cpu;
    let t0 = Instant::now();
    tokio::time::sleep(args.duration / 2).await;
    // The fault: kill the supervised fixture mid-flood.
    let victim = fixture_pid(&http, &health).await.unwrap_or(pid0);
    kill_fixture_pid(u32::try_from(victim).unwrap_or(0));
    let killed_at = Instant::now();
    let mut heal = None;
    while t0.elapsed() < args.duration {
        if heal.is_none() {
            if let Some(p) = fixture_pid(&http, &health).await.filter(|p| *p != victim) {
                heal = Some(killed_at.elapsed());
                seen_pids.push(p);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let flood_s = t0.elapsed().as_secs_f64();
    let cpu = proc_usage(medic_pid)?
        .cpu
        .saturating_sub(cpu0)
        .as_secs_f64();
    held_back += sender.await.context("flood sender")?;
    let (rss_peak, rss_samples) = rss_task.await.context("RSS sampler")?;
    let (mut lat, api_errors) = api_task.await.context("API prober")?;
    medic.check_alive()?;

    let sent = ByPriority {
        critical: counts.critical.load(Ordering::Relaxed),
        high: counts.high.load(Ordering::Relaxed),
        low: counts.low.load(Ordering::Relaxed),
    };
    // Every accepted batch was counted; reports still in the engine's queue
    // were already admitted (the counter moves when the queue takes one).
    let metrics = http
        .get(format!("{api}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("reading /metrics")?
        .text()
        .await?;
    let adm = |p: &str| {
        sample(
            &metrics,
            &format!("medic_signal_alerts_admitted_total{{priority=\"{p}\"}}"),
        )
    };
    let admitted = ByPriority {
        critical: adm("critical"),
        high: adm("high"),
        low: adm("low"),
    };
    let shed = sample(&metrics, "medic_signal_alerts_shed_total");
    lat.sort_by(f64::total_cmp);
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    let mb = |b: u64| r2(b as f64 / 1_048_576.0);
    let accepted_flood = sent.critical + sent.high + sent.low - accepted_before;
    let refused = counts.refused.load(Ordering::Relaxed);
    let mut r = FloodResult {
        duration_s: r2(flood_s),
        normal_rate: args.normal_rate,
        factor: args.factor,
        flood_rate,
        achieved_rate: r2(accepted_flood as f64 / flood_s),
        sent,
        admitted,
        shed,
        refused_batches: refused,
        held_back_batches: held_back,
        fault_healed: heal.is_some(),
        heal_s: heal.map(|d| r2(d.as_secs_f64())),
        rss_before_mb: mb(rss_before),
        rss_peak_mb: mb(rss_peak),
        rss_bound_mb: args.rss_bound_mb,
        rss_samples,
        cpu_percent: (cpu / flood_s * 1000.0).round() / 10.0,
        api_requests: lat.len() as u64 + api_errors,
        api_errors,
        api_p50_ms: r2(quantile(&lat, 0.5).unwrap_or(0.0)),
        api_p99_ms: r2(quantile(&lat, 0.99).unwrap_or(0.0)),
        api_max_ms: r2(lat.last().copied().unwrap_or(0.0)),
        ok: false,
    };
    r.ok = r.admitted.critical == r.sent.critical
        && r.admitted.high == r.sent.high
        && r.sent.critical > 0
        && r.admitted.low + r.shed == r.sent.low
        && r.fault_healed
        && rss_peak > 0
        && rss_peak < args.rss_bound_mb.saturating_mul(1_048_576)
        && r.api_errors == 0
        && r.refused_batches == 0;
    medic.stop(Duration::from_secs(15));
    for p in seen_pids {
        kill_fixture_pid(u32::try_from(p).unwrap_or(0));
    }
    Ok(r)
}

pub fn render(r: &FloodResult) -> String {
    format!(
        "medic bench flood: normal rate {} alerts/s × {} = {} alerts/s for {:.1} s (achieved {:.0}/s), fixture killed half way\n\
         sent (accepted by medic)   critical {}  high {}  low {}\n\
         reached the engine         critical {}  high {}  low {}   low shed {}\n\
         refused batches {}   batches held back by backpressure {}\n\
         fault healed: {}{}\n\
         RSS: {:.1} MiB before, peak {:.1} MiB ({} samples), bound {} MiB; medic CPU {:.1} % of one core\n\
         API GET /api/v1/incidents during the flood: {} requests, {} errors, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         {}\n",
        r.normal_rate,
        r.factor,
        r.flood_rate,
        r.duration_s,
        r.achieved_rate,
        r.sent.critical,
        r.sent.high,
        r.sent.low,
        r.admitted.critical,
        r.admitted.high,
        r.admitted.low,
        r.shed,
        r.refused_batches,
        r.held_back_batches,
        if r.fault_healed { "yes" } else { "NO" },
        r.heal_s.map(|s| format!(" in {s:.2} s")).unwrap_or_default(),
        r.rss_before_mb,
        r.rss_peak_mb,
        r.rss_samples,
        r.rss_bound_mb,
        r.cpu_percent,
        r.api_requests,
        r.api_errors,
        r.api_p50_ms,
        r.api_p99_ms,
        r.api_max_ms,
        if r.ok { "all goals held" } else { "GOAL MISSED" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_batch_has_the_stated_mix() {
        let (body, n) = alerts(7);
        assert_eq!(body["alerts"].as_array().unwrap().len(), 100);
        assert_eq!(
            n,
            ByPriority {
                critical: 5,
                high: 10,
                low: 85
            }
        );
    }

    #[test]
    fn samples_are_read_by_name_and_labels() {
        let text =
            "# HELP x\nm_total{priority=\"critical\"} 12\nm_total{priority=\"low\"} 3\nn_total 4\n";
        assert_eq!(sample(text, "m_total{priority=\"critical\"}"), 12);
        assert_eq!(sample(text, "m_total{priority=\"low\"}"), 3);
        assert_eq!(sample(text, "n_total"), 4);
        assert_eq!(sample(text, "missing"), 0);
    }
}
