//! The source tasks started by `spawn_sources`, against real components that
//! run in-process: the fixture's `/metrics`, real files, a closed port.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::serve;
use medic_core::ProbeReport;
use medic_signal::{SignalEvent, SignalHooks};
use tokio::sync::{mpsc, watch};

const LIMIT: Duration = Duration::from_secs(20);

struct Running {
    rx: mpsc::Receiver<ProbeReport>,
    events: mpsc::Receiver<SignalEvent>,
    hooks: SignalHooks,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start(yaml: &str) -> Running {
    let cfg = medic_config::parse("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = mpsc::channel(64);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (hooks, events) = SignalHooks::new();
    let tasks = medic_signal::spawn_sources(&cfg.signals, tx, shutdown_rx, &hooks);
    Running {
        rx,
        events,
        hooks,
        shutdown,
        tasks,
    }
}

impl Running {
    /// The next report satisfying `pred`, within LIMIT.
    async fn until(&mut self, what: &str, pred: impl Fn(&ProbeReport) -> bool) -> ProbeReport {
        let deadline = Instant::now() + LIMIT;
        loop {
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(r)) if pred(&r) => return r,
                Ok(Some(_)) => {}
                Ok(None) => panic!("sources stopped while waiting for {what}"),
                Err(_) => panic!("no report for {what} within {LIMIT:?}"),
            }
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("source task did not stop within 5s of shutdown")
                .unwrap();
        }
    }
}

#[tokio::test]
async fn scrape_source_reads_fixture_metrics_with_own_parser() {
    let (app, fixture) = medic_fixture::router();
    let addr = serve(app).await;
    let mut run = start(&format!(
        "services:
  web:
    probes:
      hz: {{ http: {{ url: 'http://{addr}/healthz' }} }}
signals:
  sources:
    m: {{ scrape: {{ url: 'http://{addr}/metrics' }}, interval: 200ms }}
  rules:
    web_errors:
      service: web
      source: m
      metric: fixture_errors_total
      above: 2
"
    ));
    let r = run.until("a healthy scrape", |r| r.ok).await;
    assert_eq!(
        (r.service.as_str(), r.probe.as_str()),
        ("web", "web_errors")
    );
    assert!(
        r.detail.contains("fixture_errors_total value=0"),
        "{}",
        r.detail
    );

    fixture.set_state(medic_fixture::FixtureState {
        error: true,
        ..fixture.state()
    });
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let _ = http.get(format!("http://{addr}/healthz")).send().await;
    }
    let r = run.until("errors above 2", |r| !r.ok).await;
    assert!(r.detail.contains("value=3"), "{}", r.detail);
    assert!(run.hooks.metrics.samples.load(Ordering::Relaxed) >= 2);
    run.stop().await;
}

/// Each evaluation's value reaches a sample listener (the daemon's root-cause
/// ranking), named by the rule's `kind`, through the real scrape adapter.
#[tokio::test]
async fn rule_values_reach_the_sample_listener_by_kind() {
    let (app, fixture) = medic_fixture::router();
    let addr = serve(app).await;
    let cfg = medic_config::parse(
        "t.yaml",
        &format!(
            "services:
  web:
    probes:
      hz: {{ http: {{ url: 'http://{addr}/healthz' }} }}
signals:
  sources:
    m: {{ scrape: {{ url: 'http://{addr}/metrics' }}, interval: 200ms }}
  rules:
    web_errors:
      service: web
      source: m
      metric: fixture_errors_total
      above: 100
      kind: errors
"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (tx, mut rx) = mpsc::channel::<ProbeReport>(64);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (hooks, _events) = SignalHooks::new();
    let (stx, mut srx) = mpsc::channel(64);
    let hooks = hooks.with_samples(stx);
    let tasks = medic_signal::spawn_sources(&cfg.signals, tx, shutdown_rx, &hooks);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    async fn next(
        srx: &mut mpsc::Receiver<medic_signal::SignalSample>,
    ) -> medic_signal::SignalSample {
        tokio::time::timeout(LIMIT, srx.recv())
            .await
            .expect("a sample")
            .expect("sources running")
    }
    let s = next(&mut srx).await;
    assert_eq!(
        (s.service.as_str(), s.rule.as_str(), s.value, s.direction),
        ("web", "errors", 0.0, medic_signal::Badness::Up)
    );
    fixture.set_state(medic_fixture::FixtureState {
        error: true,
        ..fixture.state()
    });
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let _ = http.get(format!("http://{addr}/healthz")).send().await;
    }
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no sample with value 3");
        if next(&mut srx).await.value == 3.0 {
            break;
        }
    }
    let _ = shutdown.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}

