//! Issue 9 end to end: three real fixture processes in a chain web → api → db
//! (each `/work` calls the next), a `slow` fault on db. medic diagnoses db as
//! the root cause, restarts db, and holds web and api back as its victims;
//! their symptoms join db's incident (one incident for the cascade). The
//! other faults on the same chain (one `chain()` helper builds each config):
//! failing calls, a deploy then failing calls, and a filling queue diagnosed
//! at the approval band.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;

fn audit(api: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let Some(page) = get_json(&format!("{api}/api/v1/audit?after={after}&limit=1000")) else {
            return out;
        };
        let recs = page["records"].as_array().cloned().unwrap_or_default();
        if recs.is_empty() {
            return out;
        }
        for r in &recs {
            after = r["seq"].as_u64().unwrap_or(after);
            let payload = match &r["payload"] {
                serde_json::Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
                v => v.clone(),
            };
            out.push((r["kind"].as_str().unwrap_or("").to_string(), payload));
        }
    }
}

#[test]
fn a_slow_database_is_restarted_and_its_callers_are_held_back() {
    let dir = TestDir::new();
    let Watched {
        _daemon,
        pw,
        pa,
        pd,
        api,
        web0,
        api0,
        db0,
    } = watched_chain(&dir, &SLOW);
    fault_db_until_restarted(pd, db0, "slow?ms=800");
    // The diagnosis named db first, with its victims.
    let records = audit(&api);
    let diag = records
        .iter()
        .find(|(k, p)| k == "rca.diagnosed" && p["service"] == "db" && p["victims_held"] != "")
        .unwrap_or_else(|| panic!("no rca.diagnosed for db: {records:?}"));
    // Victims are held as they turn anomalous: over the diagnoses of db, both.
    let held: Vec<&str> = records
        .iter()
        .filter(|(k, p)| k == "rca.diagnosed" && p["service"] == "db")
        .flat_map(|(_, p)| p["victims_held"].as_str().unwrap_or("").split(','))
        .collect();
    assert!(held.contains(&"api") && held.contains(&"web"), "{held:?}");
    assert!(
        diag.1["hypotheses"]
            .as_str()
            .unwrap()
            .starts_with("db/latency"),
        "{diag:?}"
    );
    // One incident for the cascade: db's. A victim's symptom joins it
    // (`incident.merged`); a victim incident opened before db's is closed as
    // `merged`. No web or api incident stays open on its own.
    let merged_victims: Vec<&str> = records
        .iter()
        .filter(|(k, p)| k == "incident.merged" && p["cause"] == "db")
        .filter_map(|(_, p)| p["service"].as_str())
        .collect();
    for (k, p) in &records {
        if k == "incident.opened" && p["service"] != "db" {
            let id = &p["incident"];
            assert!(
                records.iter().any(|(k2, q)| k2 == "incident.resolved"
                    && &q["incident"] == id
                    && q["outcome"] == "merged"),
                "victim incident {p} was not merged into db's: {records:?}"
            );
        }
    }
    eprintln!("cascade: victims merged into db's incident: {merged_victims:?}");
    // Every action intent was on db; web and api kept their processes.
    only_db_acted(&records, (pw, web0), (pa, api0));
    // Learning: the verified restart reinforced (dependency_slow, restart),
    // durably in the store.
    let db = dir.path().join("medic.db");
    let learned = wait_for("the outcome to be learned", Duration::from_secs(30), || {
        let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let s = medic_store::Store::open(&db).await.ok()?;
            let rows = s.pattern_outcomes().await.ok();
            s.close().await;
            rows
        })?;
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        learned,
        vec![("dependency_slow".to_string(), "restart".to_string(), 1, 0)]
    );
    // Explain: the db incident shows the ranked hypotheses with their parts,
    // and why the others were not taken.
    let db_incident = records
        .iter()
        .find(|(k, p)| k == "incident.opened" && p["service"] == "db")
        .map(|(_, p)| p["incident"].as_str().unwrap().to_string())
        .unwrap();
    let ex = get_json(&format!("{api}/api/v1/explain/{db_incident}")).unwrap();
    let hyps = ex["hypotheses"].as_array().unwrap();
    assert_eq!(hyps[0]["service"], "db", "{ex}");
    assert_eq!(hyps[0]["pattern"], "dependency_slow", "{ex}");
    assert!(hyps[0]["prior"].as_f64().unwrap() > 0.0, "{ex}");
    assert!(hyps[0]["not_taken"].is_null(), "{ex}");
    assert!(
        hyps.len() > 1
            && hyps[1]["not_taken"]
                .as_str()
                .unwrap()
                .contains("victim of db"),
        "{ex}"
    );
    assert!(
        ex["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["reason_code"] == "confidence_armed" || d["reason_code"] == "confidence_act"),
        "{ex}"
    );
    // The merged services are visible: in the incident, in explain (JSON and
    // text), exactly the victims the audit says joined db's incident.
    let mut want: Vec<&str> = Vec::new();
    for (k, p) in &records {
        if k == "incident.merged" && p["incident"] == db_incident.as_str() {
            let v = p["service"].as_str().unwrap();
            if !want.contains(&v) {
                want.push(v);
            }
        }
    }
    let detail = get_json(&format!("{api}/api/v1/incidents/{db_incident}")).unwrap();
    assert_eq!(
        detail["merged_services"],
        serde_json::json!(want),
        "{detail}"
    );
    let ex = get_json(&format!("{api}/api/v1/explain/{db_incident}")).unwrap();
    assert_eq!(ex["merged_services"], serde_json::json!(want), "{ex}");
    let out = assert_cmd::Command::cargo_bin("medic")
        .unwrap()
        .args(["--api", &api, "explain", &db_incident])
        .env("MEDIC_TOKEN", token_as(&api, "alice", "admin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text.contains(&format!(
            "merged into this incident (victims of db): {}",
            want.join(", ")
        )),
        !want.is_empty(),
        "{text}"
    );
    // History: a second slow episode on db lists the first (closed, same
    // service and symptom) among its similar incidents. (The victims' own
    // incidents may never open: db is often healed before their latency rule
    // fires.)
    wait_for(
        "the first db incident to close",
        Duration::from_secs(20),
        || {
            let d = get_json(&format!("{api}/api/v1/incidents/{db_incident}"))?;
            (d["state"] == "resolved").then_some(())
        },
    );
    inject(pd, "slow?ms=800");
    let similar = wait_for("similar incidents", Duration::from_secs(40), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        let second = list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["service"] == "db" && i["id"] != db_incident.as_str())?
            .clone();
        let id = second["id"].as_str()?;
        let d = get_json(&format!("{api}/api/v1/incidents/{id}"))?;
        let s = d["similar"].as_array()?.clone();
        (!s.is_empty()).then_some(s)
    });
    assert!(
        similar.iter().any(|s| s["id"] == db_incident.as_str()
            && s["trigger"] == "work slow"
            && s["diagnosis"]["service"] == "db"
            && s["diagnosis"]["pattern"] == "dependency_slow"),
        "{similar:?}"
    );
    // Held with the reason recorded, when their incidents reached a decision.
    for (k, p) in &records {
        if k == "decision" && (p["service"] == "web" || p["service"] == "api") {
            assert_eq!(p["reason_code"], "upstream_cause", "{p}");
        }
    }
}

