//! Locks and conflicts in the engine (issue 10): scenario tables over
//! several services with `depends_on` edges.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;
use medic_core::*;

/// `web` → `db` and `web` → `cache` (web depends on both), and a lonely `batch`.
fn fleet(max_wait: Duration, max_waiters: usize) -> Engine {
    let services = ["web", "db", "cache", "batch"]
        .into_iter()
        .map(|n| {
            let mut s = web_service(policy());
            s.name = n.into();
            s
        })
        .collect();
    let mut governance = GovernanceConfig {
        topology: Topology::new([
            ("web".to_string(), "db".to_string()),
            ("web".to_string(), "cache".to_string()),
        ]),
        ..GovernanceConfig::default()
    };
    // The fleet-wide in-flight share (gate 16) stays out of the way.
    governance.gates.max_blast_radius = 1.0;
    governance.locks.max_wait = max_wait;
    governance.locks.max_waiters = max_waiters;
    engine_of(7, Mode::Aggressive, services, governance)
}

/// Three failing probes of `svc` from `t` seconds on, 1 s apart.
fn fail(svc: &str, t: u64) -> String {
    (0..3)
        .map(|i| format!("{}s probe {svc} healthz fail exited\n", t + i))
        .collect()
}

/// The trace of `script`: every notice and command, by service where one applies.
fn trace(mut e: Engine, script: &str) -> (Engine, Vec<String>) {
    let mut out = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let at = step(&mut e, line);
        while let Some(n) = e.poll_notice() {
            let code = notice_field(&n, "reason_code").map_or(String::new(), |c| format!(" {c}"));
            let verdict = notice_field(&n, "verdict").map_or(String::new(), |c| format!(" {c}"));
            if matches!(
                n.kind(),
                NoticeKind::Decision
                    | NoticeKind::IncidentEscalated
                    | NoticeKind::LockForceReleased
                    | NoticeKind::LockReclaimed
                    | NoticeKind::ActionIntent
            ) {
                let svc = match &n {
                    Notice::Decision { service, .. }
                    | Notice::IncidentEscalated { service, .. }
                    | Notice::ActionIntent { service, .. } => service.clone(),
                    Notice::LockForceReleased { key, .. } | Notice::LockReclaimed { key, .. } => {
                        key.clone()
                    }
                    _ => String::new(),
                };
                out.push(format!("{at} {} {svc}{verdict}{code}", n.kind().as_str()));
            }
        }
        while let Some(c) = e.poll_command() {
            if let Command::RunAction(r) = c {
                out.push(format!("{at} run {} {}", r.id, r.service));
            }
        }
    }
    (e, out)
}

