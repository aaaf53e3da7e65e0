//! Chaos drills end to end: the real binary, the real fixture, SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;

fn config(dir: &std::path::Path, fport: u16, aport: u16) -> std::path::PathBuf {
    config_with(dir, fport, aport, "\"* * * * *\"", "")
}

/// `schedule`: the drill window's cron; `every`: an `every:` line or "".
fn config_with(
    dir: &std::path::Path,
    fport: u16,
    aport: u16,
    schedule: &str,
    every: &str,
) -> std::path::PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    write(
        dir,
        "medic.yaml",
        &format!(
            r#"mode: aggressive
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ cooldown: 0s, verify_window: 5s }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{fport}"]
      stop_grace: 2s
    startup: {{ grace: 5s }}
    probes:
      alive: {{ process: {{}}, interval: 500ms }}
      healthz:
        http: {{ url: "http://127.0.0.1:{fport}/healthz", timeout: 500ms }}
        interval: 250ms
        failure: {{ consecutive: 2 }}
    actions:
      restart: {{ restart: {{}} }}
      crash: {{ http: {{ url: "http://127.0.0.1:{fport}/fault/crash", method: POST, timeout: 2s }}, risk: low }}
      slow: {{ http: {{ url: "http://127.0.0.1:{fport}/fault/slow?ms=100", method: POST, timeout: 2s }}, risk: low }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
      - when: {{ probe: healthz }}
        action: restart
drills:
  windows:
    - {{ name: window, schedule: {schedule}, duration: 1h }}
  timeout: 4s
  {every}
  list:
    web-crash: {{ service: web, fault: crash, inject: crash }}
    web-slow: {{ service: web, fault: slow, inject: slow }}
"#,
            exe = exe.display()
        ),
    )
}

fn drill(api: &str, args: &[&str]) -> std::process::Output {
    medic()
        .args(["--api", api, "drill"])
        .args(args)
        .env("MEDIC_TOKEN", token_as(api, "gameday", "admin"))
        .output()
        .unwrap()
}

fn op(api: &str, args: &[&str]) -> std::process::Output {
    medic()
        .args(["--api", api])
        .args(args)
        .env("MEDIC_TOKEN", token_as(api, "gameday", "admin"))
        .output()
        .unwrap()
}

#[test]
fn a_drill_is_healed_gated_recorded_and_a_failed_one_stops_drills() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = config(dir.path(), fport, aport);
    let check = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    let _daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let pid = wait_for("the fixture", Duration::from_secs(20), || {
        get_json(&health)?["pid"].as_u64()
    });

    // On demand: the crash is injected through the fault action and healed.
    let out = drill(&api, &["run", "web-crash", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("drill web-crash passed"), "{text}");
    assert!(
        text.contains("pattern alive failing") || text.contains("pattern healthz failing"),
        "{text}"
    );
    let new = new_fixture_pid(&health, pid, Duration::from_secs(10));
    assert_ne!(new, pid);

    // The kill switch blocks a drill like any action.
    assert!(op(
        &api,
        &["pause", "--service", "web", "--reason", "no drills"]
    )
    .status
    .success());
    let out = drill(&api, &["run", "web-crash"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E0072") && err.contains("[paused]"), "{err}");
    assert!(op(&api, &["resume", "--service", "web"]).status.success());

    // A fault medic does not heal (no latency rule): the drill fails,
    // escalates and stops further drills until a reset.
    let out = drill(&api, &["run", "web-slow", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("E0073"),
        "{out:?}"
    );
    let out = drill(&api, &["run", "web-crash"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[drills_stopped]"), "{err}");
    assert!(drill(&api, &["reset"]).status.success());
    // Clear the slow fault left behind, then drills run again.
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{fport}/fault/clear"),
            &serde_json::json!({})
        ),
        200
    );
    let out = drill(&api, &["run", "web-crash", "--wait"]);
    assert!(out.status.success(), "{out:?}");

    // The report reads the audit log: outcomes, time to heal per fault,
    // remediations never proven.
    let out = medic()
        .args(["drill", "report", "--json", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let crash = v["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["drill"] == "web-crash")
        .unwrap();
    assert_eq!(crash["passed"], 2, "{v}");
    assert_eq!(crash["refused"], 2, "{v}");
    let slow = v["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["drill"] == "web-slow")
        .unwrap();
    assert_eq!(slow["failed"], 1, "{v}");
    assert_eq!(v["faults"][0]["fault"], "crash", "{v}");
    assert_eq!(v["stopped_by"], serde_json::Value::Null, "{v}");
    // restart is proven by the crash drills; no remediation is unproven.
    assert_eq!(v["unproven"], serde_json::json!([]), "{v}");
    // Drill outcomes feed the same (pattern, action) learning counts as real
    // incidents (issue 9): two passed crash drills healed by restart, counted
    // once each; the failed slow drill ran no action and teaches nothing.
    let out = medic()
        .args(["patterns", "candidates", "--db"])
        .arg(dir.path().join("medic.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("crash restart: 2 / 0"), "{text}");
    // The audit chain holds the drill records and still verifies.
    let out = medic()
        .args(["audit", "verify", "--db"])
        .arg(dir.path().join("medic.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Drills on a schedule run inside their window, and never outside it.
#[test]
fn scheduled_drills_run_only_inside_their_window() {
    for (schedule, inside) in [("\"* * * * *\"", true), ("\"0 0 1 1 *\"", false)] {
        let dir = TestDir::new();
        let (fport, aport) = (free_port(), free_port());
        // Only the crash drill: the schedule runs the list round robin.
        let cfg = config_with(dir.path(), fport, aport, schedule, "every: 1s");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("web-slow"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&cfg, text).unwrap();
        let _daemon = dir.spawn_daemon(&cfg, None);
        let api = format!("http://127.0.0.1:{aport}");
        fixture_pid(&format!("http://127.0.0.1:{fport}/healthz"));
        if inside {
            let passed = wait_for("a scheduled drill", Duration::from_secs(30), || {
                let v = get_json(&format!("{api}/api/v1/drills"))?;
                v["recent"]
                    .as_array()?
                    .iter()
                    .find(|o| o["passed"] == true)
                    .cloned()
            });
            assert_eq!(passed["drill"], "web-crash", "{passed}");
        } else {
            std::thread::sleep(Duration::from_secs(4));
            let v = get_json(&format!("{api}/api/v1/drills")).unwrap();
            assert_eq!(v["in_window"], false, "{v}");
            assert_eq!(v["recent"], serde_json::json!([]), "{v}");
            assert_eq!(v["running"], serde_json::Value::Null, "{v}");
        }
    }
}