fn append(p: &std::path::Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

#[tokio::test]
async fn log_source_counts_matches_through_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "ERROR old, before start: not counted\n");
    let mut run = start(&format!(
        "services:
  web:
    probes:
      hz: {{ tcp: {{ address: '127.0.0.1:1' }} }}
signals:
  sources:
    l: {{ log: {{ path: '{}' }}, interval: 200ms }}
  rules:
    web_log_errors:
      service: web
      source: l
      match: '^ERROR'
      above: 2
",
        log.display()
    ));
    let r = run.until("a quiet interval", |r| r.ok).await;
    assert!(r.detail.contains("matches value=0"), "{}", r.detail);

    append(&log, "ERROR a\nINFO b\nERROR c\nERROR d\n");
    let r = run.until("three errors", |r| !r.ok).await;
    assert!(r.detail.contains("value=3"), "{}", r.detail);
    run.until("quiet again", |r| r.ok).await;

    // copytruncate, then new errors
    std::fs::write(&log, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, "ERROR 1\nERROR 2\nERROR 3\nERROR 4\n");
    let r = run.until("errors after truncation", |r| !r.ok).await;
    assert!(r.detail.contains("value=4"), "{}", r.detail);
    run.until("quiet again", |r| r.ok).await;

    // rename + recreate
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "ERROR x\nERROR y\nERROR z\n");
    let r = run.until("errors in the recreated file", |r| !r.ok).await;
    assert!(r.detail.contains("value=3"), "{}", r.detail);
    run.stop().await;
}

#[tokio::test]
async fn noisy_rule_is_muted_with_an_audit_event_and_a_counter() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flappy.log");
    std::fs::write(&log, "").unwrap();
    let mut run = start(&format!(
        "services:
  web:
    probes:
      hz: {{ tcp: {{ address: '127.0.0.1:1' }} }}
signals:
  sources:
    l: {{ log: {{ path: '{}' }}, interval: 100ms }}
  rules:
    flappy:
      service: web
      source: l
      match: BOOM
      above: 0
      breaker: {{ baseline: 1, factor: 2, cooldown: 1h }}
",
        log.display()
    ));
    // Three separate bursts = three firings > 2 per hour.
    for i in 0..3 {
        run.until("quiet before a burst", |r| r.ok).await;
        append(&log, &format!("BOOM {i}\n"));
        if i < 2 {
            run.until("the burst", |r| !r.ok).await;
        }
    }
    let ev = tokio::time::timeout(LIMIT, run.events.recv())
        .await
        .expect("no breaker event")
        .unwrap();
    let audit = ev.to_audit();
    assert_eq!(audit.kind, "signal.rule_muted");
    assert_eq!(audit.field("rule"), Some("flappy"));
    assert_eq!(audit.field("service"), Some("web"));
    assert_eq!(audit.field("rate_per_hour"), Some("3"));
    assert_eq!(audit.field("limit_per_hour"), Some("2"));
    assert_eq!(run.hooks.metrics.rules_muted.load(Ordering::Relaxed), 1);
    assert!(run
        .hooks
        .metrics
        .snapshot()
        .iter()
        .any(|(name, _, v)| *name == "medic_signal_rules_muted_total" && *v == 1));
    // Muted: no further reports, even with more matches.
    append(&log, "BOOM again\n");
    let quiet = tokio::time::timeout(Duration::from_millis(600), run.rx.recv()).await;
    assert!(quiet.is_err(), "a muted rule reported: {quiet:?}");
    run.stop().await;
}

