//! The real binary against the real fixture, a real SQLite file and loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;

fn write_config(dir: &Path, fixture_port: u16, api_port: u16) -> std::path::PathBuf {
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let cfg = format!(
        r#"mode: dry-run
listen: 127.0.0.1:{api_port}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 5s }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{fixture_port}"]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 200ms }}
      healthz:
        http: {{ url: "http://127.0.0.1:{fixture_port}/healthz", timeout: 1s }}
        interval: 250ms
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
      - when: {{ probe: healthz }}
        action: restart
"#,
        exe = exe.display()
    );
    let path = dir.join("medic.yaml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn sigkill_is_healed_recorded_in_the_api_and_audited() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    let daemon = dir.spawn_daemon(&cfg, Some("aggressive"));
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let pid = kill_fixture(&health);
    let new_pid = new_fixture_pid(&health, pid, Duration::from_secs(20));
    assert_replaced(&health, pid, new_pid);
    let api = format!("http://127.0.0.1:{aport}");
    let inc = wait_for(
        "a healed incident in the API",
        Duration::from_secs(20),
        || {
            let list = get_json(&format!("{api}/api/v1/incidents"))?;
            list["incidents"]
                .as_array()?
                .iter()
                .find(|i| i["outcome"] == "healed" && i["service"] == "web")
                .cloned()
        },
    );
    let detail = get_json(&format!(
        "{api}/api/v1/incidents/{}",
        inc["id"].as_str().unwrap()
    ))
    .unwrap();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"detected") && kinds.contains(&"action") && kinds.contains(&"resolved"),
        "{kinds:?}"
    );
    // Without a token: 401; with the test's viewer token: the metrics.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let anon = rt.block_on(async { reqwest::get(format!("{api}/metrics")).await.unwrap() });
    assert_eq!(anon.status(), 401);
    drop(rt);
    let metrics = get_text(&format!("{api}/metrics")).unwrap();
    assert!(metrics.contains("medic_actions_total"), "{metrics}");
    // One registry: the signal layer's counters, the engine's gauges and
    // the probe histograms are all on /metrics, in the Prometheus text format.
    for name in [
        "# TYPE medic_actions_total counter",
        "medic_detections_total{service=\"web\"}",
        "medic_incidents_open{state=\"monitoring\"} 0",
        "medic_mode{mode=\"aggressive\"} 1",
        "medic_mode{mode=\"dry-run\"} 0",
        "medic_automation_paused 0",
        "medic_autoheal_disabled{service=\"web\"} 0",
        "medic_probe_duration_seconds_bucket{",
        "medic_verifications_total{outcome=\"passed\"}",
        "medic_rollbacks_total 0",
        "medic_outbox_depth 0",
        "medic_queue_depth{queue=\"engine_input\"}",
        "# TYPE medic_signal_samples_total counter",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    assert!(!metrics.contains("# EOF"), "{metrics}");
    let reason = metrics
        .lines()
        .find(|l| l.starts_with("medic_actions_total{"))
        .unwrap();
    assert!(
        reason.contains("action=\"restart\"")
            && reason.contains("reason=\"direct\"")
            && reason.contains("outcome=\"succeeded\""),
        "{reason}"
    );
    if let Some(promtool) = require_binary(&["promtool"], "prometheus") {
        let (ok, out) = promtool_check_metrics(&promtool, &metrics);
        assert!(ok, "promtool check metrics:\n{out}\n{metrics}");
    }
    // OpenMetrics only when the scraper asks for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let om = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{api}/metrics"))
            .bearer_auth(token_as(&api, "scraper", "viewer"))
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .send()
            .await
            .unwrap();
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        r.text().await.unwrap()
    });
    drop(rt);
    assert!(
        om.ends_with("# EOF\n") && om.contains("# TYPE medic_actions counter"),
        "{om}"
    );
    // `medic incidents` reads the same API, with the token in MEDIC_TOKEN.
    let out = medic()
        .args(["incidents", "--json", "--api", &api])
        .env_remove("MEDIC_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E0406") && err.contains("MEDIC_TOKEN"),
        "{err}"
    );
    let viewer = token_as(&api, "vera", "viewer");
    let out = medic()
        .args(["incidents", "--json", "--api", &api])
        .env("MEDIC_TOKEN", &viewer)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(inc["id"].as_str().unwrap()));
    // A viewer may read but not steer: 403 from the API, named in the error.
    let out = medic()
        .args(["pause", "--api", &api])
        .env("MEDIC_TOKEN", &viewer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E0403") && err.contains("operator"), "{err}");
    // A revoked token stops working at once (the daemon reads the store).
    let out = medic()
        .args(["token", "revoke", "-c"])
        .arg(&cfg)
        .args(["--name", "vera"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = medic()
        .args(["incidents", "--api", &api])
        .env("MEDIC_TOKEN", &viewer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = medic()
        .args(["token", "list", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("vera") && list.contains("viewer") && !list.contains("medic_"),
        "{list}"
    );
    drop(daemon);
    // Stopped with SIGTERM, medic stopped its service: nothing of the test is left.
    assert_eq!(dir.tagged(), Vec::<u32>::new());
    let db = dir.path().join("medic.db");
    let out = medic()
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("audit chain ok: "));
    // The incident survives a restart of medic: a new daemon serves it from the database.
    let _daemon = dir.spawn_daemon(&cfg, None);
    let again = wait_for(
        "the old incident after restart",
        Duration::from_secs(20),
        || {
            get_json(&format!(
                "{api}/api/v1/incidents/{}",
                inc["id"].as_str().unwrap()
            ))
        },
    );
    assert_eq!(again["outcome"], "healed");
}

#[test]
fn dry_run_never_restarts() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    let _daemon = dir.spawn_daemon(&cfg, None);
    let health = format!("http://127.0.0.1:{fport}/healthz");
    kill_fixture(&health);
    let api = format!("http://127.0.0.1:{aport}");
    let inc = wait_for("a would-act incident", Duration::from_secs(20), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["outcome"] == "would-act")
            .cloned()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        get_json(&health).is_none(),
        "the service came back in dry-run"
    );
    let detail = get_json(&format!(
        "{api}/api/v1/incidents/{}",
        inc["id"].as_str().unwrap()
    ))
    .unwrap();
    assert!(
        detail["summary"]
            .as_str()
            .unwrap()
            .contains("actions: none"),
        "{detail}"
    );
}

#[test]
fn edited_audit_row_is_named_by_seq() {
    let dir = TestDir::new();
    let db = dir.path().join("medic.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = medic_store::Store::open(&db).await.unwrap();
        for i in 0..5 {
            store
                .append_audit(
                    "2026-11-23T12:00:00Z",
                    "test.event",
                    &format!("{{\"i\":{i}}}"),
                )
                .await
                .unwrap();
        }
        store.close().await;
    });
    let ok = medic()
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "audit chain ok: 5 records"
    );
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET payload = '{\"i\":99}' WHERE seq = 3")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let bad = medic()
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("E0010") && err.contains("seq 3"), "{err}");
}

