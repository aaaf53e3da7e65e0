//! Safety state that survives a restart of medic, at binary level against the
//! real fixture and a real SQLite file: a pause, a pending approval, a spent
//! budget and an open incident are all still there after `medic run` stops
//! and starts again on the same database. Also the first safety bug: an exec
//! action whose class is HIGH runs only after approval.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, get_json, get_text, sigkill, wait_for, write, TestDir};

fn exe() -> PathBuf {
    assert_cmd::cargo::cargo_bin("medic")
}

/// Every audit record as `(kind, payload)`.
fn audit(api: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get_json(&format!("{api}/api/v1/audit?after={after}&limit=1000")).unwrap();
        let recs = page["records"].as_array().unwrap().clone();
        if recs.is_empty() {
            return out;
        }
        for r in recs {
            after = r["seq"].as_u64().unwrap();
            out.push((
                r["kind"].as_str().unwrap().to_string(),
                r["payload"].clone(),
            ));
        }
    }
}

fn count(records: &[(String, serde_json::Value)], kind: &str) -> usize {
    records.iter().filter(|(k, _)| k == kind).count()
}

/// `medic --api API <args>` with the token of `alice` (admin); must succeed.
fn cli(api: &str, args: &[&str]) -> String {
    let out = common::medic()
        .arg("--api")
        .arg(api)
        .args(args)
        .env("MEDIC_TOKEN", common::token_as(api, "alice", "admin"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "medic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture_pid(port: u16) -> u64 {
    common::fixture_pid(&format!("http://127.0.0.1:{port}/healthz"))
}

/// A service supervised by medic: the fixture on `port`, restarted when its
/// process exits.
fn fixture_config(dir: &Path, port: u16, api_port: u16, policy: &str) -> PathBuf {
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ {policy} }}
services:
  web:
    startup: {{ grace: 0s }}
    process:
      command: ["{exe}", "fixture", "--port", "{port}"]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 200ms }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
"#,
        exe = exe().display()
    );
    write(dir, "medic.yaml", &cfg)
}

/// Reproduction of the second safety bug: `medic pause --for 1h`, medic
/// stopped and started again on the same database, `kill -9` of the
/// service: medic must not restart it.
#[test]
fn a_pause_survives_a_restart_of_medic() {
    let dir = TestDir::new();
    let (port, api_port) = (free_port(), free_port());
    let cfg = fixture_config(
        dir.path(),
        port,
        api_port,
        "cooldown: 1s, verify_window: 3s",
    );
    let api = format!("http://127.0.0.1:{api_port}");

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    fixture_pid(port);
    let out = cli(&api, &["pause", "--for", "1h", "--reason", "maintenance"]);
    assert!(out.contains("paused"), "{out}");
    drop(d);

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let pid = fixture_pid(port);
    let approvals = get_json(&format!("{api}/api/v1/approvals")).unwrap();
    let pauses = approvals["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{approvals}");
    assert_eq!(pauses[0]["by"], "alice");
    // Shown as a wall-clock time, not engine time.
    assert!(
        pauses[0]["until"].as_str().unwrap().contains('T'),
        "{approvals}"
    );
    let intents_before = count(&audit(&api), "action.intent");
    sigkill(pid);
    // Well past detection (200 ms probes) and the 1 s cooldown.
    std::thread::sleep(Duration::from_secs(4));
    let records = audit(&api);
    assert_eq!(
        count(&records, "action.intent"),
        intents_before,
        "medic acted on a paused service after a restart"
    );
    assert!(
        records
            .iter()
            .any(|(k, p)| k == "decision" && p["reason_code"] == "paused"),
        "the held decision names the pause"
    );
    assert!(get_json(&format!("http://127.0.0.1:{port}/healthz")).is_none());
    drop(d);
}

/// A spent restart budget is still spent after a restart of medic.
#[test]
fn a_spent_budget_stays_spent_across_a_restart_of_medic() {
    let dir = TestDir::new();
    let (port, api_port) = (free_port(), free_port());
    let cfg = fixture_config(
        dir.path(),
        port,
        api_port,
        "cooldown: 1s, verify_window: 2s, restart_budget: 1, budget_window: 1h",
    );
    let api = format!("http://127.0.0.1:{api_port}");

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let pid = fixture_pid(port);
    sigkill(pid);
    let healed = wait_for(
        "the first kill to be healed",
        Duration::from_secs(30),
        || {
            let p = get_json(&format!("http://127.0.0.1:{port}/healthz"))?["pid"].as_u64()?;
            (p != pid).then_some(p)
        },
    );
    wait_for("the incident to close", Duration::from_secs(30), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        let inc = list["incidents"].as_array()?.first()?.clone();
        (inc["outcome"] == "healed").then_some(())
    });
    assert_ne!(healed, pid);
    drop(d);

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let pid = fixture_pid(port);
    let intents_before = count(&audit(&api), "action.intent");
    sigkill(pid);
    wait_for(
        "the escalation on the spent budget",
        Duration::from_secs(20),
        || {
            audit(&api)
                .iter()
                .any(|(k, p)| k == "incident.escalated" && p["reason_code"] == "restart_budget")
                .then_some(())
        },
    );
    assert_eq!(count(&audit(&api), "action.intent"), intents_before);
    drop(d);
}

