//! Issue 9, "scenario files in, ranked causes and decisions out", through the
//! real binary: `medic eval rca --scenarios DIR [--json]` on the shipped
//! scenario files (all pass), on a directory with a file whose expectation
//! is wrong and a malformed one (each named, every mismatch listed, the
//! malformed one at FILE:LINE:COL, exit codes E0160 / E0161).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn medic() -> Command {
    Command::cargo_bin("medic").unwrap()
}

/// `medic eval rca --scenarios DIR [extra]`: exit code, stdout, stderr.
fn eval_scenarios(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = medic()
        .args(["eval", "rca", "--scenarios"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rca-scenarios")
}

#[test]
fn every_shipped_scenario_passes_through_the_binary() {
    let (code, stdout, stderr) = eval_scenarios(&shipped(), &["--json"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = v["scenarios"].as_array().unwrap();
    assert!(rows.len() >= 10, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(rows.iter().all(|r| r["pass"] == true), "{v}");
    // The slow database: its decision and its callers' holds are in the output.
    let db = rows
        .iter()
        .find(|r| {
            r["file"]
                .as_str()
                .unwrap()
                .ends_with("01-slow-db-under-a-chain.yaml")
        })
        .unwrap();
    assert_eq!(db["got"]["decisions"]["db"], "act_armed", "{db}");
    assert_eq!(db["got"]["decisions"]["web"], "held", "{db}");
}

#[test]
fn wrong_expectations_and_a_malformed_file_are_each_named() {
    let dir = tempfile::tempdir().unwrap();
    // A shipped scenario with two wrong expectations.
    let text = std::fs::read_to_string(shipped().join("01-slow-db-under-a-chain.yaml")).unwrap();
    let wrong = text
        .replace("band: act_armed", "band: act")
        .replace("api: held", "api: act");
    assert_ne!(wrong, text);
    std::fs::write(dir.path().join("a-wrong.yaml"), wrong).unwrap();
    std::fs::copy(
        shipped().join("05-the-entry-is-its-own-cause.yaml"),
        dir.path().join("b-right.yaml"),
    )
    .unwrap();
    let (code, stdout, stderr) = eval_scenarios(dir.path(), &[]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("E0161"), "{stderr}");
    assert!(stdout.contains("FAIL "), "{stdout}");
    assert!(
        stdout.contains("a-wrong.yaml: band: expected act, got act_armed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a-wrong.yaml: decision of api: expected act, got held"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS ") && stdout.contains("b-right.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 2 scenario files as expected"),
        "{stdout}"
    );

    // A malformed file: a word where a number belongs, at its line and column.
    std::fs::write(
        dir.path().join("c-bad.yaml"),
        "services:\n  web:\n    signals:\n      latency:\n        history: [1, 2, 3]\n        recent: [1, 2, x, 4, 5, 6, 7, 8]\ntarget: { service: web, signal: latency }\nexpect: { verdict: cause }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = eval_scenarios(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("E0160"), "{stderr}");
    let bad = dir.path().join("c-bad.yaml").display().to_string();
    assert!(stdout.contains(&format!("{bad}:6:")), "{stdout}");
    // The other files are still run and reported.
    assert!(stdout.contains("a-wrong.yaml: band"), "{stdout}");
}

/// `medic bench rca --json`: both methods time the same generated incident
/// and both find its root; the figures are positive and the ratio is
/// medic's median over the peer's (timings are printed, never asserted
/// against a bound here).
#[test]
fn the_rca_bench_times_medic_and_the_traversal_peer_in_the_same_run() {
    let out = medic()
        .args([
            "bench",
            "rca",
            "--services",
            "10",
            "--signals",
            "40",
            "--iterations",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signals"], 40, "{v}");
    assert_eq!(v["root_found"], true, "{v}");
    assert_eq!(v["traversal"]["root_found"], true, "{v}");
    let (m, p) = (
        v["median_ms"].as_f64().unwrap(),
        v["traversal"]["median_ms"].as_f64().unwrap(),
    );
    assert!(m > 0.0 && p > 0.0, "{v}");
    let ratio = v["ratio_to_traversal"].as_f64().unwrap();
    assert!((ratio - m / p).abs() < 1e-9 * ratio.max(1.0), "{v}");

    // Bad arguments: a clear error and a non-zero exit, no panic.
    let out = medic()
        .args(["bench", "rca", "--services", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--services >= 2"), "{err}");
}
