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

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
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
    assert!(max_rss > 0 && max_rss < RSS_BOUND_KB, "RSS {max_rss} kB");
    drop(d);
}
