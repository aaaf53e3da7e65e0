//! Notifications end to end at binary level (issue 12): `medic run` with a
//! real SQLite file pages through the outbox to loopback receivers (HTTP
//! webhook, Slack, PagerDuty), `medic notify test` reports a dead and a live
//! channel, `medic ack` stops the escalation chain and acknowledges the
//! PagerDuty incident, and the audit chain still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::{free_port, get_json, get_text, wait_for, write, TestDir};
use medic_notify::loopback::Receiver;

fn cli(api: &str, args: &[&str]) -> std::process::Output {
    common::medic()
        .arg("--api")
        .arg(api)
        .args(args)
        .env("MEDIC_TOKEN", common::token_as(api, "alice", "operator"))
        .output()
        .unwrap()
}

#[test]
fn pages_go_through_the_outbox_and_an_ack_stops_the_chain() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut hook = rt.block_on(Receiver::http()).unwrap();
    let slack = rt.block_on(Receiver::http()).unwrap();
    let pd = rt.block_on(Receiver::http()).unwrap();
    // OTLP collectors: the primary is down, the secondary takes the traces.
    let mut otlp_a = rt.block_on(Receiver::http()).unwrap();
    rt.block_on(otlp_a.kill());
    let otlp_b = rt.block_on(Receiver::http()).unwrap();

    let dir = TestDir::new();
    let (dead, api_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
notify:
  timeout: 2s
  retry: {{ base: 50ms, cap: 200ms, jitter: 20ms }}
  channels:
    hook: {{ webhook: {{ url: "{hook}" }} }}
    chat: {{ slack: {{ url: "{slack}" }} }}
    pd: {{ pagerduty: {{ routing_key: test-key, url: "{pd}" }} }}
  routes:
    - channels: [hook, chat]
    - severity: [critical]
      channels: [pd]
  escalation:
    - after: 1h
      channels: [hook]
otlp:
  endpoints: ["{otlp_a}", "{otlp_b}"]
  timeout: 1s
  flush_interval: 200ms
services:
  web:
    probes:
      up:
        http: {{ url: "http://127.0.0.1:{dead}/healthz", timeout: 200ms }}
        interval: 200ms
        failure: {{ consecutive: 1 }}
"#,
        hook = hook.url("/hook"),
        slack = slack.url("/slack"),
        pd = pd.url("/v2/enqueue"),
        otlp_a = otlp_a.url(""),
        otlp_b = otlp_b.url(""),
    );
    let cfg = write(dir.path(), "medic.yaml", &cfg);
    let d = dir.spawn_daemon(&cfg, Some("aggressive"));

    // No remediation for `up`: the incident escalates to a human, paged on
    // the webhook (primary of the first route) and PagerDuty.
    let trigger = wait_for("a PagerDuty trigger", Duration::from_secs(30), || {
        pd.received()
            .into_iter()
            .find(|r| r.body.contains("\"trigger\""))
    });
    let body: serde_json::Value = serde_json::from_str(&trigger.body).unwrap();
    let incident = body["dedup_key"]
        .as_str()
        .unwrap()
        .strip_prefix("medic-")
        .unwrap()
        .to_string();
    assert_eq!(body["routing_key"], "test-key");
    assert_eq!(body["payload"]["severity"], "critical");
    assert!(!trigger.id.is_empty(), "X-Medic-Id is set");
    wait_for("the webhook page", Duration::from_secs(10), || {
        hook.received()
            .into_iter()
            .find(|r| r.body.contains(&incident))
    });
    assert_eq!(slack.count(), 0, "the secondary is only for failover");

    // The escalation step (after 1h) is waiting in the outbox.
    // The notifier's counters are in the one /metrics (per channel), which
    // still passes promtool.
    let metrics = wait_for(
        "outbox depth 1 in /metrics",
        Duration::from_secs(10),
        || get_text(&format!("{api}/metrics")).filter(|m| m.contains("medic_outbox_depth 1")),
    );
    assert!(
        metrics.contains("medic_notify_delivered_total{channel=\"hook\"} ")
            && !metrics.contains("medic_notify_delivered_total{channel=\"hook\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("medic_notify_failed_attempts_total{channel=\"chat\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE medic_notify_dropped_total counter"));
    if let Some(promtool) = common::require_binary(&["promtool"], "prometheus") {
        let (ok, out) = common::promtool_check_metrics(&promtool, &metrics);
        assert!(ok, "promtool check metrics:\n{out}\n{metrics}");
    }
    let gone = get_text(&format!("{api}/metrics/notify")).unwrap();
    assert!(gone.contains("E0401"), "/metrics/notify is gone: {gone}");

    // A dead channel: `notify test` says so and fails with E0080.
    rt.block_on(hook.kill());
    let out = cli(&api, &["notify", "test", "--channel", "hook"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("hook: NOT delivered"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0080"));
    // Back up: the queued test message is replayed, and a new test passes.
    rt.block_on(hook.restart()).unwrap();
    let out = cli(&api, &["notify", "test", "--channel", "chat"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chat: delivered"));
    wait_for("the replayed test message", Duration::from_secs(10), || {
        hook.received()
            .into_iter()
            .find(|r| r.body.contains("medic test message for channel hook"))
    });
    let out = cli(&api, &["notify", "test", "--channel", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0461"));

    // Acknowledge: the chain stops, PagerDuty acknowledges the same key.
    let out = cli(&api, &["ack", &incident, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["cancelled_steps"], 1);
    assert_eq!(reply["acknowledged_by"], "alice");
    wait_for("a PagerDuty acknowledge", Duration::from_secs(10), || {
        pd.received()
            .into_iter()
            .find(|r| r.body.contains("\"acknowledge\"") && r.body.contains(&incident))
    });
    let out = cli(&api, &["ack", "no-such-incident"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0460"));

    // Resolved by hand: PagerDuty resolves, and the incident is exported
    // as one trace (via the secondary collector).
    let out = cli(&api, &["resolve", &incident, "--reason", "fixed by hand"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("a PagerDuty resolve", Duration::from_secs(10), || {
        pd.received()
            .into_iter()
            .find(|r| r.body.contains("\"resolve\"") && r.body.contains(&incident))
    });
    let trace = wait_for("the incident's trace", Duration::from_secs(10), || {
        otlp_b
            .received()
            .into_iter()
            .find(|r| r.path == "/v1/traces" && r.body.contains(&incident))
    });
    let t: serde_json::Value = serde_json::from_str(&trace.body).unwrap();
    let names: Vec<&str> = t["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "incident", "{names:?}");
    assert!(
        names.contains(&"detect") && names.contains(&"verify"),
        "{names:?}"
    );

    let audit = get_json(&format!("{api}/api/v1/audit?limit=1000")).unwrap();
    let kinds: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"notify.acknowledged"), "{kinds:?}");
    assert!(kinds.contains(&"notify.test"), "{kinds:?}");
    drop(d);

    let out = common::medic()
        .args(["audit", "verify", "--db"])
        .arg(dir.path().join("medic.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A page queued while its only channel is down survives `kill -9` of
/// medic: the next medic delivers it once the channel is back, exactly once.
#[test]
fn a_queued_page_survives_kill_9_of_medic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut hook = rt.block_on(Receiver::http()).unwrap();
    rt.block_on(hook.kill());

    let dir = TestDir::new();
    let (dead, api_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
notify:
  timeout: 1s
  retry: {{ base: 50ms, cap: 200ms, jitter: 20ms }}
  channels:
    hook: {{ webhook: {{ url: "{hook}" }} }}
services:
  web:
    probes:
      up:
        http: {{ url: "http://127.0.0.1:{dead}/healthz", timeout: 200ms }}
        interval: 200ms
        failure: {{ consecutive: 1 }}
"#,
        hook = hook.url("/hook"),
    );
    let cfg = write(dir.path(), "medic.yaml", &cfg);
    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let first = wait_for("an escalated incident", Duration::from_secs(30), || {
        let m = get_text(&format!("{api}/metrics"))?;
        if m.contains("medic_outbox_depth 0") {
            return None;
        }
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"][0]["id"].as_str().map(str::to_string)
    });
    d.kill9();

    rt.block_on(hook.restart()).unwrap();
    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let page = wait_for(
        "the page queued before the kill",
        Duration::from_secs(30),
        || {
            hook.received().into_iter().find(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body)
                    .is_ok_and(|b| b["incident"] == first.as_str() && b["event"] == "notify")
            })
        },
    );
    assert!(page.body.contains("critical"), "{}", page.body);
    // Let the new medic run on a while, then check for duplicates.
    std::thread::sleep(Duration::from_secs(2));
    drop(d);
    let ids: Vec<String> = hook.received().into_iter().map(|r| r.id).collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a message was delivered twice: {ids:?}"
    );
}
