//! Issue 10 goal: a staged canary over 10 real fixture instances. A change
//! triggered by an incident runs on 10 % of the instances, is judged against
//! the other 90 % (Mann-Whitney U on latency and error share, sampled from
//! each instance's `/healthz`), then 50 %, then 100 %.
//! - a bad change (it makes its instance slow through the fixture's
//!   `/fault/slow`) stops at 10 %: the judge fails it, medic rolls the one
//!   changed instance back (`/fault/clear`) and escalates;
//! - a good change reaches 100 % and the incident heals;
//! - both verdicts are explained (audit record, `explain` API and CLI).
//!
//! Failure-matrix row "canary failure": `a_bad_change_stops_at_ten_percent_and_is_undone`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, get_json, wait_for, write, TestDir, TAG_VAR};

const N: usize = 10;

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

fn of_kind(records: &[(String, serde_json::Value)], kind: &str) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, p)| p.clone())
        .collect()
}

/// Fixtures started by the test: killed and reaped on drop (the `TestDir`
/// tag is a second net).
struct Fixtures(Vec<std::process::Child>);

impl Drop for Fixtures {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Ten fixtures, each `medic fixture --port P`.
fn fixtures(dir: &TestDir) -> (Vec<u16>, Fixtures) {
    let ports: Vec<u16> = (0..N).map(|_| free_port()).collect();
    let mut children = Fixtures(Vec::new());
    for p in &ports {
        children.0.push(
            Command::new(exe())
                .args(["fixture", "--port", &p.to_string()])
                .env(TAG_VAR, dir.tag())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for p in &ports {
        common::fixture_pid(&format!("http://127.0.0.1:{p}/healthz"));
    }
    (ports, children)
}

/// `change` runs per instance with `MEDIC_INSTANCE(_URL)`; `undo` reverts it.
/// The incident's trigger (a file) clears once every instance has the change.
fn config(dir: &Path, api_port: u16, ports: &[u16], change: &str) -> PathBuf {
    let d = dir.display();
    let instances: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!("        - {{ name: web-{i}, url: \"http://127.0.0.1:{p}/healthz\" }}\n")
        })
        .collect();
    let cfg = format!(
        r#"listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ verify_window: 3s, cooldown: 1s }}
services:
  web:
    startup: {{ grace: 0s }}
    probes:
      release:
        exec: {{ command: ["sh", "-c", "test ! -e {d}/trigger || test $(ls {d} | grep -c '^done-') -ge {N}"], timeout: 2s }}
        interval: 200ms
        failure: {{ consecutive: 1 }}
        recovery: {{ consecutive: 1 }}
    actions:
      change:
        exec: {{ command: ["sh", "-c", "curl -fsS -X POST \"${{MEDIC_INSTANCE_URL%/healthz}}/fault/{change}\" >/dev/null && touch {d}/done-$MEDIC_INSTANCE"] }}
        risk: medium
        revert: {{ action: undo, after: 1h }}
      undo:
        exec: {{ command: ["sh", "-c", "curl -fsS -X POST \"${{MEDIC_INSTANCE_URL%/healthz}}/fault/clear\" >/dev/null && rm -f {d}/done-$MEDIC_INSTANCE && echo undone $MEDIC_INSTANCE"] }}
        risk: low
    remediate:
      - when: {{ probe: release }}
        action: change
    canary:
      window: 3s
      interval: 100ms
      instances:
{instances}"#
    );
    write(dir, "medic.yaml", &cfg)
}

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

fn slow_ms(port: u16) -> Option<u64> {
    get_json(&format!("http://127.0.0.1:{port}/admin/state")).unwrap()["slow_ms"].as_u64()
}

fn start(dir: &TestDir, change: &str) -> (Vec<u16>, String, common::Daemon, Fixtures) {
    let (ports, children) = fixtures(dir);
    let api_port = free_port();
    let cfg = config(dir.path(), api_port, &ports, change);
    let d = dir.spawn_daemon(&cfg, Some("aggressive"));
    let api = format!("http://127.0.0.1:{api_port}");
    wait_for("medic's API", Duration::from_secs(20), || {
        get_json(&format!("{api}/api/v1/incidents"))
    });
    // The release starts: the trigger opens an incident whose heal is the change.
    std::fs::write(dir.path().join("trigger"), b"").unwrap();
    (ports, api, d, children)
}

#[test]
fn a_bad_change_stops_at_ten_percent_and_is_undone() {
    let dir = TestDir::new();
    let (ports, api, _d, _f) = start(&dir, "slow?ms=300");
    let escalated = wait_for("the escalation", Duration::from_secs(40), || {
        let recs = audit(&api);
        let e = of_kind(&recs, "incident.escalated");
        let rolled_back = of_kind(&recs, "action.outcome")
            .iter()
            .any(|p| p["stage"] == "rollback" && p["status"] == "succeeded");
        (!e.is_empty() && rolled_back).then_some(recs)
    });
    let recs = escalated;
    let stages = of_kind(&recs, "canary.stage");
    assert_eq!(stages.len(), 1, "stopped at the first stage: {stages:?}");
    assert_eq!(stages[0]["percent"], "10");
    assert_eq!(stages[0]["instances"], "web-0");
    let verdicts = of_kind(&recs, "canary.verdict");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    let v = &verdicts[0];
    assert_eq!(v["outcome"], "fail", "{v}");
    assert_eq!(v["latency_ms.outcome"], "fail", "{v}");
    assert_eq!(v["latency_ms.fail"], "worse", "{v}");
    assert_eq!(v["latency_ms.method"], "normal", "{v}");
    let p: f64 = v["latency_ms.p_value"].as_str().unwrap().parse().unwrap();
    assert!(p < 0.02, "{v}");
    let effect: f64 = v["latency_ms.effect"].as_str().unwrap().parse().unwrap();
    assert!(effect > 250.0, "about the 300 ms of the fault: {v}");
    let n_canary: usize = v["latency_ms.n_canary"].as_str().unwrap().parse().unwrap();
    let n_baseline: usize = v["latency_ms.n_baseline"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n_canary >= 10 && n_baseline >= 9 * 10, "{v}");
    let esc = &of_kind(&recs, "incident.escalated")[0];
    assert_eq!(esc["reason_code"], "canary_failed", "{esc}");
    // The rollback undid exactly the changed instance; nothing else changed.
    let rollback: Vec<_> = of_kind(&recs, "action.intent")
        .into_iter()
        .filter(|p| p["stage"] == "rollback")
        .collect();
    assert_eq!(rollback.len(), 1, "{rollback:?}");
    assert_eq!(rollback[0]["action"], "undo");
    assert_eq!(rollback[0]["instances"], "web-0");
    let changes: Vec<_> = of_kind(&recs, "action.intent")
        .into_iter()
        .filter(|p| p["action"] == "change")
        .collect();
    assert_eq!(changes.len(), 1, "never went to 50 %: {changes:?}");
    for (i, p) in ports.iter().enumerate() {
        assert_eq!(slow_ms(*p), None, "web-{i} is not slow after the rollback");
    }
    assert!(!dir.path().join("done-web-0").exists(), "undo ran");
    // Explained: the API's explain and the CLI.
    let incident = esc["incident"].as_str().unwrap();
    let ex = get_json(&format!("{api}/api/v1/explain/{incident}")).unwrap();
    let c = &ex["canary"][0];
    assert_eq!(c["outcome"], "fail", "{ex}");
    assert_eq!(c["stage"], 1);
    assert_eq!(c["canary"][0], "web-0");
    let lat = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "latency_ms")
        .unwrap();
    assert!(
        lat["u"].as_f64().unwrap() > 0.9 * (n_canary * n_baseline) as f64,
        "{lat}"
    );
    assert!(lat["p_value"].as_f64().unwrap() < 0.02, "{lat}");
    assert!(lat["effect"].as_f64().unwrap() > lat["allowed_effect"].as_f64().unwrap());
    let text = cli(&api, &["explain", incident]);
    eprintln!("{text}");
    assert!(text.contains("canary change stage 1 (10%): fail"), "{text}");
    assert!(text.contains("latency_ms: fail (worse); U="), "{text}");
}

