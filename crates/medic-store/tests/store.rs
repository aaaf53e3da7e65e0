#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The store's behaviour, run against SQLite and Postgres alike
//! (`common::TestDb::all`): every test body runs once per backend.

mod common;

use common::TestDb;
use medic_store::{
    compute_hash, verify_audit, IncidentRecord, Store, StoreError, TimelineEntry, GENESIS_HASH,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

fn ts(i: u64) -> String {
    format!("2026-01-01T00:00:{:02}Z", i % 60)
}

async fn fill(db: &TestDb, n: u64) -> Store {
    let store = db.open().await;
    for i in 1..=n {
        store
            .append_audit(&ts(i), "action.restart", &format!("{{\"n\":{i}}}"))
            .await
            .unwrap();
    }
    store
}

#[tokio::test]
async fn append_builds_hash_chain_with_documented_formula() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let r1 = store
            .append_audit("2026-01-01T00:00:00Z", "start", "{}")
            .await
            .unwrap();
        assert_eq!(r1.seq, 1);
        assert_eq!(r1.prev_hash, GENESIS_HASH);
        assert_eq!(GENESIS_HASH.len(), 64);
        // Independently computed: sha256 of the plain concatenation.
        use sha2::Digest;
        let manual = hex::encode(sha2::Sha256::digest(
            format!("{GENESIS_HASH}12026-01-01T00:00:00Zstart{{}}").as_bytes(),
        ));
        assert_eq!(r1.hash, manual);
        let r2 = store
            .append_audit("2026-01-01T00:00:01Z", "stop", r#"{"a":1}"#)
            .await
            .unwrap();
        assert_eq!(r2.seq, 2);
        assert_eq!(r2.prev_hash, r1.hash);
        assert_eq!(
            r2.hash,
            compute_hash(&r1.hash, 2, "2026-01-01T00:00:01Z", "stop", r#"{"a":1}"#)
        );
        let listed = store.list_audit(0, 10).await.unwrap();
        assert_eq!(listed, vec![r1.clone(), r2.clone()]);
        assert_eq!(store.list_audit(1, 10).await.unwrap(), vec![r2]);
        assert_eq!(store.list_audit(0, 1).await.unwrap(), vec![r1]);
        assert!(store.list_audit(2, 10).await.unwrap().is_empty());
        assert!(store.list_audit(u64::MAX, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn database_is_wal_and_chain_continues_after_reopen() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = fill(&db, 3).await;
        let tip = store.audit_tip().await;
        assert_eq!(tip.0, 3);
        store.close().await;
        drop(store);

        let store = db.open().await;
        assert_eq!(store.audit_tip().await, tip);
        let r4 = store
            .append_audit(&ts(4), "after.restart", "[1,2]")
            .await
            .unwrap();
        assert_eq!(r4.seq, 4);
        assert_eq!(r4.prev_hash, tip.1);
        store.close().await;

        let report = db.verify().await;
        assert_eq!(report.records, 4);
        assert_eq!(report.first_bad, None);
        assert!(report.is_ok());

        if !db.is_postgres() {
            let opts = SqliteConnectOptions::new().filename(db.path());
            let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }
}

#[tokio::test]
async fn concurrent_appends_are_serialized_into_one_chain() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u64 {
                    s.append_audit(&ts(i), "probe.failed", &format!("{{\"t\":{t},\"i\":{i}}}"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = store.list_audit(0, 1000).await.unwrap();
        assert_eq!(all.len(), 80);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.seq, i as u64 + 1);
        }
        store.close().await;
        let report = db.verify().await;
        assert_eq!(report.records, 80);
        assert!(report.is_ok(), "{report:?}");
    }
}

#[tokio::test]
async fn invalid_input_is_rejected_without_consuming_a_seq() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        let cases = [
            ("not a time", "k", "{}", "ts"),
            ("2026-01-01T00:00:00+02:00", "k", "{}", "ts"),
            ("2026-01-01T00:00:00Z", "", "{}", "kind"),
            ("2026-01-01T00:00:00Z", "has space", "{}", "kind"),
            ("2026-01-01T00:00:00Z", "k", "{not json", "payload"),
            ("2026-01-01T00:00:00Z", "k", "", "payload"),
        ];
        for (t, k, p, field) in cases {
            match store.append_audit(t, k, p).await {
                Err(StoreError::InvalidInput { op, field: f, .. }) => {
                    assert_eq!(op, "append_audit");
                    assert_eq!(f, field);
                }
                other => panic!("expected InvalidInput for {field}, got {other:?}"),
            }
        }
        let r = store
            .append_audit("2026-01-01T00:00:00Z", "ok", "null")
            .await
            .unwrap();
        assert_eq!(r.seq, 1);
    }
}

#[tokio::test]
async fn verify_detects_edited_row() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 5).await.close().await;
        db.tamper(r#"UPDATE audit_log SET payload = '{"n":999}' WHERE seq = 3"#)
            .await;
        let report = db.verify().await;
        assert_eq!(report.records, 5);
        let bad = report.first_bad.expect("edit must be detected");
        assert_eq!(bad.seq, 3);
        assert!(bad.reason.contains("hash mismatch"), "{}", bad.reason);
    }
}

