//! End to end with a real Alertmanager: alerts posted to it reach medic's
//! webhook receiver; a firing alert opens an incident in a real engine; an
//! alert that resolves upstream before medic acts is closed without action.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::{Duration, Instant};

use common::*;
use medic_core::{ActionId, Command, Input, Phase, ProbeReport};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

const STEP_LIMIT: Duration = Duration::from_secs(30);

async fn post_alert(http: &reqwest::Client, am: &str, resolved: bool) {
    let now = OffsetDateTime::now_utc();
    let mut alert = serde_json::json!({
        "labels": {"alertname": "FixtureSlow", "service": "web", "severity": "page"},
        "annotations": {"summary": "p90 latency above 200ms"},
        "startsAt": (now - time::Duration::minutes(1)).format(&Rfc3339).unwrap(),
    });
    if resolved {
        alert["endsAt"] =
            serde_json::Value::String((now - time::Duration::seconds(1)).format(&Rfc3339).unwrap());
    }
    let r = http
        .post(format!("{am}/api/v2/alerts"))
        .json(&serde_json::json!([alert]))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "alertmanager refused the alert: {}",
        r.status()
    );
}

/// Wait (bounded) for the next report from the receiver.
async fn next_report(
    rx: &mut mpsc::Receiver<ProbeReport>,
    what: &str,
    am: &ProcGuard,
) -> ProbeReport {
    match tokio::time::timeout(STEP_LIMIT, rx.recv()).await {
        Ok(Some(r)) => r,
        Ok(None) => panic!("receiver closed while waiting for {what}"),
        Err(_) => panic!(
            "no webhook for {what} within {STEP_LIMIT:?}:\n{}",
            am.output()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alert_opens_incident_and_resolved_alert_is_not_acted_on() {
    let Some(am_bin) = require_binary(
        &["prometheus-alertmanager", "alertmanager"],
        "prometheus-alertmanager",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let yaml = r#"
mode: aggressive
services:
  web:
    actions:
      shed:
        http: { url: "http://127.0.0.1:1/admin/shed" }
    remediate:
      - when: { probe: FixtureSlow }
        action: shed
    policy:
      cooldown: 10m
signals:
  alertmanager:
    service_label: service
    alerts:
      FixtureSlow: { services: [web] }
"#;
    let cfg = medic_config::parse("e2e.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut driver = Driver::new(cfg.engine.clone());

    // medic's receiver.
    let (tx, mut rx) = mpsc::channel::<medic_core::ProbeReport>(64);
    let (hooks, _events) = medic_signal::SignalHooks::new();
    let receiver = serve(medic_signal::alertmanager_router(&cfg.signals, tx, &hooks)).await;

    // A real Alertmanager sending its webhook to it.
    let am_port = free_port();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: medic\n  group_by: ['alertname', 'service']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: medic\n    webhook_configs:\n      - url: 'http://{receiver}{}'\n        send_resolved: true\n",
            medic_signal::WEBHOOK_PATH
        ),
    )
    .unwrap();
    let mut am = ProcGuard::spawn(
        "alertmanager",
        &am_bin,
        &[
            format!("--config.file={}", am_cfg.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".to_string(),
            "--log.level=warn".to_string(),
        ],
        dir.path().join("alertmanager.log"),
    );
    let am_url = format!("http://127.0.0.1:{am_port}");
    wait_ready(
        &http,
        &format!("{am_url}/-/ready"),
        Duration::from_secs(30),
        &mut am,
    )
    .await;

    // 1. The alert fires upstream: an incident opens and medic acts at once.
    let t0 = Instant::now();
    post_alert(&http, &am_url, false).await;
    let r = next_report(&mut rx, "the firing alert", &am).await;
    println!(
        "ALERT DELIVERY (posted to Alertmanager -> report): {:?}",
        t0.elapsed()
    );
    assert_eq!(
        (r.service.as_str(), r.probe.as_str(), r.ok),
        ("web", "FixtureSlow", false)
    );
    let cmds = driver.report(r);
    let run = cmds
        .iter()
        .find_map(|c| match c {
            Command::RunAction(a) => Some(a.clone()),
            _ => None,
        })
        .expect("a firing alert with a low-risk remediation runs it");
    assert_eq!(run.action, "shed");
    assert_eq!(driver.audits("incident.opened").len(), 1);
    driver.input(Input::ActionOutcome {
        id: run.id,
        result: Ok("shed".into()),
    });
    assert_eq!(driver.engine.phase("web"), Some(Phase::Verifying));

    // It resolves upstream: the incident is healed.
    post_alert(&http, &am_url, true).await;
    let r = next_report(&mut rx, "the resolved alert", &am).await;
    assert!(
        r.ok,
        "resolved alert must be a healthy report: {}",
        r.detail
    );
    driver.report(r);
    assert_eq!(driver.engine.phase("web"), Some(Phase::Monitoring));

    // 2. It fires again while the action is cooling down: an incident opens
    //    and medic waits instead of acting.
    post_alert(&http, &am_url, false).await;
    let r = next_report(&mut rx, "the second firing alert", &am).await;
    assert!(!r.ok);
    let opened_before = driver.audits("incident.opened").len();
    let cmds = driver.report(r);
    assert_eq!(driver.audits("incident.opened").len(), opened_before + 1);
    assert!(!cmds.iter().any(|c| matches!(c, Command::RunAction(_))));
    assert_eq!(driver.engine.phase("web"), Some(Phase::ConfirmingPattern));
    let second = driver.engine.open_incidents()[0].id.clone();

    // It resolves upstream before medic acts: closed, never acted on.
    post_alert(&http, &am_url, true).await;
    let r = next_report(&mut rx, "the second resolved alert", &am).await;
    assert!(r.ok);
    driver.report(r);
    driver.tick();
    assert_eq!(driver.engine.phase("web"), Some(Phase::Monitoring));
    assert!(driver.engine.open_incidents().is_empty());
    let closed = driver
        .commands
        .iter()
        .rev()
        .find_map(|(_, c)| match c {
            Command::IncidentChanged(v) if v.id == second => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(closed.outcome, Some(medic_core::IncidentOutcome::Recovered));
    assert!(closed.actions.is_empty(), "{:?}", closed.actions);
    let runs: Vec<ActionId> = driver
        .commands
        .iter()
        .filter_map(|(_, c)| match c {
            Command::RunAction(a) => Some(a.id),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        vec![run.id],
        "only the first, still-firing alert was acted on"
    );

    // Alertmanager's own view agrees: nothing is firing.
    let alerts: serde_json::Value = http
        .get(format!(
            "{am_url}/api/v2/alerts?active=true&silenced=false&inhibited=false"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts.as_array().map(Vec::len), Some(0), "{alerts}");
    drop(am);
}
