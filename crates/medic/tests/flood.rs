//! Self-protection at binary level (issue 12): a flood of Alertmanager
//! webhooks (4 senders posting batches of 100 alerts as fast as medic takes
//! them, 5% critical) while the supervised service is killed. medic still
//! heals the service, every critical alert reaches the engine (the receiver
//! never refuses one), low ones are shed and counted, and medic's RSS stays
//! under a stated bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, get_text, wait_for, write, TestDir};

/// The RSS bound this test holds medic to during the flood.
const RSS_BOUND_KB: u64 = 256 * 1024;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The value of the sample named exactly `name` (labels included).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn a_flood_of_alerts_does_not_stop_healing() {
    let dir = TestDir::new();
    let (port, api_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 2s }}
services:
  web:
    startup: {{ grace: 0s }}
    process:
      command: ["{exe}", "fixture", "--port", "{port}"]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 200ms }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
  # The flooded alerts are about another service: a critical alert for
  # `web` itself would (rightly) escalate web's incident to a human.
  api:
    probes:
      up: {{ http: {{ url: "http://127.0.0.1:{port}/healthz" }}, interval: 1s }}
signals:
  alertmanager:
    alerts:
      Noise: {{ services: [api] }}
      Page: {{ services: [api] }}
"#,
        exe = exe.display()
    );
    let cfg = write(dir.path(), "medic.yaml", &cfg);
    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let pid = common::fixture_pid(&format!("http://127.0.0.1:{port}/healthz"));

    let stop = Arc::new(AtomicBool::new(false));
    let critical_sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let url = format!("{api}/api/v1/alerts/alertmanager");
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (stop, critical_sent, refused, url) = (
                stop.clone(),
                critical_sent.clone(),
                refused.clone(),
                url.clone(),
            );
            std::thread::spawn(move || {
                let mut batch = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let alerts: Vec<serde_json::Value> = (0..100)
                        .map(|i| {
                            let page = i % 20 == 0;
                            serde_json::json!({
                                "status": "firing",
                                "labels": {
                                    "alertname": if page { "Page" } else { "Noise" },
                                    "service": "api",
                                    "severity": if page { "critical" } else { "info" },
                                },
                                "annotations": {"summary": format!("s{s} b{batch} a{i}")},
                            })
                        })
                        .collect();
                    let code = common::post_json(
                        &url,
                        &serde_json::json!({"version": "4", "status": "firing", "alerts": alerts}),
                    );
                    if code == 200 {
                        critical_sent.fetch_add(5, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    batch += 1;
                }
            })
        })
        .collect();

    // A fault during the flood: the service is killed and must be healed.
    std::thread::sleep(Duration::from_millis(500));
    common::sigkill(pid);
    let healed = common::new_fixture_pid(
        &format!("http://127.0.0.1:{port}/healthz"),
        pid,
        Duration::from_secs(30),
    );
    assert_ne!(healed, pid);
    let mut max_rss = 0;
    for _ in 0..20 {
        max_rss = max_rss.max(rss_kb(d.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let m = wait_for("signal metrics", Duration::from_secs(10), || {
        get_text(&format!("{api}/metrics"))
    });
    let received = metric(&m, "medic_signal_alerts_received_total");
    let shed = metric(&m, "medic_signal_alerts_shed_total");
    let failing = metric(&m, "medic_signal_reports_failing_total");
    let critical = critical_sent.load(Ordering::Relaxed);
    let critical_admitted = metric(
        &m,
        "medic_signal_alerts_admitted_total{priority=\"critical\"}",
    );
    let low_admitted = metric(&m, "medic_signal_alerts_admitted_total{priority=\"low\"}");
    eprintln!(
        "flood: {received} alerts received, {critical} critical, {shed} low shed, \
         {failing} reports to the engine, {} requests refused, max RSS {max_rss} kB",
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(refused.load(Ordering::Relaxed), 0, "a webhook was refused");
    assert!(critical > 0);
    // Every alert is firing, so every one that reached the engine is a
    // failing report: all critical ones plus the low ones not shed.
    assert_eq!(failing, received - shed, "{m}");
    assert!(failing >= critical, "{m}");
    // Counted by priority: every critical alert of an accepted batch reached
    // the engine's queue; low ones either reached it or were shed.
    assert_eq!(critical_admitted, critical, "{m}");
    assert_eq!(low_admitted + shed, received - critical, "{m}");
    assert!(max_rss > 0 && max_rss < RSS_BOUND_KB, "RSS {max_rss} kB");
    drop(d);
}

/// `medic bench flood`, short: 100× a normal rate of 10 alerts/s for 4 s
/// with the fixture killed half way; its JSON carries the goals' figures.
#[test]
fn bench_flood_reports_the_goals() {
    let dir = TestDir::new();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("medic"))
        .args([
            "bench",
            "flood",
            "--duration",
            "4s",
            "--warmup",
            "1s",
            "--json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["flood_rate"], 1000, "{r}");
    assert!(r["sent"]["critical"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["admitted"]["critical"], r["sent"]["critical"], "{r}");
    assert_eq!(r["admitted"]["high"], r["sent"]["high"], "{r}");
    assert_eq!(
        r["admitted"]["low"].as_u64().unwrap() + r["shed"].as_u64().unwrap(),
        r["sent"]["low"].as_u64().unwrap(),
        "{r}"
    );
    assert_eq!(r["fault_healed"], true, "{r}");
    assert_eq!(r["api_errors"], 0, "{r}");
    assert!(r["api_requests"].as_u64().unwrap() > 0, "{r}");
    let peak = r["rss_peak_mb"].as_f64().unwrap();
    assert!(peak > 0.0 && peak < 256.0, "{r}");
}
