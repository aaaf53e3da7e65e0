//! Locks and conflicts at binary level (issue 10; rows of
//! docs/failure-matrix.md): a real `medic run` with two services, `web`
//! depending on `db`, whose probes and actions are real commands.
//!
//! - incidents on a service and its dependency: web's heal waits (deferred
//!   `conflict_dependency`, visible in `medic locks` and `medic explain`)
//!   until db's action is over;
//! - lock timeout: web waits longer than `governance.locks.max_wait` and is
//!   escalated with `lock_timeout`;
//! - an admin force-releases db's lock over the CLI (audited), a viewer may
//!   not, and a second release finds no lock (E0131 / E0490).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{free_port, get_json, medic, token_as, wait_for, write, TestDir};

/// `db`'s fix takes `db_secs` seconds; web's lock wait is bounded by `max_wait`.
fn config(dir: &Path, api_port: u16, db_secs: u32, max_wait: &str) -> std::path::PathBuf {
    let d = dir.display();
    let text = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 2s }}
governance:
  gates: {{ max_blast_radius_ratio: 1.0 }}
  locks: {{ max_wait: {max_wait} }}
services:
  db:
    probes:
      up: {{ exec: {{ command: [sh, -c, "test ! -e {d}/db.down"], timeout: 2s }}, interval: 200ms }}
    actions:
      fix: {{ exec: {{ command: [sh, -c, "sleep {db_secs}; rm -f {d}/db.down"], timeout: 60s }} }}
    remediate:
      - when: {{ probe: up }}
        action: fix
  web:
    depends_on: [db]
    probes:
      up: {{ exec: {{ command: [sh, -c, "test ! -e {d}/web.down"], timeout: 2s }}, interval: 200ms }}
    actions:
      fix: {{ exec: {{ command: [sh, -c, "rm -f {d}/web.down"] }} }}
    remediate:
      - when: {{ probe: up }}
        action: fix
"#
    );
    write(dir, "medic.yaml", &text)
}

fn cli(api: &str, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = medic()
        .args(["--api", api])
        .args(args)
        .env("MEDIC_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every audit record, in order: (kind, payload).
fn audit(api: &str) -> Vec<(String, serde_json::Value)> {
    let page = get_json(&format!("{api}/api/v1/audit?limit=1000")).unwrap();
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["payload"].clone(),
            )
        })
        .collect()
}

fn position(
    records: &[(String, serde_json::Value)],
    f: impl Fn(&str, &serde_json::Value) -> bool,
) -> Option<usize> {
    records.iter().position(|(k, p)| f(k, p))
}

/// Both probes healthy once (their start phase over), then db, then web fail.
fn break_db_then_web(dir: &TestDir, api: &str) {
    wait_for("medic ready", Duration::from_secs(20), || {
        common::get_text(&format!("{api}/readyz")).filter(|t| t.trim() == "ok")
    });
    // A few probe rounds: each probe's start phase ends with its first success.
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(dir.path().join("db.down"), "").unwrap();
    wait_for("db's action to start", Duration::from_secs(20), || {
        position(&audit(api), |k, p| {
            k == "action.intent" && p["service"] == "db"
        })
    });
    std::fs::write(dir.path().join("web.down"), "").unwrap();
}