/// Failing calls, not slow ones: an `error` fault on db makes db's `/work`
/// answer 500 and its callers' 502, at their usual latency. The daemon ranks
/// db by availability (the probes' pass rate) and restarts only db.
#[test]
fn a_failing_database_is_ranked_by_availability_and_only_it_is_restarted() {
    let dir = TestDir::new();
    let Watched {
        _daemon,
        pw,
        pa,
        pd,
        api,
        web0,
        api0,
        db0,
    } = watched_chain(&dir, &FAILING);
    fault_db_until_restarted(pd, db0, "error");
    let records = audit(&api);
    assert!(
        records.iter().any(|(k, p)| k == "rca.diagnosed"
            && p["service"] == "db"
            && p["hypotheses"]
                .as_str()
                .is_some_and(|h| h.starts_with("db/availability"))),
        "no availability diagnosis of db: {records:?}"
    );
    only_db_acted(&records, (pw, web0), (pa, api0));
}

/// An incident no pattern matched, resolved by a human after a forced action,
/// becomes a candidate pattern in the store; nothing promotes it.
#[test]
fn a_human_resolution_of_an_unmatched_incident_becomes_a_candidate_pattern() {
    let dir = TestDir::new();
    let (port, aport) = (free_port(), free_port());
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = format!(
        r#"mode: dry-run
listen: 127.0.0.1:{aport}
database: medic.db
services:
  api:
    process:
      command: ["{exe}", "fixture", "--port", "{port}"]
      stop_grace: 2s
    # The fault is injected as soon as the fixture answers, maybe before the
    # work probe's first success: no start phase to wait out.
    startup: {{ grace: 0s }}
    probes:
      work:
        http: {{ url: "http://127.0.0.1:{port}/work", timeout: 2s }}
        interval: 250ms
        failure: {{ consecutive: 2 }}
        # The incident stays open well after the forced clear (10 s of
        # successes), so the human's resolution below is what closes it,
        # however slow the machine.
        recovery: {{ consecutive: 40 }}
    actions:
      clear: {{ http: {{ url: "http://127.0.0.1:{port}/fault/clear", method: POST }} }}
    remediate:
      - when: {{ probe: work, condition: failing }}
        action: clear
"#,
        exe = exe.display()
    );
    let cfg = write(dir.path(), "medic.yaml", &cfg);
    let _daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    fixture_pid(&format!("http://127.0.0.1:{port}/healthz"));
    inject(port, "error");
    let incident = wait_for("an open incident", Duration::from_secs(20), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["service"] == "api")
            .and_then(|i| i["id"].as_str().map(String::from))
    });
    let force =
        serde_json::json!({"service": "api", "action": "clear", "reason": "clearing by hand"});
    assert_eq!(
        post_json_as(
            &format!("{api}/api/v1/actions/force"),
            &force,
            &token_as(&api, "alice", "admin")
        ),
        200
    );
    std::thread::sleep(Duration::from_millis(500));
    let resolve = serde_json::json!({"reason": "a stuck error flag; cleared it"});
    assert_eq!(
        post_json_as(
            &format!("{api}/api/v1/incidents/{incident}/resolve"),
            &resolve,
            &token_as(&api, "alice", "admin")
        ),
        200
    );
    let db = dir.path().join("medic.db");
    let cands = wait_for("a candidate pattern", Duration::from_secs(10), || {
        let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let s = medic_store::Store::open(&db).await.ok()?;
            let rows = s.candidate_patterns().await.ok();
            s.close().await;
            rows
        })?;
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(cands.len(), 1, "{cands:?}");
    let c = &cands[0];
    assert_eq!(
        (
            c.incident.as_str(),
            c.service.as_str(),
            c.action.as_str(),
            c.status.as_str()
        ),
        (incident.as_str(), "api", "clear", "candidate")
    );
    assert_eq!(c.note, "a stuck error flag; cleared it");
}

