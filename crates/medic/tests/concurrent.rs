//! 100 concurrent actions on distinct targets (issue 10): `medic bench
//! concurrent` against a real `medic run` with 100 services whose exec
//! actions (`sleep 1`) all run at once. All complete, they do run
//! concurrently (not one after the other), the engine loop answers the API
//! and keeps probing throughout, and medic's RSS stays under a stated bound.
//! The figures (time, loop latency) are printed, not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

/// The RSS bound this test holds medic to while 100 actions run.
const RSS_BOUND_MB: f64 = 256.0;

#[test]
fn a_hundred_actions_on_distinct_targets_run_concurrently_with_bounded_memory() {
    let dir = common::TestDir::new();
    let out = common::medic()
        .args([
            "bench",
            "concurrent",
            "--services",
            "100",
            "--action-time",
            "1s",
            "--json",
            "--dir",
        ])
        .arg(dir.path())
        .env(common::TAG_VAR, dir.tag())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "medic bench concurrent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{r}");
    assert_eq!(r["completed"], 100, "{r}");
    // One after the other would be 1 in flight; max_concurrent_actions is 100.
    assert!(r["max_inflight"].as_u64().unwrap() >= 10, "{r}");
    // The engine loop answered every request during the actions (within 10 s)...
    assert!(r["loop_samples"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["loop_failures"], 0, "{r}");
    // ...and kept probing: at least half the configured probe rate.
    assert!(
        r["probes_per_s"].as_f64().unwrap() >= r["probes_expected_per_s"].as_f64().unwrap() / 2.0,
        "{r}"
    );
    assert!(r["rss_peak_mb"].as_f64().unwrap() < RSS_BOUND_MB, "{r}");
}