#[test]
fn a_dependent_waits_for_the_action_on_its_dependency() {
    let dir = TestDir::new();
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let cfg = config(dir.path(), api_port, 4, "5m");
    let _d = dir.spawn_daemon(&cfg, Some("aggressive"));
    break_db_then_web(&dir, &api);

    // web is deferred behind db's lock; `medic locks` shows both.
    let viewer = token_as(&api, "vera", "viewer");
    let deferred = wait_for("web deferred on db's lock", Duration::from_secs(20), || {
        let recs = audit(&api);
        position(&recs, |k, p| {
            k == "decision" && p["service"] == "web" && p["reason_code"] == "conflict_dependency"
        })
        .map(|i| recs[i].1.clone())
    });
    assert!(
        deferred["reason"]
            .as_str()
            .unwrap()
            .contains("service:db held by db"),
        "{deferred}"
    );
    let (code, out, err) = cli(&api, &viewer, &["locks"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("service:db  held by db"), "{out}");
    assert!(
        out.contains("waiting 1: web for service:web,incident:"),
        "{out}"
    );

    // db's action ends, then web's runs: never both at once.
    let recs = wait_for("web's action to run", Duration::from_secs(30), || {
        let recs = audit(&api);
        position(&recs, |k, p| k == "action.intent" && p["service"] == "web").map(|_| recs)
    });
    let db_done = position(&recs, |k, p| k == "action.outcome" && p["service"] == "db").unwrap();
    let web_start = position(&recs, |k, p| k == "action.intent" && p["service"] == "web").unwrap();
    assert!(db_done < web_start, "web started before db's action ended");
    let incident = deferred["incident"].as_str().unwrap().to_string();
    let (code, out, err) = cli(&api, &viewer, &["explain", &incident]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("(conflict_dependency)"), "{out}");
    let (code, out, _) = cli(&api, &viewer, &["locks", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["waiting"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_lock_wait_past_max_wait_escalates_and_an_admin_can_force_release() {
    let dir = TestDir::new();
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    // db's fix takes 30 s; web gives up waiting after 2 s.
    let cfg = config(dir.path(), api_port, 30, "2s");
    let _d = dir.spawn_daemon(&cfg, Some("aggressive"));
    break_db_then_web(&dir, &api);

    let escalated = wait_for(
        "web escalated with lock_timeout",
        Duration::from_secs(20),
        || {
            let recs = audit(&api);
            position(&recs, |k, p| {
                k == "incident.escalated" && p["service"] == "web"
            })
            .map(|i| recs[i].1.clone())
        },
    );
    assert_eq!(escalated["reason_code"], "lock_timeout", "{escalated}");
    let recs = audit(&api);
    assert!(
        position(&recs, |k, p| k == "action.intent" && p["service"] == "web").is_none(),
        "web must not run while db holds its lock"
    );

    // A viewer may not release; a bad key is a usage error; an admin may.
    let viewer = token_as(&api, "vera", "viewer");
    let admin = token_as(&api, "alice", "admin");
    let (code, _, err) = cli(
        &api,
        &viewer,
        &["locks", "release", "service:db", "--reason", "x"],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("E0403"), "{err}");
    let (code, _, err) = cli(&api, &admin, &["locks", "release", "db", "--reason", "x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("E0130"), "{err}");
    let (code, out, err) = cli(
        &api,
        &admin,
        &["locks", "release", "service:db", "--reason", "db fix hangs"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("lock service:db of db released"), "{out}");
    let recs = audit(&api);
    let i = position(&recs, |k, _| k == "lock.force_released").unwrap();
    assert_eq!(recs[i].1["by"], "alice");
    assert_eq!(recs[i].1["reason"], "db fix hangs");
    assert_eq!(recs[i].1["holder"], "db");
    let (code, _, err) = cli(
        &api,
        &admin,
        &["locks", "release", "service:db", "--reason", "again"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("E0131") && err.contains("E0490"), "{err}");
}

/// Two probes of one service fail at once (two failure signals, e.g. an
/// error-rate alert and a failing health check): one incident, one action
/// at a time. A forced action on the busy service is refused (`409`
/// `target_busy`), and the heal runs exactly once.
#[test]
fn two_failures_of_one_service_run_one_action_at_a_time() {
    let dir = TestDir::new();
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let d = dir.path().display();
    let text = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 2s }}
services:
  web:
    probes:
      health: {{ exec: {{ command: [sh, -c, "test ! -e {d}/health.down"], timeout: 2s }}, interval: 200ms }}
      errors: {{ exec: {{ command: [sh, -c, "test ! -e {d}/errors.down"], timeout: 2s }}, interval: 200ms }}
    actions:
      fix: {{ exec: {{ command: [sh, -c, "echo run >> {d}/runs; sleep 3; rm -f {d}/health.down {d}/errors.down"], timeout: 60s }} }}
    remediate:
      - when: {{ probe: health }}
        action: fix
      - when: {{ probe: errors }}
        action: fix
"#
    );
    let cfg = write(dir.path(), "medic.yaml", &text);
    let _d = dir.spawn_daemon(&cfg, Some("aggressive"));
    wait_for("medic ready", Duration::from_secs(20), || {
        common::get_text(&format!("{api}/readyz")).filter(|t| t.trim() == "ok")
    });
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(dir.path().join("health.down"), "").unwrap();
    std::fs::write(dir.path().join("errors.down"), "").unwrap();
    wait_for("the heal to start", Duration::from_secs(20), || {
        position(&audit(&api), |k, p| {
            k == "action.intent" && p["service"] == "web"
        })
    });
    let admin = token_as(&api, "alice", "admin");
    let status = common::post_json_as(
        &format!("{api}/api/v1/actions/force"),
        &serde_json::json!({"service": "web", "action": "fix", "reason": "second opinion"}),
        &admin,
    );
    assert_eq!(status, 409, "a forced action on a busy service is refused");
    wait_for("the incident to resolve", Duration::from_secs(30), || {
        position(&audit(&api), |k, p| {
            k == "incident.resolved" && p["service"] == "web"
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let recs = audit(&api);
    let count = |kind: &str| {
        recs.iter()
            .filter(|(k, p)| k == kind && p["service"] == "web")
            .count()
    };
    assert_eq!(count("incident.opened"), 1, "{recs:?}");
    assert_eq!(count("action.intent"), 1, "{recs:?}");
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the heal ran {runs:?}");
    let rejected = recs
        .iter()
        .find(|(k, _)| k == "operator.rejected")
        .map(|(_, p)| p.clone())
        .unwrap();
    assert_eq!(rejected["reason_code"], "target_busy", "{rejected}");
}
