//! Fencing in the store and several writers on one database, against SQLite
//! and Postgres: a write with a token older than the store's is rejected
//! whole (`StoreError::Fenced`), nothing of it lands, and the audit chain
//! stays one valid chain whatever the interleaving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDb;
use medic_store::outbox::NewMessage;
use medic_store::{IncidentRecord, StoreError};

const TS: &str = "2026-01-01T00:00:00Z";

fn msg(id: &str) -> NewMessage {
    NewMessage {
        msg_id: id.into(),
        dedup_key: format!("key-{id}"),
        due_ms: 0,
        severity: "warning".into(),
        service: "web".into(),
        incident: Some("inc-1".into()),
        event: "notify".into(),
        title: format!("title {id}"),
        message: "m".into(),
        channels: None,
    }
}

fn incident(id: &str) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        service: "web".into(),
        state: "open".into(),
        trigger: "t".into(),
        opened_at: TS.into(),
        updated_at: TS.into(),
        closed_at: None,
        outcome: None,
        summary: "s".into(),
        merged: Vec::new(),
        diagnosis: None,
        timeline: vec![],
    }
}

fn fenced(r: Result<impl std::fmt::Debug, StoreError>, presented: u64, current: u64) {
    match r {
        Err(StoreError::Fenced {
            presented: p,
            current: c,
            ..
        }) => assert_eq!((p, c), (presented, current)),
        other => panic!("expected Fenced {{ {presented}, {current} }}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_token_is_rejected_and_nothing_of_its_write_lands() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let old = db.open().await;
        let new = db.open().await;
        assert_eq!(old.fence_current().await.unwrap(), 0);
        old.set_fence(Some(5));
        assert_eq!(old.fence(), Some(5));
        old.append_audit(TS, "leader.a", "{}").await.unwrap();
        assert_eq!(old.fence_current().await.unwrap(), 5);

        // A newer leader writes with a higher token.
        new.set_fence(Some(7));
        new.append_audit(TS, "leader.b", "{}").await.unwrap();
        assert_eq!(new.fence_current().await.unwrap(), 7);

        // Every fenced write path of the stale leader is refused.
        let snap = medic_core::Engine::new(
            medic_core::EngineConfig::default(),
            medic_core::MonoTime::ZERO,
        )
        .snapshot();
        fenced(old.append_audit(TS, "stale", "{}").await, 5, 7);
        fenced(
            old.append_step(TS, &[("stale.step", "{}")], &[msg("m1")], 10)
                .await,
            5,
            7,
        );
        fenced(old.save_snapshot(&snap, TS).await, 5, 7);
        fenced(old.upsert_incident(&incident("i1")).await, 5, 7);
        fenced(old.acknowledge(TS, "inc-1", "bob", &[]).await, 5, 7);
        fenced(old.record_pattern_outcome("p", "restart", true).await, 5, 7);
        fenced(old.outbox_failed(1, "x").await, 5, 7);
        // A clone shares the token.
        fenced(old.clone().append_audit(TS, "stale", "{}").await, 5, 7);

        // Nothing of those writes is there; the chain is intact.
        let all = new.list_audit(0, 100).await.unwrap();
        let kinds: Vec<&str> = all.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["leader.a", "leader.b"]);
        assert_eq!(new.outbox_depth().await.unwrap(), 0);
        assert!(new.load_snapshot().await.unwrap().is_none());
        assert!(new.get_incident("i1").await.unwrap().is_none());
        assert!(new.pattern_outcomes().await.unwrap().is_empty());
        assert_eq!(new.fence_current().await.unwrap(), 7);
        let report = db.verify().await;
        assert!(report.is_ok() && report.records == 2, "{report:?}");

        // The same token as the store's is accepted (the current leader's
        // own writes); the stale leader catching up to it is too.
        new.append_audit(TS, "leader.b", "{}").await.unwrap();
        old.set_fence(Some(7));
        old.save_snapshot(&snap, TS).await.unwrap();
        // A handle without a token (single instance, CLI) is not checked.
        let plain = db.open().await;
        assert_eq!(plain.fence(), None);
        plain.append_audit(TS, "cli", "{}").await.unwrap();
        assert_eq!(plain.fence_current().await.unwrap(), 7);
        // A token that does not fit the column is refused before writing.
        plain.set_fence(Some(u64::MAX - 1));
        assert!(matches!(
            plain.append_audit(TS, "huge", "{}").await,
            Err(StoreError::InvalidInput { field: "fence", .. })
        ));
        assert!(db.verify().await.is_ok());
        assert_eq!(db.verify().await.records, 4);
    }
}

#[tokio::test]
async fn claiming_the_fence_stops_a_stale_leader_before_the_new_one_writes() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let old = db.open().await;
        let new = db.open().await;
        old.set_fence(Some(3));
        old.append_audit(TS, "a", "{}").await.unwrap();
        assert_eq!(new.claim_fence(4).await.unwrap(), 4);
        fenced(old.append_audit(TS, "b", "{}").await, 3, 4);
        // Claiming an older token is itself refused.
        fenced(old.claim_fence(3).await, 3, 4);
        assert_eq!(new.fence_current().await.unwrap(), 4);
        assert_eq!(db.verify().await.records, 1);
    }
}