#[test]
fn a_good_change_reaches_one_hundred_percent() {
    let dir = TestDir::new();
    let (ports, api, _d, _f) = start(&dir, "clear");
    let recs = wait_for("the incident to heal", Duration::from_secs(50), || {
        let recs = audit(&api);
        of_kind(&recs, "incident.resolved")
            .iter()
            .any(|p| p["outcome"] == "healed")
            .then_some(recs)
    });
    let stages = of_kind(&recs, "canary.stage");
    let percents: Vec<_> = stages.iter().map(|s| s["percent"].clone()).collect();
    assert_eq!(percents, ["10", "50", "100"], "{stages:?}");
    assert_eq!(stages[1]["instances"], "web-1,web-2,web-3,web-4");
    assert_eq!(stages[2]["baseline"], "");
    let verdicts = of_kind(&recs, "canary.verdict");
    assert_eq!(
        verdicts.len(),
        2,
        "judged after 10 % and 50 %: {verdicts:?}"
    );
    for v in &verdicts {
        assert_eq!(v["outcome"], "pass", "{v}");
        assert_eq!(v["score"], "1.000000", "{v}");
        for m in ["latency_ms", "error"] {
            assert_eq!(v[format!("{m}.outcome")], "pass", "{v}");
            assert!(v[format!("{m}.explanation")]
                .as_str()
                .unwrap()
                .contains("U="));
            assert_eq!(v[format!("{m}.spread_failed")], "false", "{v}");
        }
    }
    for i in 0..N {
        assert!(
            dir.path().join(format!("done-web-{i}")).exists(),
            "web-{i} changed"
        );
    }
    for p in &ports {
        assert_eq!(slow_ms(*p), None);
    }
    assert!(of_kind(&recs, "action.intent")
        .iter()
        .all(|p| p["stage"] != "rollback"));
    let incident = verdicts[0]["incident"].as_str().unwrap();
    let ex = get_json(&format!("{api}/api/v1/explain/{incident}")).unwrap();
    assert_eq!(ex["canary"].as_array().unwrap().len(), 2, "{ex}");
    assert_eq!(ex["canary"][1]["canary"].as_array().unwrap().len(), 5);
    assert_eq!(ex["canary"][1]["baseline"].as_array().unwrap().len(), 5);
}
