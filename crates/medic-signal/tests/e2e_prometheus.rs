//! End to end with a real Prometheus: it scrapes the fixture's `/metrics`;
//! medic-signal polls a PromQL latency query; a slow fault injected into the
//! fixture must open an incident in a real engine within 30 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::{Duration, Instant};

use common::*;
use medic_core::{Command, Phase};
use tokio::sync::{mpsc, watch};

const DETECTION_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_latency_fault_opens_incident_within_30s() {
    let Some(prom_bin) = require_binary(&["prometheus"], "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // The fixture, in process.
    let (app, _fixture) = medic_fixture::router();
    let fixture = serve(app).await;

    // Steady load on /work: one request every 25 ms, not waiting for answers.
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let http = http.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {
                        let h = http.clone();
                        tokio::spawn(async move {
                            let _ = h.get(format!("http://{fixture}/work")).send().await;
                        });
                    }
                }
            }
        });
    }

    // A real Prometheus scraping it every second.
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fixture\n    static_configs:\n      - targets: ['{fixture}']\n"
        ),
    )
    .unwrap();
    let mut prom = ProcGuard::spawn(
        "prometheus",
        &prom_bin,
        &[
            format!("--config.file={}", prom_cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".to_string(),
        ],
        dir.path().join("prometheus.log"),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    wait_ready(
        &http,
        &format!("{prom_url}/-/ready"),
        Duration::from_secs(30),
        &mut prom,
    )
    .await;

    // medic's config, through the real parser.
    let yaml = format!(
        r#"
mode: dry-run
services:
  web:
    probes:
      healthz:
        http: {{ url: "http://{fixture}/healthz" }}
    actions:
      shed:
        http: {{ url: "http://{fixture}/admin/shed" }}
    remediate:
      - when: {{ probe: web_p90_latency }}
        action: shed
signals:
  sources:
    prom:
      prometheus: {{ url: "{prom_url}" }}
      interval: 1s
      timeout: 2s
  rules:
    web_p90_latency:
      service: web
      source: prom
      query: 'histogram_quantile(0.9, sum by (le) (rate(fixture_request_duration_seconds_bucket[5s])))'
      above: 0.2
      for: 2s
"#
    );
    let cfg = medic_config::parse("e2e.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut driver = Driver::new(cfg.engine.clone());
    let (tx, mut rx) = mpsc::channel::<medic_core::ProbeReport>(64);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (hooks, _events) = medic_signal::SignalHooks::new();
    let tasks = medic_signal::spawn_sources(&cfg.signals, tx, shutdown_rx, &hooks);
    assert_eq!(tasks.len(), 1);

    // Baseline: wait (bounded) for three healthy reports from real data.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut healthy = 0;
    while healthy < 3 {
        let r = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no healthy baseline from Prometheus within 40s:\n{}",
                    prom.output()
                )
            })
            .unwrap();
        assert!(r.ok, "latency rule failing before any fault: {}", r.detail);
        driver.report(r);
        healthy += 1;
    }
    assert_eq!(driver.engine.phase("web"), Some(Phase::Monitoring));

    // Inject the fault through the fixture's real endpoint.
    let resp = http
        .post(format!("http://{fixture}/fault/slow?ms=400"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let injected = Instant::now();

    let deadline = injected + DETECTION_LIMIT;
    let mut detail = String::new();
    let opened = loop {
        let r = match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) => panic!("signal task stopped"),
            Err(_) => panic!(
                "latency fault not detected within {DETECTION_LIMIT:?}; last report: {detail}\n{}",
                prom.output()
            ),
        };
        detail = r.detail.clone();
        driver.report(r);
        if !driver.audits("incident.opened").is_empty() {
            break injected.elapsed();
        }
    };
    println!("DETECTION LATENCY (fault injected -> incident opened): {opened:?}; report: {detail}");
    assert!(opened < DETECTION_LIMIT);
    match driver.audits("incident.opened")[0] {
        medic_core::Notice::IncidentOpened {
            service, trigger, ..
        } => {
            assert_eq!(service, "web");
            assert_eq!(trigger, "web_p90_latency failing");
        }
        other => panic!("not an incident: {other:?}"),
    }
    assert!(detail.contains("web_p90_latency"), "{detail}");
    assert!(detail.contains("breached"), "{detail}");
    // Dry-run: the engine decided what it would do, and did not run it.
    assert!(!driver
        .commands
        .iter()
        .any(|(_, c)| matches!(c, Command::RunAction(_))));

    let _ = shutdown_tx.send(true);
    let _ = stop_tx.send(true);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("signal task did not stop on shutdown")
            .unwrap();
    }
    drop(prom);
}
