//! `medic backtest --prometheus`: against a real Prometheus (Debian package `prometheus`, with
//! its `promtool`) on a loopback port. The realKnownCause series is backfilled into a TSDB with
//! `promtool tsdb create-blocks-from openmetrics`, Prometheus serves it, and the backtest's
//! range queries must replay exactly what the CSV replay sees: the same incidents.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medic_backtest::cli::{render, BacktestArgs, Failure};

const SERIES: &str = "realKnownCause/ec2_request_latency_system_failure";

fn nab() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/nab"))
}

/// A binary on PATH; under CI a missing one fails the test, otherwise it is reported.
fn require(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
    {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} not on PATH and CI is set: apt-get install -y prometheus"
    );
    eprintln!(
        "SKIPPED: {name} not on PATH (Debian package `prometheus`); CI=1 makes this a failure"
    );
    None
}

/// Kills (by pid) and reaps the child when dropped, even on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// The NAB series put on an exact 5-minute grid (each grid time takes the last value at or
/// before it; the original has a few irregular timestamps, which a range query would resample
/// anyway), written both as a NAB CSV and as OpenMetrics `nab_value{series="ec2"}`. Returns
/// the first and last grid times (unix ms) and the number of samples.
fn regular_series(csv_out: &Path, om_out: &Path) -> (i64, i64, usize) {
    let src = nab().join("data").join(format!("{SERIES}.csv"));
    let s = medic_nab::read_series(&src, SERIES).unwrap_or_else(|e| panic!("{e}"));
    let secs: Vec<i64> = s.ts_micros.iter().map(|t| t / 1_000_000).collect();
    let (first, last) = (secs[0], secs[secs.len() - 1]);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let mut csv = String::from("timestamp,value\n");
    let mut om = String::from("# HELP nab_value NAB series value\n# TYPE nab_value gauge\n");
    let mut j = 0;
    let mut n = 0;
    let mut t = first;
    while t <= last {
        while j + 1 < secs.len() && secs[j + 1] <= t {
            j += 1;
        }
        let v = s.values[j];
        let ts = time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| d.format(&fmt).ok())
            .unwrap_or_else(|| panic!("time {t}"));
        csv.push_str(&format!("{ts},{v}\n"));
        om.push_str(&format!("nab_value{{series=\"ec2\"}} {v} {t}\n"));
        n += 1;
        t += 300;
    }
    om.push_str("# EOF\n");
    std::fs::write(csv_out, csv).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(om_out, om).unwrap_or_else(|e| panic!("{e}"));
    (first * 1000, (t - 300) * 1000, n)
}

fn config(dir: &Path, prom: &str) -> PathBuf {
    let p = dir.join("medic.yaml");
    std::fs::write(
        &p,
        format!(
            r#"
services:
  api:
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:1/healthz" }}
    actions:
      shed-load:
        http: {{ url: "http://127.0.0.1:1/admin/shed", method: POST }}
        risk: low
    remediate:
      - when: {{ probe: latency_anomaly, condition: failing }}
        action: shed-load
signals:
  sources:
    prom:
      prometheus: {{ url: "{prom}" }}
      interval: 5m
  rules:
    latency_anomaly:
      service: api
      source: prom
      query: nab_value
      detector: default
      threshold: 0.5
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p
}

fn run(a: &BacktestArgs) -> serde_json::Value {
    match render(a) {
        Ok((out, _)) => serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        Err(Failure::Config(e)) => panic!("{e}"),
        Err(Failure::Backtest(e)) => panic!("{e}"),
    }
}

fn opened(v: &serde_json::Value) -> Vec<String> {
    v["rules"][0]["incidents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["opened"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn prometheus_range_replay_matches_the_csv_replay() {
    let (Some(prometheus), Some(promtool)) = (require("prometheus"), require("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    let csv_dir = root.join("csv/realKnownCause");
    std::fs::create_dir_all(&csv_dir).unwrap_or_else(|e| panic!("{e}"));
    let csv = csv_dir.join("ec2_request_latency_system_failure.csv");
    let om = root.join("series.om");
    let (first_ms, last_ms, n) = regular_series(&csv, &om);
    let tsdb = root.join("tsdb");
    let out = Command::new(&promtool)
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=384h",
        ])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let prom_cfg = root.join("prometheus.yml");
    std::fs::write(&prom_cfg, "global:\n  scrape_interval: 1m\n").unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::File::create(root.join("prometheus.log")).unwrap_or_else(|e| panic!("{e}"));
    let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let mut guard = Guard(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            // The backfilled data is from 2014: keep it.
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus: {e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_ok(port, "/-/ready") {
        if let Ok(Some(st)) = guard.0.try_wait() {
            panic!(
                "prometheus exited with {st}: {}",
                std::fs::read_to_string(root.join("prometheus.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://127.0.0.1:{port}");
    let cfg = config(root, &url);
    let base = BacktestArgs {
        config: cfg,
        data: None,
        prometheus: Some(url),
        from: Some((first_ms / 1000).to_string()),
        to: Some((last_ms / 1000).to_string()),
        step: Some("5m".into()),
        rules: Vec::new(),
        plots: root.join("plots"),
        no_plots: true,
        json: true,
    };
    let from_prom = run(&base);
    let mut by_csv = base.clone();
    by_csv.prometheus = None;
    by_csv.data = Some(root.join("csv"));
    let from_csv = run(&by_csv);
    let series = &from_prom["rules"][0]["series"];
    assert_eq!(
        series[0]["key"], r#"nab_value{series="ec2"}"#,
        "{from_prom}"
    );
    assert_eq!(
        series[0]["samples"].as_u64(),
        u64::try_from(n).ok(),
        "{from_prom}"
    );
    let (a, b) = (opened(&from_prom), opened(&from_csv));
    assert!(a.len() >= 3, "{a:?}");
    assert_eq!(a, b, "the Prometheus replay differs from the CSV replay");
    drop(guard);
}
