//! `medic run` and SIGHUP: a hangup (the terminal medic was started from
//! closed) stops medic like SIGTERM — its services are stopped, not orphaned.
//! Started with SIGHUP ignored (`nohup`), medic keeps ignoring it, and the
//! services it starts get SIGHUP at its default either way.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{alive, fixture_pid, free_port, get_text, wait_for, Daemon, TestDir, TAG_VAR};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn write_config(dir: &Path, fixture_port: u16, api_port: u16) -> std::path::PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = format!(
        r#"mode: dry-run
listen: 127.0.0.1:{api_port}
database: medic.db
services:
  web:
    process:
      command: [{exe}, "fixture", "--port", "{fixture_port}"]
      stop_grace: 2s
    probes:
      healthz:
        http: {{ url: "http://127.0.0.1:{fixture_port}/healthz", timeout: 1s }}
        interval: 250ms
"#,
        exe = serde_json::Value::String(exe.display().to_string()),
    );
    common::write(dir, "medic.yaml", &cfg)
}

/// Whether `pid` ignores SIGHUP (bit 0 of `SigIgn` in its status).
fn ignores_hangup(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    medic_exec::procfs::parse_sig_ign(&status, 1).unwrap()
}

#[test]
fn a_hangup_stops_medic_and_the_services_it_started() {
    // This test process may itself run with SIGHUP ignored (under nohup),
    // which its children would inherit. Handling SIGHUP here gives the medic
    // it spawns SIGHUP at its default (a handler is reset on exec).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _hup = {
        let _g = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap()
    };
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    let daemon = dir.spawn_daemon(&cfg, None);
    let medic_pid = daemon.pid();
    assert!(
        !ignores_hangup(medic_pid),
        "medic must start with SIGHUP at its default"
    );
    let fixture = fixture_pid(&format!("http://127.0.0.1:{fport}/healthz")) as u32;
    kill(Pid::from_raw(medic_pid as i32), Signal::SIGHUP).unwrap();
    wait_for("medic to exit on SIGHUP", Duration::from_secs(15), || {
        (!alive(medic_pid)).then_some(())
    });
    assert!(
        !alive(fixture),
        "the supervised fixture {fixture} was orphaned by the hangup"
    );
    assert_eq!(dir.tagged(), Vec::<u32>::new());
    let log = std::fs::read_to_string(dir.path().join("medic.stderr")).unwrap();
    assert!(log.contains("stopping supervised processes"), "{log}");
    drop(daemon);
}

#[test]
fn started_with_hangup_ignored_medic_keeps_running_and_its_services_get_the_default() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    // As `nohup medic run` would: SIGHUP ignored before medic starts.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap "" HUP; exec "$0" run -c "$1""#)
        .arg(assert_cmd::cargo::cargo_bin("medic"))
        .arg(&cfg)
        .env(TAG_VAR, dir.tag())
        .env_remove("MEDIC_MODE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = Daemon::spawn(cmd);
    let medic_pid = daemon.pid();
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let fixture = fixture_pid(&health) as u32;
    assert!(
        !ignores_hangup(fixture),
        "the service inherited SIGHUP ignored"
    );
    kill(Pid::from_raw(medic_pid as i32), Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(medic_pid), "medic stopped on an ignored SIGHUP");
    assert!(alive(fixture));
    let api = format!("http://127.0.0.1:{aport}/healthz");
    wait_for("medic's API", Duration::from_secs(5), || {
        get_text(&api).filter(|t| t == "ok")
    });
    // SIGTERM (the guard's drop) still stops medic and its service.
    drop(daemon);
    assert!(
        !alive(fixture),
        "fixture {fixture} outlived medic's SIGTERM"
    );
}