#[tokio::test]
async fn concurrent_appends_from_two_handles_make_one_valid_chain() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        // Two handles: two pools, two cached tips, as two medic processes.
        let a = db.open().await;
        let b = db.open().await;
        let mut tasks = Vec::new();
        for (h, store) in [("a", a.clone()), ("b", b.clone())] {
            for t in 0..3u64 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..15u64 {
                        if i % 5 == 4 {
                            s.append_step(
                                TS,
                                &[("step.one", "{}"), ("step.two", "{}")],
                                &[msg(&format!("{h}-{t}-{i}"))],
                                1000,
                            )
                            .await
                            .unwrap();
                        } else {
                            s.append_audit(
                                TS,
                                "probe.failed",
                                &format!("{{\"h\":\"{h}\",\"t\":{t},\"i\":{i}}}"),
                            )
                            .await
                            .unwrap();
                        }
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 2 handles × 3 tasks × (12 single + 3 steps of 2) records.
        let all = a.list_audit(0, 1000).await.unwrap();
        assert_eq!(all.len(), 2 * 3 * (12 + 3 * 2));
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.seq, i as u64 + 1);
        }
        assert_eq!(b.outbox_depth().await.unwrap(), 2 * 3 * 3);
        a.close().await;
        b.close().await;
        let report = db.verify().await;
        assert!(report.is_ok(), "{report:?}");
    }
}

#[tokio::test]
async fn racing_leaders_never_interleave_after_the_newer_one_wrote() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let old = db.open().await;
        let new = db.open().await;
        old.set_fence(Some(10));
        new.set_fence(Some(11));
        let writer = |s: medic_store::Store, who: &'static str| {
            tokio::spawn(async move {
                let mut accepted = 0u32;
                let mut refused = 0u32;
                for i in 0..40u32 {
                    match s.append_audit(TS, who, &format!("{{\"i\":{i}}}")).await {
                        Ok(_) => accepted += 1,
                        Err(StoreError::Fenced { .. }) => refused += 1,
                        Err(e) => panic!("{who}: {e}"),
                    }
                }
                (accepted, refused)
            })
        };
        let o = writer(old.clone(), "old");
        let n = writer(new.clone(), "new");
        let (o_ok, o_refused) = o.await.unwrap();
        let (n_ok, n_refused) = n.await.unwrap();
        assert_eq!((n_ok, n_refused), (40, 0));
        assert_eq!(o_ok + o_refused, 40);
        let all = new.list_audit(0, 1000).await.unwrap();
        assert_eq!(all.len() as u32, o_ok + n_ok);
        // The fencing property: once a record of the newer leader is in
        // the chain, no record of the older one follows it.
        let first_new = all.iter().position(|r| r.kind == "new").unwrap();
        assert!(
            all[first_new..].iter().all(|r| r.kind == "new"),
            "a stale write landed after the newer leader's first write"
        );
        assert_eq!(o_ok as usize, first_new);
        let report = db.verify().await;
        assert!(
            report.is_ok() && report.records == all.len() as u64,
            "{report:?}"
        );
    }
}

#[tokio::test]
async fn a_postgres_outage_is_an_error_and_the_chain_continues_after_it() {
    let Some(mut db) = TestDb::postgres().await else {
        return;
    };
    let store = db.open().await;
    store.set_fence(Some(1));
    store.append_audit(TS, "before", "{}").await.unwrap();
    db.pg_mut().unwrap().stop_now();
    // Unreachable: a typed database error (no panic, no partial write).
    let err = store.append_audit(TS, "during", "{}").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Database {
                op: "append_audit",
                ..
            }
        ),
        "{err}"
    );
    db.pg_mut().unwrap().restart().await;
    // The same handle reconnects and continues the chain.
    let rec = store.append_audit(TS, "after", "{}").await.unwrap();
    assert_eq!(rec.seq, 2);
    let kinds: Vec<String> = store
        .list_audit(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["before", "after"]);
    store.close().await;
    assert!(db.verify().await.is_ok());
}

#[tokio::test]
async fn several_instances_can_create_the_schema_at_once() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let target = db.target();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let t = target.clone();
                tokio::spawn(async move { medic_store::Store::open_target(&t).await })
            })
            .collect();
        for o in opens {
            let s = o.await.unwrap().unwrap();
            s.append_audit(TS, "opened", "{}").await.unwrap();
            s.close().await;
        }
        let report = db.verify().await;
        assert!(report.is_ok() && report.records == 4, "{report:?}");
    }
}

/// An HA member opens the store lazily (it starts while Postgres is down):
/// every operation is a typed database error until the server answers, then
/// `prepare` creates the tables and loads the tip and the chain continues.
#[tokio::test]
async fn a_lazy_postgres_handle_starts_while_the_server_is_down_and_prepares_later() {
    let Some(mut db) = TestDb::postgres().await else {
        return;
    };
    let medic_store::StoreTarget::Postgres(url) = db.target() else {
        panic!("not postgres");
    };
    // An existing chain of another writer.
    let first = db.open().await;
    first.append_audit(TS, "earlier", "{}").await.unwrap();
    first.close().await;
    db.pg_mut().unwrap().stop_now();
    let store = medic_store::Store::open_postgres_lazy(&url, std::time::Duration::from_millis(500))
        .unwrap();
    let err = store.prepare().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Database { op: "prepare", .. }),
        "{err}"
    );
    store.set_fence(Some(3));
    let err = store.claim_fence(3).await.unwrap_err();
    assert!(!err.is_fenced(), "{err}");
    db.pg_mut().unwrap().restart().await;
    store.prepare().await.unwrap();
    assert_eq!(store.audit_tip().await.0, 1);
    store.claim_fence(3).await.unwrap();
    let rec = store.append_audit(TS, "later", "{}").await.unwrap();
    assert_eq!(rec.seq, 2);
    store.close().await;
    assert!(db.verify().await.is_ok());
}
