//! medic on a Postgres store (`store: { url: postgres://… }`): the daemon,
//! `medic token` and `medic audit verify --url` all use the shared database,
//! which a Postgres server of the test's own holds (Debian `postgresql`,
//! started on a loopback port, stopped on drop; fails under CI=1 without it).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::pg;
use common::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_daemon_keeps_its_chain_in_postgres_and_audit_verify_checks_it() {
    let rt = rt();
    let Some(server) = rt.block_on(pg::PgServer::start()) else {
        return;
    };
    let url = server.url();
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = write(
        dir.path(),
        "medic.yaml",
        &format!(
            r#"mode: dry-run
listen: 127.0.0.1:{aport}
store:
  url: {url}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{fport}"]
      stop_grace: 2s
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{fport}/healthz", timeout: 1s }}
        interval: 250ms
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: healthz }}
        action: restart
"#,
            exe = exe.display()
        ),
    );
    let daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    let health = format!("http://127.0.0.1:{fport}/healthz");
    wait_for("the fixture", Duration::from_secs(20), || get_json(&health));
    // medic's own probe has seen it healthy (its start phase is over).
    probe_phase(fport);
    kill_fixture(&health);
    // The incident is written to Postgres and served from there.
    let inc = wait_for("a would-act incident", Duration::from_secs(20), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["outcome"] == "would-act")
            .cloned()
    });
    drop(daemon);
    assert!(
        !dir.path().join("medic.db").exists(),
        "a SQLite file was created although store.url is set"
    );
    let (records, stored) = rt.block_on(async {
        let s = medic_store::Store::open_postgres(&url).await.unwrap();
        let n = s.list_audit(0, 100_000).await.unwrap();
        let i = s.get_incident(inc["id"].as_str().unwrap()).await.unwrap();
        s.close().await;
        (n, i)
    });
    assert!(stored.is_some(), "incident {} not in Postgres", inc["id"]);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    // The test's reader token, made with `medic token create` before the
    // daemon started, is audited in the same chain.
    assert!(
        kinds.first() == Some(&"token.created")
            && kinds.get(1) == Some(&"medic.started")
            && kinds.last() == Some(&"medic.stopped"),
        "{kinds:?}"
    );
    let created: serde_json::Value = serde_json::from_str(&records[0].payload).unwrap();
    assert_eq!(created["name"], "test-reader", "{created}");
    assert_eq!(created["via"], "cli", "{created}");

    let ok = medic()
        .args(["audit", "verify", "--url", &url])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!("audit chain ok: {} records", records.len())
    );

    // The learning commands read the same store.
    let out = medic()
        .args(["patterns", "candidates", "--url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ID "));
    let out = medic()
        .args(["patterns", "accept", "7", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no candidate 7: E0062");

    // An edited row is named by seq, as with SQLite.
    rt.block_on(server.exec("UPDATE audit_log SET payload = '{\"x\":1}' WHERE seq = 2"));
    let bad = medic()
        .args(["audit", "verify", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("E0010") && err.contains("seq 2"), "{err}");

    // A bad URL: E0100, exit 2, the password not printed.
    let out = medic()
        .args(["audit", "verify", "--url", "mysql://u:hunter2@db/medic"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E0100") && !err.contains("hunter2"), "{err}");

    // A store that is not there: E0011, exit 1, no hang.
    let port = server.port();
    drop(server);
    let out = medic()
        .args([
            "audit",
            "verify",
            "--url",
            &format!("postgres://postgres@127.0.0.1:{port}/medic"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("E0011"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_locates_a_bad_store_url() {
    let dir = TestDir::new();
    let cfg = write(
        dir.path(),
        "medic.yaml",
        "store:\n  url: postgres://medic:hunter2@db:99999/medic\nservices:\n  web:\n    probes:\n      hz:\n        http: { url: http://127.0.0.1:1/ }\n",
    );
    let out = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("medic.yaml:2:8: store.url port `99999`") && err.contains("E0001"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