#[tokio::test]
async fn verify_detects_edit_with_recomputed_hash_at_next_record() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        // An attacker who recomputes the edited row's hash breaks the link to the next row.
        let store = fill(&db, 5).await;
        let rows = store.list_audit(0, 10).await.unwrap();
        store.close().await;
        let r3 = &rows[2];
        let forged = compute_hash(&r3.prev_hash, 3, &r3.ts, &r3.kind, r#"{"n":0}"#);
        db.tamper(&format!(
            r#"UPDATE audit_log SET payload = '{{"n":0}}', hash = '{forged}' WHERE seq = 3"#
        ))
        .await;
        let bad = db.verify().await.first_bad.unwrap();
        assert_eq!(bad.seq, 4);
        assert!(bad.reason.contains("prev_hash"), "{}", bad.reason);
    }
}

#[tokio::test]
async fn verify_detects_deleted_row() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 5).await.close().await;
        db.tamper("DELETE FROM audit_log WHERE seq = 3").await;
        let report = db.verify().await;
        assert_eq!(report.records, 4);
        let bad = report.first_bad.expect("deletion must be detected");
        assert_eq!(bad.seq, 3);
        assert!(bad.reason.starts_with("missing"), "{}", bad.reason);
        assert!(bad.reason.contains("seq 4"), "{}", bad.reason);
    }
}

#[tokio::test]
async fn verify_detects_deleted_first_row() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 3).await.close().await;
        db.tamper("DELETE FROM audit_log WHERE seq = 1").await;
        let bad = db.verify().await.first_bad.unwrap();
        assert_eq!(bad.seq, 1);
        assert!(bad.reason.starts_with("missing"), "{}", bad.reason);
    }
}

#[tokio::test]
async fn verify_detects_reordered_rows() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 5).await.close().await;
        // Swap the seq numbers of records 2 and 4.
        db.tamper(
            "UPDATE audit_log SET seq = 100 WHERE seq = 2;\
         UPDATE audit_log SET seq = 2 WHERE seq = 4;\
         UPDATE audit_log SET seq = 4 WHERE seq = 100;",
        )
        .await;
        let report = db.verify().await;
        assert_eq!(report.records, 5);
        let bad = report.first_bad.expect("reorder must be detected");
        assert_eq!(bad.seq, 2);
        assert!(bad.reason.contains("prev_hash"), "{}", bad.reason);
    }
}

#[tokio::test]
async fn verify_detects_swapped_row_contents() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 4).await.close().await;
        // Swap the payloads of 3 and 4, keeping the hashes in place.
        db.tamper("UPDATE audit_log SET payload = (SELECT payload FROM audit_log WHERE seq = 4) WHERE seq = 3;\
         UPDATE audit_log SET payload = '{\"n\":3}' WHERE seq = 4;",
    )
    .await;
        let bad = db.verify().await.first_bad.unwrap();
        assert_eq!(bad.seq, 3);
    }
}

