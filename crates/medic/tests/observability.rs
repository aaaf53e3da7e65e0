//! medic's own observability artefacts: the Prometheus alert rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`: each
//! alert fires on a synthetic failing series and stays quiet on a healthy
//! one); every metric the rules and the Grafana dashboard use exists in
//! medic's registry; `--log-format json` logs JSON lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use medic_core::{ActionStage, ActionStatus, IncidentId, Mode, Notice, Phase};

fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel)
}

fn promtool(args: &[&str]) -> Option<String> {
    let bin = require_binary(&["promtool"], "prometheus")?;
    let out = Command::new(bin)
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    Some(text)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(out) = promtool(&["check", "rules", "medic-alerts.yml"]) else {
        return;
    };
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let out = promtool(&["test", "rules", "medic-alerts.test.yml"]).unwrap();
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a firing and a quiet case in the test file.
    let tests = std::fs::read_to_string(deploy("prometheus/medic-alerts.test.yml")).unwrap();
    for alert in [
        "MedicDown",
        "MedicOutboxGrowing",
        "MedicRollbackRateHigh",
        "MedicAutomationPaused",
        "MedicAutohealDisabled",
        "MedicNoLeader",
        "MedicTwoLeaders",
    ] {
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|c| c.starts_with(alert))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_labels")),
            "{alert} never fires in the test file"
        );
        assert!(
            cases.iter().any(|c| {
                c.lines()
                    .nth(1)
                    .is_some_and(|l| l.contains("exp_alerts: []"))
            }),
            "{alert} has no quiet case"
        );
    }
}

/// The metric families of medic's registry, every metric given a value.
fn families() -> BTreeSet<String> {
    let sig = std::sync::Arc::new(medic_signal::SignalMetrics::default());
    let m = {
        let sig = sig.clone();
        medic_api::Metrics::with_sources(vec![std::sync::Arc::new(move || sig.snapshot())])
    };
    m.inc_action("restart", ActionStage::Direct, ActionStatus::Succeeded);
    m.inc_incident();
    m.observe_probe("web", "hz", false, Duration::from_millis(5));
    m.inc_audit();
    m.observe_notice(&Notice::IncidentOpened {
        incident: IncidentId("inc-1".into()),
        service: "web".into(),
        trigger: "hz".into(),
    });
    m.set_engine_state(&medic_api::EngineState {
        mode: Mode::Aggressive,
        pauses: &[],
        mass_paused: false,
        open_phases: &[Phase::Verifying],
        autoheal: &[("web".into(), false)],
        pending_approvals: 0,
        running_actions: 0,
    });
    m.set_queue_depth("engine_input", 0);
    // The medic_ha_* gauges exist with `ha:` only (issue 13).
    m.ha().set(medic_api::ha::HaView::default());
    let text = m.encode_prometheus();
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            out.insert(name.to_string());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
        }
    }
    out
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("medic_") {
        let start = i + pos;
        let before_ok =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
        {
            end += 1;
        }
        if before_ok {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn rules_and_dashboard_use_only_metrics_medic_exports() {
    let have = families();
    for name in [
        "medic_actions_total",
        "medic_incidents_open",
        "medic_detections_total",
        "medic_probe_duration_seconds",
        "medic_queue_depth",
        "medic_mode",
        "medic_automation_paused",
        "medic_verifications_total",
        "medic_rollbacks_total",
        "medic_outbox_depth",
        "medic_signal_samples_total",
        "medic_ha_is_leader",
        "medic_ha_token",
        "medic_ha_last_renew_age_ms",
    ] {
        assert!(have.contains(name), "{name} not in {have:?}");
    }
    let rules = std::fs::read_to_string(deploy("prometheus/medic-alerts.yml")).unwrap();
    let dash_text = std::fs::read_to_string(deploy("grafana/medic.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash_text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut used = metric_names(&rules);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            used.extend(metric_names(t["expr"].as_str().unwrap()));
        }
    }
    assert!(used.len() >= 12, "{used:?}");
    for u in &used {
        assert!(
            have.contains(u),
            "{u} is used by deploy/ but medic does not export it"
        );
    }
}

#[test]
fn log_format_json_logs_json_lines() {
    let dir = TestDir::new();
    let cfg = write(
        dir.path(),
        "medic.yaml",
        "services:\n  web:\n    probes:\n      hz: { http: { url: http://127.0.0.1:1/ } }\n",
    );
    // The daemon logs at start (among others the auth warning): run it
    // briefly and read its stderr.
    let port = free_port();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("services:", &format!("listen: 127.0.0.1:{port}\nservices:"));
    std::fs::write(&cfg, text).unwrap();
    let child = medic()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .env(TAG_VAR, dir.tag())
        .env_remove("MEDIC_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("medic to serve", Duration::from_secs(20), || {
        get_text(&format!("http://127.0.0.1:{port}/healthz")).filter(|t| t == "ok")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    // With no token yet, the daemon warns that the API will answer 401.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("no API token exists yet")),
        "{err}"
    );
}