/// What differs between the web → api → db chains of this file.
struct Chain<'a> {
    /// The `work` probe's rule (`latency: …` or `failure: …`).
    probe: &'a str,
    /// The conditions of `work` that restart the service, for each service.
    restart_on: &'a [&'a str],
    /// api's `depends_on` entry for db.
    api_on_db: &'a str,
    /// More `remediate:` entries of db (YAML list items, 6 spaces in).
    db_remediate: &'a str,
    /// Appended to the config (top-level sections); `{db}` is db's port.
    tail: &'a str,
}

/// Slow calls: `work` slow for 8 probes (over 300 ms) or failing restarts
/// the service; api calls db as a database.
const SLOW: Chain = Chain {
    probe: "latency: { over: 300ms, consecutive: 8 }",
    restart_on: &["slow", "failing"],
    api_on_db: "{ service: db, kind: database }",
    db_remediate: "",
    tail: "",
};

/// Failing calls: `work` failing for 8 probes restarts the service.
const FAILING: Chain = Chain {
    probe: "failure: { consecutive: 8 }",
    restart_on: &["failing"],
    api_on_db: "db",
    db_remediate: "",
    tail: "",
};

/// A filling queue on db: a scrape rule of kind `queue_depth` on db's
/// `/metrics` (`fixture_queue_depth`) whose breach (over 150 items for 2 s)
/// restarts db; `work` slow for 8 probes (over 300 ms) or failing restarts
/// any service (so the callers, slowed by the queue, would be restarted if
/// they were not held for the approval asked about db).
const QUEUE: Chain = Chain {
    probe: "latency: { over: 300ms, consecutive: 8 }",
    restart_on: &["slow", "failing"],
    api_on_db: "{ service: db, kind: database }",
    db_remediate: "      - when: { probe: queue }\n        action: restart\n",
    tail: r#"signals:
  sources:
    db_metrics:
      scrape: { url: "http://127.0.0.1:{db}/metrics" }
      interval: 250ms
      timeout: 2s
  rules:
    queue:
      service: db
      source: db_metrics
      metric: fixture_queue_depth
      above: 150
      for: 2s
      kind: queue_depth
"#,
};