#[tokio::test]
async fn verify_reports_null_and_non_text_columns_without_failing() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        fill(&db, 3).await.close().await;
        db.tamper("UPDATE audit_log SET kind = NULL WHERE seq = 2")
            .await;
        let bad = db.verify().await.first_bad.unwrap();
        assert_eq!(bad.seq, 2);
        assert!(bad.reason.contains("kind"), "{}", bad.reason);

        db.tamper("UPDATE audit_log SET kind = 'x', ts = 12345 WHERE seq = 2")
            .await;
        let bad = db.verify().await.first_bad.unwrap();
        assert_eq!(bad.seq, 2);
    }
}

#[tokio::test]
async fn verify_empty_database_is_ok_and_missing_file_is_not_created() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        db.open().await.close().await;
        let report = db.verify().await;
        assert_eq!(report.records, 0);
        assert!(report.is_ok());
    }
}

#[tokio::test]
async fn verify_of_a_missing_store_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    match verify_audit(&missing).await {
        Err(e @ StoreError::NotFound { .. }) => {
            assert!(e.to_string().contains("does not exist"), "{e}");
            assert!(e.to_string().contains("nope.db"), "{e}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!missing.exists(), "verify must not create the file");

    // Postgres: a database medic never opened has no audit_log; verifying
    // it is an error and (read-only) creates no table.
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let err = db.try_verify().await.unwrap_err();
    assert!(err.to_string().contains("verify_audit"), "{err}");
    assert!(err.to_string().contains("audit_log"), "{err}");
    assert!(db.try_verify().await.is_err(), "verify created the table");
    // And a server that is not there is a clean error, not a hang or panic.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/medic",
        db.pg().unwrap().port()
    );
    drop(db);
    let err = medic_store::verify_audit_postgres(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Database {
                op: "verify_audit",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn verify_of_non_database_file_errors_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(
        &path,
        b"this is definitely not an sqlite database, just text",
    )
    .unwrap();
    let err = verify_audit(&path).await.unwrap_err();
    assert!(err.to_string().contains("verify_audit"), "{err}");
}

#[tokio::test]
async fn verify_does_not_write_to_the_database() {
    // SQLite: the file's bytes. (Postgres verifies in read-only
    // transactions; `verify_of_a_missing_store_creates_nothing`.)
    let db = TestDb::sqlite();
    let path = db.path();
    fill(&db, 3).await.close().await;
    // Fold the WAL into the main file first so the bytes are stable.
    db.tamper("PRAGMA wal_checkpoint(TRUNCATE)").await;
    let before = std::fs::read(&path).unwrap();
    let report = verify_audit(&path).await.unwrap();
    assert_eq!(report.records, 3);
    let after = std::fs::read(&path).unwrap();
    assert!(after == before, "verify_audit modified the database file");
}

/// A healed incident of `service` closed at `at`, with `diagnosis`.
fn closed_incident(
    id: &str,
    at: &str,
    service: &str,
    trigger: &str,
    diagnosis: Option<medic_store::IncidentCause>,
) -> IncidentRecord {
    let mut r = incident(id, at);
    r.service = service.into();
    r.trigger = trigger.into();
    r.state = "resolved".into();
    r.closed_at = Some(at.into());
    r.outcome = Some("healed".into());
    r.diagnosis = diagnosis;
    r
}

fn incident(id: &str, opened_at: &str) -> IncidentRecord {
    IncidentRecord {
        id: id.to_string(),
        service: "web".into(),
        state: "open".into(),
        trigger: "healthz failed 3 times".into(),
        opened_at: opened_at.into(),
        updated_at: opened_at.into(),
        closed_at: None,
        outcome: None,
        summary: "web is unhealthy".into(),
        merged: Vec::new(),
        diagnosis: None,
        timeline: vec![TimelineEntry {
            ts: opened_at.into(),
            kind: "opened".into(),
            message: "probe healthz failed".into(),
        }],
    }
}

#[tokio::test]
async fn incidents_upsert_get_list_and_survive_reopen() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        assert_eq!(store.get_incident("a").await.unwrap(), None);
        assert!(store.list_incidents(10).await.unwrap().is_empty());

        let a = incident("a", "2026-01-01T00:00:00Z");
        let b = incident("b", "2026-01-02T00:00:00Z");
        let c = incident("c", "2026-01-03T00:00:00Z");
        for i in [&b, &a, &c] {
            store.upsert_incident(i).await.unwrap();
        }
        let ids: Vec<String> = store
            .list_incidents(10)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(store.list_incidents(2).await.unwrap().len(), 2);

        let mut a2 = a.clone();
        a2.state = "resolved".into();
        a2.updated_at = "2026-01-01T00:05:00Z".into();
        a2.closed_at = Some("2026-01-01T00:05:00Z".into());
        a2.outcome = Some("restarted".into());
        // Victims merged into it (issue 9), in the order they joined.
        a2.merged = vec!["db".into(), "api".into()];
        a2.timeline.push(TimelineEntry {
            ts: "2026-01-01T00:05:00Z".into(),
            kind: "action".into(),
            message: "restart succeeded; \"quoted\" text ✓".into(),
        });
        store.upsert_incident(&a2).await.unwrap();
        assert_eq!(store.get_incident("a").await.unwrap(), Some(a2.clone()));
        assert_eq!(store.list_incidents(10).await.unwrap().len(), 3);
        store.close().await;

        let store = db.open().await;
        assert_eq!(store.get_incident("a").await.unwrap(), Some(a2));
        assert_eq!(store.get_incident("c").await.unwrap(), Some(c));

        let err = store
            .upsert_incident(&incident("", "2026-01-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { field: "id", .. }));
    }
}

#[tokio::test]
async fn corrupt_timeline_is_an_error_not_a_panic() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        store
            .upsert_incident(&incident("x", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        db.tamper("UPDATE incidents SET timeline = 'not json' WHERE id = 'x'")
            .await;
        let err = store.get_incident("x").await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt {
                    op: "get_incident",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("get_incident"));
    }
}

#[tokio::test]
async fn tokens_store_only_a_hash_and_revoke() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        use medic_core::Role;
        let store = db.open().await;
        let t = store
            .create_token("alice", Role::Approver, "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        assert!(
            t.starts_with(medic_store::TOKEN_PREFIX) && t.len() == 6 + 64,
            "{t}"
        );
        let who = store.authenticate(&t).await.unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("alice", Role::Approver));
        assert!(store.authenticate("medic_nope").await.unwrap().is_none());
        // One active token per name; upper case is refused, not folded.
        let e = store
            .create_token("alice", Role::Admin, "2026-01-01T00:00:00Z")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already has an active token"), "{e}");
        let e = store
            .create_token("ALICE", Role::Admin, "2026-01-01T00:00:00Z")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("[a-z0-9._@-]"), "{e}");
        // The token itself is nowhere in the file.
        store.close().await;
        let store = db.open().await;
        let hex = &t[6..];
        for f in files_under(db.files_dir()) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
                "{} holds the token",
                f.display()
            );
        }
        assert_eq!(store.active_tokens().await.unwrap(), 1);
        assert!(store
            .revoke_token("alice", "2026-01-02T00:00:00Z")
            .await
            .unwrap());
        assert!(!store
            .revoke_token("alice", "2026-01-02T00:00:00Z")
            .await
            .unwrap());
        assert!(store.authenticate(&t).await.unwrap().is_none());
        assert_eq!(store.active_tokens().await.unwrap(), 0);
        let list = store.list_tokens().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].revoked_at.as_deref(), Some("2026-01-02T00:00:00Z"));
        // A revoked name can get a new token.
        store
            .create_token("alice", Role::Viewer, "2026-01-03T00:00:00Z")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pattern_outcomes_accumulate_and_survive_a_reopen() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let s = db.open().await;
        assert!(s.pattern_outcomes().await.unwrap().is_empty());
        s.record_pattern_outcome("dependency_slow", "restart", true)
            .await
            .unwrap();
        s.record_pattern_outcome("dependency_slow", "restart", true)
            .await
            .unwrap();
        s.record_pattern_outcome("dependency_slow", "restart", false)
            .await
            .unwrap();
        s.record_pattern_outcome("crash", "restart", false)
            .await
            .unwrap();
        s.close().await;
        let s = db.open().await;
        assert_eq!(
            s.pattern_outcomes().await.unwrap(),
            vec![
                ("crash".to_string(), "restart".to_string(), 0, 1),
                ("dependency_slow".to_string(), "restart".to_string(), 2, 1),
            ]
        );
    }
}