/// `medic token create|revoke` append `token.created` / `token.revoked` to
/// the audit chain (who: the OS user, via the CLI; never the token or its
/// hash); a refused create or revoke appends nothing; `medic audit verify`
/// still passes.
#[test]
fn cli_token_changes_are_audited_in_the_chain() {
    let dir = TestDir::new();
    let cfg = write_config(dir.path(), free_port(), free_port());
    let db = dir.path().join("medic.db");
    let token = |args: &[&str]| {
        medic()
            .arg("token")
            .args(args)
            .arg("-c")
            .arg(&cfg)
            .env("USER", "carol-admin")
            .output()
            .unwrap()
    };
    let out = token(&["create", "--role", "approver", "--name", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("medic_"), "{secret}");
    // Refused: the name is taken, or has no active token. Nothing audited.
    let out = token(&["create", "--role", "viewer", "--name", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    let out = token(&["revoke", "--name", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    let out = token(&["revoke", "--name", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = medic_store::Store::open(&db).await.unwrap();
            let r = store.list_audit(0, 100).await.unwrap();
            store.close().await;
            r
        });
    let got: Vec<(String, serde_json::Value)> = records
        .iter()
        .map(|r| (r.kind.clone(), serde_json::from_str(&r.payload).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "token.created".to_string(),
                serde_json::json!({"name": "alice", "role": "approver", "by": "carol-admin", "via": "cli"})
            ),
            (
                "token.revoked".to_string(),
                serde_json::json!({"name": "alice", "by": "carol-admin", "via": "cli"})
            ),
        ]
    );
    let hash = medic_store::tokens::hash_token(&secret);
    for r in &records {
        assert!(
            !r.payload.contains(&secret) && !r.payload.contains(&hash),
            "{}",
            r.payload
        );
    }
    let ok = medic()
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "audit chain ok: 2 records"
    );
}

#[test]
fn bad_config_is_located_and_exits_2() {
    let dir = TestDir::new();
    let path = dir.path().join("bad.yaml");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "services:\n  web:\n    probes:\n      hz:\n        http: {{ url: http://x/ }}\n        interval: soon").unwrap();
    let out = medic().args(["check", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:6:19: invalid duration `soon`", path.display())),
        "{err}"
    );
    let ok = medic()
        .args(["check", "-c"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/medic.yaml"
        ))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = medic()
        .args(["check", "-c", "/nonexistent/medic.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config"));
}

#[test]
fn bad_arguments_and_unreachable_targets_are_clear_errors() {
    let out = medic().args(["run", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = medic().args(["mode", "yolo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode `yolo`"));
    let port = free_port();
    let out = medic()
        .args(["incidents", "--api", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E0004") && err.contains("cannot reach medic"),
        "{err}"
    );
    let out = medic()
        .args(["audit", "verify", "--db", "/nonexistent/x.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = TestDir::new();
    let cfg = write_config(dir.path(), free_port(), free_port());
    let out = medic()
        .args(["run", "-c"])
        .arg(&cfg)
        .env("MEDIC_MODE", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDIC_MODE"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn crash_loop_escalates_with_a_webhook_notification() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hook_port = {
        let received = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = l.local_addr().unwrap().port();
        rt.spawn(async move { axum::serve(l, app).await });
        port
    };
    let dir = TestDir::new();
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let api_port = free_port();
    let cfg = format!(
        r#"mode: aggressive
listen: 127.0.0.1:{api}
database: medic.db
notify: {{ webhook: "http://127.0.0.1:{hook_port}/hook", timeout: 2s }}
policy: {{ cooldown: 200ms, verify_window: 3s }}
services:
  crashy:
    process:
      command: ["{exe}", "fixture", "--port", "{port}", "--crash-on-start"]
    probes:
      alive: {{ process: {{}}, interval: 200ms }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
"#,
        api = api_port,
        port = free_port(),
        exe = exe.display()
    );
    let path = dir.path().join("medic.yaml");
    std::fs::write(&path, cfg).unwrap();
    let _daemon = dir.spawn_daemon(&path, None);
    let escalation = wait_for("an escalation webhook", Duration::from_secs(30), || {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|v| v["severity"] == "critical")
            .cloned()
    });
    assert_eq!(escalation["service"], "crashy");
    let msg = escalation["message"].as_str().unwrap();
    assert!(
        msg.contains("3 failed heals") && msg.contains("autoheal disabled"),
        "{msg}"
    );
    // A human takes over: resolves the incident and turns autoheal back on.
    let api = format!("http://127.0.0.1:{api_port}");
    let list = get_json(&format!("{api}/api/v1/incidents")).unwrap();
    let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
    let (code, _, err) = op(&api, &["resolve", &id, "--reason", "fixed the binary"]);
    assert_eq!(code, Some(0), "{err}");
    let inc = get_json(&format!("{api}/api/v1/incidents/{id}")).unwrap();
    assert_eq!(inc["outcome"], "resolved-by-operator", "{inc}");
    let (code, _, err) = op(&api, &["enable-autoheal", "crashy"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = op(&api, &["enable-autoheal", "nosuch"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("unknown_service"), "{err}");
}

/// Run `medic` with `--api` pointing at a daemon; return (exit code, stdout, stderr).
fn op(api: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = medic()
        .args(["--api", api])
        .args(args)
        .env("MEDIC_TOKEN", token_as(api, "alice", "admin"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn conservative_mode_waits_for_an_approval_then_heals_and_explains() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    let _daemon = dir.spawn_daemon(&cfg, Some("conservative"));
    let api = format!("http://127.0.0.1:{aport}");
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let pid = fixture_pid(&health);
    // Pausing first: detection still works, nothing is even proposed.
    let (code, _, err) = op(
        &api,
        &["pause", "--service", "web", "--reason", "maintenance"],
    );
    assert_eq!(code, Some(0), "{err}");
    sigkill(pid);
    let inc = wait_for("an incident", Duration::from_secs(20), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"].as_array()?.first().cloned()
    });
    let id = inc["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let approvals = get_json(&format!("{api}/api/v1/approvals")).unwrap();
    assert!(
        approvals["approvals"].as_array().unwrap().is_empty(),
        "{approvals}"
    );
    assert!(
        !approvals["pauses"].as_array().unwrap().is_empty(),
        "{approvals}"
    );
    let (code, _, err) = op(&api, &["resume", "--service", "web"]);
    assert_eq!(code, Some(0), "{err}");
    // Restart is MEDIUM risk: conservative mode asks a human.
    let approval = wait_for("a pending approval", Duration::from_secs(20), || {
        let v = get_json(&format!("{api}/api/v1/approvals"))?;
        v["approvals"].as_array()?.first().cloned()
    });
    assert_eq!(approval["action"], "restart");
    assert!(get_json(&health).is_none(), "restarted without approval");
    let (code, out, err) = op(&api, &["approvals"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(approval["id"].as_str().unwrap()), "{out}");
    let (code, _, err) = op(&api, &["approve", approval["id"].as_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let new_pid = new_fixture_pid(&health, pid, Duration::from_secs(20));
    assert_replaced(&health, pid, new_pid);
    let (code, out, err) = op(&api, &["explain", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("restart"), "{out}");
    // The approver's identity is in the audit log.
    let audit = get_json(&format!("{api}/api/v1/audit?limit=1000")).unwrap();
    let approved = audit["records"].as_array().unwrap().iter().any(|r| {
        r["kind"].as_str().unwrap_or("").starts_with("approval")
            && r["payload"].to_string().contains("alice")
    });
    assert!(approved, "{audit}");
    // Bad operator input is a clear error, not a panic.
    let (code, _, err) = op(&api, &["mode", "aggressive", "--service", "nosuch"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("E0422") && err.contains("nosuch"), "{err}");
    let (code, out, err) = op(&api, &["mode", "aggressive", "--service", "web"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web"), "{out}");
    let (code, _, err) = op(&api, &["approve", "apr-999999"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("E0"), "{err}");
}

fn alert(status: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "4", "status": status, "receiver": "medic", "groupKey": "{}:{alertname=\"QueueBacklog\"}",
        "truncatedAlerts": 0, "groupLabels": {"alertname": "QueueBacklog"}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{
            "status": status, "labels": {"alertname": "QueueBacklog", "service": "worker"},
            "annotations": {}, "startsAt": "2026-11-23T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "f00d"
        }]
    })
}

#[test]
fn a_firing_alert_posted_to_the_daemon_runs_the_remediation() {
    let dir = TestDir::new();
    let aport = free_port();
    let marker = dir.path().join("drained");
    let cfg = format!(
        r#"mode: aggressive
listen: 127.0.0.1:{aport}
database: medic.db
services:
  worker:
    probes: {{}}
    actions:
      drain:
        exec: {{ command: ["sh", "-c", "echo drained >> {marker}"], timeout: 5s }}
        risk: low
    remediate:
      - when: {{ probe: QueueBacklog }}
        action: drain
signals:
  alertmanager:
    alerts:
      QueueBacklog: {{ services: [worker] }}
"#,
        marker = marker.display()
    );
    let path = dir.path().join("medic.yaml");
    std::fs::write(&path, cfg).unwrap();
    let check = medic().args(["check", "-c"]).arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _daemon = dir.spawn_daemon(&path, None);
    let api = format!("http://127.0.0.1:{aport}");
    wait_for("the API", Duration::from_secs(20), || {
        get_json(&format!("{api}/api/v1/incidents"))
    });
    let hook = format!("{api}/api/v1/alerts/alertmanager");
    assert_eq!(post_json(&hook, &alert("firing")), 200);
    wait_for("the remediation to run", Duration::from_secs(20), || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|s| s.contains("drained"))
    });
    assert_eq!(post_json(&hook, &alert("resolved")), 200);
    let inc = wait_for("the incident to heal", Duration::from_secs(20), || {
        let list = get_json(&format!("{api}/api/v1/incidents"))?;
        list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["outcome"] == "healed")
            .cloned()
    });
    assert_eq!(inc["service"], "worker");
    // Bad payloads are JSON errors naming the field, not crashes.
    assert_eq!(
        post_json(
            &hook,
            &serde_json::json!({"version": "4", "alerts": [{"status": "sideways"}]})
        ),
        422
    );
}

/// `medic bench api` with tiny counts: it fills the store, measures through
/// the HTTP API with a token and prints the figures (no timing asserted).
#[test]
fn bench_api_prints_its_figures() {
    let dir = TestDir::new();
    let out = medic()
        .args([
            "bench",
            "api",
            "--incidents",
            "120",
            "--requests",
            "30",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("with 120 incidents stored"), "{stdout}");
    assert!(
        stdout.contains("p99 ") && stdout.contains("goal p99 < 20 ms"),
        "{stdout}"
    );
}

/// `medic change list` (issue 9): the changes recorded with `medic change
/// record`, newest first, per service (`--service`), bounded (`--limit`),
/// as text or `--json`; a limit the API refuses is `E0170`, exit 2.
#[test]
fn change_list_shows_the_recorded_changes_newest_first() {
    let dir = TestDir::new();
    let (fport, aport) = (free_port(), free_port());
    let cfg = write_config(dir.path(), fport, aport);
    let _daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    wait_for("the API", Duration::from_secs(20), || {
        get_text(&format!("{api}/healthz"))
    });
    let (code, out, _) = op(&api, &["change", "list"]);
    assert_eq!((code, out.trim()), (Some(0), "no changes recorded"));
    for (version, note) in [("v1", "first"), ("v2", "second & <last>")] {
        let (code, out, err) = op(
            &api,
            &[
                "change",
                "record",
                "--service",
                "web",
                "--kind",
                "deploy",
                "--version",
                version,
                "--note",
                note,
            ],
        );
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let (code, out, err) = op(&api, &["change", "list", "--service", "web"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with("web  deploy  version v2  by alice  (second & <last>)"),
        "{out}"
    );
    assert!(lines[1].contains("version v1"), "{out}");
    let (code, out, _) = op(&api, &["change", "list", "--limit", "1", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v}");
    assert_eq!(changes[0]["version"], "v2", "{v}");
    assert_eq!(changes[0]["by"], "alice", "{v}");
    let (code, out, _) = op(&api, &["change", "list", "--service", "other"]);
    assert_eq!((code, out.trim()), (Some(0), "no changes recorded"));
    let (code, _, err) = op(&api, &["change", "list", "--limit", "501"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("E0170") && err.contains("limit"), "{err}");
}