/// A chain of `spec` watched by a running daemon, after 8 s of normal
/// history (the ranking's baseline): the fixtures' ports and first pids,
/// medic's API.
struct Watched {
    _daemon: Daemon,
    pw: u16,
    pa: u16,
    pd: u16,
    api: String,
    web0: u64,
    api0: u64,
    db0: u64,
}

fn watched_chain(dir: &TestDir, spec: &Chain) -> Watched {
    watched_chain_env(dir, spec, &[])
}

/// [`watched_chain`] with more environment variables for the daemon.
fn watched_chain_env(dir: &TestDir, spec: &Chain, env: &[(&str, &str)]) -> Watched {
    let (cfg, pw, pa, pd, aport) = chain(dir, spec);
    let _daemon = dir.spawn_daemon_env(&cfg, None, env);
    let pid = |p: u16| fixture_pid(&format!("http://127.0.0.1:{p}/healthz"));
    let (web0, api0, db0) = (pid(pw), pid(pa), pid(pd));
    std::thread::sleep(Duration::from_secs(8));
    Watched {
        _daemon,
        pw,
        pa,
        pd,
        api: format!("http://127.0.0.1:{aport}"),
        web0,
        api0,
        db0,
    }
}

/// Every action intent in `records` was on db (at least one), and web and
/// api still run the processes they had: `(port, first pid)` each.
fn only_db_acted(records: &[(String, serde_json::Value)], web: (u16, u64), api: (u16, u64)) {
    let intents: Vec<&str> = records
        .iter()
        .filter(|(k, _)| k == "action.intent")
        .map(|(_, p)| p["service"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !intents.is_empty() && intents.iter().all(|s| *s == "db"),
        "{intents:?}"
    );
    let pid = |p: u16| fixture_pid(&format!("http://127.0.0.1:{p}/healthz"));
    assert_eq!(pid(web.0), web.1, "web was restarted");
    assert_eq!(pid(api.0), api.1, "api was restarted");
}

/// `POST /fault/{fault}` on the fixture at `port`.
fn inject(port: u16, fault: &str) {
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{port}/fault/{fault}"),
            &serde_json::json!({})
        ),
        200,
        "{fault}"
    );
}

/// `POST /fault/{fault}` on db (at `pd`), then waits up to 60 s for medic
/// to have restarted it: a new db process (pid other than `db0`), healthy.
fn fault_db_until_restarted(pd: u16, db0: u64, fault: &str) {
    inject(pd, fault);
    let db1 = new_fixture_pid(
        &format!("http://127.0.0.1:{pd}/healthz"),
        db0,
        Duration::from_secs(60),
    );
    assert_ne!(db1, db0);
}

/// web → api → db fixtures (each `/work` calls the next's), aggressive mode,
/// probed every 250 ms; `spec` says what differs. Returns the config file
/// and the ports of web, api, db and medic's API.
fn chain(dir: &TestDir, spec: &Chain) -> (std::path::PathBuf, u16, u16, u16, u16) {
    let (pw, pa, pd, aport) = (free_port(), free_port(), free_port(), free_port());
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let remediate: String = spec
        .restart_on
        .iter()
        .map(|c| {
            format!("      - when: {{ probe: work, condition: {c} }}\n        action: restart\n")
        })
        .collect();
    let svc = |name: &str, port: u16, down: Option<u16>, deps: &str, more: &str| {
        let down = down
            .map(|p| format!(", \"--downstream\", \"http://127.0.0.1:{p}\""))
            .unwrap_or_default();
        format!(
            r#"  {name}:
    process:
      command: ["{exe}", "fixture", "--port", "{port}"{down}]
      stop_grace: 2s
{deps}    probes:
      work:
        http: {{ url: "http://127.0.0.1:{port}/work", timeout: 5s }}
        interval: 250ms
        {probe}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
{remediate}{more}"#,
            exe = exe.display(),
            probe = spec.probe,
        )
    };
    let cfg = format!(
        "mode: aggressive\nlisten: 127.0.0.1:{aport}\ndatabase: medic.db\npolicy: {{ cooldown: 1s, verify_window: 5s }}\nservices:\n{}{}{}{}",
        svc("web", pw, Some(pa), "    depends_on: [api]\n", ""),
        svc(
            "api",
            pa,
            Some(pd),
            &format!("    depends_on: [{}]\n", spec.api_on_db),
            ""
        ),
        svc("db", pd, None, "", spec.db_remediate),
        spec.tail.replace("{db}", &pd.to_string()),
    );
    let cfg = write(dir.path(), "medic.yaml", &cfg);
    (cfg, pw, pa, pd, aport)
}