#[tokio::test]
async fn similar_incidents_are_closed_ones_of_the_same_service_or_trigger() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let s = db.open().await;
        let closed = |id: &str, at: &str, service: &str, trigger: &str| {
            closed_incident(id, at, service, trigger, None)
        };
        let now = incident("inc-now", "2026-01-03T00:00:00Z");
        for r in [
            closed("a", "2026-01-01T00:00:00Z", "web", "healthz failed 3 times"),
            closed("b", "2026-01-02T00:00:00Z", "web", "other"),
            closed("c", "2026-01-02T12:00:00Z", "db", "healthz failed 3 times"),
            closed("d", "2026-01-02T13:00:00Z", "db", "other"),
            incident("open-one", "2026-01-02T14:00:00Z"),
            now.clone(),
        ] {
            s.upsert_incident(&r).await.unwrap();
        }
        let ids: Vec<String> = s
            .similar_incidents(&now, 5)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a", "c", "b"]);
    }
}

/// Incidents diagnosed with the same cause (service and pattern) come first,
/// whatever their own service and trigger; the cause is kept with the
/// incident, updated by a later upsert, and absent when never diagnosed.
#[tokio::test]
async fn similar_incidents_with_the_same_diagnosed_cause_come_first() {
    use medic_store::IncidentCause;
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let s = db.open().await;
        let cause = |service: &str, pattern: &str| {
            Some(IncidentCause {
                service: service.into(),
                pattern: pattern.into(),
            })
        };
        let closed = closed_incident;
        let mut now = incident("inc-now", "2026-01-05T00:00:00Z");
        now.diagnosis = cause("db", "dependency_slow");
        for r in [
            // Same service and trigger, no diagnosis.
            closed(
                "a",
                "2026-01-04T00:00:00Z",
                "web",
                "healthz failed 3 times",
                None,
            ),
            // Same cause, seen on another service with another trigger.
            closed(
                "b",
                "2026-01-01T00:00:00Z",
                "api",
                "work slow",
                cause("db", "dependency_slow"),
            ),
            // Same cause service, another pattern: ranked as its service.
            closed(
                "c",
                "2026-01-03T00:00:00Z",
                "web",
                "other",
                cause("db", "crash"),
            ),
            // Nothing in common.
            closed(
                "d",
                "2026-01-04T12:00:00Z",
                "api",
                "other",
                cause("api", "memory_leak"),
            ),
            // Diagnosed first as something else, then as the same cause.
            closed(
                "e",
                "2026-01-02T00:00:00Z",
                "db",
                "work failing",
                cause("db", "crash"),
            ),
            closed(
                "e",
                "2026-01-02T00:00:00Z",
                "db",
                "work failing",
                cause("db", "dependency_slow"),
            ),
            now.clone(),
        ] {
            s.upsert_incident(&r).await.unwrap();
        }
        let similar = s.similar_incidents(&now, 10).await.unwrap();
        let ids: Vec<&str> = similar.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["e", "b", "a", "c"]);
        assert_eq!(similar[0].diagnosis, cause("db", "dependency_slow"));
        assert_eq!(similar[2].diagnosis, None);
        let got = s.get_incident("inc-now").await.unwrap().unwrap();
        assert_eq!(got.diagnosis, cause("db", "dependency_slow"));
        let listed = s.list_incidents(10).await.unwrap();
        assert_eq!(
            listed.iter().find(|r| r.id == "d").unwrap().diagnosis,
            cause("api", "memory_leak")
        );
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    assert!(!out.is_empty(), "no files under {}", dir.display());
    out
}
