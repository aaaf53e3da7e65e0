//! High availability (issue 13) end to end: three real `medic run` with
//! `ha:` on a real etcd (`/usr/bin/etcd`, Debian's etcd-server, started on
//! loopback by `medic bench failover`), one shared store — a real Postgres
//! (Debian's `postgresql`, started by the bench on loopback) for the kill and
//! pause scenarios, a shared SQLite file for the partition one —, the fixture
//! as the service and an exec action that logs its fencing token.
//!
//! Without etcd or Postgres these tests fail (the bench cannot start them);
//! they never skip. `MEDIC_HA_TRIALS` sets the number of leader kills (default 3; the
//! issue's goal is 20: `MEDIC_HA_TRIALS=20`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;

fn bench(dir: &TestDir, sub: &str, args: &[&str]) -> (serde_json::Value, bool, String) {
    let out = medic()
        .args(["bench", "failover", "--json"])
        .args(args)
        .arg("--dir")
        .arg(dir.path().join(sub))
        .env(TAG_VAR, dir.tag())
        .env_remove("MEDIC_HA_UNSAFE_NO_FENCE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{sub}: not JSON ({e}): {stdout}\n{stderr}"));
    (v, out.status.success(), stderr)
}

#[test]
fn killing_the_leader_mid_action_elects_another_without_duplicate_or_lost_actions() {
    let dir = TestDir::new();
    let trials: u32 = std::env::var("MEDIC_HA_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // The default lease TTL (5s): the goal is a new leader within 10 s.
    let (v, ok, stderr) = bench(&dir, "kill", &["--trials", &trials.to_string()]);
    assert_eq!(v["trials"], trials, "{v}\n{stderr}");
    assert_eq!(v["store"], "postgres", "{v}");
    assert_eq!(v["duplicate"], 0, "duplicate action: {v}");
    assert_eq!(v["lost"], 0, "lost action: {v}");
    assert_eq!(v["audit_valid"], true, "{v}");
    let max = v["takeover_ms"]["max"].as_u64().unwrap();
    assert!(max < 10_000, "takeover took {max} ms: {v}");
    assert!(ok, "{stderr}");
    assert!(
        dir.tagged().is_empty(),
        "processes left: {:?}",
        dir.tagged()
    );
}

#[test]
fn a_paused_leader_is_fenced_off_by_token_performs_nothing_and_steps_down() {
    let dir = TestDir::new();
    let (v, ok, stderr) = bench(&dir, "pause", &["--scenario", "pause", "--lease-ttl", "2s"]);
    assert!(v["new_token"].as_u64() > v["stale_token"].as_u64(), "{v}");
    assert_eq!(v["store"], "postgres", "{v}");
    assert_eq!(v["settled"], true, "the new leader healed: {v}");
    assert_eq!(
        v["stale_executor_calls"], 0,
        "the stale leader called an executor: {v}"
    );
    assert_eq!(v["stale_actions"], 0, "the stale leader acted: {v}");
    assert_eq!(v["fenced_off"], true, "refused by token: {v}");
    assert_eq!(v["stepped_down"], true, "{v}");
    assert_eq!(v["leaders"], 1, "{v}");
    assert_eq!(v["unmatched_intents"], 0, "{v}");
    assert_eq!(v["audit_valid"], true, "{v}");
    assert!(ok, "{stderr}");
}

/// The deliberate bug: the same scenario without the fence. The stale
/// leader now calls its executor with its old token after a newer leader
/// acted: the assertions of the test above would fail.
#[test]
fn without_fencing_the_paused_leader_acts_on_a_stale_token() {
    let dir = TestDir::new();
    let (v, ok, _) = bench(
        &dir,
        "nofence",
        &[
            "--scenario",
            "pause",
            "--lease-ttl",
            "2s",
            "--unsafe-no-fence",
        ],
    );
    assert_eq!(v["unsafe_no_fence"], true, "{v}");
    assert_eq!(v["fenced_off"], false, "{v}");
    assert!(
        v["stale_executor_calls"].as_u64().unwrap() >= 1,
        "expected the unfenced stale leader to call its executor: {v}"
    );
    assert!(
        !ok,
        "the bench must report the stale action as a failure: {v}"
    );
}

/// The leader in its own network namespace (veth to the host); iptables in
/// the namespace cuts it from etcd only: it still reaches the service and
/// the store. It must stop acting; the majority side elects a leader that
/// heals; after healing there is one leader and no duplicate action.
#[test]
fn a_leader_partitioned_from_etcd_stops_acting_and_the_majority_continues() {
    let dir = TestDir::new();
    let (v, ok, stderr) = bench(
        &dir,
        "partition",
        &["--scenario", "partition", "--lease-ttl", "2s"],
    );
    assert!(v["new_token"].as_u64() > v["cut_off_token"].as_u64(), "{v}");
    assert_eq!(v["cut_off_acting"], false, "{v}");
    assert!(
        v["cut_off_reason"] == "etcd_unreachable" || v["cut_off_reason"] == "lost_lease",
        "{v}"
    );
    assert_eq!(v["cut_off_actions"], 0, "{v}");
    assert_eq!(v["new_leader_actions"], 1, "{v}");
    assert_eq!(v["duplicate"], 0, "{v}");
    assert_eq!(v["settled"], true, "{v}");
    assert_eq!(v["leaders_after_heal"], 1, "{v}");
    assert_eq!(v["unmatched_intents"], 0, "{v}");
    assert_eq!(v["audit_valid"], true, "{v}");
    assert!(ok, "{stderr}");
}
