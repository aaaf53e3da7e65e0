//! A flood of alerts (100× the normal rate, for a short time) on the
//! Alertmanager receiver: every CRITICAL and HIGH alert reaches the engine's
//! queue, low-priority ones are shed and counted, the queue never grows past
//! its bound, and a probe report sent during the flood still gets through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use medic_config::{AlertConfig, SignalsConfig};
use medic_core::ProbeReport;
use medic_signal::alertmanager::WebhookAnswer;
use medic_signal::{SignalHooks, WEBHOOK_PATH};
use tower::ServiceExt;

const QUEUE: usize = 64;
/// Normal: 10 alerts per batch of requests; flood: 100× that.
const REQUESTS: usize = 100;
const ALERTS_PER_REQUEST: usize = 10;

fn severity(i: usize) -> &'static str {
    match i % 20 {
        0 => "critical",
        1 => "high",
        _ => "warning",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_keeps_every_critical_alert_and_sheds_low_ones() {
    let mut cfg = SignalsConfig::default();
    cfg.alertmanager.alerts.push(AlertConfig {
        name: "Flood".into(),
        services: vec!["web".into()],
    });
    let (hooks, _events) = SignalHooks::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ProbeReport>(QUEUE);
    let probe_tx = tx.clone();
    let app = medic_signal::alertmanager_router(&cfg, tx, &hooks);

    // The "engine": a slow consumer (1 ms per report).
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(r) = rx.recv().await {
            got.push(r);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        got
    });

    let mut sent_high = BTreeSet::new();
    let mut sent_low = 0usize;
    let mut posts = Vec::new();
    for req in 0..REQUESTS {
        let mut alerts = Vec::new();
        for k in 0..ALERTS_PER_REQUEST {
            let i = req * ALERTS_PER_REQUEST + k;
            let sev = severity(i);
            if sev == "warning" {
                sent_low += 1;
            } else {
                sent_high.insert(format!("alert-{i}"));
            }
            alerts.push(serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "Flood", "service": "web", "severity": sev},
                "annotations": {"summary": format!("alert-{i}")},
            }));
        }
        let body = serde_json::json!({"version": "4", "status": "firing", "alerts": alerts});
        let app = app.clone();
        posts.push(tokio::spawn(async move {
            let req = Request::post(WEBHOOK_PATH)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<WebhookAnswer>(&bytes).unwrap()
        }));
    }
    // A real probe's report during the flood still goes in.
    let probe = tokio::spawn(async move {
        probe_tx
            .send(ProbeReport {
                service: "web".into(),
                probe: "healthz".into(),
                ok: false,
                latency: Duration::ZERO,
                failure: None,
                detail: "probe during the flood".into(),
            })
            .await
            .unwrap();
        probe_tx
    });
    let mut accepted = 0;
    let mut shed = 0;
    for p in posts {
        let a = p.await.unwrap();
        accepted += a.accepted;
        shed += a.shed;
    }
    drop(probe.await.unwrap());
    drop(app);
    let got = consumer.await.unwrap();

    let got_high: BTreeSet<String> = got
        .iter()
        .filter(|r| r.probe == "Flood")
        .filter_map(|r| r.detail.rsplit(": ").next().map(str::to_string))
        .filter(|d| sent_high.contains(d))
        .collect();
    assert_eq!(
        got_high, sent_high,
        "every CRITICAL and HIGH alert was processed"
    );
    assert!(got.iter().any(|r| r.probe == "healthz"));
    let got_low = got.iter().filter(|r| r.probe == "Flood").count() - got_high.len();
    assert!(shed > 0, "a flood into a slow engine sheds low alerts");
    assert_eq!(
        got_low + shed,
        sent_low,
        "every low alert is either processed or counted as shed"
    );
    assert_eq!(accepted, sent_high.len() + got_low);
    assert_eq!(
        hooks.metrics.alerts_shed.load(Ordering::Relaxed),
        shed as u64
    );
    eprintln!(
        "flood: {} alerts, {} high/critical all kept, {} low kept, {} low shed",
        REQUESTS * ALERTS_PER_REQUEST,
        sent_high.len(),
        got_low,
        shed
    );
}