/// A service whose health is a file: present = failing. The remediation is
/// an `exec` action of class `database_failover` with no `risk`; HIGH
/// actions need two approvers.
fn failover_config(dir: &Path, api_port: u16) -> PathBuf {
    let flag = dir.join("down");
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
governance:
  approvals: {{ two_person_high: true }}
  services:
    db:
      actions:
        failover: {{ class: database_failover }}
services:
  db:
    startup: {{ grace: 0s }}
    probes:
      healthy:
        exec: {{ command: ["sh", "-c", "test ! -e {flag}"], timeout: 2s }}
        interval: 200ms
    actions:
      failover: {{ exec: {{ command: ["true"] }} }}
    remediate:
      - when: {{ probe: healthy }}
        action: failover
"#,
        flag = flag.display()
    );
    write(dir, "medic.yaml", &cfg)
}

/// The first safety bug, and approvals and incidents across a restart: the
/// HIGH failover waits for approval in aggressive mode; after medic restarts
/// the same approval is still pending for the same, still open incident; two
/// distinct approvers let it run.
#[test]
fn a_high_class_action_waits_for_approval_and_the_approval_survives_a_restart() {
    let dir = TestDir::new();
    let api_port = free_port();
    let cfg = failover_config(dir.path(), api_port);
    let api = format!("http://127.0.0.1:{api_port}");

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    wait_for("medic to answer", Duration::from_secs(30), || {
        get_json(&format!("{api}/api/v1/approvals"))
    });
    std::fs::write(dir.path().join("down"), "").unwrap();
    let approval = wait_for("an approval request", Duration::from_secs(20), || {
        let v = get_json(&format!("{api}/api/v1/approvals"))?;
        v["approvals"].as_array()?.first().cloned()
    });
    assert_eq!(approval["risk"], "high", "{approval}");
    assert_eq!(approval["action"], "failover");
    assert_eq!(approval["required"], 2);
    let incident = approval["incident"].as_str().unwrap().to_string();
    assert_eq!(
        count(&audit(&api), "action.intent"),
        0,
        "ran without approval"
    );
    // The audit counter counts every record this run appended (a fresh db;
    // the tokens `medic token create` made are appended by the CLI, not by
    // this daemon).
    wait_for(
        "the audit counter to match the log",
        Duration::from_secs(5),
        || {
            let text = get_text(&format!("{api}/metrics"))?;
            let n: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("medic_audit_records_total "))?
                .trim()
                .parse()
                .ok()?;
            let by_daemon = audit(&api)
                .iter()
                .filter(|(_, p)| p["via"] != "cli")
                .count();
            (n == by_daemon).then_some(())
        },
    );
    drop(d);

    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let after = wait_for("medic to answer again", Duration::from_secs(30), || {
        get_json(&format!("{api}/api/v1/approvals"))
    });
    let pending = after["approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{after}");
    assert_eq!(pending[0]["id"], approval["id"]);
    assert_eq!(pending[0]["incident"].as_str(), Some(incident.as_str()));
    let inc = get_json(&format!("{api}/api/v1/incidents/{incident}")).unwrap();
    assert!(
        inc["incident"]["closed_at"].is_null(),
        "the incident was closed by the restart: {inc}"
    );
    let records = audit(&api);
    assert_eq!(count(&records, "incident.interrupted"), 0);
    assert!(records
        .iter()
        .any(|(k, p)| k == "state.restored" && p["approvals"] == "1" && p["incidents"] == "1"));

    let id = pending[0]["id"].as_str().unwrap().to_string();
    cli(&api, &["approve", &id]);
    // The same token again does not count twice; `ALICE` cannot be a second
    // name for alice (token names are lower case, one active token per name).
    let again = common::medic()
        .args(["--api", &api, "approve", &id])
        .env("MEDIC_TOKEN", common::token_as(&api, "alice", "admin"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("same_approver"));
    for name in ["ALICE", "alice"] {
        let out = common::medic()
            .args(["token", "create", "-c"])
            .arg(&cfg)
            .args(["--role", "approver", "--name", name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("E0040"));
    }
    let second = common::medic()
        .args(["--api", &api, "approve", &id])
        .env("MEDIC_TOKEN", common::token_as(&api, "bob", "approver"))
        .output()
        .unwrap();
    assert!(second.status.success());
    wait_for(
        "the approved failover to run",
        Duration::from_secs(20),
        || {
            audit(&api)
                .iter()
                .any(|(k, p)| k == "action.intent" && p["approved_by"] == "alice,bob")
                .then_some(())
        },
    );
    drop(d);
}

/// The start phase: a service that takes 8 s before its `/healthz` answers
/// is not restarted during its startup grace (default 30 s); its early
/// failures are recorded once.
#[test]
fn a_service_that_takes_8s_to_start_is_not_restarted() {
    let dir = TestDir::new();
    let (port, api_port) = (free_port(), free_port());
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ cooldown: 1s }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{port}", "--startup-delay", "8s"]
      stop_grace: 2s
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{port}/healthz", timeout: 1s }}
        interval: 1s
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: healthz }}
        action: restart
"#,
        exe = exe().display()
    );
    let path = write(dir.path(), "medic.yaml", &cfg);
    let api = format!("http://127.0.0.1:{api_port}");
    let started = Instant::now();
    let d = dir.spawn_daemon(&path, Some("aggressive"));
    let pid = fixture_pid(port);
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "the fixture answered before its startup delay"
    );
    // A few more probes after it came up: still the first process.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fixture_pid(port), pid);
    let records = audit(&api);
    assert_eq!(
        count(&records, "action.intent"),
        0,
        "restarted while starting: {records:?}\nmedic's log: {}",
        std::fs::read_to_string(dir.path().join("medic.stderr")).unwrap_or_default()
    );
    assert_eq!(count(&records, "incident.opened"), 0);
    assert_eq!(count(&records, "probe.startup_failed"), 1);
    drop(d);
}
