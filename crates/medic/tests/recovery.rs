//! Crash recovery: medic is killed (SIGKILL, via `MEDIC_FAILPOINT`) at each
//! failure point of a real heal (supervised fixture, error fault, restart),
//! started again, and must finish the heal without running the restart twice
//! or forgetting it; the audit chain must verify after each trial. Runs
//! `medic bench recovery` (which drives real `medic run` processes) once per
//! point; the bench itself is the reusable harness (`--trials 100`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use medic_exec::failpoint::POINTS;

#[test]
fn a_kill_at_every_failure_point_neither_repeats_nor_loses_the_action() {
    let dir = TestDir::new();
    for point in POINTS {
        let out = medic()
            .args([
                "bench", "recovery", "--trials", "1", "--json", "--point", point,
            ])
            .arg("--dir")
            .arg(dir.path().join(point))
            .env(TAG_VAR, dir.tag())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{point}: not JSON ({e}): {stdout}\n{stderr}"));
        assert_eq!(v["trials"], 1, "{point}: {v}");
        assert_eq!(v["points"][point], 1, "{point}: {v}");
        assert_eq!(v["duplicate"], 0, "{point}: duplicate action: {v}");
        assert_eq!(v["lost"], 0, "{point}: lost action: {v}");
        assert_eq!(v["audit_valid"], true, "{point}: {v}");
        assert!(out.status.success(), "{point}: {stderr}");
        // The kill really happened at the point, and the second medic
        // reconciled what the first left in flight (not for before_intent:
        // nothing was journaled yet).
        let log = std::fs::read_to_string(
            dir.path()
                .join(point)
                .join("trial-0000")
                .join("medic.stderr"),
        )
        .unwrap();
        assert!(
            log.contains(&format!("MEDIC_FAILPOINT={point}: killing medic")),
            "{point}: {log}"
        );
        let reconciled = log.contains("action.reconciled");
        assert_eq!(
            reconciled,
            point != "before_intent",
            "{point}: reconciliation in the log"
        );
        // The restarted medic read the target's actual state against the
        // journal: the process is the old one when the kill came before
        // the restart began, a new one after.
        let expected = match point {
            "before_intent" => None,
            "after_intent" => Some("the restart did not happen"),
            _ => Some("the restart took effect"),
        };
        match expected {
            Some(finding) => assert!(
                log.contains(finding),
                "{point}: expected `{finding}`: {log}"
            ),
            None => assert!(
                !log.contains("reconciling an action found in flight"),
                "{point}: {log}"
            ),
        }
    }
    assert!(
        dir.tagged().is_empty(),
        "processes left: {:?}",
        dir.tagged()
    );
}

#[test]
fn an_unknown_failure_point_is_refused() {
    let out = medic()
        .args(["bench", "recovery", "--point", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}