/// A deploy recorded on db (`medic change record`, as CI would), then an
/// `error` fault on db: the diagnosis is `error_spike_after_change` on db, and
/// the audit (`change.recorded`, `rca.diagnosed`), the explanation (API and
/// `medic explain`) name the deploy. Only db is restarted.
#[test]
fn a_deploy_then_failing_calls_is_diagnosed_as_an_error_spike_after_the_change() {
    let dir = TestDir::new();
    let Watched {
        _daemon,
        pw,
        pa,
        pd,
        api,
        web0,
        api0,
        db0,
    } = watched_chain(&dir, &FAILING);
    let ci = token_as(&api, "ci", "operator");
    // An unknown service is refused with its own code.
    let out = medic()
        .args(["--api", &api, "change", "record", "--service", "nope"])
        .args(["--kind", "deploy"])
        .env("MEDIC_TOKEN", &ci)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("E0158") && err.contains("E0482"),
        "{out:?}"
    );
    let out = medic()
        .args(["--api", &api, "change", "record", "--service", "db"])
        .args([
            "--kind",
            "deploy",
            "--version",
            "v2.0",
            "--note",
            "pipeline 41",
        ])
        .env("MEDIC_TOKEN", &ci)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deploy of db (version v2.0) recorded"),
        "{out:?}"
    );
    fault_db_until_restarted(pd, db0, "error");
    let records = audit(&api);
    assert!(
        records.iter().any(|(k, p)| k == "change.recorded"
            && p["service"] == "db"
            && p["kind"] == "deploy"
            && p["version"] == "v2.0"
            && p["by"] == "ci"),
        "no change.recorded: {records:?}"
    );
    let diagnosed = records
        .iter()
        // The error fault's diagnosis: under load, db's latency may have
        // been diagnosed (noise, short history) before the fault.
        .find(|(k, p)| {
            k == "rca.diagnosed" && p["service"] == "db" && p["signal"] == "availability"
        })
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no diagnosis of db: {records:?}"));
    assert_eq!(
        diagnosed["pattern"], "error_spike_after_change",
        "{diagnosed}"
    );
    assert_eq!(diagnosed["signal"], "availability", "{diagnosed}");
    assert!(
        diagnosed["evidence_text"].as_str().is_some_and(|t| t
            .contains("after a deploy of db (version v2.0, by ci: pipeline 41)")
            && (t.contains("s before the onset") || t.contains("in the onset's step"))),
        "{diagnosed}"
    );
    only_db_acted(&records, (pw, web0), (pa, api0));
    // The db incident's explanation names the deploy.
    let list = get_json(&format!("{api}/api/v1/incidents")).unwrap();
    let db_incident = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["service"] == "db")
        .and_then(|i| i["id"].as_str().map(String::from))
        .unwrap();
    let ex = get_json(&format!("{api}/api/v1/explain/{db_incident}")).unwrap();
    let hyps = ex["hypotheses"].as_array().unwrap();
    assert_eq!(hyps[0]["service"], "db", "{ex}");
    assert_eq!(hyps[0]["pattern"], "error_spike_after_change", "{ex}");
    assert!(
        hyps[0]["evidence_text"]
            .as_str()
            .unwrap()
            .contains("after a deploy of db"),
        "{ex}"
    );
    let out = medic()
        .args(["--api", &api, "explain", &db_incident])
        .env("MEDIC_TOKEN", token_as(&api, "alice", "admin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("after a deploy of db (version v2.0"),
        "{out:?}"
    );
}

/// A deploy recorded just before medic restarts still counts: the restarted
/// daemon reads it back from the audit (`change.recorded`), and an `error`
/// fault on db after the restart is `error_spike_after_change`, the deploy
/// named with its age.
#[test]
fn a_deploy_recorded_before_a_restart_is_still_evidence_after_it() {
    let dir = TestDir::new();
    let (cfg, _pw, _pa, pd, aport) = chain(&dir, &FAILING);
    let api = format!("http://127.0.0.1:{aport}");
    let daemon = dir.spawn_daemon(&cfg, None);
    let pid = |p: u16| fixture_pid(&format!("http://127.0.0.1:{p}/healthz"));
    pid(pd);
    let ci = token_as(&api, "ci", "operator");
    let change = serde_json::json!({"service": "db", "kind": "deploy", "version": "v3"});
    assert_eq!(
        post_json_as(&format!("{api}/api/v1/changes"), &change, &ci),
        200
    );
    drop(daemon);
    let _daemon = dir.spawn_daemon(&cfg, None);
    let db0 = pid(pd);
    std::thread::sleep(Duration::from_secs(8));
    fault_db_until_restarted(pd, db0, "error");
    let records = audit(&api);
    let diagnosed = records
        .iter()
        // The error fault's diagnosis: under load, db's latency may have
        // been diagnosed (noise, short history) before the fault.
        .find(|(k, p)| {
            k == "rca.diagnosed" && p["service"] == "db" && p["signal"] == "availability"
        })
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no diagnosis of db: {records:?}"));
    assert_eq!(
        diagnosed["pattern"], "error_spike_after_change",
        "{diagnosed}"
    );
    assert!(
        diagnosed["evidence_text"]
            .as_str()
            .is_some_and(|t| t.contains("after a deploy of db (version v3, by ci)")
                && t.contains("s before the onset")),
        "{diagnosed}"
    );
}

/// A filling queue on db (`POST /fault/queue`): db's `/work` waits behind
/// the backlog, so api and web slow down with it. The daemon diagnoses db by
/// its `queue_depth` rule (`queue_filling`, web and api its victims). At a
/// fresh install the confidence is `75 · 1 · 0.9` ≈ 68, the approval band
/// (docs/rca.md): db's restart waits for an approval and nothing runs on db
/// until a person approves it; then only db is restarted.
#[test]
fn a_filling_queue_is_diagnosed_and_its_restart_waits_for_approval() {
    let dir = TestDir::new();
    let Watched {
        _daemon,
        pw,
        pa,
        pd,
        api,
        web0,
        api0,
        db0,
    } = watched_chain(&dir, &QUEUE);
    let pid = |p: u16| fixture_pid(&format!("http://127.0.0.1:{p}/healthz"));
    inject(pd, "queue?per_s=50");
    // db's rule breaches; its restart waits for an approval, by the band.
    let approval = wait_for("an approval for db", Duration::from_secs(60), || {
        let list = get_json(&format!("{api}/api/v1/approvals"))?;
        list["approvals"]
            .as_array()?
            .iter()
            .find(|a| a["service"] == "db")
            .cloned()
    });
    assert_eq!(approval["action"], "restart", "{approval}");
    assert_eq!(approval["reason_code"], "confidence_approval", "{approval}");
    let records = audit(&api);
    // The diagnosis in force when the approval was requested: the last one
    // before it (an earlier one may be weaker: a symptom of one sample
    // halves the evidence).
    let requested = records
        .iter()
        .position(|(k, p)| k == "approval.requested" && p["service"] == "db")
        .unwrap_or_else(|| panic!("no approval.requested: {records:?}"));
    let diag = records[..requested]
        .iter()
        .rev()
        .find(|(k, _)| k == "rca.diagnosed")
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no diagnosis before the approval: {records:?}"));
    assert_eq!(
        (&diag["service"], &diag["signal"]),
        (&serde_json::json!("db"), &serde_json::json!("queue_depth")),
        "{diag}"
    );
    assert_eq!(diag["pattern"], "queue_filling", "{diag}");
    assert_eq!(diag["band"], "approval", "{diag}");
    let confidence: u8 = diag["confidence"].as_str().unwrap().parse().unwrap();
    assert!((50..70).contains(&confidence), "{diag}");
    assert!(
        diag["hypotheses"]
            .as_str()
            .unwrap()
            .starts_with("db/queue_depth queue_filling"),
        "{diag}"
    );
    // In the approval band the victims wait for a person too (governance
    // gate 6a, `upstream_cause_approval`).
    let held: Vec<&str> = diag["victims_held"].as_str().unwrap().split(',').collect();
    assert!(held.contains(&"web") && held.contains(&"api"), "{diag}");
    // Nothing ran without the approval: db kept its process, no intent.
    assert_eq!(pid(pd), db0, "db was restarted without an approval");
    assert!(
        !records.iter().any(|(k, _)| k == "action.intent"),
        "{records:?}"
    );
    // The db incident's explanation: db/queue_depth first, web and api its
    // victims, the approval pending.
    let incident = approval["incident"].as_str().unwrap();
    let ex = get_json(&format!("{api}/api/v1/explain/{incident}")).unwrap();
    let top = &ex["hypotheses"][0];
    assert_eq!(
        (
            &top["service"],
            &top["signal"],
            &top["pattern"],
            &top["band"]
        ),
        (
            &serde_json::json!("db"),
            &serde_json::json!("queue_depth"),
            &serde_json::json!("queue_filling"),
            &serde_json::json!("approval")
        ),
        "{ex}"
    );
    let victims: Vec<&str> = top["victims"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(victims.contains(&"web") && victims.contains(&"api"), "{ex}");
    assert!(!ex["pending_approval"].is_null(), "{ex}");
    // web and api, slowed by the queue, open incidents of their own: their
    // restarts wait for a person as db's does, instead of running.
    for svc in ["web", "api"] {
        let a = wait_for(
            &format!("an approval for {svc}"),
            Duration::from_secs(60),
            || {
                let list = get_json(&format!("{api}/api/v1/approvals"))?;
                list["approvals"]
                    .as_array()?
                    .iter()
                    .find(|a| a["service"] == svc)
                    .cloned()
            },
        );
        assert_eq!(a["reason_code"], "upstream_cause_approval", "{a}");
    }
    assert_eq!(pid(pw), web0, "web was restarted");
    assert_eq!(pid(pa), api0, "api was restarted");
    // A person approves db's restart (CLI); it runs, on db only.
    let out = medic()
        .args(["--api", &api, "approve", approval["id"].as_str().unwrap()])
        .env("MEDIC_TOKEN", token_as(&api, "alice", "approver"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let db1 = new_fixture_pid(
        &format!("http://127.0.0.1:{pd}/healthz"),
        db0,
        Duration::from_secs(30),
    );
    assert_ne!(db1, db0);
    let records = audit(&api);
    only_db_acted(&records, (pw, web0), (pa, api0));
}

/// What the loopback chat endpoint saw.
#[derive(Default)]
struct AiSeen {
    /// (Authorization header, request body) of each request.
    requests: Vec<(String, serde_json::Value)>,
    in_flight: usize,
    max_in_flight: usize,
}

/// An OpenAI-compatible chat endpoint on loopback (a vendor API with no
/// local server): answers `content` as the first choice's message after
/// `delay`. Returns its base URL and what it saw.
fn ai_server(
    content: &'static str,
    delay: Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<AiSeen>>) {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(AiSeen::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let state = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let handler = move |headers: HeaderMap, body: axum::Json<serde_json::Value>| {
                let state = state.clone();
                async move {
                    {
                        let mut s = state.lock().unwrap();
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        s.requests.push((auth, body.0));
                        s.in_flight += 1;
                        s.max_in_flight = s.max_in_flight.max(s.in_flight);
                    }
                    // Counted out also when the client gives up (the
                    // future is dropped then).
                    struct Out(Arc<Mutex<AiSeen>>);
                    impl Drop for Out {
                        fn drop(&mut self) {
                            if let Ok(mut s) = self.0.lock() {
                                s.in_flight -= 1;
                            }
                        }
                    }
                    let _out = Out(state.clone());
                    tokio::time::sleep(delay).await;
                    axum::Json(serde_json::json!({
                        "choices": [{"message": {"role": "assistant", "content": content}}]
                    }))
                }
            };
            let app =
                axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    (url, seen)
}

/// The failing chain with an `ai:` section naming `url` (key in the
/// environment variable `MEDIC_TEST_AI_KEY`, `timeout`), watched by a daemon
/// that has the key, after 8 s of normal history.
fn watched_chain_with_ai(dir: &TestDir, url: &str, timeout: &str) -> Watched {
    let tail = format!(
        "ai:\n  url: \"{url}\"\n  model: test-model\n  api_key_env: MEDIC_TEST_AI_KEY\n  timeout: {timeout}\n  max_hypotheses: 2\n"
    );
    let spec = Chain {
        tail: &tail,
        ..FAILING
    };
    watched_chain_env(dir, &spec, &[("MEDIC_TEST_AI_KEY", "sk-test-123")])
}

/// Optional AI hypotheses through the daemon: failing calls on db, an
/// endpoint on loopback that suggests web (a known service, ranked by medic
/// too) and `ghost` (not one). The endpoint gets the key and the diagnosis's
/// evidence; web's suggestion is added after medic's own hypotheses, marked
/// `ai_suggested`, capped below the approval band; `ghost` is dropped; db stays the cause and is the only
/// service restarted. The endpoint answers after 1 s: diagnoses made
/// meanwhile wait (one request in flight at a time).
#[test]
fn ai_suggestions_are_added_marked_and_capped_and_change_no_decision() {
    let dir = TestDir::new();
    let (url, seen) = ai_server(
        r#"{"hypotheses": [{"service": "ghost", "reason": "not a service"}, {"service": "web", "reason": "a bad front-end config"}]}"#,
        Duration::from_secs(1),
    );
    let w = watched_chain_with_ai(&dir, &url, "5s");
    fault_db_until_restarted(w.pd, w.db0, "error");
    // The endpoint was asked, with the key and db's evidence.
    {
        let s = seen.lock().unwrap();
        assert!(!s.requests.is_empty(), "the AI endpoint was never asked");
        for (auth, body) in &s.requests {
            assert_eq!(auth, "Bearer sk-test-123");
            assert_eq!(body["model"], "test-model", "{body}");
            let user = body["messages"][1]["content"].as_str().unwrap_or("");
            assert!(user.contains("Services: api, db, web"), "{user}");
            assert!(user.contains("db: "), "{user}");
        }
        eprintln!("AI endpoint: {} requests", s.requests.len());
        assert_eq!(s.max_in_flight, 1);
    }
    // A diagnosis with the suggestion appended: db first, web last, capped.
    let records = wait_for(
        "a diagnosis with AI suggestions",
        Duration::from_secs(20),
        || {
            let r = audit(&w.api);
            r.iter()
                .any(|(k, p)| {
                    k == "rca.diagnosed"
                        && p["hypotheses"]
                            .as_str()
                            .is_some_and(|h| h.contains("ai_suggested"))
                })
                .then_some(r)
        },
    );
    for (k, p) in &records {
        if k != "rca.diagnosed" {
            continue;
        }
        let h = p["hypotheses"].as_str().unwrap_or("");
        assert!(!h.contains("ghost"), "{h}");
        if h.contains("ai_suggested") {
            assert!(h.starts_with("db/"), "{h}");
            let ai: Vec<&str> = h
                .split("; ")
                .filter(|x| x.contains("ai_suggested"))
                .collect();
            assert_eq!(ai.len(), 1, "{h}");
            assert!(ai[0].starts_with("web/- ai_suggested "), "{h}");
            let c: u8 = ai[0].rsplit(' ').next().unwrap().parse().unwrap();
            assert!(c < 50, "AI confidence {c} is not below the approval band");
        }
    }
    // The explanation of db's incident shows it as suggested, not taken.
    let db_incident = records
        .iter()
        .find(|(k, p)| k == "incident.opened" && p["service"] == "db")
        .map(|(_, p)| p["incident"].as_str().unwrap().to_string())
        .unwrap();
    let ex = get_json(&format!("{}/api/v1/explain/{db_incident}", w.api)).unwrap();
    let hyps = ex["hypotheses"].as_array().unwrap();
    assert_eq!(hyps[0]["service"], "db", "{ex}");
    // Every action was on db; web and api kept their processes.
    only_db_acted(&records, (w.pw, w.web0), (w.pa, w.api0));
}

/// An AI endpoint that never answers in time changes nothing: db is restarted
/// as without it, the failure is logged (never the key).
#[test]
fn an_ai_endpoint_that_times_out_is_harmless() {
    let dir = TestDir::new();
    let (url, seen) = ai_server(r#"{"hypotheses": []}"#, Duration::from_secs(30));
    let w = watched_chain_with_ai(&dir, &url, "1s");
    fault_db_until_restarted(w.pd, w.db0, "error");
    assert!(
        !seen.lock().unwrap().requests.is_empty(),
        "the AI endpoint was never asked"
    );
    // The request times out 1 s after it went (db's restart may come first).
    let log = wait_for("the AI failure logged", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(dir.path().join("medic.stderr")).ok()?;
        log.contains("AI suggestions failed (ignored)")
            .then_some(log)
    });
    assert!(!log.contains("sk-test-123"), "the key was logged");
    let records = audit(&w.api);
    assert!(
        !records.iter().any(|(k, p)| k == "rca.diagnosed"
            && p["hypotheses"]
                .as_str()
                .is_some_and(|h| h.contains("ai_suggested"))),
        "{records:?}"
    );
}
