//! Executor circuit breakers (issue 10) through the real daemon: an action
//! whose executor keeps failing opens its breaker; the next attempt is
//! refused before it runs and the incident escalates with `breaker_open`;
//! the transition is audited and exported on /metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;

fn config(dir: &TestDir, fport: u16, aport: u16) -> std::path::PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = format!(
        r#"mode: aggressive
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ retry_base: 100ms, retry_jitter: 100ms, max_attempts: 5 }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{fport}"]
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{fport}/healthz", timeout: 2s }}
        interval: 250ms
        failure: {{ consecutive: 2 }}
    actions:
      fix:
        exec: {{ command: ["false"], timeout: 5s }}
    remediate:
      - when: {{ probe: healthz }}
        action: fix
governance:
  breaker: {{ failures: 2, cooldown: 10m }}
  limits: {{ max_consecutive_failures: 10 }}
  gates: {{ max_failed_actions_per_hour: 10 }}
"#,
        exe = exe.display()
    );
    write(dir.path(), "medic.yaml", &cfg)
}

fn audit(api: &str) -> Vec<serde_json::Value> {
    get_json(&format!("{api}/api/v1/audit?limit=1000"))
        .and_then(|v| v["records"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_failing_executor_opens_its_breaker_and_the_next_attempt_is_refused() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = config(&dir, fport, aport);
    let api = format!("http://127.0.0.1:{aport}");
    let base = format!("http://127.0.0.1:{fport}");
    let _daemon = dir.spawn_daemon(&cfg, None);
    fixture_pid(&format!("{base}/healthz"));
    probe_phase(fport);
    assert_eq!(
        post_json(&format!("{base}/fault/error"), &serde_json::json!({})),
        200
    );
    let recs = wait_for(
        "the breaker_open escalation",
        Duration::from_secs(60),
        || {
            let recs = audit(&api);
            recs.iter()
                .any(|r| {
                    r["kind"] == "incident.escalated"
                        && r["payload"]["reason_code"] == "breaker_open"
                })
                .then_some(recs)
        },
    );
    let kinds: Vec<&str> = recs.iter().filter_map(|r| r["kind"].as_str()).collect();
    // Exactly the two failing executions ran; the third attempt was refused.
    let intents = recs.iter().filter(|r| r["kind"] == "action.intent").count();
    assert_eq!(intents, 2, "{kinds:?}");
    let failed = recs
        .iter()
        .filter(|r| r["kind"] == "action.outcome" && r["payload"]["status"] == "failed")
        .count();
    assert_eq!(failed, 2, "{kinds:?}");
    let opened = recs
        .iter()
        .find(|r| r["kind"] == "executor.breaker")
        .expect("an executor.breaker record");
    assert_eq!(opened["payload"]["action"], "fix");
    assert_eq!(opened["payload"]["from"], "closed");
    assert_eq!(opened["payload"]["to"], "open");
    assert_eq!(opened["payload"]["consecutive_failures"], "2");
    let metrics = get_text(&format!("{api}/metrics")).unwrap();
    assert!(
        metrics.contains(r#"medic_executor_breaker_state{service="web",action="fix"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"medic_executor_breaker_transitions_total{service="web",action="fix",to="open"} 1"#
        ),
        "{metrics}"
    );
    // Nothing more runs while it is open.
    std::thread::sleep(Duration::from_secs(2));
    let intents = audit(&api)
        .iter()
        .filter(|r| r["kind"] == "action.intent")
        .count();
    assert_eq!(intents, 2);
}
