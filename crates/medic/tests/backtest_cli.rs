//! `medic backtest` through the real binary: the report on stdout, plots on disk, and the
//! stable error codes (E0050, E0003, E0001) with non-zero exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
services:
  api:
    probes:
      healthz:
        http: { url: "http://127.0.0.1:1/healthz" }
    actions:
      shed-load:
        http: { url: "http://127.0.0.1:1/admin/shed", method: POST }
        risk: low
    remediate:
      - when: { probe: latency_anomaly, condition: failing }
        action: shed-load
signals:
  sources:
    prom:
      prometheus: { url: "http://127.0.0.1:9" }
      interval: 5m
  rules:
    latency_anomaly:
      service: api
      source: prom
      query: nab_value
      detector: default
      threshold: 0.5
"#;

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let cfg = dir.join("medic.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let data = dir.join("data/realKnownCause");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/nab/data/realKnownCause/ec2_request_latency_system_failure.csv"
        ),
        data.join("ec2_request_latency_system_failure.csv"),
    )
    .unwrap();
    (cfg, dir.join("data"))
}

fn medic(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin("medic"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn backtest_prints_the_report_and_writes_plots() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = medic(
        dir.path(),
        &["backtest", "-c", "medic.yaml", "--data", "data"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rule latency_anomaly (service api): detector default >= 0.5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shed-load: would-act [mode_dry_run]"),
        "{stdout}"
    );
    // No progress bar and no log noise when stderr is not a terminal.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = dir.path().join(
        "backtest-plots/latency_anomaly__realKnownCause_ec2_request_latency_system_failure.svg",
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn backtest_errors_carry_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = medic(
        dir.path(),
        &[
            "backtest",
            "-c",
            "medic.yaml",
            "--data",
            "data",
            "--rule",
            "nope",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[E0050]: --rule nope"));
    let out = medic(
        dir.path(),
        &["backtest", "-c", "medic.yaml", "--data", "missing"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[E0003]"));
    std::fs::write(dir.path().join("bad.yaml"), "services:\n  api: 3\n").unwrap();
    let out = medic(
        dir.path(),
        &["backtest", "-c", "bad.yaml", "--data", "data"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:2:") && err.contains("error[E0001]"),
        "{err}"
    );
}
