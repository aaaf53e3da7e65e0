//! The outbox commits with the audit records of its step, is bounded (oldest
//! non-critical dropped first, audited) and suppresses pending duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use medic_store::outbox::NewMessage;
mod common;

use common::TestDb;

const TS: &str = "2026-01-01T00:00:00Z";

fn msg(id: &str, severity: &str) -> NewMessage {
    NewMessage {
        msg_id: id.into(),
        dedup_key: format!("key-{id}"),
        due_ms: 0,
        severity: severity.into(),
        service: "web".into(),
        incident: Some("inc-1".into()),
        event: "notify".into(),
        title: format!("title {id}"),
        message: "m".into(),
        channels: None,
    }
}

#[tokio::test]
async fn step_writes_audit_and_outbox_together() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let w = store
            .append_step(
                TS,
                &[("incident.escalated", "{}")],
                &[msg("a", "critical")],
                10,
            )
            .await
            .unwrap();
        assert_eq!(w.records.len(), 1);
        assert_eq!(w.queued, vec!["a".to_string()]);
        assert_eq!(store.outbox_depth().await.unwrap(), 1);

        // A bad audit record rolls the whole step back: no outbox row either.
        let err = store
            .append_step(TS, &[("bad kind!", "{}")], &[msg("b", "critical")], 10)
            .await;
        assert!(err.is_err());
        assert_eq!(store.outbox_depth().await.unwrap(), 1);
        assert!(store.outbox_get("b").await.unwrap().is_none());
        assert_eq!(store.audit_tip().await.0, 1);
    }
}

#[tokio::test]
async fn full_outbox_drops_oldest_non_critical_and_audits_it() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        store
            .append_step(
                TS,
                &[],
                &[
                    msg("c1", "critical"),
                    msg("i1", "info"),
                    msg("w1", "warning"),
                ],
                3,
            )
            .await
            .unwrap();
        let w = store
            .append_step(TS, &[], &[msg("c2", "critical"), msg("c3", "critical")], 3)
            .await
            .unwrap();
        let dropped: Vec<_> = w.dropped.iter().map(|d| d.msg_id.as_str()).collect();
        assert_eq!(dropped, vec!["i1", "w1"]);
        assert_eq!(w.records.len(), 2);
        assert!(w.records.iter().all(|r| r.kind == "notify.dropped"));
        let due: Vec<_> = store
            .outbox_due(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.msg_id)
            .collect();
        assert_eq!(due, vec!["c1", "c2", "c3"]);
        // All critical and full: the oldest critical goes, still audited.
        let w = store
            .append_step(TS, &[], &[msg("c4", "critical")], 3)
            .await
            .unwrap();
        assert_eq!(w.dropped[0].msg_id, "c1");
        store.close().await;
        let report = db.verify().await;
        assert!(report.is_ok());
        assert_eq!(report.records, 3);
    }
}

#[tokio::test]
async fn pending_duplicates_suppressed_delivery_and_ack() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let mut a = msg("a", "warning");
        let mut b = msg("b", "warning");
        b.dedup_key = a.dedup_key.clone();
        let w = store
            .append_step(TS, &[], &[a.clone(), b], 10)
            .await
            .unwrap();
        assert_eq!(w.suppressed, 1);
        let m = &store.outbox_due(0, 10).await.unwrap()[0];
        store.outbox_failed(m.id, "refused").await.unwrap();
        store.outbox_delivered(m.id, "hook", TS).await.unwrap();
        let got = store.outbox_get("a").await.unwrap().unwrap();
        assert_eq!((got.state.as_str(), got.attempts), ("delivered", 2));
        assert_eq!(got.channel.as_deref(), Some("hook"));
        // Delivered: the same content may be queued again.
        a.msg_id = "a2".into();
        assert_eq!(
            store
                .append_step(TS, &[], &[a], 10)
                .await
                .unwrap()
                .queued
                .len(),
            1
        );

        // Escalation steps in the future are not due yet; an ack cancels them.
        let mut step = msg("s1", "critical");
        step.event = "escalate".into();
        step.due_ms = 1_000_000;
        store.append_step(TS, &[], &[step], 10).await.unwrap();
        assert!(store
            .outbox_due(10, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.msg_id != "s1"));
        assert_eq!(store.outbox_due(1_000_000, 10).await.unwrap().len(), 2);
        let mut ack = msg("ack", "info");
        ack.event = "acknowledge".into();
        let n = store
            .acknowledge(TS, "inc-1", "alice", std::slice::from_ref(&ack))
            .await
            .unwrap();
        assert_eq!(n, Some(1));
        assert_eq!(
            store.outbox_get("s1").await.unwrap().unwrap().state,
            "cancelled"
        );
        assert_eq!(
            store
                .acknowledge(TS, "inc-404", "alice", std::slice::from_ref(&ack))
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn every_lane_shows_its_head_however_long_another_lane_is() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let mut msgs: Vec<NewMessage> = (0..300)
            .map(|i| {
                let mut m = msg(&format!("a{i}"), "warning");
                m.channels = Some(vec!["a".into()]);
                m
            })
            .collect();
        let mut b = msg("b0", "warning");
        b.channels = Some(vec!["b".into(), "c".into()]);
        msgs.push(b);
        store.append_step(TS, &[], &msgs, 1000).await.unwrap();
        let heads: Vec<String> = store
            .outbox_lane_heads(0)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.msg_id)
            .collect();
        assert_eq!(heads, vec!["a0", "b0"]);
    }
}
