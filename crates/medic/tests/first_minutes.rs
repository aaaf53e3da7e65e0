//! A new user's first ten minutes: `medic init`, `medic check`, `medic run`
//! without medic on PATH, a fault healed; a missing program named once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;

/// `medic init` (the fixture example) is accepted by `medic check`, runs with
/// a PATH that has no medic on it (the command `medic` is this binary) and
/// heals a `kill -9`.
#[test]
fn init_check_run_heal_without_medic_on_path() {
    let dir = TestDir::new();
    let out = medic()
        .current_dir(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg = dir.path().join("medic.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("command: [\"medic\", \"fixture\""), "{text}");
    // A second init keeps the file.
    let again = medic()
        .current_dir(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("E0070"));
    let check = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok (1 service, 2 probes, 1 action)"));

    // Own ports, so that tests can run side by side.
    let (fport, aport) = (free_port(), free_port());
    let text = text
        .replace("18080", &fport.to_string())
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{aport}"));
    std::fs::write(&cfg, text).unwrap();
    let mut cmd = medic();
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .args(["--mode", "aggressive"])
        .env("PATH", "/usr/bin:/bin")
        .env(TAG_VAR, dir.tag())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _daemon = Daemon::spawn(cmd);
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let pid = wait_for("the fixture", Duration::from_secs(20), || {
        get_json(&health)?["pid"].as_u64()
    });
    sigkill(pid);
    let new = new_fixture_pid(&health, pid, Duration::from_secs(20));
    assert_replaced(&health, pid, new);
}

#[test]
fn init_for_a_users_service_is_accepted_by_check() {
    let dir = TestDir::new();
    let cfg = dir.path().join("api.yaml");
    let out = medic()
        .args(["init", "-c"])
        .arg(&cfg)
        .args(["--service", "api", "--url", "http://127.0.0.1:8000/health"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let check = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok (1 service, 1 probe, 1 action)"));
    let bad = medic()
        .args(["init", "-c"])
        .arg(dir.path().join("x.yaml"))
        .args(["--service", "api", "--url", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("E0002"));
}

#[test]
fn a_missing_program_is_named_once_with_the_path_searched() {
    let dir = TestDir::new();
    let cfg = write(
        dir.path(),
        "medic.yaml",
        &format!(
            r#"listen: 127.0.0.1:{}
database: medic.db
services:
  web:
    process: {{ command: ["medic-no-such-program", "fixture"] }}
    probes:
      alive: {{ process: {{}} }}
"#,
            free_port()
        ),
    );
    let out = medic()
        .args(["run", "-c"])
        .arg(&cfg)
        .env("PATH", "/usr/bin:/bin")
        .env(TAG_VAR, dir.tag())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[E0020]: starting service web: cannot start `medic-no-such-program fixture`: program `medic-no-such-program` not found in PATH (/usr/bin:/bin)"),
        "{err}"
    );
    assert_eq!(err.matches("not found").count(), 1, "{err}");
    assert!(!err.contains("os error"), "{err}");
}
