//! OTLP export against loopback collectors that are killed and restarted:
//! failover, the disk buffer and in-order replay, the buffer bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_core::{IncidentId, IncidentOutcome, IncidentView, MonoTime, Phase, TimelineItem};
use medic_notify::loopback::Receiver;
use medic_trace::{incident_trace, Exporter, ExporterConfig};

fn incident(id: &str) -> IncidentView {
    let item = |ms, kind: &str| TimelineItem {
        at: MonoTime::from_millis(ms),
        kind: kind.into(),
        message: format!("{kind} message"),
    };
    IncidentView {
        id: IncidentId(id.into()),
        service: "web".into(),
        phase: Phase::Resolved,
        trigger: "probe up failing".into(),
        cause: "crashed".into(),
        confidence: 0.9,
        opened_at: MonoTime::from_millis(1_000),
        updated_at: MonoTime::from_millis(9_000),
        closed_at: Some(MonoTime::from_millis(9_000)),
        outcome: Some(IncidentOutcome::Healed),
        actions: vec!["restart".into()],
        timeline: vec![
            item(1_000, "detected"),
            item(1_000, "diagnosed"),
            item(1_500, "run"),
            item(1_600, "action"),
            item(3_000, "verifying"),
            item(9_000, "resolved"),
        ],
        merged: Vec::new(),
        diagnosis: None,
    }
}

fn ns(t: MonoTime) -> u64 {
    1_700_000_000_000_000_000 + t.0 * 1_000_000
}

#[test]
fn one_span_per_stage_under_an_incident_root() {
    let body = incident_trace(&incident("inc-1"), &ns);
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["incident", "detect", "diagnose", "decide", "act", "verify"]
    );
    let root = &spans[0];
    assert!(spans[1..]
        .iter()
        .all(|s| s["parentSpanId"] == root["spanId"] && s["traceId"] == root["traceId"]));
    assert_eq!(root["traceId"].as_str().unwrap().len(), 32);
    // act runs from the action to verification; verify to the close.
    assert_eq!(
        spans[4]["startTimeUnixNano"],
        ns(MonoTime::from_millis(1_600)).to_string()
    );
    assert_eq!(
        spans[4]["endTimeUnixNano"],
        ns(MonoTime::from_millis(3_000)).to_string()
    );
    assert_eq!(
        spans[5]["endTimeUnixNano"],
        ns(MonoTime::from_millis(9_000)).to_string()
    );
    assert_eq!(root["status"]["code"], 1);
    // Stable ids: a replay is the same trace.
    assert_eq!(incident_trace(&incident("inc-1"), &ns), body);
}

#[tokio::test]
async fn failover_buffer_and_in_order_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut primary = Receiver::http().await.unwrap();
    let mut secondary = Receiver::http().await.unwrap();
    let exporter = Exporter::new(ExporterConfig {
        endpoints: vec![primary.url(""), secondary.url("")],
        timeout: Duration::from_secs(1),
        buffer_dir: dir.path().join("otlp"),
        max_bytes: 1 << 20,
    })
    .unwrap();

    // Primary down: the secondary takes it.
    primary.kill().await;
    assert_eq!(
        exporter
            .export(&incident_trace(&incident("a"), &ns))
            .await
            .unwrap(),
        1
    );
    assert_eq!(secondary.count(), 1);
    assert_eq!(secondary.received()[0].path, "/v1/traces");

    // Both down: buffered on disk, nothing lost.
    secondary.kill().await;
    for id in ["b", "c", "d"] {
        assert_eq!(
            exporter
                .export(&incident_trace(&incident(id), &ns))
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(exporter.buffered(), 3);
    // A new exporter on the same buffer (a restart of medic) replays it.
    let exporter = Exporter::new(ExporterConfig {
        endpoints: vec![primary.url(""), secondary.url("")],
        timeout: Duration::from_secs(1),
        buffer_dir: dir.path().join("otlp"),
        max_bytes: 1 << 20,
    })
    .unwrap();
    primary.restart().await.unwrap();
    assert_eq!(exporter.flush().await.unwrap(), 3);
    assert_eq!(exporter.buffered(), 0);
    let got: Vec<String> = primary
        .received()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][0]["value"]
                ["stringValue"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ["b", "c", "d"]);
}

#[tokio::test]
async fn the_disk_buffer_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut dead = Receiver::http().await.unwrap();
    dead.kill().await;
    let one = incident_trace(&incident("i0"), &ns).to_string().len() as u64;
    let exporter = Exporter::new(ExporterConfig {
        endpoints: vec![dead.url("")],
        timeout: Duration::from_millis(500),
        buffer_dir: dir.path().join("otlp"),
        max_bytes: one * 3,
    })
    .unwrap();
    for i in 0..10 {
        exporter
            .export(&incident_trace(&incident(&format!("i{i}")), &ns))
            .await
            .unwrap();
    }
    assert_eq!(exporter.buffered(), 3);
    let stats = exporter.stats();
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 7);
    // The newest are kept.
    dead.restart().await.unwrap();
    assert_eq!(exporter.flush().await.unwrap(), 3);
    let last: serde_json::Value = serde_json::from_str(&dead.received()[2].body).unwrap();
    assert!(last.to_string().contains("\"i9\""));
}
