//! Issue 9: an accepted candidate pattern is loaded into the running
//! ranking as a pattern, at start and when a human accepts one while medic
//! runs (`medic patterns accept`); a candidate not accepted is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::{free_port, wait_for, write, TestDir};

fn candidate(service: &str, status: &str) -> medic_store::CandidatePattern {
    medic_store::CandidatePattern {
        id: 0,
        incident: format!("inc-{service}"),
        service: service.into(),
        trigger: "hz slow".into(),
        action: "restart".into(),
        by: "alice".into(),
        note: format!("{service} needed a restart"),
        status: status.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[test]
fn accepted_candidates_are_loaded_at_start_and_on_accept() {
    let dir = TestDir::new();
    let api_port = free_port();
    let cfg = write(
        dir.path(),
        "medic.yaml",
        &format!(
            r#"listen: 127.0.0.1:{api_port}
database: medic.db
services:
  web:
    depends_on: [api]
    probes: {{ hz: {{ http: {{ url: "http://127.0.0.1:1/healthz" }}, interval: 1s }} }}
  api:
    probes: {{ hz: {{ http: {{ url: "http://127.0.0.1:1/healthz" }}, interval: 1s }} }}
"#
        ),
    );
    let db = dir.path().join("medic.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (accepted, pending) = rt.block_on(async {
        let s = medic_store::Store::open(&db).await.unwrap();
        let a = s
            .add_candidate_pattern(&candidate("api", "candidate"))
            .await
            .unwrap();
        assert!(s.set_candidate_status(a, "accepted").await.unwrap());
        let p = s
            .add_candidate_pattern(&candidate("web", "candidate"))
            .await
            .unwrap();
        s.close().await;
        (a, p)
    });
    let log = || std::fs::read_to_string(dir.path().join("medic.stderr")).unwrap_or_default();
    let _d = dir.spawn_daemon(&cfg, None);

    // At start: only the accepted one.
    let at_start = format!("accepted candidate patterns loaded: [candidate-{accepted}]");
    wait_for(
        "the accepted pattern loaded at start",
        Duration::from_secs(30),
        || log().contains(&at_start).then_some(()),
    );
    assert!(
        !log().contains(&format!("candidate-{pending}")),
        "{}",
        log()
    );

    // A human accepts the other one while medic runs: loaded too.
    let out = assert_cmd::Command::cargo_bin("medic")
        .unwrap()
        .args(["patterns", "accept", &pending.to_string(), "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let both =
        format!("accepted candidate patterns loaded: [candidate-{accepted}, candidate-{pending}]");
    wait_for(
        "the newly accepted pattern loaded",
        Duration::from_secs(30),
        || log().contains(&both).then_some(()),
    );
}
