//! Failure-matrix row "connection-pool exhaustion", against the real
//! fixture: its pool of DB connections leaks (`POST /fault/pool`) until
//! every connection is held, requests queue for one and time out (503
//! `pool_timeout`), the health probe fails; medic opens an incident and runs
//! the service's `reset_connection_pool` action, an HTTP action on the
//! fixture's `/admin/pool/reset`: the held connections are closed, the
//! service answers again without a restart, the incident resolves.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;

fn config(dir: &TestDir, fport: u16, aport: u16) -> std::path::PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let base = format!("http://127.0.0.1:{fport}");
    let cfg = format!(
        r#"mode: aggressive
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ verify_window: 10s }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{fport}"]
    probes:
      healthz:
        http: {{ url: "{base}/healthz", timeout: 2s }}
        interval: 250ms
        failure: {{ consecutive: 2 }}
        recovery: {{ consecutive: 2 }}
    actions:
      reset-pool:
        http: {{ url: "{base}/admin/pool/reset", method: POST, timeout: 2s }}
    remediate:
      - when: {{ probe: healthz }}
        action: reset-pool
governance:
  services:
    web:
      actions:
        reset-pool: {{ class: reset_connection_pool }}
"#,
        exe = exe.display()
    );
    write(dir.path(), "medic.yaml", &cfg)
}

fn audit(api: &str) -> Vec<(String, serde_json::Value)> {
    get_json(&format!("{api}/api/v1/audit?limit=1000"))
        .and_then(|v| v["records"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap_or("").to_string(), r.clone()))
        .collect()
}

fn field<'a>(rec: &'a serde_json::Value, k: &str) -> &'a str {
    rec["payload"][k].as_str().unwrap_or("")
}

#[test]
fn an_exhausted_connection_pool_is_reset_without_a_restart() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = config(&dir, fport, aport);
    let api = format!("http://127.0.0.1:{aport}");
    let base = format!("http://127.0.0.1:{fport}");
    let _daemon = dir.spawn_daemon(&cfg, None);
    let pid = fixture_pid(&format!("{base}/healthz"));
    probe_phase(fport);
    let pool = get_json(&format!("{base}/admin/pool")).unwrap();
    assert_eq!(pool["in_use"].as_u64(), Some(0), "{pool}");
    assert_eq!(pool["timeouts"].as_u64(), Some(0), "{pool}");

    // The leak: every connection checked out from now on is held.
    assert_eq!(
        post_json(&format!("{base}/fault/pool"), &serde_json::json!({})),
        200
    );

    let recs = wait_for(
        "the pool reset to heal the incident",
        Duration::from_secs(60),
        || {
            let recs = audit(&api);
            recs.iter()
                .any(|(k, r)| k == "incident.resolved" && field(r, "service") == "web")
                .then_some(recs)
        },
    );
    let find = |kind: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        recs.iter()
            .find(|(k, r)| k == kind && pred(r))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no {kind} in {recs:#?}"))
    };
    let intent = find("action.intent", &|r| field(r, "action") == "reset-pool");
    assert_eq!(field(&intent, "class"), "reset_connection_pool", "{intent}");
    let outcome = find("action.outcome", &|r| field(r, "action") == "reset-pool");
    assert_eq!(field(&outcome, "status"), "succeeded", "{outcome}");
    // The pool really was exhausted: requests timed out waiting for a
    // connection (the probe's failures), and the reset freed it.
    let pool = get_json(&format!("{base}/admin/pool")).unwrap();
    assert!(pool["timeouts"].as_u64().unwrap() > 0, "{pool}");
    assert_eq!(pool["leaking"].as_bool(), Some(false), "{pool}");
    assert_eq!(pool["in_use"].as_u64(), Some(0), "{pool}");
    let metrics = get_text(&format!("{base}/metrics")).unwrap();
    assert!(metrics.contains("fixture_pool_in_use 0"), "{metrics}");
    // Healed by the reset alone: the same process, no restart.
    assert_eq!(fixture_pid(&format!("{base}/healthz")), pid);
    let intents: Vec<&str> = recs
        .iter()
        .filter(|(k, _)| k == "action.intent")
        .map(|(_, r)| field(r, "action"))
        .collect();
    assert!(intents.iter().all(|a| *a == "reset-pool"), "{intents:?}");
}
