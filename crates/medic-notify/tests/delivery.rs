//! Delivery against real loopback receivers (HTTP and SMTP) that the tests
//! kill and restart; a real SQLite store underneath.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_core::{IncidentId, Notification, Severity};
use medic_notify::bench::{bench_secret, Rig, BENCH_SECRET};
use medic_notify::deliver::{now_rfc3339, unix_ms};
use medic_notify::{channel, plan, Notifier, Outcome};
use medic_store::Store;

fn note(sev: Severity, inc: &str, title: &str) -> Notification {
    Notification {
        severity: sev,
        service: "web".into(),
        incident: Some(IncidentId(inc.into())),
        title: title.into(),
        message: "details".into(),
    }
}

async fn queue(store: &Store, cfg: &medic_config::NotifyConfig, n: &Notification) -> Vec<String> {
    let msgs = plan::messages(cfg, n, unix_ms());
    let w = store
        .append_step(
            &now_rfc3339(),
            &[("incident.escalated", "{}")],
            &msgs,
            cfg.outbox_capacity,
        )
        .await
        .unwrap();
    w.queued
}

/// Runs delivery rounds until the outbox is empty (or gives up after 10 s).
async fn drain(notifier: &mut Notifier, store: &Store) {
    for _ in 0..1000 {
        if store.outbox_depth().await.unwrap() == 0 {
            return;
        }
        let wait = notifier.round().await;
        tokio::time::sleep(wait.min(Duration::from_millis(10))).await;
    }
    panic!(
        "outbox not drained: {}",
        store.outbox_depth().await.unwrap()
    );
}

#[tokio::test]
async fn every_channel_kind_delivers_with_its_wire_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db")).await.unwrap();
    let rig = Rig::start().await.unwrap();
    let mut cfg = rig.config();
    // One route per channel: every channel gets the message.
    cfg.routes = ["hook", "slack", "pd", "teams", "mail"]
        .iter()
        .map(|c| medic_config::RouteSpec {
            severities: vec![],
            services: vec![],
            channels: vec![c.to_string()],
        })
        .collect();
    let mut notifier = Notifier::new(store.clone(), &cfg, &bench_secret).unwrap();
    let ids = queue(
        &store,
        &cfg,
        &note(Severity::Critical, "inc-7", "web: escalated to a human"),
    )
    .await;
    assert_eq!(ids.len(), 5);
    drain(&mut notifier, &store).await;

    let hook = &rig.hook.received()[0];
    let ts = hook.header("x-medic-timestamp").unwrap();
    let sig = hook.header("x-medic-signature").unwrap();
    assert!(channel::verify(
        BENCH_SECRET.as_bytes(),
        ts,
        hook.body.as_bytes(),
        sig
    ));
    assert!(!channel::verify(b"other", ts, hook.body.as_bytes(), sig));
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["incident"], "inc-7");
    assert_eq!(body["id"], hook.id.as_str());

    let pd: serde_json::Value = serde_json::from_str(&rig.pagerduty.received()[0].body).unwrap();
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], "medic-inc-7");
    assert_eq!(pd["routing_key"], "bench-key");
    assert_eq!(pd["payload"]["severity"], "critical");

    let slack: serde_json::Value = serde_json::from_str(&rig.slack.received()[0].body).unwrap();
    assert!(slack["text"]
        .as_str()
        .unwrap()
        .contains("escalated to a human"));
    let teams: serde_json::Value = serde_json::from_str(&rig.teams.received()[0].body).unwrap();
    assert_eq!(teams["@type"], "MessageCard");
    let mail = &rig.smtp.received()[0];
    assert!(mail
        .body
        .contains("Subject: [medic CRITICAL] web: escalated to a human"));
    assert!(ids.contains(&mail.id), "Message-ID carries the outbox id");

    // An acknowledgement reaches PagerDuty as `acknowledge` with the same key.
    let ack = plan::event_messages(
        &cfg,
        &plan::Event {
            event: "acknowledge",
            severity: Severity::Critical,
            service: "web",
            incident: Some("inc-7"),
            title: "ack",
            message: "by alice",
        },
        Some("pd"),
    );
    assert_eq!(
        store
            .acknowledge(&now_rfc3339(), "inc-7", "alice", &ack)
            .await
            .unwrap(),
        Some(0)
    );
    drain(&mut notifier, &store).await;
    let pd: serde_json::Value = serde_json::from_str(&rig.pagerduty.received()[1].body).unwrap();
    assert_eq!(pd["event_action"], "acknowledge");
    assert_eq!(pd["dedup_key"], "medic-inc-7");
}