#[tokio::test]
async fn unreachable_prometheus_sends_nothing_and_counts_errors() {
    let port = common::free_port();
    let mut run = start(&format!(
        "services:
  web:
    probes:
      hz: {{ tcp: {{ address: '127.0.0.1:1' }} }}
signals:
  sources:
    p: {{ prometheus: {{ url: 'http://127.0.0.1:{port}' }}, interval: 100ms, timeout: 1s }}
  rules:
    r: {{ service: web, source: p, query: up, below: 1 }}
"
    ));
    let got = tokio::time::timeout(Duration::from_millis(800), run.rx.recv()).await;
    assert!(got.is_err(), "a failed poll must not report: {got:?}");
    assert!(run.hooks.metrics.source_errors.load(Ordering::Relaxed) >= 2);
    run.stop().await;
}

/// The daemon's own input type can be used directly through `From<ProbeReport>`.
#[tokio::test]
async fn receiver_sends_into_a_daemon_style_input_channel() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[derive(Debug)]
    enum Msg {
        Probe(ProbeReport),
    }
    impl From<ProbeReport> for Msg {
        fn from(r: ProbeReport) -> Msg {
            Msg::Probe(r)
        }
    }

    let cfg = medic_config::parse(
        "t.yaml",
        "services:
  web:
    probes:
      hz: { tcp: { address: '127.0.0.1:1' } }
signals:
  alertmanager:
    service_label: app
    alerts:
      Down: {}
",
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel::<Msg>(8);
    let (hooks, _events) = SignalHooks::new();
    let router = medic_signal::alertmanager_router(&cfg.signals, tx, &hooks);
    let body = r#"{"version":"4","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"Down","app":"web"}},
        {"status":"firing","labels":{"alertname":"Down","service":"web"}}]}"#;
    let resp = router
        .oneshot(
            Request::post(medic_signal::WEBHOOK_PATH)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&bytes[..], br#"{"accepted":1,"ignored":1,"shed":0}"#);
    let Msg::Probe(r) = rx.try_recv().unwrap();
    assert_eq!(
        (r.service.as_str(), r.probe.as_str(), r.ok),
        ("web", "Down", false)
    );
    assert!(rx.try_recv().is_err());
    assert_eq!(hooks.metrics.alerts_received.load(Ordering::Relaxed), 2);
    assert_eq!(hooks.metrics.alerts_ignored.load(Ordering::Relaxed), 1);
}

/// A detector rule through the runtime: a steady error count, then a burst.
#[tokio::test]
async fn detector_rule_flags_a_burst_in_log_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("svc.log");
    std::fs::write(&log, "").unwrap();
    let mut run = start(&format!(
        "services:
  web:
    probes:
      hz: {{ tcp: {{ address: '127.0.0.1:1' }} }}
signals:
  sources:
    l: {{ log: {{ path: '{}' }}, interval: 100ms }}
  rules:
    web_error_spike:
      service: web
      source: l
      match: ERROR
      detector: zscore
      threshold: 0.9
",
        log.display()
    ));
    // Warm-up: the detector needs 30 samples of the quiet baseline.
    for i in 0..40 {
        let r = run.until("a quiet sample", |_| true).await;
        assert!(r.ok, "sample {i} failing on a quiet log: {}", r.detail);
    }
    append(&log, &"ERROR boom\n".repeat(50));
    let r = run.until("the burst", |r| !r.ok).await;
    assert!(r.detail.contains("value=50"), "{}", r.detail);
    assert!(r.detail.contains("zscore score >= 0.9"), "{}", r.detail);
    run.stop().await;
}
