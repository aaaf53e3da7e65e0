//! `medic bench scale`: medic's cost for N HTTP probe targets, 1,000 scraped
//! series and 100 alerts/s, measured from outside on this machine.
//!
//! - HTTP rows: one fixture process serves every target (`/healthz?t=K`, one
//!   service per target); medic runs in dry-run. After a warm-up, medic's CPU
//!   time and RSS are read from `/proc` over `--duration`; the probe latency
//!   p99 comes from medic's own `medic_probe_duration_seconds` histogram
//!   (interpolated within its bucket) and `missed` from
//!   `medic_probe_missed_intervals_total`; the fixture's request counter
//!   says how many runs actually arrived.
//! - scrape row: the bench serves an exposition endpoint with 1,000 series
//!   (10 metrics × 100 label sets); 10 static rules watch them at the same
//!   interval. `missed` = failed polls (`medic_signal_source_errors_total`).
//! - alerts row: the bench POSTs one Alertmanager webhook per 10 ms
//!   (100 alerts/s) over 100 services, firing and resolving in turn; p99 is
//!   the webhook's answer time seen by the bench, `missed` the non-200s.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::{free_port, medic_exe, proc_usage, wait_until, Group};

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Numbers of HTTP probe targets (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub targets: Vec<u32>,
    /// Probe (and scrape) interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Measuring window per row (after the warm-up).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// HTTP probes with `keep_alive: false` (a new connection per run)
    /// instead of medic's default (one kept connection per target, dialled
    /// again after `keep_alive_max_age`, 30 s).
    #[arg(long, alias = "no-keep-alive")]
    pub new_connections: bool,
    /// Skip the scrape and alert rows.
    #[arg(long)]
    pub no_signals: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep configs and logs in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct ScaleResult {
    /// `http`, `scrape` (targets = series) or `alerts` (targets = alerts/s).
    pub kind: &'static str,
    pub targets: u32,
    /// medic's CPU time over the window, in % of one core.
    pub cpu_percent: f64,
    pub rss_mb: f64,
    pub p99_ms: Option<f64>,
    pub missed: u64,
    /// HTTP rows: probe runs the fixture received in the window, and the
    /// number a perfect schedule would have made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_runs: Option<u64>,
}

/// A value of `name` (with its labels as written) in exposition text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let v = rest.strip_prefix(' ')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Cumulative histogram buckets `(le, count)` of `name` in exposition text.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    // Summed over every label set (the histogram is per service and probe),
    // like `sum by (le)`.
    let prefix = format!("{name}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let Some(count) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        match sums.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += count,
            None => sums.push((le, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// The `q` quantile of the observations between two readings of the same
/// cumulative histogram, linearly interpolated within its bucket.
pub fn histogram_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - b)
        })
        .collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let want = q * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in diff {
        if c >= want {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let span = c - prev.1;
            let frac = if span > 0.0 {
                (want - prev.1) / span
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

async fn get_text(http: &reqwest::Client, url: &str) -> Option<String> {
    http.get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

struct Medic {
    group: Group,
    api: String,
}

async fn start_medic(
    dir: &Path,
    exe: &Path,
    config: &str,
    api_port: u16,
    http: &reqwest::Client,
) -> anyhow::Result<Medic> {
    let cfg = dir.join("medic.yaml");
    std::fs::write(&cfg, config)?;
    let mut cmd = Command::new(exe);
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .env("MEDIC_LOG", "warn")
        .current_dir(dir);
    let mut group = Group::spawn(cmd, "medic", &dir.join("medic.out"))?;
    let api = format!("http://127.0.0.1:{api_port}");
    let ready = wait_until(Duration::from_secs(120), || async {
        let r = http
            .get(format!("{api}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    if ready.is_none() {
        group.check_alive()?;
        bail!(
            "medic did not become ready within 120 s (see {})",
            dir.display()
        );
    }
    Ok(Medic { group, api })
}

fn http_config(
    n: u32,
    port: u16,
    api_port: u16,
    interval: Duration,
    new_connections: bool,
) -> String {
    // medic's default (keep-alive) is what the config leaves unsaid.
    let keep_alive = if new_connections {
        ", keep_alive: false"
    } else {
        ""
    };
    let mut s = format!(
        "# medic bench scale: {n} HTTP targets\nmode: dry-run\nlisten: 127.0.0.1:{api_port}\nauth: none\n\
         database: medic.db\nservices:\n"
    );
    for k in 0..n {
        s.push_str(&format!(
            "  t{k}:\n    probes:\n      h: {{ http: {{ url: \"http://127.0.0.1:{port}/healthz?t={k}\", timeout: 1s{keep_alive} }}, interval: {}ms }}\n",
            interval.as_millis()
        ));
    }
    s
}

async fn http_row(
    n: u32,
    args: &ScaleArgs,
    root: &Path,
    exe: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<ScaleResult> {
    let dir = root.join(format!("http-{n}"));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut fcmd = Command::new(exe);
    fcmd.args(["fixture", "--port", &port.to_string()]);
    let mut fixture = Group::spawn(fcmd, "fixture", &dir.join("fixture.out"))?;
    let fx = format!("http://127.0.0.1:{port}");
    let health_url = format!("{fx}/healthz");
    // The answer must come from the fixture this bench started (its pid):
    // the port was free when picked, but another process on the machine
    // may have bound it before the fixture did, and medic would then probe
    // a stranger (whatever status it answers).
    let want = fixture.pid();
    let answered = wait_until(Duration::from_secs(20), || async {
        let text = get_text(http, &health_url).await?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_u64()
    })
    .await;
    match answered {
        Some(pid) if pid == u64::from(want) => {}
        Some(pid) => {
            bail!("port {port} is answered by pid {pid}, not by the fixture started here (pid {want}): another process took the port; run again")
        }
        None => {
            fixture.check_alive()?;
            bail!("the fixture did not answer");
        }
    }
    let api_port = free_port()?;
    let mut medic = start_medic(
        &dir,
        exe,
        &http_config(n, port, api_port, args.interval, args.new_connections),
        api_port,
        http,
    )
    .await?;
    // Warm-up: every probe has run at least twice.
    tokio::time::sleep(args.interval * 3).await;
    let pid = medic.group.pid();
    let read = || async {
        let m = get_text(http, &format!("{}/metrics", medic.api)).await;
        let f = get_text(http, &format!("{fx}/metrics")).await;
        (m, f)
    };
    let u0 = proc_usage(pid)?;
    let t0 = Instant::now();
    let (m0, f0) = read().await;
    tokio::time::sleep(args.duration).await;
    let (m1, f1) = read().await;
    let u1 = proc_usage(pid)?;
    let el = t0.elapsed();
    medic.group.check_alive()?;
    let (m0, m1) = (m0.unwrap_or_default(), m1.unwrap_or_default());
    let runs = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| sample(t, "fixture_requests_total{path=\"/healthz\"}"))
    };
    let missed = |t: &str| sample(t, "medic_probe_missed_intervals_total").unwrap_or(0.0);
    let p99 = histogram_quantile(
        &buckets(&m0, "medic_probe_duration_seconds"),
        &buckets(&m1, "medic_probe_duration_seconds"),
        0.99,
    );
    let result = ScaleResult {
        kind: "http",
        targets: n,
        cpu_percent: cpu_percent(u0.cpu, u1.cpu, el),
        rss_mb: u1.rss_bytes as f64 / 1_048_576.0,
        p99_ms: p99.map(|s| s * 1000.0),
        missed: (missed(&m1) - missed(&m0)).max(0.0) as u64,
        runs: match (runs(&f0), runs(&f1)) {
            (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
            _ => None,
        },
        expected_runs: Some((f64::from(n) * el.as_secs_f64() / args.interval.as_secs_f64()) as u64),
    };
    medic.group.stop(Duration::from_secs(10));
    fixture.stop(Duration::from_secs(5));
    Ok(result)
}

fn cpu_percent(a: Duration, b: Duration, over: Duration) -> f64 {
    let used = b.saturating_sub(a).as_secs_f64();
    (used / over.as_secs_f64().max(1e-9) * 1000.0).round() / 10.0
}

/// An exposition endpoint with 10 metrics × 100 series, values changing a
/// little every scrape; serves until the returned handle is dropped.
async fn serve_series() -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    let n = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = n.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut s = String::with_capacity(64 * 1024);
                for m in 0..10 {
                    s.push_str(&format!("# TYPE bench_m{m} gauge\n"));
                    for k in 0..100u64 {
                        s.push_str(&format!(
                            "bench_m{m}{{k=\"{k}\"}} {}\n",
                            ((k * 7 + n) % 100) as f64 / 100.0
                        ));
                    }
                }
                s
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((port, task))
}

async fn scrape_row(
    args: &ScaleArgs,
    root: &Path,
    exe: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<ScaleResult> {
    let dir = root.join("scrape-1000");
    std::fs::create_dir_all(&dir)?;
    let (port, server) = serve_series().await?;
    let api_port = free_port()?;
    let iv = args.interval.as_millis();
    let mut cfg = format!(
        "# medic bench scale: 1,000 scraped series\nmode: dry-run\nlisten: 127.0.0.1:{api_port}\nauth: none\n\
         database: medic.db\nservices:\n  app:\n    probes:\n      h: {{ tcp: {{ address: \"127.0.0.1:{port}\" }}, interval: 10s }}\n\
         signals:\n  sources:\n    bench: {{ scrape: {{ url: \"http://127.0.0.1:{port}/metrics\" }}, interval: {iv}ms, timeout: 1s }}\n  rules:\n"
    );
    for m in 0..10 {
        cfg.push_str(&format!(
            "    r{m}: {{ service: app, source: bench, metric: bench_m{m}, above: 5 }}\n"
        ));
    }
    let mut medic = start_medic(&dir, exe, &cfg, api_port, http).await?;
    tokio::time::sleep(args.interval * 3).await;
    let pid = medic.group.pid();
    let errors = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| {
                t.lines()
                    .filter(|l| l.starts_with("medic_signal_source_errors_total"))
                    .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                    .sum::<Option<f64>>()
            })
            .unwrap_or(0.0)
    };
    let samples = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| sample(t, "medic_signal_samples_total"))
    };
    let u0 = proc_usage(pid)?;
    let t0 = Instant::now();
    let s0 = get_text(http, &format!("{}/metrics", medic.api)).await;
    tokio::time::sleep(args.duration).await;
    let s1 = get_text(http, &format!("{}/metrics", medic.api)).await;
    let u1 = proc_usage(pid)?;
    let el = t0.elapsed();
    medic.group.check_alive()?;
    server.abort();
    let r = ScaleResult {
        kind: "scrape",
        targets: 1000,
        cpu_percent: cpu_percent(u0.cpu, u1.cpu, el),
        rss_mb: u1.rss_bytes as f64 / 1_048_576.0,
        p99_ms: None,
        missed: (errors(&s1) - errors(&s0)).max(0.0) as u64,
        // Samples the rules evaluated, against 1,000 series per poll.
        runs: match (samples(&s0), samples(&s1)) {
            (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
            _ => None,
        },
        expected_runs: Some((1000.0 * el.as_secs_f64() / args.interval.as_secs_f64()) as u64),
    };
    medic.group.stop(Duration::from_secs(10));
    Ok(r)
}

async fn alerts_row(
    args: &ScaleArgs,
    root: &Path,
    exe: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<ScaleResult> {
    let dir = root.join("alerts-100");
    std::fs::create_dir_all(&dir)?;
    let api_port = free_port()?;
    let mut cfg = format!(
        "# medic bench scale: 100 alerts/s on the webhook\nmode: dry-run\nlisten: 127.0.0.1:{api_port}\nauth: none\n\
         database: medic.db\nservices:\n"
    );
    for k in 0..100 {
        cfg.push_str(&format!(
            "  s{k}:\n    probes:\n      h: {{ tcp: {{ address: \"127.0.0.1:{api_port}\" }}, interval: 10s }}\n"
        ));
    }
    cfg.push_str("signals:\n  alertmanager:\n    alerts:\n      BenchAlert: {}\n");
    let mut medic = start_medic(&dir, exe, &cfg, api_port, http).await?;
    let pid = medic.group.pid();
    let url = format!("{}/api/v1/alerts/alertmanager", medic.api);
    let u0 = proc_usage(pid)?;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut lat = Vec::new();
    let mut failed = 0u64;
    let mut k: u64 = 0;
    while t0.elapsed() < args.duration {
        tick.tick().await;
        let svc = k % 100;
        let status = if (k / 100).is_multiple_of(2) {
            "firing"
        } else {
            "resolved"
        };
        let body = serde_json::json!({
            "version": "4", "status": status, "receiver": "medic",
            "groupKey": format!("bench-{svc}"),
            "alerts": [{
                "status": status,
                "labels": {"alertname": "BenchAlert", "service": format!("s{svc}")},
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z"
            }]
        });
        k += 1;
        let t = Instant::now();
        let ok = http
            .post(&url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            failed += 1;
        }
    }
    let u1 = proc_usage(pid)?;
    let el = t0.elapsed();
    medic.group.check_alive()?;
    lat.sort_by(f64::total_cmp);
    let r = ScaleResult {
        kind: "alerts",
        targets: (k as f64 / el.as_secs_f64()).round() as u32,
        cpu_percent: cpu_percent(u0.cpu, u1.cpu, el),
        rss_mb: u1.rss_bytes as f64 / 1_048_576.0,
        p99_ms: super::quantile(&lat, 0.99),
        missed: failed,
        runs: None,
        expected_runs: None,
    };
    medic.group.stop(Duration::from_secs(10));
    Ok(r)
}

pub async fn run(args: &ScaleArgs) -> anyhow::Result<Vec<ScaleResult>> {
    if args.targets.iter().any(|n| *n == 0 || *n > 100_000) {
        bail!("--targets: each between 1 and 100000");
    }
    if args.interval < Duration::from_millis(100) {
        bail!("--interval must be at least 100ms");
    }
    let exe = medic_exe()?;
    let tmp;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("medic-scale-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let http = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let mut out = Vec::new();
    for &n in &args.targets {
        if !args.json {
            eprintln!("scale: {n} HTTP targets");
        }
        out.push(http_row(n, args, &root, &exe, &http).await?);
    }
    if !args.no_signals {
        if !args.json {
            eprintln!("scale: 1,000 scraped series");
        }
        out.push(scrape_row(args, &root, &exe, &http).await?);
        if !args.json {
            eprintln!("scale: 100 alerts/s");
        }
        out.push(alerts_row(args, &root, &exe, &http).await?);
    }
    Ok(out)
}

pub fn render(results: &[ScaleResult], args: &ScaleArgs) -> String {
    let mut s = format!(
        "medic bench scale: interval {}, window {} per row; CPU in % of one core ({} cores here){}\n\n",
        humantime::format_duration(args.interval),
        humantime::format_duration(args.duration),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if args.new_connections {
            "; a new connection per HTTP probe run (--new-connections)"
        } else {
            "; HTTP keep-alive (the default: one connection per target, at most 30 s old)"
        }
    );
    s.push_str(&format!(
        "{:<7} {:>8} {:>8} {:>8} {:>9} {:>7} {:>18}\n",
        "KIND", "TARGETS", "CPU %", "RSS MB", "P99 ms", "MISSED", "RUNS/EXPECTED"
    ));
    for r in results {
        let what = match r.kind {
            "scrape" => "series".to_string(),
            "alerts" => "alerts/s".to_string(),
            _ => String::new(),
        };
        s.push_str(&format!(
            "{:<7} {:>8} {:>8.1} {:>8.1} {:>9} {:>7} {:>18}\n",
            r.kind,
            r.targets,
            r.cpu_percent,
            r.rss_mb,
            r.p99_ms.map_or("-".to_string(), |p| format!("{p:.1}")),
            r.missed,
            match (r.runs, r.expected_runs) {
                (Some(a), Some(b)) => format!("{a}/{b}"),
                _ => what,
            }
        ));
    }
    s.push_str(
        "\nhttp: p99 from medic's medic_probe_duration_seconds; missed = medic_probe_missed_intervals_total;\n\
         runs = requests the fixture received. scrape: missed = failed polls, runs = samples evaluated.\n\
         alerts: p99 = webhook answer time\n\
         seen by the bench, missed = non-200 answers.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantile_of_a_histogram_difference() {
        let before = vec![(0.001, 0.0), (0.002, 0.0), (f64::INFINITY, 0.0)];
        let after = vec![(0.001, 50.0), (0.002, 100.0), (f64::INFINITY, 100.0)];
        let q = histogram_quantile(&before, &after, 0.99).unwrap();
        assert!((q - 0.00198).abs() < 1e-9, "{q}");
        let q = histogram_quantile(&before, &after, 0.5).unwrap();
        assert!((q - 0.001).abs() < 1e-9, "{q}");
        assert_eq!(histogram_quantile(&before, &before, 0.99), None);
    }

    #[test]
    fn samples_and_buckets_from_exposition_text() {
        let t = "# TYPE x histogram\nx_bucket{le=\"0.5\"} 3\nx_bucket{le=\"+Inf\"} 4\nx_count 4\n\
                 fixture_requests_total{path=\"/healthz\"} 12\n";
        assert_eq!(buckets(t, "x"), vec![(0.5, 3.0), (f64::INFINITY, 4.0)]);
        // Per-label-set histograms are summed by `le`.
        let t2 = "x_bucket{service=\"a\",probe=\"h\",le=\"0.5\"} 3\n\
                  x_bucket{service=\"a\",probe=\"h\",le=\"+Inf\"} 4\n\
                  x_bucket{service=\"b\",probe=\"h\",le=\"0.5\"} 1\n\
                  x_bucket{service=\"b\",probe=\"h\",le=\"+Inf\"} 5\n";
        assert_eq!(buckets(t2, "x"), vec![(0.5, 4.0), (f64::INFINITY, 9.0)]);
        assert_eq!(sample(t, "x_count"), Some(4.0));
        assert_eq!(
            sample(t, "fixture_requests_total{path=\"/healthz\"}"),
            Some(12.0)
        );
    }

    #[test]
    fn the_generated_configs_are_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.yaml");
        for new_connections in [false, true] {
            std::fs::write(
                &p,
                http_config(3, 18080, 19090, Duration::from_secs(1), new_connections),
            )
            .unwrap();
            let cfg = medic_config::load(&p).unwrap();
            assert_eq!(cfg.services.len(), 3);
            let medic_config::ProbeKind::Http { keep_alive, .. } = &cfg.services[0].probes[0].kind
            else {
                panic!("not an HTTP probe");
            };
            assert_eq!(keep_alive.is_none(), new_connections);
        }
    }
}