#[tokio::test]
async fn failover_then_all_down_then_in_order_replay_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db")).await.unwrap();
    let mut rig = Rig::start().await.unwrap();
    let cfg = rig.config();
    let mut notifier = Notifier::new(store.clone(), &cfg, &bench_secret).unwrap();

    // Primary (hook) down: the warning goes to the secondary (slack).
    rig.hook.kill().await;
    let first = queue(&store, &cfg, &note(Severity::Warning, "inc-1", "first")).await;
    let m = store.outbox_get(&first[0]).await.unwrap().unwrap();
    match notifier.deliver(&m).await {
        Outcome::Delivered { channel, failed } => {
            assert_eq!(channel, "slack");
            assert_eq!(failed, vec!["hook".to_string()]);
        }
        other => panic!("{other:?}"),
    }

    // Everything down: nothing is lost, nothing goes out.
    for r in rig.all() {
        r.kill().await;
    }
    let mut ids = Vec::new();
    for k in 0..10 {
        ids.extend(
            queue(
                &store,
                &cfg,
                &note(Severity::Warning, &format!("inc-{k}"), &format!("down {k}")),
            )
            .await,
        );
    }
    for _ in 0..5 {
        notifier.round().await;
    }
    assert_eq!(store.outbox_depth().await.unwrap(), 10);
    let head = store.outbox_get(&ids[0]).await.unwrap().unwrap();
    assert!(head.attempts >= 1 && head.last_error.is_some());

    // Back: delivered in order, once each.
    for r in rig.all() {
        r.restart().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await; // past the backoff cap
    drain(&mut notifier, &store).await;
    let got: Vec<String> = rig.hook.received().into_iter().map(|r| r.id).collect();
    assert_eq!(got, ids);
    assert_eq!(rig.slack.count(), 1);
}

#[tokio::test]
async fn escalation_steps_wait_for_their_time_and_an_ack_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.db")).await.unwrap();
    let rig = Rig::start().await.unwrap();
    let mut cfg = rig.config();
    cfg.escalation = vec![
        medic_config::EscalationStep {
            after: Duration::from_millis(200),
            channels: vec!["teams".into()],
        },
        medic_config::EscalationStep {
            after: Duration::from_secs(3600),
            channels: vec!["mail".into()],
        },
    ];
    let mut notifier = Notifier::new(store.clone(), &cfg, &bench_secret).unwrap();
    let ids = queue(
        &store,
        &cfg,
        &note(Severity::Critical, "inc-9", "web: escalated to a human"),
    )
    .await;
    assert_eq!(ids.len(), 4, "2 routes + 2 escalation steps");
    for _ in 0..3 {
        notifier.round().await;
    }
    // Only the immediate routes went out; teams is a secondary of lane B.
    assert_eq!(rig.teams.count(), 0);
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    // The store, not memory, holds the timer: a fresh notifier (a restart)
    // sends the first step once it is due.
    drop(notifier);
    let mut notifier = Notifier::new(store.clone(), &cfg, &bench_secret).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    notifier.round().await;
    assert_eq!(rig.teams.count(), 1);
    assert!(rig.teams.received()[0].body.contains("escalation level 1"));
    // Acknowledged: the second step never goes out.
    let n = store
        .acknowledge(&now_rfc3339(), "inc-9", "alice", &[])
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn fifty_kill_restart_cycles_lose_and_duplicate_nothing() {
    let r = medic_notify::bench::run(50, 4).await.unwrap();
    eprintln!("{r:?}");
    assert_eq!(r.cycles, 50);
    assert_eq!(
        r.sent,
        50 * 4 + 50 * 2,
        "4 messages per cycle, 2 of them critical on 2 lanes"
    );
    assert_eq!(r.lost, 0);
    assert_eq!(r.duplicate, 0);
    assert_eq!(r.out_of_order, 0);
    assert!(
        r.retried > 0,
        "receivers were down while messages were queued"
    );
}

#[tokio::test]
async fn every_channel_down_then_back_delivers_everything_in_order_once() {
    // The short form of `medic bench notify --outage 10m`, with the default
    // retry backoff: all five receivers down while notifications keep
    // coming, then back.
    let r = medic_notify::bench::run_outage(Duration::from_secs(4), Duration::from_millis(100))
        .await
        .unwrap();
    assert!(r.sent_during_outage >= 20, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.duplicate, 0, "{r:?}");
    assert_eq!(r.out_of_order, 0, "{r:?}");
    assert_eq!(r.delivered, r.sent, "{r:?}");
    // Delivery resumes within one capped retry of the channels coming back.
    assert!(
        r.resume_s <= r.retry_cap_s + r.retry_jitter_s + 5.0,
        "{r:?}"
    );
}