#[test]
fn an_action_on_a_dependency_serialises_the_dependent() {
    let script = format!("{}{}5s outcome 1 ok\n", fail("db", 0), fail("web", 1));
    let (e, got) = trace(fleet(Duration::from_secs(300), 8), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=3s decision web deferred conflict_dependency",
        "t=5s action.intent web",
        "t=5s run act-2 web",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
    // explain names the reason and the lock in the way.
    let ex = e.explain("inc-t-2").unwrap();
    let d = ex
        .decisions
        .iter()
        .find(|d| d.reason_code == Some(ReasonCode::ConflictDependency))
        .unwrap();
    assert!(
        d.reason
            .contains("conflict_dependency (service:db held by db)"),
        "{}",
        d.reason
    );
    assert_eq!(e.locks().held().len(), 2, "{:?}", e.locks().held());
    assert!(e.locks().held().iter().all(|l| l.holder == "web"));
}

#[test]
fn overlapping_blast_radius_and_an_independent_service() {
    // db and cache share a dependent (web): their blast radii overlap.
    let script = format!("{}{}{}", fail("db", 0), fail("cache", 1), fail("batch", 2));
    let (_, got) = trace(fleet(Duration::from_secs(300), 8), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=3s decision cache deferred conflict_blast_radius",
        "t=4s action.intent batch",
        "t=4s run act-2 batch",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn a_waiter_past_max_wait_escalates_with_lock_timeout() {
    let script = format!("{}{}62s tick\n63s tick\n", fail("db", 0), fail("web", 1));
    let (e, got) = trace(fleet(Duration::from_secs(60), 8), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=3s decision web deferred conflict_dependency",
        "t=63s incident.escalated web lock_timeout",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
    assert_eq!(e.phase("web"), Some(Phase::ManualIntervention));
    assert_eq!(e.locks().waiting().count(), 0);
}

#[test]
fn a_full_wait_queue_escalates_with_lock_queue_full() {
    let script = format!("{}{}{}", fail("db", 0), fail("web", 1), fail("cache", 2));
    let (_, got) = trace(fleet(Duration::from_secs(300), 1), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=3s decision web deferred conflict_dependency",
        "t=4s incident.escalated cache lock_queue_full",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn an_admin_force_releases_a_lock_and_the_waiter_goes() {
    let script = format!(
        "{}{}10s release service:db executor hung\n11s release service:db again\n",
        fail("db", 0),
        fail("web", 1)
    );
    let (e, got) = trace(fleet(Duration::from_secs(300), 8), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=3s decision web deferred conflict_dependency",
        "t=10s lock.force_released service:db",
        "t=10s action.intent web",
        "t=10s run act-2 web",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
    // The second release finds no lock: refused, recorded, nothing changes.
    let r = {
        let mut e = e;
        e.operate(
            MonoTime(12_000),
            &Actor::new("alice", Role::Admin),
            OperatorCommand::ReleaseLock {
                key: LockKey::service("db"),
                reason: "x".into(),
            },
        )
    };
    assert_eq!(r.unwrap_err().code(), OperatorErrorCode::LockNotHeld);
}

#[test]
fn releasing_a_lock_needs_the_admin_role_and_a_reason() {
    let mut e = fleet(Duration::from_secs(300), 8);
    feed(&mut e, &fail("db", 0));
    let cmd = || OperatorCommand::ReleaseLock {
        key: LockKey::service("db"),
        reason: "stuck".into(),
    };
    let r = e.operate(MonoTime(5_000), &Actor::new("bob", Role::Approver), cmd());
    assert!(
        matches!(
            r,
            Err(OperatorError::Forbidden {
                needed: Role::Admin,
                ..
            })
        ),
        "{r:?}"
    );
    let r = e.operate(
        MonoTime(5_000),
        &Actor::new("alice", Role::Admin),
        OperatorCommand::ReleaseLock {
            key: LockKey::service("db"),
            reason: " ".into(),
        },
    );
    assert_eq!(r, Err(OperatorError::ReasonRequired));
    assert_eq!(e.locks().held().len(), 2);
}

#[test]
fn an_expired_lock_is_reclaimed_and_audited() {
    // db's action never reports back; its locks outlive the 300 s TTL.
    let script = format!("{}301s tick\n302s tick\n", fail("db", 0));
    let (e, got) = trace(fleet(Duration::from_secs(300), 8), &script);
    let want = [
        "t=2s action.intent db",
        "t=2s run act-1 db",
        "t=302s lock.reclaimed service:db",
        "t=302s lock.reclaimed incident:inc-t-1",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
    assert!(e.locks().held().is_empty());
}

#[test]
fn locks_survive_the_snapshot_and_in_flight_ones_are_released_on_restore() {
    let mut e = fleet(Duration::from_secs(300), 8);
    feed(&mut e, &format!("{}{}", fail("db", 0), fail("web", 1)));
    assert_eq!(e.locks().held().len(), 2);
    assert_eq!(e.locks().waiting().count(), 1);
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    assert!(json.contains("\"holder\":\"db\""), "{json}");
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    let mut back = fleet(Duration::from_secs(300), 8);
    back.restore(snap, Duration::from_secs(5)).unwrap();
    // Restored as saved, on the new clock...
    assert_eq!(back.locks().held().len(), 2);
    assert_eq!(back.locks().waiting().count(), 1);
    // ...then db's action, reconciled (never re-run), gives its locks up
    // and web, first in the queue, runs.
    back.handle_timeout(MonoTime(1_000));
    let runs: Vec<String> = std::iter::from_fn(|| back.poll_command())
        .filter_map(|c| match c {
            Command::RunAction(r) => Some(r.service),
            _ => None,
        })
        .collect();
    assert_eq!(runs, ["web"]);
    assert!(back.locks().held().iter().all(|l| l.holder == "web"));
}

#[test]
fn a_snapshot_from_before_locks_restores_with_an_empty_table() {
    let mut e = fleet(Duration::from_secs(300), 8);
    feed(&mut e, &fail("db", 0));
    let mut v = serde_json::to_value(e.snapshot()).unwrap();
    assert!(v.as_object_mut().unwrap().remove("locks").is_some());
    let snap: Snapshot = serde_json::from_value(v).unwrap();
    let mut back = fleet(Duration::from_secs(300), 8);
    back.restore(snap, Duration::from_secs(1)).unwrap();
    assert!(back.locks().held().is_empty());
    assert_eq!(back.locks().config().ttl, Duration::from_secs(300));
}
